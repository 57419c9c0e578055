"""The scorer's online feature state: recent transactions with the labels received, on the driver, made
durable in a local folder and fenced by Spark's micro-batch id.

Why here and not Redis or Spark's state store: the features need, per micro-batch, every earlier
transaction of the batch's customers and terminals, which `online_feature_values` reads as arrays. In
driver memory that is an integer lookup and a take (milliseconds); Spark's Python stateful
operators cost 10-100x more on two cores (README, "The streaming scorer"), and Redis would add a round trip
and a serialisation per key. Durability comes from an append-only log on disk:

    <folder>/<batch id>/           one committed batch: its new transactions and its labels (Arrow IPC)
    <folder>/snapshot-<batch id>/  everything up to that batch, compacted; the older folders are deleted

A batch's folder appears by an atomic rename after the batch's output has been flushed, so the committed
batches are exactly those on disk. A batch id at or below the last committed one is a Spark re-run of
output already delivered: `is_committed` says so and the scorer skips it, so nothing counts twice. A crash
before the commit loses only memory: the re-run batch finds the state as it was before it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from fraudctl.contracts import AMOUNT, CUSTOMER_ID, IS_FRAUD, TERMINAL_ID, TRANSACTION_ID, TX_DATETIME
from fraudctl.features import FeatureSpec, GroupRows, online_feature_values

HISTORY_COLUMNS = [TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, AMOUNT]
LABEL_COLUMNS = [TRANSACTION_ID, TX_DATETIME, IS_FRAUD]
_TX_FILE, _LABEL_FILE, _INTENT_FILE = "transactions.arrow", "labels.arrow", "intent.json"
_SNAPSHOT = "snapshot-"
PRUNE_SLACK_DAYS = 1


@dataclass(frozen=True)
class Intent:
    """What a batch's output is built with, recorded before the output, so that a re-run after a crash
    sends the same bytes (the same model version, rule set version and scored time)."""

    batch_id: int
    model_version: str
    scored_time: str
    rules_version: int | None = None  # the rule set's (None: written before rules existed, or none in use)
    explained_alerts: int | None = None  # scorer.explained_alerts_per_batch (None: no cap, or written before it)


class BatchLog:
    """The state's folder (the layout above): files only, what is in memory is FeatureState's. A folder left
    half written (`.<name>.partial`) by a crash is deleted on opening."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        for entry in folder.glob(".*.partial"):
            shutil.rmtree(entry, ignore_errors=True)

    def stage(self, batch_id: int, transactions: pd.DataFrame, labels: pd.DataFrame) -> None:
        staging = self.folder / f".{batch_id}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        _write(staging / _TX_FILE, transactions)
        _write(staging / _LABEL_FILE, labels)

    def commit(self, batch_id: int) -> None:
        os.replace(self.folder / f".{batch_id}.partial", self.folder / f"{batch_id:012d}")

    def write_snapshot(self, batch_id: int, history: pd.DataFrame, pending_labels: pd.DataFrame) -> None:
        name = f"{_SNAPSHOT}{batch_id:012d}"
        staging = self.folder / f".{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        _write(staging / _TX_FILE, history)
        _write(staging / _LABEL_FILE, pending_labels)
        os.replace(staging, self.folder / name)
        for entry in self.folder.iterdir():
            covered = entry.name.isdigit() and int(entry.name) <= batch_id
            if entry.name != name and (covered or entry.name.startswith(_SNAPSHOT)):
                shutil.rmtree(entry, ignore_errors=True)

    def latest_snapshot(self) -> tuple[int, pd.DataFrame, pd.DataFrame] | None:
        """The newest snapshot: its batch id, history and pending labels."""
        snapshots = sorted(p for p in self.folder.glob(f"{_SNAPSHOT}*") if p.is_dir())
        if not snapshots:
            return None
        latest = snapshots[-1]
        return (int(latest.name[len(_SNAPSHOT):]), _read(latest / _TX_FILE, HISTORY_COLUMNS + [IS_FRAUD]),
                _read(latest / _LABEL_FILE, LABEL_COLUMNS))

    def batches(self, after: int) -> Iterator[tuple[int, pd.DataFrame, pd.DataFrame]]:
        """The batches committed after batch `after`, in the order they ran: id, labels, transactions."""
        for entry in sorted(p for p in self.folder.iterdir() if p.name.isdigit()):
            batch_id = int(entry.name)
            if batch_id > after:
                yield batch_id, _read(entry / _LABEL_FILE, LABEL_COLUMNS), _read(entry / _TX_FILE, HISTORY_COLUMNS)

    def intent(self, batch_id: int) -> Intent | None:
        try:
            data = json.loads((self.folder / _INTENT_FILE).read_text())
        except (OSError, ValueError):
            return None
        return Intent(**data) if data.get("batch_id") == batch_id else None

    def record_intent(self, intent: Intent) -> None:
        path = self.folder / _INTENT_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(intent.__dict__))
        os.replace(tmp, path)

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.folder.rglob("*") if f.is_file())


