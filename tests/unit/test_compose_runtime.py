"""The compose runtime's own logic without a Docker engine: `up` and the post-`up` steps, the on-demand
scorer, secrets and endpoints read through the active runtime, and the checks made before compose runs.

The compose CLI is a stand-in script that logs its calls and keeps the containers' states in a file; it
tests fraudctl's side only. Nothing here says anything about how the images behave under a real engine.
"""

from __future__ import annotations

import inspect
import json
import stat
import sys
from pathlib import Path

import pytest
import yaml

from fraudctl.clients import kafka, objectstore, postgres
from fraudctl.config import Config, load_config
from fraudctl.errors import ConfigError, PrerequisiteError, ServiceFailedError, UnavailableError, WaitTimeoutError
from fraudctl.stack import compose, images, provision
from fraudctl.stack.compose import SECRETS, ComposeRuntime, ensure_env_file, read_env_file

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "stack" / "compose.yaml"
STACK_SERVICES = {
    "kafka", "postgres", "redis", "objectstore", "mlflow", "airflow-init", "airflow-apiserver", "airflow-scheduler",
    "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "flower", "spark-master", "spark-worker",
}

FAKE_COMPOSE = r'''
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
if args[:2] == ["version", "--short"]:
    print(os.environ.get("FAKE_VERSION", "2.29.1"))
    sys.exit(0)
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"args": args, "env": {k: v for k, v in os.environ.items()
                                                  if k.startswith(("FRAUDCTL_", "STACK_")) or k == "POSTGRES_PASSWORD"}}) + "\n")
states = Path(os.environ["FAKE_STATES"])
rows = json.loads(states.read_text())
command = args[args.index("--env-file") + 4]  # after: --env-file FILE --profile scorer
if command == "ps":
    print("\n".join(json.dumps(row) for row in rows.values()))
elif command == "up":
    print(os.environ.get("FAKE_UP_OUTPUT", ""))
    if args[-1] == "scorer":  # what the job does once its query runs: a status file in the mounted folder
        status = {"state": os.environ.get("FAKE_SCORER_STATE", "running"), "pid": 7, "updated_at": __import__("time").time()}
        Path(os.environ["STACK_SCORER_DIR"], "status.json").write_text(json.dumps(status))
        rows["scorer"] = {"Service": "scorer", "State": "running", "Health": "starting", "Status": "Up 1 second"}
        states.write_text(json.dumps(rows))
    sys.exit(int(os.environ.get("FAKE_UP_RC", "0")))
elif command == "stop":
    rows[args[-1]] = {"Service": args[-1], "State": "exited", "ExitCode": 0, "Status": "Exited (0)"}
    states.write_text(json.dumps(rows))
elif command == "logs":
    print("line one\nline two")
elif command == "build":
    sys.exit(int(os.environ.get("FAKE_BUILD_RC", "0")))
'''


