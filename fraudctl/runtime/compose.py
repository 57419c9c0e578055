"""The compose runtime: the whole stack as containers from stack/compose.yaml, for machines with Docker.

Secrets live in the untracked `stack/.env`, generated on the first `up` (mode 0600, never overwritten);
settings (ports, users, database names, sizing) are exported from the effective config on every run
under the config's own environment names (`FRAUDCTL_KAFKA__PORT`, ...), which compose.yaml uses as
`${FRAUDCTL_KAFKA__PORT:-9092}`. So fraudctl.yaml stays the one place to change a port.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import yaml

from fraudctl.config import Config, env_name
from fraudctl.errors import (
    ConfigError,
    NotFoundError,
    PrerequisiteError,
    ServiceFailedError,
    UnavailableError,
    WaitTimeoutError,
)
from fraudctl.runtime import docker_engine_problem
from fraudctl.secrets import fernet_key
from fraudctl.runtime.base import ProgressCallback, ServiceStatus

STACK_DIR = Path(__file__).resolve().parents[2] / "stack"  # the source checkout's stack/ folder
COMPOSE_FILE = "compose.yaml"
ENV_FILE = ".env"

NATIVE_HINT = "use --runtime native (the default without Docker)"

# Every secret stack/.env holds, and the config field whose value wins when it is set (None: generated
# only). A config secret is used as-is in connection URLs and in .env, hence the character rule.
SECRETS: dict[str, str | None] = {
    "POSTGRES_SUPERUSER_PASSWORD": None,  # only creates the app role and its databases
    "POSTGRES_PASSWORD": "postgres.password",  # the app role (postgres.user), owner of airflow and mlflow
    "REDIS_PASSWORD": "redis.password",
    "MINIO_ROOT_USER": "storage.access_key_id",
    "MINIO_ROOT_PASSWORD": "storage.secret_access_key",
    "AIRFLOW_ADMIN_PASSWORD": "airflow.admin_password",
    "AIRFLOW_FERNET_KEY": None,
    "AIRFLOW_JWT_SECRET": None,  # [api_auth] jwt_secret, shared by every Airflow component
    "AIRFLOW_API_SECRET_KEY": None,  # [api] secret_key, shared likewise
    "FLOWER_PASSWORD": "flower.password",
}
SAFE_SECRET = re.compile(r"^[A-Za-z0-9._~-]+$")  # URL-unreserved: safe in user:password@host and .env

# Config fields compose.yaml reads as ${FRAUDCTL_SECTION__FIELD:-default}.
SETTINGS = (
    "kafka.port",
    "kafka.heap",
    "postgres.port",
    "postgres.user",
    "postgres.airflow_db",
    "postgres.mlflow_db",
    "redis.port",
    "mlflow.port",
    "mlflow.workers",
    "airflow.port",
    "airflow.admin_user",
    "airflow.parallelism",
    "airflow.worker_concurrency",
    "flower.port",
    "flower.user",
    "storage.bucket",
    "storage.region",
)


def _config_value(config: Config, dotted: str):
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def settings_env(config: Config) -> dict[str, str]:
    """The config's settings under the names compose.yaml interpolates."""
    return {env_name(dotted): str(_config_value(config, dotted)) for dotted in SETTINGS}


def _generate(name: str) -> str:
    if name == "AIRFLOW_FERNET_KEY":
        return fernet_key()
    if name == "MINIO_ROOT_USER":
        return "fraudctl" + secrets.token_hex(8)
    if name in ("AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY"):
        return secrets.token_urlsafe(32)
    return secrets.token_urlsafe(24)  # 32 characters; MinIO caps secret keys at 40


