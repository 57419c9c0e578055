"""The native stack does real work: Kafka round trip, MLflow experiment with an artifact, status, logs,
idempotent `up`, and failed `up`s that leave nothing behind."""

from __future__ import annotations

import json
import re
import socket
import uuid

import pytest

from fraudctl.errors import ExitCode
from tests.conftest import run_fraudctl, wait_for
from tests.integration.conftest import alive, processes_naming, stack_pids, write_config


def test_kafka_round_trip(stack_config):
    from confluent_kafka import Consumer, Producer

    from fraudctl.clients.kafka import client_config

    topic = stack_config.kafka.topics.transactions.name
    marker = str(uuid.uuid4())
    producer = Producer(client_config(stack_config.kafka, **{"enable.idempotence": True, "acks": "all"}))
    delivered = []
    producer.produce(topic, key=b"42", value=json.dumps({"transaction_id": marker}).encode(),
                     on_delivery=lambda err, msg: delivered.append((err, msg)))
    assert producer.flush(15) == 0
    assert delivered and delivered[0][0] is None
    partition, offset = delivered[0][1].partition(), delivered[0][1].offset()

    consumer = Consumer(client_config(stack_config.kafka, **{"group.id": f"test-{marker}",
                                                            "auto.offset.reset": "earliest"}))
    from confluent_kafka import TopicPartition

    consumer.assign([TopicPartition(topic, partition, offset)])

    def consumed():
        msg = consumer.poll(1.0)
        # a tuple, not the message: a Message's truth is the length of its value
        return (json.loads(msg.value()), msg.key()) if msg is not None and not msg.error() else None

    try:
        value, key = wait_for(consumed, 30, "the message to be consumed back", every=0)
    finally:
        consumer.close()
    assert value["transaction_id"] == marker
    assert key == b"42"


def test_topics_exist_with_configured_partitions(stack_config):
    from confluent_kafka.admin import AdminClient

    from fraudctl.clients.kafka import client_config

    topics = AdminClient(client_config(stack_config.kafka)).list_topics(timeout=10).topics
    for topic in stack_config.kafka.topics.all():
        assert topic.name in topics
        assert len(topics[topic.name].partitions) == topic.partitions


def test_mlflow_experiment_and_artifact(stack_config, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(stack_config.mlflow.tracking_uri)
    name = f"it-{uuid.uuid4().hex[:8]}"
    experiment_id = mlflow.create_experiment(name)
    note = tmp_path / "note.txt"
    note.write_text("artifact body")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_metric("auc", 0.9)
        mlflow.log_artifact(str(note))
    client = MlflowClient(stack_config.mlflow.tracking_uri)
    assert client.get_experiment_by_name(name).experiment_id == experiment_id
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["note.txt"]
    downloaded = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="note.txt",
                                                     dst_path=str(tmp_path / "dl"))
    assert open(downloaded).read() == "artifact body"
    # proxied artifacts: the file landed in the server's destination (the objectstore's bucket), not in this
    # client's folder
    from fraudctl.clients.objectstore import client
    from fraudctl.stack import get_runtime

    storage = get_runtime(stack_config).storage()
    keys = [o["Key"] for o in client(storage).list_objects_v2(Bucket=storage.bucket, Prefix="mlflow/")["Contents"]]
    assert [k for k in keys if run.info.run_id in k and k.endswith("/note.txt")], keys


