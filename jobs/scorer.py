"""The streaming scorer: a Spark Structured Streaming job from Kafka `transactions` and `labels` to
`scores`, `alerts` and `transactions.dlq`, with the lake on the side.

Started by `fraudctl scorer start` (under the native runtime's supervisord, or a container under compose)
as `python jobs/scorer.py --launch <state_dir>/scorer/launch.json`; the launch file holds the effective
configuration and the start options. Spark reads the two topics with its Kafka source and tracks offsets
in a checkpoint; each micro-batch reaches `fraudctl.stream.scorer.Scorer.process` on the driver as one
Arrow table (`foreachBatch`): features are vectorised pandas over the online state, which Python stateful
operators could not match on a small machine (README, "The streaming scorer").

SIGTERM or SIGINT stops the query between batches and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:  # run as a script: the package beside it
    sys.path.insert(0, str(PROJECT_ROOT))

from fraudctl.config import Config  # noqa: E402
from fraudctl.errors import ContractError, FraudctlError  # noqa: E402

log = logging.getLogger("fraudctl.scorer")
STATUS_EVERY_SECONDS = 1.0
STATE_SIZE_EVERY_SECONDS = 30.0
STOP_GRACE_SECONDS = 20.0  # below runtime.stop_timeout (30), after which supervisord kills
KAFKA_FETCH_MAX_WAIT_MS = 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launch", type=Path, required=True, help="launch file written by `fraudctl scorer start`")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "mlflow", "urllib3", "botocore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    launch = json.loads(args.launch.read_text())
    config = Config.model_validate(launch["config"])
    from fraudctl.stream.status import write_status
    from fraudctl.clients.spark import scorer_dir

    try:
        return run(config, master=launch.get("master"), wait_for_model=bool(launch.get("wait_for_model")))
    except FraudctlError as exc:
        log.error("%s%s", exc.message, f" ({exc.hint})" if exc.hint else "")
        write_status(scorer_dir(config), {"pid": os.getpid(), "state": "failed", "error": exc.message,
                                          "exit_code": int(exc.exit_code)})
        return int(exc.exit_code)
    except Exception as exc:
        log.exception("the scorer failed")
        write_status(scorer_dir(config), {"pid": os.getpid(), "state": "failed", "error": repr(exc), "exit_code": 1})
        return 1


class RegistrySource:
    """The champion's source for the scorer's core (a `fraudctl.stream.model.ModelSource`): the MLflow
    registry through fraudctl's registry client. Wired here, so the core knows no registry client."""

    def __init__(self, config, threshold_override: float | None = None):
        from fraudctl.model.registry import Registry

        self.registry = Registry(config)
        self.name = config.model.name
        self.threshold_override = threshold_override

    def resolve(self, alias: str) -> str | None:
        return self.registry.alias_version(alias)

    def load(self, version: str):
        from fraudctl.stream.model import LoadedModel

        self.registry.check_contract(version)
        threshold = self.threshold_override
        if threshold is None:
            threshold = self.registry.threshold(version)
            if threshold is None:
                raise ContractError(f"model {self.name} version {version} records no threshold "
                                    f"and scorer.threshold is not set")
        return LoadedModel(self.name, version, self.registry.load_model(version), float(threshold))


