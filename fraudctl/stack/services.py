"""The native runtime's services: how each is prepared, started, probed and finished.

One `NativeService` per process under supervisord. `prepare` runs before every start (config files,
first-start initialisation), `probe` is the real health check `up` and `status` use, and `after_healthy`
runs once per `up` when the service first answers (the database bootstrap). What `up` promises beyond its
services (topics, the bucket) is fraudctl.stack.provision, shared with the compose runtime.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from pathlib import Path

from fraudctl.clients import jvm, kafka, objectstore, postgres, redis_db
from fraudctl.config import Config
from fraudctl.errors import ServiceFailedError, UnavailableError
from fraudctl.stack import table
from fraudctl.stack.base import published_storage_url
from fraudctl.stack.native_context import NativeContext, NativeService, table_service, runs_objectstore
from fraudctl.stack.secrets import write_private
from fraudctl.stack.services_airflow import airflow_services, flower_service
from fraudctl.stack.services_spark import scorer_service, spark_standalone_services

def build_services(ctx: NativeContext) -> list[NativeService]:
    """Every native service in start order."""
    spark = spark_standalone_services(ctx) if ctx.config.spark.standalone else []
    store = [_objectstore(ctx)] if runs_objectstore(ctx.config) else []
    return [_postgres(ctx), _redis(ctx), _kafka(ctx), *store, _mlflow(ctx), *airflow_services(ctx), flower_service(ctx),
            *spark, scorer_service(ctx)]


# --- PostgreSQL --------------------------------------------------------------------------------------------

def postgres_data_dir(ctx: NativeContext) -> Path:
    """The cluster's folder: in the state dir when the postgres account can reach it.

    As root, PostgreSQL runs as the unprivileged `postgres` account, which cannot enter a state dir below
    a private folder (mktemp -d, a 0700 home). Then the cluster lives in /var/lib/fraudctl/<hash of state
    dir> instead; `down --purge` deletes it all the same.
    """
    inside = ctx.data_dir / "postgres"
    if os.geteuid() != 0 or _reachable_by("postgres", ctx.state_dir):
        return inside
    digest = hashlib.sha256(str(ctx.state_dir).encode()).hexdigest()[:12]
    return Path("/var/lib/fraudctl") / digest / "postgres"


def _reachable_by(user: str, folder: Path) -> bool:
    import pwd

    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return False
    path = folder.resolve()
    for ancestor in [path, *path.parents]:
        if not ancestor.exists():
            continue
        st = ancestor.stat()
        if st.st_uid == account.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid == account.pw_gid:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return False
    return True


def _postgres(ctx: NativeContext) -> NativeService:
    pg = ctx.config.postgres
    data = postgres_data_dir(ctx)
    tools = ctx.tools
    bin_dir = tools.postgres_bin if tools else Path("/usr/lib/postgresql/bin")
    user = tools.postgres_user if tools else None

    def prepare() -> None:
        if (data / "PG_VERSION").exists():
            return
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)
        fd, name = tempfile.mkstemp(prefix="fraudctl-pw-")  # 0600, outside folders postgres may not enter
        pwfile = Path(name)
        with os.fdopen(fd, "w") as fh:
            fh.write(ctx.secrets.postgres_superuser_password + "\n")
        command = [str(bin_dir / "initdb"), "-D", str(data), "-U", postgres.SUPERUSER, "--auth=scram-sha-256",
                   f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C.UTF-8"]
        if user:
            for path in (data, pwfile):
                shutil.chown(path, user, user)
            command = ["runuser", "-u", user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True)
        pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(data, ignore_errors=True)
            raise ServiceFailedError("initdb failed for the PostgreSQL cluster", detail=result.stdout + result.stderr)

    program = ctx.program(
        table.POSTGRES,
        [str(bin_dir / "postgres"), "-D", str(data), "-c", f"listen_addresses={pg.host}", "-p", str(pg.port),
         # TCP only: no socket file to clash with a system cluster's /var/run/postgresql
         "-c", "unix_socket_directories=", "-c", "max_connections=200", "-c", "shared_buffers=128MB"],
        user=user,
        directory=data,  # the postgres account may not be able to enter the state dir
        stop_signal="INT",  # "fast" shutdown; TERM would wait for every client to disconnect
        priority=100,
    )
    return table_service(
        ctx, table.POSTGRES,
        program=program,
        probe=lambda: postgres.probe(pg, postgres.SUPERUSER, ctx.secrets.postgres_superuser_password),
        prepare=prepare,
        after_healthy=lambda: postgres.bootstrap(pg, ctx.secrets.postgres_superuser_password,
                                                 ctx.secrets.postgres_password),
        owned_dirs=[data.parent] if not str(data).startswith(str(ctx.state_dir)) else [],
    )


# --- Redis -------------------------------------------------------------------------------------------------

def _redis(ctx: NativeContext) -> NativeService:
    rc = ctx.config.redis
    conf = ctx.conf_dir / "redis.conf"
    data = ctx.data_dir / "redis"

    def prepare() -> None:
        data.mkdir(parents=True, exist_ok=True)
        conf.parent.mkdir(parents=True, exist_ok=True)
        text = "\n".join([
            f"bind {rc.host}",
            f"port {rc.port}",
            "protected-mode yes",
            "daemonize no",
            f"dir {data}",
            "save 60 1000",
            "appendonly no",
            f'requirepass "{ctx.secrets.redis_password}"',
        ]) + "\n"
        write_private(conf, text)

    server = str(ctx.tools.redis_server) if ctx.tools else "redis-server"
    return table_service(
        ctx, table.REDIS,
        program=ctx.program(table.REDIS, [server, str(conf)], priority=100),
        probe=lambda: redis_db.probe(rc, ctx.secrets.redis_password),
        prepare=prepare,
    )


# --- Kafka (KRaft, single node) -------------------------------------------------------------------------------

def _kafka_cluster_id() -> str:
    # Kafka's Uuid text form: URL-safe base64 of 16 random bytes, unpadded, never starting with '-'.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _kafka(ctx: NativeContext) -> NativeService:
    kc = ctx.config.kafka
    conf_dir = ctx.conf_dir / "kafka"
    data = ctx.data_dir / "kafka"
    jars = jvm.jar_dir(jvm.KAFKA_POM)
    java = str(ctx.tools.java) if ctx.tools else "java"

    def prepare() -> None:
        jvm.resolve(jvm.KAFKA_POM, mvn=str(ctx.tools.mvn))
        conf_dir.mkdir(parents=True, exist_ok=True)
        partitions = max(t.partitions for t in kc.topics.all())
        (conf_dir / "server.properties").write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={kc.host}:{kc.controller_port}",
            f"listeners=PLAINTEXT://{kc.host}:{kc.port},CONTROLLER://{kc.host}:{kc.controller_port}",
            f"advertised.listeners=PLAINTEXT://{kc.host}:{kc.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={data}",
            f"num.partitions={partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=3",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
        ]) + "\n")
        (conf_dir / "log4j2.yaml").write_text(jvm.KAFKA_LOG4J.read_text())
        if not (data / "meta.properties").exists():
            result = subprocess.run(
                [java, "-cp", f"{jars}/*", "kafka.tools.StorageTool", "format", "--standalone",
                 "-t", _kafka_cluster_id(), "-c", str(conf_dir / "server.properties")],
                capture_output=True, text=True,
            )
            if result.returncode != 0:
                raise ServiceFailedError("formatting the Kafka KRaft storage failed", detail=result.stdout + result.stderr)

    program = ctx.program(
        table.KAFKA,
        [java, f"-Xmx{kc.heap}", f"-Xms{kc.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
         f"-Dlog4j2.configurationFile={conf_dir / 'log4j2.yaml'}", f"-Dkafka.logs.dir={ctx.log_dir}",
         "-cp", f"{jars}/*", "kafka.Kafka", str(conf_dir / "server.properties")],
        start_seconds=3,
        priority=200,
        exit_codes=(0, 143),  # the JVM exits 128+SIGTERM after a clean shutdown
    )
    return table_service(
        ctx, table.KAFKA, extra_ports=((kc.host, kc.controller_port),),
        program=program,
        probe=lambda: kafka.probe(kc),
        prepare=prepare,  # the topics: fraudctl.stack.provision, after every service is healthy
    )




# --- the object store: S3Proxy over the filesystem, in the state dir --------------------------------------

def objectstore_data_dir(ctx: NativeContext) -> Path:
    return ctx.data_dir / "objectstore"


def s3proxy_properties(endpoint: str, key: str, secret: str, basedir: str) -> dict[str, str]:
    """S3Proxy's settings in both runtimes (the compose image's stack/images/jvm/s3proxy.sh writes the same keys,
    which a unit test checks): S3 signatures v2 and v4 with the stack's keys, the filesystem-nio2 backend."""
    return {
        "s3proxy.endpoint": endpoint,
        "s3proxy.authorization": "aws-v2-or-v4",
        "s3proxy.identity": key,
        "s3proxy.credential": secret,
        # SDK headers S3Proxy does not implement (e.g. checksum hints) are ignored, not refused
        "s3proxy.ignore-unknown-headers": "true",
        "jclouds.provider": "filesystem-nio2",
        "jclouds.filesystem.basedir": basedir,
        "jclouds.identity": key,
        "jclouds.credential": secret,
    }


