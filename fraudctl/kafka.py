"""The Kafka client of fraudctl: admin (health, topics) built from config. Producers and consumers of the
data path build on `client_config`."""

from __future__ import annotations

import logging
from typing import Any

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
