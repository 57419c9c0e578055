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

from fraudctl.choices import RuntimeKind
from fraudctl.errors import ConfigError
from fraudctl.estimators import DEFAULT_ESTIMATOR, EstimatorName
from fraudctl.layout import PresetName, TimeFormatName

ENV_PREFIX = "FRAUDCTL_"
ENV_NESTING = "__"
ENV_CONFIG_PATH = "FRAUDCTL_CONFIG"  # path of the config file, when --config is not given
DEFAULT_CONFIG_NAME = "fraudctl.yaml"
# Variables with the prefix that are not config fields.
ENV_NOT_FIELDS = {ENV_CONFIG_PATH, "FRAUDCTL_DEBUG"}

Port = Annotated[int, Field(ge=1, le=65535, description="a TCP port, 1-65535")]
Seconds = Annotated[float, Field(gt=0)]
# A duration: a number and a unit d, h, m or s (none: days), e.g. 7d, 12h, 1.5h. fraudctl.replay.options parses it.
DURATION_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*$"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RuntimeConfig(Section):
    kind: RuntimeKind = "auto"  # auto: compose if a Docker engine answers, else native (fraudctl.choices)
    state_dir: Path = Path(".fraudctl")  # relative paths are taken from the config file's folder
    start_timeout: Seconds = 240.0  # `up` gives up on a service that is not healthy by then
    # The same for `up` under compose when --timeout is not given: containers start one after another
    # (postgres, Airflow's migration, api-server, then the worker), which takes longer on 2 cores.
    compose_start_timeout: Seconds = 600.0
    stop_timeout: Seconds = 30.0  # graceful stop (SIGTERM) per service before SIGKILL
    kill_timeout: Seconds = 10.0  # after SIGKILL, how long to wait for the process to vanish


class TopicConfig(Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(default=3, ge=1, le=1000)


class TopicsConfig(Section):
    transactions: TopicConfig = TopicConfig(name="transactions", partitions=3)
    labels: TopicConfig = TopicConfig(name="labels", partitions=3)
    scores: TopicConfig = TopicConfig(name="scores", partitions=3)
    alerts: TopicConfig = TopicConfig(name="alerts", partitions=1)
    dlq: TopicConfig = TopicConfig(name="transactions.dlq", partitions=1)

    def all(self) -> list[TopicConfig]:
        return [self.transactions, self.labels, self.scores, self.alerts, self.dlq]


class KafkaConfig(Section):
    host: str = "127.0.0.1"
    port: Port = 9092
    controller_port: Port = 9093
    heap: str = Field(default="512m", pattern=r"^\d+[mg]$")
    topics: TopicsConfig = TopicsConfig()

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"


class PostgresConfig(Section):
    host: str = "127.0.0.1"
    port: Port = 5432
    user: str = "fraudctl"  # owner of the airflow and mlflow databases
    password: SecretStr | None = None  # generated when empty
    airflow_db: str = "airflow"
    mlflow_db: str = "mlflow"


class RedisConfig(Section):
    host: str = "127.0.0.1"
    port: Port = 6379
    password: SecretStr | None = None  # generated when empty


class MlflowConfig(Section):
    host: str = "127.0.0.1"
    port: Port = 5000
    workers: int = Field(default=1, ge=1, le=16)  # each web worker costs ~200 MiB
    experiment: str = "fraud-detection"
    # Added for the registry client (issue 5): an unreachable server must fail in seconds, not after
    # MLflow's default of 7 retries with backoff (minutes).
    request_timeout: Seconds = 10.0  # per HTTP request to the tracking server
    request_max_retries: int = Field(default=1, ge=0, le=10)

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.port}"


