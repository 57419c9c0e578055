"""`fraudctl replay` without a broker: mapping and presets, time formats, encoding, label interleaving, pacing,
rejects with line numbers, skip/limit, interruption, accounting. A fake producer stands in for Kafka."""

from __future__ import annotations

import csv
import datetime as dt
import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudctl import contracts as c
from fraudctl.cli import run
from fraudctl.config import Config
from fraudctl.errors import BadInputError, ExitCode, NotFoundError, UnavailableError
from fraudctl.data.generator import write_transactions
from fraudctl.data.layout import InputLayout
from fraudctl.data.replay import ReplayOptions, parse_duration, raise_for_outcome, replay

UTC = dt.timezone.utc
TX, LABELS = "transactions", "labels"
GENERATED_ARGS = dict(n_customers=60, n_terminals=120, n_days=30, seed=3)  # for the `generated` fixture


# --- a producer that delivers on poll ----------------------------------------------------------------------
class FakeError:
    def __init__(self, name: str = "_MSG_TIMED_OUT", fatal: bool = False):
        self._name, self._fatal = name, fatal

    def name(self) -> str:
        return self._name

    def str(self) -> str:
        return "Local: Message timed out"

    def fatal(self) -> bool:
        return self._fatal


class FakeProducer:
    """Records (topic, key, value) in produce order; delivers (or fails) them on poll/flush.

    Like confluent-kafka, it passes successes to on_delivery only when delivery reports are not limited to
    errors; events from `stuck_from` on never get a report (a broker that went away for good).
    """

    def __init__(self, deliveries, topics, fail_every: int = 0, queue_limit: int | None = None,
                 only_errors: bool = False, stuck_from: int | None = None):
        self.on_delivery = deliveries.on_delivery
        self.topics = topics
        self.sent: list[tuple[str, str, str]] = []
        self.times: list[float] = []
        self._queued: list[int] = []
        self.fail_every = fail_every
        self.queue_limit = queue_limit
        self.only_errors = only_errors
        self.stuck_from = stuck_from
        self.poll_timeouts: list[float] = []

    def produce(self, topic, value, key):
        if self.queue_limit is not None and len(self._queued) >= self.queue_limit:
            raise BufferError("Local: Queue full")
        self._queued.append(len(self.sent))
        self.sent.append((topic, key, value))
        self.times.append(time.monotonic())

    def poll(self, timeout=0):
        self.poll_timeouts.append(timeout)
        stuck = self.stuck_from if self.stuck_from is not None else len(self.sent)
        queued = [index for index in self._queued if index < stuck]
        self._queued = [index for index in self._queued if index >= stuck]
        for index in queued:
            failed = self.fail_every and (index + 1) % self.fail_every == 0
            if failed or not self.only_errors:
                self.on_delivery(FakeError() if failed else None, None)
        return len(queued)

    def flush(self, timeout=None):
        self.poll()
        return 0

    def purge(self, **kwargs):
        self.poll()

    def __len__(self):
        return len(self._queued)


def run_replay(path: Path, config: Config | None = None, producer: dict | None = None, **options):
    """replay() against a FakeProducer; returns (summary, producer). Layout options (preset, columns,
    time_format, start) go into `ReplayOptions.layout`."""
    layout = {k: options.pop(k) for k in ("preset", "columns", "time_format", "start") if k in options}
    if layout:
        options["layout"] = InputLayout(**layout)
    holder = {}
    summary = replay(config or Config(), ReplayOptions(path=path, **options),
                     producer_factory=lambda d, t: _make(d, t, producer or {}, holder))
    return summary, holder["producer"]


def _make(deliveries, topics, producer_options, holder):
    holder["producer"] = FakeProducer(deliveries, topics, **producer_options)
    return holder["producer"]


def decode(sent, topic=None):
    return [json.loads(v) for t, _, v in sent if topic is None or t == topic]


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_durations():
    assert parse_duration("7d") == dt.timedelta(days=7)
    assert parse_duration(" 12h ") == dt.timedelta(hours=12)
    assert parse_duration("30m") == dt.timedelta(minutes=30)
    assert parse_duration("90s") == dt.timedelta(seconds=90)
    assert parse_duration("1.5") == dt.timedelta(days=1.5)
    assert parse_duration(0) == dt.timedelta(0)
    with pytest.raises(BadInputError):
        parse_duration("a week")


