"""`fraudctl workers` against the real Flower of the session stack: the one-shot view, `--follow` for a few
refreshes (JSON lines and the live table), and exit 8 with Flower stopped. The worker offline and back
after a kill -9 is proved in test_retrain_kill.py."""

from __future__ import annotations

import json
import time

from fraudctl.errors import ExitCode
from fraudctl.stack.services_airflow import CELERY_WORKER_NAME
from tests.conftest import run_fraudctl, wait_for


def mine(rows: list[dict]) -> dict:
    found = [row for row in rows if row["name"].startswith(CELERY_WORKER_NAME + "@")]
    assert found, rows
    return found[0]


def test_one_shot_view_of_the_worker(stack_config_path):
    result = run_fraudctl("-c", str(stack_config_path), "workers", "-o", "json", timeout=60)
    assert result.returncode == 0, result.stderr
    row = mine(json.loads(result.stdout)["workers"])
    assert row["online"] is True and row["concurrency"] == 2 and row["pid"] > 0
    assert row["heartbeat_age"] is not None and row["heartbeat_age"] < 10  # it beats every 2 s
    assert len(row["load"]) == 3 and row["failed"] >= 0 and row["processed"] >= 0
    text = run_fraudctl("-c", str(stack_config_path), "workers", timeout=60)
    assert text.returncode == 0 and "online" in text.stdout and "s ago" in text.stdout


def test_follow_refreshes_then_stops_at_the_count(stack_config_path):
    started = time.monotonic()
    result = run_fraudctl("-c", str(stack_config_path), "workers", "--follow", "--interval", "0.5", "--count", "3",
                          "-o", "json", timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3 and elapsed >= 1.0  # two waits of 0.5 s between three refreshes
    for line in lines:
        assert line["error"] is None and mine(line["workers"])["online"] is True
    text = run_fraudctl("-c", str(stack_config_path), "workers", "--follow", "--interval", "0.5", "--count", "2",
                        timeout=60)
    assert text.returncode == 0, text.stderr
    assert "Celery workers from Flower" in text.stdout and "online" in text.stdout


def test_flower_down_exits_8(stack_config_path, stack_config):
    from fraudctl.stack.supervisor import Supervisor

    supervisor = Supervisor(stack_config.state_dir)
    supervisor.stop("flower")
    try:
        once = run_fraudctl("-c", str(stack_config_path), "workers", "-o", "json", timeout=60)
        assert once.returncode == ExitCode.UNAVAILABLE and "did not answer" in once.stderr
        follow = run_fraudctl("-c", str(stack_config_path), "workers", "-f", "--interval", "0.3", "--count", "2",
                              "-o", "json", timeout=60)
        assert follow.returncode == ExitCode.UNAVAILABLE, follow.stderr
        assert all("did not answer" in json.loads(line)["error"] for line in follow.stdout.splitlines())
    finally:
        supervisor.start("flower")

    def workers():
        return run_fraudctl("-c", str(stack_config_path), "workers", "-o", "json", timeout=60)

    wait_for(lambda: workers().returncode == 0, 90, "Flower to be back (`workers` exits 0)", every=1,
             explain=lambda: f"Flower not back: {workers().stderr}")
