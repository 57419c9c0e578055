"""The stack's services, each fact written once: name, which runtimes run it, the config fields of the ports
it publishes on the host, how its endpoint is addressed, how containers reach it inside the compose network,
whether it is started on demand, and the label of its web UI.

The native service definitions (`fraudctl.stack.services`), the compose runtime's container config
(`fraudctl.stack.compose`), the UI links of summaries and the scorer's status take their names, endpoints
and in-network addresses from here. `stack/compose.yaml` keeps what only compose can express (images,
health checks, volumes); tests/unit/test_stack_table.py shows that the file and this table agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fraudctl.config import Config

NATIVE, COMPOSE = "native", "compose"
BOTH = (NATIVE, COMPOSE)
LOOPBACK = "127.0.0.1"

# The names other modules use; each is the supervisor program natively and the compose service.
POSTGRES, REDIS, KAFKA, MLFLOW, FLOWER = "postgres", "redis", "kafka", "mlflow", "flower"
OBJECTSTORE = "objectstore"  # the stack's own S3 server: S3Proxy, in both runtimes
AIRFLOW_INIT, AIRFLOW_APISERVER = "airflow-init", "airflow-apiserver"
AIRFLOW_SCHEDULER, AIRFLOW_DAG_PROCESSOR = "airflow-scheduler", "airflow-dag-processor"
AIRFLOW_TRIGGERER, AIRFLOW_WORKER = "airflow-triggerer", "airflow-worker"
SPARK_MASTER, SPARK_WORKER = "spark-master", "spark-worker"
SCORER = "scorer"


@dataclass(frozen=True)
class StackService:
    name: str
    runtimes: tuple[str, ...] = BOTH
    # Each port published on the host: (config field of the port, config field of its bind address; None:
    # loopback). The first is the service's endpoint.
    published: tuple[tuple[str, str | None], ...] = ()
    scheme: str = "http"
    network: tuple[str, int] | None = None  # compose: the (host, port) other containers reach it at
    configures: str | None = None  # the config section that fraudctl code inside the stack reads `network` from
    on_demand: bool = False  # started by its own command (`fraudctl scorer start`), never by `up`
    one_shot: bool = False  # compose: a job that runs to completion during `up` (the Airflow database set-up)
    ui: str | None = None  # its web UI's label in summaries

    def runs_on(self, runtime: str) -> bool:
        return runtime in self.runtimes


SERVICES: tuple[StackService, ...] = (
    StackService(POSTGRES, published=(("postgres.port", "postgres.host"),), scheme="postgresql",
                 network=(POSTGRES, 5432), configures="postgres"),
    StackService(REDIS, published=(("redis.port", "redis.host"),), scheme="redis", network=(REDIS, 6379),
                 configures="redis"),
    # In the network, Kafka's INTERNAL listener: it advertises the service name, the host's one 127.0.0.1.
    StackService(KAFKA, published=(("kafka.port", "kafka.host"),), scheme="kafka", network=(KAFKA, 19092),
                 configures="kafka"),
    # Natively only while storage.objectstore is true and no endpoint_url is set (native_context.runs_objectstore).
    StackService(OBJECTSTORE, published=(("storage.port", "storage.host"),), network=(OBJECTSTORE, 9000)),
    StackService(MLFLOW, published=(("mlflow.port", "mlflow.host"),), network=(MLFLOW, 5000), configures="mlflow",
                 ui="mlflow"),
    StackService(AIRFLOW_INIT, runtimes=(COMPOSE,), one_shot=True),
    StackService(AIRFLOW_APISERVER, published=(("airflow.port", "airflow.host"),), network=(AIRFLOW_APISERVER, 8080),
                 configures="airflow", ui="airflow"),
    StackService(AIRFLOW_SCHEDULER),
    StackService(AIRFLOW_DAG_PROCESSOR),
    StackService(AIRFLOW_TRIGGERER),
    StackService(AIRFLOW_WORKER),
    StackService(FLOWER, published=(("flower.port", "flower.host"),), network=(FLOWER, 5555), configures="flower",
                 ui="flower"),
    # The master's own port is never published: a driver on the host would hand executors 127.0.0.1, which
    # means their own container. Natively both run only with spark.standalone.
    StackService(SPARK_MASTER, published=(("spark.master_ui_port", None),), ui="spark (master)"),
    StackService(SPARK_WORKER, published=(("spark.worker_ui_port", None),)),
    StackService(SCORER, published=(("spark.ui_port", None),), on_demand=True, ui="spark (scorer driver)"),
)

_BY_NAME = {service.name: service for service in SERVICES}


def service(name: str) -> StackService:
    return _BY_NAME[name]


def for_runtime(runtime: str) -> list[StackService]:
    return [s for s in SERVICES if s.runs_on(runtime)]


def address(config: "Config", name: str) -> tuple[str, int]:
    """The (host, port) a service's first published port has on the host."""
    from fraudctl.config import value_at

    port_field, host_field = service(name).published[0]
    return (value_at(config, host_field) if host_field else LOOPBACK), value_at(config, port_field)


def endpoint(config: "Config", name: str) -> str:
    """Where the host reaches the service, e.g. http://127.0.0.1:5000 or kafka://127.0.0.1:9092."""
    host, port = address(config, name)
    return f"{service(name).scheme}://{host}:{port}"


def in_network() -> dict[str, tuple[str, int]]:
    """Config section -> (host, port) as containers reach it: what the compose runtime writes into the
    configuration that fraudctl code inside the stack reads."""
    return {s.configures: s.network for s in SERVICES if s.configures and s.network}


def network_url(name: str) -> str:
    host, port = service(name).network  # type: ignore[misc]
    return f"{service(name).scheme}://{host}:{port}"


def ui_urls(config: "Config") -> dict[str, str]:
    """The web UIs an operator opens, by label. The Spark master's only when one runs (spark.standalone
    natively; compose always runs one, on the same port)."""
    shown = [s for s in SERVICES if s.ui and (s.name != SPARK_MASTER or config.spark.standalone)]
    return {s.ui: endpoint(config, s.name) for s in sorted(shown, key=lambda s: s.name == SPARK_MASTER)}
