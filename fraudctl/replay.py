"""`fraudctl replay`: a CSV or parquet file of transactions into Kafka, with delayed label events.

The pipeline, one chunk (a few MB of CSV, 64 K parquet rows) at a time:

    read (pyarrow, every column as text) -> map columns -> parse and validate (vectorised) -> rejects file
        -> encode JSON (vectorised) -> interleave delayed labels -> pace -> produce (confluent-kafka)

Reading, parsing, encoding and sequencing run in a background thread (pyarrow and numpy release the GIL);
the main thread only calls `Producer.produce` (through map(), no Python bytecode per event) and serves the
delivery reports. Python objects are made per event only for the JSON value and, once per distinct key,
for the key. The first chunk is handed over in growing pieces (FIRST_PIECES), so producing starts after a
few thousand rows instead of a whole chunk; the time mode and pass-through columns are still judged on the
whole first chunk.

Column mapping
    A preset names the source columns of a known layout; `--map SOURCE=FIELD` (or `replay.columns` in the
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
    numeric (judged on the first chunk; a later non-numeric value rejects its row, an empty one is null);
    other unmapped columns are ignored and listed in the summary.

Times
    iso (ISO-8601; no offset means UTC), epoch_s, epoch_ms, or offset (seconds after --start). auto picks,
    on the first chunk: ISO for text, offset when a start is given, else epoch_ms for values of 1e11 and
    more, else epoch_s.

Labels
    When a column maps to is_fraud (and --no-labels is not given), each transaction also yields a label event
    on the `labels` topic at event time tx_datetime + label delay (default: model.label_delay_days), placed
    among the transactions in event-time order: a label is produced just before the first transaction at
    or after its time, and those due after the last transaction follow at the end. Every labelled row yields
    a label (0 or 1), as a fraud team's confirmed outcomes would arrive.

Pacing
    As fast as possible (default); --rate N transactions per second (labels ride along); or --speedup X
    times event time (labels included, so the tail of labels after the last transaction takes delay / X).

Delivery
    Idempotent producer, acks=all, key = customer_id, lz4 batches; the topic's partition follows the key
    (librdkafka's default partitioner), so per-customer order is file order. Every delivery report is
    accounted for: at the end delivered + failed + unconfirmed == produced. confluent-kafka's C layer
    receives librdkafka's report for every event; by default (replay.delivery_reports: errors) a failure
    is passed to Python and counted with its reason, a success settles the event in C, and delivered =
    produced - failed - unconfirmed once the queue has drained (len(producer) counts every event whose
    report has not been served). replay.delivery_reports: all also turns each success into a Message and
    counts it in Python: the same numbers, 5-15 % slower. A broker restart mid-replay is absorbed by
    the idempotent producer's retries (no duplicates, order kept) as long as it is back within
    replay.delivery_timeout. A broker not answering at the start is an UnavailableError after
    replay.connect_timeout.

Rejects
    A row that cannot be replayed (wrong column count, missing field, non-numeric amount, unparseable time,
    label not 0/1, non-numeric extra value) goes to the rejects file (CSV: line, reason, content) and the
    replay goes on; `line` is the physical line in the CSV (header = line 1; quoted newlines counted), or
    `row` (1-based) for parquet. The file is FILE.rejects.csv beside the input (or in replay.rejects_dir),
    replaced on every run, and only written when there are rejects.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from fraudctl import contracts as c
from fraudctl.config import DURATION_PATTERN
from fraudctl.errors import (
    BadInputError, ExitCode, FraudctlError, NotFoundError, ServiceFailedError, UnavailableError,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from fraudctl.config import Config

FIELDS = (*c.TRANSACTION_FIELDS, c.IS_FRAUD)
REQUIRED_FIELDS = (c.TX_DATETIME, c.CUSTOMER_ID, c.TERMINAL_ID, c.AMOUNT)
TIME_FORMATS = ("auto", "iso", "epoch_s", "epoch_ms", "offset")
FORMATS = ("csv", "parquet")

CSV_BLOCK_BYTES = 4 << 20  # pyarrow parses a block at a time: about 60 K rows of generator output
PARQUET_BATCH_ROWS = 65_536
SEND_SLICE = 8_192  # events handed to librdkafka between two polls of its delivery reports
FIRST_PIECES = (4_096, 12_288, 28_672, 61_440)  # rows at which the first chunk is cut (see iter_outgoing)
PREFETCH_CHUNKS = 2  # chunks parsed ahead of the producer
DRAIN_GRACE_SECONDS = 30.0  # beyond delivery_timeout, for librdkafka to time out and report the last events
QUEUE_MAX_MESSAGES = 1_000_000  # librdkafka's local queue; a full queue makes produce wait, never drop
EPOCH_MS_THRESHOLD = 1e11  # auto: numeric times from here up are milliseconds (1e11 s is the year 5138)
MAX_ABS_MICROS = 253_402_300_799 * 1_000_000  # 9999-12-31T23:59:59Z
US_PER_SECOND = 1_000_000

_NUMBER_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_DURATION_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1, "": 86_400}


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
PRESET_NAMES = ("auto", *PRESETS)


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


def parse_start(text: str) -> int:
    """An ISO-8601 date or datetime (UTC when no offset) -> microseconds since the epoch."""
    try:
        return _iso_micros(str(text).strip())
    except ValueError:
        raise BadInputError(f"start {text!r} is not an ISO-8601 date or time, e.g. 2018-04-01T00:00:00Z") from None


def parse_duration(text: str | float | int) -> dt.timedelta:
    """7d, 12h, 30m, 90s, or a bare number of days."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0 or not math.isfinite(text):
            raise BadInputError(f"duration {text!r} must be a non-negative number of days")
        return dt.timedelta(days=text)
    match = _DURATION_RE.match(str(text))
    if not match:
        raise BadInputError(f"duration {text!r}: expected a number and a unit d, h, m or s, e.g. 7d or 12h")
    return dt.timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2)])


def read_header(path: Path, fmt: str) -> list[str]:
    """Column names of a CSV (first record) or parquet file."""
    import pyarrow as pa

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
        import pyarrow.csv as pa_csv

        with open(path, "rb") as raw:
            stream = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "gzip") \
                if path.name.lower().endswith(".gz") else raw
            reader = pa_csv.open_csv(stream,
                                     read_options=pa_csv.ReadOptions(block_size=1 << 16, use_threads=False),
                                     parse_options=pa_csv.ParseOptions(invalid_row_handler=lambda row: "skip"))
            names = list(reader.schema.names)
            reader.close()
            return names
    except (pa.ArrowInvalid, OSError) as exc:
        if "Empty CSV file" in str(exc):
            raise BadInputError(f"{path}: empty file (no header)") from None
        raise BadInputError(f"{path}: cannot read as {fmt}: {exc}") from None


def resolve_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise BadInputError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        return fmt
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".txt")):
        return "csv"
    raise BadInputError(f"cannot tell the format of {path} from its name",
                        hint="name it *.csv, *.csv.gz or *.parquet, or give --format")


