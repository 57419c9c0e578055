"""The configuration: one validated model, loaded with precedence flag > FRAUDCTL_* environment > file > default.

Every section rejects unknown keys, so a typo in fraudctl.yaml is an error naming the file and the field,
never a silently ignored setting. Secrets left empty are generated on first `up` into the state directory
(mode 0600), so no default password exists anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from fraudctl.choices import DEFAULT_ESTIMATOR, EstimatorName, PresetName, RuntimeKind, TimeFormatName
from fraudctl.errors import ConfigError

ENV_PREFIX = "FRAUDCTL_"
ENV_NESTING = "__"
ENV_CONFIG_PATH = "FRAUDCTL_CONFIG"  # path of the config file, when --config is not given
DEFAULT_CONFIG_NAME = "fraudctl.yaml"
# Variables with the prefix that are not config fields.
# FRAUDCTL_CACHE_DIR is fraudctl.clients.jvm's jar cache (the Spark image sets it), not a config key.
ENV_NOT_FIELDS = {ENV_CONFIG_PATH, "FRAUDCTL_DEBUG", "FRAUDCTL_CACHE_DIR"}

Port = Annotated[int, Field(ge=1, le=65535, description="a TCP port, 1-65535")]
Seconds = Annotated[float, Field(gt=0)]
# A duration: a number and a unit d, h, m or s (none: days), e.g. 7d, 12h, 1.5h. fraudctl.data.replay.options parses it.
DURATION_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*$"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RuntimeConfig(Section):
    """Which runtime runs the stack, and its state and timeouts."""

    kind: RuntimeKind = Field("auto", description=(
        "Which runtime runs the stack; auto: compose if a Docker engine answers, else native."))
    state_dir: Path = Field(Path(".fraudctl"), description=(
        "Data, logs and secrets of the native stack; a relative path is taken from the config file's folder."))
    start_timeout: Seconds = Field(240.0, description=(
        "Seconds `up` waits for every service to be healthy before giving up."))
    # Containers start one after another (postgres, Airflow's migration, api-server, then the worker), which
    # takes longer on 2 cores.
    compose_start_timeout: Seconds = Field(600.0, description=(
        "Seconds `up` under compose waits for every service to be healthy, when --timeout is not given."))
    stop_timeout: Seconds = Field(30.0, description=(
        "Seconds a service gets to stop after SIGTERM (graceful) before SIGKILL."))
    kill_timeout: Seconds = Field(10.0, description="Seconds to wait, after SIGKILL, for the process to vanish.")


class ComposeConfig(Section):
    """The compose runtime's images: every one is built by fraudctl from one Debian base image."""

    base_image: str = Field("debian:bookworm-slim", description=(
        "The Debian bookworm image every fraudctl/* image is built on. When it is neither present nor pullable "
        "(no image registry), `up` makes it from Debian's packages (debootstrap) and imports it under this name."))
    debian_mirror: str | None = Field(None, description=(
        "The Debian mirror a home-made base image is bootstrapped from; null: the host's apt mirror, else "
        "http://deb.debian.org/debian."))
    ca_bundle: Path | None = Field(None, description=(
        "A PEM bundle of extra CA certificates the image builds trust (apt, pip, Maven/Java), for networks that "
        "inspect TLS (e.g. /etc/ssl/certs/ca-certificates.crt); null: the base image's own store."))