def run(config: Config, *, master: str | None, wait_for_model: bool) -> int:
    from fraudctl.clients.objectstore import environment
    from fraudctl.stream.model import ModelHolder
    from fraudctl.stream.status import write_status
    from fraudctl.clients.spark import build_session, scorer_dir

    os.environ.update(environment(config.storage))  # the launch file's storage: the runtime filled it in
    folder = scorer_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    stopping = threading.Event()

    def on_signal(signum, _frame):
        log.info("signal %d: stopping after the current micro-batch", signum)
        stopping.set()
        holder.stop()
        rules.stop()
        if scorer is not None:
            scorer.stopping = True

    scorer = None
    started_at = time.time()
    base = {"pid": os.getpid(), "started_at": started_at, "master": master or config.spark.master}
    holder = ModelHolder(RegistrySource(config, config.scorer.threshold),
                         refresh_seconds=config.scorer.model_refresh_seconds)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    write_status(folder, {**base, "state": "waiting for a model" if wait_for_model else "loading the model"})
    model = holder.start(wait_for_model=wait_for_model)
    log.info("scoring with %s version %s (threshold %.4f)", model.name, model.version, model.threshold)

    rules = _rules_holder(config)
    rules.start()
    log.info("rule set version %s: %s", rules.current.version, rules.describe())
    state = _open_state(config, folder)
    scorer = _make_scorer(config, state, holder, rules)

    write_status(folder, {**base, "state": "starting Spark", "model": holder.describe()})
    spark = build_session(config, master=master)

    def for_each_batch(frame, batch_id: int) -> None:
        started = time.perf_counter()
        records = frame.toArrow()  # the batch's one Spark job: Kafka read, then Arrow to the driver
        scorer.process(records, batch_id, read_seconds=time.perf_counter() - started)

    query = (_kafka_stream(spark, config).writeStream.queryName("fraudctl-scorer")
             .foreachBatch(for_each_batch)
             .option("checkpointLocation", str(folder / "checkpoint"))
             .trigger(processingTime=f"{config.scorer.trigger_seconds} seconds")
             .start())
    log.info("query %s started on %s", query.id, master or config.spark.master)

    exit_code = 0
    try:
        exit_code = _report_while_running(query, stopping, folder, base, holder, scorer, state)
    finally:
        _stop(query, folder, base, holder, scorer, exit_code)
        spark.stop()
    log.info("stopped (exit %d)", exit_code)
    return exit_code


def _open_state(config: Config, folder: Path):
    """The feature state under `folder`, as the Spark checkpoint beside it left it."""
    from fraudctl.features import FeatureSpec
    from fraudctl.stream.state import FeatureState

    if not (folder / "checkpoint").exists() and (folder / "state").exists():
        # Spark numbers batches from 0 again without its checkpoint: a state fenced by the old numbers
        # would skip them all. The two go together; the state is rebuilt from what the topics still hold.
        log.warning("no Spark checkpoint in %s: discarding the feature state that went with it", folder)
        shutil.rmtree(folder / "state")
    state = FeatureState(folder / "state", FeatureSpec(delay_days=config.model.label_delay_days),
                         snapshot_every=config.scorer.snapshot_every)
    log.info("feature state: %s, last committed batch %d", state.size(), state.last_batch_id)
    return state


def _rules_holder(config: Config):
    """The rules from the stack's PostgreSQL; the password from the launch file (0600), never an argument."""
    from fraudctl.rules.store import PostgresRuleStore
    from fraudctl.stream.rules import RulesHolder

    password = config.postgres.password.get_secret_value() if config.postgres.password else ""
    return RulesHolder(PostgresRuleStore(config.postgres, password), refresh_seconds=config.scorer.rules_refresh_seconds)


def _make_scorer(config: Config, state, holder, rules):
    from fraudctl.data.lake import lake_for
    from fraudctl.stream.publish import Publisher
    from fraudctl.stream.scorer import Scorer

    topics = config.kafka.topics
    return Scorer(
        transactions_topic=topics.transactions.name, labels_topic=topics.labels.name, state=state, models=holder,
        publisher=Publisher(config.kafka, scores_topic=topics.scores.name, alerts_topic=topics.alerts.name,
                            dlq_topic=topics.dlq.name, linger_ms=config.scorer.linger_ms,
                            flush_timeout=config.scorer.flush_timeout),
        lake=lake_for(config, config.storage) if config.scorer.lake else None, rules=rules,
        explained_alerts_per_batch=config.scorer.explained_alerts_per_batch,
    )


