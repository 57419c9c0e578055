"""The cheap clients behind `fraudctl status`: the standard-library GET (against a local HTTP server of our
own), the Celery worker's probe (Flower's heartbeats first, the broker ping only when Flower has none), and
the workers panel asking the workers for their pool only when Flower's cache lacks one. The real Flower and
worker are in tests/integration (test_airflow.py, test_workers.py, test_status_view.py)."""

from __future__ import annotations

import base64
import socket

import pytest

from fraudctl.clients import http
from fraudctl.clients.flower import FlowerClient
from fraudctl.config import FlowerConfig
from fraudctl.errors import UnavailableError
from fraudctl.operate.overview import WorkersPanel
from fraudctl.stack import services_airflow
from tests.local_http import LocalServer


@pytest.fixture
def server():
    """A local server: GET answers `answers[path]` ((status, JSON body)), else 404."""
    answers: dict[str, tuple[int, object]] = {}
    local = LocalServer(lambda request: answers.get(request.path, (404, {"error": "no such path"})))
    yield local.uri, answers, local.asked
    local.close()


def test_get_sends_params_and_basic_auth_and_returns_any_status(server):
    url, answers, asked = server
    answers["/api/workers"] = (200, {"w@h": True})
    answers["/denied"] = (401, {"error": "who are you"})
    assert http.get(url + "/api/workers", params={"status": "true"}, auth=("admin", "pw"), timeout=5) == \
        (200, '{"w@h": true}')
    assert (asked[-1].path, asked[-1].params) == ("/api/workers", {"status": "true"})
    assert asked[-1].headers["Authorization"] == "Basic " + base64.b64encode(b"admin:pw").decode()
    assert http.get(url + "/denied", timeout=5)[0] == 401


def test_get_raises_oserror_when_nothing_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OSError):
        http.get(f"http://127.0.0.1:{port}/", timeout=2)


def _flower(url: str) -> FlowerClient:
    host, port = url.removeprefix("http://").split(":")
    return FlowerClient(FlowerConfig(host=host, port=int(port)), "pw", timeout=2)


def test_flower_alive_names_only_live_workers_of_the_prefix(server):
    url, answers, _ = server
    answers["/api/workers"] = (200, {"fraudctl-worker@a": True, "fraudctl-worker@b": False, "other@a": True})
    assert _flower(url).alive("fraudctl-worker") == ["fraudctl-worker@a"]
    answers["/api/workers"] = (500, {})
    with pytest.raises(UnavailableError, match="answered 500"):
        _flower(url).alive("fraudctl-worker")


class Flower:
    def __init__(self, alive=None, error=None):
        self._alive, self._error = alive or [], error

    def alive(self, prefix):
        if self._error:
            raise UnavailableError(self._error)
        return self._alive


@pytest.mark.parametrize("flower,pinged", [
    (Flower(alive=["fraudctl-worker@vm"]), False),  # heartbeats seen: no ping, no Celery import
    (Flower(alive=[]), True),  # Flower up but no heartbeat yet (it started after the worker)
    (Flower(error="Flower did not answer"), True),  # Flower down: the broker still answers for the worker
])
def test_the_worker_probe_pings_over_the_broker_only_when_flower_has_no_heartbeat(monkeypatch, flower, pinged):
    pings = []
    monkeypatch.setattr(services_airflow, "celery_ping", lambda broker: pings.append(broker) or "pong")
    answer = services_airflow.worker_probe(flower, "redis://x")
    assert bool(pings) is pinged
    assert answer == ("pong" if pinged else "heartbeats from fraudctl-worker@vm (Flower)")


class CachingFlower:
    """Flower's /workers (events) and /api/workers: its cache is empty until a refresh asks the workers."""

    def __init__(self, cached: bool):
        self.cache = {"w@h": {"stats": {"pool": {"max-concurrency": 4}}}} if cached else {}
        self.refreshes = 0

    def events(self):
        return [{"hostname": "w@h", "status": True, "heartbeats": [], "pid": 7}]

    def workers(self, refresh=True):
        if refresh:
            self.refreshes += 1
            self.cache = {"w@h": {"stats": {"pool": {"max-concurrency": 4}}}}
        return self.cache


@pytest.mark.parametrize("cached,refreshes", [(True, 0), (False, 1)])
def test_the_workers_panel_asks_the_workers_only_when_flower_has_not(cached, refreshes):
    panel = WorkersPanel(config=None)
    panel._client = flower = CachingFlower(cached)
    for _ in range(3):
        view = panel()
        assert view["online"] == 1 and view["workers"][0]["concurrency"] == 4
    assert flower.refreshes == refreshes


def test_a_live_worker_is_seen_without_importing_celery_or_httpx(server):
    import subprocess
    import sys

    url, answers, _ = server
    answers["/api/workers"] = (200, {"fraudctl-worker@vm": True})
    code = ("import sys; from fraudctl.stack.services_airflow import worker_probe; "
            "from tests.unit.test_operator_clients import _flower; "
            f"print(worker_probe(_flower({url!r}), 'redis://127.0.0.1:1/0')); "
            "print(sorted(m for m in ('celery', 'kombu', 'redis', 'httpx') if m in sys.modules))")
    from tests.conftest import REPO

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["heartbeats from fraudctl-worker@vm (Flower)", "[]"]
