"""Start, stop and inspect the streaming scorer: the core of `fraudctl scorer ...` (no typer here)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Callable

from fraudctl.config import Config
from fraudctl.errors import NotFoundError, ServiceFailedError, WaitTimeoutError
from fraudctl.stream.status import LAUNCH_FILE, STALE_SECONDS, read_status
from fraudctl.stack.secrets import write_private
from fraudctl.stack.table import SCORER, endpoint

if TYPE_CHECKING:
    from fraudctl.stack.base import OnDemandServices

SERVICE = SCORER
POLL_SECONDS = 0.5
# The healths of `status` in which the query runs and scores (degraded: on the model it has, the registry
# unreachable); the others (stopped, stalled, starting, failed, ...) score nothing.
RUNNING_HEALTHS = ("healthy", "degraded")


def is_running(health: str) -> bool:
    """Whether a scorer of this `status()["health"]` counts as running."""
    return health in RUNNING_HEALTHS


def _runtime(config: Config) -> "OnDemandServices":
    """The active runtime: the scorer is a supervisord program natively, the on-demand `scorer` service under
    compose (a driver inside the network, on the stack's Spark master). Both offer the same calls."""
    from fraudctl.stack import get_runtime

    return get_runtime(config)  # type: ignore[return-value]


def start(config: Config, *, master: str | None = None, wait_for_model: bool = False, timeout: float | None = None,
          on_progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Start the scorer and wait until its query runs (or, with `wait_for_model`, until it waits for one)."""
    from fraudctl.stack.supervisor import BACKOFF, EXITED, FATAL, RUNNING
    from fraudctl.clients.spark import scorer_dir

    runtime = _runtime(config)
    say = on_progress or (lambda message: None)
    if runtime.service_state(SERVICE) == RUNNING:
        return {**status(config), "already_running": True}
    if not wait_for_model:
        from fraudctl.model.registry import CHAMPION, Registry

        if Registry(config).alias_version(CHAMPION) is None:
            raise NotFoundError(f"no version of {config.model.name} is @{CHAMPION}",
                                hint="`fraudctl promote VERSION` first, or `fraudctl scorer start --wait-for-model`")
    folder = scorer_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "status.json").unlink(missing_ok=True)
    # The configuration as the job sees it (under compose: in-network endpoints), with its secrets: 0600.
    launch = {"config": runtime.job_config(), "master": master, "wait_for_model": wait_for_model}
    write_private(folder / LAUNCH_FILE, json.dumps(launch))
    say(f"starting the scorer ({runtime.name} runtime)")
    runtime.start_on_demand(SERVICE)
    wanted = {"running"} | ({"waiting for a model"} if wait_for_model else set())
    limit = timeout if timeout is not None else config.scorer.start_timeout
    deadline = time.monotonic() + limit
    while True:
        current = read_status(folder) or {}
        if current.get("state") in wanted:
            return status(config)
        state = runtime.service_state(SERVICE)
        if current.get("state") == "failed":
            runtime.stop_service(SERVICE)  # no restart loop over a cause that a restart cannot fix
            raise ServiceFailedError(f"the scorer failed while starting: {current.get('error')}",
                                     detail=runtime.log_tail(SERVICE, 30), hint="fraudctl scorer logs")
        if state in (FATAL, EXITED, BACKOFF) or current.get("state") == "stopped":
            raise ServiceFailedError(f"the scorer exited while starting ({state})",
                                     detail=runtime.log_tail(SERVICE, 30), hint="fraudctl scorer logs")
        if time.monotonic() > deadline:
            raise WaitTimeoutError(f"the scorer did not start its query within {limit:.0f}s "
                                   f"(last state: {current.get('state', 'starting')})",
                                   detail=runtime.log_tail(SERVICE, 30), hint="fraudctl scorer logs")
        say(f"scorer: {current.get('state', 'starting the driver')}")
        time.sleep(POLL_SECONDS)


def stop(config: Config) -> dict[str, Any]:
    runtime = _runtime(config)
    was = runtime.service_state(SERVICE)
    runtime.stop_service(SERVICE)
    return {"stopped": True, "was": was, **status(config)}


def status(config: Config) -> dict[str, Any]:
    """The scorer's process state and what its status file says: rates, batch time, lag per partition,
    model version and since when, dead letters, state size, healthy / degraded."""
    from fraudctl.stack.supervisor import RUNNING
    from fraudctl.clients.spark import scorer_dir

    runtime = _runtime(config)
    process = runtime.service_state(SERVICE)
    current = read_status(scorer_dir(config)) or {}
    age = time.time() - float(current["updated_at"]) if current.get("updated_at") else None
    running = process == RUNNING and current.get("state") == "running"
    fresh = age is not None and age <= STALE_SECONDS
    if not running:
        health = "stopped" if process != RUNNING else current.get("state", "starting")
    elif not fresh:
        health = "stalled"
    else:
        health = "degraded" if current.get("degraded") else "healthy"
    counters = current.get("counters") or {}
    return {
        "process": process,
        "health": health,
        "healthy": health == "healthy",
        "degraded": current.get("degraded"),
        "pid": current.get("pid") if process == RUNNING else None,
        "master": current.get("master"),
        "started_at": current.get("started_at"),
        "status_age_seconds": round(age, 1) if age is not None else None,
        "model": current.get("model"),
        "rules": current.get("rules"),  # set version, active and shadow rules, rules paused over their cap
        "input_rows_per_second": current.get("input_rows_per_second"),
        "processed_rows_per_second": current.get("processed_rows_per_second"),
        "batch_duration_ms": current.get("batch_duration_ms"),
        "latency_ms": current.get("latency_ms"),  # p50/p99/max ms, Kafka timestamp -> score acknowledged
        "lag": current.get("lag") or {},
        "offsets": current.get("offsets") or {},  # read up to, per topic and partition
        "dead_letters": counters.get("dead_letters", 0),
        "state_size": current.get("state_size"),
        "counters": counters,
        "ui": endpoint(config, SERVICE),
    }
