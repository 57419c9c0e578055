"""Score events as published: valid JSON per transaction with every contract field and every feature, numbers
that read back as the computed ones, the decision by threshold, alerts; the contract's bulk time format."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from fraudctl.contracts import (
    DECISION, FEATURES, INGEST_TIME, MODEL_NAME, MODEL_VERSION, REASONS, RULES_SHADOW, SCHEMA_VERSION_FIELD, SCORE,
    SCORE_FIELDS_V2, SCORE_SCHEMA_VERSION, SCORED_TIME, THRESHOLD, TRANSACTION_ID, TX_DATETIME, format_time,
    format_times, parse_time,
)
from fraudctl.features import FEATURE_NAMES
from fraudctl.stream.events import KAFKA_TIMESTAMP
from fraudctl.stream.publish import FRAUD, LEGIT, score_events


def featured_batch(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # Values over many magnitudes, small ones included (shares, ages in days of a few seconds, tiny ratios).
    values = rng.lognormal(0, 6, size=(n, len(FEATURE_NAMES))) * rng.choice([0.0, 1.0], p=[0.1, 0.9],
                                                                              size=(n, len(FEATURE_NAMES)))
    frame = pd.DataFrame(values, columns=FEATURE_NAMES)
    frame.insert(0, TRANSACTION_ID, [f"tx-{i}" for i in range(n)])
    times = np.datetime64("2018-04-01T00:00:00", "ns") + np.arange(n) * np.timedelta64(1_250_000_000, "ns")
    frame.insert(1, TX_DATETIME, times)
    frame[KAFKA_TIMESTAMP] = (times + np.timedelta64(3_000_000, "ns")).astype("int64")
    return frame


def publish(frame: pd.DataFrame, scores: np.ndarray, threshold: float = 0.5):
    return score_events(frame, scores, threshold=threshold, model_name="fraud-detector", model_version="7",
                        scored_time="2018-04-02T10:00:00.123000Z")


def test_every_score_event_is_valid_json_with_every_field():
    frame = featured_batch(300)
    scores = np.random.default_rng(1).uniform(size=300)
    keys, values, alert = publish(frame, scores)
    assert keys == frame[TRANSACTION_ID].tolist() and len(values) == 300 and len(alert) == 300
    for i, value in enumerate(values):
        event = json.loads(value)
        assert set(event) == set(SCORE_FIELDS_V2) | {SCHEMA_VERSION_FIELD}
        assert event[SCHEMA_VERSION_FIELD] == SCORE_SCHEMA_VERSION
        assert event[RULES_SHADOW] == [] and event[REASONS] is None  # no rules, no reasons asked for
        assert event[TRANSACTION_ID] == keys[i]
        assert (event[MODEL_NAME], event[MODEL_VERSION]) == ("fraud-detector", "7")
        assert event[SCORED_TIME] == "2018-04-02T10:00:00.123000Z"
        assert list(event[FEATURES]) == FEATURE_NAMES
        assert event[THRESHOLD] == 0.5
    first = json.loads(values[1])
    assert first[TX_DATETIME] == "2018-04-01T00:00:01.250000Z"
    assert first[INGEST_TIME] == "2018-04-01T00:00:01.253000Z"
    assert parse_time(json.loads(values[4])[TX_DATETIME]) == dt.datetime(2018, 4, 1, 0, 0, 5, tzinfo=dt.timezone.utc)


def test_published_numbers_read_back_as_computed():
    frame = featured_batch(2000, seed=3)
    rng = np.random.default_rng(4)
    scores = rng.uniform(size=2000) ** 12  # confident legit scores are tiny: 1e-10 and below
    scores[:5] = [0.0, 1.0, 1e-300, 5e-324, 0.1 + 0.2]
    _, values, _ = publish(frame, scores)
    events = [json.loads(v) for v in values]
    published = np.array([[e[FEATURES][name] for name in FEATURE_NAMES] for e in events])
    np.testing.assert_allclose(published, frame[FEATURE_NAMES].to_numpy(), rtol=1e-15, atol=0)
    np.testing.assert_allclose([e[SCORE] for e in events], scores, rtol=1e-15, atol=0)
    assert scores.min() < 1e-9 and (frame[FEATURE_NAMES].to_numpy()[frame[FEATURE_NAMES].to_numpy() > 0] < 1e-4).any()


def test_decision_and_alerts_by_threshold():
    frame = featured_batch(6)
    scores = np.array([0.1, 0.3, 0.29999999999999993, 0.3000000000000001, 0.9, 0.0])
    _, values, alert = publish(frame, scores, threshold=0.3)
    assert alert.tolist() == [False, True, False, True, True, False]  # at the threshold is fraud
    decisions = [json.loads(v)[DECISION] for v in values]
    assert decisions == [LEGIT, FRAUD, LEGIT, FRAUD, FRAUD, LEGIT]
    assert all(json.loads(v)[THRESHOLD] == 0.3 for v in values)


def test_the_same_batch_encodes_to_the_same_bytes():
    # At-least-once delivery: a re-run batch sends identical content.
    frame = featured_batch(50)
    scores = np.random.default_rng(2).uniform(size=50)
    assert publish(frame, scores)[1] == publish(frame.copy(), scores.copy())[1]


def test_ids_needing_escapes_and_a_non_finite_score_stay_valid_json():
    frame = featured_batch(3)
    frame[TRANSACTION_ID] = ['quote"d', "back\\slash", "ünïcode\n"]
    _, values, alert = publish(frame, np.array([np.nan, 0.7, 0.2]))
    events = [json.loads(v) for v in values]
    assert [e[TRANSACTION_ID] for e in events] == ['quote"d', "back\\slash", "ünïcode\n"]
    assert events[0][SCORE] is None and events[0][DECISION] == LEGIT and alert.tolist() == [False, True, False]


def test_an_empty_batch_publishes_nothing():
    keys, values, alert = publish(featured_batch(0), np.zeros(0))
    assert keys == [] and values == [] and alert.shape == (0,)


@pytest.mark.parametrize("stamps", [
    ["2018-04-01T00:07:56", "2018-12-31T23:59:59", "1999-01-01T00:00:00"],
    ["2018-04-01T00:07:56.250", "2018-04-01T00:07:56", "2018-04-01T00:07:56.000001", "2018-04-01T23:59:59.999999"],
    [],
])
def test_format_times_equals_format_time_element_wise(stamps):
    values = np.array(stamps, dtype="datetime64[ns]")
    expected = [format_time(pd.Timestamp(v).to_pydatetime()) for v in values]
    assert format_times(values).tolist() == expected
    # Any resolution numpy hands over.
    assert format_times(values.astype("datetime64[us]")).tolist() == expected