class TopicConfig(Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$", description="The topic's name.")
    partitions: int = Field(default=3, ge=1, le=1000, description="Partitions `up` creates the topic with.")


class TopicsConfig(Section):
    transactions: TopicConfig = TopicConfig(name="transactions", partitions=3)
    labels: TopicConfig = TopicConfig(name="labels", partitions=3)
    scores: TopicConfig = TopicConfig(name="scores", partitions=3)
    alerts: TopicConfig = TopicConfig(name="alerts", partitions=1)
    dlq: TopicConfig = TopicConfig(name="transactions.dlq", partitions=1)

    def all(self) -> list[TopicConfig]:
        return [self.transactions, self.labels, self.scores, self.alerts, self.dlq]


class KafkaConfig(Section):
    """The Kafka broker (KRaft) and the topics `up` creates."""

    host: str = Field("127.0.0.1", description="The broker's host.")
    port: Port = Field(9092, description="The broker's client port.")
    controller_port: Port = Field(9093, description="The KRaft controller listener (native runtime).")
    heap: str = Field(default="512m", pattern=r"^\d+[mg]$", description="The broker's JVM heap.")
    topics: TopicsConfig = TopicsConfig()

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"


class PostgresConfig(Section):
    """PostgreSQL, the metadata database of Airflow and MLflow."""

    host: str = Field("127.0.0.1", description="The PostgreSQL server's host.")
    port: Port = Field(5432, description="The PostgreSQL server's port.")
    user: str = Field("fraudctl", description="Owner of the airflow and mlflow databases.")
    password: SecretStr | None = Field(None, description="The user's password; null: generated on first `up`.")
    airflow_db: str = Field("airflow", description="Airflow's metadata database.")
    mlflow_db: str = Field("mlflow", description="MLflow's backend database.")
    rules_db: str = Field("fraudctl", description="The rules and their history (`fraudctl rules`).")


class RedisConfig(Section):
    """Redis, the Celery broker."""

    host: str = Field("127.0.0.1", description="The Redis server's host.")
    port: Port = Field(6379, description="The Redis server's port.")
    password: SecretStr | None = Field(None, description="null: generated on first `up`.")


class MlflowConfig(Section):
    """The MLflow tracking server and model registry."""

    host: str = Field("127.0.0.1", description="The tracking server's host.")
    port: Port = Field(5000, description="The tracking server's port.")
    workers: int = Field(default=1, ge=1, le=16, description=(
        "Web workers of the tracking server; each costs about 200 MiB."))
    experiment: str = Field("fraud-detection", description="The experiment training runs are logged to.")
    # Added for the registry client (issue 5): an unreachable server must fail in seconds, not after
    # MLflow's default of 7 retries with backoff (minutes).
    request_timeout: Seconds = Field(10.0, description="Seconds per HTTP request to the tracking server.")
    request_max_retries: int = Field(default=1, ge=0, le=10, description=(
        "Retries of a failed request to the tracking server."))

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.port}"


class AirflowConfig(Section):
    """Apache Airflow 3: api-server, scheduler, dag-processor, triggerer and the Celery worker."""

    host: str = Field("127.0.0.1", description="The api-server's host.")
    port: Port = Field(8080, description="The api-server's port.")
    admin_user: str = Field("admin", description="The admin user fraudctl signs in as.")
    admin_password: SecretStr | None = Field(None, description="The admin's password; null: generated on first `up`.")
    parallelism: int = Field(default=4, ge=1, description=(
        "Task instances running at once (sized for a 2-core machine)."))
    worker_concurrency: int = Field(default=2, ge=1, description="Tasks the Celery worker runs at once.")
    # Log servers of the Celery worker and the triggerer. Airflow binds them to every interface, so the native
    # runtime starts both with --skip-serve-logs (task logs are local files): unused natively.
    worker_log_port: Port = Field(8793, description="The Celery worker's log server (unused by the native runtime).")
    triggerer_log_port: Port = Field(8794, description="The triggerer's log server (unused by the native runtime).")
    api_workers: int = Field(default=1, ge=1, le=8, description="The api-server's worker processes.")
    heartbeat_timeout: Seconds = Field(60.0, description=(
        "Seconds before a task whose worker died is retried (Airflow's default, 300, is slow)."))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class RetrainConfig(Section):
    """The `fraud_retrain` DAG (dags/fraud_retrain.py) and `fraudctl retrain`."""

    dag_id: str = Field("fraud_retrain", description="The DAG's id.")
    schedule: str | None = Field("@daily", description="A cron expression or preset; null: only when triggered.")
    queue: str = Field("default", description="The Celery queue its tasks go to.")
    window_days: int = Field(default=60, ge=1, description="Event days read from the lake, ending at the run's cutoff.")
    source: str | None = Field(None, description=(
        "A file to train on instead of the lake (the run conf `source` overrides)."))
    retries: int = Field(default=2, ge=2, description="Retries of each task (at least 2).")
    retry_delay: Seconds = Field(30.0, description="Seconds between a task's tries.")
    min_rows: int = Field(default=1000, ge=1, description="validate: fewer labelled transactions fail the run.")
    min_label_rate: float = Field(default=0.0001, ge=0, le=1, description=(
        "validate: the fraud share among labelled transactions, lower bound."))
    max_label_rate: float = Field(default=0.2, ge=0, le=1, description=(
        "validate: the fraud share among labelled transactions, upper bound."))
    max_staleness_days: int = Field(default=3, ge=0, description=(
        "validate: the newest transaction is at most this many days before the cutoff."))
    timeout: Seconds = Field(1800.0, description="Seconds `fraudctl retrain --wait` waits before giving up.")


