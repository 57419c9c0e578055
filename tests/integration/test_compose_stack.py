"""The compose runtime for real: a Docker engine, every image built by the project, the whole stack up.

The engine: the one that answers at DOCKER_HOST (or the default socket) when there is one; else, as root, a
private dockerd of Debian's docker.io (installed when missing) on a socket and data root of its own, so that
`runtime.kind: auto` elsewhere on the machine is untouched, stopped at the end. Where no engine can be had,
the module skips with the reason, except under CI (CI=true), where it fails naming it: a green CI means
compose ran.

The stack runs as its own compose project (COMPOSE_PROJECT_NAME) on ports of its own, so a developer's
compose stack on the same engine is left alone. Run alone with `pytest -m compose`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from bench.support import write_shifted_config
from tests.conftest import REPO, run_fraudctl, wait_for
from tests.support import SMALL_LOOP, assert_the_loop_ran, what_the_loop_answered

pytestmark = pytest.mark.compose

PROJECT = "fraudctl-test"
PORT_OFFSET = 2000 + int(os.environ.get("TEST_PORT_OFFSET", "0"))  # clear of the native tests' 10000 and 20000
PRIVATE_ROOT = Path("/var/lib/fraudctl-test-docker")  # the private engine's data: images stay cached on disk
PRIVATE_RUN = Path("/run/fraudctl-test-docker")
ENGINE_START_TIMEOUT = 60
UP_TIMEOUT = 3000  # a first `up` on a fresh machine builds every image (about 10 minutes on 2 cores)


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"the compose tests need a Docker engine and none could be had: {reason}", pytrace=False)
    pytest.skip(f"no Docker engine: {reason}")


def _engine_problem(host: str | None) -> str | None:
    env = dict(os.environ)
    if host:
        env["DOCKER_HOST"] = host
    probe = ("from fraudctl.stack.engine import docker_engine_problem; import sys; "
             "p = docker_engine_problem(5); print(p or ''); sys.exit(1 if p else 0)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=REPO,
                            timeout=60)
    return None if result.returncode == 0 else (result.stdout.strip() or result.stderr.strip()[-300:])


def _apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
    result = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env,
                            capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        _unavailable(f"apt-get install {' '.join(packages)} failed: {(result.stderr or result.stdout)[-500:]}")


def _stop_default_engine_started_by_apt() -> None:
    """Debian's package may start dockerd on the default socket (systemd); that one must not stay up."""
    if _engine_problem("unix:///var/run/docker.sock") is None:
        for command in (["systemctl", "stop", "docker.socket", "docker.service"], ["service", "docker", "stop"]):
            if shutil.which(command[0]):
                subprocess.run(command, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def docker_engine():
    """DOCKER_HOST of an engine that answers: the existing one, or a private dockerd started (and stopped) here."""
    existing = os.environ.get("DOCKER_HOST")
    if _engine_problem(existing) is None:
        yield existing or "unix:///var/run/docker.sock"
        return
    if os.geteuid() != 0:
        _unavailable(f"none answers ({existing or 'the default socket'}) and starting one needs root")
    if not shutil.which("dockerd"):
        had_default = Path("/var/run/docker.sock").exists()
        _apt_install("docker.io")
        if not had_default:
            _stop_default_engine_started_by_apt()
    if not shutil.which("debootstrap"):  # the base image where no registry answers (fraudctl.stack.images)
        _apt_install("debootstrap")
    if not shutil.which("dockerd"):
        _unavailable("dockerd not found after installing docker.io")

    PRIVATE_RUN.mkdir(parents=True, exist_ok=True)
    host = f"unix://{PRIVATE_RUN / 'docker.sock'}"
    log = open(PRIVATE_ROOT.parent / "fraudctl-test-dockerd.log", "ab")
    proc = subprocess.Popen(
        ["dockerd", "-H", host, "--data-root", str(PRIVATE_ROOT), "--exec-root", str(PRIVATE_RUN / "exec"),
         "--pidfile", str(PRIVATE_RUN / "docker.pid")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + ENGINE_START_TIMEOUT
    while (problem := _engine_problem(host)) is not None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _unavailable(f"a private dockerd did not start ({problem}); see {log.name}")
        time.sleep(1)
    try:
        yield host
    finally:
        proc.send_signal(signal.SIGTERM)  # dockerd stops its containers and exits
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def compose_env(docker_engine) -> dict[str, str]:
    return {"DOCKER_HOST": docker_engine, "COMPOSE_PROJECT_NAME": PROJECT}


@pytest.fixture(scope="session")
def compose_config(tmp_path_factory, compose_env) -> Path:
    folder = tmp_path_factory.mktemp("compose")
    # The CA bundle the host trusts: this network inspects TLS, and pip and Maven inside the builds must
    # trust what the host trusts (a public file; fraudctl.stack.images puts it in fraudctl/base).
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    return write_shifted_config(
        folder, PORT_OFFSET, runtime={"kind": "compose", "stop_timeout": 20},
        compose={"ca_bundle": str(ca) if ca.is_file() else None}, retrain={"schedule": None},
        # The scorer's start under compose: a container, the driver, an application on the compose master and
        # an executor JVM on its worker; on two cores shared with the rest, minutes rather than seconds.
        scorer={"start_timeout": 600})


def fraudctl(config: Path, env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    result = run_fraudctl("-c", str(config), *args, env=env, timeout=timeout)
    assert result.returncode == 0, f"fraudctl {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}\n{result.stdout[-2000:]}"
    return result


def docker(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def project_volumes(env) -> list[str]:
    return docker(env, "volume", "ls", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}").split()


@pytest.fixture(scope="session")
def compose_stack(compose_config, compose_env):
    """`fraudctl up` on compose from nothing (no container, no volume of the project), timed; purged at the end."""
    if not shutil.which("docker"):
        _unavailable("the docker CLI is not installed")
    run_fraudctl("-c", str(compose_config), "down", "--purge", env=compose_env, timeout=600)
    assert project_volumes(compose_env) == []
    started = time.monotonic()
    try:
        # --build: the images run this checkout's code (cached layers are reused; a change rebuilds its own)
        result = fraudctl(compose_config, compose_env, "up", "--build", "-o", "json", timeout=UP_TIMEOUT)
    except BaseException:
        run_fraudctl("-c", str(compose_config), "down", "--purge", env=compose_env, timeout=600)
        raise
    report = json.loads(result.stdout)
    print(f"\ncompose up from nothing: {time.monotonic() - started:.0f}s (images built: "
          f"{[line for line in result.stderr.splitlines() if line.startswith('built ')] or 'none, cached'})")
    try:
        yield report
    finally:
        run_fraudctl("-c", str(compose_config), "down", "--purge", env=compose_env, timeout=600)


def test_up_from_nothing_every_service_healthy_topics_and_bucket(compose_stack, compose_config, compose_env):
    from fraudctl.config import load_config

    assert compose_stack["runtime"] == "compose" and compose_stack["healthy"] is True
    services = {s["name"]: s for s in compose_stack["services"]}
    for name, service in services.items():
        assert service["on_demand"] or service["healthy"], f"{name}: {service}"

    config = load_config(compose_config)
    from confluent_kafka.admin import AdminClient

    topics = AdminClient({"bootstrap.servers": config.kafka.bootstrap_servers}).list_topics(timeout=20).topics
    for topic in config.kafka.topics.all():
        assert topic.name in topics and len(topics[topic.name].partitions) == topic.partitions, topic.name

    s3 = _s3(compose_config, compose_env)
    assert config.storage.bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_status_json_lists_the_containers(compose_stack, compose_config, compose_env):
    text = fraudctl(compose_config, compose_env, "status").stdout
    assert "objectstore" in text and "airflow-worker" in text
    report = json.loads(fraudctl(compose_config, compose_env, "status", "-o", "json").stdout)
    assert report["runtime"] == "compose" and report["healthy"] is True
    running = docker(compose_env, "ps", "--filter", f"label=com.docker.compose.project={PROJECT}",
                     "--format", "{{.Label \"com.docker.compose.service\"}}").split()
    listed = {s["name"] for s in report["services"] if s["state"] == "RUNNING"}
    assert listed == set(running) and "kafka" in listed


def test_every_published_port_is_on_loopback(compose_stack, compose_env):
    ids = docker(compose_env, "ps", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}").split()
    assert ids
    published = 0
    for container in json.loads(docker(compose_env, "inspect", *ids)):
        for port, bindings in (container["NetworkSettings"]["Ports"] or {}).items():
            for binding in bindings or []:
                published += 1
                assert binding["HostIp"] == "127.0.0.1", f"{container['Name']} {port} on {binding['HostIp']}"
        for port, bindings in (container["HostConfig"]["PortBindings"] or {}).items():
            for binding in bindings or []:
                assert binding["HostIp"] == "127.0.0.1", f"{container['Name']} {port} bound to {binding['HostIp']!r}"
    assert published >= 8


def test_no_secret_in_any_image_and_the_env_file_is_private(compose_stack, compose_env):
    from fraudctl.stack.compose import env_file_path, read_env_file

    env_file = env_file_path()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    secrets = [value for value in read_env_file(env_file).values() if len(value) >= 8]
    assert secrets
    images = [line for line in docker(compose_env, "images", "--format", "{{.Repository}}:{{.Tag}}").split()
              if line.startswith("fraudctl/")]
    assert {"fraudctl/python", "fraudctl/jvm", "fraudctl/postgres", "fraudctl/redis", "fraudctl/base"} <= \
        {image.split(":")[0] for image in images}
    for image in images:
        text = docker(compose_env, "history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
        text += docker(compose_env, "image", "inspect", image)  # labels, environment, command, build args
        leaked = [f"{value[:3]}..." for value in secrets if value in text]
        assert not leaked, f"{image} holds secrets of stack/.env: {leaked}"


def test_no_secret_in_any_process_argument(compose_stack, compose_env):
    """Passwords reach the servers through the environment and private files, never their command lines."""
    from fraudctl.stack.compose import env_file_path, read_env_file

    secrets = [value for value in read_env_file(env_file_path()).values() if len(value) >= 8]
    ids = docker(compose_env, "ps", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}").split()
    for container in ids:
        processes = docker(compose_env, "top", container, "-eo", "pid,args")
        leaked = [f"{value[:3]}..." for value in secrets if value in processes]
        assert not leaked, f"container {container}: a secret on a command line: {leaked}"


def _s3(config_path: Path, env: dict[str, str]):
    """A boto3 client on the stack's objectstore with its keys (from stack/.env), as the host's commands make it."""
    from fraudctl.clients import objectstore
    from fraudctl.config import load_config
    from fraudctl.stack.compose import ComposeRuntime

    return objectstore.client(ComposeRuntime(load_config(config_path)).storage())


# ------------------------------------------------------------------------------ the whole loop on compose
# stack/loop.sh with the native end-to-end test's small data (tests/integration/test_whole_loop.py), on the
# compose stack: the scorer runs in the network on the compose Spark master and worker, the retrain on the
# Celery worker's container, which is killed with `docker kill -s KILL` while it trains.

LOOP_TIMEOUT = 1500
WORKER, SCORER = "airflow-worker", "scorer"


def container_id(env, service: str) -> str:
    ids = docker(env, "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}",
                 "--filter", f"label=com.docker.compose.service={service}").split()
    assert len(ids) == 1, f"{service}: {ids}"
    return ids[0]


def container(env, service: str) -> dict:
    return json.loads(docker(env, "inspect", container_id(env, service)))[0]


def kill_container(env, service: str) -> dict:
    """`docker kill -s KILL` the service's container; its state once it is down."""
    docker(env, "kill", "-s", "KILL", container_id(env, service))
    return wait_for(lambda: (c := container(env, service))["State"]["Status"] == "exited" and c, 30, f"{service} down")


def _kill_the_worker_while_it_trains(config_path: Path, env: dict[str, str], outcome: dict, stop) -> None:
    """Once the loop's retrain runs `train`, kill the Celery worker's container; Docker leaves a container
    that `docker kill` stopped down (its restart policy waits for the next start), so `fraudctl up` starts
    it again, as an operator would."""
    from fraudctl.config import load_config
    from fraudctl.retraining import trigger as retraining
    from fraudctl.stack.compose import ComposeRuntime

    try:
        config = load_config(config_path)
        af = retraining.client(config, ComposeRuntime(config).require_secrets().airflow_admin_password)
        while not stop.wait(2):
            try:
                runs = retraining.list_runs(config, limit=1, af=af)
                states = retraining.task_states(af, config.retrain.dag_id, runs[0]["run_id"]) if runs else {}
            except Exception:  # noqa: BLE001 - the DAG not parsed yet, the api-server busy: ask again
                continue
            if states.get("train") == "running":
                outcome["run_id"] = runs[0]["run_id"]
                outcome["hostname"] = container(env, WORKER)["Config"]["Hostname"]
                outcome["killed"] = kill_container(env, WORKER)
                stop.wait(5)
                outcome["after_kill"] = container(env, WORKER)["State"]
                outcome["up"] = run_fraudctl("-c", str(config_path), "up", "-o", "json", env=env, timeout=900)
                return
    except BaseException as error:  # noqa: BLE001 - reported by the test that reads the outcome
        outcome["error"] = repr(error)


@pytest.fixture(scope="module")
def compose_loop(compose_stack, compose_config, compose_env, tmp_path_factory, loop_answers):
    """The whole loop run once on the compose stack, the worker killed during its retrain; what it left.
    What it answered is kept for the native loop's module to compare (test_whole_loop.py)."""
    import threading

    from fraudctl.config import load_config
    from fraudctl.model.registry import Registry

    folder = tmp_path_factory.mktemp("compose-loop")
    summary = folder / "summary.json"
    env = {**os.environ, **compose_env, **SMALL_LOOP, "FRAUDCTL_CONFIG": str(compose_config),
           "DATA": str(folder / "tx.csv"), "SUMMARY_JSON": str(summary), "FRAUDCTL": f"{sys.executable} -m fraudctl",
           "PYTHON": sys.executable}
    outcome, stop = {}, threading.Event()
    killer = threading.Thread(target=_kill_the_worker_while_it_trains, args=(compose_config, compose_env, outcome, stop),
                              daemon=True)
    killer.start()
    started = time.monotonic()
    try:
        result = subprocess.run(["bash", str(REPO / "stack" / "loop.sh")], capture_output=True, text=True, env=env,
                                timeout=LOOP_TIMEOUT)
    finally:
        stop.set()
        killer.join(300)
    print(f"\ncompose loop: exit {result.returncode} in {time.monotonic() - started:.0f}s")
    config = load_config(compose_config)
    loop = {"result": result, "config": config, "registry": Registry(config), "data": folder / "tx.csv",
            "summary": json.loads(summary.read_text()) if summary.exists() else None, "worker_kill": outcome}
    if result.returncode == 0:
        registry = loop["registry"]
        loop_answers["compose"] = what_the_loop_answered(loop, {
            str(v.version) for v in registry.client.search_model_versions(f"name='{registry.name}'")})
    yield loop


def test_the_whole_loop_runs_on_compose(compose_loop):
    assert_the_loop_ran(compose_loop)


def test_every_transaction_scored_once_by_the_scorer_in_the_network(compose_loop, compose_config, compose_env):
    import urllib.request

    config = compose_loop["config"]
    everything = json.loads(fraudctl(compose_config, compose_env, "scores", "summary", "-o", "json").stdout)
    rows = sum(1 for _ in open(compose_loop["data"])) - 1
    assert everything["transactions_in_kafka"] == rows
    assert everything["scored"] == rows and everything["duplicate_scores"] == 0 and everything["dead_letters"] == 0
    assert everything["labelled"] == rows
    # The driver is the scorer container, its executors the compose Spark worker's, under the compose master.
    status = json.loads(fraudctl(compose_config, compose_env, "scorer", "status", "-o", "json").stdout)
    assert status["health"] == "healthy" and status["master"] == f"spark://spark-master:{config.spark.master_port}"
    assert container(compose_env, SCORER)["State"]["Running"] is True
    master = json.load(urllib.request.urlopen(f"http://127.0.0.1:{config.spark.master_ui_port}/json/", timeout=10))
    apps = [app for app in master["activeapps"] if app["name"] == "fraudctl-scorer"]
    assert len(apps) == 1 and apps[0]["cores"] > 0, master["activeapps"]
    assert any(worker["state"] == "ALIVE" and worker["coresused"] > 0 for worker in master["workers"]), master["workers"]


def test_the_retrain_ran_on_the_killed_and_restarted_worker_and_registered_its_lineage(compose_loop):
    import airflow_client.client as ac

    from fraudctl.retraining import trigger as retraining
    from fraudctl.stack.compose import ComposeRuntime

    kill = compose_loop["worker_kill"]
    assert "error" not in kill and "killed" in kill, kill
    assert kill["killed"]["State"]["ExitCode"] == 137
    assert kill["after_kill"]["Status"] == "exited"  # Docker does not restart a container `docker kill` stopped
    assert kill["up"].returncode == 0, kill["up"].stderr[-3000:]

    registry, config = compose_loop["registry"], compose_loop["config"]
    versions = registry.client.search_model_versions(f"name='{registry.name}'")
    retrained = [v for v in versions if v.tags.get("fraudctl.dag_run_id")]
    assert len(versions) == 2 and len(retrained) == 1, [(v.version, v.tags) for v in versions]
    version = retrained[0]
    assert version.tags["fraudctl.dag_run_id"] == kill["run_id"]
    assert version.tags["fraudctl.retrain_window"].endswith("..2020-02-15")
    with tempfile.TemporaryDirectory() as folder:
        lineage = json.loads(Path(registry.client.download_artifacts(version.run_id, "retrain_lineage.json",
                                                                     folder)).read_text())
    assert lineage["dag_run_id"] == kill["run_id"] and lineage["transaction_files"]
    assert int(version.tags["fraudctl.retrain_lake_files"]) == len(lineage["transaction_files"])
    # `train` was tried again after the kill, on the worker's container (Airflow records the worker's host)
    af = retraining.client(config, ComposeRuntime(config).require_secrets().airflow_admin_password)
    train = ac.TaskInstanceApi(af.api()).get_task_instance(config.retrain.dag_id, kill["run_id"], "train")
    assert train.try_number >= 2 and train.state == "success"
    assert train.hostname == kill["hostname"], (train.hostname, kill["hostname"])


def test_the_promotion_swapped_the_model_live(compose_loop):
    from fraudctl.model.registry import CHAMPION

    champion = str(compose_loop["registry"].alias_version(CHAMPION))
    retrained = [v.version for v in compose_loop["registry"].client.search_model_versions(
        f"name='{compose_loop['registry'].name}'") if v.tags.get("fraudctl.dag_run_id")]
    by_version = compose_loop["summary"]["model_versions"]
    # the retrain promoted its version, and the running scorer took it for the last days, no restart
    assert champion == str(retrained[0]) and by_version[champion]["scored"] > 0, by_version
    assert len(by_version) == 2, by_version
    summary = compose_loop["summary"]
    assert summary["precision"] >= max(0.15, 5 * summary["frauds"] / summary["labelled"]), summary


def test_the_same_answers_as_the_in_process_reference(compose_loop):
    """Each transaction's features and score on compose equal what fraudctl computes in this process from
    the same file and the same registered model (the native runtime's code path); and the retrained
    version's metrics, computed on the worker's container, equal this process's on its stored holdout."""
    import numpy as np
    import pandas as pd

    from fraudctl.data.generator import generate_transactions
    from fraudctl.features import FEATURE_NAMES
    from fraudctl.model.evaluation import evaluate
    from tests.integration.test_scorer import assert_parity
    from tests.support import read_topic

    config, registry = compose_loop["config"], compose_loop["registry"]
    frame = generate_transactions(n_customers=600, n_terminals=1200, n_days=50, start_date="2020-01-01", seed=7)
    on_file = pd.read_csv(compose_loop["data"], usecols=["transaction_id"])
    assert len(frame) == len(on_file) and (frame["transaction_id"].to_numpy() == on_file["transaction_id"].to_numpy()).all()
    records = read_topic(config.kafka, config.kafka.topics.scores.name)
    assert_parity({"frame": frame, "config": config}, records, live=True)
    for version in registry.client.search_model_versions(f"name='{registry.name}'"):
        holdout = registry.holdout(version.version)
        scores = registry.load_model(version.version).predict_proba(holdout[FEATURE_NAMES])[:, 1]
        here = evaluate(holdout, scores)
        for name in ("roc_auc", "average_precision", "card_precision_at_100"):
            np.testing.assert_allclose(here[name], float(version.tags[f"fraudctl.test_{name}"]), atol=2e-6,
                                       err_msg=f"version {version.version} {name}")


def test_a_malformed_event_reaches_the_dead_letter_topic(compose_loop, compose_config, compose_env):
    from confluent_kafka import Producer

    from fraudctl.clients.kafka import client_config, end_offsets
    from tests.support import read_topic

    config = compose_loop["config"]
    before = end_offsets(config.kafka, config.kafka.topics.dlq.name)
    producer = Producer(client_config(config.kafka))
    producer.produce(config.kafka.topics.transactions.name, b"{not json", key=b"bad-compose")
    assert producer.flush(10) == 0
    letters = wait_for(lambda: read_topic(config.kafka, config.kafka.topics.dlq.name, before, with_headers=True),
                       120, "the dead letter")
    assert len(letters) == 1 and letters[0]["raw"] == b"{not json"
    assert "malformed JSON" in letters[0]["headers"]["fraudctl.reason"]
    assert letters[0]["headers"]["fraudctl.source.topic"] == config.kafka.topics.transactions.name
    fraudctl(compose_config, compose_env, "scorer", "wait", "--timeout", "300")
    status = json.loads(fraudctl(compose_config, compose_env, "scorer", "status", "-o", "json").stdout)
    assert status["health"] == "healthy" and status["dead_letters"] == 1


KILL_EVENTS = 1200


def test_the_scorer_container_killed_mid_stream_loses_nothing_and_counts_nothing_twice(compose_loop, compose_config,
                                                                                          compose_env):
    """`docker kill -s KILL` of the scorer's container while events stream in: Docker leaves it down,
    `fraudctl scorer start` starts it from its checkpoint and state; every event is scored, a re-published
    one with the same bytes, and the features (counts over the customer's and terminal's history) equal the
    offline computation: no transaction is counted twice in the online state."""
    import threading

    import pandas as pd
    from confluent_kafka import Producer

    from fraudctl import contracts as c
    from fraudctl.clients.kafka import client_config, end_offsets
    from tests.integration.test_scorer import assert_parity
    from tests.support import read_topic

    config = compose_loop["config"]
    times = pd.Timestamp("2020-02-19T00:00:00") + pd.to_timedelta(range(0, 30 * KILL_EVENTS, 30), unit="s")
    frame = pd.DataFrame({"transaction_id": [f"kill-{i}" for i in range(KILL_EVENTS)], "tx_datetime": times,
                          "customer_id": "c-kill", "terminal_id": "t-kill",
                          "amount": [10.0 + (i % 17) for i in range(KILL_EVENTS)], "is_fraud": 0})
    before = end_offsets(config.kafka, config.kafka.topics.scores.name)
    done = threading.Event()

    def produce() -> None:
        producer = Producer(client_config(config.kafka))
        for row in frame.itertuples():
            event = c.transaction_event(transaction_id=row.transaction_id, tx_datetime=row.tx_datetime.to_pydatetime(),
                                        customer_id=row.customer_id, terminal_id=row.terminal_id, amount=row.amount)
            producer.produce(config.kafka.topics.transactions.name, json.dumps(event).encode(), key=row.customer_id)
            producer.poll(0)
            time.sleep(0.02)
        producer.flush(30)
        done.set()

    sender = threading.Thread(target=produce, daemon=True)
    sender.start()
    scored = lambda: len(read_topic(config.kafka, config.kafka.topics.scores.name, before))  # noqa: E731
    wait_for(lambda: scored() >= 150, 120, "live scores before the kill")
    assert not done.is_set(), "the stream ended before the kill"
    killed = kill_container(compose_env, SCORER)
    assert killed["State"]["ExitCode"] == 137 and container(compose_env, SCORER)["State"]["Status"] == "exited"
    fraudctl(compose_config, compose_env, "scorer", "start", timeout=600)
    sender.join(300)
    assert done.is_set()
    wanted = set(frame["transaction_id"])
    records = wait_for(lambda: (r := read_topic(config.kafka, config.kafka.topics.scores.name, before))
                       and wanted <= {x["value"][c.TRANSACTION_ID] for x in r} and r, 300, "every event scored")
    ids = [r["value"][c.TRANSACTION_ID] for r in records]
    print(f"docker kill recovery: {len(set(ids))} transactions scored, {len(ids) - len(set(ids))} re-published")
    first: dict[str, bytes] = {}
    for record in records:  # at-least-once: a re-published score carries the same bytes
        assert first.setdefault(record["value"][c.TRANSACTION_ID], record["raw"]) == record["raw"]
    assert_parity({"frame": frame, "config": config}, records)


def _what_the_stack_holds(config_path: Path, env: dict[str, str]) -> dict:
    """The registry's versions and champion, the lake's objects, each topic's end offsets."""
    from fraudctl.clients.kafka import end_offsets
    from fraudctl.config import load_config
    from fraudctl.model.registry import CHAMPION, Registry

    config = load_config(config_path)
    registry = Registry(config)
    versions = sorted((v.version, v.run_id) for v in registry.client.search_model_versions(f"name='{registry.name}'"))
    pages = _s3(config_path, env).get_paginator("list_objects_v2").paginate(
        Bucket=config.storage.bucket, Prefix=config.storage.lake_prefix)
    lake = sorted((o["Key"], o["Size"]) for page in pages for o in page.get("Contents", []))
    offsets = {kind: end_offsets(config.kafka, getattr(config.kafka.topics, kind).name)
               for kind in ("transactions", "labels", "scores", "alerts", "dlq")}
    return {"versions": versions, "champion": registry.alias_version(CHAMPION), "lake": lake, "offsets": offsets}


def _drop_the_rules_database(config_path: Path) -> None:
    import psycopg2

    from fraudctl.config import load_config
    from fraudctl.stack.compose import ComposeRuntime

    config = load_config(config_path)
    secrets = ComposeRuntime(config).require_secrets()
    conn = psycopg2.connect(host=config.postgres.host, port=config.postgres.port, user="postgres",
                            password=secrets.postgres_superuser_password, dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE "{config.postgres.rules_db}" WITH (FORCE)')  # the scorer may hold it
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (config.postgres.rules_db,))
            assert cur.fetchone() is None
    finally:
        conn.close()


def test_down_then_up_keeps_the_data_and_down_purge_removes_the_volumes(compose_stack, compose_config, compose_env):
    from fraudctl.config import load_config

    bucket = load_config(compose_config).storage.bucket
    key, body = f"compose-test/{uuid.uuid4().hex}.txt", uuid.uuid4().hex.encode()
    _s3(compose_config, compose_env).put_object(Bucket=bucket, Key=key, Body=body)
    volumes = project_volumes(compose_env)
    assert len(volumes) >= 5
    kept = _what_the_stack_holds(compose_config, compose_env)
    assert kept["lake"] and kept["versions"] and kept["offsets"]["scores"]  # what the loop left, if it ran

    # A volume made before the rules' database joined the stack lacks it: `up` makes it, as natively.
    _drop_the_rules_database(compose_config)
    fraudctl(compose_config, compose_env, "down")
    assert docker(compose_env, "ps", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}").split() == []
    assert project_volumes(compose_env) == volumes
    started = time.monotonic()
    fraudctl(compose_config, compose_env, "up", "-o", "json")
    print(f"\ncompose up, images and volumes present: {time.monotonic() - started:.0f}s")
    assert _s3(compose_config, compose_env).get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert _what_the_stack_holds(compose_config, compose_env) == kept  # the registry, the lake, the topics' offsets
    assert json.loads(fraudctl(compose_config, compose_env, "rules", "list", "-o", "json").stdout)["rules"] == []

    fraudctl(compose_config, compose_env, "down", "--purge")
    assert project_volumes(compose_env) == []
    assert docker(compose_env, "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}").split() == []
