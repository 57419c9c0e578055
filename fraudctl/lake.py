"""The data lake: what the stream has seen, as parquet partitioned by event day, on the configured storage
(a local folder, or a bucket on any S3 endpoint).

    <root>/transactions/event_date=YYYY-MM-DD/batch-<micro-batch id>.parquet
    <root>/labels/event_date=YYYY-MM-DD/batch-<micro-batch id>.parquet

A file is named by the micro-batch that wrote it, so a batch that Spark runs again replaces its files
instead of adding copies. Readers take every file: one per batch and day (compaction is left to readers).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from fraudctl.errors import UnavailableError

if TYPE_CHECKING:
    from fraudctl.config import Config, StorageConfig

TRANSACTIONS, LABELS = "transactions", "labels"
PARTITION_FIELD = "event_date"
LAKE_PREFIX = "lake"


def s3_filesystem(storage: "StorageConfig | None"):
    """A pyarrow S3 filesystem for the configured endpoint and keys (none: the default AWS chain)."""
    from pyarrow import fs

    kwargs: dict[str, Any] = {}
    if storage is not None:
        kwargs["region"] = storage.region
        if storage.endpoint_url:
            scheme, _, host = storage.endpoint_url.partition("://")
            kwargs["endpoint_override"] = host or scheme
            kwargs["scheme"] = scheme if host else "https"
        if storage.access_key_id and storage.secret_access_key:
            kwargs["access_key"] = storage.access_key_id.get_secret_value()
            kwargs["secret_key"] = storage.secret_access_key.get_secret_value()
    return fs.S3FileSystem(**kwargs)


def lake_uri(config: "Config") -> str:
    """Where the lake lives: s3://bucket/lake, or <state_dir>/<storage.local_dir>/lake."""
    storage = config.storage
    if storage.kind == "s3":
        return f"s3://{storage.bucket}/{LAKE_PREFIX}"
    local = storage.local_dir if storage.local_dir.is_absolute() else config.state_dir / storage.local_dir
    return str((local / LAKE_PREFIX).resolve())


class Lake:
    def __init__(self, uri: str, storage: "StorageConfig | None" = None):
        from pyarrow import fs

        self.uri = uri
        self.local = not uri.startswith("s3://")
        if not self.local:
            self.filesystem, self.root = s3_filesystem(storage), uri[len("s3://"):].rstrip("/")
        else:
            self.filesystem, self.root = fs.LocalFileSystem(), str(Path(uri))

    def write(self, table: str, batch_id: int, frame: pd.DataFrame, time_column: str) -> list[str]:
        """The batch's rows of one table, one file per event day; returns the paths written."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        written = []
        if not len(frame):
            return written
        days = frame[time_column].to_numpy().astype("datetime64[D]").astype(str)
        for day, rows in frame.groupby(days, sort=True):
            folder = f"{self.root}/{table}/{PARTITION_FIELD}={day}"
            path = f"{folder}/batch-{batch_id:012d}.parquet"
            try:
                self.filesystem.create_dir(folder, recursive=True)
                if self.local:
                    # local: write aside and rename, so a reader never sees half a file
                    partial = f"{folder}/.batch-{batch_id:012d}.partial"
                    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), partial,
                                   filesystem=self.filesystem)
                    self.filesystem.move(partial, path)
                else:  # an S3 PUT is atomic
                    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), path, filesystem=self.filesystem)
            except OSError as exc:
                raise UnavailableError(f"cannot write the lake at {self.uri}: {exc}") from None
            written.append(path)
        return written