# --- the generator's layout end to end ---------------------------------------------------------------------
def test_generator_file_every_transaction_once_with_contract_json(generated):
    frame, path = generated
    summary, producer = run_replay(path)
    assert summary.read == summary.transactions == len(frame) and summary.rejected == 0
    assert summary.labels == len(frame) and summary.labels_pending == 0
    assert summary.produced == summary.delivered == 2 * len(frame) and summary.failed == 0
    assert summary.preset == "generator" and summary.time_format == "iso"
    assert summary.rejects_file is None and not Path(str(path) + ".rejects.csv").exists()

    transactions = [(k, json.loads(v)) for t, k, v in producer.sent if t == TX]
    assert [e[c.TRANSACTION_ID] for _, e in transactions] == [str(i) for i in frame[c.TRANSACTION_ID]]
    for (key, event), row in zip(transactions, frame.itertuples(index=False)):
        assert c.validate_transaction(event) == []
        assert key == event[c.CUSTOMER_ID] == str(row.customer_id)
        expected = c.transaction_event(transaction_id=row.transaction_id, tx_datetime=row.tx_datetime,
                                       customer_id=row.customer_id, terminal_id=row.terminal_id,
                                       amount=row.amount)
        assert event == expected


def test_labels_are_delayed_and_interleaved_in_event_time(generated):
    frame, path = generated
    summary, producer = run_replay(path, label_delay=dt.timedelta(days=2))
    fraud = dict(zip(frame[c.TRANSACTION_ID].astype(str), frame[c.IS_FRAUD]))
    event_times = []
    labels = {}
    for topic, key, value in producer.sent:
        event = json.loads(value)
        if topic == LABELS:
            assert c.validate_label(event) == []
            assert key == event[c.CUSTOMER_ID]
            labelled = c.parse_time(event[c.LABELLED_AT])
            assert labelled - c.parse_time(event[c.TX_DATETIME]) == dt.timedelta(days=2)
            assert event[c.IS_FRAUD] == fraud[event[c.TRANSACTION_ID]]
            labels[event[c.TRANSACTION_ID]] = event
            event_times.append(labelled)
        else:
            event_times.append(c.parse_time(event[c.TX_DATETIME]))
    assert len(labels) == len(frame)
    # one stream in event-time order: each label sits before the first transaction at or after its time
    assert all(a <= b for a, b in zip(event_times, event_times[1:]))
    # labels really are spread among the transactions, not all at the end
    kinds = [t for t, _, _ in producer.sent]
    last_tx = max(i for i, t in enumerate(kinds) if t == TX)
    assert sum(1 for t in kinds[:last_tx] if t == LABELS) > len(frame) / 2