def _objectstore(ctx: NativeContext) -> NativeService:
    sc = ctx.config.storage
    conf_dir = ctx.conf_dir / "objectstore"
    data = objectstore_data_dir(ctx)
    jars = jvm.jar_dir(jvm.S3PROXY_POM)
    java = str(ctx.tools.java) if ctx.tools else "java"
    storage = ctx.storage
    url = published_storage_url(ctx.config)

    def prepare() -> None:
        jvm.resolve(jvm.S3PROXY_POM, mvn=str(ctx.tools.mvn))
        data.mkdir(parents=True, exist_ok=True)
        conf_dir.mkdir(parents=True, exist_ok=True)
        properties = s3proxy_properties(url, ctx.secrets.objectstore_access_key, ctx.secrets.objectstore_secret_key,
                                        str(data))
        write_private(conf_dir / "s3proxy.properties", "".join(f"{k}={v}\n" for k, v in properties.items()))
        (conf_dir / "logback.xml").write_text(jvm.S3PROXY_LOGBACK.read_text())

    program = ctx.program(
        table.OBJECTSTORE,
        [java, f"-Xmx{sc.heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
         f"-Dlogback.configurationFile={conf_dir / 'logback.xml'}",
         "-cp", f"{jars}/*", "org.gaul.s3proxy.Main", "--properties", str(conf_dir / "s3proxy.properties")],
        start_seconds=2,
        priority=200,
        exit_codes=(0, 143),  # the JVM exits 128+SIGTERM after a clean shutdown
    )
    return NativeService(
        name=table.OBJECTSTORE,
        endpoint=f"{table.endpoint(ctx.config, table.OBJECTSTORE)}/{sc.bucket}",
        ports=[(sc.host, sc.port)],
        program=program,
        probe=lambda: objectstore.probe(storage, bucket=False),
        prepare=prepare,  # the bucket: fraudctl.stack.provision, after every service is healthy
    )




