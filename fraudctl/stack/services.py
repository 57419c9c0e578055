"""The native runtime's services: how each is prepared, started, probed and finished.

One `NativeService` per process under supervisord. `prepare` runs before every start (config files,
first-start initialisation), `probe` is the real health check `up` and `status` use, and `after_healthy`
runs once per `up` when the service first answers (the database bootstrap). What `up` promises beyond its
services (topics, the bucket) is fraudctl.stack.provision, shared with the compose runtime.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fraudctl.clients import airflow, kafka, objectstore, postgres, redis_db
from fraudctl.config import Config, StorageConfig
from fraudctl.errors import ServiceFailedError, UnavailableError
from fraudctl.clients import jvm
from fraudctl.stack.base import filled_storage, published_storage_url
from fraudctl.stack.prereqs import Tools
from fraudctl.stack.supervisor import Program
from fraudctl.stack.secrets import Secrets, write_private


@dataclass
class NativeService:
    name: str
    endpoint: str
    ports: list[tuple[str, int]]
    program: Program
    probe: Callable[[], str]  # raises UnavailableError until healthy
    depends_on: list[str] = field(default_factory=list)
    prepare: Callable[[], None] = lambda: None
    after_healthy: Callable[[], None] = lambda: None
    owned_dirs: list[Path] = field(default_factory=list)  # deleted by `down --purge`
    on_demand: bool = False  # started by its own command (`scorer start`), not by `up`; stopped by `down`


@dataclass
class NativeContext:
    config: Config
    secrets: Secrets
    tools: Tools | None  # None when only inspecting (status, logs, down)

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir

    @property
    def storage(self) -> "StorageConfig":
        """The object store every service reaches: the objectstore's endpoint and keys when it is the store."""
        if not runs_objectstore(self.config):
            return self.config.storage
        return filled_storage(self.config, published_storage_url(self.config), self.secrets)

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def conf_dir(self) -> Path:
        return self.state_dir / "conf"

    @property
    def venv_bin(self) -> Path:
        return Path(sys.executable).parent

    def program(self, name: str, command: list[str], directory: Path | None = None, **kwargs) -> Program:
        return Program(name=name, command=command, log_file=self.log_dir / f"{name}.log",
                       directory=directory or self.state_dir, stop_wait_seconds=self.config.runtime.stop_timeout,
                       **kwargs)


def runs_objectstore(config: Config) -> bool:
    """Whether the native stack runs its own S3 server (S3Proxy, the `objectstore` service): S3 storage with
    no endpoint configured, unless `storage.objectstore: false` (a null endpoint then means AWS)."""
    storage = config.storage
    return storage.kind == "s3" and storage.endpoint_url is None and storage.objectstore


