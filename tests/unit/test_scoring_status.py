"""The scorer's status: lag per partition from a Spark query progress, the status file round trip."""

from __future__ import annotations

import json
import time

import pytest

from fraudctl.errors import UnavailableError
from fraudctl.stream.status import describe_health, lag_per_partition, read_status, write_status


def progress(latest, end) -> dict:
    """What `query.lastProgress` holds for a Kafka source (offsets as JSON strings, as Spark gives them)."""
    return {
        "id": "6a1a1c3e-0c1c-4a47-9d37-1b0a8a3ad2f1", "runId": "0b7e5e4e-5a4a-4b6f-8a59-1c1b3c1d2e3f",
        "name": "fraudctl-scorer", "timestamp": "2026-12-01T10:00:00.000Z", "batchId": 12, "batchDuration": 140,
        "numInputRows": 500, "inputRowsPerSecond": 900.0, "processedRowsPerSecond": 3500.0,
        "durationMs": {"triggerExecution": 140}, "eventTime": {}, "stateOperators": [],
        "sources": [{
            "description": "KafkaV2[Subscribe[transactions,labels]]",
            "startOffset": json.dumps({"transactions": {"0": 900, "1": 800}, "labels": {"0": 40}}),
            "endOffset": None if end is None else json.dumps(end),
            "latestOffset": None if latest is None else json.dumps(latest),
            "numInputRows": 500, "inputRowsPerSecond": 900.0, "processedRowsPerSecond": 3500.0, "metrics": {},
        }],
        "sink": {"description": "ForeachBatchSink", "numOutputRows": -1, "metrics": {}},
        "observedMetrics": {},
    }


LATEST = {"transactions": {"0": 1500, "1": 800, "2": 30}, "labels": {"0": 90}}
END = {"transactions": {"0": 1000, "1": 800}, "labels": {"0": 90}}
EXPECTED = {"transactions": {"0": 500, "1": 0, "2": 30}, "labels": {"0": 0}}


def test_lag_per_partition_from_a_progress_dict():
    assert lag_per_partition(progress(LATEST, END)) == EXPECTED


def test_lag_from_offsets_already_decoded_and_never_negative():
    p = progress(None, None)
    p["sources"][0]["latestOffset"] = {"transactions": {"0": 10}}
    p["sources"][0]["endOffset"] = {"transactions": {"0": 12}}  # latest read before the batch ended
    assert lag_per_partition(p) == {"transactions": {"0": 0}}


def raw_latest(text):
    p = progress(None, END)
    p["sources"][0]["latestOffset"] = text
    return p


@pytest.mark.parametrize("p", [None, {}, {"sources": []}, progress(None, END), raw_latest("null"),
                               raw_latest("None"), raw_latest("not json")])
def test_no_progress_yet_is_no_lag(p):
    assert lag_per_partition(p) == {}


def test_lag_from_pysparks_own_progress_object():
    listener = pytest.importorskip("pyspark.sql.streaming.listener")
    real = listener.StreamingQueryProgress.fromJson(progress(LATEST, END))
    assert isinstance(real["sources"][0]["latestOffset"], str)
    assert lag_per_partition(real) == EXPECTED


def test_status_file_round_trip_and_health_line(tmp_path):
    assert read_status(tmp_path) is None
    with pytest.raises(UnavailableError, match="starting"):
        describe_health(tmp_path)
    write_status(tmp_path, {"state": "running", "model": {"version": "3"},
                            "counters": {"scored": 12345, "batches": 7}, "degraded": None})
    status = read_status(tmp_path)
    assert status["state"] == "running" and time.time() - status["updated_at"] < 60
    assert describe_health(tmp_path) == "model v3, 12,345 scored, 7 batches"
    write_status(tmp_path, {"state": "running", "model": {"version": "3"}, "counters": {},
                            "degraded": "model registry unreachable: down"})
    assert "DEGRADED: model registry unreachable" in describe_health(tmp_path)
    write_status(tmp_path, {"state": "waiting for a model"})
    with pytest.raises(UnavailableError, match="waiting for a model"):
        describe_health(tmp_path)
