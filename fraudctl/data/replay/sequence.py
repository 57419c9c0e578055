"""Sequencing: delayed label events merged among the transactions in event-time order, and pacing.

A label is due at its transaction's event time + the label delay; it is produced just before the first
transaction at or after that time, and those due after the last transaction follow at the end
(`Sequencer.finish`). With --rate or --speedup each event also gets the time it is due after the start of
sending. The outgoing events become Python strings here, in the reading thread, so the producing thread
only hands them to librdkafka.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fraudctl.data.layout import US_PER_SECOND
from fraudctl.data.replay.arrow import from_numpy, numbers, str_objects, strings
from fraudctl.data.replay.encode import EncodedChunk

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


class Sequencer:
    """Merges delayed labels into the transaction stream in event-time order and computes pacing."""

    def __init__(self, rate: float | None, speedup: float | None):
        self.rate, self.speedup = rate, speedup
        self.watermark: int | None = None  # latest transaction time so far
        self.origin: int | None = None  # first transaction time (speedup)
        self.tx_count = 0
        self.last_due = 0.0
        self._pending_values = strings([])
        self._pending_keys = strings([])
        self._pending_times = np.zeros(0, dtype=np.int64)

    @property
    def pending(self) -> int:
        return len(self._pending_times)

    def add(self, chunk: EncodedChunk) -> Outgoing:
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
        values = pa.concat_arrays([chunk.tx_values, label_values]).take(from_numpy(order)) if due_labels \
            else chunk.tx_values
        keys = pa.concat_arrays([chunk.keys, label_keys]).take(from_numpy(order)) if due_labels else chunk.keys
        is_label = order >= n
        times = np.concatenate([chunk.times, label_times])[order]
        tx_index = self.tx_count + np.concatenate([np.arange(n), position])[order]
        due = self._due(times, tx_index)
        self.tx_count += n
        rows = np.concatenate([chunk.rows, np.full(due_labels, -1, dtype=np.int64)])[order]
        return Outgoing(str_objects(values), key_objects(keys), is_label, due, n, due_labels, out_of_order,
                        np.maximum.accumulate(rows))

    def finish(self) -> Outgoing:
        """The labels due after the last transaction."""
        values, keys, times = self._pop(self.pending)
        due = self._due(times, np.full(len(times), self.tx_count))
        return Outgoing(str_objects(values), key_objects(keys), np.ones(len(times), dtype=bool), due, 0,
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
        sorted_already = len(times) < 2 or bool((np.diff(times) >= 0).all())
        if self.pending and times[0] < self._pending_times[-1] or not sorted_already:
            all_times = np.concatenate([self._pending_times, times])
            order = np.argsort(all_times, kind="stable")
            take = from_numpy(order)
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


def key_objects(keys: "pa.Array") -> list[str]:
    """Keys as Python strings, one object per distinct key when they repeat (cheaper than one per row)."""
    if len(keys) < 1024:
        return str_objects(keys)
    encoded = keys.dictionary_encode()
    if len(encoded.dictionary) > len(keys) // 2:
        return str_objects(keys)
    table = np.array(str_objects(encoded.dictionary), dtype=object)
    return table[numbers(encoded.indices, 0)].tolist()


