"""Decoding a micro-batch's Kafka records: good events come out typed, each kind of bad record goes to the
rejects with its raw bytes, where it came from and a reason naming the problem, and the good records of
the same batch survive."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fraudctl.contracts import (
    AMOUNT, CUSTOMER_ID, IS_FRAUD, LABELLED_AT, TERMINAL_ID, TRANSACTION_ID, TX_DATETIME, format_time,
    transaction_event,
)
from fraudctl.stream.events import (
    KAFKA_TIMESTAMP, KEY, OFFSET, PARTITION, REASON, REJECT_COLUMNS, TOPIC, VALUE, decode_labels,
    decode_transactions,
)

KAFKA_TIME = dt.datetime(2018, 4, 1, 12, 0, 0, 500_000, tzinfo=dt.timezone.utc)


def records(values: list[bytes | None], topic: str = "transactions", partition: int = 2) -> pa.Table:
    """The Kafka source's columns, as Spark hands a micro-batch to foreachBatch (toArrow)."""
    n = len(values)
    return pa.table({
        TOPIC: pa.array([topic] * n, pa.string()),
        PARTITION: pa.array([partition] * n, pa.int32()),
        OFFSET: pa.array(range(100, 100 + n), pa.int64()),
        KAFKA_TIMESTAMP: pa.array([KAFKA_TIME + dt.timedelta(seconds=i) for i in range(n)],
                                  pa.timestamp("us", tz="UTC")),
        KEY: pa.array([f"key-{i}".encode() for i in range(n)], pa.binary()),
        VALUE: pa.array(values, pa.binary()),
    })


def tx(i: int, **changes) -> dict:
    event = transaction_event(transaction_id=f"t{i}", tx_datetime=dt.datetime(2018, 4, 1, 10, 0, i % 60),
                              customer_id=str(100 + i), terminal_id=str(7 + i % 3), amount=12.5 + i)
    event.update(changes)
    return event


def label(i: int, **changes) -> dict:
    event = {"schema_version": 1, TRANSACTION_ID: f"t{i}", CUSTOMER_ID: str(100 + i), TERMINAL_ID: "7",
             TX_DATETIME: "2018-04-01T10:00:00Z", IS_FRAUD: i % 2, LABELLED_AT: "2018-04-08T10:00:00Z"}
    event.update(changes)
    return event


def encode(event) -> bytes:
    return json.dumps(event).encode()


def without(event: dict, name: str) -> dict:
    return {k: v for k, v in event.items() if k != name}


def test_a_clean_batch_decodes_fully_and_typed():
    events = [tx(i) for i in range(50)]
    events[3] = tx(3, extra={"velocity": 1.5, "missing": None})  # optional extra numeric fields are allowed
    decoded = decode_transactions(records([encode(e) for e in events]))
    assert len(decoded.rejects) == 0 and list(decoded.rejects.columns) == REJECT_COLUMNS
    out = decoded.events
    assert len(out) == 50
    assert out[TRANSACTION_ID].tolist() == [f"t{i}" for i in range(50)]
    assert out[CUSTOMER_ID].tolist() == [str(100 + i) for i in range(50)]
    assert out[AMOUNT].dtype == "float64" and out[AMOUNT].tolist() == [12.5 + i for i in range(50)]
    assert out[TX_DATETIME].dtype == "datetime64[ns]"
    assert out[TX_DATETIME].iloc[5] == pd.Timestamp("2018-04-01 10:00:05")
    # Where each came from, and the Kafka timestamp as int64 nanoseconds since the epoch.
    assert out[PARTITION].tolist() == [2] * 50 and out[OFFSET].tolist() == list(range(100, 150))
    assert out[KAFKA_TIMESTAMP].iloc[1] == pd.Timestamp(KAFKA_TIME + dt.timedelta(seconds=1)).value


def test_a_clean_label_batch_decodes_fully():
    decoded = decode_labels(records([encode(label(i)) for i in range(10)], topic="labels"))
    assert len(decoded.rejects) == 0
    assert decoded.events[IS_FRAUD].dtype == "int64" and decoded.events[IS_FRAUD].tolist() == [0, 1] * 5
    assert decoded.events[LABELLED_AT].iloc[0] == pd.Timestamp("2018-04-08 10:00:00")
    assert decoded.events[TOPIC].tolist() == ["labels"] * 10


