"""Score, alert and dead-letter events onto Kafka: encoded in bulk, produced idempotently, flushed before a
micro-batch counts as done (at-least-once: a re-run batch sends the same bytes again)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from fraudctl.contracts import (
    DECISION, FEATURES, INGEST_TIME, MODEL_NAME, MODEL_VERSION, REASONS, RULES_SHADOW, SCHEMA_VERSION_FIELD,
    SCORE, SCORE_SCHEMA_VERSION, SCORED_TIME, THRESHOLD, TRANSACTION_ID, TX_DATETIME, format_times,
)
from fraudctl.errors import UnavailableError
from fraudctl.features import FEATURE_NAMES
from fraudctl.stream.events import KAFKA_TIMESTAMP, KEY, OFFSET, PARTITION, REASON, TOPIC, VALUE

FRAUD, LEGIT = "fraud", "legit"
# Headers of a dead letter (its value and key are the original record's bytes).
DLQ_HEADERS = ("fraudctl.source.topic", "fraudctl.source.partition", "fraudctl.source.offset", "fraudctl.reason")


def score_events(featured: pd.DataFrame, scores: np.ndarray, *, threshold: float, model_name: str,
                 model_version: str, scored_time: str, alert: np.ndarray | None = None,
                 shadow: list[list[str]] | None = None,
                 reasons: dict[int, dict] | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """(keys, JSON values, is-alert mask) of the score events (version 2) of a batch, in its row order.

    `alert`: the decision after the rules (default: score >= threshold); `shadow`: per row, the shadow rules
    that matched; `reasons`: row position -> the reasons of an alerting row (fraudctl.stream.reasons)."""
    n = len(featured)
    if n == 0:
        return [], [], np.zeros(0, dtype=bool)
    scores = np.asarray(scores, dtype="float64")
    alert = scores >= threshold if alert is None else np.asarray(alert, dtype=bool)
    head = pd.DataFrame({
        SCHEMA_VERSION_FIELD: SCORE_SCHEMA_VERSION,
        TRANSACTION_ID: featured[TRANSACTION_ID].to_numpy(),
        DECISION: np.where(alert, FRAUD, LEGIT),
        MODEL_NAME: model_name,
        MODEL_VERSION: str(model_version),
        TX_DATETIME: format_times(featured[TX_DATETIME].to_numpy()),
        INGEST_TIME: format_times(featured[KAFKA_TIMESTAMP].to_numpy().astype("datetime64[ns]")),
        SCORED_TIME: scored_time,
    })
    heads = head.to_json(orient="records", lines=True).splitlines()
    # Numbers as Python's repr: the shortest text that reads back as the same double, so a published score
    # or feature equals the computed one exactly. (pandas' double_precision counts decimal places, not
    # significant digits: a score of 1.2e-9 came out 0.000000001234568, 1e-7 off.)
    numbers = '"%s":%%r,"%s":%r,"%s":{' % (SCORE, THRESHOLD, _finite(float(threshold)), FEATURES) \
        + ",".join('"%s":%%r' % name for name in FEATURE_NAMES) + '},"%s":%%s,"%s":%%s}' % (RULES_SHADOW, REASONS)
    columns = [_json_floats(scores)] + [_json_floats(featured[name].to_numpy(dtype="float64")) for name in FEATURE_NAMES]
    columns += [_json_lists(shadow, n), _json_reasons(reasons, n)]
    values = [f"{h[:-1]},{numbers % row}" for h, row in zip(heads, zip(*columns))]
    return list(head[TRANSACTION_ID]), values, alert


def _json_lists(lists: list[list[str]] | None, n: int) -> list[str]:
    if lists is None:
        return ["[]"] * n
    return [json.dumps(names, separators=(",", ":")) if names else "[]" for names in lists]


def _json_reasons(reasons: dict[int, dict] | None, n: int) -> list[str]:
    out = ["null"] * n
    for i, reason in (reasons or {}).items():
        out[i] = json.dumps(reason, separators=(",", ":"))
    return out


class _Null:
    def __repr__(self) -> str:
        return "null"


_NULL = _Null()


def _finite(value: float):
    return value if np.isfinite(value) else _NULL


def _json_floats(values: np.ndarray) -> list:
    """Python floats (their repr is JSON), with null where a value is not finite (JSON has no NaN)."""
    items = values.tolist()
    bad = ~np.isfinite(values)
    if bad.any():
        for i in np.flatnonzero(bad):
            items[i] = _NULL
    return items


class Publisher:
    def __init__(self, kafka_config, *, scores_topic: str, alerts_topic: str, dlq_topic: str, linger_ms: int,
                 flush_timeout: float):
        from confluent_kafka import Producer

        from fraudctl.clients.kafka import client_config

        self.topics = (scores_topic, alerts_topic, dlq_topic)
        self.flush_timeout = flush_timeout
        self._failures: list[str] = []
        self._producer = Producer(client_config(
            kafka_config, **{"enable.idempotence": True, "acks": "all", "linger.ms": linger_ms,
                             "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000}))

    def _report(self, error, message) -> None:
        if error is not None:
            self._failures.append(f"{message.topic()}: {error}")

    def send(self, keys: list[str], values: list[str], alert: np.ndarray, rejects: pd.DataFrame) -> None:
        scores_topic, alerts_topic, dlq_topic = self.topics
        produce, report = self._producer.produce, self._report
        for key, value in zip(keys, values):
            self._produce(produce, scores_topic, value, key, report)
        for i in np.flatnonzero(alert):
            self._produce(produce, alerts_topic, values[i], keys[i], report)
        for row in rejects.itertuples(index=False):
            headers = [(DLQ_HEADERS[0], str(getattr(row, TOPIC))), (DLQ_HEADERS[1], str(getattr(row, PARTITION))),
                       (DLQ_HEADERS[2], str(getattr(row, OFFSET))), (DLQ_HEADERS[3], getattr(row, REASON))]
            self._produce(produce, dlq_topic, getattr(row, VALUE), getattr(row, KEY), report, headers=headers)

    def _produce(self, produce, topic, value, key, report, headers=None) -> None:
        while True:
            try:
                produce(topic, value, key, on_delivery=report, headers=headers)
                return
            except BufferError:  # the local queue is full: let librdkafka drain some
                self._producer.poll(0.1)

    def flush(self) -> None:
        """Wait until every event is acknowledged; raise (so Spark re-runs the batch) if any is not."""
        left = self._producer.flush(self.flush_timeout)
        failures, self._failures = self._failures, []
        if left or failures:
            raise UnavailableError(f"{left} event(s) unacknowledged after {self.flush_timeout:.0f}s and "
                                   f"{len(failures)} failed" + (f", e.g. {failures[0]}" if failures else ""))