# --- MLflow ------------------------------------------------------------------------------------------------

def mlflow_artifacts_destination(config: Config) -> str:
    storage = config.storage
    if storage.kind == "s3":
        return f"s3://{storage.bucket}/mlflow"
    local = storage.local_dir if storage.local_dir.is_absolute() else config.state_dir / storage.local_dir
    return (local / "mlflow").resolve().as_uri()


def mlflow_probe(host: str, port: int, timeout: float = 3.0) -> str:
    import urllib.request

    url = f"http://{host}:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(64).decode(errors="replace").strip()
    except Exception as exc:
        raise UnavailableError(f"MLflow {url} did not answer: {exc}") from None
    if body != "OK":
        raise UnavailableError(f"MLflow {url} answered {body!r}, expected 'OK'")
    return "/health OK"


def _mlflow(ctx: NativeContext) -> NativeService:
    mc = ctx.config.mlflow
    destination = mlflow_artifacts_destination(ctx.config)

    def prepare() -> None:
        if destination.startswith("file://"):
            Path(destination[len("file://"):]).mkdir(parents=True, exist_ok=True)

    environment = {
        # Passed by environment, not argv, so the password never shows in `ps`.
        "MLFLOW_BACKEND_STORE_URI": postgres.url(ctx.config.postgres, ctx.secrets.postgres_password,
                                                 ctx.config.postgres.mlflow_db),
        # The job runner's huey consumers cost ~2 GiB and fraudctl does not use them.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        **objectstore.environment(ctx.storage),
    }
    program = ctx.program(
        table.MLFLOW,
        [str(ctx.venv_bin / "mlflow"), "server", "--host", mc.host, "--port", str(mc.port),
         "--workers", str(mc.workers), "--serve-artifacts", "--artifacts-destination", destination],
        environment=environment,
        start_seconds=3,
        priority=300,
    )
    return table_service(
        ctx, table.MLFLOW,
        program=program,
        probe=lambda: mlflow_probe(mc.host, mc.port),
        depends_on=[table.POSTGRES, *([table.OBJECTSTORE] if runs_objectstore(ctx.config) else [])],
        prepare=prepare,
    )
