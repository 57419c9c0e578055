"""The compose runtime: the whole stack as containers from stack/compose.yaml, for machines with Docker.

Three kinds of values reach compose.yaml, all exported by fraudctl on every run:
- secrets, from the untracked `stack/.env`, generated on the first `up` (mode 0600, never overwritten);
- settings (ports, users, database names, sizing), from the effective config under the config's own
  environment names (`FRAUDCTL_KAFKA__PORT`, ...), which compose.yaml uses as `${FRAUDCTL_KAFKA__PORT:-9092}`;
- per-run values fraudctl computes (`STACK_*`: the generated container config, the scorer's folder, the
  host user, the S3 endpoint as containers reach it).
So fraudctl.yaml stays the one place to change a port. Containers that run fraudctl code (the Airflow tasks,
the scorer) read the same configuration, rewritten to the in-network addresses (`container_config`).

After `up --wait`, `fraudctl.stack.provision` creates the topics and the bucket, as the native runtime does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import yaml

from fraudctl.config import Config, env_name, value_at
from fraudctl.errors import (
    ConfigError,
    NotFoundError,
    PrerequisiteError,
    ServiceFailedError,
    UnavailableError,
    WaitTimeoutError,
)
from fraudctl.stack.engine import docker_engine_problem
from fraudctl.stack import table
from fraudctl.stack.base import (
    Answers, MessageCallback, ProgressCallback, ServiceStatus, filled_storage, published_storage_url,
)
from fraudctl.stack.airflow_env import AirflowPlaces, airflow_settings
from fraudctl.stack.compose_env import (  # noqa: F401 (SAFE_SECRET: a name of this module too)
    SAFE_SECRET, SECRETS, ensure_env_file, read_env_file, secrets_from_env,
)
from fraudctl.stack.compose_ps import (  # noqa: F401 (parse_ps_json ... with_uptimes: names of this module too)
    parse_ps_json, service_status as _service_status, with_on_demand, with_uptimes,
)
from fraudctl.stack.secrets import Secrets, config_with_secrets, write_private

STACK_DIR = Path(__file__).resolve().parents[2] / "stack"  # the source checkout's stack/ folder
COMPOSE_FILE = "compose.yaml"
ENV_FILE = ".env"
MIN_COMPOSE = (2, 17)  # `up --wait-timeout` came with Docker Compose 2.17

NATIVE_HINT = "use --runtime native (the default without Docker)"

# The on-demand services (fraudctl.stack.table) carry this compose profile: never started by `up`.
ON_DEMAND_PROFILE = "scorer"
CONTAINER_STATE_DIR = "/var/lib/fraudctl"  # the scorer's folder is bind-mounted below it
CONTAINER_CONFIG_DIR = "compose"  # <state_dir>/compose/fraudctl.yaml: the generated container config
CONTAINER_CONFIG_NAME = "fraudctl.yaml"


# Config fields compose.yaml reads as ${FRAUDCTL_SECTION__FIELD:-default}: the published ports and their bind
# addresses (fraudctl.stack.table), and these.
OTHER_SETTINGS = (
    "kafka.controller_port",
    "kafka.heap",
    "postgres.user",
    "postgres.airflow_db",
    "postgres.mlflow_db",
    "postgres.rules_db",
    "mlflow.workers",
    "airflow.admin_user",
    "storage.bucket",
    "storage.region",
    "storage.heap",
    "spark.master_port",
    "spark.worker_port",
    "spark.worker_cores",
    "spark.worker_memory",
)
SETTINGS = tuple(dict.fromkeys([
    *(field for service in table.for_runtime(table.COMPOSE) for port, host in service.published
      for field in (host, port) if field),
    *OTHER_SETTINGS,
]))

# Values fraudctl computes on each run (`stack_env`); compose.yaml requires them (`${NAME:?...}`).
STACK_VARIABLES = (
    "STACK_CONFIG_FILE",  # the generated container config, mounted into the Airflow containers
    "STACK_SCORER_DIR",  # <state_dir>/scorer on the host: launch file, status, checkpoint, feature state
    "STACK_UID",  # the scorer runs as the host user, so the host can read and delete what it writes
    "STACK_GID",
    "STACK_S3_ENDPOINT",  # the object store as containers reach it: the stack's objectstore, or storage.endpoint_url
    "STACK_AIRFLOW_ENV_FILE",  # <state_dir>/compose/airflow.env: the Airflow containers' environment (airflow_env)
)


def setting_text(value: Any) -> str:
    """How a config value is written for compose (and Airflow): whole floats as integers (Airflow reads
    heartbeat_timeout with getint), booleans in lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def settings_env(config: Config) -> dict[str, str]:
    """The config's settings under the names compose.yaml interpolates."""
    return {env_name(dotted): setting_text(value_at(config, dotted)) for dotted in SETTINGS}