def _kafka_stream(spark, config: Config):
    """The two input topics as a streaming frame of Kafka records."""
    sc, topics = config.scorer, config.kafka.topics
    return (spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", config.kafka.bootstrap_servers)
            .option("subscribe", f"{topics.transactions.name},{topics.labels.name}")
            .option("startingOffsets", sc.starting_offsets)
            .option("maxOffsetsPerTrigger", str(sc.max_offsets_per_trigger))
            .option("kafkaConsumer.pollTimeoutMs", str(sc.poll_timeout_ms))
            # A task's consumer (cached from the last batch) may still have a fetch in flight for an offset
            # it no longer wants; the broker holds that fetch up to fetch.max.wait.ms (500 ms by default)
            # when no newer record arrives, and the task waits for it: whole batches took 0.5-1.6 s more,
            # and a 10 ms wait still cost 10-20 ms a batch. Records a batch asks for exist already (below
            # the end offsets its trigger saw), so not waiting at all costs nothing; consumers fetch only
            # inside a task's poll, so an idle scorer does not spin.
            .option("kafka.fetch.max.wait.ms", str(KAFKA_FETCH_MAX_WAIT_MS))
            .option("failOnDataLoss", "false")  # retention may drop unread records: score what is left
            .load()
            .select("topic", "partition", "offset", "timestamp", "key", "value"))


def _report_while_running(query, stopping: threading.Event, folder: Path, base: dict, holder, scorer,
                          state) -> int:
    """Write the status every STATUS_EVERY_SECONDS until asked to stop (0) or the query fails (1)."""
    from fraudctl.stream.status import lag_per_partition, processed_offsets, write_status

    state_size, sized_at = state.size(), time.monotonic()
    spark_ms = None  # Spark's phases of the last batch with input seen by the status loop
    while not stopping.is_set():
        try:
            query.awaitTermination(STATUS_EVERY_SECONDS)
        except Exception:  # the query ended with an error: reported just below
            pass
        if not query.isActive:
            if stopping.is_set():  # ended by StopRequested
                break
            log.error("the query stopped: %s", query.exception())
            return 1
        if time.monotonic() - sized_at > STATE_SIZE_EVERY_SECONDS:
            state_size, sized_at = state.size(), time.monotonic()
        progress = _last_progress(query)
        if progress.get("numInputRows"):
            spark_ms = {"batch_id": progress.get("batchId"), **(progress.get("durationMs") or {})}
        write_status(folder, {
            **base, "state": "running", "query_id": str(query.id), "model": holder.describe(),
            "rules": scorer.rules.describe(), "degraded": holder.degraded or scorer.rules.degraded, "counters": scorer.counters.as_dict(),
            "latency_ms": scorer.counters.latency_ms, "spark_ms": spark_ms,
            "input_rows_per_second": progress.get("inputRowsPerSecond"),
            "processed_rows_per_second": progress.get("processedRowsPerSecond"),
            "batch_duration_ms": (progress.get("durationMs") or {}).get("triggerExecution"),
            "lag": lag_per_partition(progress), "offsets": processed_offsets(progress),
            "state_size": state_size,
        })
    return 0


def _stop(query, folder: Path, base: dict, holder, scorer, exit_code: int) -> None:
    from fraudctl.stream.status import write_status

    holder.stop()
    scorer.rules.stop()
    scorer.stopping = True
    # Let a running batch finish (its output and commit), then stop; a batch that would start now
    # raises StopRequested instead, before any output.
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(0.1)
    if query.isActive:
        query.stop()
    write_status(folder, {**base, "state": "stopped", "exit_code": exit_code, "model": holder.describe(),
                          "counters": scorer.counters.as_dict()})


def _last_progress(query) -> dict:
    """The query's last progress (durationMs: latestOffset, queryPlanning, walCommit, addBatch = foreachBatch,
    commitOffsets, triggerExecution = the whole trigger; sources with their offsets), read as one JSON string.

    pyspark's `lastProgress`, and a Python query listener for every trigger, build it from the JVM object field
    by field: about a hundred py4j calls, which take the CPU and the GIL from the running batch (with a
    listener, in four back-to-back pairs of runs at 1 000 tx/s, the Kafka read took 20-70 ms longer and p99
    latency was 130-500 ms higher)."""
    progress = query._jsq.lastProgress()  # no public accessor gives the JSON
    return json.loads(progress.json()) if progress is not None else {}


if __name__ == "__main__":
    sys.exit(main())
