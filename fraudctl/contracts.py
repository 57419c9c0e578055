"""The data contracts: field names and JSON encodings of the events on Kafka, owned here alone.

Version 1. Every producer and consumer (replay, the scorer, the lake, training) imports these names
instead of spelling them, so a renamed field is one edit.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import numpy as np

SCHEMA_VERSION = 1

# Transaction event (topic `transactions`, key = customer_id)
TRANSACTION_ID = "transaction_id"
TX_DATETIME = "tx_datetime"  # event time, ISO-8601 UTC, e.g. 2018-04-01T00:07:56Z
CUSTOMER_ID = "customer_id"
TERMINAL_ID = "terminal_id"
AMOUNT = "amount"
TRANSACTION_FIELDS = (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, AMOUNT)
SCHEMA_VERSION_FIELD = "schema_version"
EXTRA = "extra"  # optional mapping of additional numeric fields passed through from the source

# Label event (topic `labels`, key = customer_id)
IS_FRAUD = "is_fraud"
LABELLED_AT = "labelled_at"
LABEL_FIELDS = (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID, TX_DATETIME, IS_FRAUD, LABELLED_AT)

# Generator output columns (a transaction plus its ground truth)
FRAUD_SCENARIO = "fraud_scenario"
GENERATED_COLUMNS = (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, AMOUNT, IS_FRAUD, FRAUD_SCENARIO)

# Training frame columns (a transaction plus its label, NaN while unknown): what the lake's reader and a
# retrain extract produce, what features and training require
TRAINING_COLUMNS = (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, AMOUNT, IS_FRAUD)

# Score event (topic `scores`; `alerts` carries the ones whose decision is fraud)
SCORE = "score"
DECISION = "decision"  # "fraud" or "legit"
THRESHOLD = "threshold"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
INGEST_TIME = "ingest_time"
SCORED_TIME = "scored_time"
FEATURES = "features"
SCORE_FIELDS = (
    TRANSACTION_ID, SCORE, DECISION, THRESHOLD, MODEL_NAME, MODEL_VERSION, TX_DATETIME, INGEST_TIME,
    SCORED_TIME, FEATURES,
)
# Score event version 2 (issue 22, rules and reasons): every score event also has
# - `rules_shadow`: the names of the shadow rules that matched it ([] when none), and
# - `reasons`: null unless its decision is fraud; then {"rules": [{"name", "version"}...] (the active rules that
#   matched, alert or suppress), "features": [{"feature", "contribution"}...] (the model's top 3 signed
#   contributions to the raw score, largest first; [] when the estimator has none; null when the micro-batch
#   alerted more than `scorer.explained_alerts_per_batch` times and this alert was not among its highest scores)}.
# The alert event is the score event of a fraud decision, on `alerts`. A decision may now be fraud below the
# threshold (an active alert rule) or legit above it (a suppress rule): `reasons` says which.
# Readers take version 1 too: `read_score_event` gives it the version 2 fields (no rule, no reason).
SCORE_SCHEMA_VERSION = 2
RULES_SHADOW = "rules_shadow"
REASONS = "reasons"
SCORE_FIELDS_V2 = SCORE_FIELDS + (RULES_SHADOW, REASONS)


def read_score_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """A decoded score or alert event of version 1 or 2, as version 2."""
    data = dict(event)
    if data.get(SCHEMA_VERSION_FIELD, 1) < 2:
        data.setdefault(RULES_SHADOW, [])
        data.setdefault(REASONS, None)
    return data

# --- JSON encoding of the transaction and label events (version 1) ------------------------------------------
# Added with `fraudctl replay` (issue 4). One schema whatever the source layout:
# - ids (transaction_id, customer_id, terminal_id) are JSON strings, even when the source holds integers
#   (the generator's customer 802 is "802"); the Kafka key is the customer_id's UTF-8 bytes;
# - times (tx_datetime, labelled_at) are ISO-8601 UTC with a "Z": whole seconds print without a fraction
#   (2018-04-01T00:07:56Z), others with microseconds (2018-04-01T00:07:56.250000Z);
# - amount is a JSON number; is_fraud is 0 or 1; `extra` (only present when the source has extra numeric
#   columns) maps each column name to a number, or null where the source cell was empty;
# - every event carries "schema_version": SCHEMA_VERSION first. Consumers must not depend on key order.
# Encoders here are the reference for one event at a time; `fraudctl.data.replay` builds the same JSON in bulk.

ID_FIELDS = (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID)


def format_time(value: dt.datetime) -> str:
    """An event time as the contract spells it; a naive datetime is taken as UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_times(values) -> "np.ndarray":
    """`format_time` for a numpy datetime64 array (naive UTC), in bulk: whole seconds without a fraction,
    others with microseconds."""
    import numpy as np

    stamps = np.asarray(values).astype("datetime64[us]")
    whole = np.datetime_as_string(stamps, unit="s")
    if len(stamps) and (stamps.astype("int64") % 1_000_000).any():
        whole = np.where(stamps.astype("int64") % 1_000_000 == 0, whole, np.datetime_as_string(stamps, unit="us"))
    return np.char.add(whole.astype(str), "Z")


