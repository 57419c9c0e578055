"""replay's sources: a CSV (optionally gzipped) or parquet file, read a chunk at a time as Arrow columns.

CSV values are read as bytes (a value that is not UTF-8 then rejects its row instead of stopping the
read) and as text, never typed by pyarrow: parsing is fraudctl.data.replay.parse's job. Rows the reader cannot
split (wrong column count, empty lines) come out as rejects with their physical line number (header = line 1,
quoted newlines counted); parquet rows are numbered from 1.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from fraudctl.errors import BadInputError
from fraudctl.data.replay.arrow import NEWLINE, bytes_any, from_numpy, numbers, strings

CSV_BLOCK_BYTES = 4 << 20  # pyarrow parses a block at a time: about 60 K rows of generator output
PARQUET_BATCH_ROWS = 65_536


def read_header(path: Path, fmt: str) -> list[str]:
    """Column names of a CSV (first record) or parquet file."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
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


class CountingFile(io.RawIOBase):
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


class CsvSource:
    where_name = "line"

    def __init__(self, path: Path, header: list[str], skip: int, limit: int | None):
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
        self._file = CountingFile(path)
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

    def rows_before(self) -> int:
        """Data rows gone through (before --skip included)."""
        return self._valid_seen + self._bad_used

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
            columns[name] = as_utf8(column, name, not_utf8)

        # Physical lines: records plus the newlines inside quoted values of the records before.
        newlines = np.zeros(n, dtype=np.int64)
        for column in columns.values():
            if bytes_any(column, NEWLINE):  # a byte scan first: quoted newlines are rare
                newlines += numbers(pc.count_substring(column, "\n"), 0)
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
            mask = from_numpy(keep)
            columns = {name: pc.filter(col, mask) for name, col in columns.items()}
        return RawChunk(columns=columns, index=index[keep], where=lines[:n][keep], rejects=rejects)


def as_utf8(column: "pa.Array", name: str, not_utf8: dict[int, str]) -> "pa.Array":
    """Binary CSV values as text; rows that are not UTF-8 are noted (row -> column) and get U+FFFD."""
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
        return strings(texts)


class ParquetSource:
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

    def rows_before(self) -> int:
        """Data rows gone through (before --skip included)."""
        return self._done

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




def open_source(path: Path, fmt: str, header: list[str], skip: int, limit: int | None) -> "CsvSource | ParquetSource":
    return (CsvSource if fmt == "csv" else ParquetSource)(path, header, skip, limit)