# --- options and results -----------------------------------------------------------------------------------
@dataclass
class ReplayOptions:
    path: Path
    file_format: str | None = None
    preset: str = "auto"
    columns: dict[str, str] = field(default_factory=dict)  # source -> field, over the preset
    time_format: str = "auto"
    start: str | None = None
    labels: bool = True
    label_delay: dt.timedelta = dt.timedelta(days=7)
    rate: float | None = None  # transactions per second
    speedup: float | None = None  # times event time
    limit: int | None = None  # data rows, after --skip
    skip: int = 0  # data rows
    max_errors: int = 0
    rejects_path: Path | None = None  # None: FILE.rejects.csv beside FILE

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.rate is not None and self.speedup is not None:
            raise BadInputError("give --rate or --speedup, not both")
        if self.rate is not None and not (self.rate > 0 and math.isfinite(self.rate)):
            raise BadInputError(f"--rate must be a positive number of events per second, got {self.rate}")
        if self.speedup is not None and not (self.speedup > 0 and math.isfinite(self.speedup)):
            raise BadInputError(f"--speedup must be a positive factor, got {self.speedup}")
        if self.skip < 0 or (self.limit is not None and self.limit < 0):
            raise BadInputError("--skip and --limit must be 0 or more")
        if self.label_delay < dt.timedelta(0):
            raise BadInputError("the label delay must not be negative")

    @property
    def rejects_file(self) -> Path:
        return self.rejects_path or self.path.with_name(self.path.name + ".rejects.csv")


@dataclass
class ReplayProgress:
    read: int  # data rows read (after --skip; reading runs a little ahead of sending)
    rows_sent: int  # data rows up to the last transaction produced (after --skip)
    produced: int  # events handed to the producer
    delivered: int
    fraction: float | None  # of the work, when known


@dataclass
class ReplaySummary:
    file: str
    format: str
    preset: str
    mapping: dict[str, str]
    extra_columns: list[str]
    ignored_columns: list[str]
    time_format: str
    topics: dict[str, str | None]
    read: int = 0  # data rows in range (after --skip, up to --limit), rejected ones included
    skipped: int = 0
    rejected: int = 0
    transactions: int = 0  # transaction events produced
    labels: int = 0  # label events produced
    labels_pending: int = 0  # label events not produced (interrupted before they were due)
    produced: int = 0
    delivered: int = 0
    failed: int = 0
    unconfirmed: int = 0  # produced, but no delivery report before giving up (after a second Ctrl-C)
    out_of_order: int = 0  # transactions earlier in event time than one before them in the file
    resume_skip: int | None = None  # --skip that resumes after the last transaction produced
    wall_seconds: float = 0.0
    events_per_second: float = 0.0
    interrupted: bool = False
    rejects_file: str | None = None
    first_failure: str | None = None
    broker_errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        data = asdict(self)
        data["wall_seconds"] = round(self.wall_seconds, 3)
        data["events_per_second"] = round(self.events_per_second, 1)
        return data


class ReplayInterrupted(FraudctlError):
    """Ctrl-C (or SIGTERM) stopped a replay; raised by the CLI after it printed the summary."""

    exit_code = ExitCode.INTERRUPTED


def raise_for_outcome(summary: ReplaySummary, max_errors: int) -> None:
    """The exit status of a finished replay: undelivered events, then too many rejects."""
    lost = summary.failed + summary.unconfirmed
    if lost:
        raise UnavailableError(
            f"{lost:,} of {summary.produced:,} events were not delivered"
            + (f": {summary.first_failure}" if summary.first_failure else ""),
            hint="check the broker (`fraudctl status`, `fraudctl logs kafka`); the transaction ids are in "
                 "the file, so a replay with --skip resumes where you choose")
    if summary.rejected > max_errors:
        raise BadInputError(
            f"{summary.rejected:,} row(s) rejected, more than --max-errors {max_errors}; "
            f"each is in {summary.rejects_file} with its line number and reason")


# --- reading -----------------------------------------------------------------------------------------------
@dataclass
class Reject:
    where: int  # CSV line (header = 1) or parquet row (1-based)
    reason: str
    text: str


@dataclass
class RawChunk:
    columns: dict[str, "pa.Array"]
    index: np.ndarray  # data row index (0-based, before --skip) of each row
    where: np.ndarray  # line or row number of each row
    rejects: list[Reject]  # rows the reader could not split, in range


class _CountingFile(io.RawIOBase):
    """A read-only file that counts the bytes read, for progress."""

    def __init__(self, path: Path):
        self._fh = open(path, "rb", buffering=0)
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._fh.readinto(buffer)
        self.bytes_read += n or 0
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


class _CsvSource:
    where_name = "line"

    def __init__(self, path: Path, header: list[str], skip: int, limit: int | None):
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        self.path = path
        self.size = path.stat().st_size
        self._first, self._end = skip, (skip + limit if limit is not None else None)
        self._bad: list[tuple[int, int, int, str]] = []  # (record, actual, expected, text) from pyarrow
        self._bad_used = 0
        self._valid_seen = 0
        self._extra_lines = 0  # newlines inside quoted values so far
        self._estimated_rows = None
        if not path.name.lower().endswith(".gz"):
            with open(path, "rb") as fh:
                sample = fh.read(1 << 20)
            lines = sample.count(b"\n")
            self._estimated_rows = max(0, round(self.size * lines / len(sample)) - 1) if lines else 0
        self._file = _CountingFile(path)
        stream = self._file
        if path.name.lower().endswith(".gz"):
            stream = pa.CompressedInputStream(pa.PythonFile(io.BufferedReader(self._file), mode="r"), "gzip")
        self._reader = pa_csv.open_csv(
            stream,
            # One thread: pyarrow numbers invalid rows only then; another core is busy producing anyway.
            read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=self._on_invalid_row, ignore_empty_lines=False),
            # Bytes, not text: a value that is not UTF-8 then rejects its row instead of stopping the read.
            convert_options=pa_csv.ConvertOptions(column_types={name: pa.binary() for name in header},
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False),
        )

    def _on_invalid_row(self, row) -> str:
        self._bad.append((row.number, row.actual_columns, row.expected_columns, row.text))
        return "skip"

    def fraction(self, rows_done: int) -> float:
        """Share of the file behind data row `rows_done` (rows estimated from the first MB's line length)."""
        if self._estimated_rows is None:  # compressed: the bytes read so far (a chunk or two ahead)
            return min(1.0, self._file.bytes_read / self.size) if self.size else 1.0
        return min(1.0, rows_done / self._estimated_rows) if self._estimated_rows else 1.0

    def close(self) -> None:
        if not self._file.closed:
            self._reader.close()
            self._file.close()

    def chunks(self) -> Iterator[RawChunk]:
        try:
            for batch in self._reader:
                chunk = self._chunk(batch)
                if chunk is not None:
                    yield chunk
                if self._end is not None and self._valid_seen + self._bad_used >= self._end:
                    return  # every row before the limit is accounted for
            tail = self._chunk(None)
            if tail is not None:
                yield tail
        finally:
            self.close()

    def _chunk(self, batch) -> RawChunk | None:
        import pyarrow.compute as pc

        n = batch.num_rows if batch is not None else 0
        k = self._valid_seen + np.arange(n, dtype=np.int64)
        pending = self._bad[self._bad_used:]
        bad_records = np.fromiter((b[0] for b in pending), dtype=np.int64, count=len(pending))
        # Invalid row j comes after `valid_before[j]` valid rows; valid row k follows the ones counted.
        valid_before = bad_records - (self._bad_used + np.arange(len(pending))) - 2
        records = 2 + k + self._bad_used + np.searchsorted(valid_before, k, side="right")
        if batch is None:
            use = len(pending)
        else:
            use = int(np.searchsorted(valid_before, k[-1], side="right")) if n else 0
        taken = pending[:use]
        self._valid_seen += n
        self._bad_used += use
        if n == 0 and not taken:
            return None

        columns, not_utf8 = {}, {}
        for name, column in (zip(batch.schema.names, batch.columns) if n else ()):
            columns[name] = _as_utf8(column, name, not_utf8)

        # Physical lines: records plus the newlines inside quoted values of the records before.
        newlines = np.zeros(n, dtype=np.int64)
        for column in columns.values():
            if _bytes_any(column, _NEWLINE):  # a byte scan first: quoted newlines are rare
                newlines += pc.count_substring(column, "\n").to_numpy(zero_copy_only=False)
        bad_newlines = np.array([b[3].count("\n") for b in taken], dtype=np.int64)
        all_records = np.concatenate([records, bad_records[:use]])
        all_newlines = np.concatenate([newlines, bad_newlines])
        order = np.argsort(all_records, kind="stable")
        before = np.cumsum(all_newlines[order]) - all_newlines[order]
        lines = np.empty_like(all_records)
        lines[order] = all_records[order] + self._extra_lines + before
        self._extra_lines += int(all_newlines.sum())

        index = records - 2
        keep = index >= self._first
        if self._end is not None:
            keep &= index < self._end
        rejects = []
        for (record, actual, expected, text), line in zip(taken, lines[n:]):
            if record - 2 >= self._first and (self._end is None or record - 2 < self._end):
                reason = ("empty line" if not text.strip() else
                          f"wrong column count: {actual} instead of {expected}")
                rejects.append(Reject(int(line), reason, text))
        for i, name in not_utf8.items():
            if keep[i]:
                keep[i] = False
                content = io.StringIO()
                csv.writer(content, lineterminator="").writerow([col[i].as_py() for col in columns.values()])
                rejects.append(Reject(int(lines[i]), f"not UTF-8 text in column {name!r}", content.getvalue()))
        rejects.sort(key=lambda r: r.where)
        if not keep.any():
            return RawChunk(columns={}, index=index[:0], where=lines[:0], rejects=rejects) if rejects else None
        if not keep.all():
            import pyarrow as pa

            mask = pa.array(keep)
            columns = {name: pc.filter(col, mask) for name, col in columns.items()}
        return RawChunk(columns=columns, index=index[keep], where=lines[:n][keep], rejects=rejects)