class FlowerConfig(Section):
    """Flower, which watches the Celery workers."""

    host: str = Field("127.0.0.1", description="Flower's host.")
    port: Port = Field(5555, description="Flower's port.")
    user: str = Field("flower", description="Flower's basic-auth user.")
    password: SecretStr | None = Field(None, description="Flower's basic-auth password; null: generated on first `up`.")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class StorageConfig(Section):
    """Where the model artifacts and the lake live: an S3 bucket or a local folder."""

    kind: Literal["local", "s3"] = Field("s3", description=(
        "s3: a bucket on any S3 endpoint (by default the stack's objectstore); local: a folder."))
    local_dir: Path = Field(Path("artifacts"), description="kind local: the folder, relative to the state dir.")
    bucket: str = Field("fraudctl", description="kind s3: the bucket; `up` creates it in the stack's S3 server.")
    lake_prefix: str = Field(default="lake", pattern=r"^[A-Za-z0-9._-]+$", description=(
        "The lake's folder (local) or key prefix (s3)."))
    endpoint_url: str | None = Field(None, description=(
        "null: the stack's own S3 server: natively the `objectstore` service (S3Proxy) when `objectstore` is true, "
        "else AWS; under compose always the objectstore. Set: any S3 endpoint, used as given (under compose it must not be "
        "loopback: the containers use it too)."))
    region: str = Field("us-east-1", description="The S3 region.")
    access_key_id: SecretStr | None = Field(None, description=(
        "null: generated on first `up` for the stack's S3 server (the objectstore), else the AWS credential "
        "chain."))
    secret_access_key: SecretStr | None = Field(None, description="The secret of access_key_id; null as for it.")
    objectstore: bool = Field(True, description=(
        "Native runtime: run the objectstore (S3Proxy, data in the state dir) and use it while endpoint_url is null "
        "(compose always runs it, data in a volume)."))
    host: str = Field("127.0.0.1", description=(
        "The address the stack's objectstore listens on (compose: where its S3 API is published)."))
    port: Port = Field(9000, description="The stack's objectstore's port.")
    heap: str = Field(default="256m", pattern=r"^\d+[mg]$", description="The objectstore's JVM heap.")