def check_storage(config: Config) -> None:
    """The compose stack shares its storage between the host and the containers: only S3 can be shared,
    and only at an address both can reach."""
    storage = config.storage
    if storage.kind != "s3":
        raise ConfigError(
            "storage.kind: local is not supported by the compose runtime: the host and the containers (MLflow, "
            "the Airflow workers, the scorer) would each write a folder of their own",
            hint="use storage.kind: s3 (the stack's objectstore, S3Proxy, when storage.endpoint_url is null)")
    if storage.endpoint_url and urlparse(storage.endpoint_url).hostname in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(
            f"storage.endpoint_url: {storage.endpoint_url} is a loopback address, which containers cannot reach",
            hint="leave storage.endpoint_url null to use the stack's objectstore (published on storage.host:storage.port)")


def s3_endpoint_in_network(config: Config) -> str:
    return config.storage.endpoint_url or table.network_url(table.OBJECTSTORE)


def container_config(config: Config, secrets: Secrets | None) -> dict[str, Any]:
    """The configuration as fraudctl code inside the stack sees it (JSON data): every endpoint by service name
    and container port, the stack's Spark master, the state under CONTAINER_STATE_DIR. With `secrets`, the
    real secret values are included (the scorer's launch file, 0600); without, they are null (the generated
    config file: Airflow's containers get the secrets they need from stack/.env through their environment)."""
    check_storage(config)
    data = config_with_secrets(config, secrets)
    if secrets is None:
        for dotted in filter(None, SECRETS.values()):
            section, key = dotted.split(".")
            data[section][key] = None
    data["runtime"].update(kind="compose", state_dir=CONTAINER_STATE_DIR)
    for section, (host, port) in table.in_network().items():
        data[section].update(host=host, port=port)
    data["storage"]["endpoint_url"] = s3_endpoint_in_network(config)
    if secrets is not None and config.storage.endpoint_url is None:  # the stack's objectstore: its generated keys
        data["storage"].update(access_key_id=secrets.objectstore_access_key,
                               secret_access_key=secrets.objectstore_secret_key)
    data["spark"].update(master=f"spark://{table.SPARK_MASTER}:{config.spark.master_port}", driver_host=table.SCORER,
                         standalone=False)
    return data


AIRFLOW_ENV_NAME = "airflow.env"  # <state_dir>/compose/airflow.env: the Airflow containers' environment (0600)
# Where the Airflow containers (the fraudctl/python image, compose.yaml's mounts) keep their files, and what
# they bind: all interfaces of their own container; only the api-server's and Flower's ports are published.
AIRFLOW_PLACES = AirflowPlaces(
    home="/opt/airflow", passwords_file="/opt/airflow/auth/passwords.json", dags_folder="/opt/airflow/dags", log_folder="/opt/airflow/logs",
    state_dir=CONTAINER_STATE_DIR, config_file="/etc/fraudctl/fraudctl.yaml", api_bind="0.0.0.0",
    flower_bind="0.0.0.0")


