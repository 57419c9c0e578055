"""The Flower client of fraudctl: health, workers and tasks of the Celery app (HTTP basic auth), and the
rows of `fraudctl workers` built from what Flower reports."""

from __future__ import annotations

import json
import time
from typing import Any

from fraudctl.config import FlowerConfig
from fraudctl.errors import UnavailableError


class FlowerClient:
    def __init__(self, fc: FlowerConfig, password: str, timeout: float = 5.0):
        self.fc = fc
        self.auth = (fc.user, password)
        self.timeout = timeout

    def _get(self, path: str, **params) -> Any:
        from fraudctl.clients import http

        try:
            status, body = http.get(self.fc.url + path, params=params, auth=self.auth, timeout=self.timeout)
        except OSError as exc:
            raise UnavailableError(f"Flower {self.fc.url} did not answer: {getattr(exc, 'reason', None) or exc}") from None
        if status != 200:
            raise UnavailableError(f"Flower {path} answered {status}")
        if not (path.startswith("/api/") or params.get("json")):
            return body
        try:
            return json.loads(body)
        except ValueError:
            raise UnavailableError(f"Flower {path} answered something other than JSON: {body[:200]!r}") from None

    def healthcheck(self) -> str:
        body = self._get("/healthcheck").strip()
        if body != "OK":
            raise UnavailableError(f"Flower /healthcheck answered {body!r}")
        return body

    def workers(self, refresh: bool = True) -> dict[str, Any]:
        """Worker name -> Flower's info (with `refresh`, asked of the workers now, not only from its cache)."""
        return self._get("/api/workers", **({"refresh": "true"} if refresh else {}))

    def events(self) -> list[dict[str, Any]]:
        """Flower's event view of each worker it has seen (its dashboard's data): alive or not (`status`),
        heartbeat times, load average, active and processed from the last heartbeat, event counts
        (`task-failed`, ...). Cheap: no broadcast to the workers."""
        body = self._get("/workers", json="1")
        return list(body.get("data") or []) if isinstance(body, dict) else []

    def tasks(self, limit: int = 100) -> dict[str, Any]:
        return self._get("/api/tasks", limit=str(limit))

    def online(self) -> dict[str, bool]:
        """Worker name -> alive or not, from the heartbeats Flower receives (a worker sends one every 2 s over
        the broker and counts as gone 4 s after its last): no broadcast to the workers, milliseconds."""
        return self._get("/api/workers", status="true")

    def alive(self, prefix: str) -> list[str]:
        """The workers named `prefix@...` whose heartbeats Flower receives."""
        return sorted(name for name, up in self.online().items() if up and name.startswith(prefix + "@"))

    def probe(self) -> str:
        self.healthcheck()
        online = [name for name, up in self.online().items() if up]
        return f"/healthcheck OK, {len(online)} worker(s) online"


def worker_rows(events: list[dict[str, Any]], details: dict[str, Any] | None = None,
                now: float | None = None) -> list[dict[str, Any]]:
    """One row per worker, by name: online (Flower's view: a heartbeat within its expiry window), pid,
    concurrency (from `details`, Flower's /api/workers), active and processed (the last heartbeat's, else
    the inspect reply's), failed and succeeded (task events counted by Flower), load (1, 5, 15 min) and
    heartbeat_age (seconds since the newest heartbeat, None when none was seen)."""
    now = time.time() if now is None else now
    details = details or {}
    by_name = {str(e.get("hostname")): e for e in events if e.get("hostname")}
    rows = []
    for name in sorted(set(by_name) | set(details)):
        event = by_name.get(name, {})
        info = details.get(name) or {}
        stats = info.get("stats") or {}
        beats = [float(b) for b in event.get("heartbeats") or [] if b is not None]
        active = event.get("active")
        processed = event.get("processed")
        load = event.get("loadavg")
        rows.append({
            "name": name,
            "online": bool(event.get("status")),
            "pid": event.get("pid") or stats.get("pid"),
            "concurrency": (stats.get("pool") or {}).get("max-concurrency"),
            "active": int(active) if active is not None else len(info.get("active") or []),
            "processed": int(processed) if processed is not None else sum((stats.get("total") or {}).values()),
            "failed": int(event.get("task-failed", 0)),
            "succeeded": int(event.get("task-succeeded", 0)),
            "load": [round(float(x), 2) for x in load] if load else None,
            "heartbeat_age": round(max(now - max(beats), 0.0), 1) if beats else None,
        })
    return rows
