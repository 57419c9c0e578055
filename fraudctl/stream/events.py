"""Kafka records of a micro-batch -> checked transaction and label frames, and dead letters with reasons.

The contract's validators (`fraudctl.contracts.validate_transaction` / `validate_label`) are the rule. A
batch is parsed in bulk by pyarrow's JSON reader against the contract's types; a record that the bulk
reader cannot take (malformed JSON, a wrong type) or that fails a vectorised check goes through the
reference validator one by one, which names the reason. Clean batches never take the per-record path.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from fraudctl.contracts import (
    AMOUNT, CUSTOMER_ID, EXTRA, IS_FRAUD, LABEL_FIELDS, LABELLED_AT, SCHEMA_VERSION, SCHEMA_VERSION_FIELD,
    TERMINAL_ID, TRANSACTION_FIELDS, TRANSACTION_ID, TX_DATETIME, validate_label, validate_transaction,
)

# Kafka metadata kept with each event (the Kafka source's column names).
TOPIC, PARTITION, OFFSET, KAFKA_TIMESTAMP, KEY, VALUE = "topic", "partition", "offset", "timestamp", "key", "value"
REASON = "reason"
REJECT_COLUMNS = [TOPIC, PARTITION, OFFSET, KEY, VALUE, REASON]

_TX_TYPES = {SCHEMA_VERSION_FIELD: pa.int64(), TRANSACTION_ID: pa.string(), TX_DATETIME: pa.string(),
             CUSTOMER_ID: pa.string(), TERMINAL_ID: pa.string(), AMOUNT: pa.float64()}
_LABEL_TYPES = {SCHEMA_VERSION_FIELD: pa.int64(), TRANSACTION_ID: pa.string(), CUSTOMER_ID: pa.string(),
                TERMINAL_ID: pa.string(), TX_DATETIME: pa.string(), IS_FRAUD: pa.int64(), LABELLED_AT: pa.string()}


@dataclass
class Decoded:
    """One topic's records of a batch: the good events (contract fields, times as naive UTC datetime64,
    plus the record's Kafka timestamp) and the rejects (raw bytes, where they came from, why)."""

    events: pd.DataFrame
    rejects: pd.DataFrame


def decode_transactions(records: pa.Table) -> Decoded:
    return _decode(records, _TX_TYPES, TRANSACTION_FIELDS, validate_transaction, extra_allowed=(EXTRA,),
                   time_fields=(TX_DATETIME,))


def decode_labels(records: pa.Table) -> Decoded:
    return _decode(records, _LABEL_TYPES, LABEL_FIELDS, validate_label, extra_allowed=(),
                   time_fields=(TX_DATETIME, LABELLED_AT))


def _decode(records: pa.Table, types: dict[str, pa.DataType], fields: tuple[str, ...], validate, *,
            extra_allowed: tuple[str, ...], time_fields: tuple[str, ...]) -> Decoded:
    values = records.column(VALUE).to_pylist() if records.num_rows else []
    parsed = _bulk_parse(values, types)
    bad_reasons: dict[int, str] = {}
    good = np.ones(len(values), dtype=bool)
    if parsed is None:  # something in the batch the bulk reader refused: check record by record
        events = []
        for i, value in enumerate(values):
            reason, event = _check(value, validate, types)
            if reason:
                bad_reasons[i], good[i] = reason, False
            else:
                events.append({name: event.get(name) for name in types})
        parsed = pa.Table.from_pylist(events, schema=pa.schema(list(types.items())))
    frame = parsed.to_pandas() if parsed.num_rows else pd.DataFrame({name: [] for name in types})
    for name in types:
        if name not in frame.columns:
            frame[name] = None
    suspect = _vectorised_problems(frame, fields, types, extra_allowed, time_fields)
    if suspect.any():
        positions = np.flatnonzero(good)
        for row in np.flatnonzero(suspect):
            index = int(positions[row])
            bad_reasons[index] = _reason(values[index], validate, types) or "rejected by the bulk checks"
        keep = ~suspect
        frame = frame[keep].reset_index(drop=True)
        good[positions[~keep]] = False

    events = frame[list(fields)].copy()
    for name in time_fields:
        events[name] = _utc_naive(events[name])
    if IS_FRAUD in events.columns:
        events[IS_FRAUD] = events[IS_FRAUD].astype("int64")
    events[KAFKA_TIMESTAMP] = _column(records, KAFKA_TIMESTAMP)[good]
    for name in (TOPIC, PARTITION, OFFSET):
        events[name] = _column(records, name)[good]

    rejects = pd.DataFrame({
        TOPIC: _column(records, TOPIC)[~good], PARTITION: _column(records, PARTITION)[~good],
        OFFSET: _column(records, OFFSET)[~good], KEY: _objects(records, KEY)[~good],
        VALUE: _objects(records, VALUE)[~good],
        REASON: [bad_reasons[i] for i in np.flatnonzero(~good)],
    }, columns=REJECT_COLUMNS)
    return Decoded(events, rejects)


