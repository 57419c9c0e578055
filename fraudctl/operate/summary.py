"""What the scorer did, read back from Kafka: the core of `fraudctl scores summary` and the quick start's last
word. Scores are joined with the labels that have arrived, by transaction id, so the alerts' precision and
recall are measured against the truth the stream itself carries; latency is each score's Kafka timestamp
minus its transaction's (the score's `ingest_time`).

The sink is at-least-once: a transaction scored twice (a re-run micro-batch) counts once, by its first
publication, and the duplicates are reported."""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from fraudctl.config import Config
from fraudctl.contracts import DECISION, INGEST_TIME, IS_FRAUD, MODEL_VERSION, TRANSACTION_ID, TX_DATETIME
from fraudctl.stack.table import ui_urls

FRAUD = "fraud"
PERCENTILES = (50, 95, 99)


def summarize(config: Config, *, since: dt.datetime | None = None, timeout: float = 300.0,
              on_progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The run's figures; `since` keeps only transactions at or after that event time (e.g. after the
    training window, so precision is measured on data the model never saw)."""
    from fraudctl.clients.kafka import end_offsets

    say = on_progress or (lambda message: None)
    topics = config.kafka.topics
    say(f"reading {topics.scores.name}")
    scores = _scores_frame(config, topics.scores.name, timeout)
    say(f"reading {topics.labels.name}")
    labels = _frame(config, topics.labels.name, {TRANSACTION_ID: "string", IS_FRAUD: "int64"}, timeout)
    transactions = sum(end_offsets(config.kafka, topics.transactions.name).values())
    dead_letters = sum(end_offsets(config.kafka, topics.dlq.name).values())
    return {"since": since.isoformat() if since else None, "transactions_in_kafka": transactions,
            "dead_letters": dead_letters, **figures(scores, labels, since=since), "urls": ui_urls(config)}


def figures(scores, labels, *, since: dt.datetime | None = None) -> dict[str, Any]:
    """Scored, alerts, precision and recall (overall and per model version), duplicates and latency, from the
    scores (with their Kafka timestamps, `kafka_ms`) and the labels as read from their topics."""
    published = len(scores)
    scores = scores.sort_values("kafka_ms", kind="stable").drop_duplicates(TRANSACTION_ID, keep="first")
    duplicates = published - len(scores)
    if since is not None:
        scores = scores[_times(scores[TX_DATETIME]) >= _utc(since)]
    labels = labels.drop_duplicates(TRANSACTION_ID, keep="last").set_index(TRANSACTION_ID)[IS_FRAUD]
    scores = scores.assign(is_fraud=scores[TRANSACTION_ID].map(labels))
    versions = {str(version): _quality(group) for version, group in scores.groupby(MODEL_VERSION, sort=True)}
    return {**_quality(scores), "duplicate_scores": duplicates, "latency_seconds": _latency(scores),
            "model_versions": versions}


def wait_until_caught_up(config: Config, *, timeout: float, champion: bool = False,
                         on_progress: Callable[[dict[str, int], str | None], None] | None = None) -> dict[str, Any]:
    """Wait until the running scorer has processed every record that was in its topics (transactions and
    labels) when the wait began and, with `champion`, has taken the version the registry's @champion named
    then (in use, or staged for its next micro-batch); returns the scorer's status. Raises UnavailableError
    if the scorer is not running or stops, ContractError if it refused that version, WaitTimeoutError after
    `timeout` seconds. `on_progress(records left per topic, the version still to take or None)`."""
    import time

    from fraudctl.errors import UnavailableError, WaitTimeoutError
    from fraudctl.clients.kafka import end_offsets
    from fraudctl.operate import scorer_service as control

    topics = (config.kafka.topics.transactions.name, config.kafka.topics.labels.name)
    wanted = {topic: end_offsets(config.kafka, topic) for topic in topics}
    version = _champion_version(config) if champion else None
    deadline = time.monotonic() + timeout
    while True:
        status = control.status(config)
        if status["health"] in ("stopped", "failed"):
            raise UnavailableError(f"the scorer is {status['health']}", hint="fraudctl scorer start")
        left = records_left(status, wanted)
        to_take = version if version is not None and not has_taken(status, version) else None
        if on_progress:
            on_progress(left, to_take)
        if not any(left.values()) and to_take is None:
            return status
        if time.monotonic() > deadline:
            model = f" and model version {to_take} to take" if to_take else ""
            raise WaitTimeoutError(f"the scorer still had {left} to read{model} after {timeout:.0f}s",
                                   hint="fraudctl scorer status: its rate, batch time and model")
        time.sleep(0.5)


def records_left(status: dict[str, Any], wanted: dict[str, dict[int, int]]) -> dict[str, int]:
    """Per topic, how many records before the `wanted` end offsets the scorer's status has not processed."""
    done = status.get("offsets") or {}
    return {topic: sum(max(0, end - int(done.get(topic, {}).get(str(p), 0))) for p, end in ends.items())
            for topic, ends in wanted.items()}


