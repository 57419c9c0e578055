"""The Flower client of fraudctl: health, workers and tasks of the Celery app (HTTP basic auth)."""

from __future__ import annotations

from typing import Any

from fraudctl.config import FlowerConfig
from fraudctl.errors import UnavailableError


class FlowerClient:
    def __init__(self, fc: FlowerConfig, password: str, timeout: float = 5.0):
        self.fc = fc
        self.auth = (fc.user, password)
        self.timeout = timeout

    def _get(self, path: str, **params) -> Any:
        import httpx

        try:
            response = httpx.get(self.fc.url + path, params=params, auth=self.auth, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise UnavailableError(f"Flower {self.fc.url} did not answer: {exc}") from None
        if response.status_code != 200:
            raise UnavailableError(f"Flower {path} answered {response.status_code}")
        return response.json() if path.startswith("/api/") else response.text

    def healthcheck(self) -> str:
        body = self._get("/healthcheck").strip()
        if body != "OK":
            raise UnavailableError(f"Flower /healthcheck answered {body!r}")
        return body

    def workers(self) -> dict[str, Any]:
        """Worker name -> Flower's info (refreshed from the workers, not only from its cache)."""
        return self._get("/api/workers", refresh="true")

    def tasks(self, limit: int = 100) -> dict[str, Any]:
        return self._get("/api/tasks", limit=str(limit))

    def online(self) -> dict[str, bool]:
        """Worker name -> whether it answers now."""
        return self._get("/api/workers", status="true")

    def probe(self) -> str:
        self.healthcheck()
        online = [name for name, up in self.online().items() if up]
        return f"/healthcheck OK, {len(online)} worker(s) online"