def healthy(name: str, port: int | None = None) -> dict:
    row = {"Service": name, "State": "running", "Health": "healthy", "Status": "Up 2 minutes (healthy)"}
    if port:
        row["Publishers"] = [{"URL": "127.0.0.1", "TargetPort": port, "PublishedPort": port, "Protocol": "tcp"}]
    return row


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """A ComposeRuntime over a copy of stack/ whose engine check passes and whose compose CLI is FAKE_COMPOSE;
    the post-`up` steps are recorded instead of reaching Kafka and MinIO. The active runtime is compose."""
    script = tmp_path / "fake_compose.py"
    script.write_text(FAKE_COMPOSE)
    states = tmp_path / "states.json"
    states.write_text(json.dumps({name: healthy(name) for name in STACK_SERVICES - {"airflow-init"}}))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_STATES", str(states))
    monkeypatch.setenv("POSTGRES_PASSWORD", "from-the-shell")  # must not reach compose
    monkeypatch.setattr(ComposeRuntime, "_check_engine", lambda self: None)
    stack_dir = tmp_path / "stack"
    stack_dir.mkdir()
    (stack_dir / "compose.yaml").write_text(COMPOSE_FILE.read_text())
    monkeypatch.setattr(compose, "STACK_DIR", stack_dir)  # where a ComposeRuntime keeps its .env

    provisioned = []
    monkeypatch.setattr(postgres, "bootstrap", lambda pg, superuser_password, app_password: provisioned.append(
        ("databases", f"{pg.host}:{pg.port}", superuser_password, app_password, pg.airflow_db, pg.mlflow_db, pg.rules_db)))
    monkeypatch.setattr(kafka, "ensure_topics", lambda config: provisioned.append(("topics", config.kafka.bootstrap_servers)))
    monkeypatch.setattr(objectstore, "ensure_bucket", lambda storage: provisioned.append(
        ("bucket", storage.bucket, storage.endpoint_url, storage.access_key_id.get_secret_value(),
         storage.secret_access_key.get_secret_value())))

    # The images: the engine's image store is a set; what fraudctl.stack.images did is recorded.
    present: set[str] = set()
    image_steps = []
    monkeypatch.setattr(images, "docker_client", lambda timeout=600: "client")
    monkeypatch.setattr(images, "image_present", lambda client, name: name in present)
    monkeypatch.setattr(images, "ensure_base_image", lambda client, config, say: image_steps.append(("base", config.compose.base_image)))
    monkeypatch.setattr(images, "build_base", lambda client, config: image_steps.append(("fraudctl/base", None)))

    config = Config.model_validate({"runtime": {"kind": "compose", "state_dir": str(tmp_path / "state")}})
    runtime = ComposeRuntime(config, stack_dir=stack_dir)
    runtime._command = [sys.executable, str(script)]
    import fraudctl.stack

    def resolve(cfg, build=False):
        runtime.build = build
        return runtime

    monkeypatch.setattr(fraudctl.stack, "get_runtime", resolve)

    class Stack:
        pass

    s = Stack()
    s.runtime, s.config, s.provisioned, s.states, s.tmp = runtime, config, provisioned, states, tmp_path
    s.present, s.image_steps = present, image_steps

    def calls():
        log = tmp_path / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    s.calls = calls
    return s


# -- up, and what it promises after --------------------------------------------------------------------


def test_up_generates_the_secrets_runs_compose_creates_topics_and_bucket(stack):
    runtime, config = stack.runtime, stack.config
    seen = []
    statuses = runtime.up(timeout=30, on_progress=seen.append)

    assert stat.S_IMODE(runtime.env_file.stat().st_mode) == 0o600
    secrets = read_env_file(runtime.env_file)
    up = next(c for c in stack.calls() if "up" in c["args"])
    assert up["args"][:6] == ["-f", str(runtime.compose_file), "--env-file", str(runtime.env_file), "--profile", "scorer"]
    assert up["args"][6:12] == ["up", "--detach", "--wait", "--wait-timeout", "30", "--remove-orphans"]
    assert set(up["args"][12:]) == STACK_SERVICES  # named: the on-demand scorer is not started
    assert up["env"]["FRAUDCTL_KAFKA__PORT"] == "9092"
    assert up["env"]["STACK_SCORER_DIR"] == str(config.state_dir / "scorer")
    assert up["env"]["STACK_S3_ENDPOINT"] == "http://objectstore:9000"
    assert "POSTGRES_PASSWORD" not in up["env"]

    # The same post-`up` steps as the native runtime, from the host: the role and databases (a volume older
    # than one of them lacks it), the topics, then the object store's bucket with its keys.
    assert stack.provisioned == [
        ("databases", "127.0.0.1:5432", secrets["POSTGRES_SUPERUSER_PASSWORD"], secrets["POSTGRES_PASSWORD"],
         "airflow", "mlflow", "fraudctl"),
        ("topics", "127.0.0.1:9092"),
        ("bucket", "fraudctl", "http://127.0.0.1:9000", secrets["OBJECTSTORE_ACCESS_KEY"], secrets["OBJECTSTORE_SECRET_KEY"]),
    ]
    # The container config: in-network endpoints, no secret values; the scorer's folder exists (bind mount).
    container = compose.container_config_path(config).read_text()
    assert not any(value in container for value in secrets.values())
    assert (config.state_dir / "scorer").is_dir()

    by_name = {s.name: s for s in statuses}
    assert set(by_name) == STACK_SERVICES | {"scorer"}
    assert by_name["kafka"].healthy is True
    assert by_name["scorer"].on_demand and by_name["scorer"].fine and "fraudctl scorer start" in by_name["scorer"].detail
    assert seen and seen[-1] == statuses