class SparkConfig(Section):
    """Apache Spark, which runs the streaming scorer."""

    master: str = Field("local[2]", description=(
        "local[N], spark://host:7077 (a standalone cluster) or k8s://...; `scorer start --master` overrides."))
    driver_memory: str = Field(default="1g", pattern=r"^\d+[mg]$", description="The scorer driver's memory.")
    executor_memory: str = Field(default="1g", pattern=r"^\d+[mg]$", description="Executor memory, on a cluster.")
    shuffle_partitions: int = Field(default=4, ge=1, description="spark.sql.shuffle.partitions of the scorer.")
    ui_port: Port = Field(4040, description="The scorer driver's web UI (loopback).")
    driver_host: str = Field("127.0.0.1", description=(
        "The address Spark executors call the driver on (and the driver binds): loopback natively; under compose "
        "the scorer's launch sets its service name, `scorer`, so executors in spark-worker reach it."))
    standalone: bool = Field(False, description=(
        "Native runtime: `up` also starts a standalone Spark master and one worker."))
    master_port: Port = Field(7077, description="The standalone master's port.")
    master_ui_port: Port = Field(8081, description="The standalone master's web UI.")
    worker_port: Port = Field(7078, description="The standalone worker's port.")
    worker_ui_port: Port = Field(8082, description="The standalone worker's web UI.")
    worker_cores: int = Field(default=2, ge=1, description="Cores the standalone worker offers.")
    worker_memory: str = Field(default="2g", pattern=r"^\d+[mg]$", description="Memory the standalone worker offers.")

    @property
    def standalone_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"


class ScorerConfig(Section):
    """The streaming scorer (`fraudctl scorer start`)."""

    trigger_seconds: float = Field(default=0.0, ge=0, description=(
        "Micro-batch pacing: 0 starts the next batch as soon as the last ends (lowest latency)."))
    max_offsets_per_trigger: int = Field(default=100_000, ge=1, description=(
        "Records per micro-batch, both topics; bounds the batch time."))
    starting_offsets: Literal["earliest", "latest"] = Field("earliest", description=(
        "Where a new scorer (no checkpoint) begins."))
    poll_timeout_ms: int = Field(default=10_000, ge=100, description=(
        "The executors' Kafka poll (kafkaConsumer.pollTimeoutMs)."))
    model_refresh_seconds: Seconds = Field(5.0, description="How often the running scorer re-resolves @champion.")
    rules_refresh_seconds: Seconds = Field(1.0, description=(
        "How often the running scorer asks the rule store for the rule set's version."))
    threshold: float | None = Field(default=None, ge=0, le=1, description="null: the threshold logged with the model.")
    linger_ms: int = Field(default=5, ge=0, le=1000, description="The score producer's batching delay.")
    flush_timeout: Seconds = Field(60.0, description=(
        "Seconds for a batch's output to be acknowledged; else the batch fails and is re-run."))
    snapshot_every: int = Field(default=200, ge=1, description=(
        "Micro-batches between compactions of the online feature state."))
    explained_alerts_per_batch: int | None = Field(default=1000, ge=0, description=(
        "Alerts of a micro-batch given the model's feature contributions (~0.25 ms of CPU each); past it, the "
        "highest scores get them and the other alerts name their rules only, so an alert storm cannot stall "
        "the scorer. null: every alert."))
    lake: bool = Field(True, description="Append each batch's transactions and labels to the lake.")
    start_timeout: Seconds = Field(180.0, description="Seconds `scorer start` waits for the first micro-batch.")