def _bulk_parse(values: list, types: dict[str, pa.DataType]) -> pa.Table | None:
    import pyarrow.json as pj

    if not values:
        return pa.table({name: pa.array([], type=kind) for name, kind in types.items()})
    if any(v is None or b"\n" in v or b"\r" in v for v in values):
        return None  # one line per record or nothing: the bulk reader splits on newlines
    try:
        table = pj.read_json(io.BytesIO(b"\n".join(values)),
                             parse_options=pj.ParseOptions(explicit_schema=pa.schema(list(types.items())),
                                                           unexpected_field_behavior="infer",
                                                           newlines_in_values=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == len(values) else None


def _vectorised_problems(frame: pd.DataFrame, fields, types, extra_allowed, time_fields) -> np.ndarray:
    """Rows that break a rule the bulk reader does not enforce (each is then named by the validator)."""
    bad = np.zeros(len(frame), dtype=bool)
    if not len(frame):
        return bad
    bad |= (frame[SCHEMA_VERSION_FIELD] != SCHEMA_VERSION).to_numpy()
    for name in fields:
        bad |= frame[name].isna().to_numpy()
    for name in (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID):
        bad |= (frame[name].fillna("") == "").to_numpy()
    for name in time_fields:
        text = frame[name].fillna("")
        bad |= ~text.str.endswith("Z").to_numpy()
        bad |= _utc_naive(text.where(text.str.endswith("Z"), None)).isna().to_numpy()
    if AMOUNT in fields:
        bad |= ~np.isfinite(frame[AMOUNT].to_numpy(dtype="float64", na_value=np.nan))
    if IS_FRAUD in fields:
        bad |= ~frame[IS_FRAUD].isin([0, 1]).to_numpy()
    for name in frame.columns:
        if name not in types and name not in extra_allowed:
            bad |= frame[name].notna().to_numpy()
    if EXTRA in frame.columns and EXTRA in extra_allowed:
        extra = frame[EXTRA]
        bad |= (extra.notna() & ~extra.map(_numeric_mapping)).to_numpy()
    return bad


def _numeric_mapping(value) -> bool:
    """`extra` as the contract allows it: absent, or an object of numbers (or nulls)."""
    return value is None or (isinstance(value, dict) and all(
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in value.values()))


def _reason(value: bytes | None, validate, types: dict[str, pa.DataType]) -> str | None:
    """Why one record is refused (None: it is a good event)."""
    return _check(value, validate, types)[0]


def _check(value: bytes | None, validate, types: dict[str, pa.DataType]) -> tuple[str | None, dict]:
    if value is None:
        return "empty record (no value)", {}
    try:
        event = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"malformed JSON: {exc}", {}
    if not isinstance(event, dict):
        return f"malformed event: a JSON {type(event).__name__}, expected an object", {}
    try:
        problems = validate(event)
    except (OverflowError, TypeError, ValueError) as exc:  # e.g. an integer too big for a float
        problems = _type_problems(event, types) or [f"cannot be checked: {exc}"]
    else:
        # The validator takes JSON true for 1; the typed frame cannot: one such record must not fail the batch.
        problems = problems or _type_problems(event, types)
    return ("; ".join(problems) if problems else None), event


def _type_problems(event: dict, types: dict[str, pa.DataType]) -> list[str]:
    problems = []
    for name, kind in types.items():
        value = event.get(name)
        if value is None:
            continue
        try:
            if isinstance(value, bool) and not pa.types.is_boolean(kind):
                raise TypeError
            pa.scalar(value, type=kind)
        except (TypeError, ValueError, OverflowError, pa.ArrowException):
            problems.append(f"{name} is not of type {kind}: {repr(value)[:60]}")
    return problems


def _utc_naive(text: pd.Series) -> pd.Series:
    # The contract's times end in Z (UTC); features work in naive UTC nanoseconds.
    return pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce").dt.tz_localize(None).astype("datetime64[ns]")


def _column(records: pa.Table, name: str) -> np.ndarray:
    if not records.num_rows:
        return np.array([], dtype=object)
    column = records.column(name)
    if pa.types.is_timestamp(column.type):  # as int64 nanoseconds since the epoch
        return column.cast(pa.timestamp("ns", tz=column.type.tz)).cast(pa.int64()).to_numpy(zero_copy_only=False)
    return column.to_numpy(zero_copy_only=False)


def _objects(records: pa.Table, name: str) -> np.ndarray:
    if not records.num_rows or name not in records.column_names:
        return np.full(records.num_rows, None, dtype=object)
    return np.array(records.column(name).to_pylist(), dtype=object)