@pytest.mark.parametrize("output, error", [
    ("container fraudctl-airflow-worker-1 is unhealthy: timeout waiting", WaitTimeoutError),
    ("dependency failed to start: container fraudctl-airflow-init-1 exited (1)", ServiceFailedError),
])
def test_up_failures_name_the_unhealthy_services_and_skip_the_post_up_steps(stack, monkeypatch, output, error):
    rows = json.loads(stack.states.read_text())
    rows["airflow-worker"]["Health"] = "unhealthy"
    stack.states.write_text(json.dumps(rows))
    monkeypatch.setenv("FAKE_UP_RC", "1")
    monkeypatch.setenv("FAKE_UP_OUTPUT", output)
    with pytest.raises(error) as caught:
        stack.runtime.up(timeout=30)
    assert "airflow-worker" in caught.value.message and "scorer" not in caught.value.message
    assert output in caught.value.detail
    assert stack.provisioned == []


def test_a_post_up_step_that_fails_names_itself(stack, monkeypatch):
    def refuse(config):
        raise RuntimeError("broker says no")

    monkeypatch.setattr(kafka, "ensure_topics", refuse)
    with pytest.raises(ServiceFailedError, match="could not create the Kafka topics at 127.0.0.1:9092: broker says no"):
        stack.runtime.up(timeout=30)


def test_down_purge_removes_volumes_and_the_host_side_state(stack):
    runtime = stack.runtime
    runtime.down()
    assert stack.calls() == []  # never started: nothing to stop
    runtime.up(timeout=30)
    runtime.down(purge=True)
    down = stack.calls()[-1]["args"]
    assert down[6:] == ["down", "--remove-orphans", "--timeout", "30", "--volumes"]
    assert not (stack.config.state_dir / "scorer").exists()
    assert not compose.container_config_path(stack.config).exists()
    assert runtime.env_file.exists()  # the secrets stay: a new stack gets the same ones

    assert list(runtime.logs("kafka", lines=2)) == ["line one", "line two"]
    assert stack.calls()[-1]["args"][6:] == ["logs", "--no-color", "--tail", "2", "kafka"]
    with pytest.raises(Exception, match="no service 'kafak'"):
        list(runtime.logs("kafak"))


def test_both_runtimes_share_the_post_up_steps(tmp_path, monkeypatch):
    from fraudctl.stack.native import NativeRuntime
    from fraudctl.stack.native_context import NativeContext, runs_objectstore
    from fraudctl.stack.services import build_services

    native = Config.model_validate({"runtime": {"kind": "native", "state_dir": str(tmp_path / "native")}})
    runtime = NativeRuntime(native)
    secrets = runtime.secrets(create=True)
    assert runs_objectstore(native)
    steps = [what for what, _ in provision.steps(native, runtime.storage())]
    assert steps == ["Kafka topics at 127.0.0.1:9092", "bucket fraudctl at http://127.0.0.1:9000"]
    # Natively too, `up` runs them once every service is healthy; no service does it on its own.
    assert "provision(" in inspect.getsource(NativeRuntime.up)
    for service in build_services(NativeContext(native, secrets, None)):
        assert service.after_healthy.__code__.co_names.count("ensure_topics") == 0, service.name
        assert "ensure_bucket" not in service.after_healthy.__code__.co_names, service.name
    # An S3 endpoint of the operator's own: topics only, fraudctl creates no bucket there.
    external = native.model_copy(update={"storage": native.storage.model_copy(update={"endpoint_url": "https://s3.example"})})
    assert not runs_objectstore(external)
    assert NativeRuntime(external).storage().endpoint_url == "https://s3.example"
    assert [what for what, _ in provision.steps(external, None)] == ["Kafka topics at 127.0.0.1:9092"]


# -- the scorer under compose ------------------------------------------------------------------------