def test_fractional_second_times_parse():
    times = [dt.datetime(2018, 4, 1, 10, 0, 0, 250_000), dt.datetime(2018, 4, 1, 23, 59, 59, 999_999),
             dt.datetime(2018, 4, 2, 0, 0, 1)]
    events = [tx(i, tx_datetime=format_time(t)) for i, t in enumerate(times)]
    events.append(tx(9, tx_datetime="2018-04-01T10:00:00.5Z"))  # fewer digits than the encoder writes
    decoded = decode_transactions(records([encode(e) for e in events]))
    assert len(decoded.rejects) == 0
    assert decoded.events[TX_DATETIME].tolist() == [pd.Timestamp(t) for t in times] + \
        [pd.Timestamp("2018-04-01 10:00:00.5")]


BAD_TRANSACTIONS = [
    ("malformed JSON", b'{"schema_version": 1, "transaction_id": "x"', "malformed JSON"),
    ("truncated", encode(tx(1))[:-1], "malformed JSON"),
    ("not UTF-8", b'\xff\xfe{"a": 1}', "malformed JSON"),
    ("empty bytes", b"", "malformed JSON"),
    ("missing field", encode(without(tx(1), AMOUNT)), "missing field 'amount'"),
    ("missing id", encode(without(tx(1), TRANSACTION_ID)), "missing field 'transaction_id'"),
    ("amount as string", encode(tx(1, amount="12.50")), "amount is not a finite number: '12.50'"),
    ("amount true", encode(tx(1, amount=True)), "amount is not a finite number"),
    ("amount NaN", b'{"schema_version": 1, "transaction_id": "t1", "tx_datetime": "2018-04-01T10:00:00Z", '
                   b'"customer_id": "1", "terminal_id": "2", "amount": NaN}', "amount is not a finite number"),
    ("amount too big", encode(tx(1, amount=10**400)), "amount"),
    ("id as number", encode(tx(1, customer_id=101)), "customer_id is not a non-empty string: 101"),
    ("empty id", encode(tx(1, terminal_id="")), "terminal_id is not a non-empty string"),
    ("null field", encode(tx(1, amount=None)), "amount"),
    ("unknown schema version", encode(tx(1, schema_version=2)), "schema_version is not 1: 2"),
    ("schema version true", encode(tx(1, schema_version=True)), "schema_version"),
    ("no schema version", encode(without(tx(1), "schema_version")), "schema_version is not 1: None"),
    ("unknown field", encode(tx(1, colour="red")), "unknown field 'colour'"),
    ("time without Z", encode(tx(1, tx_datetime="2018-04-01 10:00:00")), "tx_datetime is not an ISO-8601 UTC time"),
    ("time garbage", encode(tx(1, tx_datetime="yesterdayZ")), "tx_datetime is not an ISO-8601 UTC time"),
    ("extra not an object", encode(tx(1, extra=[1, 2])), "extra is not an object"),
    ("extra not numeric", encode(tx(1, extra={"a": "x"})), "extra.a is not a number"),
    ("JSON array", b"[1, 2]", "a JSON list, expected an object"),
    ("JSON string", b'"hello"', "a JSON str, expected an object"),
    ("JSON number", b"42", "a JSON int, expected an object"),
    ("JSON null", b"null", "a JSON NoneType, expected an object"),
    ("null value", None, "empty record"),
    ("pretty-printed but wrong", json.dumps(tx(1, amount="x"), indent=1).encode(), "amount is not a finite number"),
]


@pytest.mark.parametrize("value, reason", [pytest.param(v, r, id=name) for name, v, r in BAD_TRANSACTIONS])
def test_each_bad_transaction_is_rejected_with_its_reason_and_the_rest_survive(value, reason):
    good = [encode(tx(i)) for i in range(6)]
    values = good[:3] + [value] + good[3:]
    decoded = decode_transactions(records(values))
    assert decoded.events[TRANSACTION_ID].tolist() == [f"t{i}" for i in range(6)]
    assert decoded.events[OFFSET].tolist() == [100, 101, 102, 104, 105, 106]
    assert len(decoded.rejects) == 1
    reject = decoded.rejects.iloc[0]
    assert reason in reject[REASON]
    assert reject[VALUE] == value and reject[KEY] == b"key-3"  # the raw bytes, untouched
    assert (reject[TOPIC], reject[PARTITION], reject[OFFSET]) == ("transactions", 2, 103)


