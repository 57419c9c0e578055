"""Helpers for tests and benchmarks, kept out of the shipped package: a second native stack's config on
shifted ports, Kafka end offsets to count what a run delivered, and a topic reader.

Benchmarks import it as `tests.support` after putting the repository root on sys.path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from fraudctl.config import Config, KafkaConfig


def config_ports(config: Config | None = None) -> dict[str, dict[str, int]]:
    """Every port of `config` (default: the defaults), by section: {"kafka": {"port": 9092, ...}, ...}."""
    config = Config() if config is None else config
    ports = {}
    for name in type(config).model_fields:
        section = getattr(config, name)
        fields = getattr(type(section), "model_fields", {})
        found = {key: getattr(section, key) for key in fields if key == "port" or key.endswith("_port")}
        if found:
            ports[name] = found
    return ports


def write_shifted_config(folder: Path, offset: int, **sections: Mapping[str, Any]) -> Path:
    """folder/fraudctl.yaml for a second native stack: every port moved by `offset`, state in folder/.fraudctl,
    then `sections` merged over it (e.g. runtime={"stop_timeout": 20})."""
    data: dict[str, dict[str, Any]] = {name: {key: port + offset for key, port in ports.items()}
                                       for name, ports in config_ports().items()}
    data["runtime"] = {"kind": "native", "state_dir": str(folder / ".fraudctl")}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path = folder / "fraudctl.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def end_offsets(kafka: KafkaConfig, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """Partition -> end offset (the next offset to be written) of `topic`."""
    from fraudctl.clients.kafka import end_offsets as kafka_end_offsets

    return kafka_end_offsets(kafka, topic, timeout=timeout)


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
    data["kafka"]["topics"] = {kind: {"name": f"{name}{suffix}", "partitions": partitions}
                               for kind, name, partitions in (("transactions", "transactions", 2), ("labels", "labels", 2),
                                                              ("scores", "scores", 2), ("alerts", "alerts", 1),
                                                              ("dlq", "transactions.dlq", 1))}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path = folder / "fraudctl.yaml"
    path.write_text(yaml.safe_dump(data))
    ensure_topics(load_config(path, env={}))
    return path
