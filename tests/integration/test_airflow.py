"""Airflow 3 with CeleryExecutor on the native stack: a DAG triggered over the REST API with a JWT runs
on the Celery worker, and Flower's authenticated API shows the worker and the tasks it ran."""

from __future__ import annotations

import httpx
import pytest

from fraudctl.errors import UnavailableError
from fraudctl.clients.airflow import AirflowClient, health
from fraudctl.clients.flower import FlowerClient
from fraudctl.stack.services_airflow import CELERY_WORKER_NAME
from tests.conftest import wait_for

DAG_ID = "fraudctl_smoke"


@pytest.fixture(scope="module")
def secrets(stack_runtime):
    return stack_runtime.require_secrets()


def test_every_component_reports_healthy(stack_config):
    assert health(stack_config.airflow) == {
        "metadatabase": "healthy", "scheduler": "healthy", "triggerer": "healthy", "dag_processor": "healthy"}


def test_api_requires_a_token(stack_config, secrets):
    url = f"{stack_config.airflow.url}/api/v2/dags"
    assert httpx.get(url, timeout=10).status_code == 401
    wrong = httpx.post(f"{stack_config.airflow.url}/auth/token", timeout=10,
                       json={"username": stack_config.airflow.admin_user, "password": "wrong"})
    assert wrong.status_code in (401, 403)
    token = AirflowClient(stack_config.airflow, secrets.airflow_admin_password).token()
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200


def test_dag_runs_on_the_celery_worker_and_flower_sees_it(stack_config, secrets):
    client = AirflowClient(stack_config.airflow, secrets.airflow_admin_password)
    dag = client.wait_for_dag(DAG_ID, timeout=180)
    assert dag.is_paused  # new DAGs start paused
    client.unpause(DAG_ID)
    run = client.wait_for_run(client.trigger(DAG_ID), timeout=180)
    assert run.state == "success"
    assert client.task_states(DAG_ID, run.run_id) == {"where": "success", "check": "success"}

    flower = FlowerClient(stack_config.flower, secrets.flower_password)
    workers = flower.workers()
    assert any(name.startswith(CELERY_WORKER_NAME + "@") for name in workers)
    # Flower learns task outcomes from worker events: wait for both successes to arrive.
    def succeeded_on_the_worker():
        done = [t for t in flower.tasks().values()
                if t.get("state") == "SUCCESS" and (t.get("worker") or "").startswith(CELERY_WORKER_NAME)]
        return done if len(done) >= 2 else None

    succeeded = wait_for(succeeded_on_the_worker, 60, "Flower to see both tasks succeed on the worker", every=1,
                         explain=lambda: f"Flower's tasks: {flower.tasks()}")
    assert len(succeeded) >= 2


def test_flower_requires_authentication(stack_config):
    response = httpx.get(f"{stack_config.flower.url}/api/workers", timeout=10)
    assert response.status_code == 401
    with pytest.raises(UnavailableError, match="answered 401"):
        FlowerClient(stack_config.flower, "wrong-password").workers()


def test_workers_command_lists_the_worker(stack_config_path):
    import json

    from tests.conftest import run_fraudctl

    result = run_fraudctl("-c", str(stack_config_path), "workers", "-o", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["workers"]
    mine = [row for row in rows if row["name"].startswith(CELERY_WORKER_NAME + "@")]
    assert mine and mine[0]["online"] is True and mine[0]["concurrency"] == 2