def test_scorer_start_runs_the_service_inside_the_network(stack):
    from fraudctl.operate import scorer_service as control

    runtime, config = stack.runtime, stack.config
    runtime.up(timeout=30)
    result = control.start(config, wait_for_model=True, timeout=10)

    started = [c["args"] for c in stack.calls() if "up" in c["args"] and c["args"][-1] == "scorer"]
    assert started == [["-f", str(runtime.compose_file), "--env-file", str(runtime.env_file), "--profile", "scorer",
                        "up", "--detach", "--no-deps", "scorer"]]
    assert result["process"] == "RUNNING" and result["health"] == "healthy"

    launch_file = config.state_dir / "scorer" / "launch.json"
    assert stat.S_IMODE(launch_file.stat().st_mode) == 0o600  # it holds the keys
    launch = json.loads(launch_file.read_text())
    job = Config.model_validate(launch["config"])
    secrets = read_env_file(runtime.env_file)
    assert job.kafka.bootstrap_servers == "kafka:19092"
    assert job.mlflow.tracking_uri == "http://mlflow:5000"
    assert job.spark.master == "spark://spark-master:7077" and job.spark.driver_host == "scorer"
    assert job.storage.endpoint_url == "http://objectstore:9000"
    assert job.storage.access_key_id.get_secret_value() == secrets["OBJECTSTORE_ACCESS_KEY"]
    assert job.storage.secret_access_key.get_secret_value() == secrets["OBJECTSTORE_SECRET_KEY"]
    # The rule store's password, for the scorer's rules: in the launch file, never in the container's command.
    assert job.postgres.password.get_secret_value() == secrets["POSTGRES_PASSWORD"]
    assert job.postgres.host == "postgres"
    assert secrets["POSTGRES_PASSWORD"] not in json.dumps([c["args"] for c in stack.calls()])
    assert str(job.state_dir) == "/var/lib/fraudctl"  # its scorer/ is the host's folder, mounted
    assert launch["master"] is None and launch["wait_for_model"] is True

    # Running already: nothing started twice. Stop: compose stops the service (SIGTERM, then the timeout).
    assert control.start(config, wait_for_model=True)["already_running"] is True
    control.stop(config)
    assert stack.calls()[-2]["args"][6:] == ["stop", "--timeout", "30", "scorer"]


def test_scorer_start_refuses_while_its_dependencies_are_not_healthy(stack):
    from fraudctl.operate import scorer_service as control

    stack.runtime.up(timeout=30)
    rows = json.loads(stack.states.read_text())
    rows["spark-worker"]["Health"] = "unhealthy"
    del rows["objectstore"]
    stack.states.write_text(json.dumps(rows))
    with pytest.raises(UnavailableError, match="scorer needs objectstore, spark-worker, which is not running and healthy"):
        control.start(stack.config, wait_for_model=True, timeout=5)


def test_a_scorer_that_fails_at_start_is_stopped_and_its_log_shown(stack, monkeypatch):
    from fraudctl.operate import scorer_service as control

    stack.runtime.up(timeout=30)
    monkeypatch.setenv("FAKE_SCORER_STATE", "failed")
    with pytest.raises(ServiceFailedError) as caught:
        control.start(stack.config, wait_for_model=True, timeout=5)
    assert "line one" in caught.value.detail
    assert stack.calls()[-2]["args"][6:] == ["stop", "--timeout", "30", "scorer"]


# -- secrets and endpoints through the active runtime ---------------------------------------------------


def test_host_commands_under_compose_read_the_compose_secrets(stack, monkeypatch):
    from fraudctl.operate.connect import airflow_client

    config = stack.config
    # A native stack ran from the same state dir once: its secrets must not be used (Airflow would say 401).
    config.state_dir.mkdir(parents=True)
    (config.state_dir / "secrets.json").write_text(json.dumps({"airflow_admin_password": "native-one",
                                                               "flower_password": "native-flower"}))
    with pytest.raises(UnavailableError, match=r"stack/\.env does not exist"):
        stack.runtime.require_secrets()
    with pytest.raises(UnavailableError, match=r"stack/\.env does not exist"):
        airflow_client(config)

    stack.runtime.up(timeout=30)
    env = read_env_file(stack.runtime.env_file)
    secrets = stack.runtime.secrets()
    assert secrets.airflow_admin_password == env["AIRFLOW_ADMIN_PASSWORD"]
    assert secrets.flower_password == env["FLOWER_PASSWORD"]
    assert airflow_client(config).password == env["AIRFLOW_ADMIN_PASSWORD"]

    # The host's view of storage: MinIO's bucket on storage.host:storage.port, with its generated keys;
    # the containers' view: MinIO by its service name.
    storage = stack.runtime.storage()
    assert storage.endpoint_url == "http://127.0.0.1:9000"
    assert storage.access_key_id.get_secret_value() == env["OBJECTSTORE_ACCESS_KEY"]
    inside = stack.runtime.storage_in_network()
    assert inside.endpoint_url == "http://objectstore:9000"
    assert inside.secret_access_key.get_secret_value() == env["OBJECTSTORE_SECRET_KEY"]