class AirflowConfig(Section):
    host: str = "127.0.0.1"
    port: Port = 8080
    admin_user: str = "admin"
    admin_password: SecretStr | None = None  # generated when empty
    parallelism: int = Field(default=4, ge=1)
    worker_concurrency: int = Field(default=2, ge=1)
    # Log servers of the Celery worker and the triggerer. Airflow binds them to every interface, so the native
    # runtime starts both with --skip-serve-logs (task logs are local files): unused natively.
    worker_log_port: Port = 8793
    triggerer_log_port: Port = 8794
    api_workers: int = Field(default=1, ge=1, le=8)
    heartbeat_timeout: Seconds = 60.0  # a killed task is retried after this; Airflow's default 300 s is slow

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class RetrainConfig(Section):
    """The `fraud_retrain` DAG (dags/fraud_retrain.py) and `fraudctl retrain`."""

    dag_id: str = "fraud_retrain"
    schedule: str | None = "@daily"  # a cron expression or preset; null: only when triggered
    queue: str = "default"  # the Celery queue its tasks go to
    window_days: int = Field(default=60, ge=1)  # event days read from the lake, ending at the run's cutoff
    source: str | None = None  # a file to train on instead of the lake (the run conf `source` overrides)
    retries: int = Field(default=2, ge=2)
    retry_delay: Seconds = 30.0
    min_rows: int = Field(default=1000, ge=1)  # validate: fewer labelled transactions fail the run
    min_label_rate: float = Field(default=0.0001, ge=0, le=1)  # validate: the fraud share among labelled rows
    max_label_rate: float = Field(default=0.2, ge=0, le=1)
    max_staleness_days: int = Field(default=3, ge=0)  # validate: the newest transaction is at most this old
    timeout: Seconds = 1800.0  # `fraudctl retrain --wait` gives up after this


class FlowerConfig(Section):
    host: str = "127.0.0.1"
    port: Port = 5555
    user: str = "flower"
    password: SecretStr | None = None  # generated when empty

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class StorageConfig(Section):
    kind: Literal["local", "s3"] = "s3"
    # local: a folder (relative to the state dir); s3: a bucket on any S3 endpoint (MinIO in compose)
    local_dir: Path = Path("artifacts")
    bucket: str = "fraudctl"
    lake_prefix: str = Field(default="lake", pattern=r"^[A-Za-z0-9._-]+$")  # the lake's folder (local) or key prefix (s3)
    # null: the native runtime's own S3 server (the `objectstore` service, S3Proxy) when `objectstore` is
    # true, else AWS; set: any S3 endpoint, e.g. http://127.0.0.1:9000 for MinIO (fraudctl.objectstore)
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None  # null: generated on first `up` for the objectstore
    secret_access_key: SecretStr | None = None
    # The native runtime's object store (S3Proxy, filesystem backend, data in the state dir), loopback only.
    objectstore: bool = True
    host: str = "127.0.0.1"
    port: Port = 9000
    heap: str = Field(default="256m", pattern=r"^\d+[mg]$")
    console_port: Port = 9001  # compose only: MinIO's web console (MinIO's S3 API is on host:port)


class SparkConfig(Section):
    master: str = "local[2]"  # local[N], or spark://host:7077 (a standalone cluster), k8s://...
    driver_memory: str = Field(default="1g", pattern=r"^\d+[mg]$")
    executor_memory: str = Field(default="1g", pattern=r"^\d+[mg]$")  # on a cluster
    shuffle_partitions: int = Field(default=4, ge=1)
    ui_port: Port = 4040  # the scorer driver's web UI (loopback)
    # The address Spark executors call the driver on (and the driver binds): loopback natively; under
    # compose the scorer's launch sets its service name, `scorer`, so executors in spark-worker reach it.
    driver_host: str = "127.0.0.1"
    # A standalone cluster in the native runtime: `up` also starts a Spark master and one worker.
    standalone: bool = False
    master_port: Port = 7077
    master_ui_port: Port = 8081
    worker_port: Port = 7078
    worker_ui_port: Port = 8082
    worker_cores: int = Field(default=2, ge=1)
    worker_memory: str = Field(default="2g", pattern=r"^\d+[mg]$")

    @property
    def standalone_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"


