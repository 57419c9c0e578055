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
import time
import uuid
from pathlib import Path

import pytest

from bench.support import write_shifted_config
from tests.conftest import REPO, run_fraudctl

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
        compose={"ca_bundle": str(ca) if ca.is_file() else None}, retrain={"schedule": None})


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
    result = fraudctl(compose_config, compose_env, "up", "-o", "json", timeout=UP_TIMEOUT)
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


def test_down_then_up_keeps_the_data_and_down_purge_removes_the_volumes(compose_stack, compose_config, compose_env):
    from fraudctl.config import load_config

    bucket = load_config(compose_config).storage.bucket
    key, body = f"compose-test/{uuid.uuid4().hex}.txt", uuid.uuid4().hex.encode()
    _s3(compose_config, compose_env).put_object(Bucket=bucket, Key=key, Body=body)
    volumes = project_volumes(compose_env)
    assert len(volumes) >= 5

    fraudctl(compose_config, compose_env, "down")
    assert docker(compose_env, "ps", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}").split() == []
    assert project_volumes(compose_env) == volumes
    started = time.monotonic()
    fraudctl(compose_config, compose_env, "up", "-o", "json")
    print(f"\ncompose up, images and volumes present: {time.monotonic() - started:.0f}s")
    assert _s3(compose_config, compose_env).get_object(Bucket=bucket, Key=key)["Body"].read() == body

    fraudctl(compose_config, compose_env, "down", "--purge")
    assert project_volumes(compose_env) == []
    assert docker(compose_env, "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}").split() == []