def test_postgres_databases_owned_by_app_role(stack_config):
    import psycopg2

    from fraudctl.stack import get_runtime

    secrets = get_runtime(stack_config).require_secrets()
    pg = stack_config.postgres
    for db in (pg.airflow_db, pg.mlflow_db):
        with psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, password=secrets.postgres_password,
                              dbname=db) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS probe_ownership (id int)")  # needs CREATE on public
            cur.execute("SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (db,))
            assert cur.fetchone()[0] == pg.user


def test_redis_probe_speaks_to_the_real_server(stack_runtime, stack_config):
    """The probe speaks RESP itself (no redis-py on the status path): AUTH, PING, INFO against Redis."""
    from fraudctl.clients import redis_db
    from fraudctl.errors import UnavailableError

    answer = redis_db.probe(stack_config.redis, stack_runtime.require_secrets().redis_password)
    assert re.fullmatch(r"PONG \(redis \d+\.\d+\.\d+\)", answer), answer
    with pytest.raises(UnavailableError, match="WRONGPASS"):
        redis_db.probe(stack_config.redis, "not-the-password")


def test_status_json(stack_config_path):
    result = run_fraudctl("-c", str(stack_config_path), "status", "-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    services = {s["name"]: s for s in report["services"]}
    assert set(services) == {"postgres", "redis", "kafka", "objectstore", "mlflow", "airflow-apiserver",
                             "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
                             "flower", "scorer"}
    # the scorer is started on demand (`fraudctl scorer start`): listed, stopped, and no fault
    scorer = services.pop("scorer")
    assert scorer["on_demand"] is True and scorer["state"] == "STOPPED" and scorer["healthy"] is None
    for s in services.values():
        assert s["state"] == "RUNNING" and s["healthy"] is True and s["pid"] > 0 and s["uptime_seconds"] >= 0
    assert services["redis"]["detail"].startswith("PONG")
    assert services["objectstore"]["detail"].startswith("S3 API answers")


def test_every_listening_socket_is_on_loopback(stack_config_path, stack_config):
    """No process of the stack (supervisord, services, their children) listens beyond 127.0.0.0/8 or ::1."""
    import ipaddress

    import psutil

    def loopback(ip: str) -> bool:
        address = ipaddress.ip_address(ip.split("%")[0])
        mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
        return (mapped or address).is_loopback

    listening: dict[tuple[str, int], str] = {}
    for pid in stack_pids(stack_config_path, stack_config.state_dir):
        try:
            proc = psutil.Process(pid)
            sockets = proc.net_connections(kind="tcp")
            who = f"{pid} {' '.join(proc.cmdline())[:100]}"
        except psutil.Error:  # ended meanwhile
            continue
        listening.update({(s.laddr.ip, s.laddr.port): who for s in sockets if s.status == psutil.CONN_LISTEN})
    exposed = {f"{ip}:{port}": who for (ip, port), who in listening.items() if not loopback(ip)}
    assert not exposed, f"listening beyond loopback: {exposed}"
    # The sockets were really seen: every service's own port is among them.
    config = stack_config
    ports = {config.postgres.port, config.redis.port, config.kafka.port, config.kafka.controller_port,
             config.mlflow.port, config.airflow.port, config.flower.port, config.storage.port}
    assert ports <= {port for _, port in listening}, f"missing: {ports - {port for _, port in listening}}"


def test_second_up_starts_nothing_twice(stack_config_path):
    before = {s["name"]: s["pid"] for s in json.loads(run_fraudctl("-c", str(stack_config_path), "status", "-o", "json").stdout)["services"]}
    result = run_fraudctl("-c", str(stack_config_path), "up", "-o", "json")
    assert result.returncode == 0, result.stderr
    after = {s["name"]: s["pid"] for s in json.loads(result.stdout)["services"]}
    # `up` reports (and starts) what it runs; the on-demand scorer is left as it was
    assert after == {name: pid for name, pid in before.items() if name != "scorer"}
    assert "scorer" in before and "scorer" not in after


def test_logs(stack_config_path):
    result = run_fraudctl("-c", str(stack_config_path), "logs", "kafka", "-n", "5")
    assert result.returncode == 0
    assert 0 < len(result.stdout.splitlines()) <= 5
    missing = run_fraudctl("-c", str(stack_config_path), "logs", "nosuch")
    assert missing.returncode == ExitCode.NOT_FOUND and "kafka" in missing.stderr


def test_port_taken_by_another_program(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        config = write_config(tmp_path, redis={"port": port})
        result = run_fraudctl("-c", str(config), "up")
    assert result.returncode == ExitCode.PORT_IN_USE, result.stderr
    assert f"port {port}" in result.stderr and "redis" in result.stderr
    assert not processes_naming(tmp_path / ".fraudctl")


def test_service_dying_at_start_is_reported_and_nothing_is_left(tmp_path):
    # A 1 MiB heap makes the JVM exit at once: a deterministic "dies while starting".
    config = write_config(tmp_path, kafka={"heap": "1m"})
    result = run_fraudctl("-c", str(config), "up", timeout=300)
    assert result.returncode == ExitCode.SERVICE_FAILED, result.stderr
    assert "kafka exited while starting" in result.stderr
    assert "heap" in result.stderr.lower()  # the log tail says why
    state_dir = tmp_path / ".fraudctl"
    assert not processes_naming(state_dir)
    assert not (state_dir / "run" / "supervisor.sock").exists() or run_fraudctl("-c", str(config), "status").returncode == ExitCode.UNAVAILABLE
    run_fraudctl("-c", str(config), "down", "--purge")


def test_up_timeout_names_the_service(tmp_path):
    config = write_config(tmp_path)
    result = run_fraudctl("-c", str(config), "up", "--timeout", "3", timeout=300)
    assert result.returncode == ExitCode.TIMEOUT, result.stderr
    assert "not healthy after 3s" in result.stderr
    assert not processes_naming(tmp_path / ".fraudctl")
    run_fraudctl("-c", str(config), "down", "--purge")


def test_down_cleans_up_after_a_dead_process_manager(tmp_path):
    import os
    import signal

    config = write_config(tmp_path)
    state_dir = tmp_path / ".fraudctl"
    up = run_fraudctl("-c", str(config), "up", timeout=600)
    assert up.returncode == 0, up.stderr
    pids = stack_pids(config, state_dir)
    supervisord = int((state_dir / "run" / "supervisord.pid").read_text())
    os.kill(supervisord, signal.SIGKILL)  # the services live on as orphans
    wait_for(lambda: not alive({supervisord}), 10, "the killed supervisord to be gone (or a zombie)", every=0.1)
    assert len(alive(pids)) > 5
    down = run_fraudctl("-c", str(config), "down", "--purge", timeout=300)
    assert down.returncode == 0, down.stderr
    assert not alive(pids) and not processes_naming(state_dir)
