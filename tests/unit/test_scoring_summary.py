"""`fraudctl scores summary`'s arithmetic on frames shaped like what it reads from Kafka: the first
publication of a transaction counts, labels join by id, precision and recall per model version, `--since`
on event time, latency from the transaction's Kafka timestamp (ingest_time) to the score's."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from fraudctl.operate.summary import figures, has_taken, records_left


def frames():
    scores = pd.DataFrame({
        "transaction_id": ["1", "2", "3", "4", "2"],  # "2" published twice: a re-run batch
        "decision": ["fraud", "fraud", "legit", "legit", "fraud"],
        "model_version": ["1", "1", "2", "2", "1"],
        "tx_datetime": ["2018-04-01T00:00:00Z", "2018-04-02T00:00:00Z", "2018-04-03T00:00:00Z",
                        "2018-04-04T00:00:00Z", "2018-04-02T00:00:00Z"],
        "ingest_time": ["2026-12-01T10:00:00Z", "2026-12-01T10:00:01Z", "2026-12-01T10:00:02Z",
                        "2026-12-01T10:00:03Z", "2026-12-01T10:00:01Z"],
        "kafka_ms": [_ms("2026-12-01T10:00:00.5Z"), _ms("2026-12-01T10:00:02Z"), _ms("2026-12-01T10:00:02.25Z"),
                     _ms("2026-12-01T10:00:03.5Z"), _ms("2026-12-01T10:00:09Z")],
    })
    labels = pd.DataFrame({"transaction_id": ["1", "2", "3"], "is_fraud": [0, 1, 1]})  # "4": not arrived yet
    return scores, labels


def _ms(text: str) -> int:
    return int(pd.Timestamp(text).value // 1_000_000)


def test_precision_recall_duplicates_and_latency():
    result = figures(*frames())
    assert result["scored"] == 4 and result["duplicate_scores"] == 1
    assert (result["alerts"], result["labelled"], result["frauds"], result["true_alerts"]) == (2, 3, 2, 1)
    assert result["precision"] == 0.5 and result["recall"] == 0.5
    # the first publication of "2" (1 s after its transaction), not the re-run's (8 s)
    assert result["latency_seconds"]["max"] == 1.0 and result["latency_seconds"]["p50"] == 0.5
    assert result["model_versions"]["1"]["precision"] == 0.5 and result["model_versions"]["2"]["alerts"] == 0
    assert result["model_versions"]["2"]["recall"] == 0.0


def test_since_keeps_later_event_times_only_and_no_label_means_no_figure():
    result = figures(*frames(), since=dt.datetime(2018, 4, 4))
    assert result["scored"] == 1 and result["labelled"] == 0
    assert result["precision"] is None and result["recall"] is None


def test_a_record_that_is_not_the_expected_json_is_named_not_skipped(monkeypatch):
    import pytest

    from fraudctl.config import Config
    from fraudctl.errors import BadInputError
    from fraudctl.operate import summary

    class Message:
        def __init__(self, offset, value):
            self._offset, self._value = offset, value

        def value(self):
            return self._value

        def partition(self):
            return 0

        def offset(self):
            return self._offset

        def timestamp(self):
            return (1, 0)

    batch = [Message(0, b'{"transaction_id": "1", "is_fraud": 0}'), Message(1, b"not json")]
    monkeypatch.setattr("fraudctl.clients.kafka.read_records", lambda *args, **kwargs: iter([batch]))
    with pytest.raises(BadInputError, match="labels: a record between partition 0 offset 0 and partition 0 offset 1"):
        summary._frame(Config(), "labels", {"transaction_id": "string", "is_fraud": "int64"}, timeout=1)


def test_records_left_counts_what_the_scorer_has_not_processed_per_topic():
    wanted = {"transactions": {0: 10, 1: 5}, "labels": {0: 3}}
    status = {"offsets": {"transactions": {"0": 10, "1": 2}}}
    assert records_left(status, wanted) == {"transactions": 3, "labels": 3}
    status = {"offsets": {"transactions": {"0": 12, "1": 5}, "labels": {"0": 3}}}
    assert records_left(status, wanted) == {"transactions": 0, "labels": 0}
    assert records_left({}, wanted) == {"transactions": 15, "labels": 3}  # no batch yet


def test_the_champion_is_taken_once_in_use_or_staged_and_a_refusal_is_an_error():
    import pytest

    from fraudctl.errors import ContractError

    assert not has_taken({"model": {"version": "1", "staged": None, "refused": {}}}, "2")
    assert has_taken({"model": {"version": "1", "staged": "2", "refused": {}}}, "2")
    assert has_taken({"model": {"version": "2", "staged": None}}, "2")
    assert not has_taken({}, "2")  # the scorer still starting: no model yet
    with pytest.raises(ContractError, match="refused model version 2: trained on other features"):
        has_taken({"model": {"version": "1", "refused": {"2": "trained on other features"}}}, "2")