def _as_utf8(column: "pa.Array", name: str, not_utf8: dict[int, str]) -> "pa.Array":
    """Binary CSV values as text; rows that are not UTF-8 are noted (row -> column) and get U+FFFD."""
    import pyarrow as pa

    try:
        return column.cast(pa.string())  # validates, no copy
    except pa.ArrowInvalid:
        texts = []
        for i, value in enumerate(column.to_pylist()):
            try:
                texts.append(value.decode())
            except UnicodeDecodeError:
                texts.append(value.decode(errors="replace"))
                not_utf8.setdefault(i, name)
        return pa.array(texts, pa.string())


class _ParquetSource:
    where_name = "row"

    def __init__(self, path: Path, header: list[str], skip: int, limit: int | None):
        import pyarrow.parquet as pq

        self.path = path
        self._file = pq.ParquetFile(path)
        self._first, self._end = skip, (skip + limit if limit is not None else None)
        self._rows = self._file.metadata.num_rows
        self._done = 0

    def fraction(self, rows_done: int) -> float:
        total = self._rows if self._end is None else min(self._rows, self._end)
        return min(1.0, rows_done / total) if total else 1.0

    def close(self) -> None:
        self._file.close()

    def chunks(self) -> Iterator[RawChunk]:
        start = 0
        try:
            for batch in self._file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                n = batch.num_rows
                lo = max(self._first - start, 0)
                hi = n if self._end is None else min(max(self._end - start, 0), n)
                start += n
                self._done = start
                if hi > lo:
                    part = batch.slice(lo, hi - lo)
                    index = np.arange(start - n + lo, start - n + hi, dtype=np.int64)
                    yield RawChunk(columns=dict(zip(part.schema.names, part.columns)), index=index,
                                   where=index + 1, rejects=[])
                if self._end is not None and start >= self._end:
                    return
        finally:
            self._file.close()


# --- parsing -----------------------------------------------------------------------------------------------
# Byte classes for scans of a string column's data buffer (a numpy view, no copy): most chunks have none of
# these, and one pass over the bytes is far cheaper than a per-value kernel.
_NEWLINE = np.zeros(256, dtype=bool)
_NEWLINE[0x0A] = True
_JSON_ESCAPE = np.zeros(256, dtype=bool)
_JSON_ESCAPE[:0x20] = True
_JSON_ESCAPE[[0x22, 0x5C]] = True  # " and \
_MAY_NEED_TRIM = np.zeros(256, dtype=bool)
_MAY_NEED_TRIM[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20]] = True
_MAY_NEED_TRIM[0x80:] = True  # non-ASCII: could be Unicode white space


def _string_parts(arr: "pa.Array") -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data bytes) of a string array's values, as numpy views."""
    import pyarrow as pa

    buffers = arr.buffers()
    dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(buffers[1], dtype=dtype)[arr.offset:arr.offset + len(arr) + 1] if len(arr) \
        else np.zeros(1, dtype=dtype)
    if buffers[2] is None or not len(arr):
        return offsets, np.zeros(0, dtype=np.uint8)
    return offsets, np.frombuffer(buffers[2], dtype=np.uint8)[offsets[0]:offsets[-1]]


def _bytes_any(arr: "pa.Array", byte_class: np.ndarray) -> bool:
    """Whether any byte of a string column's values is in the class (True for other types: be careful)."""
    if not _is_text(arr.type):
        return True
    _, data = _string_parts(arr)
    if not data.size:
        return False
    # The range of the bytes first (two fast reductions): most columns (digits, dates) hold no byte of the
    # class anywhere in it, and then the per-byte lookup, 30 times slower, is not needed.
    low, high = int(data.min()), int(data.max())
    if not byte_class[low:high + 1].any():
        return False
    return bool(byte_class[data].any())