def parse_time(text: str) -> dt.datetime:
    """The inverse of `format_time`: an aware UTC datetime. Raises ValueError on anything else."""
    if not isinstance(text, str) or not text.endswith("Z"):
        raise ValueError(f"not an ISO-8601 UTC time ending in Z: {text!r}")
    return dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=dt.timezone.utc)


def transaction_event(*, transaction_id: Any, tx_datetime: dt.datetime, customer_id: Any, terminal_id: Any,
                      amount: float, extra: Mapping[str, float | None] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        SCHEMA_VERSION_FIELD: SCHEMA_VERSION,
        TRANSACTION_ID: str(transaction_id),
        TX_DATETIME: format_time(tx_datetime),
        CUSTOMER_ID: str(customer_id),
        TERMINAL_ID: str(terminal_id),
        AMOUNT: float(amount),
    }
    if extra:
        event[EXTRA] = {str(k): (None if v is None or math.isnan(v) else float(v)) for k, v in extra.items()}
    return event


def validate_transaction(event: Mapping[str, Any]) -> list[str]:
    """What is wrong with a decoded transaction event ([] when it follows the contract)."""
    problems = _check_common(event, TRANSACTION_FIELDS)
    amount = event.get(AMOUNT)
    if AMOUNT in event and (isinstance(amount, bool) or not isinstance(amount, (int, float))
                            or not math.isfinite(amount)):
        problems.append(f"{AMOUNT} is not a finite number: {amount!r}")
    extra = event.get(EXTRA)
    if extra is not None:
        if not isinstance(extra, dict):
            problems.append(f"{EXTRA} is not an object")
        else:
            problems += [f"{EXTRA}.{k} is not a number: {v!r}" for k, v in extra.items()
                         if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))]
    unknown = set(event) - {*TRANSACTION_FIELDS, SCHEMA_VERSION_FIELD, EXTRA}
    problems += [f"unknown field {name!r}" for name in sorted(unknown)]
    return problems


def validate_label(event: Mapping[str, Any]) -> list[str]:
    """What is wrong with a decoded label event ([] when it follows the contract)."""
    problems = _check_common(event, LABEL_FIELDS)
    if IS_FRAUD in event and event[IS_FRAUD] not in (0, 1):
        problems.append(f"{IS_FRAUD} is not 0 or 1: {event[IS_FRAUD]!r}")
    unknown = set(event) - {*LABEL_FIELDS, SCHEMA_VERSION_FIELD}
    problems += [f"unknown field {name!r}" for name in sorted(unknown)]
    return problems


def _check_common(event: Mapping[str, Any], fields: tuple[str, ...]) -> list[str]:
    problems = [f"missing field {name!r}" for name in fields if name not in event]
    if event.get(SCHEMA_VERSION_FIELD) != SCHEMA_VERSION:
        problems.append(f"{SCHEMA_VERSION_FIELD} is not {SCHEMA_VERSION}: {event.get(SCHEMA_VERSION_FIELD)!r}")
    for name in ID_FIELDS:
        if name in event and (not isinstance(event[name], str) or not event[name]):
            problems.append(f"{name} is not a non-empty string: {event[name]!r}")
    for name in (TX_DATETIME, LABELLED_AT):
        if name in fields and name in event:
            try:
                parse_time(event[name])
            except (ValueError, TypeError):
                problems.append(f"{name} is not an ISO-8601 UTC time: {event[name]!r}")
    return problems

# The prefix of every MLflow tag fraudctl sets (runs, model versions, the registered model).
TAG_PREFIX = "fraudctl."
# The registry's aliases: the version the scorer serves, and the one a retrain kept beside it.
CHAMPION = "champion"
CHALLENGER = "challenger"