def build_services(ctx: NativeContext) -> list[NativeService]:
    """Every native service in start order."""
    spark = _spark_standalone(ctx) if ctx.config.spark.standalone else []
    store = [_objectstore(ctx)] if runs_objectstore(ctx.config) else []
    return [_postgres(ctx), _redis(ctx), _kafka(ctx), *store, _mlflow(ctx), *_airflow(ctx), _flower(ctx), *spark,
            _scorer(ctx)]


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
        "postgres",
        [str(bin_dir / "postgres"), "-D", str(data), "-c", f"listen_addresses={pg.host}", "-p", str(pg.port),
         # TCP only: no socket file to clash with a system cluster's /var/run/postgresql
         "-c", "unix_socket_directories=", "-c", "max_connections=200", "-c", "shared_buffers=128MB"],
        user=user,
        directory=data,  # the postgres account may not be able to enter the state dir
        stop_signal="INT",  # "fast" shutdown; TERM would wait for every client to disconnect
        priority=100,
    )
    return NativeService(
        name="postgres",
        endpoint=f"postgresql://{pg.host}:{pg.port}",
        ports=[(pg.host, pg.port)],
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
    return NativeService(
        name="redis",
        endpoint=f"redis://{rc.host}:{rc.port}",
        ports=[(rc.host, rc.port)],
        program=ctx.program("redis", [server, str(conf)], priority=100),
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
        (conf_dir / "log4j2.yaml").write_text(_KAFKA_LOG4J)
        if not (data / "meta.properties").exists():
            result = subprocess.run(
                [java, "-cp", f"{jars}/*", "kafka.tools.StorageTool", "format", "--standalone",
                 "-t", _kafka_cluster_id(), "-c", str(conf_dir / "server.properties")],
                capture_output=True, text=True,
            )
            if result.returncode != 0:
                raise ServiceFailedError("formatting the Kafka KRaft storage failed", detail=result.stdout + result.stderr)

    program = ctx.program(
        "kafka",
        [java, f"-Xmx{kc.heap}", f"-Xms{kc.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
         f"-Dlog4j2.configurationFile={conf_dir / 'log4j2.yaml'}", f"-Dkafka.logs.dir={ctx.log_dir}",
         "-cp", f"{jars}/*", "kafka.Kafka", str(conf_dir / "server.properties")],
        start_seconds=3,
        priority=200,
        exit_codes=(0, 143),  # the JVM exits 128+SIGTERM after a clean shutdown
    )
    return NativeService(
        name="kafka",
        endpoint=f"kafka://{kc.bootstrap_servers}",
        ports=[(kc.host, kc.port), (kc.host, kc.controller_port)],
        program=program,
        probe=lambda: kafka.probe(kc),
        prepare=prepare,  # the topics: fraudctl.stack.provision, after every service is healthy
    )


_KAFKA_LOG4J = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: org.apache.kafka
        level: WARN
      - name: kafka.request.logger
        level: WARN
"""


# --- the object store: S3Proxy over the filesystem, in the state dir --------------------------------------

def objectstore_data_dir(ctx: NativeContext) -> Path:
    return ctx.data_dir / "objectstore"


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
        key, secret = ctx.secrets.objectstore_access_key, ctx.secrets.objectstore_secret_key
        write_private(conf_dir / "s3proxy.properties", "\n".join([
            f"s3proxy.endpoint={url}",
            "s3proxy.authorization=aws-v2-or-v4",
            f"s3proxy.identity={key}",
            f"s3proxy.credential={secret}",
            # SDK headers S3Proxy does not implement (e.g. checksum hints) are ignored, not refused
            "s3proxy.ignore-unknown-headers=true",
            "jclouds.provider=filesystem-nio2",
            f"jclouds.filesystem.basedir={data}",
            f"jclouds.identity={key}",
            f"jclouds.credential={secret}",
        ]) + "\n")
        (conf_dir / "logback.xml").write_text(_S3PROXY_LOGBACK)

    program = ctx.program(
        "objectstore",
        [java, f"-Xmx{sc.heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
         f"-Dlogback.configurationFile={conf_dir / 'logback.xml'}",
         "-cp", f"{jars}/*", "org.gaul.s3proxy.Main", "--properties", str(conf_dir / "s3proxy.properties")],
        start_seconds=2,
        priority=200,
        exit_codes=(0, 143),  # the JVM exits 128+SIGTERM after a clean shutdown
    )
    return NativeService(
        name=objectstore.SERVICE,
        endpoint=f"{url}/{sc.bucket}",
        ports=[(sc.host, sc.port)],
        program=program,
        probe=lambda: objectstore.probe(storage, bucket=False),
        prepare=prepare,  # the bucket: fraudctl.stack.provision, after every service is healthy
    )


_S3PROXY_LOGBACK = """\
<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{ISO8601} %-5level %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
  <logger name="org.gaul.s3proxy.Main" level="INFO"/>
</configuration>
"""


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
        "mlflow",
        [str(ctx.venv_bin / "mlflow"), "server", "--host", mc.host, "--port", str(mc.port),
         "--workers", str(mc.workers), "--serve-artifacts", "--artifacts-destination", destination],
        environment=environment,
        start_seconds=3,
        priority=300,
    )
    return NativeService(
        name="mlflow",
        endpoint=mc.tracking_uri,
        ports=[(mc.host, mc.port)],
        program=program,
        probe=lambda: mlflow_probe(mc.host, mc.port),
        depends_on=["postgres", *([objectstore.SERVICE] if runs_objectstore(ctx.config) else [])],
        prepare=prepare,
    )


# --- Airflow 3 with CeleryExecutor, and Flower -------------------------------------------------------------

DAGS_DIR = jvm.PROJECT_ROOT / "dags"
CELERY_WORKER_NAME = "fraudctl-worker"


def airflow_home(ctx: NativeContext) -> Path:
    return ctx.state_dir / "airflow"


def airflow_environment(ctx: NativeContext) -> dict[str, str]:
    """One environment for every Airflow component: they must agree on secrets and URLs."""
    af, pg, rc = ctx.config.airflow, ctx.config.postgres, ctx.config.redis
    secrets = ctx.secrets
    home = airflow_home(ctx)
    db_url = postgres.url(pg, secrets.postgres_password, pg.airflow_db, driver="postgresql+psycopg2")
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(af.parallelism),
        "AIRFLOW__CORE__FERNET_KEY": secrets.airflow_fernet_key,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{af.url}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{af.admin_user}:admin",
        # Our file, so Airflow never generates a password and prints it to its log.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__API__HOST": af.host,
        "AIRFLOW__API__PORT": str(af.port),
        "AIRFLOW__API__BASE_URL": af.url,
        "AIRFLOW__API__WORKERS": str(af.api_workers),
        "AIRFLOW__API__SECRET_KEY": secrets.airflow_api_secret_key,
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.airflow_jwt_secret,
        "AIRFLOW__CELERY__BROKER_URL": redis_db.url(rc, secrets.redis_password),
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres.url(pg, secrets.postgres_password, pg.airflow_db),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(af.worker_concurrency),
        "AIRFLOW__CELERY__FLOWER_HOST": ctx.config.flower.host,
        "AIRFLOW__CELERY__FLOWER_PORT": str(ctx.config.flower.port),
        "AIRFLOW__CELERY__FLOWER_BASIC_AUTH": f"{ctx.config.flower.user}:{secrets.flower_password}",
        # Unacknowledged tasks are redelivered after this, not after Celery's default of a day.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "3600",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(ctx.log_dir / "airflow"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(af.worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(af.triggerer_log_port),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(int(af.heartbeat_timeout)),
        # The bundle cleanup forks children that outlive a stopped worker and keep its port.
        "AIRFLOW__DAG_PROCESSOR__STALE_BUNDLE_CLEANUP_INTERVAL": "0",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
        # fraudctl's own settings for the DAGs' tasks (they import fraudctl and read its config).
        **({"FRAUDCTL_CONFIG": str(ctx.config.source)} if ctx.config.source else {}),
        "FRAUDCTL_RUNTIME__STATE_DIR": str(ctx.state_dir),
        "MLFLOW_TRACKING_URI": ctx.config.mlflow.tracking_uri,
        "PYTHONUNBUFFERED": "1",
        **objectstore.environment(ctx.storage),
    }


def _airflow(ctx: NativeContext) -> list[NativeService]:
    af = ctx.config.airflow
    env = airflow_environment(ctx)
    exe = str(ctx.venv_bin / "airflow")
    home = airflow_home(ctx)

    def migrate() -> None:
        home.mkdir(parents=True, exist_ok=True)
        (ctx.log_dir / "airflow").mkdir(parents=True, exist_ok=True)
        passwords = home / "passwords.json"
        write_private(passwords, json.dumps({af.admin_user: ctx.secrets.airflow_admin_password}))
        result = subprocess.run([exe, "db", "migrate"], env={**os.environ, **env}, capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceFailedError("`airflow db migrate` failed", detail=(result.stdout + result.stderr)[-3000:])

    def component(name: str, command: list[str], health_key: str | None, **kwargs) -> NativeService:
        probe = (lambda: airflow.component_probe(af, health_key)) if health_key else kwargs.pop("probe")
        return NativeService(
            name=name, endpoint=kwargs.pop("endpoint", af.url), ports=kwargs.pop("ports", []),
            program=ctx.program(name, [exe, *command], environment=env, start_seconds=3, priority=400),
            probe=probe, depends_on=kwargs.pop("depends_on", ["airflow-apiserver"]), **kwargs,
        )

    broker_url = env["AIRFLOW__CELERY__BROKER_URL"]
    return [
        component("airflow-apiserver", ["api-server"], "metadatabase", ports=[(af.host, af.port)],
                  depends_on=["postgres", "redis"], prepare=migrate),
        component("airflow-scheduler", ["scheduler"], "scheduler"),
        component("airflow-dag-processor", ["dag-processor"], "dag_processor"),
        # Airflow's serve-logs binds every interface (no host setting); task logs are local files here, so
        # the triggerer, like the worker, serves none and every port of the stack stays on loopback.
        component("airflow-triggerer", ["triggerer", "--skip-serve-logs"], "triggerer"),
        component("airflow-worker",
                  ["celery", "worker", "--skip-serve-logs", "--celery-hostname", f"{CELERY_WORKER_NAME}@%h",
                   "--concurrency", str(af.worker_concurrency)],
                  None, endpoint=f"celery://{CELERY_WORKER_NAME}", probe=lambda: celery_ping(broker_url)),
    ]


def celery_ping(broker_url: str, timeout: float = 2.0) -> str:
    """A Celery control ping over the broker: proves the worker consumes, not only that it runs."""
    from celery import Celery

    app = Celery(broker=broker_url)
    try:
        replies = app.control.ping(timeout=timeout)
    except Exception as exc:
        raise UnavailableError(f"Celery ping over Redis failed: {exc}") from None
    finally:
        app.close()
    names = [name for reply in replies for name in reply if name.startswith(CELERY_WORKER_NAME + "@")]
    if not names:
        raise UnavailableError("no Celery worker answered the ping yet")
    return "pong from " + ", ".join(names)


def _flower(ctx: NativeContext) -> NativeService:
    from fraudctl.clients.flower import FlowerClient

    fc = ctx.config.flower
    env = airflow_environment(ctx)
    client = FlowerClient(fc, ctx.secrets.flower_password)
    return NativeService(
        name="flower",
        endpoint=fc.url,
        ports=[(fc.host, fc.port)],
        program=ctx.program("flower", [str(ctx.venv_bin / "airflow"), "celery", "flower"], environment=env,
                            start_seconds=3, priority=500),
        probe=client.probe,
        depends_on=["redis", "airflow-apiserver"],
    )


# --- Spark standalone (optional) and the streaming scorer ---------------------------------------------------

def _http_json(url: str, timeout: float = 3.0) -> dict:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except Exception as exc:
        raise UnavailableError(f"{url} did not answer: {exc}") from None


def _spark_standalone(ctx: NativeContext) -> list[NativeService]:
    """A Spark master and one worker from pyspark's own distribution (`spark-class`), on loopback."""
    from fraudctl.clients.spark import spark_environment

    sc = ctx.config.spark
    work = ctx.data_dir / "spark"
    env = {**spark_environment(), "SPARK_WORKER_DIR": str(work / "work"), "SPARK_LOG_DIR": str(ctx.log_dir),
           "SPARK_NO_DAEMONIZE": "1", "SPARK_MASTER_HOST": "127.0.0.1",
           # the REST submission server would take a fixed port (6066) that fraudctl does not use
           "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}
    spark_class = str(ctx.venv_bin / "spark-class")
    master_ui = f"http://127.0.0.1:{sc.master_ui_port}"

    def master_probe() -> str:
        state = _http_json(master_ui + "/json/")
        if state.get("status") != "ALIVE":
            raise UnavailableError(f"Spark master is {state.get('status')}")
        alive = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
        return f"{state.get('url')} ALIVE, {len(alive)} worker(s)"

    def worker_probe() -> str:
        workers = [w for w in _http_json(master_ui + "/json/").get("workers", []) if w.get("state") == "ALIVE"]
        if not workers:
            raise UnavailableError("no Spark worker has registered with the master yet")
        return f"{len(workers)} worker(s) ALIVE, {sum(w.get('cores', 0) for w in workers)} core(s)"

    def prepare() -> None:
        (work / "work").mkdir(parents=True, exist_ok=True)

    return [
        NativeService(
            name="spark-master", endpoint=sc.standalone_url,
            ports=[("127.0.0.1", sc.master_port), ("127.0.0.1", sc.master_ui_port)],
            program=ctx.program("spark-master", [spark_class, "org.apache.spark.deploy.master.Master",
                                                 "--host", "127.0.0.1", "--port", str(sc.master_port),
                                                 "--webui-port", str(sc.master_ui_port)], environment=env),
            probe=master_probe, prepare=prepare, owned_dirs=[work],
        ),
        NativeService(
            name="spark-worker", endpoint=f"http://127.0.0.1:{sc.worker_ui_port}",
            ports=[("127.0.0.1", sc.worker_port), ("127.0.0.1", sc.worker_ui_port)],
            program=ctx.program("spark-worker", [spark_class, "org.apache.spark.deploy.worker.Worker",
                                                 sc.standalone_url, "--host", "127.0.0.1",
                                                 "--port", str(sc.worker_port), "--webui-port", str(sc.worker_ui_port),
                                                 "--cores", str(sc.worker_cores), "--memory", sc.worker_memory],
                                environment=env),
            probe=worker_probe, prepare=prepare, depends_on=["spark-master"],
        ),
    ]


# Exits of the scorer that a restart cannot cure (bad config, no champion, a model off the contract): supervisor
# leaves it stopped. Any other exit (a crash, Kafka or the lake unreachable) restarts it from its checkpoint.
SCORER_FINAL_EXITS = (0, 2, 3, 9, 12)


def _scorer(ctx: NativeContext) -> NativeService:
    from fraudctl.stream.status import LAUNCH_FILE, describe_health
    from fraudctl.clients.spark import scorer_dir, spark_environment

    config = ctx.config
    folder = scorer_dir(config)
    command = [str(ctx.venv_bin / "python"), str(jvm.PROJECT_ROOT / "jobs" / "scorer.py"),
               "--launch", str(folder / LAUNCH_FILE)]
    return NativeService(
        name="scorer",
        endpoint=f"http://127.0.0.1:{config.spark.ui_port}",
        ports=[("127.0.0.1", config.spark.ui_port)],
        # SIGTERM to the driver alone: it stops the query between batches and then Spark's JVM. Signalled as a
        # group, the JVM would die under a running batch. A SIGKILL still takes the whole group.
        program=ctx.program("scorer", command, environment={**spark_environment(), **objectstore.environment(ctx.storage)},
                            start_seconds=3, stop_as_group=False, exit_codes=SCORER_FINAL_EXITS),
        probe=lambda: describe_health(folder),
        depends_on=["kafka", "mlflow", *([objectstore.SERVICE] if runs_objectstore(config) else [])],
        on_demand=True,
    )