def test_no_labels_and_files_without_a_label_column(generated, tmp_path):
    frame, path = generated
    summary, producer = run_replay(path, labels=False)
    assert summary.labels == 0 and summary.topics["labels"] is None
    assert {t for t, _, _ in producer.sent} == {TX}
    unlabelled = tmp_path / "unlabelled.csv"
    frame.drop(columns=[c.IS_FRAUD]).assign(
        tx_datetime=frame[c.TX_DATETIME].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(unlabelled, index=False)
    summary, producer = run_replay(unlabelled)
    assert summary.labels == 0 and summary.transactions == len(frame)


def test_parquet_gives_the_same_events_as_csv(generated, tmp_path):
    frame, path = generated
    parquet = tmp_path / "transactions.parquet"
    write_transactions(frame, parquet)
    _, from_csv = run_replay(path)
    summary, from_parquet = run_replay(parquet)
    assert summary.format == "parquet"
    assert [(t, k, json.loads(v)) for t, k, v in from_parquet.sent] == \
           [(t, k, json.loads(v)) for t, k, v in from_csv.sent]


def test_gzipped_csv(generated, tmp_path):
    import gzip

    frame, path = generated
    gz = tmp_path / "transactions.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    summary, producer = run_replay(gz, labels=False)
    assert summary.transactions == len(frame)


def test_skip_and_limit_keep_ids_and_count_rows(generated):
    frame, path = generated
    summary, producer = run_replay(path, skip=100, limit=250, labels=False)
    ids = [e[c.TRANSACTION_ID] for e in decode(producer.sent)]
    assert ids == [str(i) for i in range(100, 350)]
    assert summary.read == 250 and summary.skipped == 100
    summary, producer = run_replay(path, skip=len(frame) + 5)
    assert summary.read == 0 and producer.sent == []


# --- other layouts ---------------------------------------------------------------------------------------
def test_ulb_layout(tmp_path):
    rng = np.random.default_rng(0)
    rows = 50
    frame = pd.DataFrame({"Time": np.sort(rng.integers(0, 172_800, rows)).astype(float)})
    for i in range(1, 29):
        frame[f"V{i}"] = rng.normal(size=rows)
    frame["Amount"] = rng.uniform(0, 500, rows).round(2)
    frame["Class"] = (rng.uniform(size=rows) < 0.2).astype(int)
    path = tmp_path / "creditcard.csv"
    frame.to_csv(path, index=False)
    summary, producer = run_replay(path, start="2013-09-01T00:00:00Z", label_delay=dt.timedelta(hours=1))
    assert summary.preset == "ulb" and summary.extra_columns == [f"V{i}" for i in range(1, 29)]
    events = decode(producer.sent, TX)
    assert len(events) == rows
    origin = dt.datetime(2013, 9, 1, tzinfo=UTC)
    for i, (event, row) in enumerate(zip(events, frame.itertuples(index=False))):
        assert c.validate_transaction(event) == []
        assert event[c.TRANSACTION_ID] == event[c.CUSTOMER_ID] == event[c.TERMINAL_ID] == str(i)
        assert c.parse_time(event[c.TX_DATETIME]) == origin + dt.timedelta(seconds=row.Time)
        assert event[c.AMOUNT] == pytest.approx(row.Amount)
        assert event[c.EXTRA]["V1"] == pytest.approx(row.V1) and len(event[c.EXTRA]) == 28
    keys = [k for t, k, _ in producer.sent if t == TX]
    assert keys == [str(i) for i in range(rows)]
    assert [e[c.IS_FRAUD] for e in sorted(decode(producer.sent, LABELS), key=lambda e: int(e[c.TRANSACTION_ID]))] \
        == frame["Class"].tolist()


def test_sparkov_layout(tmp_path):
    path = write_csv(tmp_path / "fraudTrain.csv", (
        ",trans_date_trans_time,cc_num,merchant,category,amt,first,zip,lat,trans_num,unix_time,is_fraud\n"
        '0,2019-01-01 00:00:18,2703186189652095,"fraud_Rippin, Kub and Mann",misc_net,4.97,Jennifer,28654,36.0788,'
        "0b242abb623afc578575680df30655b9,1325376018,0\n"
        '1,2019-01-01 00:00:44,630423337322,"fraud_Heller, Gutmann and Zieme",grocery_pos,107.23,Stephanie,'
        "99160,48.8878,1f76529f8574734946361c461b024d99,1325376044,1\n"
    ))
    summary, producer = run_replay(path)
    assert summary.preset == "sparkov"
    assert summary.extra_columns == ["zip", "lat", "unix_time"]
    assert set(summary.ignored_columns) == {"", "category", "first"}
    first, second = decode(producer.sent, TX)
    assert first == {
        c.SCHEMA_VERSION_FIELD: 1, c.TRANSACTION_ID: "0b242abb623afc578575680df30655b9",
        c.TX_DATETIME: "2019-01-01T00:00:18Z", c.CUSTOMER_ID: "2703186189652095",
        c.TERMINAL_ID: "fraud_Rippin, Kub and Mann", c.AMOUNT: 4.97,
        c.EXTRA: {"zip": 28654, "lat": 36.0788, "unix_time": 1325376018},
    }
    assert [k for t, k, _ in producer.sent if t == TX] == ["2703186189652095", "630423337322"]
    assert second[c.TRANSACTION_ID] == "1f76529f8574734946361c461b024d99"


@pytest.mark.parametrize("values, time_format, expected", [
    (["1522540800", "1522540801.5"], "auto", ["2018-04-01T00:00:00Z", "2018-04-01T00:00:01.500000Z"]),
    (["1522540800000", "1522540800250"], "auto", ["2018-04-01T00:00:00Z", "2018-04-01T00:00:00.250000Z"]),
    (["1522540800", "1522540801"], "epoch_ms", ["1970-01-18T14:55:40.800000Z", "1970-01-18T14:55:40.801000Z"]),
    (["2018-04-01T02:00:00+02:00", "2018-04-01 00:00:01"], "auto",
     ["2018-04-01T00:00:00Z", "2018-04-01T00:00:01Z"]),
    (["2018-04-01", " 2018-04-01T00:00:00.123Z "], "iso", ["2018-04-01T00:00:00Z", "2018-04-01T00:00:00.123000Z"]),
])
def test_time_formats(tmp_path, values, time_format, expected):
    lines = "".join(f"{i},{v},1,2,3.5\n" for i, v in enumerate(values))
    path = write_csv(tmp_path / "t.csv", "transaction_id,tx_datetime,customer_id,terminal_id,amount\n" + lines)
    summary, producer = run_replay(path, time_format=time_format)
    assert summary.rejected == 0, Path(summary.rejects_file).read_text()
    assert [e[c.TX_DATETIME] for e in decode(producer.sent)] == expected


def test_offsets_from_a_start(tmp_path):
    path = write_csv(tmp_path / "t.csv", "transaction_id,tx_datetime,customer_id,terminal_id,amount\n"
                                         "a,0,1,2,3\nb,3600.25,1,2,3\n")
    summary, producer = run_replay(path, start="2020-02-29T23:00:00Z")
    assert summary.time_format == "offset"
    assert [e[c.TX_DATETIME] for e in decode(producer.sent)] == ["2020-02-29T23:00:00Z",
                                                                "2020-03-01T00:00:00.250000Z"]


def test_ids_needing_json_escapes(tmp_path):
    path = write_csv(tmp_path / "t.csv", 'transaction_id,tx_datetime,customer_id,terminal_id,amount\n'
                                         '"a""b",2018-04-01T00:00:00Z,c\\1,"tab\there",1\n')
    summary, producer = run_replay(path)
    (topic, key, value), = producer.sent
    event = json.loads(value)
    assert event[c.TRANSACTION_ID] == 'a"b' and event[c.CUSTOMER_ID] == "c\\1" and key == "c\\1"
    assert event[c.TERMINAL_ID] == "tab\there"


def test_labels_as_true_false(tmp_path):
    path = write_csv(tmp_path / "t.csv", "transaction_id,tx_datetime,customer_id,terminal_id,amount,is_fraud\n"
                                         "1,2018-04-01T00:00:00Z,1,2,3,True\n2,2018-04-01T00:00:01Z,1,2,3, false\n"
                                         "3,2018-04-01T00:00:02Z,1,2,3,maybe\n")
    summary, producer = run_replay(path, label_delay=dt.timedelta(0))
    assert [e[c.IS_FRAUD] for e in decode(producer.sent, LABELS)] == [1, 0]
    assert summary.rejected == 1


def test_extra_numeric_columns_pass_through_and_empty_is_null(tmp_path):
    path = write_csv(tmp_path / "t.csv", "transaction_id,tx_datetime,customer_id,terminal_id,amount,score,note\n"
                                         "1,2018-04-01T00:00:00Z,1,2,3,0.5,hello\n"
                                         "2,2018-04-01T00:00:01Z,1,2,3,,world\n")
    summary, producer = run_replay(path)
    assert summary.extra_columns == ["score"] and summary.ignored_columns == ["note"]
    assert [e[c.EXTRA] for e in decode(producer.sent)] == [{"score": 0.5}, {"score": None}]


# --- rejects ---------------------------------------------------------------------------------------------
BAD_FILE = (
    "transaction_id,tx_datetime,customer_id,terminal_id,amount,is_fraud\n"  # line 1
    "1,2018-04-01T00:00:00Z,1,2,10.5,0\n"  # 2 ok
    "2,2018-04-01T00:00:01Z,,2,10.5,0\n"  # 3 missing customer_id
    "3,2018-04-01T00:00:02Z,1,2,ten,0\n"  # 4 non-numeric amount
    "4,yesterday,1,2,10.5,0\n"  # 5 unparseable timestamp
    "5,2018-04-01T00:00:04Z,1,2\n"  # 6 wrong column count (too few)
    '6,2018-04-01T00:00:05Z,1,"multi\nline",10.5,1\n'  # 7-8 ok, a quoted newline
    "7,2018-04-01T00:00:06Z,1,2,10.5,0,extra\n"  # 9 wrong column count (too many)
    "\n"  # 10 empty line
    "8,2018-04-01T00:00:07Z,1,2,10.5,2\n"  # 11 label not 0/1
    "9,2018-04-01T00:00:08Z,1,2,,0\n"  # 12 missing amount
    "10,2018-04-01T00:00:09Z,1,2,inf,0\n"  # 13 non-numeric amount
    "11,2018-04-01T00:00:10Z,1,2,10.5,1\n"  # 14 ok
)
EXPECTED_REJECTS = [
    (3, "missing field customer_id"),
    (4, "non-numeric amount 'ten'"),
    (5, "unparseable timestamp 'yesterday'"),
    (6, "wrong column count: 4 instead of 6"),
    (9, "wrong column count: 7 instead of 6"),
    (10, "missing field transaction_id"),
    (11, "label '2' is not 0 or 1"),
    (12, "missing field amount"),
    (13, "non-numeric amount 'inf'"),
]


def read_rejects(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_bad_rows_go_to_the_rejects_file_with_line_numbers(tmp_path):
    path = write_csv(tmp_path / "bad.csv", BAD_FILE)
    summary, producer = run_replay(path)
    rows = read_rejects(summary.rejects_file)
    assert summary.rejects_file == str(tmp_path / "bad.csv.rejects.csv")
    assert [int(r["line"]) for r in rows] == [line for line, _ in EXPECTED_REJECTS]
    for row, (line, reason) in zip(rows, EXPECTED_REJECTS):
        assert row["reason"].startswith(reason), (line, row["reason"])
    assert rows[3]["content"] == "5,2018-04-01T00:00:04Z,1,2"
    # counts add up
    assert summary.read == 12 and summary.rejected == len(EXPECTED_REJECTS) == len(rows)
    assert summary.transactions == summary.read - summary.rejected == 3
    assert [e[c.TRANSACTION_ID] for e in decode(producer.sent, TX)] == ["1", "6", "11"]
    assert decode(producer.sent, TX)[1][c.TERMINAL_ID] == "multi\nline"


def test_bytes_that_are_not_utf8_reject_the_row_not_the_file(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"transaction_id,tx_datetime,customer_id,terminal_id,amount\n"
                     b"1,2018-04-01T00:00:00Z,1,caf\xe9,3\n"
                     b"2,2018-04-01T00:00:01Z,1,2,3\n")
    summary, producer = run_replay(path)
    (reject,) = read_rejects(summary.rejects_file)
    assert reject["line"] == "2" and reject["reason"] == "not UTF-8 text in column 'terminal_id'"
    assert [e[c.TRANSACTION_ID] for e in decode(producer.sent)] == ["2"]


def test_a_row_with_several_problems_lists_them_all(tmp_path):
    path = write_csv(tmp_path / "bad.csv", "transaction_id,tx_datetime,customer_id,terminal_id,amount\n"
                                           "1,never,,2,abc\n")
    summary, _ = run_replay(path)
    reason = read_rejects(summary.rejects_file)[0]["reason"]
    assert "missing field customer_id" in reason and "non-numeric amount 'abc'" in reason \
        and "unparseable timestamp 'never'" in reason


def test_rejects_respect_skip_and_limit_and_stale_files_go(tmp_path):
    path = write_csv(tmp_path / "bad.csv", BAD_FILE)
    stale = tmp_path / "bad.csv.rejects.csv"
    stale.write_text("old\n")
    summary, _ = run_replay(path, skip=3, limit=4)  # data rows 3..6 = lines 5, 6, 7-8, 9
    assert [int(r["line"]) for r in read_rejects(summary.rejects_file)] == [5, 6, 9]
    assert summary.read == 4 and summary.rejected == 3 and summary.transactions == 1
    summary, _ = run_replay(path, limit=1)
    assert summary.rejected == 0 and summary.rejects_file is None and not stale.exists()


@pytest.mark.parametrize("cuts", [(1,), (2, 3, 5), (1, 2, 3, 4, 5, 6, 7, 8)])
def test_the_first_chunk_in_pieces_changes_nothing(tmp_path, monkeypatch, cuts):
    """The first chunk goes out in pieces (sending starts early): same events, rejects, lines and counts."""
    import fraudctl.data.replay.core as replay_module  # iter_outgoing reads FIRST_PIECES there

    from fraudctl.data.replay import encoded_events

    path = write_csv(tmp_path / "bad.csv", BAD_FILE)
    monkeypatch.setattr(replay_module, "FIRST_PIECES", ())
    whole, whole_producer = run_replay(path)
    whole_rejects = read_rejects(whole.rejects_file)
    whole_chunks = len(list(encoded_events(ReplayOptions(path=path))))
    monkeypatch.setattr(replay_module, "FIRST_PIECES", cuts)
    pieces, pieces_producer = run_replay(path)
    assert len(list(encoded_events(ReplayOptions(path=path)))) > whole_chunks  # the first chunk was cut
    assert pieces_producer.sent == whole_producer.sent
    assert read_rejects(pieces.rejects_file) == whole_rejects
    assert (pieces.read, pieces.rejected, pieces.transactions, pieces.labels, pieces.resume_skip) == \
        (whole.read, whole.rejected, whole.transactions, whole.labels, whole.resume_skip)


def test_the_first_chunk_in_pieces_keeps_labels_interleaved(generated, monkeypatch):
    import fraudctl.data.replay.core as replay_module  # iter_outgoing reads FIRST_PIECES there

    _, path = generated
    monkeypatch.setattr(replay_module, "FIRST_PIECES", ())
    whole, whole_producer = run_replay(path)
    monkeypatch.setattr(replay_module, "FIRST_PIECES", (7, 100, 1_000))
    pieces, pieces_producer = run_replay(path)
    assert whole.labels > 0 and pieces_producer.sent == whole_producer.sent
    assert (pieces.transactions, pieces.labels, pieces.labels_pending) == \
        (whole.transactions, whole.labels, whole.labels_pending)


def test_pass_through_columns_are_judged_on_the_whole_first_chunk(tmp_path, monkeypatch):
    import fraudctl.data.replay.core as replay_module  # iter_outgoing reads FIRST_PIECES there

    monkeypatch.setattr(replay_module, "FIRST_PIECES", (1,))
    path = write_csv(tmp_path / "t.csv", "transaction_id,tx_datetime,customer_id,terminal_id,amount,note\n"
                                         "1,2018-04-01T00:00:00Z,1,2,3,5\n"
                                         "2,2018-04-01T00:00:01Z,1,2,3,hello\n")
    summary, producer = run_replay(path)
    assert summary.extra_columns == [] and summary.ignored_columns == ["note"] and summary.rejected == 0
    assert len(producer.sent) == 2


def test_byte_scans_find_bytes_at_either_end_of_the_range():
    import pyarrow as pa

    from fraudctl.data.replay.arrow import JSON_ESCAPE, MAY_NEED_TRIM, NEWLINE, bytes_any

    assert not bytes_any(pa.array(["123", "456"]), MAY_NEED_TRIM)
    assert bytes_any(pa.array(["123", "45 6"]), MAY_NEED_TRIM)
    assert bytes_any(pa.array(["123", "café"]), MAY_NEED_TRIM)
    assert not bytes_any(pa.array(["a b", "c:d"]), NEWLINE)
    assert bytes_any(pa.array(["a b", "c\nd"]), NEWLINE)
    assert bytes_any(pa.array(['say "hi"', "x"]), JSON_ESCAPE) and bytes_any(pa.array(["a\\b"]), JSON_ESCAPE)
    assert not bytes_any(pa.array(["#$%", "[]~"]), JSON_ESCAPE)  # around the quote and backslash, not them
    assert not bytes_any(pa.array(["", ""]), NEWLINE) and not bytes_any(pa.array([], pa.string()), NEWLINE)
    assert not bytes_any(pa.array(["a\nb", "cd"]).slice(1), NEWLINE)  # only the slice's own bytes count


def test_rejects_path_can_be_chosen(tmp_path):
    path = write_csv(tmp_path / "bad.csv", BAD_FILE)
    target = tmp_path / "out" / "rejected.csv"
    summary, _ = run_replay(path, rejects_path=target)
    assert summary.rejects_file == str(target) and len(read_rejects(target)) == len(EXPECTED_REJECTS)


def test_parquet_rejects_carry_row_numbers(tmp_path):
    frame = pd.DataFrame({c.TRANSACTION_ID: [1, 2, 3], c.TX_DATETIME: ["2018-04-01T00:00:00Z", "x", None],
                          c.CUSTOMER_ID: [1, 2, 3], c.TERMINAL_ID: [1, 2, 3], c.AMOUNT: [1.0, 2.0, 3.0]})
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    summary, producer = run_replay(path)
    rows = read_rejects(summary.rejects_file)
    assert [(r["row"], r["reason"].split(" (")[0]) for r in rows] == [
        ("2", "unparseable timestamp 'x'"), ("3", "missing field tx_datetime")]
    assert len(producer.sent) == 1


def test_max_errors_decides_the_outcome(tmp_path):
    path = write_csv(tmp_path / "bad.csv", BAD_FILE)
    summary, _ = run_replay(path)
    with pytest.raises(BadInputError, match="9 row\\(s\\) rejected") as caught:
        raise_for_outcome(summary, max_errors=0)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    raise_for_outcome(summary, max_errors=9)


def test_file_problems_fail_before_any_broker(tmp_path):
    def no_broker(*args):
        raise AssertionError("must not connect")

    with pytest.raises(NotFoundError):
        replay(Config(), ReplayOptions(path=tmp_path / "missing.csv"), producer_factory=no_broker)
    empty = write_csv(tmp_path / "empty.csv", "")
    with pytest.raises(BadInputError, match="empty"):
        replay(Config(), ReplayOptions(path=empty), producer_factory=no_broker)
    other = write_csv(tmp_path / "data.json", "{}")
    with pytest.raises(BadInputError, match="format"):
        replay(Config(), ReplayOptions(path=other), producer_factory=no_broker)
    with pytest.raises(BadInputError, match="not both"):
        ReplayOptions(path=other, rate=1, speedup=2)


# --- delivery, pacing, interruption ----------------------------------------------------------------------
@pytest.mark.parametrize("reports", ["errors", "all"])
def test_failed_deliveries_are_counted_and_fail_the_run(generated, reports):
    frame, path = generated
    config = Config(replay={"delivery_reports": reports})
    summary, _ = run_replay(path, config, labels=False,
                            producer={"fail_every": 10, "only_errors": reports == "errors"})
    assert summary.failed == len(frame) // 10
    assert summary.delivered + summary.failed == summary.produced == len(frame)
    assert summary.first_failure.startswith("_MSG_TIMED_OUT")
    with pytest.raises(UnavailableError, match="not delivered"):
        raise_for_outcome(summary, max_errors=0)


@pytest.mark.parametrize("reports", ["errors", "all"])
def test_events_without_a_report_are_unconfirmed_not_delivered(generated, reports, monkeypatch):
    monkeypatch.setattr("fraudctl.data.replay.core.DRAIN_GRACE_SECONDS", 0.1)  # read by replay()
    frame, path = generated
    config = Config(replay={"delivery_reports": reports, "delivery_timeout": 0.1})
    summary, _ = run_replay(path, config, labels=False,
                            producer={"stuck_from": 1000, "fail_every": 100, "only_errors": reports == "errors"})
    assert summary.produced == len(frame)
    assert summary.failed == 10 and summary.unconfirmed == len(frame) - 1000
    assert summary.delivered == 990
    with pytest.raises(UnavailableError, match=f"{len(frame) - 1000 + 10:,} of {len(frame):,} events"):
        raise_for_outcome(summary, max_errors=0)


def test_a_full_local_queue_waits_and_loses_nothing(generated):
    frame, path = generated
    summary, producer = run_replay(path, labels=False, producer={"queue_limit": 1000})
    assert [e[c.TRANSACTION_ID] for e in decode(producer.sent)] == [str(i) for i in range(len(frame))]
    assert summary.delivered == len(frame)


def test_rate_paces_transactions(tmp_path):
    lines = "".join(f"{i},2018-04-01T00:00:{i:02d}Z,1,2,3\n" for i in range(40))
    path = write_csv(tmp_path / "t.csv", "transaction_id,tx_datetime,customer_id,terminal_id,amount\n" + lines)
    summary, producer = run_replay(path, rate=100)
    span = producer.times[-1] - producer.times[0]
    assert 0.35 <= span < 2.0  # 40 events at 100/s: the last is due after 0.39 s
    assert summary.transactions == 40


def test_pacing_waits_whole_milliseconds(tmp_path):
    # librdkafka's poll waits in whole milliseconds: a wait for less is none, and the pacing loop then spun
    # a core until the next event was due (a replay at 1 000/s took 100 % of a CPU).
    lines = "".join(f"{i},2018-04-01T00:00:{i % 60:02d}Z,1,2,3\n" for i in range(300))
    path = write_csv(tmp_path / "t.csv", "transaction_id,tx_datetime,customer_id,terminal_id,amount\n" + lines)
    summary, producer = run_replay(path, rate=3000)
    waits = [t for t in producer.poll_timeouts if t > 0]
    assert waits and min(waits) >= 0.001
    assert summary.transactions == 300


def test_speedup_paces_event_time_labels_included(tmp_path):
    lines = "".join(f"{i},2018-04-01T00:00:{2 * i:02d}Z,1,2,3,0\n" for i in range(10))  # 18 s of event time
    path = write_csv(tmp_path / "t.csv", "transaction_id,tx_datetime,customer_id,terminal_id,amount,is_fraud\n"
                                         + lines)
    summary, producer = run_replay(path, speedup=40, label_delay=dt.timedelta(seconds=10))
    times = dict(zip(((t, json.loads(v)[c.TRANSACTION_ID]) for t, _, v in producer.sent), producer.times))
    start = times[(TX, "0")]
    assert 0.4 <= times[(TX, "9")] - start < 1.5  # 18 s / 40
    assert 0.6 <= times[(LABELS, "9")] - start < 1.7  # (18 + 10) s / 40: the tail of labels is paced too
    assert times[(LABELS, "0")] - start >= 0.2  # 10 s / 40


def test_interrupt_stops_reading_and_delivers_what_was_sent(generated):
    frame, path = generated
    interrupt = threading.Event()
    seen = []

    def on_progress(progress):
        seen.append(progress)
        if progress.produced >= 2000:
            interrupt.set()

    holder = {}
    summary = replay(Config(), ReplayOptions(path=path, rate=5000), on_progress=on_progress, interrupt=interrupt,
                     producer_factory=lambda d, t: _make(d, t, {}, holder))
    assert summary.interrupted
    assert 2000 <= summary.produced < 2 * len(frame)
    assert summary.delivered == summary.produced == len(holder["producer"].sent)
    assert summary.transactions + summary.labels == summary.produced
    assert seen[-1].delivered == summary.delivered
    # every row before resume_skip was sent, none after: --skip resume_skip carries on
    sent_ids = [json.loads(v)[c.TRANSACTION_ID] for t, _, v in holder["producer"].sent if t == TX]
    assert sent_ids == [str(i) for i in range(summary.resume_skip)]


def test_summary_is_json_ready(generated):
    _, path = generated
    summary, _ = run_replay(path, limit=10)
    data = json.loads(json.dumps(summary.as_dict()))
    for key in ("read", "produced", "delivered", "failed", "rejected", "wall_seconds", "events_per_second"):
        assert key in data


# --- the command line ------------------------------------------------------------------------------------
@pytest.fixture
def cli_config(tmp_path, monkeypatch):
    """A config and a fake broker behind `fraudctl replay`."""
    path = tmp_path / "fraudctl.yaml"
    path.write_text(f"runtime: {{state_dir: {tmp_path / 'state'}}}\nkafka: {{port: 1}}\n")
    holder = {}
    # Connecting (begun by the command line, in a thread) opens the producer through this name.
    monkeypatch.setattr("fraudctl.data.replay.producer.open_producer",
                        lambda config, d: (_make(d, [TX, LABELS], {}, holder), {TX, LABELS}))
    return path, holder


def test_cli_json_summary_and_exit_code_for_rejects(cli_config, tmp_path, capsys):
    config, holder = cli_config
    path = write_csv(tmp_path / "bad.csv", BAD_FILE)
    code = run(["-c", str(config), "replay", str(path), "-o", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == ExitCode.BAD_INPUT
    assert out["rejected"] == 9 and out["transactions"] == 3 and out["delivered"] == out["produced"]
    assert run(["-c", str(config), "replay", str(path), "--max-errors", "9", "-o", "json"]) == ExitCode.OK


def test_cli_text_summary_and_options(cli_config, generated, capsys):
    config, holder = cli_config
    frame, path = generated
    code = run(["-c", str(config), "replay", str(path), "--limit", "100", "--label-delay", "12h",
                "--map", "fraud_scenario="])
    captured = capsys.readouterr()
    assert code == ExitCode.OK, captured.err
    assert "100 rows read, 0 rejected" in captured.out and "delivered 200, failed 0" in captured.out
    label = next(json.loads(v) for t, _, v in holder["producer"].sent if t == LABELS)
    assert c.parse_time(label[c.LABELLED_AT]) - c.parse_time(label[c.TX_DATETIME]) == dt.timedelta(hours=12)


def test_cli_config_section_sets_defaults(cli_config, tmp_path, capsys):
    config, holder = cli_config
    config.write_text(config.read_text() + "replay: {max_errors: 20, label_delay: 1h}\n"
                      "layout: {columns: {amt: amount}}\n")
    path = write_csv(tmp_path / "t.csv", "transaction_id,tx_datetime,customer_id,terminal_id,amt,is_fraud\n"
                                         "1,2018-04-01T00:00:00Z,1,2,3,1\n2,bad,1,2,3,0\n")
    assert run(["-c", str(config), "replay", str(path), "-o", "json"]) == ExitCode.OK
    out = json.loads(capsys.readouterr().out)
    assert out["mapping"]["amount"] == "amt" and out["rejected"] == 1
    label = next(json.loads(v) for t, _, v in holder["producer"].sent if t == LABELS)
    assert label[c.LABELLED_AT] == "2018-04-01T01:00:00Z"


def test_cli_usage_and_file_errors(cli_config, tmp_path):
    config, _ = cli_config
    assert run(["-c", str(config), "replay", str(tmp_path / "nope.csv")]) == ExitCode.NOT_FOUND
    path = write_csv(tmp_path / "t.csv", "a,b\n1,2\n")
    assert run(["-c", str(config), "replay", str(path), "--map", "amount=a"]) == ExitCode.USAGE
    assert run(["-c", str(config), "replay", str(path), "--rate", "5", "--speedup", "2"]) == ExitCode.USAGE
    assert run(["-c", str(config), "replay", str(path)]) == ExitCode.BAD_INPUT  # no mapping for the fields
    assert run(["-c", str(config), "replay", str(path), "--label-delay", "soon"]) == ExitCode.CONFIG


def test_options_from_config_take_the_replay_section_and_the_model_label_delay(tmp_path):
    path = tmp_path / "tx.csv"
    plain = ReplayOptions.from_config(Config(), path)
    assert plain.rejects_file == tmp_path / "tx.csv.rejects.csv" and plain.max_errors == 0
    assert plain.label_delay == dt.timedelta(days=7)  # model.label_delay_days
    config = Config(replay={"rejects_dir": str(tmp_path / "rejects"), "label_delay": "12h", "max_errors": 3},
                    model={"label_delay_days": 2})
    options = ReplayOptions.from_config(config, path, skip=5, rate=None)
    assert options.rejects_file == tmp_path / "rejects" / "tx.csv.rejects.csv"
    assert (options.label_delay, options.max_errors, options.skip) == (dt.timedelta(hours=12), 3, 5)
    assert ReplayOptions.from_config(config, path, rejects_path=tmp_path / "r.csv").rejects_file == tmp_path / "r.csv"