def _is_text(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _as_text(arr: "pa.Array") -> tuple["pa.Array", np.ndarray]:
    """Ids as trimmed text; (text, missing). Integral floats lose their '.0' (1.0 -> '1')."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr, kind = arr.dictionary_decode(), arr.type.value_type
    if _is_text(kind):
        text = pc.utf8_trim_whitespace(arr) if _bytes_any(arr, _MAY_NEED_TRIM) else arr
    elif pa.types.is_floating(kind):
        values = arr.to_numpy(zero_copy_only=False)
        finite = np.isfinite(values)
        integral = finite & (np.floor(values) == values) & (np.abs(values) < 2**63)
        if integral[finite].all():
            text = pc.cast(pa.array(np.where(finite, values, 0).astype(np.int64), mask=~finite), pa.string())
        else:
            text = pc.cast(pa.array(values, mask=~finite), pa.string())
    else:
        text = pc.cast(arr, pa.string())
    if text.type != pa.string():
        text = pc.cast(text, pa.string())
    missing = _missing(text)
    return text, missing


def _missing(text: "pa.Array") -> np.ndarray:
    """Null or empty, for a string array."""
    import pyarrow.compute as pc

    offsets, _ = _string_parts(text)
    empty = np.diff(offsets) == 0
    if text.null_count:
        empty |= pc.is_null(text).to_numpy(zero_copy_only=False)
    return empty


def _as_number(arr: "pa.Array") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float64 values with NaN where missing or bad, missing, bad)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr, kind = arr.dictionary_decode(), arr.type.value_type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) \
            or pa.types.is_decimal(kind):
        values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        missing = np.isnan(values)
        bad = np.isinf(values)
        return np.where(bad, np.nan, values), missing, bad
    if not _is_text(kind):
        n = len(arr)
        return np.full(n, np.nan), np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
    try:  # the usual case: every value a number, nothing to trim
        values = pc.cast(arr, pa.float64())
        if not values.null_count:
            values = values.to_numpy(zero_copy_only=False)
            bad = ~np.isfinite(values)  # arrow reads nan, inf, Infinity: not amounts
            return np.where(bad, np.nan, values), np.zeros(len(values), dtype=bool), bad
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    text = pc.utf8_trim_whitespace(arr)
    missing = _missing(text)
    ok = pc.match_substring_regex(text, _NUMBER_RE).fill_null(False).to_numpy(zero_copy_only=False)
    bad = ~ok & ~missing
    if ok.all():
        values = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    else:
        values = pc.cast(pc.if_else(pa.array(ok), text, pa.scalar(None, pa.string())),
                         pa.float64()).to_numpy(zero_copy_only=False)
    values = np.asarray(values, dtype=np.float64)
    overflow = ~np.isfinite(values) & ok  # 1e999
    if overflow.any():
        bad |= overflow
        values = np.where(overflow, np.nan, values)
    return values, missing, bad


def _looks_numeric(arr: "pa.Array") -> bool:
    """True when every non-empty value is a number (and there is one): numeric times, pass-through columns."""
    if len(arr) > 64 and _as_number(arr.slice(0, 64))[2].any():
        return False  # a text column shows it in its first values: no need to look at them all (same answer)
    values, missing, bad = _as_number(arr)
    return not bad.any() and not missing.all()


def _time_mode(arr: "pa.Array", time_format: str, start_us: int | None) -> str:
    """Resolve `auto` on a chunk: native, iso, epoch_s, epoch_ms or offset."""
    import pyarrow as pa

    kind = arr.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return "native"
    if time_format != "auto":
        return time_format
    if _is_text(kind) and not _looks_numeric(arr):
        return "iso"
    if start_us is not None:
        return "offset"
    values, _, _ = _as_number(arr)
    finite = values[np.isfinite(values)]
    return "epoch_ms" if finite.size and np.abs(finite).max() >= EPOCH_MS_THRESHOLD else "epoch_s"


def _as_time_us(arr: "pa.Array", mode: str, start_us: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(microseconds since the epoch, UTC; missing; bad)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(arr)
    kind = arr.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if pa.types.is_date(kind):
            arr = pc.cast(arr, pa.timestamp("us"))
        elif kind.unit != "us" or kind.tz is not None:
            # Aware times are instants; naive ones are taken as UTC (cast keeps the wall clock digits).
            arr = pc.cast(arr, pa.timestamp("us", tz=kind.tz), safe=False)
        us = pc.cast(arr, pa.int64())
        missing = pc.is_null(us).to_numpy(zero_copy_only=False)
        return us.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64), missing, np.zeros(n, dtype=bool)
    if mode == "native":  # a text column where an earlier chunk had timestamps: cannot happen in one file
        mode = "iso"
    if mode == "iso":
        return _parse_iso(arr)
    values, missing, bad = _as_number(arr)
    scale = 1_000.0 if mode == "epoch_ms" else float(US_PER_SECOND)
    micros = np.round(values * scale)
    if mode == "offset":
        micros = micros + float(start_us or 0)
    out_of_range = ~missing & ~bad & ~(np.abs(micros) <= MAX_ABS_MICROS)
    bad = bad | out_of_range
    us = np.where(missing | bad, 0, micros).astype(np.int64)
    return us, missing, bad


def _parse_iso(arr: "pa.Array") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not _is_text(arr.type):
        arr = pc.cast(arr, pa.string())
    text = pc.utf8_trim_whitespace(arr) if _bytes_any(arr, _MAY_NEED_TRIM) else arr
    missing = _missing(text)
    present = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), text) if missing.any() else text
    parsed = None
    for target in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        try:
            parsed = pc.cast(present, target)
            break
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    if parsed is not None:
        us = pc.cast(parsed, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        return us, missing, np.zeros(len(arr), dtype=bool)
    # Bad values, or offsets and naive times mixed, in this chunk: each value on its own.
    us = np.zeros(len(arr), dtype=np.int64)
    failed = np.zeros(len(arr), dtype=bool)
    for i, value in enumerate(present.to_pylist()):
        if value is None:
            continue
        try:
            us[i] = _iso_micros(value)
        except (ValueError, OverflowError):
            failed[i] = True
    return us, missing, failed


def _iso_micros(text: str) -> int:
    """ISO-8601 (UTC when no offset) -> microseconds since the epoch."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def _as_label(arr: "pa.Array") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(0/1 as int8, missing, bad): numbers 0 and 1, or true/false."""
    import pyarrow.compute as pc

    values, missing, bad = _as_number(arr)
    if bad.any() and _is_text(arr.type):
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
        arr = pc.if_else(pc.equal(lowered, "true"), "1", pc.if_else(pc.equal(lowered, "false"), "0", lowered))
        values, missing, bad = _as_number(arr)
    bad = bad | (~missing & ~bad & (values != 0) & (values != 1))
    return np.where(values == 1, 1, 0).astype(np.int8), missing, bad


# --- encoding ----------------------------------------------------------------------------------------------
class _TimeFormatter:
    """Microseconds -> the contract's ISO-8601 text, through lookup tables (60 ns a row, 20 times strftime)."""

    def __init__(self) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        seconds = np.arange(86_400).astype("datetime64[s]")
        # "T00:00:00" ... "T23:59:59"
        self._time_of_day = pc.utf8_slice_codeunits(pa.array(np.datetime_as_string(seconds, unit="s")), 10)

    def format(self, us: np.ndarray) -> "pa.Array":
        import pyarrow as pa
        import pyarrow.compute as pc

        seconds = np.floor_divide(us, US_PER_SECOND)
        fraction = us - seconds * US_PER_SECOND
        days = np.floor_divide(seconds, 86_400)
        time_of_day = seconds - days * 86_400
        first = int(days.min()) if len(days) else 0
        span = (int(days.max()) - first + 1) if len(days) else 0
        if span <= 4 * len(days) + 1024:
            day_text = pa.array(np.datetime_as_string(np.arange(first, first + span).astype("datetime64[D]")))
            dates = day_text.take(pa.array(days - first))
        else:
            dates = pa.array(np.datetime_as_string(days.astype("datetime64[D]")))
        tod = self._time_of_day.take(pa.array(time_of_day))
        if not fraction.any():
            return pc.binary_join_element_wise(dates, tod, "Z", "")
        # ".250000" where there is a fraction, "" where not
        digits = pc.utf8_slice_codeunits(pc.cast(pa.array(fraction + US_PER_SECOND), pa.string()), 1)
        text = pc.if_else(pa.array(fraction != 0), pc.binary_join_element_wise(".", digits, ""), "")
        return pc.binary_join_element_wise(dates, tod, text, "Z", "")


def _is_contract_time_text(text: "pa.Array") -> bool:
    """Whether every value is spelled YYYY-MM-DDTHH:MM:SSZ (after a successful parse, so valid)."""
    if not _is_text(text.type) or text.null_count or not len(text):
        return False
    offsets, data = _string_parts(text)
    if data.size != 20 * len(text) or not (np.diff(offsets) == 20).all():
        return False
    rows = data.reshape(len(text), 20)
    return bool((rows[:, [4, 7]] == ord("-")).all() and (rows[:, 10] == ord("T")).all()
                and (rows[:, [13, 16]] == ord(":")).all() and (rows[:, 19] == ord("Z")).all())


def _json_text(text: "pa.Array") -> "pa.Array":
    """Text ready to sit between JSON quotes: escaped only where needed (rarely: a quote, backslash, control)."""
    import pyarrow as pa

    if not _bytes_any(text, _JSON_ESCAPE):
        return text
    return pa.array([json.dumps(value)[1:-1] for value in text.to_pylist()], pa.string())


def _number_text(values: np.ndarray) -> "pa.Array":
    """float64 -> JSON numbers, NaN -> null (shortest round-trip text: 55.43, 100, 1e+21)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    nan = np.isnan(values)
    text = pc.cast(pa.array(values), pa.string())
    if nan.any():
        text = pc.if_else(pa.array(nan), "null", text)
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


class _Encoder:
    """Maps, parses, validates and encodes raw chunks; decides time mode and pass-through columns on the first."""

    def __init__(self, mapping: ColumnMapping, labels: bool, label_delay_us: int):
        self.mapping = mapping
        self.labels = labels and mapping.has_labels
        self.label_delay_us = label_delay_us
        self.time_mode: str | None = None
        self.extras: list[str] | None = None
        self.not_numeric: list[str] = []
        self._formatter = _TimeFormatter()

    def encode(self, raw: RawChunk) -> EncodedChunk:
        import pyarrow as pa
        import pyarrow.compute as pc

        m = self.mapping
        n = len(raw.index)
        rejects = list(raw.rejects)
        if n == 0:
            return EncodedChunk(pa.array([], pa.string()), pa.array([], pa.string()), np.zeros(0, np.int64),
                                None, None, rejects, len(rejects), np.zeros(0, np.int64))
        cols = raw.columns
        problems: list[tuple[np.ndarray, Callable[[int], str]]] = []

        def note(mask: np.ndarray, explain: Callable[[int], str]) -> None:
            if mask.any():
                problems.append((mask, explain))

        def missing_reason(name: str) -> Callable[[int], str]:
            return lambda i: f"missing field {name} (column {m.fields[name]!r})"

        def value_of(source: str, i: int) -> str:
            value = cols[source][int(i)].as_py()
            return repr(value if not isinstance(value, str) else value.strip())

        texts: dict[str, pa.Array] = {}
        if c.TRANSACTION_ID in m.fields:
            texts[c.TRANSACTION_ID], missing = _as_text(cols[m.fields[c.TRANSACTION_ID]])
            note(missing, missing_reason(c.TRANSACTION_ID))
        else:
            texts[c.TRANSACTION_ID] = pc.cast(pa.array(raw.index), pa.string())
        for name in (c.CUSTOMER_ID, c.TERMINAL_ID):
            if name in m.fields:
                texts[name], missing = _as_text(cols[m.fields[name]])
                note(missing, missing_reason(name))
            else:
                texts[name] = texts[m.derived[name]]

        amount, missing, bad = _as_number(cols[m.fields[c.AMOUNT]])
        note(missing, missing_reason(c.AMOUNT))
        note(bad, lambda i: f"non-numeric amount {value_of(m.fields[c.AMOUNT], i)} "
                            f"(column {m.fields[c.AMOUNT]!r})")

        time_column = cols[m.fields[c.TX_DATETIME]]
        self.decide(raw)
        times, missing, bad = _as_time_us(time_column, self.time_mode, m.start_us)
        note(missing, missing_reason(c.TX_DATETIME))
        note(bad, lambda i: f"unparseable timestamp {value_of(m.fields[c.TX_DATETIME], i)} "
                            f"(column {m.fields[c.TX_DATETIME]!r}, {self.time_mode})")

        labels = None
        if self.labels:
            labels, missing, bad = _as_label(cols[m.fields[c.IS_FRAUD]])
            note(missing, missing_reason(c.IS_FRAUD))
            note(bad, lambda i: f"label {value_of(m.fields[c.IS_FRAUD], i)} is not 0 or 1 "
                                f"(column {m.fields[c.IS_FRAUD]!r})")

        extra_values = []
        for name in self.extras:
            values, _, bad = _as_number(cols[name])
            note(bad, lambda i, name=name: f"non-numeric value {value_of(name, i)} in column {name!r}")
            extra_values.append(values)

        valid = np.ones(n, dtype=bool)
        for mask, _ in problems:
            valid &= ~mask
        if not valid.all():
            for i in np.flatnonzero(~valid):
                reason = "; ".join(explain(i) for mask, explain in problems if mask[i])
                rejects.append(Reject(int(raw.where[i]), reason, self._row_text(cols, i)))
            keep = pa.array(valid)
            texts = {k: pc.filter(v, keep) for k, v in texts.items()}
            amount, times = amount[valid], times[valid]
            labels = labels[valid] if labels is not None else None
            extra_values = [v[valid] for v in extra_values]
        rejects.sort(key=lambda r: r.where)

        escaped = {k: _json_text(v) for k, v in texts.items()}
        tid, cid, term = escaped[c.TRANSACTION_ID], escaped[c.CUSTOMER_ID], escaped[c.TERMINAL_ID]
        stamp = None
        if self.time_mode == "iso":  # already the contract's spelling (generator output): keep the text
            text = time_column if valid.all() else pc.filter(time_column, pa.array(valid))
            stamp = text if _is_contract_time_text(text) else None
        if stamp is None:
            stamp = self._formatter.format(times)
        pieces: list[Any] = [
            f'{{"{c.SCHEMA_VERSION_FIELD}":{c.SCHEMA_VERSION},"{c.TRANSACTION_ID}":"', tid,
            f'","{c.TX_DATETIME}":"', stamp, f'","{c.CUSTOMER_ID}":"', cid, f'","{c.TERMINAL_ID}":"', term,
            f'","{c.AMOUNT}":', _number_text(amount),
        ]
        for position, (name, values) in enumerate(zip(self.extras, extra_values)):
            prefix = f',"{c.EXTRA}":{{' if position == 0 else ","
            pieces += [prefix + json.dumps(name) + ":", _number_text(values)]
        pieces.append("}}" if self.extras else "}")
        tx_values = pc.binary_join_element_wise(*pieces, "")

        label_values = label_times = None
        if labels is not None:
            label_times = times + self.label_delay_us
            flag = pc.cast(pa.array(labels), pa.string())
            label_values = pc.binary_join_element_wise(
                f'{{"{c.SCHEMA_VERSION_FIELD}":{c.SCHEMA_VERSION},"{c.TRANSACTION_ID}":"', tid,
                f'","{c.CUSTOMER_ID}":"', cid, f'","{c.TERMINAL_ID}":"', term,
                f'","{c.TX_DATETIME}":"', stamp, f'","{c.IS_FRAUD}":', flag,
                f',"{c.LABELLED_AT}":"', self._formatter.format(label_times), '"}', "")
        return EncodedChunk(tx_values=tx_values, keys=texts[c.CUSTOMER_ID], times=times, label_values=label_values,
                            label_times=label_times, rejects=rejects, read=n + len(raw.rejects),
                            rows=raw.index[valid])

    def decide(self, raw: RawChunk) -> None:
        """Time mode and pass-through columns, judged on the first chunk with rows."""
        m, cols = self.mapping, raw.columns
        if not len(raw.index):
            return
        if self.time_mode is None:
            self.time_mode = _time_mode(cols[m.fields[c.TX_DATETIME]], m.time_format, m.start_us)
        if self.extras is None:
            self.extras = [name for name in m.candidates if _looks_numeric(cols[name])]
            self.not_numeric = [name for name in m.candidates if name not in self.extras]

    @staticmethod
    def _row_text(cols: dict[str, "pa.Array"], i: int) -> str:
        out = io.StringIO()
        values = [cols[name][int(i)].as_py() for name in cols]
        csv.writer(out, lineterminator="").writerow(["" if v is None else v for v in values])
        return out.getvalue()


# --- sequencing: labels among transactions, pacing ---------------------------------------------------------
@dataclass
class Outgoing:
    values: list[str]
    keys: list[str]
    is_label: np.ndarray  # bool per event
    due: np.ndarray | None  # seconds after the start of sending, when paced
    transactions: int
    labels: int
    out_of_order: int
    last_row: np.ndarray | None = None  # per event: the data row of the last transaction up to it (-1: none)


class _Sequencer:
    """Merges delayed labels into the transaction stream in event-time order and computes pacing."""

    def __init__(self, rate: float | None, speedup: float | None):
        import pyarrow as pa

        self.rate, self.speedup = rate, speedup
        self.watermark: int | None = None  # latest transaction time so far
        self.origin: int | None = None  # first transaction time (speedup)
        self.tx_count = 0
        self.last_due = 0.0
        self._pending_values = pa.array([], pa.string())
        self._pending_keys = pa.array([], pa.string())
        self._pending_times = np.zeros(0, dtype=np.int64)

    @property
    def pending(self) -> int:
        return len(self._pending_times)

    def add(self, chunk: EncodedChunk) -> Outgoing:
        import pyarrow as pa

        n = len(chunk.times)
        if n == 0:
            return Outgoing([], [], np.zeros(0, bool), None, 0, 0, 0)
        running = np.maximum.accumulate(chunk.times)
        if self.watermark is not None:
            running = np.maximum(running, self.watermark)
        previous = np.concatenate([[self.watermark if self.watermark is not None else chunk.times[0]],
                                   running[:-1]])
        out_of_order = int((chunk.times < previous).sum())
        if self.origin is None:
            self.origin = int(chunk.times[0])
        self.watermark = int(running[-1])

        if chunk.label_values is not None:
            self._push(chunk.label_values, chunk.keys, chunk.label_times)
        due_labels = int(np.searchsorted(self._pending_times, self.watermark, side="right"))
        label_values, label_keys, label_times = self._pop(due_labels)
        # A label goes just before the first transaction at or after its time.
        position = np.searchsorted(running, label_times, side="left")
        order = np.argsort(np.concatenate([2 * np.arange(n) + 1, 2 * position]), kind="stable")
        values = pa.concat_arrays([chunk.tx_values, label_values]).take(pa.array(order)) if due_labels \
            else chunk.tx_values
        keys = pa.concat_arrays([chunk.keys, label_keys]).take(pa.array(order)) if due_labels else chunk.keys
        is_label = order >= n
        times = np.concatenate([chunk.times, label_times])[order]
        tx_index = self.tx_count + np.concatenate([np.arange(n), position])[order]
        due = self._due(times, tx_index)
        self.tx_count += n
        rows = np.concatenate([chunk.rows, np.full(due_labels, -1, dtype=np.int64)])[order]
        return Outgoing(_str_objects(values), _key_objects(keys), is_label, due, n, due_labels, out_of_order,
                        np.maximum.accumulate(rows))

    def finish(self) -> Outgoing:
        """The labels due after the last transaction."""
        values, keys, times = self._pop(self.pending)
        due = self._due(times, np.full(len(times), self.tx_count))
        return Outgoing(_str_objects(values), _key_objects(keys), np.ones(len(times), dtype=bool), due, 0,
                        len(times), 0)

    def _due(self, times: np.ndarray, tx_index: np.ndarray) -> np.ndarray | None:
        if self.rate is not None:
            due = tx_index / self.rate
        elif self.speedup is not None:
            due = (times - (self.origin or 0)) / US_PER_SECOND / self.speedup
        else:
            return None
        due = np.maximum.accumulate(np.maximum(due, self.last_due)) if len(due) else due
        if len(due):
            self.last_due = float(due[-1])
        return due

    def _push(self, values, keys, times) -> None:
        import pyarrow as pa

        sorted_already = len(times) < 2 or bool((np.diff(times) >= 0).all())
        if self.pending and times[0] < self._pending_times[-1] or not sorted_already:
            all_times = np.concatenate([self._pending_times, times])
            order = np.argsort(all_times, kind="stable")
            take = pa.array(order)
            self._pending_values = pa.concat_arrays([self._pending_values, values]).take(take)
            self._pending_keys = pa.concat_arrays([self._pending_keys, keys]).take(take)
            self._pending_times = all_times[order]
        else:
            self._pending_values = pa.concat_arrays([self._pending_values, values])
            self._pending_keys = pa.concat_arrays([self._pending_keys, keys])
            self._pending_times = np.concatenate([self._pending_times, times])

    def _pop(self, count: int):
        values, keys, times = (self._pending_values.slice(0, count), self._pending_keys.slice(0, count),
                               self._pending_times[:count])
        self._pending_values = self._pending_values.slice(count)
        self._pending_keys = self._pending_keys.slice(count)
        self._pending_times = self._pending_times[count:]
        return values, keys, times


def _str_objects(strings: "pa.Array") -> list[str]:
    """A string array as Python strings. Arrow's numpy conversion makes them in C++, a quarter faster than
    to_pylist (a Scalar per element); it holds the GIL, which the producing thread is waiting for."""
    return strings.to_numpy(zero_copy_only=False).tolist()


def _key_objects(keys: "pa.Array") -> list[str]:
    """Keys as Python strings, one object per distinct key when they repeat (cheaper than one per row)."""
    if len(keys) < 1024:
        return _str_objects(keys)
    encoded = keys.dictionary_encode()
    if len(encoded.dictionary) > len(keys) // 2:
        return _str_objects(keys)
    table = np.array(_str_objects(encoded.dictionary), dtype=object)
    return table[encoded.indices.to_numpy(zero_copy_only=False)].tolist()


# --- producing ---------------------------------------------------------------------------------------------
def producer_config(config: "Config", on_delivery: Callable, on_error: Callable) -> dict[str, Any]:
    from fraudctl.kafka import client_config

    r = config.replay
    return client_config(config.kafka, **{
        "client.id": "fraudctl-replay",
        "enable.idempotence": True,  # no duplicates and per-partition order through retries
        "acks": "all",
        "compression.type": r.compression,
        "linger.ms": r.linger_ms,
        "batch.size": r.batch_bytes,
        "batch.num.messages": 100_000,  # let batch.size decide
        "queue.buffering.max.messages": QUEUE_MAX_MESSAGES,
        "queue.buffering.max.kbytes": 1_048_576,
        "message.timeout.ms": int(r.delivery_timeout * 1000),
        "on_delivery": on_delivery,
        "error_cb": on_error,
        # Failures always reach on_delivery; successes only with replay.delivery_reports "all" (the client
        # checks this flag in its C callback, so a success costs no Python object).
        "delivery.report.only.error": r.delivery_reports == "errors",
    })


class _Deliveries:
    """Counts every delivery report; keeps the first failure and broker errors for the summary."""

    def __init__(self) -> None:
        self.counts = [0, 0]  # delivered, failed
        self.first_failure: str | None = None
        self.fatal: str | None = None
        self.broker_errors: list[str] = []

        counts = self.counts

        def on_delivery(err, msg) -> None:
            if err is None:
                counts[0] += 1
            else:
                counts[1] += 1
                if self.first_failure is None:
                    self.first_failure = f"{err.name()}: {err.str()}"

        def on_error(err) -> None:
            text = f"{err.name()}: {err.str()}"
            if err.fatal():
                self.fatal = text
            if text not in self.broker_errors:
                self.broker_errors = (self.broker_errors + [text])[-5:]

        self.on_delivery = on_delivery
        self.on_error = on_error

    @property
    def delivered(self) -> int:
        return self.counts[0]

    @property
    def failed(self) -> int:
        return self.counts[1]


def connect(config: "Config", deliveries: _Deliveries, topics: Sequence[str]):
    """A producer whose broker answered and has the topics; UnavailableError within replay.connect_timeout."""
    from confluent_kafka import KafkaException, Producer

    kafka = config.kafka
    timeout = config.replay.connect_timeout
    producer = Producer(producer_config(config, deliveries.on_delivery, deliveries.on_error))
    try:
        metadata = producer.list_topics(timeout=timeout)
    except KafkaException as exc:
        producer.poll(0)  # hands librdkafka's queued log lines (why it could not connect) to --debug
        raise UnavailableError(
            f"Kafka at {kafka.bootstrap_servers} did not answer within {timeout:g} s: {exc.args[0].str()}",
            hint="is the stack up? `fraudctl status`; start it with `fraudctl up`") from None
    missing = [name for name in topics if name not in metadata.topics]
    if missing:
        raise NotFoundError(f"Kafka at {kafka.bootstrap_servers} has no topic {', '.join(missing)}",
                            hint="`fraudctl up` creates the configured topics")
    return producer


class _Sender:
    def __init__(self, producer, deliveries: _Deliveries, tx_topic: str, label_topic: str | None,
                 interrupt: threading.Event):
        self.interrupt = interrupt
        self.producer = producer
        self.deliveries = deliveries
        self.topics = np.array([tx_topic, label_topic], dtype=object)
        self.tx_topic = tx_topic
        self.produced = 0
        self.transactions = 0
        self.labels = 0
        self.started: float | None = None
        self._slice_start = 0
        self._taken_in_slice = 0
        self._current: Outgoing | None = None
        self.last_row = -1  # data row of the last transaction produced

    def send(self, out: Outgoing, tick: Callable[[], None]) -> None:
        poll = self.producer.poll
        n = len(out.values)
        if self.started is None:
            self.started = time.monotonic()
        topics = self.topics[out.is_label.astype(np.intp)].tolist() if out.labels else None
        i = 0
        while i < n:
            j = min(i + SEND_SLICE, n)
            if out.due is not None:
                now = time.monotonic() - self.started
                ready = int(np.searchsorted(out.due, now, side="right"))
                if ready <= i:
                    poll(min(max(out.due[i] - now, 0.0), 0.1))
                    tick()
                    self._check()
                    continue
                j = min(j, ready)
            self._slice_start = i
            self._current = out  # until the slice is accounted for (see settle_interrupted_slice)
            self._produce_slice(topics[i:j] if topics is not None else None, out.values[i:j], out.keys[i:j], tick)
            self._current = None
            self._account(out, i, j)
            i = j
            poll(0)
            tick()
            self._check()

    def _produce_slice(self, topics: list[str] | None, values: list[str], keys: list[str],
                       tick: Callable[[], None]) -> None:
        """produce() for each event, iterated in C (map), a third of the cost of a Python loop."""
        from collections import deque
        from itertools import repeat
        from operator import length_hint

        produce, poll = self.producer.produce, self.producer.poll
        self._taken_in_slice = 0
        drain = deque(maxlen=0).extend
        remaining_values = iter(values)
        remaining = map(produce, iter(topics) if topics is not None else repeat(self.tx_topic), remaining_values,
                        iter(keys))
        while True:
            try:
                drain(remaining)
                return
            except BufferError:  # the local queue is full: serve delivery reports until there is room
                failed = len(values) - length_hint(remaining_values) - 1  # map had taken it from the iterators
                self._taken_in_slice = failed
                topic = topics[failed] if topics is not None else self.tx_topic
                while True:
                    poll(0.1)
                    tick()
                    self._check_fatal()  # not the interrupt: this event is half way through a slice
                    try:
                        produce(topic, values[failed], keys[failed])
                        break
                    except BufferError:
                        continue

    def _account(self, out: Outgoing, i: int, j: int) -> None:
        if out.last_row is not None and j > i:
            self.last_row = max(self.last_row, int(out.last_row[j - 1]))
        labels = int(out.is_label[i:j].sum()) if out.labels else 0
        self.produced += j - i
        self.labels += labels
        self.transactions += (j - i) - labels

    def settle_interrupted_slice(self) -> None:
        """After a KeyboardInterrupt inside a slice, count the part of it librdkafka took.

        map() runs no Python code between two produce() calls, so an interrupt can only land while the
        slice waits for room in the local queue, where the events before the waiting one are known.
        """
        out = getattr(self, "_current", None)
        if out is None:
            return
        if self._taken_in_slice:
            self._account(out, self._slice_start, self._slice_start + self._taken_in_slice)
        self._current = None

    def _check(self) -> None:
        self._check_fatal()
        if self.interrupt.is_set():
            raise KeyboardInterrupt

    def _check_fatal(self) -> None:
        if self.deliveries.fatal:
            raise ServiceFailedError(f"the Kafka producer hit a fatal error: {self.deliveries.fatal}")

    def drain(self, timeout: float, tick: Callable[[], None]) -> int:
        """Wait for the delivery reports of everything queued; returns how many stayed unconfirmed."""
        deadline = time.monotonic() + timeout
        while len(self.producer) > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.producer.flush(min(0.5, left))
            tick()
            self._check_fatal()
        return len(self.producer)

    def abandon(self) -> None:
        """Drop what is still queued locally (reported as failed), wait briefly for in-flight requests."""
        self.producer.purge(in_queue=True, in_flight=False, blocking=False)
        self.producer.flush(5.0)


# --- the replay --------------------------------------------------------------------------------------------
_END = object()


def _prefetch(items: Iterator[Any], depth: int, stop: threading.Event) -> Iterator[Any]:
    """Run `items` in a thread, `depth` ahead; exceptions come out in order."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((_END, None))
        except BaseException as exc:  # handed to the consumer
            buffer.put((_END, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator stopped half way closes its file

    thread = threading.Thread(target=work, name="replay-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                buffer.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


@dataclass
class _Plan:
    options: ReplayOptions
    fmt: str
    mapping: ColumnMapping
    source: Any
    encoder: _Encoder


def plan(options: ReplayOptions) -> _Plan:
    """Open the file and resolve the mapping; everything that can fail without a broker fails here."""
    path = options.path
    if not path.exists():
        raise NotFoundError(f"file not found: {path}")
    if path.is_dir():
        raise BadInputError(f"{path} is a folder; give a CSV or parquet file")
    fmt = resolve_format(path, options.file_format)
    header = read_header(path, fmt)
    mapping = resolve_mapping(header, preset=options.preset, columns=options.columns,
                              time_format=options.time_format, start=options.start)
    source_type = _CsvSource if fmt == "csv" else _ParquetSource
    source = source_type(path, header, options.skip, options.limit)
    delay_us = int(round(options.label_delay.total_seconds() * US_PER_SECOND))
    encoder = _Encoder(mapping, options.labels, delay_us)
    return _Plan(options, fmt, mapping, source, encoder)


def iter_outgoing(plan_: _Plan, sequencer: _Sequencer) -> Iterator[tuple[EncodedChunk | None, Outgoing]]:
    """Encoded chunks with their events in sending order; the labels due after the end come last."""
    import pyarrow as pa

    source = plan_.source
    try:
        first = True
        for raw in source.chunks():
            pieces = [raw]
            if first and len(raw.index):
                # The producer waits for the first chunk: hand it over in growing pieces so sending starts
                # early. Time mode and pass-through columns are still judged on the whole chunk.
                first = False
                plan_.encoder.decide(raw)
                pieces = _split(raw, FIRST_PIECES)
            for piece in pieces:
                chunk = plan_.encoder.encode(piece)
                yield chunk, sequencer.add(chunk)
        yield None, sequencer.finish()
    except (pa.ArrowInvalid, OSError) as exc:  # e.g. bytes that are not UTF-8: pyarrow stops the whole read
        done = _rows_before(source)
        raise BadInputError(f"{plan_.options.path}: cannot read on after data row {done:,}: {exc}",
                            hint="fix or remove that part of the file, then resume with --skip") from None


def _split(raw: RawChunk, bounds: Sequence[int]) -> list[RawChunk]:
    """The chunk cut before rows `bounds`; the reader's rejects go with the rows around their line."""
    n = len(raw.index)
    cuts = [b for b in bounds if 0 < b < n]
    if not cuts:
        return [raw]
    starts, ends = [0, *cuts], [*cuts, n]
    pieces = []
    for number, (lo, hi) in enumerate(zip(starts, ends)):
        last = number == len(starts) - 1
        # Rejects before the next piece's first line (all of those left, for the last piece).
        rejects = [r for r in raw.rejects if (number == 0 or r.where >= raw.where[lo])
                   and (last or r.where < raw.where[hi])]
        pieces.append(RawChunk(columns={name: col.slice(lo, hi - lo) for name, col in raw.columns.items()},
                               index=raw.index[lo:hi], where=raw.where[lo:hi], rejects=rejects))
    return pieces


class _RejectsFile:
    def __init__(self, path: Path, where_name: str):
        self.path = path
        self.where_name = where_name
        self.count = 0
        self._fh = None
        self._writer = None
        try:
            path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
        except OSError as exc:
            raise BadInputError(f"cannot replace the rejects file {path}: {exc.strerror or exc}") from None

    def write(self, rejects: list[Reject]) -> None:
        if not rejects:
            return
        if self._fh is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "w", newline="")
            except OSError as exc:
                raise BadInputError(f"cannot write the rejects file {self.path}: {exc.strerror or exc}") from None
            self._writer = csv.writer(self._fh)
            self._writer.writerow([self.where_name, "reason", "content"])
        for reject in rejects:
            self._writer.writerow([reject.where, reject.reason, reject.text])
        self.count += len(rejects)
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def replay(config: "Config", options: ReplayOptions, *,
           on_progress: Callable[[ReplayProgress], None] | None = None,
           interrupt: threading.Event | None = None,
           producer_factory: Callable[[_Deliveries, Sequence[str]], Any] | None = None) -> ReplaySummary:
    """Replay `options.path` into Kafka and return the summary.

    Stopping: set `interrupt` (the CLI does on the first Ctrl-C) or raise KeyboardInterrupt: reading stops,
    what was produced gets replay.interrupt_flush_timeout to be delivered (a KeyboardInterrupt during that
    wait gives up on it), and the summary comes back with interrupted=True.

    Raises before producing anything: NotFoundError/BadInputError for the file or mapping,
    UnavailableError/NotFoundError for the broker or topics. Rejects and delivery failures are counted in
    the summary; `raise_for_outcome` turns them into the exit status.
    """
    the_plan = plan(options)
    mapping, encoder, source = the_plan.mapping, the_plan.encoder, the_plan.source
    tx_topic = config.kafka.topics.transactions.name
    label_topic = config.kafka.topics.labels.name if encoder.labels else None
    summary = ReplaySummary(
        file=str(options.path), format=the_plan.fmt, preset=mapping.preset, mapping=mapping.describe(),
        extra_columns=[], ignored_columns=list(mapping.ignored), time_format=mapping.time_format,
        topics={"transactions": tx_topic, "labels": label_topic},
    )
    deliveries = _Deliveries()
    try:
        rejects = _RejectsFile(options.rejects_file, source.where_name)
        topics = [tx_topic] + ([label_topic] if label_topic else [])
        producer = (producer_factory or (lambda d, t: connect(config, d, t)))(deliveries, topics)
    except BaseException:
        source.close()
        raise
    interrupt = interrupt or threading.Event()
    only_errors = config.replay.delivery_reports == "errors"
    sender = _Sender(producer, deliveries, tx_topic, label_topic, interrupt)
    sequencer = _Sequencer(options.rate, options.speedup)
    started = time.monotonic()
    last_tick = [0.0]

    def delivered() -> int:
        # With success reports kept in C, every event that left the producer's queue without a failure
        # report was delivered.
        return deliveries.delivered if not only_errors else \
            max(0, sender.produced - deliveries.failed - len(producer))

    def tick(force: bool = False, finished: bool = False) -> None:
        now = time.monotonic()
        if on_progress and (force or now - last_tick[0] >= 0.1):
            last_tick[0] = now
            rows_sent = max(0, sender.last_row + 1 - options.skip)
            if options.limit is not None:
                fraction = min(1.0, rows_sent / options.limit) if options.limit else 1.0
            else:
                fraction = 1.0 if finished else source.fraction(sender.last_row + 1)
            on_progress(ReplayProgress(summary.read, rows_sent, sender.produced, delivered(), fraction))

    stop = threading.Event()
    # Reading, parsing, encoding and sequencing run ahead in a thread; this one only produces.
    chunks = _prefetch(iter_outgoing(the_plan, sequencer), PREFETCH_CHUNKS, stop)
    try:
        try:
            for chunk, out in chunks:
                if chunk is not None:
                    rejects.write(chunk.rejects)
                    summary.read += chunk.read
                    summary.rejected += len(chunk.rejects)
                summary.out_of_order += out.out_of_order
                sender.send(out, tick)
                if interrupt.is_set():
                    raise KeyboardInterrupt
            sender.drain(config.replay.delivery_timeout + DRAIN_GRACE_SECONDS, tick)
        except KeyboardInterrupt:
            summary.interrupted = True
            chunks.close()
            sender.settle_interrupted_slice()
            try:
                if sender.drain(config.replay.interrupt_flush_timeout, tick):
                    sender.abandon()
            except KeyboardInterrupt:  # asked again: stop waiting
                sender.abandon()
        except FraudctlError:
            # Bad file content or a fatal producer error: what was produced still gets its chance.
            chunks.close()
            sender.settle_interrupted_slice()
            if not deliveries.fatal:
                sender.drain(config.replay.interrupt_flush_timeout, tick)
            raise
    finally:
        chunks.close()
        rejects.close()
        summary.wall_seconds = time.monotonic() - started
        summary.skipped = min(options.skip, _rows_before(source))
        summary.extra_columns = list(encoder.extras or [])
        summary.ignored_columns = list(mapping.ignored) + list(encoder.not_numeric)
        summary.time_format = encoder.time_mode or mapping.time_format
        summary.transactions, summary.labels, summary.produced = sender.transactions, sender.labels, sender.produced
        summary.labels_pending = sequencer.pending
        summary.resume_skip = sender.last_row + 1 if sender.last_row >= 0 else None
        summary.failed = deliveries.failed
        # Whatever path got here, the events still in the producer are those whose report never came.
        summary.unconfirmed = len(producer)
        summary.delivered = delivered()
        summary.first_failure = deliveries.first_failure
        summary.broker_errors = list(deliveries.broker_errors)
        summary.rejects_file = str(rejects.path) if rejects.count else None
        summary.events_per_second = summary.delivered / summary.wall_seconds if summary.wall_seconds > 0 else 0.0
        tick(force=True, finished=not summary.interrupted)
    return summary


def _rows_before(source: Any) -> int:
    """Data rows the source has gone through (before --skip included)."""
    if isinstance(source, _CsvSource):
        return source._valid_seen + source._bad_used
    return getattr(source, "_done", 0)