def test_fraudctl_workers_under_compose_uses_flowers_compose_password(stack, monkeypatch, capsys):
    from fraudctl.clients import flower
    from fraudctl.cli import run
    from fraudctl.errors import ExitCode

    stack.runtime.up(timeout=30)
    used = []

    class Recording(flower.FlowerClient):
        def __init__(self, fc, password, timeout=5.0):
            used.append(password)
            raise UnavailableError("Flower is not here in a unit test")

    monkeypatch.setattr(flower, "FlowerClient", Recording)
    monkeypatch.chdir(stack.tmp)
    monkeypatch.setenv("FRAUDCTL_RUNTIME__KIND", "compose")
    monkeypatch.setenv("FRAUDCTL_RUNTIME__STATE_DIR", str(stack.config.state_dir))
    assert run(["workers"]) == ExitCode.UNAVAILABLE
    assert used == [read_env_file(stack.runtime.env_file)["FLOWER_PASSWORD"]]


def test_airflow_tasks_read_the_lake_on_the_objectstore(stack, monkeypatch):
    """What fraudctl code in an Airflow container loads: the generated file plus the keys compose.yaml puts
    in its environment (FRAUDCTL_CONFIG and FRAUDCTL_STORAGE__*)."""
    from fraudctl.data.lake import lake_uri

    stack.runtime.up(timeout=30)
    env = read_env_file(stack.runtime.env_file)
    path = compose.container_config_path(stack.config)
    task_env = {"FRAUDCTL_CONFIG": str(path), "FRAUDCTL_STORAGE__ACCESS_KEY_ID": env["OBJECTSTORE_ACCESS_KEY"],
                "FRAUDCTL_STORAGE__SECRET_ACCESS_KEY": env["OBJECTSTORE_SECRET_KEY"]}
    config = load_config(env=task_env, cwd=stack.tmp)
    assert config.runtime.kind == "compose" and str(config.state_dir) == "/var/lib/fraudctl"
    assert lake_uri(config) == "s3://fraudctl/lake"
    storage = ComposeRuntime(config).storage_in_network()  # what the DAG's tasks ask (dags/fraud_retrain.py)
    assert storage.endpoint_url == "http://objectstore:9000"
    assert storage.access_key_id.get_secret_value() == env["OBJECTSTORE_ACCESS_KEY"]
    assert config.kafka.bootstrap_servers == "kafka:19092" and config.mlflow.tracking_uri == "http://mlflow:5000"
    assert config.model == stack.config.model and config.retrain == stack.config.retrain


# -- checks before compose runs ---------------------------------------------------------------------------


def test_storage_the_containers_cannot_share_is_refused(tmp_path):
    local = Config.model_validate({"storage": {"kind": "local"}})
    with pytest.raises(ConfigError, match="storage.kind: local is not supported by the compose runtime"):
        compose.check_storage(local)
    loopback = Config.model_validate({"storage": {"endpoint_url": "http://127.0.0.1:9000"}})
    with pytest.raises(ConfigError, match="storage.endpoint_url: .* loopback"):
        compose.check_storage(loopback)
    external = Config.model_validate({"storage": {"endpoint_url": "https://s3.eu-west-3.amazonaws.com",
                                                  "access_key_id": "AKIAEXAMPLE", "secret_access_key": "secret-1234"}})
    compose.check_storage(external)
    assert compose.stack_env(external)["STACK_S3_ENDPOINT"] == "https://s3.eu-west-3.amazonaws.com"
    data = compose.container_config(external, None)
    assert data["storage"]["endpoint_url"] == "https://s3.eu-west-3.amazonaws.com"


@pytest.mark.parametrize("text, version", [
    ("v2.29.1\n", (2, 29)), ("2.17.0-desktop.1", (2, 17)), ("5.6.1", (5, 6)), ("", None), ("docker-compose 1.29", None),
])
def test_compose_versions_are_read(text, version):
    assert compose.parse_version(text) == version


@pytest.mark.parametrize("version, accepted", [("2.16.0", False), ("v2.17.0", True), ("2.29.7", True)])
def test_compose_older_than_2_17_is_refused_by_name(tmp_path, monkeypatch, version, accepted):
    script = tmp_path / "docker-compose"
    script.write_text(f"#!{sys.executable}\n" + FAKE_COMPOSE)
    script.chmod(0o755)
    monkeypatch.setenv("FAKE_VERSION", version)
    monkeypatch.setattr(compose.shutil, "which", lambda name: str(script) if name == "docker-compose" else None)
    monkeypatch.setattr(compose, "sys", type("sys", (), {"executable": str(tmp_path / "bin" / "python")}))
    runtime = ComposeRuntime(Config())
    if accepted:
        assert runtime._compose_command() == [str(script)]
    else:
        with pytest.raises(PrerequisiteError, match=rf"Docker Compose 2.17 or newer not found \(found .*{version}\)"):
            runtime._compose_command()