def has_taken(status: dict[str, Any], version: str) -> bool:
    """Whether the scorer of `status` scores its next batch with model `version`; ContractError if it refused it."""
    from fraudctl.errors import ContractError

    model = status.get("model") or {}
    refused = (model.get("refused") or {}).get(version)
    if refused:
        raise ContractError(f"the scorer refused model version {version}: {refused}",
                            hint="fraudctl models list; promote a version that passes the contract")
    return version in (str(model.get("version")), str(model.get("staged")))


def _champion_version(config: Config) -> str:
    from fraudctl.contracts import CHAMPION
    from fraudctl.errors import NotFoundError
    from fraudctl.model.registry import Registry

    version = Registry(config).alias_version(CHAMPION)
    if version is None:
        raise NotFoundError(f"no model has the alias @{CHAMPION}", hint="fraudctl promote VERSION")
    return str(version)


def _quality(scores) -> dict[str, Any]:
    """Alerts and, among scored transactions whose label has arrived, the alerts' precision and recall."""
    alerted = scores[DECISION] == FRAUD
    labelled = scores["is_fraud"].notna()
    fraud = scores["is_fraud"] == 1
    true_alerts = int((alerted & fraud).sum())
    labelled_alerts, frauds = int((alerted & labelled).sum()), int(fraud.sum())
    return {
        "scored": len(scores),
        "alerts": int(alerted.sum()),
        "labelled": int(labelled.sum()),
        "frauds": frauds,
        "true_alerts": true_alerts,
        "precision": round(true_alerts / labelled_alerts, 4) if labelled_alerts else None,
        "recall": round(true_alerts / frauds, 4) if frauds else None,
    }


def _latency(scores) -> dict[str, float] | None:
    import numpy as np

    if not len(scores):
        return None
    ingested_ms = _times(scores[INGEST_TIME]).astype("int64") // 1_000_000
    seconds = (scores["kafka_ms"].to_numpy() - ingested_ms.to_numpy()) / 1000.0
    return {f"p{p}": round(float(np.percentile(seconds, p)), 3) for p in PERCENTILES} | {
        "max": round(float(seconds.max()), 3)}


def _scores_frame(config: Config, topic: str, timeout: float):
    return _frame(config, topic, {TRANSACTION_ID: "string", DECISION: "string", MODEL_VERSION: "string",
                                  TX_DATETIME: "string", INGEST_TIME: "string"}, timeout, with_timestamp=True)


def _frame(config: Config, topic: str, columns: dict[str, str], timeout: float, with_timestamp: bool = False):
    """The named fields of every JSON record of `topic` as a pandas frame, parsed in bulk by Arrow (a Python
    json.loads per record takes ~10x longer on a few hundred thousand scores)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.json as pj

    from fraudctl.clients.kafka import read_records

    types = {"string": pa.string(), "int64": pa.int64()}
    schema = pa.schema([(name, types[kind]) for name, kind in columns.items()])
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    frames = []
    for batch in read_records(config.kafka, topic, timeout=timeout):
        values = [message.value() for message in batch if message.value()]  # tombstones carry no event
        try:
            table = pj.read_json(pa.py_buffer(b"\n".join(values)), parse_options=options)
        except pa.ArrowInvalid as exc:
            from fraudctl.errors import BadInputError

            first, last = batch[0], batch[-1]
            raise BadInputError(f"{topic}: a record between partition {first.partition()} offset {first.offset()} "
                                f"and partition {last.partition()} offset {last.offset()} is not a JSON event with the "
                                f"fields {', '.join(columns)} as expected: {exc}") from None
        frame = table.to_pandas()
        if with_timestamp:
            frame["kafka_ms"] = [message.timestamp()[1] for message in batch if message.value()]
        frames.append(frame)
    if not frames:
        empty = pd.DataFrame({name: pd.Series(dtype="object" if kind == "string" else kind)
                              for name, kind in columns.items()})
        return empty.assign(kafka_ms=pd.Series(dtype="int64")) if with_timestamp else empty
    return pd.concat(frames, ignore_index=True)


def _times(values):
    import pandas as pd

    return pd.to_datetime(values, utc=True, format="ISO8601")


def _utc(moment: dt.datetime):
    import pandas as pd

    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