class ScorerConfig(Section):
    """The streaming scorer (`fraudctl scorer start`)."""

    # Micro-batch pacing: 0 starts the next batch as soon as the last ends (lowest latency).
    trigger_seconds: float = Field(default=0.0, ge=0)
    max_offsets_per_trigger: int = Field(default=100_000, ge=1)  # per batch, both topics; bounds batch time
    starting_offsets: Literal["earliest", "latest"] = "earliest"  # where a new scorer (no checkpoint) begins
    poll_timeout_ms: int = Field(default=10_000, ge=100)  # executors' Kafka poll (kafkaConsumer.pollTimeoutMs)
    model_refresh_seconds: Seconds = 5.0  # how often the running scorer re-resolves @champion
    threshold: float | None = Field(default=None, ge=0, le=1)  # None: the threshold logged with the model
    linger_ms: int = Field(default=5, ge=0, le=1000)  # score producer batching delay
    flush_timeout: Seconds = 60.0  # a batch whose output is not acknowledged by then fails and is re-run
    snapshot_every: int = Field(default=200, ge=1)  # batches between compactions of the feature state
    lake: bool = True  # append each batch's transactions and labels to the lake
    start_timeout: Seconds = 180.0  # `scorer start` waits this long for the first batch


class ModelConfig(Section):
    name: str = "fraud-detector"
    estimator: EstimatorName = DEFAULT_ESTIMATOR  # fraudctl.estimators.ESTIMATORS
    promotion_margin: float = Field(default=0.0, ge=0)  # average-precision gain a challenger must show
    label_delay_days: int = Field(default=7, ge=0)
    # Added for `fraudctl train` (issue 5). The split is the handbook's: train days, then a gap of
    # label_delay_days (labels not yet known), then test days; the threshold is picked on a validation
    # slice (the last validation_days of the training window, scored by a model trained before it).
    train_days: int = Field(default=7, ge=1)
    test_days: int = Field(default=7, ge=1)
    validation_days: int = Field(default=7, ge=0)  # 0: no validation slice, threshold from training scores
    alert_budget_per_day: int = Field(default=100, ge=1)  # alerts analysts can review a day
    precision_target: float | None = Field(default=None, gt=0, le=1)  # when set, replaces the alert budget
    random_state: int = 0  # seeds the estimators, so a retrain on the same data gives the same model


class LayoutConfig(Section):
    """How an input file's columns become transactions (fraudctl.layout), for `replay` and `train --data`
    alike; --preset, --map, --time-format and --start override these."""

    # Column layout: auto (recognised from the header), generator, ulb (Time,V1..V28,Amount,Class) or
    # sparkov (trans_date_trans_time,cc_num,merchant,amt,is_fraud); see `fraudctl replay --help`.
    preset: PresetName = "auto"
    # Source column -> contract field, applied over the preset (like --map SOURCE=FIELD); "" ignores a column.
    columns: dict[str, str] = Field(default_factory=dict)
    time_format: TimeFormatName = "auto"
    start: str | None = None  # origin of `offset` times, ISO-8601 (UTC when no offset is given)


class ReplayConfig(Section):
    """`fraudctl replay` (issue 4): how a file is produced to Kafka (its columns: the layout section)."""

    # Event-time delay of label events after their transaction, e.g. 7d, 12h, 30m; null: model.label_delay_days.
    label_delay: str | None = Field(default=None, pattern=DURATION_PATTERN)
    max_errors: int = Field(default=0, ge=0)  # rejected rows allowed before the exit code says BAD_INPUT (11)
    rejects_dir: Path | None = None  # where FILE.rejects.csv goes (relative: to the current folder); null: beside FILE
    # Producer tuning (idempotent, acks=all always).
    compression: Literal["lz4", "zstd", "snappy", "gzip", "none"] = "lz4"
    linger_ms: int = Field(default=50, ge=0, le=60_000)
    batch_bytes: int = Field(default=1_048_576, ge=1024)  # per-partition batch size
    connect_timeout: Seconds = 10.0  # broker not answering by then: UNAVAILABLE (8), before reading the file
    delivery_timeout: Seconds = 120.0  # an event not acknowledged by then counts as failed (covers restarts)
    interrupt_flush_timeout: Seconds = 30.0  # after Ctrl-C, how long queued events get to be delivered
    # How delivery reports reach fraudctl. The Python client receives librdkafka's report for every event
    # either way. errors: a failed report is counted (with its reason) and a successful one settles the event
    # without becoming a Python object; once the queue has drained, delivered = produced - failed - unconfirmed,
    # exact. all: each success is also built into a Message and counted one by one, a cross-check that
    # costs 5-15 % of the throughput (a key and a value copied per event under the GIL).
    delivery_reports: Literal["all", "errors"] = "errors"


class Config(Section):
    runtime: RuntimeConfig = RuntimeConfig()
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