def test_the_generated_container_config_is_a_valid_config_without_secrets(tmp_path):
    config = Config.model_validate({"runtime": {"state_dir": str(tmp_path)}, "postgres": {"password": "pg-secret-1"},
                                    "scorer": {"threshold": 0.4}, "retrain": {"window_days": 30}})
    path = compose.write_container_config(config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the containers' users read it; it holds no secret
    data = yaml.safe_load(path.read_text())
    assert "pg-secret-1" not in path.read_text() and data["postgres"]["password"] is None
    loaded = Config.model_validate(data)
    assert loaded.scorer.threshold == 0.4 and loaded.retrain.window_days == 30
    assert loaded.postgres.host == "postgres" and loaded.airflow.url == "http://airflow-apiserver:8080"


def test_the_env_file_and_the_native_secrets_share_one_table(tmp_path):
    from fraudctl.stack.secrets import SOURCES, Secrets

    assert set(SOURCES) == set(Secrets.__dataclass_fields__)
    assert set(SECRETS) == {env for env, _ in SOURCES.values()}
    values = ensure_env_file(tmp_path / ".env", Config())
    assert compose.secrets_from_env(values, tmp_path / ".env").objectstore_access_key == values["OBJECTSTORE_ACCESS_KEY"]


def test_fraudctl_up_under_compose_waits_longer_by_default_and_can_rebuild(stack, monkeypatch, capsys):
    from fraudctl.cli import run

    monkeypatch.chdir(stack.tmp)
    stack.present.update(stack.runtime.images())  # built before
    assert run(["up", "--runtime", "compose", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["runtime"] == "compose"
    up = [c["args"] for c in stack.calls() if "--wait" in c["args"]]
    assert up[-1][up[-1].index("--wait-timeout") + 1] == "600"  # runtime.compose_start_timeout
    assert "--build" not in up[-1]
    assert not [c for c in stack.calls() if "build" in c["args"]] and stack.image_steps == []  # nothing rebuilt
    assert run(["up", "--runtime", "compose", "--timeout", "50", "--build", "-o", "json"]) == 0
    up = [c["args"] for c in stack.calls() if "--wait" in c["args"]]
    assert up[-1][up[-1].index("--wait-timeout") + 1] == "50" and "--build" not in up[-1]  # built before `up`
    built = [c["args"][c["args"].index("build") + 1:] for c in stack.calls() if "build" in c["args"]]
    assert len(built) == len(stack.runtime.images()) and all(len(b) == 1 for b in built)  # one image at a time
    assert stack.image_steps == [("base", "debian:bookworm-slim"), ("fraudctl/base", None)]


def test_up_builds_only_the_missing_images_one_after_another_and_says_so(stack):
    wanted = stack.runtime.images()
    assert set(wanted) == {"fraudctl/python:0.1.0", "fraudctl/jvm:0.1.0", "fraudctl/postgres:15", "fraudctl/redis:7.0"}
    stack.present.update(set(wanted) - {"fraudctl/jvm:0.1.0"})
    said = []
    stack.runtime.up(timeout=30, on_message=said.append)
    calls = stack.calls()
    builds = [c["args"][c["args"].index("build"):] for c in calls if "build" in c["args"]]
    assert builds == [["build", wanted["fraudctl/jvm:0.1.0"]]]
    assert [i for i, c in enumerate(calls) if "build" in c["args"]][-1] < [i for i, c in enumerate(calls) if "--wait" in c["args"]][0]
    assert stack.image_steps == [("base", "debian:bookworm-slim"), ("fraudctl/base", None)]
    assert any("building fraudctl/jvm:0.1.0" in line for line in said)


def test_a_failed_image_build_stops_up_before_compose_starts_anything(stack, monkeypatch):
    monkeypatch.setenv("FAKE_BUILD_RC", "1")
    with pytest.raises(ServiceFailedError, match="building the image fraudctl/"):
        stack.runtime.up(timeout=30)
    assert not [c for c in stack.calls() if "--wait" in c["args"]] and stack.provisioned == []
