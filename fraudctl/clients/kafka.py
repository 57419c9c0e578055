"""The Kafka client of fraudctl: admin (health, topics) built from config. Producers and consumers of the
data path build on `client_config`."""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator

from fraudctl.config import Config, KafkaConfig
from fraudctl.errors import ServiceFailedError, UnavailableError

# librdkafka's own log lines ("%4|...|GETPID|... retrying") would go straight to stderr, over progress bars
# and JSON-reading scripts, and they repeat what error callbacks and our messages already say. They go to
# this logger instead, which `--debug` shows (fraudctl.cli) and which is silent otherwise.
LIBRDKAFKA_LOG = logging.getLogger("fraudctl.librdkafka")
LIBRDKAFKA_LOG.addHandler(logging.NullHandler())
LIBRDKAFKA_LOG.propagate = False


def client_config(kafka: KafkaConfig, **extra: Any) -> dict[str, Any]:
    # Loopback broker: fail fast instead of librdkafka's default of retrying forever.
    return {"bootstrap.servers": kafka.bootstrap_servers, "socket.timeout.ms": 5000, "logger": LIBRDKAFKA_LOG,
            **extra}


def show_client_logs() -> None:
    """Let librdkafka's log lines through to the root logger (--debug)."""
    LIBRDKAFKA_LOG.propagate = True


def probe(kafka: KafkaConfig, timeout: float = 3.0) -> str:
    """Fetch cluster metadata; returns a one-line description or raises UnavailableError."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_config(kafka))
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception as exc:  # KafkaException carries librdkafka's reason
        raise UnavailableError(f"Kafka at {kafka.bootstrap_servers} did not answer: {exc}") from None
    return f"{len(metadata.brokers)} broker(s), {len([t for t in metadata.topics if not t.startswith('__')])} topics"


def ensure_topics(config: Config, timeout: float = 30.0) -> list[str]:
    """Create the configured topics that do not exist yet; returns the names created."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(client_config(config.kafka))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(topic.name, num_partitions=topic.partitions, replication_factor=1)
        for topic in config.kafka.topics.all()
        if topic.name not in existing
    ]
    if not wanted:
        return []
    futures = admin.create_topics(wanted, request_timeout=timeout)
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                continue
            raise ServiceFailedError(f"could not create Kafka topic {name!r}: {exc}") from None
    return created


def latest_records(kafka: KafkaConfig, topic: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The `count` latest JSON records of a topic (all partitions, ordered by Kafka timestamp), decoded."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(client_config(kafka, **{"group.id": "fraudctl-tail", "enable.auto.commit": False}))
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=timeout)
        except Exception as exc:
            raise UnavailableError(f"Kafka at {kafka.bootstrap_servers} did not answer: {exc}", hint="fraudctl up") from None
        if metadata.topics[topic].error is not None:
            raise UnavailableError(f"topic {topic}: {metadata.topics[topic].error}", hint="fraudctl up")
        assignments, wanted = [], 0
        for partition in metadata.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            if high > low:
                assignments.append(TopicPartition(topic, partition, max(low, high - count)))
                wanted += high - max(low, high - count)
        records: list[tuple[int, dict[str, Any]]] = []
        if assignments:
            consumer.assign(assignments)
            deadline = time.monotonic() + timeout
            while len(records) < wanted and time.monotonic() < deadline:
                for message in consumer.consume(num_messages=1000, timeout=0.5):
                    if message.error() is None:
                        order = (message.timestamp()[1], message.partition(), message.offset())
                        records.append((order, _decoded(message.value())))
        records.sort(key=lambda item: item[0])  # ties in time broken by partition and offset: stable output
        return [record for _, record in records[-count:]]
    finally:
        consumer.close()


def follow_records(kafka: KafkaConfig, topic: str):
    """Every record published to a topic from now on, decoded, until the caller stops iterating."""
    import uuid

    from confluent_kafka import Consumer

    consumer = Consumer(client_config(kafka, **{"group.id": f"fraudctl-follow-{uuid.uuid4().hex[:8]}",
                                                "auto.offset.reset": "latest", "enable.auto.commit": False}))
    try:
        consumer.subscribe([topic])
        while True:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                yield _decoded(message.value())
    finally:
        consumer.close()


def _decoded(value: bytes | None) -> dict[str, Any]:
    import json

    try:
        return json.loads(value) if value else {}
    except ValueError:
        return {"raw": value.decode(errors="replace")}


def end_offsets(kafka: KafkaConfig, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """Partition -> end offset (the next offset to be written) of `topic`."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(client_config(kafka, **{"group.id": "fraudctl-offsets", "enable.auto.commit": False}))
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
        except Exception as exc:
            raise UnavailableError(f"Kafka at {kafka.bootstrap_servers} did not answer: {exc}", hint="fraudctl up") from None
        if metadata.error is not None:
            raise UnavailableError(f"topic {topic}: {metadata.error}", hint="fraudctl up")
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] for p in metadata.partitions}
    finally:
        consumer.close()


def read_records(kafka: KafkaConfig, topic: str, start: dict[int, int] | None = None,
                 timeout: float = 60.0) -> "Iterator[Any]":
    """Every message of `topic` from `start` (partition -> offset; default: the beginning) to its end as it was
    when called, as confluent-kafka messages in batches (lists). Raises WaitTimeoutError when the end is not
    reached within `timeout` seconds: a partial read must not pass for a whole one."""
    from confluent_kafka import Consumer, TopicPartition

    start = start or {}
    end = end_offsets(kafka, topic, timeout=min(timeout, 10.0))
    wanted = {p: end[p] - start.get(p, 0) for p in end if end[p] > start.get(p, 0)}
    if not wanted:
        return
    consumer = Consumer(client_config(kafka, **{"group.id": "fraudctl-read", "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in wanted])
    got = dict.fromkeys(wanted, 0)
    deadline = time.monotonic() + timeout
    try:
        while any(got[p] < wanted[p] for p in wanted):
            if time.monotonic() > deadline:
                from fraudctl.errors import WaitTimeoutError

                raise WaitTimeoutError(f"read {sum(got.values()):,} of {sum(wanted.values()):,} records of {topic} "
                                       f"in {timeout:.0f}s")
            batch = []
            for message in consumer.consume(10_000, timeout=1.0):
                partition = message.partition()
                if message.error() is None and got[partition] < wanted[partition]:
                    got[partition] += 1
                    batch.append(message)
            if batch:
                yield batch
    finally:
        consumer.close()
