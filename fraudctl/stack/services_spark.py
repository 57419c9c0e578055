"""The native runtime's optional Spark standalone cluster (a master and a worker from pyspark's own
distribution) and the streaming scorer, the service `fraudctl scorer start` starts on demand."""

from __future__ import annotations

import json

from fraudctl.clients import jvm, objectstore
from fraudctl.errors import UnavailableError
from fraudctl.stack import table
from fraudctl.stack.native_context import NativeContext, NativeService, table_service, runs_objectstore


def _http_json(url: str, timeout: float = 3.0) -> dict:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except Exception as exc:
        raise UnavailableError(f"{url} did not answer: {exc}") from None


def spark_standalone_services(ctx: NativeContext) -> list[NativeService]:
    """A Spark master and one worker from pyspark's own distribution (`spark-class`), on loopback."""
    from fraudctl.clients.spark import spark_environment

    sc = ctx.config.spark
    work = ctx.data_dir / "spark"
    env = {**spark_environment(), "SPARK_WORKER_DIR": str(work / "work"), "SPARK_LOG_DIR": str(ctx.log_dir),
           "SPARK_NO_DAEMONIZE": "1", "SPARK_MASTER_HOST": "127.0.0.1",
           # the REST submission server would take a fixed port (6066) that fraudctl does not use
           "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}
    spark_class = str(ctx.venv_bin / "spark-class")
    master_ui = table.endpoint(ctx.config, table.SPARK_MASTER)

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
            name=table.SPARK_MASTER, endpoint=sc.standalone_url,
            ports=[("127.0.0.1", sc.master_port), ("127.0.0.1", sc.master_ui_port)],
            program=ctx.program(table.SPARK_MASTER, [spark_class, "org.apache.spark.deploy.master.Master",
                                                 "--host", "127.0.0.1", "--port", str(sc.master_port),
                                                 "--webui-port", str(sc.master_ui_port)], environment=env),
            probe=master_probe, prepare=prepare, owned_dirs=[work],
        ),
        NativeService(
            name=table.SPARK_WORKER, endpoint=table.endpoint(ctx.config, table.SPARK_WORKER),
            ports=[("127.0.0.1", sc.worker_port), ("127.0.0.1", sc.worker_ui_port)],
            program=ctx.program(table.SPARK_WORKER, [spark_class, "org.apache.spark.deploy.worker.Worker",
                                                 sc.standalone_url, "--host", "127.0.0.1",
                                                 "--port", str(sc.worker_port), "--webui-port", str(sc.worker_ui_port),
                                                 "--cores", str(sc.worker_cores), "--memory", sc.worker_memory],
                                environment=env),
            probe=worker_probe, prepare=prepare, depends_on=[table.SPARK_MASTER],
        ),
    ]


def scorer_service(ctx: NativeContext) -> NativeService:
    from fraudctl.stream.status import FINAL_EXITS, LAUNCH_FILE, describe_health
    from fraudctl.clients.spark import scorer_dir, spark_environment

    config = ctx.config
    folder = scorer_dir(config)
    command = [str(ctx.venv_bin / "python"), str(jvm.PROJECT_ROOT / "jobs" / "scorer.py"),
               "--launch", str(folder / LAUNCH_FILE)]
    return table_service(
        ctx, table.SCORER,
        # SIGTERM to the driver alone: it stops the query between batches and then Spark's JVM. Signalled as a
        # group, the JVM would die under a running batch. A SIGKILL still takes the whole group.
        program=ctx.program(table.SCORER, command, environment={**spark_environment(), **objectstore.environment(ctx.storage)},
                            start_seconds=3, stop_as_group=False, exit_codes=FINAL_EXITS),
        probe=lambda: describe_health(folder),
        depends_on=[table.KAFKA, table.MLFLOW, *([table.OBJECTSTORE] if runs_objectstore(config) else [])],
        on_demand=True,
    )
