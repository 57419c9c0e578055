"""The input layout: how a file's columns become the transaction contract. `replay`, `train --data` (and later
the lake and the retraining DAG) read every file through this module, so one file reads the same way
everywhere.

Column mapping
    A preset names the source columns of a known layout; `--map SOURCE=FIELD` (or `layout.columns` in the
    config) overrides it, and `--map SOURCE=` ignores a column. Fields: transaction_id, tx_datetime,
    customer_id, terminal_id, amount and, optionally, is_fraud (the label). Presets:

    generator  the contract's names: `fraudctl generate` output and any file that uses them. Its
               fraud_scenario column (ground truth) is ignored.
    ulb        Time,V1..V28,Amount,Class (the ULB/Worldline "creditcard.csv"): Time is seconds after
               --start (default 2013-09-01T00:00:00Z, the month the data was collected). The file names
               neither card nor terminal, so each transaction stands alone: transaction_id is the data row
               number (0-based) and customer_id = terminal_id = transaction_id. Keying by it spreads the
               events evenly over the partitions and never groups unrelated cards as one customer, which a
               constant key would (features of a made-up "customer" would be nonsense). V1..V28 go to extra.
    sparkov    trans_date_trans_time,cc_num,merchant,amt,is_fraud (the Sparkov simulator's fraudTrain.csv):
               cc_num is the customer, merchant the terminal, trans_num (when present) the transaction id;
               the unnamed index column is ignored, times without an offset are UTC.
    auto       (default) the first preset whose columns the header has, else generator.

    Without a transaction_id column, the id is the data row number (0-based, counted before --skip, so a
    resumed replay gives a row the same id). Unmapped columns pass through in `extra` when they are
    numeric; other unmapped columns are ignored.

Times
    iso (ISO-8601; no offset means UTC), epoch_s, epoch_ms, or offset (seconds after --start). auto picks
    (`auto_time_format`): ISO for text, offset when a start is given, else epoch_ms for values of 1e11 and
    more, else epoch_s.

This module is plain Python (no numpy, pyarrow or pandas) so that the config and the CLI can import it for
free; the vectorised parsers that apply these rules to Arrow columns are in fraudctl.data.replay.parse.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from fraudctl import contracts as c
from fraudctl.choices import FILE_FORMATS, PRESET_NAMES, TIME_FORMATS
from fraudctl.errors import BadInputError

FIELDS = (*c.TRANSACTION_FIELDS, c.IS_FRAUD)
REQUIRED_FIELDS = (c.TX_DATETIME, c.CUSTOMER_ID, c.TERMINAL_ID, c.AMOUNT)

EPOCH_MS_THRESHOLD = 1e11  # auto: numeric times from here up are milliseconds (1e11 s is the year 5138)
US_PER_SECOND = 1_000_000
MAX_ABS_MICROS = 253_402_300_799 * US_PER_SECOND  # 9999-12-31T23:59:59Z
# Microseconds per unit of a numeric time format; `offset` adds the start.
NUMERIC_TIME_UNIT_US = {"epoch_s": float(US_PER_SECOND), "epoch_ms": 1_000.0, "offset": float(US_PER_SECOND)}


# --- presets and mapping -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    columns: Mapping[str, str]  # source column -> field (those absent from a header are skipped)
    signature: tuple[str, ...]  # header columns that identify the layout (preset auto)
    ignore: tuple[str, ...] = ()
    derived: Mapping[str, str] = field(default_factory=dict)  # field -> the field it copies
    time_format: str = "auto"
    start: str | None = None


PRESETS: dict[str, Preset] = {
    "generator": Preset(
        "generator", "fraudctl generate output (the contract's column names)",
        columns={name: name for name in FIELDS},
        signature=(c.TX_DATETIME, c.CUSTOMER_ID, c.TERMINAL_ID, c.AMOUNT),
        ignore=(c.FRAUD_SCENARIO,),
    ),
    "ulb": Preset(
        "ulb", "Time,V1..V28,Amount,Class (creditcard.csv); Time in seconds after --start",
        columns={"Time": c.TX_DATETIME, "Amount": c.AMOUNT, "Class": c.IS_FRAUD},
        signature=("Time", "V1", "Amount"),
        derived={c.CUSTOMER_ID: c.TRANSACTION_ID, c.TERMINAL_ID: c.TRANSACTION_ID},
        time_format="offset", start="2013-09-01T00:00:00Z",
    ),
    "sparkov": Preset(
        "sparkov", "trans_date_trans_time,cc_num,merchant,amt,is_fraud (fraudTrain.csv)",
        columns={"trans_date_trans_time": c.TX_DATETIME, "cc_num": c.CUSTOMER_ID, "merchant": c.TERMINAL_ID,
                 "amt": c.AMOUNT, "is_fraud": c.IS_FRAUD, "trans_num": c.TRANSACTION_ID},
        signature=("trans_date_trans_time", "cc_num", "merchant", "amt"),
        ignore=("", "Unnamed: 0"),
        time_format="iso",
    ),
}
assert PRESET_NAMES == ("auto", *PRESETS), "PRESET_NAMES lists auto and every preset"


@dataclass(frozen=True)
class ColumnMapping:
    preset: str
    fields: dict[str, str]  # field -> source column
    derived: dict[str, str]  # field -> field it copies (no column)
    candidates: tuple[str, ...]  # unmapped columns: pass through in `extra` when numeric
    ignored: tuple[str, ...]  # set aside by the preset or --map SOURCE=
    time_format: str
    start_us: int | None

    @property
    def has_labels(self) -> bool:
        return c.IS_FRAUD in self.fields

    def describe(self) -> dict[str, str]:
        """field -> where it comes from, for reports."""
        out = {name: self.fields[name] for name in FIELDS if name in self.fields}
        for name, source in self.derived.items():
            out[name] = f"= {source}"
        if c.TRANSACTION_ID not in out:
            out[c.TRANSACTION_ID] = "= row number"
        return out


@dataclass(frozen=True)
class InputLayout:
    """The layout options of a read: preset, `--map` overrides, time format and start (config `layout`,
    flags over it)."""

    preset: str = "auto"
    columns: Mapping[str, str] = field(default_factory=dict)  # source column -> field ("" ignores it)
    time_format: str = "auto"
    start: str | None = None  # origin of `offset` times

    @classmethod
    def from_flags(cls, preset: str | None = None, items: Sequence[str] | None = None,
                   time_format: str | None = None, start: str | None = None) -> "InputLayout":
        return cls(preset or "auto", parse_map_items(items), time_format or "auto", start)

    @classmethod
    def from_settings(cls, settings: Any, items: Sequence[str] | None = None) -> "InputLayout":
        """From the config's `layout` section (flags already merged in as overrides), with `--map` items
        applied over its `columns`."""
        return cls(settings.preset, {**settings.columns, **parse_map_items(items)}, settings.time_format,
                   settings.start)

    def resolve(self, header: Sequence[str]) -> ColumnMapping:
        return resolve_mapping(header, preset=self.preset, columns=self.columns, time_format=self.time_format,
                               start=self.start)


def parse_map_items(items: Sequence[str] | None) -> dict[str, str]:
    """["amt=amount", "Unnamed=", ...] -> {"amt": "amount", "Unnamed": ""} (source column -> field)."""
    mapping: dict[str, str] = {}
    for item in items or ():
        source, sep, target = item.partition("=")
        source, target = source.strip(), target.strip()
        if not sep:
            raise BadInputError(f"column mapping {item!r}: expected SOURCE=FIELD, e.g. amt=amount "
                                f"(SOURCE= ignores a column)")
        _check_target(item, source, target)
        mapping[source] = target
    return mapping


def _check_target(item: str, source: str, target: str) -> None:
    if target and target not in FIELDS:
        hint = None
        if source in FIELDS:
            hint = f"the source column comes first: --map {target}={source}"
        raise BadInputError(f"column mapping {item!r}: {target!r} is not a field ({', '.join(FIELDS)})",
                            hint=hint)


def resolve_mapping(header: Sequence[str], *, preset: str = "auto", columns: Mapping[str, str] | None = None,
                    time_format: str = "auto", start: str | None = None) -> ColumnMapping:
    """The mapping for a file with this header; BadInputError names what is missing and how to map it."""
    header = list(header)
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise BadInputError(f"the header names column(s) {', '.join(map(repr, duplicates))} more than once")
    if preset == "auto":
        chosen = next((p for p in PRESETS.values() if set(p.signature) <= set(header)), PRESETS["generator"])
    elif preset in PRESETS:
        chosen = PRESETS[preset]
    else:
        raise BadInputError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESET_NAMES)}")
    if time_format not in TIME_FORMATS:
        raise BadInputError(f"unknown time format {time_format!r}; choose one of: {', '.join(TIME_FORMATS)}")

    source_to_field = {src: f for src, f in chosen.columns.items() if src in header}
    ignored = [name for name in chosen.ignore if name in header]
    for source, target in (columns or {}).items():
        _check_target(f"{source}={target}", source, target)
        if source not in header:
            raise BadInputError(f"column mapping {source}={target}: the file has no column {source!r}; "
                                f"columns: {_list_columns(header)}")
        if not target:
            source_to_field.pop(source, None)
            ignored.append(source)
            continue
        for other in [s for s, f in source_to_field.items() if f == target and s != source]:
            del source_to_field[other]  # the override replaces the preset's column for that field
        source_to_field[source] = target
        if source in ignored:
            ignored.remove(source)
    fields: dict[str, str] = {}
    for source, target in source_to_field.items():
        if target in fields:
            raise BadInputError(f"columns {fields[target]!r} and {source!r} both map to {target}")
        fields[target] = source
    derived = {f: src for f, src in chosen.derived.items() if f not in fields}
    missing = [f for f in REQUIRED_FIELDS if f not in fields and f not in derived]
    if missing:
        raise BadInputError(
            f"no column for field(s) {', '.join(missing)} (preset {chosen.name}); columns: {_list_columns(header)}",
            hint=f"map them with --map COLUMN=FIELD, e.g. --map {header[0] if header else 'COLUMN'}={missing[0]}, "
                 f"or pick a preset ({', '.join(PRESETS)})")
    mapped = set(fields.values())
    candidates = tuple(name for name in header if name not in mapped and name not in ignored)

    time_format = chosen.time_format if time_format == "auto" else time_format
    start_text = start if start is not None else chosen.start
    start_us = parse_start(start_text) if start_text is not None else None
    if time_format == "offset" and start_us is None:
        raise BadInputError("offset times need a start: give --start, e.g. --start 2018-04-01T00:00:00Z")
    return ColumnMapping(preset=chosen.name, fields=fields, derived=derived, candidates=candidates,
                         ignored=tuple(ignored), time_format=time_format, start_us=start_us)


def _list_columns(header: Sequence[str], most: int = 20) -> str:
    shown = ", ".join(repr(h) for h in header[:most])
    return shown + (f", ... ({len(header)} in all)" if len(header) > most else "")


# --- time formats ------------------------------------------------------------------------------------------
def auto_time_format(*, numeric: bool, start_us: int | None, largest: float | None) -> str:
    """What `auto` means for a column: iso for text, offset when a start is given, else epoch_ms when the
    largest magnitude reaches EPOCH_MS_THRESHOLD, else epoch_s."""
    if not numeric:
        return "iso"
    if start_us is not None:
        return "offset"
    return "epoch_ms" if largest is not None and largest >= EPOCH_MS_THRESHOLD else "epoch_s"


def iso_micros(text: str) -> int:
    """ISO-8601 (UTC when no offset) -> microseconds since the epoch; ValueError when it is not."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def parse_start(text: str) -> int:
    """An ISO-8601 date or datetime (UTC when no offset) -> microseconds since the epoch."""
    try:
        return iso_micros(str(text).strip())
    except ValueError:
        raise BadInputError(f"start {text!r} is not an ISO-8601 date or time, e.g. 2018-04-01T00:00:00Z") from None


