"""One environment for every Airflow component (api-server, scheduler, dag-processor, triggerer, Celery worker,
Flower) in both runtimes: they must agree on secrets and URLs, and the two runtimes must not drift apart.

The native runtime passes the host's configuration and folders (fraudctl.stack.services_airflow); the compose
runtime passes the configuration as containers see it (every endpoint at its in-network address,
fraudctl.stack.compose.container_config), the image's folders and the addresses to bind in a container, and
writes the result to a private env file that compose hands to the Airflow containers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fraudctl.config import Config, StorageConfig
    from fraudctl.stack.secrets import Secrets

AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


@dataclass(frozen=True)
class AirflowPlaces:
    """Where an Airflow component finds its files and what it binds, in the runtime that runs it."""

    home: str  # AIRFLOW_HOME
    passwords_file: str  # SimpleAuthManager's passwords file, written by fraudctl (natively) or airflow-init
    dags_folder: str
    log_folder: str
    state_dir: str  # fraudctl's runtime.state_dir for the DAGs' tasks (each retrain run's folder)
    config_file: str | None  # the fraudctl configuration the tasks read (FRAUDCTL_CONFIG)
    api_bind: str  # the api-server's listening address: the config's host natively, all interfaces in a container
    flower_bind: str


def airflow_settings(config: "Config", secrets: "Secrets", storage: "StorageConfig",
                     places: AirflowPlaces) -> dict[str, str]:
    """The environment of every Airflow component, from `config` as the components reach the other services."""
    from fraudctl.clients import objectstore, postgres, redis_db

    af, pg, rc = config.airflow, config.postgres, config.redis
    db_url = postgres.url(pg, secrets.postgres_password, pg.airflow_db, driver="postgresql+psycopg2")
    return {
        "AIRFLOW_HOME": places.home,
        "AIRFLOW__CORE__DAGS_FOLDER": places.dags_folder,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(af.parallelism),
        "AIRFLOW__CORE__FERNET_KEY": secrets.airflow_fernet_key,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{af.url}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{af.admin_user}:admin",
        # Our file, so Airflow never generates a password and prints it to its log.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": places.passwords_file,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__API__HOST": places.api_bind,
        "AIRFLOW__API__PORT": str(af.port),
        "AIRFLOW__API__BASE_URL": af.url,
        "AIRFLOW__API__WORKERS": str(af.api_workers),
        "AIRFLOW__API__SECRET_KEY": secrets.airflow_api_secret_key,
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.airflow_jwt_secret,
        "AIRFLOW__CELERY__BROKER_URL": redis_db.url(rc, secrets.redis_password),
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres.url(pg, secrets.postgres_password, pg.airflow_db),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(af.worker_concurrency),
        "AIRFLOW__CELERY__FLOWER_HOST": places.flower_bind,
        "AIRFLOW__CELERY__FLOWER_PORT": str(config.flower.port),
        "AIRFLOW__CELERY__FLOWER_BASIC_AUTH": f"{config.flower.user}:{secrets.flower_password}",
        # Unacknowledged tasks are redelivered after this, not after Celery's default of a day.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "3600",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": places.log_folder,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(af.worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(af.triggerer_log_port),
        # A task whose worker died is retried after this (Airflow's default, 300 s, is slow); Airflow reads an int.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(int(af.heartbeat_timeout)),
        # The bundle cleanup forks children that outlive a stopped worker and keep its port.
        "AIRFLOW__DAG_PROCESSOR__STALE_BUNDLE_CLEANUP_INTERVAL": "0",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
        # fraudctl's own settings for the DAGs' tasks (they import fraudctl and read its config).
        **({"FRAUDCTL_CONFIG": places.config_file} if places.config_file else {}),
        "FRAUDCTL_RUNTIME__STATE_DIR": places.state_dir,
        "MLFLOW_TRACKING_URI": config.mlflow.tracking_uri,
        "PYTHONUNBUFFERED": "1",
        **objectstore.environment(storage),
    }