def _configured_secrets(config: Config) -> dict[str, str]:
    """The secrets the config sets, checked so they can go into URLs and .env unescaped."""
    found = {}
    for name, dotted in SECRETS.items():
        if dotted is None:
            continue
        value = _config_value(config, dotted)
        if value is None:
            continue
        plain = value.get_secret_value()
        if not SAFE_SECRET.match(plain):
            raise ConfigError(
                f"{dotted}: the compose runtime puts this secret in connection URLs; "
                "use only letters, digits and . _ ~ -",
                hint="or leave it empty and fraudctl generates one",
            )
        found[name] = plain
    # MinIO refuses to start with shorter root credentials (or a longer secret).
    if len(found.get("MINIO_ROOT_USER", "set")) < 3:
        raise ConfigError("storage.access_key_id: MinIO needs at least 3 characters")
    if not 8 <= len(found.get("MINIO_ROOT_PASSWORD", "12345678")) <= 40:
        raise ConfigError("storage.secret_access_key: MinIO needs 8 to 40 characters")
    return found


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; comments and blank lines ignored. Values are never quoted by fraudctl."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def ensure_env_file(path: Path, config: Config) -> dict[str, str]:
    """Create `path` with every secret on first use; afterwards only add missing ones. Returns the values.

    An existing value is never replaced: the databases and volumes were initialised with it. A config
    secret that disagrees with the file is an error rather than a silent choice between the two.
    """
    configured = _configured_secrets(config)
    existing = read_env_file(path) if path.exists() else {}

    for name, value in configured.items():
        if name in existing and existing[name] != value:
            raise ConfigError(
                f"{SECRETS[name]} differs from {name} in {path}, which the running stack was created with",
                hint=f"unset {SECRETS[name]}, or remove {path} together with the volumes (`fraudctl down --purge`)",
            )

    missing = {name: configured.get(name) or _generate(name) for name in SECRETS if name not in existing}
    if not missing:
        return existing

    if path.exists():
        header = ""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.fchmod(fd, 0o600)  # a hand-made file may have been readable by others
    else:
        header = (
            "# fraudctl compose runtime secrets, generated on the first `up --runtime compose`.\n"
            "# Untracked (.gitignore), mode 0600. The volumes were initialised with these values:\n"
            "# remove this file only together with them (`fraudctl down --purge`).\n"
        )
        # O_EXCL: never clobber a file that appeared meanwhile; 0600 from the start, not after a chmod.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(header + "".join(f"{name}={value}\n" for name, value in missing.items()))
    return {**existing, **missing}