class FeatureState:
    def __init__(self, folder: Path, spec: FeatureSpec, *, snapshot_every: int = 200):
        self.batch_log = BatchLog(folder)
        self.spec = spec
        self.snapshot_every = snapshot_every
        self.history = _empty(HISTORY_COLUMNS + [IS_FRAUD])
        self.pending_labels = _empty(LABEL_COLUMNS)  # labels whose transaction has not been seen (yet)
        self.last_batch_id = -1
        # transaction id -> its sequence number (rows get increasing numbers as they are added), and the
        # history's numbers, increasing down the rows: a label finds its row by a binary search
        self._sequence_of: dict = {}
        self._sequence = np.zeros(0, dtype="int64")
        # customer / terminal id -> integer code, and the history's codes (rebuilt when the history changes)
        self._customer_codes: dict = {}
        self._terminal_codes: dict = {}
        self._code_columns: dict[str, np.ndarray] = {}
        self._batch_labels = _empty(LABEL_COLUMNS)
        self._staged: int | None = None  # the batch whose files `stage` wrote
        self._since_snapshot = 0
        self._load()

    @property
    def folder(self) -> Path:
        return self.batch_log.folder

    @folder.setter
    def folder(self, folder: Path) -> None:  # where the next files go; memory is kept
        self.batch_log.folder = folder

    # -- a batch's life: its labels, its features, its commit -----------------------------------------------
    def is_committed(self, batch_id: int) -> bool:
        return batch_id <= self.last_batch_id

    def seen(self, transaction_ids: pd.Series) -> np.ndarray:
        """Which of these transactions the state holds already."""
        return _member(transaction_ids, self._sequence_of)

    def apply_labels(self, labels: pd.DataFrame) -> None:
        """A batch's labels, before its transactions are featured (they are committed with the batch)."""
        self._batch_labels = labels[LABEL_COLUMNS].reset_index(drop=True)
        self._apply(self._batch_labels)

    def features(self, transactions: pd.DataFrame) -> pd.DataFrame:
        """Features of a batch of transactions new to the state (none of their ids is `seen`): the batch with
        the feature columns."""
        batch = transactions.copy()
        batch[IS_FRAUD] = self._labels_for(batch)
        history = self.history
        times, batch_times = (_ns(frame[TX_DATETIME]) for frame in (history, batch))
        ids, batch_ids = history[TRANSACTION_ID].to_numpy(), batch[TRANSACTION_ID].to_numpy()

        def rows_of(reached: tuple[np.ndarray, np.ndarray], column: str) -> GroupRows:
            # Arrays of the reached rows only: taking them from the history frame copied every column of
            # ~160 k rows, object ids included, and the features then copied them again.
            rows, codes = reached
            values = np.concatenate([history[column].to_numpy(dtype="float64")[rows],
                                     batch[column].to_numpy(dtype="float64")])
            return GroupRows(codes, np.concatenate([times[rows], batch_times]), _IdsOf(ids, rows, batch_ids),
                             np.nan_to_num(values, nan=0.0))  # NaN only in is_fraud: no label, not fraud

        customers, terminals = self._reach(batch)
        values = online_feature_values(rows_of(customers, AMOUNT), rows_of(terminals, IS_FRAUD), len(batch),
                                       self.spec)
        # The features beside the batch in one concat (setting 21 columns one by one took ~5 ms a batch);
        # `amount` is both a field and a feature.
        batch[AMOUNT] = values[AMOUNT]
        added = pd.DataFrame({name: values[name] for name in self.spec.feature_names if name != AMOUNT},
                             index=batch.index)
        return pd.concat([batch, added], axis=1)

    def _reach(self, batch: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
        """`_reach_group` for the customers, then the terminals."""
        reached = []
        for column, codes in ((CUSTOMER_ID, self._customer_codes), (TERMINAL_ID, self._terminal_codes)):
            if column not in self._code_columns:
                self._code_columns[column] = self.history[column].map(codes).to_numpy(dtype="int64") \
                    if len(self.history) else np.zeros(0, dtype="int64")
            reached.append(_reach_group(batch[column].to_numpy(), codes, self._code_columns[column]))
        return reached

    def stage(self, batch_id: int, transactions: pd.DataFrame, labels: pd.DataFrame) -> None:
        """Write the batch's files aside (`.<id>.partial`, ignored and deleted on load) before its output is
        out, e.g. in a thread while the batch is scored; `commit` then only renames them into place. Touches
        no memory: safe beside `features`."""
        self.batch_log.stage(batch_id, transactions[HISTORY_COLUMNS].reset_index(drop=True),
                       labels[LABEL_COLUMNS].reset_index(drop=True))
        self._staged = batch_id

    def commit(self, batch_id: int, transactions: pd.DataFrame, *, defer_snapshot: bool = False) -> None:
        """Make the batch durable (after its output is flushed), then fold it into memory. The batch's labels
        are those `apply_labels` took; its files those `stage` wrote, or written now. A snapshot falls due
        every `snapshot_every` batches: written here, or, with `defer_snapshot`, left to the caller
        (`snapshot_due`, `snapshot_parts`, `write_snapshot`)."""
        new = transactions[HISTORY_COLUMNS].reset_index(drop=True)
        if self._staged != batch_id:
            self.stage(batch_id, new, self._batch_labels)
        self.batch_log.commit(batch_id)
        self._staged = None
        self._add(new)
        self._batch_labels = _empty(LABEL_COLUMNS)
        self.last_batch_id = batch_id
        self._since_snapshot += 1
        if self._since_snapshot >= self.snapshot_every and not defer_snapshot:
            self.snapshot()

    @property
    def snapshot_due(self) -> bool:
        return self._since_snapshot >= self.snapshot_every

    def snapshot(self) -> None:
        """Compact everything committed into one folder and drop the folders it covers."""
        self.write_snapshot(self.snapshot_parts())

    def snapshot_parts(self) -> tuple[int, pd.DataFrame, pd.DataFrame] | None:
        """What a snapshot holds, taken now, for `write_snapshot`, which may run in a thread while the next
        batches go on. Later batches replace the history and the pending labels by new frames, except the
        labels, which `_apply` writes into the history's is_fraud in place: that column alone is copied (a
        deep copy of the history took 30-40 ms)."""
        if self.last_batch_id < 0:
            return None
        self._since_snapshot = 0
        history = self.history.copy(deep=False)
        history[IS_FRAUD] = self.history[IS_FRAUD].to_numpy(dtype="float64", copy=True)
        return self.last_batch_id, history, self.pending_labels

    def write_snapshot(self, parts: tuple[int, pd.DataFrame, pd.DataFrame] | None) -> None:
        """Write a snapshot taken by `snapshot_parts` and drop the folders it covers. Batches committed since
        it was taken have higher ids: their folders stay."""
        if parts is not None:
            self.batch_log.write_snapshot(*parts)

    # -- intents --------------------------------------------------------------------------------------------
    def intent(self, batch_id: int) -> Intent | None:
        """The intent a run that crashed before committing this batch recorded for it."""
        return self.batch_log.intent(batch_id)

    def record_intent(self, intent: Intent) -> None:
        self.batch_log.record_intent(intent)

    # -- figures --------------------------------------------------------------------------------------------
    def size(self) -> dict[str, int]:
        disk = self.batch_log.disk_bytes()
        memory = _memory_bytes(self.history) + _memory_bytes(self.pending_labels)
        return {"transactions": len(self.history), "labelled": int(self.history[IS_FRAUD].notna().sum()),
                "pending_labels": len(self.pending_labels), "disk_bytes": int(disk), "memory_bytes": int(memory)}

    # -- internals ------------------------------------------------------------------------------------------
    def _labels_for(self, batch: pd.DataFrame) -> np.ndarray:
        """is_fraud of new transactions whose labels came first (NaN for the others)."""
        if not len(self.pending_labels):
            return np.full(len(batch), np.nan)
        known = self.pending_labels.drop_duplicates(TRANSACTION_ID, keep="last").set_index(TRANSACTION_ID)[IS_FRAUD]
        return batch[TRANSACTION_ID].map(known).to_numpy(dtype="float64")

    def _apply(self, labels: pd.DataFrame) -> None:
        if not len(labels):
            return
        labels = labels.drop_duplicates(TRANSACTION_ID, keep="last")
        known = _member(labels[TRANSACTION_ID], self._sequence_of)
        if known.any():
            # By sequence number, not by matching ids: `isin` over every remembered id took 10-13 ms a batch.
            ids = labels.loc[known, TRANSACTION_ID]
            sequences = np.fromiter((self._sequence_of[i] for i in ids), dtype="int64", count=len(ids))
            rows = np.searchsorted(self._sequence, sequences)
            self.history.iloc[rows, self.history.columns.get_loc(IS_FRAUD)] = \
                labels.loc[known, IS_FRAUD].to_numpy(dtype="float64")
        if (~known).any():
            self.pending_labels = pd.concat([self.pending_labels, labels[~known]], ignore_index=True)

    def _add(self, transactions: pd.DataFrame) -> None:
        if len(transactions):
            added = transactions.assign(**{IS_FRAUD: self._labels_for(transactions)})
            # What the new transactions put out of reach goes first, so that the concat is the one copy of
            # the history (pruning after it copied the whole history a second time, every batch).
            self._prune_history(self._horizon(added[TX_DATETIME].max()))
            self.history = pd.concat([self.history, added], ignore_index=True)
            self._number(transactions[TRANSACTION_ID])
            for column, codes in ((CUSTOMER_ID, self._customer_codes), (TERMINAL_ID, self._terminal_codes)):
                keys = transactions[column].to_numpy()
                for key in keys:
                    codes.setdefault(key, len(codes))
                if column in self._code_columns:
                    new_codes = np.fromiter((codes[key] for key in keys), dtype="int64", count=len(keys))
                    self._code_columns[column] = np.concatenate([self._code_columns[column], new_codes])
            if len(self.pending_labels):
                self.pending_labels = self.pending_labels[
                    ~self.pending_labels[TRANSACTION_ID].isin(transactions[TRANSACTION_ID])].reset_index(drop=True)
        self._prune()

    def _prune(self) -> None:
        """Forget what no window of a later transaction can reach: older than history_days, plus
        PRUNE_SLACK_DAYS, before the latest event time seen. The slack is for transactions that arrive a
        little behind the newest one (Kafka partitions are read side by side, not in one time order): their
        windows reach back past the newest one's."""
        if not len(self.history):
            return
        horizon = self._horizon()
        self._prune_history(horizon)
        if len(self.pending_labels):
            self.pending_labels = self.pending_labels[self.pending_labels[TX_DATETIME] > horizon].reset_index(drop=True)

    def _horizon(self, newest=None) -> pd.Timestamp:
        latest = self.history[TX_DATETIME].max() if len(self.history) else None
        if latest is None or pd.isna(latest) or (newest is not None and newest > latest):
            latest = newest
        return latest - pd.Timedelta(days=self.spec.history_days + PRUNE_SLACK_DAYS)

    def _prune_history(self, horizon) -> None:
        if not len(self.history) or pd.isna(horizon):
            return
        old = (self.history[TX_DATETIME] <= horizon).to_numpy()
        if not old.any():
            return
        for transaction_id in self.history[TRANSACTION_ID].to_numpy()[old]:
            del self._sequence_of[transaction_id]
        first_kept = int(np.argmin(old)) if not old.all() else len(old)
        if not old[first_kept:].any():
            # The usual case: the oldest rows go, and they come first (the history is appended in time order,
            # nearly). A slice keeps the rest without copying it.
            self.history = self.history.iloc[first_kept:]
            self.history.index = pd.RangeIndex(len(self.history))
            self._code_columns = {name: codes[first_kept:] for name, codes in self._code_columns.items()}
            self._sequence = self._sequence[first_kept:]
        else:
            self.history = self.history[~old].reset_index(drop=True)
            self._code_columns = {name: codes[~old] for name, codes in self._code_columns.items()}
            self._sequence = self._sequence[~old]

    def _number(self, transaction_ids: pd.Series) -> None:
        """Sequence numbers for rows just appended to the history."""
        first = int(self._sequence[-1]) + 1 if len(self._sequence) else 0
        numbers = np.arange(first, first + len(transaction_ids), dtype="int64")
        self._sequence_of.update(zip(transaction_ids, numbers.tolist()))
        self._sequence = np.concatenate([self._sequence, numbers])

    def _load(self) -> None:
        snapshot = self.batch_log.latest_snapshot()
        if snapshot is not None:
            self.last_batch_id, self.history, self.pending_labels = snapshot
            self._number(self.history[TRANSACTION_ID])
            for column, codes in ((CUSTOMER_ID, self._customer_codes), (TERMINAL_ID, self._terminal_codes)):
                for key in self.history[column].unique():
                    codes.setdefault(key, len(codes))
        for batch_id, labels, transactions in self.batch_log.batches(after=self.last_batch_id):
            # in the order they ran: labels first, then transactions
            self._apply(labels)
            self._add(transactions)
            self.last_batch_id = batch_id
            self._since_snapshot += 1


class _IdsOf:
    """The transaction ids of some history rows then of a batch, looked up one at a time: the features read
    ids only to order two rows of one group at the same time, rare enough that copying ~160 k ids a batch
    (5 ms) cost more."""

    def __init__(self, history_ids: np.ndarray, rows: np.ndarray, batch_ids: np.ndarray):
        self._history_ids, self._rows, self._batch_ids = history_ids, rows, batch_ids

    def __getitem__(self, position: int):
        if position < len(self._rows):
            return self._history_ids[self._rows[position]]
        return self._batch_ids[position - len(self._rows)]


def _reach_group(keys: np.ndarray, codes: dict, code_column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the history rows of the batch's groups (`keys`: its customers, or terminals), found by
    integer codes (hashing every remembered id each batch would cost more than the features), and group
    codes of those rows then of the batch's rows for the features' grouping: the batch's groups numbered
    from 0, known ones first, so that they sort fast. `codes`: id -> code; `code_column`: the history's."""
    known = np.fromiter((codes.get(key, -1) for key in keys), dtype="int64", count=len(keys))
    new = known < 0
    wanted = np.zeros(len(codes) + 1, dtype=bool)
    wanted[known[~new]] = True
    rows = np.flatnonzero(wanted[code_column])
    dense = np.cumsum(wanted) - 1  # a wanted code -> its rank among the wanted ones
    batch_codes = dense[np.where(new, len(codes), known)]
    if new.any():
        batch_codes[new] = int(wanted.sum()) + pd.factorize(keys[new], sort=False)[0]
    return rows, np.concatenate([dense[code_column[rows]], batch_codes])


def _ns(times: pd.Series) -> np.ndarray:
    """Event times (naive UTC, as decoded and kept) as int64 nanoseconds."""
    return times.to_numpy(dtype="datetime64[ns]").view("int64")


def _member(values: pd.Series, ids: set) -> np.ndarray:
    """values.isin(ids) in the batch's time: pandas' isin turns the set (every id of the history, hundreds of
    thousands) into an array and a hash table on each call, tens of milliseconds a batch on two cores."""
    return np.fromiter((value in ids for value in values), dtype=bool, count=len(values))


def _memory_bytes(frame: pd.DataFrame, sample: int = 2000) -> int:
    """The frame's memory, its text columns estimated from `sample` evenly spaced values: pandas' exact
    `memory_usage(deep=True)` visits every id and held the GIL 70-110 ms for a 370 k-row history, a pause
    in whichever batch was running (the status asks every 30 s)."""
    total = int(frame.memory_usage(index=True, deep=False).sum())
    for column in frame.columns:
        values = frame[column].to_numpy()
        if values.dtype == object and len(values):
            picked = values[np.linspace(0, len(values) - 1, min(sample, len(values))).astype(np.int64)]
            total += int(sum(sys.getsizeof(v) for v in picked) / len(picked) * len(values))
    return total


def _empty(columns: list[str]) -> pd.DataFrame:
    types = {TRANSACTION_ID: object, TX_DATETIME: "datetime64[ns]", CUSTOMER_ID: object, TERMINAL_ID: object,
             AMOUNT: "float64", IS_FRAUD: "float64"}
    return pd.DataFrame({c: pd.Series(dtype=types[c]) for c in columns})


def _write(path: Path, frame: pd.DataFrame) -> None:
    import pyarrow as pa
    import pyarrow.feather as feather

    feather.write_feather(pa.Table.from_pandas(frame, preserve_index=False), path, compression="uncompressed")


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    import pyarrow.feather as feather

    frame = feather.read_table(path).to_pandas()
    return frame[columns] if len(frame) else _empty(columns)
