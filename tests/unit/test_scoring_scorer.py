"""`Scorer.process`, one micro-batch end to end, with a real feature state and lake in temporary folders, a
publisher that records what it would send, and a model holder serving tiny deterministic models."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraudctl.contracts import (
    AMOUNT, CUSTOMER_ID, FEATURES, IS_FRAUD, LABELLED_AT, MODEL_VERSION, SCORE, SCORED_TIME, TERMINAL_ID,
    TRANSACTION_ID, TX_DATETIME, transaction_event,
)
from fraudctl.errors import UnavailableError
from fraudctl.features import DEFAULT_SPEC
from fraudctl.data.lake import LABELS, TRANSACTIONS, Lake
from fraudctl.stream.events import KAFKA_TIMESTAMP, KEY, OFFSET, PARTITION, REASON, TOPIC, VALUE
from fraudctl.stream.model import LoadedModel
from fraudctl.stream.scorer import Scorer
from fraudctl.stream.state import FeatureState

KAFKA_TIME = dt.datetime(2018, 5, 1, tzinfo=dt.timezone.utc)


class AmountModel:
    """P(fraud) grows with the amount; `k` tells versions apart."""

    def __init__(self, k: float):
        self.k = k

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        p = 1.0 - np.exp(-self.k * x[AMOUNT].to_numpy() / 100.0)
        return np.column_stack([1.0 - p, p])


class FakeHolder:
    def __init__(self):
        self.models = {v: LoadedModel("fraud-detector", v, AmountModel(k), threshold=0.5)
                       for v, k in (("1", 1.0), ("2", 3.0))}
        self.version = "1"
        self.pinned_versions: list[str] = []

    def for_batch(self) -> LoadedModel:
        return self.models[self.version]

    def pinned(self, version: str) -> LoadedModel:
        self.pinned_versions.append(version)
        return self.models[version]


class FakePublisher:
    def __init__(self, fail_flushes: int = 0):
        self.sent: list[dict] = []
        self.flushed = 0
        self.fail_flushes = fail_flushes

    def send(self, keys, values, alert, rejects) -> None:
        self.sent.append({"keys": list(keys), "values": list(values), "alert": np.asarray(alert).tolist(),
                          "rejects": rejects.copy()})

    def flush(self) -> None:
        if self.fail_flushes:
            self.fail_flushes -= 1
            raise UnavailableError("1 event(s) unacknowledged")
        self.flushed += 1


def tx(tid, when: str, customer="c1", terminal="t1", amount=10.0) -> bytes:
    stamp = dt.datetime.fromisoformat(when)
    return json.dumps(transaction_event(transaction_id=tid, tx_datetime=stamp, customer_id=customer,
                                        terminal_id=terminal, amount=amount)).encode()


def label(tid, when: str, is_fraud=1, customer="c1", terminal="t1") -> bytes:
    stamp = dt.datetime.fromisoformat(when)
    return json.dumps({"schema_version": 1, TRANSACTION_ID: tid, CUSTOMER_ID: customer, TERMINAL_ID: terminal,
                       TX_DATETIME: stamp.strftime("%Y-%m-%dT%H:%M:%SZ"), IS_FRAUD: is_fraud,
                       LABELLED_AT: (stamp + dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")}).encode()


def records(events: list[tuple[str, bytes | None]]) -> pa.Table:
    """events: (topic, value) in Kafka order."""
    n = len(events)
    return pa.table({
        TOPIC: pa.array([t for t, _ in events], pa.string()),
        PARTITION: pa.array([0] * n, pa.int32()),
        OFFSET: pa.array(range(n), pa.int64()),
        KAFKA_TIMESTAMP: pa.array([KAFKA_TIME + dt.timedelta(milliseconds=i) for i in range(n)],
                                  pa.timestamp("us", tz="UTC")),
        KEY: pa.array([b"c1"] * n, pa.binary()),
        VALUE: pa.array([v for _, v in events], pa.binary()),
    })


T, L = "transactions", "labels"


@pytest.fixture
def setup(tmp_path):
    def make(publisher: FakePublisher | None = None, holder: FakeHolder | None = None):
        publisher = publisher or FakePublisher()
        holder = holder or FakeHolder()
        scorer = Scorer(transactions_topic=T, labels_topic=L, state=FeatureState(tmp_path / "state", DEFAULT_SPEC),
                        models=holder, publisher=publisher, lake=Lake(str(tmp_path / "lake")))
        return scorer, publisher, holder

    return make


def lake_files(tmp_path: Path, table: str) -> list[str]:
    return sorted(str(p.relative_to(tmp_path / "lake" / table)) for p in (tmp_path / "lake" / table).rglob("*.parquet"))


def test_a_batch_is_scored_published_written_and_committed(setup, tmp_path):
    scorer, publisher, _ = setup()
    batch = records([
        (T, tx("a", "2018-04-01T10:00:00", amount=20.0)),
        (T, tx("b", "2018-04-01T09:00:00", amount=200.0)),
        (T, b'{"not": "an event"'),
        (L, label("z", "2018-03-20T10:00:00")),
        (L, b'{"schema_version": 2}'),
        (T, tx("c", "2018-04-02T01:00:00", customer="c2", amount=5.0)),
        (T, None),
    ])
    scorer.process(batch, 0)
    [sent] = publisher.sent
    assert publisher.flushed == 1
    assert sent["keys"] == ["b", "a", "c"]  # in event order
    events = {json.loads(v)[TRANSACTION_ID]: json.loads(v) for v in sent["values"]}
    assert events["a"][FEATURES]["customer_tx_count_1d"] == 2.0  # b came before a
    assert events["b"][SCORE] == pytest.approx(1 - np.exp(-2.0)) and events["b"][MODEL_VERSION] == "1"
    assert sent["alert"] == [True, False, False]
    # Dead letters from both topics, with their bytes and where they came from.
    rejects = sent["rejects"].sort_values(OFFSET)
    assert rejects[OFFSET].tolist() == [2, 4, 6] and rejects[TOPIC].tolist() == [T, L, T]
    assert rejects[VALUE].iloc[0] == b'{"not": "an event"' and "malformed JSON" in rejects[REASON].iloc[0]
    assert "schema_version is not 1" in rejects[REASON].iloc[1] and "empty record" in rejects[REASON].iloc[2]
    c = scorer.counters
    assert (c.batches, c.transactions, c.labels, c.scored, c.alerts, c.dead_letters, c.duplicates) == (1, 3, 1, 3, 1, 3, 0)
    assert c.last_batch_id == 0 and c.last_batch_rows == 7
    # Where the time went (the lake and the state's files are written aside, while the batch is scored).
    assert set(c.last_batch_phases_ms) == {"decode", "features", "score", "rules", "encode", "publish", "wait",
                                           "commit", "lake", "stage"}
    assert set(c.as_dict()["batch_phases_ms_p50"]) == set(c.last_batch_phases_ms)
    assert 0 < c.latency_ms["p50"] <= c.latency_ms["p99"] <= c.latency_ms["max"]  # Kafka time of 2018 -> now
    assert scorer.state.is_committed(0) and scorer.state.seen(pd.Series(["a", "b", "c"])).all()
    # The lake: one file per event day, named by the batch.
    assert lake_files(tmp_path, TRANSACTIONS) == ["event_date=2018-04-01/batch-000000000000.parquet",
                                                   "event_date=2018-04-02/batch-000000000000.parquet"]
    assert lake_files(tmp_path, LABELS) == ["event_date=2018-03-20/batch-000000000000.parquet"]
    day = pq.read_table(tmp_path / "lake" / TRANSACTIONS / "event_date=2018-04-01").to_pandas()
    assert sorted(day[TRANSACTION_ID]) == ["a", "b"] and set(day[AMOUNT]) == {20.0, 200.0}


def test_duplicates_are_counted_not_scored_again(setup):
    scorer, publisher, _ = setup()
    scorer.process(records([(T, tx("a", "2018-04-01T10:00:00")), (T, tx("b", "2018-04-01T11:00:00"))]), 0)
    scorer.process(records([
        (T, tx("b", "2018-04-01T11:00:00")),  # seen in an earlier batch
        (T, tx("c", "2018-04-01T12:00:00")),
        (T, tx("c", "2018-04-01T12:00:00")),  # twice in this batch
        (T, tx("d", "2018-04-01T13:00:00")),
    ]), 1)
    assert publisher.sent[1]["keys"] == ["c", "d"]
    features = {json.loads(v)[TRANSACTION_ID]: json.loads(v)[FEATURES] for v in publisher.sent[1]["values"]}
    assert features["c"]["customer_tx_count_1d"] == 3.0 and features["d"]["customer_tx_count_1d"] == 4.0
    assert scorer.counters.duplicates == 2 and scorer.counters.scored == 4
    assert len(scorer.state.history) == 4


def test_a_committed_batch_id_is_skipped(setup, tmp_path):
    scorer, publisher, _ = setup()
    batch = records([(T, tx("a", "2018-04-01T10:00:00")), (L, label("q", "2018-03-25T00:00:00"))])
    scorer.process(batch, 0)
    files = lake_files(tmp_path, TRANSACTIONS) + lake_files(tmp_path, LABELS)
    # Spark re-runs batch 0 after a restart (its output went out before the crash).
    restarted, publisher_after, _ = setup()
    restarted.process(batch, 0)
    assert publisher_after.sent == [] and publisher_after.flushed == 0
    assert restarted.counters.skipped_batches == 1 and restarted.counters.batches == 0
    assert lake_files(tmp_path, TRANSACTIONS) + lake_files(tmp_path, LABELS) == files
    scorer.process(batch, 0)  # the same in the running scorer
    assert len(publisher.sent) == 1 and scorer.counters.skipped_batches == 1


def test_a_rerun_after_a_crash_sends_the_same_bytes_with_the_same_model(setup):
    scorer, publisher, holder = setup()
    scorer.process(records([(T, tx("a", "2018-04-01T10:00:00"))]), 0)
    publisher.fail_flushes = 1
    batch = records([(T, tx("b", "2018-04-01T11:00:00", amount=80.0)), (L, label("a", "2018-04-01T10:00:00")),
                     (T, tx("c", "2018-04-01T12:00:00"))])
    with pytest.raises(UnavailableError):
        scorer.process(batch, 1)  # the output did not all get acknowledged: the query fails
    first_try = publisher.sent[1]
    assert not scorer.state.is_committed(1)
    # The champion moves before the driver comes back; the re-run must still match what may be out already.
    fresh = FakeHolder()
    fresh.version = "2"
    restarted, publisher_after, _ = setup(holder=fresh)
    assert not restarted.state.is_committed(1) and restarted.state.last_batch_id == 0
    restarted.process(batch, 1)
    assert fresh.pinned_versions == ["1"]
    assert publisher_after.sent[0]["values"] == first_try["values"]
    assert json.loads(first_try["values"][0])[SCORED_TIME].endswith("Z")
    # The next batch is new: the new champion and a new scored time.
    restarted.process(records([(T, tx("d", "2018-04-01T13:00:00"))]), 2)
    assert json.loads(publisher_after.sent[1]["values"][0])[MODEL_VERSION] == "2"
    assert fresh.pinned_versions == ["1"]


def test_a_rerun_batch_replaces_its_lake_files(setup, tmp_path, monkeypatch):
    scorer, _, _ = setup()
    batch = records([(T, tx("a", "2018-04-01T23:00:00")), (T, tx("b", "2018-04-02T01:00:00")),
                     (L, label("x", "2018-03-30T00:00:00"))])

    def crash(*args, **kwargs):
        raise OSError("the driver died before the commit")

    monkeypatch.setattr(scorer.state, "commit", crash)
    with pytest.raises(OSError):
        scorer.process(batch, 0)
    before = (lake_files(tmp_path, TRANSACTIONS), lake_files(tmp_path, LABELS))
    assert len(before[0]) == 2 and len(before[1]) == 1
    restarted, publisher, _ = setup()
    restarted.process(batch, 0)
    assert (lake_files(tmp_path, TRANSACTIONS), lake_files(tmp_path, LABELS)) == before
    lake = pq.read_table(tmp_path / "lake" / TRANSACTIONS).to_pandas()
    assert sorted(lake[TRANSACTION_ID]) == ["a", "b"]  # once each, not twice
    assert len(pq.read_table(tmp_path / "lake" / LABELS).to_pandas()) == 1
    assert not list((tmp_path / "lake").rglob("*.partial"))
    assert publisher.sent[0]["keys"] == ["a", "b"]


def test_an_empty_batch_and_a_batch_of_only_dead_letters(setup):
    scorer, publisher, _ = setup()
    scorer.process(records([]), 0)
    scorer.process(records([(T, b"garbage"), (L, b"[]")]), 1)
    assert [s["keys"] for s in publisher.sent] == [[], []]
    assert len(publisher.sent[1]["rejects"]) == 2 and scorer.counters.dead_letters == 2
    assert scorer.state.last_batch_id == 1