class ComposeRuntime:
    name = "compose"

    def __init__(self, config: Config, *, stack_dir: Path | None = None, build: bool = False):
        self.config = config
        self.stack_dir = stack_dir or STACK_DIR
        self.compose_file = self.stack_dir / COMPOSE_FILE
        self.env_file = self.stack_dir / ENV_FILE
        self.build = build  # rebuild the fraudctl/airflow and fraudctl/mlflow images (e.g. after a code change)
        self._command: list[str] | None = None
        self._service_names: list[str] | None = None

    # -- the Runtime protocol -------------------------------------------------------------------

    def up(self, *, timeout: float, on_progress: ProgressCallback | None = None) -> list[ServiceStatus]:
        self._check_engine()
        ensure_env_file(self.env_file, self.config)
        args = ["up", "--detach", "--wait", "--wait-timeout", str(max(1, int(timeout))), "--remove-orphans"]
        if self.build:
            args.append("--build")

        # Output to a file: the first up builds images and prints far more than a pipe buffer holds.
        with tempfile.TemporaryFile("w+") as out:
            proc = subprocess.Popen(self._compose(*args), env=self._env(), stdout=out, stderr=subprocess.STDOUT, text=True)
            try:
                while proc.poll() is None:
                    if on_progress:
                        on_progress(self._ps())
                    try:
                        proc.wait(timeout=2)
                    except subprocess.TimeoutExpired:
                        pass
            except BaseException:  # Ctrl-C: do not leave compose running on its own
                proc.terminate()
                proc.wait()
                raise
            out.seek(0)
            output = out.read()

        services = self._ps()
        if on_progress:
            on_progress(services)
        if proc.returncode != 0:
            unhealthy = [s.name for s in services if s.healthy is not True]
            detail = "\n".join(output.strip().splitlines()[-40:])
            named = f" (not healthy: {', '.join(unhealthy)})" if unhealthy else ""
            hint = "see `fraudctl logs SERVICE --runtime compose`"
            if re.search(r"timeout|deadline exceeded", output, re.IGNORECASE):
                raise WaitTimeoutError(f"the compose stack was not healthy within {int(timeout)}s{named}", hint=hint, detail=detail)
            raise ServiceFailedError(f"docker compose up failed{named}", hint=hint, detail=detail)
        return services

    def down(self, *, purge: bool = False) -> None:
        self._check_engine()
        if not self.env_file.exists():
            return  # fraudctl never started this stack (and compose cannot interpolate it without .env)
        args = ["down", "--remove-orphans", "--timeout", str(int(self.config.runtime.stop_timeout))]
        if purge:
            args.append("--volumes")  # the data; stack/.env stays, so a new stack gets the same secrets
        result = self._run(*args)
        if result.returncode != 0:
            raise ServiceFailedError("docker compose down failed", detail=(result.stderr or result.stdout)[-4000:])

    def status(self) -> list[ServiceStatus]:
        self._check_engine()
        return self._ps()

    def logs(self, service: str, *, lines: int = 50, follow: bool = False) -> Iterator[str]:
        self._check_engine()
        known = self._services()
        if service not in known:
            raise NotFoundError(f"no service {service!r} in {self.compose_file}", hint="one of: " + ", ".join(known))
        if not self.env_file.exists():
            raise UnavailableError("the compose stack was never started", hint="fraudctl up --runtime compose")
        args = ["logs", "--no-color", "--tail", str(lines)] + (["--follow"] if follow else []) + [service]
        proc = subprocess.Popen(self._compose(*args), env=self._env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in proc.stdout:
                yield line.rstrip("\n")
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait()

    # -- docker ---------------------------------------------------------------------------------

    def _check_engine(self) -> None:
        """Raise PrerequisiteError unless a Docker engine answers (DOCKER_HOST, else the default socket)."""
        if not self.compose_file.is_file():
            raise PrerequisiteError(
                f"{self.compose_file} not found: the compose runtime runs from a fraudctl source checkout",
                hint=NATIVE_HINT,
            )
        problem = docker_engine_problem(timeout=10)
        if problem is None:
            return
        # The SDK ignores `docker context`; the CLI (which compose uses) honours it.
        if shutil.which("docker"):
            result = subprocess.run(
                ["docker", "info", "--format", "{{.ServerVersion}}"],
                capture_output=True, text=True, timeout=30,
            )
            if result.returncode == 0:
                return
            problem = (result.stderr or result.stdout).strip() or problem
        raise PrerequisiteError(f"no Docker engine answers ({problem}); {NATIVE_HINT}", hint=NATIVE_HINT)

    def _compose_command(self) -> list[str]:
        """`docker compose` (the CLI plugin), else a standalone `docker-compose` v2+ binary."""
        if self._command is not None:
            return self._command
        candidates: list[list[str]] = []
        if shutil.which("docker"):
            candidates.append(["docker", "compose"])
        for binary in (shutil.which("docker-compose"), str(Path(sys.executable).parent / "docker-compose")):
            if binary and Path(binary).is_file():
                candidates.append([binary])
        for command in candidates:
            result = subprocess.run(command + ["version", "--short"], capture_output=True, text=True)
            version = result.stdout.strip().lstrip("v")
            # v1 (the Python docker-compose) has no `up --wait`.
            if result.returncode == 0 and version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 2:
                self._command = command
                return command
        raise PrerequisiteError(
            "Docker Compose v2 or newer not found (neither `docker compose` nor `docker-compose`)",
            hint="install Docker's compose plugin (package docker-compose-plugin), or " + NATIVE_HINT,
        )

    def _compose(self, *args: str) -> list[str]:
        return self._compose_command() + ["-f", str(self.compose_file), "--env-file", str(self.env_file), *args]

    def _env(self) -> dict[str, str]:
        # Secrets come from stack/.env only: a stray POSTGRES_PASSWORD in the shell must not win over it.
        env = {k: v for k, v in os.environ.items() if k not in SECRETS}
        env.update(settings_env(self.config))
        return env

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self._compose(*args), env=self._env(), capture_output=True, text=True)

    def _services(self) -> list[str]:
        # Read from the file itself: compose would refuse to list them before stack/.env exists.
        if self._service_names is None:
            self._service_names = sorted(yaml.safe_load(self.compose_file.read_text())["services"])
        return self._service_names

    def _ps(self) -> list[ServiceStatus]:
        """Every service of the file, with its container's state; STOPPED when it has none."""
        if not self.env_file.exists():  # never started by fraudctl, and compose cannot interpolate the file
            return [ServiceStatus(name=name, state="STOPPED") for name in self._services()]
        result = self._run("ps", "--all", "--format", "json")
        if result.returncode != 0:
            raise ServiceFailedError("docker compose ps failed", detail=result.stderr[-4000:])
        found = {row["Service"]: _service_status(row) for row in parse_ps_json(result.stdout)}
        return [found.get(name) or ServiceStatus(name=name, state="STOPPED") for name in self._services()]


def parse_ps_json(text: str) -> list[dict]:
    """`compose ps --format json` prints one object per line (v2.21+) or one array (older v2)."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _service_status(row: dict) -> ServiceStatus:
    state = (row.get("State") or "unknown").upper()
    health = row.get("Health") or ""
    healthy: bool | None
    if state == "EXITED" and row.get("ExitCode") == 0:
        state, healthy = "COMPLETED", True  # a one-shot job (airflow-init, minio-init) that succeeded
    elif state == "EXITED":
        healthy = False
    elif health:
        healthy = health == "healthy"
    else:
        healthy = None
    endpoint = None
    for publisher in row.get("Publishers") or []:
        if publisher.get("PublishedPort"):
            endpoint = f"{publisher.get('URL') or '127.0.0.1'}:{publisher['PublishedPort']}"
            break
    return ServiceStatus(name=row["Service"], state=state, endpoint=endpoint, healthy=healthy, detail=row.get("Status", ""))