def test_all_kinds_of_bad_records_in_one_batch_add_up():
    good = [encode(tx(i)) for i in range(len(BAD_TRANSACTIONS) + 3)]
    bad = [value for _, value, _ in BAD_TRANSACTIONS]
    values = [v for pair in zip(good, bad) for v in pair] + good[len(bad):]
    decoded = decode_transactions(records(values))
    assert len(decoded.events) + len(decoded.rejects) == len(values)
    assert sorted(decoded.events[TRANSACTION_ID]) == sorted(f"t{i}" for i in range(len(good)))
    assert len(decoded.rejects) == len(bad)
    by_offset = decoded.rejects.set_index(OFFSET)[REASON]
    for k, (name, _, reason) in enumerate(BAD_TRANSACTIONS):
        assert reason in by_offset[100 + 2 * k + 1], name


def test_a_good_event_survives_whichever_path_its_batch_takes():
    # A pretty-printed event (newlines) and a batch with a malformed record go record by record; good events
    # come out the same as from the bulk path.
    events = [tx(i) for i in range(5)]
    bulk = decode_transactions(records([encode(e) for e in events])).events
    pretty = decode_transactions(records([json.dumps(e, indent=2).encode() for e in events])).events
    mixed = decode_transactions(records([encode(e) for e in events] + [b"{oops"])).events
    for other in (pretty, mixed):
        pd.testing.assert_frame_equal(other.drop(columns=[OFFSET]), bulk.drop(columns=[OFFSET]))


BAD_LABELS = [
    ("is_fraud 2", encode(label(1, is_fraud=2)), "is_fraud is not 0 or 1: 2"),
    ("is_fraud string", encode(label(1, is_fraud="1")), "is_fraud is not 0 or 1: '1'"),
    ("is_fraud true", encode(label(1, is_fraud=True)), "is_fraud"),
    ("is_fraud null", encode(label(1, is_fraud=None)), "is_fraud is not 0 or 1: None"),
    ("missing labelled_at", encode(without(label(1), LABELLED_AT)), "missing field 'labelled_at'"),
    ("bad labelled_at", encode(label(1, labelled_at="2018-04-08")), "labelled_at is not an ISO-8601 UTC time"),
    ("unknown field", encode(label(1, amount=3.0)), "unknown field 'amount'"),
    ("unknown schema version", encode(label(1, schema_version=0)), "schema_version is not 1: 0"),
    ("malformed JSON", b"{,}", "malformed JSON"),
]


@pytest.mark.parametrize("value, reason", [pytest.param(v, r, id=name) for name, v, r in BAD_LABELS])
def test_each_bad_label_is_rejected_with_its_reason(value, reason):
    values = [encode(label(0)), value, encode(label(2))]
    decoded = decode_labels(records(values, topic="labels"))
    assert decoded.events[TRANSACTION_ID].tolist() == ["t0", "t2"]
    assert len(decoded.rejects) == 1 and reason in decoded.rejects[REASON].iloc[0]
    assert decoded.rejects[TOPIC].iloc[0] == "labels" and decoded.rejects[OFFSET].iloc[0] == 101


def test_an_empty_batch_and_an_all_bad_batch():
    empty = decode_transactions(records([]))
    assert len(empty.events) == 0 and len(empty.rejects) == 0
    assert {TRANSACTION_ID, TX_DATETIME, AMOUNT, KAFKA_TIMESTAMP} <= set(empty.events.columns)
    all_bad = decode_transactions(records([b"{", None, b"[]"]))
    assert len(all_bad.events) == 0 and len(all_bad.rejects) == 3
    assert all_bad.rejects[OFFSET].tolist() == [100, 101, 102]
    assert np.all(all_bad.rejects[REASON].str.len() > 0)
