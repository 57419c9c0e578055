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

from fraudctl.contracts import TRAINING_COLUMNS
from fraudctl.errors import UnavailableError

if TYPE_CHECKING:
    from fraudctl.config import Config, StorageConfig

TRANSACTIONS, LABELS = "transactions", "labels"
PARTITION_FIELD = "event_date"


def s3_filesystem(storage: "StorageConfig | None"):
    """A pyarrow S3 filesystem for the storage's endpoint and keys (none: the default AWS chain). Pass the
    runtime's `storage()`, which fills in the stack's own store."""
    from pyarrow import fs

    from fraudctl.clients.objectstore import relax_checksums

    relax_checksums()  # before the SDK builds its first client
    kwargs: dict[str, Any] = {}
    if storage is not None:
        kwargs["region"] = storage.region
        if storage.endpoint_url:
            scheme, _, host = storage.endpoint_url.partition("://")
            kwargs["endpoint_override"] = host or scheme
            kwargs["scheme"] = scheme if host else "https"
            kwargs["connect_timeout"] = kwargs["request_timeout"] = 10.0  # a store that is down fails fast
        if storage.access_key_id and storage.secret_access_key:
            kwargs["access_key"] = storage.access_key_id.get_secret_value()
            kwargs["secret_key"] = storage.secret_access_key.get_secret_value()
    return fs.S3FileSystem(**kwargs)


def lake_uri(config: "Config") -> str:
    """Where the lake lives: s3://<bucket>/<lake_prefix>, or <state_dir>/<storage.local_dir>/<lake_prefix>."""
    storage = config.storage
    if storage.kind == "s3":
        return f"s3://{storage.bucket}/{storage.lake_prefix}"
    local = storage.local_dir if storage.local_dir.is_absolute() else config.state_dir / storage.local_dir
    return str((local / storage.lake_prefix).resolve())


class Lake:
    def __init__(self, uri: str, storage: "StorageConfig | None" = None):
        from pyarrow import fs

        self.uri = uri
        self.local = not uri.startswith("s3://")
        self.where = "" if self.local or storage is None else f" on {_describe(storage)}"
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
                if self.local:
                    # local: write aside and rename, so a reader never sees half a file
                    self.filesystem.create_dir(folder, recursive=True)
                    partial = f"{folder}/.batch-{batch_id:012d}.partial"
                    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), partial,
                                   filesystem=self.filesystem)
                    self.filesystem.move(partial, path)
                else:  # an S3 PUT is atomic, and needs no folder (creating its markers cost 5-10 ms a file)
                    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), path, filesystem=self.filesystem)
            except OSError as exc:
                raise UnavailableError(f"cannot write the lake at {self.uri}{self.where}: {exc}") from None
            written.append(path)
        return written


def lake_for(config: "Config", storage: "StorageConfig") -> Lake:
    """The configured lake on `storage`: the runtime's answer (`Runtime.storage()`), with the stack's own
    store's endpoint and keys filled in."""
    return Lake(lake_uri(config), storage)


# ------------------------------------------------------------------------------------------ reading


def _describe(storage: "StorageConfig") -> str:
    from fraudctl.clients.objectstore import describe

    return describe(storage)


