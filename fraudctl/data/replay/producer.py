"""The Kafka producer of a replay, and the counting of its delivery reports.

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

Light on purpose (no numpy, no pyarrow): the command line starts connecting (`Connecting`) before it
imports the rest of replay.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Sequence

from fraudctl.errors import NotFoundError, UnavailableError

if TYPE_CHECKING:
    from fraudctl.config import Config

QUEUE_MAX_MESSAGES = 1_000_000  # librdkafka's local queue; a full queue makes produce wait, never drop


def producer_config(config: "Config", on_delivery: Callable, on_error: Callable) -> dict[str, Any]:
    from fraudctl.clients.kafka import client_config

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


def open_producer(config: "Config", deliveries: Deliveries) -> tuple[Any, set[str]]:
    """A producer whose broker answered, and the broker's topics; UnavailableError within
    replay.connect_timeout."""
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
    return producer, set(metadata.topics)


def check_topics(config: "Config", known: set[str], topics: Sequence[str]) -> None:
    missing = [name for name in topics if name not in known]
    if missing:
        raise NotFoundError(f"Kafka at {config.kafka.bootstrap_servers} has no topic {', '.join(missing)}",
                            hint="`fraudctl up` creates the configured topics")


class Connecting:
    """A producer opened ahead, in a thread: the broker handshake (tens of milliseconds, spent waiting) then
    overlaps the imports of numpy and pyarrow and the reading of the file, which is most of a small replay.
    `producer` is the producer_factory to hand to replay() with the same `deliveries`; when replay fails
    before asking for it (a bad file), the connection is left to finish and be dropped on its own."""

    def __init__(self, config: "Config", deliveries: Deliveries):
        self.config = config
        self.deliveries = deliveries
        self._opened: tuple[Any, set[str]] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._open, name="replay-connect", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        try:
            self._opened = open_producer(self.config, self.deliveries)
        except BaseException as exc:  # raised in the thread that asks for the producer
            self._error = exc

    def producer(self, deliveries: Deliveries, topics: Sequence[str]):
        if deliveries is not self.deliveries:
            raise ValueError("the producer was opened with other delivery counters")
        self._thread.join()
        if self._error is not None:
            raise self._error
        producer, known = self._opened
        check_topics(self.config, known, topics)
        return producer
