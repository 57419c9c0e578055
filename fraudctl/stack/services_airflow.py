"""The native runtime's Airflow 3 (api-server, scheduler, dag-processor, triggerer, a Celery worker) and
Flower: one environment for every component, so they agree on secrets and URLs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from fraudctl.clients import airflow, jvm, postgres, redis_db
from fraudctl.clients import objectstore
from fraudctl.errors import ServiceFailedError, UnavailableError
from fraudctl.stack import table
from fraudctl.stack.native_context import NativeContext, NativeService, table_service
from fraudctl.stack.secrets import write_private


DAGS_DIR = jvm.PROJECT_ROOT / "dags"
CELERY_WORKER_NAME = "fraudctl-worker"


def airflow_home(ctx: NativeContext) -> Path:
    return ctx.state_dir / "airflow"


def airflow_environment(ctx: NativeContext) -> dict[str, str]:
    """One environment for every Airflow component: they must agree on secrets and URLs."""
    af, pg, rc = ctx.config.airflow, ctx.config.postgres, ctx.config.redis
    secrets = ctx.secrets
    home = airflow_home(ctx)
    db_url = postgres.url(pg, secrets.postgres_password, pg.airflow_db, driver="postgresql+psycopg2")
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(af.parallelism),
        "AIRFLOW__CORE__FERNET_KEY": secrets.airflow_fernet_key,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{af.url}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{af.admin_user}:admin",
        # Our file, so Airflow never generates a password and prints it to its log.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__API__HOST": af.host,
        "AIRFLOW__API__PORT": str(af.port),
        "AIRFLOW__API__BASE_URL": af.url,
        "AIRFLOW__API__WORKERS": str(af.api_workers),
        "AIRFLOW__API__SECRET_KEY": secrets.airflow_api_secret_key,
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.airflow_jwt_secret,
        "AIRFLOW__CELERY__BROKER_URL": redis_db.url(rc, secrets.redis_password),
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres.url(pg, secrets.postgres_password, pg.airflow_db),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(af.worker_concurrency),
        "AIRFLOW__CELERY__FLOWER_HOST": ctx.config.flower.host,
        "AIRFLOW__CELERY__FLOWER_PORT": str(ctx.config.flower.port),
        "AIRFLOW__CELERY__FLOWER_BASIC_AUTH": f"{ctx.config.flower.user}:{secrets.flower_password}",
        # Unacknowledged tasks are redelivered after this, not after Celery's default of a day.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "3600",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(ctx.log_dir / "airflow"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(af.worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(af.triggerer_log_port),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(int(af.heartbeat_timeout)),
        # The bundle cleanup forks children that outlive a stopped worker and keep its port.
        "AIRFLOW__DAG_PROCESSOR__STALE_BUNDLE_CLEANUP_INTERVAL": "0",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
        # fraudctl's own settings for the DAGs' tasks (they import fraudctl and read its config).
        **({"FRAUDCTL_CONFIG": str(ctx.config.source)} if ctx.config.source else {}),
        "FRAUDCTL_RUNTIME__STATE_DIR": str(ctx.state_dir),
        "MLFLOW_TRACKING_URI": ctx.config.mlflow.tracking_uri,
        "PYTHONUNBUFFERED": "1",
        **objectstore.environment(ctx.storage),
    }


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
                  None, endpoint=f"celery://{CELERY_WORKER_NAME}", probe=lambda: celery_ping(broker_url)),
    ]


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
