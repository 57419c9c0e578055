"""Parsing Arrow columns into the contract's values, vectorised: ids as text, numbers, times, labels.

Each parser returns the values and two masks, `missing` (null or empty) and `bad` (present but not
parseable), so the caller decides what a bad value means: replay rejects the row, training stops and
names it. The time-format rules themselves (names, what `auto` means, units, ISO without offset = UTC)
are fraudctl.data.layout's; this module applies them to whole columns.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fraudctl.data.layout import MAX_ABS_MICROS, NUMERIC_TIME_UNIT_US, auto_time_format, iso_micros
from fraudctl.data.replay.arrow import (
    MAY_NEED_TRIM, bools, bytes_any, from_numpy, is_text, numbers, scalar, string_parts, valid, with_nulls,
)

NUMBER_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"

Parsed = tuple[np.ndarray, np.ndarray, np.ndarray]  # values, missing, bad


def as_text(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Ids as trimmed text; (text, missing). Integral floats lose their '.0' (1.0 -> '1')."""
    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr, kind = arr.dictionary_decode(), arr.type.value_type
    if is_text(kind):
        text = pc.utf8_trim_whitespace(arr) if bytes_any(arr, MAY_NEED_TRIM) else arr
    elif pa.types.is_floating(kind):
        values = numbers(arr, np.nan)
        finite = np.isfinite(values)
        integral = finite & (np.floor(values) == values) & (np.abs(values) < 2**63)
        if integral[finite].all():
            text = pc.cast(from_numpy(np.where(finite, values, 0).astype(np.int64), null=~finite), pa.string())
        else:
            text = pc.cast(from_numpy(values, null=~finite), pa.string())
    else:
        text = pc.cast(arr, pa.string())
    if text.type != pa.string():
        text = pc.cast(text, pa.string())
    return text, missing(text)


def missing(text: pa.Array) -> np.ndarray:
    """Null or empty, for a string array."""
    offsets, _ = string_parts(text)
    empty = np.diff(offsets) == 0
    if text.null_count:
        empty |= ~valid(text)
    return empty


def as_number(arr: pa.Array) -> Parsed:
    """(float64 values with NaN where missing or bad, missing, bad)."""
    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr, kind = arr.dictionary_decode(), arr.type.value_type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) \
            or pa.types.is_decimal(kind):
        values = numbers(pc.cast(arr, pa.float64()), np.nan).astype(np.float64, copy=False)
        nan = np.isnan(values)
        bad = np.isinf(values)
        return np.where(bad, np.nan, values), nan, bad
    if not is_text(kind):
        n = len(arr)
        return np.full(n, np.nan), np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
    try:  # the usual case: every value a number, nothing to trim
        cast = pc.cast(arr, pa.float64())
        if not cast.null_count:
            values = numbers(cast, np.nan)
            bad = ~np.isfinite(values)  # arrow reads nan, inf, Infinity: not amounts
            return np.where(bad, np.nan, values), np.zeros(len(values), dtype=bool), bad
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    text = pc.utf8_trim_whitespace(arr)
    empty = missing(text)
    ok = bools(pc.match_substring_regex(text, NUMBER_RE))
    bad = ~ok & ~empty
    if ok.all():
        values = numbers(pc.cast(text, pa.float64()), np.nan)
    else:
        values = np.full(len(text), np.nan)
        values[ok] = numbers(pc.cast(pc.filter(text, from_numpy(ok)), pa.float64()), np.nan)
    values = np.asarray(values, dtype=np.float64)
    overflow = ~np.isfinite(values) & ok  # 1e999
    if overflow.any():
        bad |= overflow
        values = np.where(overflow, np.nan, values)
    return values, empty, bad


def looks_numeric(arr: pa.Array) -> bool:
    """True when every non-empty value is a number (and there is one): numeric times, pass-through columns."""
    if len(arr) > 64 and as_number(arr.slice(0, 64))[2].any():
        return False  # a text column shows it in its first values: no need to look at them all (same answer)
    values, empty, bad = as_number(arr)
    return not bad.any() and not empty.all()


def time_mode(arr: pa.Array, time_format: str, start_us: int | None) -> str:
    """The format of a time column: native (Arrow timestamps or dates), or `time_format` with auto resolved
    on these values (fraudctl.data.layout.auto_time_format)."""
    kind = arr.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return "native"
    if time_format != "auto":
        return time_format
    if is_text(kind) and not looks_numeric(arr):
        return auto_time_format(numeric=False, start_us=start_us, largest=None)
    largest = None
    if start_us is None:
        values, _, _ = as_number(arr)
        finite = values[np.isfinite(values)]
        largest = float(np.abs(finite).max()) if finite.size else None
    return auto_time_format(numeric=True, start_us=start_us, largest=largest)


def as_time_us(arr: pa.Array, mode: str, start_us: int | None) -> Parsed:
    """(microseconds since the epoch, UTC; missing; bad)."""
    n = len(arr)
    kind = arr.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if pa.types.is_date(kind):
            arr = pc.cast(arr, pa.timestamp("us"))
        elif kind.unit != "us" or kind.tz is not None:
            # Aware times are instants; naive ones are taken as UTC (cast keeps the wall clock digits).
            arr = pc.cast(arr, pa.timestamp("us", tz=kind.tz), safe=False)
        us = pc.cast(arr, pa.int64())
        return numbers(us, 0).astype(np.int64), ~valid(us), np.zeros(n, dtype=bool)
    if mode == "native":  # a text column where an earlier chunk had timestamps: cannot happen in one file
        mode = "iso"
    if mode == "iso":
        return parse_iso(arr)
    values, empty, bad = as_number(arr)
    micros = np.round(values * NUMERIC_TIME_UNIT_US[mode])
    if mode == "offset":
        micros = micros + float(start_us or 0)
    out_of_range = ~empty & ~bad & ~(np.abs(micros) <= MAX_ABS_MICROS)
    bad = bad | out_of_range
    us = np.where(empty | bad, 0, micros).astype(np.int64)
    return us, empty, bad


def parse_iso(arr: pa.Array) -> Parsed:
    if not is_text(arr.type):
        arr = pc.cast(arr, pa.string())
    text = pc.utf8_trim_whitespace(arr) if bytes_any(arr, MAY_NEED_TRIM) else arr
    empty = missing(text)
    present = with_nulls(text, empty)
    parsed = None
    for target in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        try:
            parsed = pc.cast(present, target)
            break
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    if parsed is not None:
        us = numbers(pc.cast(parsed, pa.int64()), 0).astype(np.int64)
        return us, empty, np.zeros(len(arr), dtype=bool)
    # Bad values, or offsets and naive times mixed, in this chunk: each value on its own.
    us = np.zeros(len(arr), dtype=np.int64)
    failed = np.zeros(len(arr), dtype=bool)
    for i, value in enumerate(present.to_pylist()):
        if value is None:
            continue
        try:
            us[i] = iso_micros(value)
        except (ValueError, OverflowError):
            failed[i] = True
    return us, empty, failed


def as_label(arr: pa.Array) -> Parsed:
    """(0/1 as int8, missing, bad): numbers 0 and 1, or true/false."""
    values, empty, bad = as_number(arr)
    if bad.any() and is_text(arr.type):
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
        arr = pc.if_else(pc.equal(lowered, scalar("true")), scalar("1"),
                         pc.if_else(pc.equal(lowered, scalar("false")), scalar("0"), lowered))
        values, empty, bad = as_number(arr)
    bad = bad | (~empty & ~bad & (values != 0) & (values != 1))
    return np.where(values == 1, 1, 0).astype(np.int8), empty, bad
