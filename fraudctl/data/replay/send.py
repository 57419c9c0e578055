"""Sending: the loop that hands events to librdkafka, paced, and waits for their delivery reports.

The producer and how its reports are counted are fraudctl.data.replay.producer's. Events go out in slices
(SEND_SLICE) through map() over Producer.produce, so no Python bytecode runs per event; between slices
the delivery reports are served and pacing, interrupts and fatal errors are checked.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from itertools import repeat
from operator import length_hint
from typing import Callable

import numpy as np

from fraudctl.errors import ServiceFailedError
from fraudctl.data.replay.producer import Deliveries
from fraudctl.data.replay.sequence import Outgoing

SEND_SLICE = 8_192  # events handed to librdkafka between two polls of its delivery reports
# librdkafka waits in whole milliseconds: a shorter poll timeout is no wait at all, and a paced replay
# (an event due every millisecond or less) spun a core; on two cores that starved the scorer it measured.
MIN_PACE_WAIT = 0.001


class Sender:
    def __init__(self, producer, deliveries: Deliveries, tx_topic: str, label_topic: str | None,
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
                    poll(min(max(out.due[i] - now, MIN_PACE_WAIT), 0.1))
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


