"""Encoding: a raw chunk mapped, parsed, validated and turned into the contract's JSON events, vectorised.

`Encoder` decides the time mode and the pass-through (`extra`) columns on the first chunk with rows, then
turns every chunk into an `EncodedChunk`: the transaction events' JSON text and keys, their event times,
and, when the file has labels, the label events and the times they are due (event time + label delay).
Rows that cannot be replayed come out as rejects with their reasons. JSON is assembled column-wise by
Arrow's string kernels: no Python object per event.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fraudctl import contracts as c
from fraudctl.data.layout import US_PER_SECOND, ColumnMapping
from fraudctl.data.replay.arrow import (
    JSON_ESCAPE, bytes_any, fixed_width_strings, from_numpy, is_text, join, scalar, string_parts, strings,
)
from fraudctl.data.replay.parse import as_label, as_number, as_text, as_time_us, looks_numeric, time_mode
from fraudctl.data.replay.source import RawChunk, Reject


class TimeFormatter:
    """Microseconds -> the contract's ISO-8601 text, through lookup tables (60 ns a row, 20 times strftime)."""

    def __init__(self) -> None:
        # "T00:00:00" ... "T23:59:59", digit by digit (a millisecond; datetime_as_string would take 20)
        seconds = np.arange(86_400)
        chars = np.empty((86_400, 9), dtype=np.uint8)
        chars[:, [0, 3, 6]] = np.frombuffer(b"T::", dtype=np.uint8)
        for column, value in ((1, seconds // 3600), (4, seconds // 60 % 60), (7, seconds % 60)):
            chars[:, column] = ord("0") + value // 10
            chars[:, column + 1] = ord("0") + value % 10
        self._time_of_day = fixed_width_strings(chars.view("S9").ravel())

    def format(self, us: np.ndarray) -> "pa.Array":
        seconds = np.floor_divide(us, US_PER_SECOND)
        fraction = us - seconds * US_PER_SECOND
        days = np.floor_divide(seconds, 86_400)
        time_of_day = seconds - days * 86_400
        first = int(days.min()) if len(days) else 0
        span = (int(days.max()) - first + 1) if len(days) else 0
        if span <= 4 * len(days) + 1024:
            day_text = fixed_width_strings(np.datetime_as_string(np.arange(first, first + span).astype("datetime64[D]")))
            dates = day_text.take(from_numpy(days - first))
        else:
            dates = fixed_width_strings(np.datetime_as_string(days.astype("datetime64[D]")))
        tod = self._time_of_day.take(from_numpy(time_of_day))
        if not fraction.any():
            return join(dates, tod, "Z")
        # ".250000" where there is a fraction, "" where not
        digits = pc.utf8_slice_codeunits(pc.cast(from_numpy(fraction + US_PER_SECOND), pa.string()), 1)
        text = pc.if_else(from_numpy(fraction != 0), join(".", digits), scalar(""))
        return join(dates, tod, text, "Z")


def is_contract_time_text(text: "pa.Array") -> bool:
    """Whether every value is spelled YYYY-MM-DDTHH:MM:SSZ (after a successful parse, so valid)."""
    if not is_text(text.type) or text.null_count or not len(text):
        return False
    offsets, data = string_parts(text)
    if data.size != 20 * len(text) or not (np.diff(offsets) == 20).all():
        return False
    rows = data.reshape(len(text), 20)
    return bool((rows[:, [4, 7]] == ord("-")).all() and (rows[:, 10] == ord("T")).all()
                and (rows[:, [13, 16]] == ord(":")).all() and (rows[:, 19] == ord("Z")).all())


def json_text(text: "pa.Array") -> "pa.Array":
    """Text ready to sit between JSON quotes: escaped only where needed (rarely: a quote, backslash, control)."""
    if not bytes_any(text, JSON_ESCAPE):
        return text
    return strings([json.dumps(value)[1:-1] for value in text.to_pylist()])


def number_text(values: np.ndarray) -> "pa.Array":
    """float64 -> JSON numbers, NaN -> null (shortest round-trip text: 55.43, 100, 1e+21)."""
    nan = np.isnan(values)
    text = pc.cast(from_numpy(values), pa.string())
    if nan.any():
        text = pc.if_else(from_numpy(nan), scalar("null"), text)
    return text


@dataclass
class EncodedChunk:
    tx_values: "pa.Array"
    keys: "pa.Array"
    times: np.ndarray  # event time, microseconds
    label_values: "pa.Array | None"
    label_times: np.ndarray | None
    rejects: list[Reject]
    read: int
    rows: np.ndarray  # data row index (0-based, before --skip) of each transaction


class _Problems:
    """What is wrong with which rows of a chunk: a mask per problem, and how to explain a row it marks."""

    def __init__(self, mapping: ColumnMapping, cols: dict[str, "pa.Array"]):
        self.mapping = mapping
        self.cols = cols
        self.found: list[tuple[np.ndarray, Callable[[int], str]]] = []

    def note(self, mask: np.ndarray, explain: Callable[[int], str]) -> None:
        if mask.any():
            self.found.append((mask, explain))

    def missing(self, mask: np.ndarray, name: str) -> None:
        self.note(mask, lambda i: f"missing field {name} (column {self.mapping.fields[name]!r})")

    def value_of(self, source: str, i: int) -> str:
        value = self.cols[source][int(i)].as_py()
        return repr(value if not isinstance(value, str) else value.strip())

    def valid(self, n: int) -> np.ndarray:
        valid = np.ones(n, dtype=bool)
        for mask, _ in self.found:
            valid &= ~mask
        return valid

    def rejects(self, raw: RawChunk, valid: np.ndarray) -> list[Reject]:
        return [Reject(int(raw.where[i]), "; ".join(explain(i) for mask, explain in self.found if mask[i]),
                       _row_text(self.cols, i))
                for i in np.flatnonzero(~valid)]


@dataclass
class _Parsed:
    """A chunk's fields, parsed: ids as text, amount, event time (microseconds), labels, extra columns."""

    texts: dict[str, "pa.Array"]
    amount: np.ndarray
    times: np.ndarray
    labels: np.ndarray | None
    extra_values: list[np.ndarray]

    def filter(self, valid: np.ndarray, keep: "pa.Array") -> "_Parsed":
        return _Parsed({k: pc.filter(v, keep) for k, v in self.texts.items()}, self.amount[valid],
                       self.times[valid], self.labels[valid] if self.labels is not None else None,
                       [v[valid] for v in self.extra_values])


class Encoder:
    """Maps, parses, validates and encodes raw chunks; decides time mode and pass-through columns on the first."""

    def __init__(self, mapping: ColumnMapping, labels: bool, label_delay_us: int):
        self.mapping = mapping
        self.labels = labels and mapping.has_labels
        self.label_delay_us = label_delay_us
        self.time_mode: str | None = None
        self.extras: list[str] | None = None
        self.not_numeric: list[str] = []
        self._formatter = TimeFormatter()

    def encode(self, raw: RawChunk) -> EncodedChunk:
        n = len(raw.index)
        rejects = list(raw.rejects)
        if n == 0:
            return EncodedChunk(strings([]), strings([]), np.zeros(0, np.int64),
                                None, None, rejects, len(rejects), np.zeros(0, np.int64))
        problems = _Problems(self.mapping, raw.columns)
        parsed = self._parse(raw, problems)
        valid = problems.valid(n)
        keep = None
        if not valid.all():
            rejects += problems.rejects(raw, valid)
            keep = from_numpy(valid)
            parsed = parsed.filter(valid, keep)
        rejects.sort(key=lambda r: r.where)

        escaped = {k: json_text(v) for k, v in parsed.texts.items()}
        stamp = self._stamp(raw.columns[self.mapping.fields[c.TX_DATETIME]], keep, parsed.times)
        tx_values = self._transaction_json(escaped, stamp, parsed)
        label_values = label_times = None
        if parsed.labels is not None:
            label_times = parsed.times + self.label_delay_us
            label_values = self._label_json(escaped, stamp, parsed.labels, label_times)
        return EncodedChunk(tx_values=tx_values, keys=parsed.texts[c.CUSTOMER_ID], times=parsed.times,
                            label_values=label_values, label_times=label_times, rejects=rejects,
                            read=n + len(raw.rejects), rows=raw.index[valid])

    def _parse(self, raw: RawChunk, problems: _Problems) -> _Parsed:
        m, cols = self.mapping, raw.columns
        texts: dict[str, pa.Array] = {}
        if c.TRANSACTION_ID in m.fields:
            texts[c.TRANSACTION_ID], missing = as_text(cols[m.fields[c.TRANSACTION_ID]])
            problems.missing(missing, c.TRANSACTION_ID)
        else:
            texts[c.TRANSACTION_ID] = pc.cast(from_numpy(raw.index), pa.string())
        for name in (c.CUSTOMER_ID, c.TERMINAL_ID):
            if name in m.fields:
                texts[name], missing = as_text(cols[m.fields[name]])
                problems.missing(missing, name)
            else:
                texts[name] = texts[m.derived[name]]

        amount, missing, bad = as_number(cols[m.fields[c.AMOUNT]])
        problems.missing(missing, c.AMOUNT)
        problems.note(bad, lambda i: f"non-numeric amount {problems.value_of(m.fields[c.AMOUNT], i)} "
                                     f"(column {m.fields[c.AMOUNT]!r})")

        self.decide(raw)
        times, missing, bad = as_time_us(cols[m.fields[c.TX_DATETIME]], self.time_mode, m.start_us)
        problems.missing(missing, c.TX_DATETIME)
        problems.note(bad, lambda i: f"unparseable timestamp {problems.value_of(m.fields[c.TX_DATETIME], i)} "
                                     f"(column {m.fields[c.TX_DATETIME]!r}, {self.time_mode})")

        labels = None
        if self.labels:
            labels, missing, bad = as_label(cols[m.fields[c.IS_FRAUD]])
            problems.missing(missing, c.IS_FRAUD)
            problems.note(bad, lambda i: f"label {problems.value_of(m.fields[c.IS_FRAUD], i)} is not 0 or 1 "
                                         f"(column {m.fields[c.IS_FRAUD]!r})")

        extra_values = []
        for name in self.extras:
            values, _, bad = as_number(cols[name])
            problems.note(bad, lambda i, name=name: f"non-numeric value {problems.value_of(name, i)} "
                                                    f"in column {name!r}")
            extra_values.append(values)
        return _Parsed(texts, amount, times, labels, extra_values)

    def _stamp(self, time_column: "pa.Array", keep: "pa.Array | None", times: np.ndarray) -> "pa.Array":
        """The event times as the contract spells them."""
        if self.time_mode == "iso":  # already the contract's spelling (generator output): keep the text
            text = time_column if keep is None else pc.filter(time_column, keep)
            if is_contract_time_text(text):
                return text
        return self._formatter.format(times)

    def _transaction_json(self, escaped: dict[str, "pa.Array"], stamp: "pa.Array", parsed: _Parsed) -> "pa.Array":
        pieces: list[Any] = [
            f'{{"{c.SCHEMA_VERSION_FIELD}":{c.SCHEMA_VERSION},"{c.TRANSACTION_ID}":"', escaped[c.TRANSACTION_ID],
            f'","{c.TX_DATETIME}":"', stamp, f'","{c.CUSTOMER_ID}":"', escaped[c.CUSTOMER_ID],
            f'","{c.TERMINAL_ID}":"', escaped[c.TERMINAL_ID], f'","{c.AMOUNT}":', number_text(parsed.amount),
        ]
        for position, (name, values) in enumerate(zip(self.extras, parsed.extra_values)):
            prefix = f',"{c.EXTRA}":{{' if position == 0 else ","
            pieces += [prefix + json.dumps(name) + ":", number_text(values)]
        pieces.append("}}" if self.extras else "}")
        return join(*pieces)

    def _label_json(self, escaped: dict[str, "pa.Array"], stamp: "pa.Array", labels: np.ndarray,
                    label_times: np.ndarray) -> "pa.Array":
        flag = pc.cast(from_numpy(labels), pa.string())
        return join(
            f'{{"{c.SCHEMA_VERSION_FIELD}":{c.SCHEMA_VERSION},"{c.TRANSACTION_ID}":"', escaped[c.TRANSACTION_ID],
            f'","{c.CUSTOMER_ID}":"', escaped[c.CUSTOMER_ID], f'","{c.TERMINAL_ID}":"', escaped[c.TERMINAL_ID],
            f'","{c.TX_DATETIME}":"', stamp, f'","{c.IS_FRAUD}":', flag,
            f',"{c.LABELLED_AT}":"', self._formatter.format(label_times), '"}')

    def decide(self, raw: RawChunk) -> None:
        """Time mode and pass-through columns, judged on the first chunk with rows."""
        m, cols = self.mapping, raw.columns
        if not len(raw.index):
            return
        if self.time_mode is None:
            self.time_mode = time_mode(cols[m.fields[c.TX_DATETIME]], m.time_format, m.start_us)
        if self.extras is None:
            self.extras = [name for name in m.candidates if looks_numeric(cols[name])]
            self.not_numeric = [name for name in m.candidates if name not in self.extras]


def _row_text(cols: dict[str, "pa.Array"], i: int) -> str:
    """A rejected row as a CSV line, for the rejects file."""
    out = io.StringIO()
    values = [cols[name][int(i)].as_py() for name in cols]
    csv.writer(out, lineterminator="").writerow(["" if v is None else v for v in values])
    return out.getvalue()