# --- file formats ------------------------------------------------------------------------------------------
# A reader takes more names than the generator writes: it reads gzipped CSV and the .pq/.txt spellings, the
# writer writes plain files only, so for writing only *.csv and *.parquet say the format, and an option
# contradicting the name is refused (a parquet file called x.csv would fool every later reader).
_NAMES_READ = {"parquet": (".parquet", ".pq"), "csv": (".csv", ".csv.gz", ".txt")}
_NAMES_WRITTEN = {"parquet": (".parquet",), "csv": (".csv",)}


def resolve_format(path: Path, fmt: str | None = None, *, writing: bool = False) -> str:
    """csv or parquet: `fmt` when given, else from the file name (`writing`: the name of a file to write)."""
    name = path.name.lower()
    names = _NAMES_WRITTEN if writing else _NAMES_READ
    named = next((kind for kind, endings in names.items() if name.endswith(endings)), None)
    if fmt:
        fmt = fmt.lower()
        if fmt not in FILE_FORMATS:
            raise BadInputError(f"unknown format {fmt!r}; choose one of: {', '.join(FILE_FORMATS)}")
        if writing and named is not None and named != fmt:
            raise BadInputError(f"format {fmt} does not match the extension of {path}",
                                hint=f"name the file *.{fmt} or drop the format option")
        return fmt
    if named is None:
        hint = (f"name the file *.csv or *.parquet, or give the format ({', '.join(FILE_FORMATS)})" if writing
                else "name it *.csv, *.csv.gz or *.parquet, or give --format")
        raise BadInputError(f"cannot tell the format of {path} from its {'extension' if writing else 'name'}",
                            hint=hint)
    return named
