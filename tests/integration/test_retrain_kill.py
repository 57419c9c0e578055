"""A Celery worker killed with SIGKILL in the middle of `train`: supervisord brings it back, Airflow notices
the lost task after `airflow.heartbeat_timeout` (60 s), retries it, and the run succeeds; `fraudctl workers`
shows the worker offline while it is dead and online again (its new pid) after."""

from __future__ import annotations

import json
import signal
import time

import psutil

from fraudctl.errors import ExitCode
from tests.conftest import run_fraudctl, wait_for

WORKER = "airflow-worker"


def worker_pid(config_path) -> int | None:
    status = run_fraudctl("-c", str(config_path), "status", "-o", "json", timeout=60)
    services = {s["name"]: s for s in json.loads(status.stdout)["services"]}
    service = services[WORKER]
    return service["pid"] if service.get("healthy") else None


def flower_row(config_path) -> tuple[int, dict | None]:
    """`fraudctl workers -o json`: its exit code and the airflow worker's row."""
    from fraudctl.stack.services_airflow import CELERY_WORKER_NAME

    result = run_fraudctl("-c", str(config_path), "workers", "-o", "json", timeout=60)
    rows = json.loads(result.stdout)["workers"] if result.stdout.strip() else []
    return result.returncode, next((r for r in rows if r["name"].startswith(CELERY_WORKER_NAME + "@")), None)


def test_train_is_retried_after_the_worker_is_killed(stack_config_path, stack_config, stack_runtime):
    import airflow_client.client as ac

    from fraudctl.retraining import trigger as retraining
    from fraudctl.data.generator import generate_transactions
    from fraudctl.data.lake import lake_for
    from bench.support import seed_lake

    seed_lake(lake_for(stack_config, stack_runtime.storage()),
              generate_transactions(n_customers=300, n_terminals=600, n_days=45))
    started = time.monotonic()
    result = run_fraudctl("-c", str(stack_config_path), "retrain", "-o", "json", "--conf", "window_days=45",
                          "--conf", "cutoff=2018-05-16")
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    af = retraining.client(stack_config, stack_runtime.require_secrets().airflow_admin_password)
    dag_id = stack_config.retrain.dag_id
    wait_for(lambda: retraining.task_states(af, dag_id, run_id).get("train") == "running", 180, "train running")

    old = worker_pid(stack_config_path)
    assert old
    code, row = flower_row(stack_config_path)
    assert code == 0 and row["online"] is True and row["pid"] == old
    victims = [psutil.Process(old), *psutil.Process(old).children(recursive=True)]
    for proc in victims:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    killed_at = time.monotonic()
    # Flower: offline once the heartbeats stop (expiry: 2 beats of 2 s), exit 8 as no worker is online; on a
    # loaded machine supervisord may have the worker back (same name, new pid) before Flower expires the old one
    code, row = wait_for(lambda: (
        lambda r: r if r[1] and (not r[1]["online"] or r[1]["pid"] != old) else None)(flower_row(stack_config_path)),
        60, "workers to show the worker offline, or replaced", every=0.2)
    if not row["online"]:
        assert code == ExitCode.UNAVAILABLE and row["pid"] == old and row["heartbeat_age"] >= 2
        print(f"workers: offline {time.monotonic() - killed_at:.1f}s after the kill, last heartbeat {row['heartbeat_age']}s ago")
    else:
        print(f"workers: replaced by pid {row['pid']} before Flower expired the old one")
    # supervisord restarts it (autorestart on an unexpected exit)
    new = wait_for(lambda: (lambda pid: pid if pid and pid != old else None)(
        worker_pid(stack_config_path)), 90, "the worker back", every=1)
    assert new != old
    # online again as the restarted process: the same name, the new pid, a fresh heartbeat
    code, row = wait_for(lambda: (
        lambda r: r if r[1] and r[1]["online"] and r[1]["pid"] == new else None)(flower_row(stack_config_path)),
        90, "workers to show the restarted worker online", every=1)
    assert code == 0 and row["heartbeat_age"] < 10
    print(f"workers: online again (pid {new}) {time.monotonic() - killed_at:.1f}s after the kill")
    state = retraining.wait(stack_config, run_id, timeout=400, af=af)
    print(f"run {run_id}: {state} {time.monotonic() - started:.0f}s after the trigger, "
          f"{time.monotonic() - killed_at:.0f}s after the kill")
    assert state == "success", retraining.status(stack_config, run_id, af=af, logs=True)
    train = ac.TaskInstanceApi(af.api()).get_task_instance(dag_id, run_id, "train")
    assert train.try_number >= 2
    report = retraining.status(stack_config, run_id, af=af)["report"]
    assert report["dag_run_id"] == run_id and report["version"]