def airflow_env(config: Config, secrets: Secrets) -> dict[str, str]:
    """The environment of every Airflow container: the native runtime's (fraudctl.stack.airflow_env) from the
    configuration as containers see it, plus what only compose needs."""
    inside = Config.model_validate(container_config(config, secrets))
    env = airflow_settings(inside, secrets, inside.storage, AIRFLOW_PLACES)
    # Links the web UI builds point where the operator's browser reaches it: the published address.
    env["AIRFLOW__API__BASE_URL"] = config.airflow.url
    # The scheduler's health endpoint (port 8974, inside its container): what compose's health check asks.
    env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] = "True"
    # The tasks' fraudctl finds the store's keys here: the container config they read holds no secret.
    if inside.storage.access_key_id and inside.storage.secret_access_key:
        env["FRAUDCTL_STORAGE__ACCESS_KEY_ID"] = inside.storage.access_key_id.get_secret_value()
        env["FRAUDCTL_STORAGE__SECRET_ACCESS_KEY"] = inside.storage.secret_access_key.get_secret_value()
    return env


def airflow_env_path(config: Config) -> Path:
    return config.state_dir / CONTAINER_CONFIG_DIR / AIRFLOW_ENV_NAME


def write_airflow_env(config: Config, secrets: Secrets, path: Path | None = None) -> Path:
    """The Airflow containers' env file, rewritten on every `up`; it holds secrets: 0600, like stack/.env."""
    path = path or airflow_env_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{key}={value}" for key, value in airflow_env(config, secrets).items()]
    write_private(path, "# Generated by `fraudctl up --runtime compose`; do not edit (edit fraudctl.yaml).\n"
                  + "\n".join(lines) + "\n")
    return path


def container_config_path(config: Config) -> Path:
    return config.state_dir / CONTAINER_CONFIG_DIR / CONTAINER_CONFIG_NAME


def write_container_config(config: Config) -> Path:
    """<state_dir>/compose/fraudctl.yaml, rewritten on every `up`: no secrets, readable by the containers."""
    path = container_config_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Generated by `fraudctl up --runtime compose` from the effective configuration; do not edit\n"
              "# (edit fraudctl.yaml). What fraudctl code inside the compose stack reads: the same settings,\n"
              "# with every endpoint at its in-network address. Secrets come from stack/.env instead.\n")
    path.write_text(header + yaml.safe_dump(container_config(config, None), sort_keys=False))
    path.chmod(0o644)
    return path


def stack_env(config: Config) -> dict[str, str]:
    from fraudctl.clients.spark import scorer_dir

    return {
        # Absolute: compose would take a relative path from stack/, not from where fraudctl runs.
        "STACK_CONFIG_FILE": str(container_config_path(config).resolve()),
        "STACK_SCORER_DIR": str(scorer_dir(config).resolve()),
        "STACK_UID": str(os.getuid()),
        "STACK_GID": str(os.getgid()),
        "STACK_S3_ENDPOINT": s3_endpoint_in_network(config),
        "STACK_AIRFLOW_ENV_FILE": str(airflow_env_path(config).resolve()),
    }


def env_file_path(stack_dir: Path | None = None) -> Path:
    return (stack_dir or STACK_DIR) / ENV_FILE


def compose_secrets(config: Config, *, create: bool = False, stack_dir: Path | None = None) -> Secrets | None:
    """The compose stack's secrets from stack/.env (created with `create`); None when it was never started."""
    path = env_file_path(stack_dir)
    if create:
        return secrets_from_env(ensure_env_file(path, config), path)
    if not path.exists():
        return None
    return secrets_from_env(read_env_file(path), path)


