"""The native runtime's Airflow 3 (api-server, scheduler, dag-processor, triggerer, a Celery worker) and
Flower: one environment for every component, so they agree on secrets and URLs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from fraudctl.clients import airflow, jvm
from fraudctl.errors import ServiceFailedError, UnavailableError
from fraudctl.stack import table
from fraudctl.stack.native_context import NativeContext, NativeService, table_service
from fraudctl.stack.secrets import write_private


DAGS_DIR = jvm.PROJECT_ROOT / "dags"
CELERY_WORKER_NAME = "fraudctl-worker"


def airflow_home(ctx: NativeContext) -> Path:
    return ctx.state_dir / "airflow"


def airflow_environment(ctx: NativeContext) -> dict[str, str]:
    """One environment for every Airflow component (fraudctl.stack.airflow_env, shared with compose)."""
    from fraudctl.stack.airflow_env import AirflowPlaces, airflow_settings

    config = ctx.config
    places = AirflowPlaces(
        home=str(airflow_home(ctx)), passwords_file=str(airflow_home(ctx) / "passwords.json"), dags_folder=str(DAGS_DIR), log_folder=str(ctx.log_dir / "airflow"),
        state_dir=str(ctx.state_dir), config_file=str(config.source) if config.source else None,
        api_bind=config.airflow.host, flower_bind=config.flower.host)
    return airflow_settings(config, ctx.secrets, ctx.storage, places)


def airflow_services(ctx: NativeContext) -> list[NativeService]:
    af = ctx.config.airflow
    env = airflow_environment(ctx)
    exe = str(ctx.venv_bin / "airflow")
    home = airflow_home(ctx)

    def migrate() -> None:
        home.mkdir(parents=True, exist_ok=True)
        (ctx.log_dir / "airflow").mkdir(parents=True, exist_ok=True)
        passwords = home / "passwords.json"
        write_private(passwords, json.dumps({af.admin_user: ctx.secrets.airflow_admin_password}))
        result = subprocess.run([exe, "db", "migrate"], env={**os.environ, **env}, capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceFailedError("`airflow db migrate` failed", detail=(result.stdout + result.stderr)[-3000:])

    def component(name: str, command: list[str], health_key: str | None, **kwargs) -> NativeService:
        probe = (lambda: airflow.component_probe(af, health_key)) if health_key else kwargs.pop("probe")
        return NativeService(
            name=name, endpoint=kwargs.pop("endpoint", table.endpoint(ctx.config, table.AIRFLOW_APISERVER)),
            ports=kwargs.pop("ports", []),
            program=ctx.program(name, [exe, *command], environment=env, start_seconds=3, priority=400),
            probe=probe, depends_on=kwargs.pop("depends_on", [table.AIRFLOW_APISERVER]), **kwargs,
        )

    broker_url = env["AIRFLOW__CELERY__BROKER_URL"]
    from fraudctl.clients.flower import FlowerClient

    flower = FlowerClient(ctx.config.flower, ctx.secrets.flower_password, timeout=2.0)
    return [
        component(table.AIRFLOW_APISERVER, ["api-server"], "metadatabase", ports=[(af.host, af.port)],
                  depends_on=[table.POSTGRES, table.REDIS], prepare=migrate),
        component(table.AIRFLOW_SCHEDULER, ["scheduler"], "scheduler"),
        component(table.AIRFLOW_DAG_PROCESSOR, ["dag-processor"], "dag_processor"),
        # Airflow's serve-logs binds every interface (no host setting); task logs are local files here, so
        # the triggerer, like the worker, serves none and every port of the stack stays on loopback.
        component(table.AIRFLOW_TRIGGERER, ["triggerer", "--skip-serve-logs"], "triggerer"),
        component(table.AIRFLOW_WORKER,
                  ["celery", "worker", "--skip-serve-logs", "--celery-hostname", f"{CELERY_WORKER_NAME}@%h",
                   "--concurrency", str(af.worker_concurrency)],
                  None, endpoint=f"celery://{CELERY_WORKER_NAME}", probe=lambda: worker_probe(flower, broker_url)),
    ]


def worker_probe(flower, broker_url: str) -> str:
    """Is the worker consuming? Flower's view of its heartbeats first (they travel over the broker; asking
    costs milliseconds), the broker ping when Flower has none to show (starting, down, or no beat yet): the
    ping's Celery client costs ~1 s of imports, too much for every `fraudctl status`."""
    try:
        names = flower.alive(CELERY_WORKER_NAME)
    except UnavailableError:
        names = []
    if names:
        return "heartbeats from " + ", ".join(names) + " (Flower)"
    return celery_ping(broker_url)


def celery_ping(broker_url: str, timeout: float = 2.0) -> str:
    """A Celery control ping over the broker: proves the worker consumes, not only that it runs."""
    from celery import Celery

    app = Celery(broker=broker_url)
    try:
        # One worker runs natively: its reply ends the wait (without a limit the ping waits out the timeout).
        replies = app.control.ping(timeout=timeout, limit=1)
    except Exception as exc:
        raise UnavailableError(f"Celery ping over Redis failed: {exc}") from None
    finally:
        app.close()
    names = [name for reply in replies for name in reply if name.startswith(CELERY_WORKER_NAME + "@")]
    if not names:
        raise UnavailableError("no Celery worker answered the ping yet")
    return "pong from " + ", ".join(names)


def flower_service(ctx: NativeContext) -> NativeService:
    from fraudctl.clients.flower import FlowerClient

    fc = ctx.config.flower
    env = airflow_environment(ctx)
    client = FlowerClient(fc, ctx.secrets.flower_password)
    return table_service(
        ctx, table.FLOWER,
        program=ctx.program(table.FLOWER, [str(ctx.venv_bin / "airflow"), "celery", "flower"], environment=env,
                            start_seconds=3, priority=500),
        probe=client.probe,
        depends_on=[table.REDIS, table.AIRFLOW_APISERVER],
    )
