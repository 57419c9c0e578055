"""The running scorer's status file (`<state_dir>/scorer/status.json`), rewritten every second by the job
and read by `fraudctl scorer status`: rates, batch time, lag per partition, model, health, counts."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from fraudctl.errors import ExitCode

STATUS_FILE = "status.json"
LAUNCH_FILE = "launch.json"
STALE_SECONDS = 15.0  # a status older than this while the process runs: the driver is stuck
# Exits of the scorer job (jobs/scorer.py) that a restart cannot cure: done, bad usage or config, no champion,
# a model off the contract. Its runner leaves it stopped; any other exit (a crash, Kafka or the lake
# unreachable) restarts it from its checkpoint.
FINAL_EXITS = (ExitCode.OK, ExitCode.USAGE, ExitCode.CONFIG, ExitCode.NOT_FOUND, ExitCode.CONTRACT)


def write_status(folder: Path, status: dict[str, Any]) -> None:
    path = folder / STATUS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**status, "updated_at": time.time()}, default=str))
    os.replace(tmp, path)


def read_status(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def lag_per_partition(progress: dict[str, Any] | None) -> dict[str, dict[str, int]]:
    """Records in Kafka not yet read, per topic and partition, from a query's last progress."""
    lag: dict[str, dict[str, int]] = {}
    for source in (progress or {}).get("sources", []):
        latest, end = _offsets(source.get("latestOffset")), _offsets(source.get("endOffset"))
        for topic, partitions in latest.items():
            for partition, offset in partitions.items():
                lag.setdefault(topic, {})[partition] = max(0, int(offset) - int(end.get(topic, {}).get(partition, 0)))
    return lag


def processed_offsets(progress: dict[str, Any] | None) -> dict[str, dict[str, int]]:
    """The next offset to read, per topic and partition, after a query's last batch: everything before it has
    been scored (what `fraudctl scorer wait` compares with Kafka's end offsets)."""
    offsets: dict[str, dict[str, int]] = {}
    for source in (progress or {}).get("sources", []):
        for topic, partitions in _offsets(source.get("endOffset")).items():
            offsets.setdefault(topic, {}).update({str(p): int(o) for p, o in partitions.items()})
    return offsets


def _offsets(value: Any) -> dict[str, dict[str, int]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def describe_health(folder: Path) -> str:
    """One line for `fraudctl status`; raises UnavailableError while the scorer is not scoring."""
    from fraudctl.errors import UnavailableError

    status = read_status(folder)
    if status is None:
        raise UnavailableError("no status yet (starting)")
    age = time.time() - float(status.get("updated_at", 0))
    if status.get("state") != "running":
        raise UnavailableError(str(status.get("state")))
    if age > STALE_SECONDS:
        raise UnavailableError(f"no status for {age:.0f}s: the driver is stuck or busy")
    model = status.get("model") or {}
    counters = status.get("counters") or {}
    line = f"model v{model.get('version')}, {counters.get('scored', 0):,} scored, {counters.get('batches', 0)} batches"
    return line + (f"; DEGRADED: {status['degraded']}" if status.get("degraded") else "")