def parse_version(text: str) -> tuple[int, int] | None:
    """'v2.29.1', '2.17.0-desktop.1', '5.6.1' -> (major, minor)."""
    match = re.match(r"^v?(\d+)\.(\d+)", text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


class ComposeRuntime(Answers):
    name = "compose"

    def __init__(self, config: Config, *, stack_dir: Path | None = None, build: bool = False):
        self.config = config
        self.stack_dir = stack_dir or STACK_DIR
        self.compose_file = self.stack_dir / COMPOSE_FILE
        self.env_file = self.secrets_location = env_file_path(self.stack_dir)
        self.build = build  # rebuild the fraudctl/* images (e.g. after a code change)
        self._command: list[str] | None = None
        self._doc: dict | None = None

    # -- what callers ask instead of branching on the runtime's name ------------------------------------

    @property
    def start_timeout(self) -> float:
        return self.config.runtime.compose_start_timeout  # a first `up` builds the images

    def secrets(self, *, create: bool = False) -> Secrets | None:
        return compose_secrets(self.config, create=create, stack_dir=self.stack_dir)

    def own_store(self) -> bool:
        """The stack's objectstore (S3Proxy) is the store: S3 with no endpoint configured."""
        return self.config.storage.kind == "s3" and self.config.storage.endpoint_url is None

    def storage_in_network(self):
        if not self.own_store():
            return self.config.storage
        return filled_storage(self.config, s3_endpoint_in_network(self.config), self.secrets())

    # -- the Runtime protocol -------------------------------------------------------------------

    def up(self, *, timeout: float, on_progress: ProgressCallback | None = None,
           on_message: MessageCallback | None = None) -> list[ServiceStatus]:
        from fraudctl.clients import postgres
        from fraudctl.clients.spark import scorer_dir
        from fraudctl.stack.provision import provision

        self._check_engine()
        self._compose_command()  # a too-old Compose fails here, before anything is written
        check_storage(self.config)
        values = ensure_env_file(self.env_file, self.config)
        write_container_config(self.config)
        write_airflow_env(self.config, secrets_from_env(values, self.env_file))
        scorer_dir(self.config).mkdir(parents=True, exist_ok=True)  # bind-mounted: must be the host user's
        self.build_images(on_message)
        # The images exist now: `up` itself never builds (it would build in parallel, and with --build, again).
        args = ["up", "--detach", "--wait", "--wait-timeout", str(max(1, int(timeout))), "--remove-orphans"]
        args += self.stack_services()  # named, so the on-demand scorer is neither started nor an orphan

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
            unhealthy = [s.name for s in services if s.healthy is not True and not s.on_demand]
            detail = "\n".join(output.strip().splitlines()[-40:])
            named = f" (not healthy: {', '.join(unhealthy)})" if unhealthy else ""
            hint = "see `fraudctl logs SERVICE --runtime compose`"
            if re.search(r"timeout|deadline exceeded", output, re.IGNORECASE):
                raise WaitTimeoutError(f"the compose stack was not healthy within {int(timeout)}s{named}", hint=hint, detail=detail)
            raise ServiceFailedError(f"docker compose up failed{named}", hint=hint, detail=detail)
        secrets = secrets_from_env(values, self.env_file)
        # The image's entrypoint makes the role and databases on an empty volume only; a volume from before a
        # database joined the stack (the rules') lacks it: ensure them over the published port, as natively.
        postgres.bootstrap(self.config.postgres, secrets.postgres_superuser_password, secrets.postgres_password)
        own = filled_storage(self.config, published_storage_url(self.config), secrets) if self.own_store() else None
        provision(self.config, own)
        return services

    def images(self) -> dict[str, str]:
        return built_images(self._doc_services())

    def build_images(self, on_message: MessageCallback | None = None) -> list[str]:
        """Build what `up` needs (fraudctl.stack.images): nothing when every image is present, unless `build`;
        then the base, fraudctl/base, and each image one after another. Returns the images built."""
        from fraudctl.stack import images

        say = on_message or (lambda message: None)
        client = images.docker_client()
        wanted = self.images()
        todo = list(wanted) if self.build else [image for image in wanted if not images.image_present(client, image)]
        if not todo:
            return []
        say(f"building {', '.join(todo)} from {self.config.compose.base_image}")
        images.ensure_base_image(client, self.config, say)
        images.build_base(client, self.config)
        for image in todo:
            say(f"building {image}")
            started = time.monotonic()
            with tempfile.TemporaryFile("w+") as out:
                result = subprocess.run(self._compose("build", wanted[image]), env=self._env(), stdout=out,
                                        stderr=subprocess.STDOUT, text=True)
                out.seek(0)
                output = out.read()
            if result.returncode != 0:
                raise ServiceFailedError(f"building the image {image} failed",
                                         detail="\n".join(output.strip().splitlines()[-60:]),
                                         hint="`fraudctl up --build` tries again from the cached layers")
            say(f"built {image} in {time.monotonic() - started:.0f}s")
        return todo

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
        if purge:  # what the stack kept on the host: the scorer's folder and the generated container config
            from fraudctl.clients.spark import scorer_dir

            shutil.rmtree(scorer_dir(self.config), ignore_errors=True)
            shutil.rmtree(container_config_path(self.config).parent, ignore_errors=True)

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

    # -- on-demand services (the scorer), as the native runtime offers them -------------------------

    def job_config(self) -> dict[str, Any]:
        """The configuration a job started in the stack (the scorer) reads: in-network, with its secrets."""
        secrets = compose_secrets(self.config, stack_dir=self.stack_dir)
        if secrets is None:
            raise UnavailableError("the compose stack was never started", hint="fraudctl up --runtime compose")
        return container_config(self.config, secrets)

    def service_state(self, name: str) -> str:
        """The service's state in the native runtime's (supervisor's) words, so callers need not care."""
        from fraudctl.stack.supervisor import BACKOFF, EXITED, FATAL, STOPPED

        self._check_engine()
        state = next((s.state for s in self._ps() if s.name == name), STOPPED)
        return {"RESTARTING": BACKOFF, "DEAD": FATAL, "COMPLETED": EXITED, "CREATED": STOPPED}.get(state, state)

    def start_on_demand(self, name: str) -> None:
        """Start an on-demand service once what it depends on is healthy; nothing else is touched (--no-deps)."""
        self._check_engine()
        spec = self._doc_services().get(name)
        if spec is None:
            raise NotFoundError(f"no service {name!r} in {self.compose_file}")
        if not self.env_file.exists():
            raise UnavailableError("the compose stack was never started", hint="fraudctl up --runtime compose")
        found = {s.name: s for s in self._ps()}
        down = [d for d in (spec.get("depends_on") or {}) if not (d in found and found[d].healthy)]
        if down:
            raise UnavailableError(f"{name} needs {', '.join(down)}, which is not running and healthy",
                                   hint="fraudctl up --runtime compose")
        result = self._run("up", "--detach", "--no-deps", *(["--build"] if self.build else []), name)
        if result.returncode != 0:
            raise ServiceFailedError(f"docker compose could not start {name}",
                                     detail=(result.stderr or result.stdout)[-4000:], hint=f"fraudctl logs {name}")

    def stop_service(self, name: str) -> None:
        self._check_engine()
        if not self.env_file.exists():
            return
        result = self._run("stop", "--timeout", str(int(self.config.runtime.stop_timeout)), name)
        if result.returncode != 0:
            raise ServiceFailedError(f"docker compose could not stop {name}", detail=(result.stderr or result.stdout)[-4000:])

    def log_tail(self, name: str, lines: int = 30) -> str:
        result = self._run("logs", "--no-color", "--tail", str(lines), name)
        return (result.stdout or result.stderr).rstrip()

    # -- docker ---------------------------------------------------------------------------------

    def _check_engine(self) -> None:
        check_engine(self.compose_file)

    def _compose_command(self) -> list[str]:
        if self._command is None:
            self._command = find_compose()
        return self._command

    def _compose(self, *args: str) -> list[str]:
        # The scorer's profile is always enabled, so every command knows the service; `up` names the
        # services it starts, which leaves the scorer to `fraudctl scorer start`.
        return self._compose_command() + ["-f", str(self.compose_file), "--env-file", str(self.env_file),
                                          "--profile", ON_DEMAND_PROFILE, *args]

    def _env(self) -> dict[str, str]:
        # Secrets come from stack/.env only: a stray POSTGRES_PASSWORD in the shell must not win over it.
        env = {k: v for k, v in os.environ.items() if k not in SECRETS}
        env.update(settings_env(self.config))
        env.update(stack_env(self.config))
        return env

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self._compose(*args), env=self._env(), capture_output=True, text=True)

    def _doc_services(self) -> dict[str, dict]:
        # Read from the file itself: compose would refuse to list them before stack/.env exists.
        if self._doc is None:
            self._doc = yaml.safe_load(self.compose_file.read_text())
        return self._doc["services"]

    def _services(self) -> list[str]:
        return sorted(self._doc_services())

    def stack_services(self) -> list[str]:
        """The services `up` starts: all but the on-demand ones (those with a profile)."""
        return [name for name in self._services() if not self._doc_services()[name].get("profiles")]

    def _ps(self) -> list[ServiceStatus]:
        """Every service of the file, with its container's state; STOPPED when it has none."""
        on_demand = set(self._services()) - set(self.stack_services())
        if not self.env_file.exists():  # never started by fraudctl, and compose cannot interpolate the file
            found = {}
        else:
            result = self._run("ps", "--all", "--format", "json")
            if result.returncode != 0:
                raise ServiceFailedError("docker compose ps failed", detail=result.stderr[-4000:])
            found = with_uptimes(parse_ps_json(result.stdout), self._env())
        return [with_on_demand(found.get(name) or ServiceStatus(name=name, state="STOPPED"), name in on_demand)
                for name in self._services()]


