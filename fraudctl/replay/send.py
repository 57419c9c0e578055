"""Sending: the idempotent producer, its delivery reports, and the loop that hands events to librdkafka.

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
"""

from __future__ import annotations

import threading
import time
from collections import deque
from itertools import repeat
from operator import length_hint
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from fraudctl.errors import NotFoundError, ServiceFailedError, UnavailableError
from fraudctl.replay.sequence import Outgoing

if TYPE_CHECKING:
    from fraudctl.config import Config

SEND_SLICE = 8_192  # events handed to librdkafka between two polls of its delivery reports
QUEUE_MAX_MESSAGES = 1_000_000  # librdkafka's local queue; a full queue makes produce wait, never drop

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


class Deliveries:
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


def connect(config: "Config", deliveries: Deliveries, topics: Sequence[str]):
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