class ModelConfig(Section):
    """The model: estimator, training split, decision threshold, promotion gate."""

    name: str = Field("fraud-detector", description="The registered model's name.")
    estimator: EstimatorName = Field(DEFAULT_ESTIMATOR, description="The estimator (fraudctl.model.estimators); lightgbm and logistic_regression give alert reasons exact feature contributions.")
    promotion_margin: float = Field(default=0.0, ge=0, description=(
        "Average-precision gain a challenger must show over the champion."))
    label_delay_days: int = Field(default=7, ge=0, description="Labels are known this many days after the transaction.")
    # Added for `fraudctl train` (issue 5). The split is the handbook's: train days, then a gap of
    # label_delay_days (labels not yet known), then test days; the threshold is picked on a validation
    # slice (the last validation_days of the training window, scored by a model trained before it).
    train_days: int = Field(default=7, ge=1, description=(
        "The split's training days, followed by a gap of label_delay_days (labels not yet known)."))
    test_days: int = Field(default=7, ge=1, description="The split's test days, after the gap.")
    validation_days: int = Field(default=7, ge=0, description=(
        "The last days of the training window, scored by a model trained before them, pick the threshold; 0: no "
        "validation slice, the threshold from training scores."))
    alert_budget_per_day: int = Field(default=100, ge=1, description=(
        "Alerts analysts can review a day; sets the threshold."))
    precision_target: float | None = Field(default=None, gt=0, le=1, description=(
        "When set, the threshold reaching this precision replaces the alert budget."))
    random_state: int = Field(0, description=(
        "Seeds the estimators, so a retrain on the same data gives the same model."))


class LayoutConfig(Section):
    """How an input file's columns become transactions (fraudctl.data.layout), for `replay` and `train --data`
    alike; --preset, --map, --time-format and --start override these."""

    preset: PresetName = Field("auto", description=(
        "Column layout: auto (recognised from the header), generator, ulb (Time,V1..V28,Amount,Class) or sparkov "
        "(trans_date_trans_time,cc_num,merchant,amt,is_fraud); --preset."))
    columns: dict[str, str] = Field(default_factory=dict, description=(
        "Source column -> contract field, applied over the preset (like --map SOURCE=FIELD); \"\" ignores a column."))
    time_format: TimeFormatName = Field("auto", description=(
        "How tx_datetime is written: iso, epoch_s, epoch_ms, offset (seconds after `start`), or auto; --time-format."))
    start: str | None = Field(None, description=(
        "Origin of `offset` times, ISO-8601 (UTC when no offset is given); --start."))


class ReplayConfig(Section):
    """`fraudctl replay` (issue 4): how a file is produced to Kafka (its columns: the layout section)."""

    label_delay: str | None = Field(default=None, pattern=DURATION_PATTERN, description=(
        "Event-time delay of label events after their transaction, e.g. 7d, 12h, 30m; null: model.label_delay_days."))
    max_errors: int = Field(default=0, ge=0, description=(
        "Rejected rows allowed before the exit code says BAD_INPUT (11)."))
    rejects_dir: Path | None = Field(None, description=(
        "Where FILE.rejects.csv goes (relative: to the current folder); null: beside FILE."))
    compression: Literal["lz4", "zstd", "snappy", "gzip", "none"] = Field("lz4", description=(
        "The producer's compression (the producer is idempotent, acks=all, always)."))
    linger_ms: int = Field(default=50, ge=0, le=60_000, description="The producer's batching delay.")
    batch_bytes: int = Field(default=1_048_576, ge=1024, description="The producer's batch size per partition.")
    connect_timeout: Seconds = Field(10.0, description=(
        "Seconds to reach the broker, before reading the file; then UNAVAILABLE (8)."))
    delivery_timeout: Seconds = Field(120.0, description=(
        "Seconds an event may wait for its acknowledgement, else it counts as failed (covers broker restarts)."))
    interrupt_flush_timeout: Seconds = Field(30.0, description=(
        "Seconds queued events get to be delivered after Ctrl-C."))
    # The Python client receives librdkafka's delivery report for every event either way; `all` builds each
    # success into a Message (a key and a value copied per event under the GIL), `errors` lets it settle in C.
    delivery_reports: Literal["all", "errors"] = Field("errors", description=(
        "errors: a failed report is counted with its reason, a success settles in C; once the queue has drained, "
        "delivered = produced - failed - unconfirmed, exact. all: each success is also counted one by one in Python "
        "(a cross-check, 5-15 % slower)."))