def check_engine(compose_file: Path) -> None:
    """Raise PrerequisiteError unless a Docker engine answers (DOCKER_HOST, else the default socket)."""
    if not compose_file.is_file():
        raise PrerequisiteError(
            f"{compose_file} not found: the compose runtime runs from a fraudctl source checkout",
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


def built_images(services: dict[str, dict]) -> dict[str, str]:
    """Each image the project builds -> the first service that names it (the one `compose build` is asked for)."""
    found: dict[str, str] = {}
    for name, spec in services.items():
        if spec.get("build") and spec.get("image"):
            found.setdefault(spec["image"], name)
    return found


def find_compose() -> list[str]:
    """`docker compose` (the CLI plugin), else a standalone `docker-compose`, of version MIN_COMPOSE or newer."""
    candidates: list[list[str]] = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    for binary in (shutil.which("docker-compose"), str(Path(sys.executable).parent / "docker-compose")):
        if binary and Path(binary).is_file():
            candidates.append([binary])
    too_old = []
    for command in candidates:
        result = subprocess.run(command + ["version", "--short"], capture_output=True, text=True)
        version = parse_version(result.stdout) if result.returncode == 0 else None
        if version is None:
            continue  # not a compose (e.g. `docker` without the plugin), or v1 without --short
        if version >= MIN_COMPOSE:
            return command
        too_old.append(f"{' '.join(command)} {result.stdout.strip()}")
    wanted = ".".join(map(str, MIN_COMPOSE))
    found = f" (found {', '.join(too_old)})" if too_old else ""
    raise PrerequisiteError(
        f"Docker Compose {wanted} or newer not found{found}: `up --wait-timeout` needs it",
        hint="install or update Docker's compose plugin (package docker-compose-plugin), or " + NATIVE_HINT,
    )
