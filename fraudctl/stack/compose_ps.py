"""What `docker compose ps` and `docker inspect` say about the compose stack's containers, in fraudctl's
words (ServiceStatus): state, health, the published endpoint, and how long each container has been up."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from typing import Mapping

from fraudctl.stack.base import ServiceStatus

INSPECT_TIMEOUT = 10  # seconds: `status` must not hang on a slow engine; uptime is left out then


def parse_ps_json(text: str) -> list[dict]:
    """`compose ps --format json` prints one object per line (v2.21+) or one array (older v2)."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def service_status(row: dict) -> ServiceStatus:
    state = (row.get("State") or "unknown").upper()
    health = row.get("Health") or ""
    healthy: bool | None
    if state == "EXITED" and row.get("ExitCode") == 0:
        state, healthy = "COMPLETED", True  # a one-shot job (airflow-init) that succeeded
    elif state == "EXITED":
        healthy = False
    elif health:
        healthy = health == "healthy"
    else:
        healthy = None
    endpoint = None
    for publisher in row.get("Publishers") or []:
        if publisher.get("PublishedPort"):
            endpoint = f"{publisher.get('URL') or '127.0.0.1'}:{publisher['PublishedPort']}"
            break
    return ServiceStatus(name=row["Service"], state=state, endpoint=endpoint, healthy=healthy, detail=row.get("Status", ""))


def with_on_demand(status: ServiceStatus, on_demand: bool) -> ServiceStatus:
    """An on-demand service (the scorer) that is not running is simply not started, not unhealthy."""
    if on_demand:
        status.on_demand = True
        if status.state in ("STOPPED", "COMPLETED", "EXITED") and status.healthy is not False:
            status.healthy, status.pid = None, None
            status.detail = status.detail or f"not started (fraudctl {status.name} start)"
    return status


def started_at(text: str) -> dt.datetime | None:
    """Docker's State.StartedAt ('2026-12-07T04:38:11.123456789Z', nanoseconds) as an aware datetime."""
    if not text or text.startswith("0001-"):
        return None
    try:
        return dt.datetime.fromisoformat(text[:19]).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def uptimes(ids: list[str], env: Mapping[str, str], now: dt.datetime | None = None) -> dict[str, float]:
    """Container id -> seconds since it (re)started, for the running ones, from one `docker inspect`.
    Best effort: without the docker CLI, or when the engine does not answer in time, nothing."""
    if not ids or not shutil.which("docker"):
        return {}
    try:
        result = subprocess.run(["docker", "inspect", "--format", "{{.Id}} {{.State.Running}} {{.State.StartedAt}}", *ids],
                                env=dict(env), capture_output=True, text=True, timeout=INSPECT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    now = now or dt.datetime.now(dt.timezone.utc)
    found: dict[str, float] = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "true" and (since := started_at(parts[2])) is not None:
            found[parts[0]] = max(0.0, (now - since).total_seconds())
    return found


def with_uptimes(rows: list[dict], env: Mapping[str, str]) -> dict[str, ServiceStatus]:
    """Service name -> its status, with the uptime of each running container (docker inspect, by id)."""
    statuses = {row["Service"]: service_status(row) for row in rows}
    ids = {row["Service"]: row.get("ID") for row in rows if row.get("ID")}
    seconds = uptimes(list(ids.values()), env)
    for name, container in ids.items():
        for full, value in seconds.items():
            if full.startswith(container):  # compose prints the short id
                statuses[name].uptime_seconds = round(value, 1)
    return statuses