class Config(Section):
    runtime: RuntimeConfig = RuntimeConfig()
    compose: ComposeConfig = ComposeConfig()
    kafka: KafkaConfig = KafkaConfig()
    postgres: PostgresConfig = PostgresConfig()
    redis: RedisConfig = RedisConfig()
    mlflow: MlflowConfig = MlflowConfig()
    airflow: AirflowConfig = AirflowConfig()
    retrain: RetrainConfig = RetrainConfig()
    flower: FlowerConfig = FlowerConfig()
    storage: StorageConfig = StorageConfig()
    spark: SparkConfig = SparkConfig()
    scorer: ScorerConfig = ScorerConfig()
    model: ModelConfig = ModelConfig()
    layout: LayoutConfig = LayoutConfig()
    replay: ReplayConfig = ReplayConfig()

    # Where the values came from; not part of the schema.
    source: Path | None = Field(default=None, exclude=True)

    @property
    def state_dir(self) -> Path:
        return self.runtime.state_dir

    def masked(self) -> dict[str, Any]:
        """The effective configuration as plain data, secrets shown as '********' (or null when unset)."""
        return _mask(self.model_dump(mode="python"))


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "********"
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def find_config_file(explicit: Path | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    """--config, else $FRAUDCTL_CONFIG, else ./fraudctl.yaml when it exists."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file not found: {explicit}")
        return explicit
    if env.get(ENV_CONFIG_PATH):
        path = Path(env[ENV_CONFIG_PATH])
        if not path.is_file():
            raise ConfigError(f"config file not found: {path} (from ${ENV_CONFIG_PATH})")
        return path
    default = cwd / DEFAULT_CONFIG_NAME
    return default if default.is_file() else None


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Build the one Config. `overrides` are command-line flags as dotted keys, e.g. {"runtime.kind": "native"}."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    path = find_config_file(path, env, cwd)

    data: dict[str, Any] = _read_yaml(path) if path else {}
    env_keys = _env_overrides(env)
    for dotted, value in env_keys.items():
        _set_dotted(data, dotted, value)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, dotted, value)

    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, env_keys, overrides or {})) from None

    base = path.parent if path else cwd
    if not config.runtime.state_dir.is_absolute():
        config.runtime.state_dir = (base / config.runtime.state_dir).resolve()
    config.source = path.resolve() if path else None
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (runtime:, kafka:, ...), got {type(data).__name__}")
    return data


def _env_overrides(env: Mapping[str, str]) -> dict[str, str]:
    """FRAUDCTL_KAFKA__PORT=9094 -> {"kafka.port": "9094"}; pydantic converts the strings."""
    found = {}
    for name, value in env.items():
        if name.startswith(ENV_PREFIX) and name not in ENV_NOT_FIELDS:
            dotted = name[len(ENV_PREFIX):].lower().replace(ENV_NESTING, ".")
            found[dotted] = value
    return found


def env_name(dotted: str) -> str:
    return ENV_PREFIX + dotted.upper().replace(".", ENV_NESTING)


def value_at(config: "Config", dotted: str) -> Any:
    """The value of a dotted key of a built Config, e.g. value_at(config, "kafka.port")."""
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[leaf] = value


def _describe(exc: ValidationError, path: Path | None, env_keys: Mapping[str, Any], flags: Mapping[str, Any]) -> str:
    def under(keys) -> list[str]:
        return [k for k in keys if k == dotted or k.startswith(dotted + ".")]

    lines = []
    for err in exc.errors():
        dotted = ".".join(str(part) for part in err["loc"])
        from_flags = under(k for k, v in flags.items() if v is not None)
        from_env = under(env_keys)
        if from_flags:
            origin = "command-line flag"
        elif from_env:
            origin = "environment variable " + ", ".join(env_name(k) for k in from_env)
        else:
            origin = str(path) if path else "configuration"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; `fraudctl config show` lists every key)"
        given = err.get("input")
        shown = "" if err["type"] == "extra_forbidden" or isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"{origin}: {dotted}: {message}{shown}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