def _partition_files(filesystem, folder: str, since, until, where: str = "") -> list[str]:
    """The parquet files under <folder>/event_date=D/ for since <= D < until (either bound optional)."""
    from pyarrow import fs

    try:
        infos = filesystem.get_file_info(fs.FileSelector(folder, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise UnavailableError(f"cannot list the lake at {folder}{where}: {exc}") from None
    files = []
    for info in infos:
        if info.type != fs.FileType.File or not info.path.endswith(".parquet"):
            continue
        parent = info.path.rsplit("/", 2)[-2]
        if not parent.startswith(f"{PARTITION_FIELD}="):
            continue
        day = parent.split("=", 1)[1]
        if (since is not None and day < since.isoformat()) or (until is not None and day >= until.isoformat()):
            continue
        files.append(info.path)
    return sorted(files)


def _read_files(filesystem, files: list[str], where: str = "") -> pd.DataFrame:
    import pyarrow.parquet as pq

    frames = []
    for path in files:
        try:
            frames.append(pq.read_table(path, filesystem=filesystem).to_pandas())
        except OSError as exc:
            raise UnavailableError(f"cannot read the lake file {path}{where}: {exc}") from None
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _naive_utc(values: pd.Series) -> pd.Series:
    values = pd.to_datetime(values, utc=True)
    return values.dt.tz_localize(None).astype("datetime64[ns]")


def read_training_frame(lake: "Lake | Config | str", storage: "StorageConfig | None" = None, *,
                        since=None, until=None, cutoff=None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The lake's transactions of the event days since <= day < until, in the contract layout, with
    `is_fraud` from the labels that had arrived by `cutoff` (NaN where none had), and the lineage.

    The lake is at-least-once (a re-run batch may have written the same event under another batch id):
    transactions and labels are deduplicated by transaction_id (the earliest Kafka record wins, the label
    with the latest arrival). A label has arrived when its `labelled_at` (else its Kafka timestamp) is not
    after `cutoff` (naive UTC, or aware); no `cutoff` takes every label.
    """
    if not isinstance(lake, Lake):
        if isinstance(lake, str):
            lake = Lake(lake, storage)
        else:  # a Config: the storage is the runtime's answer
            lake = lake_for(lake, storage)
    tx_files = _partition_files(lake.filesystem, f"{lake.root}/{TRANSACTIONS}", since, until, lake.where)
    label_files = _partition_files(lake.filesystem, f"{lake.root}/{LABELS}", since, until, lake.where)
    transactions = _read_files(lake.filesystem, tx_files, lake.where)
    labels = _read_files(lake.filesystem, label_files, lake.where)

    tx_rows = len(transactions)
    if tx_rows:
        order = ["timestamp"] if "timestamp" in transactions else []
        transactions = transactions.sort_values(order or ["transaction_id"], kind="mergesort")
        transactions = transactions.drop_duplicates("transaction_id", keep="first")
        transactions["tx_datetime"] = _naive_utc(transactions["tx_datetime"])
        frame = transactions[[c for c in TRAINING_COLUMNS if c != "is_fraud"]].copy()
    else:
        frame = pd.DataFrame({c: pd.Series(dtype="object") for c in TRAINING_COLUMNS if c != "is_fraud"})
        frame["tx_datetime"] = frame["tx_datetime"].astype("datetime64[ns]")

    label_rows, late = len(labels), 0
    if label_rows:
        arrival_column = "labelled_at" if "labelled_at" in labels else ("timestamp" if "timestamp" in labels else None)
        if arrival_column == "labelled_at":
            labels["_arrived"] = _naive_utc(labels["labelled_at"])
        elif arrival_column == "timestamp":  # Kafka nanoseconds since the epoch
            labels["_arrived"] = pd.to_datetime(labels["timestamp"], unit="ns")
        if cutoff is not None and arrival_column is not None:
            limit = pd.Timestamp(cutoff)
            limit = limit.tz_convert("UTC").tz_localize(None) if limit.tzinfo else limit
            arrived = labels["_arrived"] <= limit
            late = int((~arrived).sum())
            labels = labels[arrived]
        if arrival_column is not None:
            labels = labels.sort_values("_arrived", kind="mergesort")
        labels = labels.drop_duplicates("transaction_id", keep="last")
    label_map = (labels.set_index("transaction_id")["is_fraud"] if len(labels)
                 else pd.Series(dtype="float64"))
    frame["is_fraud"] = frame["transaction_id"].map(label_map).astype("float64")
    frame = frame.sort_values(["tx_datetime", "transaction_id"], kind="mergesort").reset_index(drop=True)
    times = frame["tx_datetime"]
    lineage = {
        "uri": lake.uri,
        "since": since.isoformat() if since is not None else None,
        "until": until.isoformat() if until is not None else None,
        "cutoff": str(cutoff) if cutoff is not None else None,
        "transaction_files": tx_files,
        "label_files": label_files,
        "transaction_rows_read": tx_rows,
        "label_rows_read": label_rows,
        "duplicates_dropped": tx_rows - len(frame),
        "labels_after_cutoff": late,
        "rows": int(len(frame)),
        "labelled": int(frame["is_fraud"].notna().sum()),
        "frauds": int((frame["is_fraud"] == 1).sum()),
        "first_tx": str(times.min()) if len(frame) else None,
        "last_tx": str(times.max()) if len(frame) else None,
    }
    return frame, lineage


def event_days(lake: Lake, table: str = TRANSACTIONS) -> list[str]:
    """The event days (YYYY-MM-DD) the lake holds files for, in order."""
    files = _partition_files(lake.filesystem, f"{lake.root}/{table}", None, None, lake.where)
    return sorted({path.rsplit("/", 2)[-2].split("=", 1)[1] for path in files})
