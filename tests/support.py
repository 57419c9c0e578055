"""Helpers for integration tests, kept out of the shipped package: a topic reader and a module's own
config. What benchmarks need too (a shifted config, a seeded lake) lives in bench/support.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from fraudctl.config import KafkaConfig

# A module's topics have at most two partitions (the count these modules always used): still more than one,
# so keys are spread, and each partition is one more Spark task per micro-batch on a two-core machine.
MODULE_PARTITIONS = 2


def read_topic(kafka: KafkaConfig, topic: str, start: dict[int, int] | None = None, timeout: float = 60.0,
               with_headers: bool = False) -> list[dict[str, Any]]:
    """Every record of `topic` from `start` (default: the beginning) to its current end, as dicts with the
    decoded JSON value (or raw bytes under `raw`), key, partition, offset, Kafka timestamp (ms)."""
    import json

    from fraudctl.clients.kafka import read_records

    records: list[dict[str, Any]] = []
    for batch in read_records(kafka, topic, start, timeout=timeout):
        for message in batch:
            value = message.value()
            try:
                decoded = json.loads(value)
            except (TypeError, ValueError):
                decoded = None
            record = {"value": decoded, "raw": value, "key": message.key(), "partition": message.partition(),
                      "offset": message.offset(), "timestamp": message.timestamp()[1]}
            if with_headers:
                record["headers"] = {k: v.decode() for k, v in (message.headers() or [])}
            records.append(record)
    return records


def module_config(stack_config_path: Path, folder: Path, suffix: str, **sections: Mapping[str, Any]) -> Path:
    """folder/fraudctl.yaml: the session stack's config with topics of the module's own (names + `suffix`,
    created here), so a module's events never mix with the ones other modules replay, and `sections`
    merged over it (e.g. scorer={...})."""
    from fraudctl.config import load_config
    from fraudctl.clients.kafka import ensure_topics

    data = yaml.safe_load(stack_config_path.read_text())
    topics = load_config(stack_config_path, env={}).kafka.topics
    data["kafka"]["topics"] = {}
    for kind in type(topics).model_fields:
        topic = getattr(topics, kind)
        data["kafka"]["topics"][kind] = {"name": f"{topic.name}{suffix}",
                                         "partitions": min(topic.partitions, MODULE_PARTITIONS)}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path = folder / "fraudctl.yaml"
    path.write_text(yaml.safe_dump(data))
    ensure_topics(load_config(path, env={}))
    return path


def assert_the_loop_ran(loop: Mapping[str, Any]) -> None:
    """`stack/loop.sh` (its CompletedProcess under `result`) ran its 9 steps and wrote a summary (`summary`)."""
    result = loop["result"]
    assert result.returncode == 0, f"stack/loop.sh failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    steps = [line for line in result.stdout.splitlines() if "==> [" in line]
    assert len(steps) == 9 and "[9/9] summary" in steps[-1], steps
    assert loop["summary"] is not None
