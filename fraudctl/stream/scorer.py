"""One micro-batch, start to end: decode and check, apply labels, compute features, score, publish, write
the lake, commit the state. `Scorer.process` is what the Spark job's foreachBatch calls."""

from __future__ import annotations

import gc
import logging
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraudctl.contracts import TRANSACTION_ID, TX_DATETIME, format_time
from fraudctl.data.lake import LABELS, TRANSACTIONS, Lake
from fraudctl.stream.events import KAFKA_TIMESTAMP, OFFSET, PARTITION, TOPIC, decode_labels, decode_transactions
from fraudctl.stream.model import ModelHolder
from fraudctl.rules.ruleset import CompiledRules
from fraudctl.stream.publish import Publisher, score_events
from fraudctl.stream.reasons import alert_reasons, unexplained
from fraudctl.stream.rules import RulesHolder
from fraudctl.stream.state import FeatureState, Intent

log = logging.getLogger("fraudctl.scorer")


class StopRequested(Exception):
    """Raised instead of starting a batch once a stop was asked for: Spark then neither writes output nor
    commits the batch, and the next start runs it."""


@dataclass
class Counters:
    """What the scorer has done since it started (the status file shows them)."""

    batches: int = 0
    skipped_batches: int = 0  # re-runs of batches already committed (nothing sent twice)
    transactions: int = 0
    labels: int = 0
    scored: int = 0
    alerts: int = 0
    rule_alerts: int = 0  # alerts raised by active rules (the model's own not counted)
    suppressed: int = 0  # model alerts removed by suppress rules
    shadow_matches: int = 0  # score events naming at least one shadow rule
    unexplained_alerts: int = 0  # alerts past scorer.explained_alerts_per_batch: their reasons name rules only
    dead_letters: int = 0
    duplicates: int = 0  # transactions seen before (a replayed file, a re-sent event): scored again
    last_batch_id: int | None = None
    last_batch_rows: int = 0
    last_batch_seconds: float = 0.0
    batch_seconds: list[float] = field(default_factory=list)  # the last 100
    # Where the last batch's time went, in ms: read (Spark's Kafka read and Arrow transfer to the driver, when
    # the job measures it), decode, features (duplicates, intent, labels, features), score, encode, publish
    # (send and flush), wait (for the aside thread), commit (the state's rename and memory); beside them, in
    # the aside thread: lake and stage (the state's files).
    last_batch_phases_ms: dict[str, float] = field(default_factory=dict)
    last_batch_gc_ms: float = 0.0  # the garbage collector's pauses within the last batch, any thread's
    phases_ms: dict[str, list[float]] = field(default_factory=dict)  # the last 100 batches', per phase
    # The last batch with transactions: from each transaction's Kafka timestamp to its score acknowledged by
    # Kafka (p50, p99, max ms; the producers' clocks, on one machine the same). The status shows it beside
    # the counters, as `latency_ms`.
    latency_ms: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        recent = sorted(self.batch_seconds)
        data = {k: v for k, v in self.__dict__.items() if k not in ("batch_seconds", "phases_ms", "latency_ms")}
        data["batch_seconds_p50"] = recent[len(recent) // 2] if recent else None
        data["batch_seconds_max"] = recent[-1] if recent else None
        data["batch_phases_ms_p50"] = {name: round(sorted(values)[len(values) // 2], 1)
                                       for name, values in self.phases_ms.items() if values}
        return data

    def record_phases(self, phases: dict[str, float]) -> None:
        self.last_batch_phases_ms = {name: round(ms, 1) for name, ms in phases.items()}
        for name, ms in phases.items():
            self.phases_ms[name] = (self.phases_ms.get(name, []) + [ms])[-100:]


@dataclass
class _Output:
    """What a batch's output counts (Counters adds it up once the batch commits)."""

    scored: int
    alerts: int
    latency_ms: dict[str, float] | None  # None: the batch had no transactions
    rule_alerts: int = 0
    suppressed: int = 0
    shadow_matches: int = 0
    unexplained_alerts: int = 0


class Scorer:
    def __init__(self, *, transactions_topic: str, labels_topic: str, state: FeatureState, models: ModelHolder,
                 publisher: Publisher, lake: Lake | None, rules: RulesHolder | None = None,
                 explained_alerts_per_batch: int | None = None):
        self.rules = rules
        self.explained_alerts_per_batch = explained_alerts_per_batch  # None: every alert gets contributions
        self.transactions_topic = transactions_topic
        self.labels_topic = labels_topic
        self.state = state
        self.models = models
        self.publisher = publisher
        self.lake = lake
        self.counters = Counters()
        self.stopping = False
        self._aside = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fraudctl-aside")

    def process(self, records: pa.Table, batch_id: int, *, read_seconds: float | None = None) -> None:
        """One micro-batch; `read_seconds`: what the job spent getting `records` from Spark (a phase)."""
        if self.stopping:
            raise StopRequested(f"stopping: batch {batch_id} is left for the next start")
        started = time.perf_counter()
        clock = _PhaseClock(started)
        gc_before = _GC_PAUSES.total_ms
        if self.state.is_committed(batch_id):
            self.counters.skipped_batches += 1
            log.info("batch %d was committed before a restart: its output is out already, skipped", batch_id)
            return
        is_tx = pc.equal(records.column(TOPIC), self.transactions_topic) if records.num_rows else None
        txs = decode_transactions(records.filter(is_tx) if is_tx is not None else records)
        labels = decode_labels(records.filter(pc.invert(is_tx)) if is_tx is not None else records)
        rejects = pd.concat([txs.rejects, labels.rejects], ignore_index=True)
        clock.lap("decode")
        # A transaction id seen before (in this batch, or within the state's history) is counted, not scored
        # again: its features would not change, and `scores` already has it.
        transactions = txs.events
        repeated = transactions[TRANSACTION_ID].duplicated(keep="first").to_numpy() | self.state.seen(transactions[TRANSACTION_ID])
        transactions = transactions[~repeated].sort_values([TX_DATETIME, TRANSACTION_ID], kind="stable")

        intent = self.state.intent(batch_id)
        model = self.models.pinned(intent.model_version) if intent else self.models.for_batch()
        rules = None
        if self.rules is not None:
            rules = self.rules.pinned(intent.rules_version) if intent else self.rules.for_batch()
        if intent is None:
            intent = Intent(batch_id, model.version, format_time(pd.Timestamp.now(tz="UTC").floor("ms").to_pydatetime()),
                            rules.version if rules is not None else None, self.explained_alerts_per_batch)
            self.state.record_intent(intent)

        # The batch's own records go to the lake and to the state's staging files in a thread while it is
        # featured, scored and published (nothing computed here goes into them), off the latency's path.
        # Neither counts early: Spark commits the batch only once `process` returns, and the staged state
        # folder is renamed into place only after the output is flushed.
        aside = self._aside.submit(self._write_aside, batch_id, transactions, labels.events)
        try:
            out = self._score_and_publish(transactions, labels.events, rejects, model, rules, intent, clock)
        finally:
            futures.wait([aside])  # a re-run of this batch must not race this run's writes
        clock.lap("wait")
        aside_ms = aside.result()  # e.g. the lake unreachable: the batch fails and Spark re-runs it
        self.state.commit(batch_id, transactions, defer_snapshot=True)
        if self.state.snapshot_due:
            # The snapshot (the whole history to Arrow files: 50-170 ms for 370 k rows) in the aside thread,
            # while Spark commits this batch and reads the next one; the next batch's own files queue behind
            # it. Taken here, between two batches; it covers only folders of batches up to this one.
            # A failed snapshot loses nothing (the batch folders it would replace stay): logged, retried
            # `snapshot_every` batches later.
            self._aside.submit(self.state.write_snapshot, self.state.snapshot_parts()).add_done_callback(
                lambda done: done.exception() and log.error("the state's snapshot failed: %r", done.exception()))
        clock.lap("commit")

        c = self.counters
        c.batches += 1
        c.transactions += len(transactions)
        c.labels += len(labels.events)
        c.scored += out.scored
        c.alerts += out.alerts
        c.rule_alerts += out.rule_alerts
        c.suppressed += out.suppressed
        c.shadow_matches += out.shadow_matches
        c.unexplained_alerts += out.unexplained_alerts
        c.dead_letters += len(rejects)
        c.duplicates += int(repeated.sum())
        c.last_batch_id = batch_id
        c.last_batch_rows = records.num_rows
        c.last_batch_seconds = time.perf_counter() - started
        c.batch_seconds = (c.batch_seconds + [c.last_batch_seconds])[-100:]
        c.record_phases(({"read": read_seconds * 1000} if read_seconds is not None else {}) | clock.laps | aside_ms)
        c.last_batch_gc_ms = round(_GC_PAUSES.total_ms - gc_before, 1)
        if out.latency_ms is not None:
            c.latency_ms = out.latency_ms
        if len(rejects):
            log.warning("batch %d: %d event(s) to the dead-letter topic, e.g. %s", batch_id, len(rejects),
                        rejects["reason"].iloc[0])

    def _score_and_publish(self, transactions: pd.DataFrame, labels: pd.DataFrame, rejects: pd.DataFrame, model,
                           rules: CompiledRules | None, intent: Intent, clock: "_PhaseClock") -> "_Output":
        """Features, scores, rules, reasons, the output sent and acknowledged: what it counts, for the counters
        once the batch commits (a run that fails before counts nothing, as its re-run will)."""
        self.state.apply_labels(labels)  # a batch's labels count before its transactions
        featured = self.state.features(transactions)  # keeps the Kafka columns: the ingest time is published
        clock.lap("features")
        scores = model.score(featured)
        clock.lap("score")
        model_alert = np.asarray(scores, dtype="float64") >= model.threshold
        verdict = rules.verdict(featured, model_alert) if rules is not None and len(rules) else None
        alert = verdict.alert if verdict is not None else model_alert
        reasons = alert_reasons(model.estimator, featured, alert, verdict.matched if verdict is not None else None,
                                scores=scores, explain_at_most=intent.explained_alerts)
        clock.lap("rules")
        keys, values, alert = score_events(featured, scores, threshold=model.threshold, model_name=model.name,
                                           model_version=model.version, scored_time=intent.scored_time,
                                           alert=alert, shadow=verdict.shadow if verdict is not None else None,
                                           reasons=reasons)
        clock.lap("encode")
        if verdict is not None and verdict.over_cap and self.rules is not None:
            self.rules.report_over_cap(rules, verdict.over_cap)
        self.publisher.send(keys, values, alert, rejects)
        self.publisher.flush()
        clock.lap("publish")
        out = _Output(len(keys), int(alert.sum()), _latency_ms(featured), unexplained_alerts=unexplained(reasons))
        if verdict is not None:
            out.rule_alerts = int((verdict.alert & ~model_alert).sum())
            out.suppressed = int((model_alert & ~verdict.alert).sum())
            out.shadow_matches = sum(1 for names in verdict.shadow if names)
        if out.unexplained_alerts:
            log.warning("batch %d: %d alerts, feature contributions for the %d highest scores only "
                        "(scorer.explained_alerts_per_batch); the other %d name their rules only",
                        intent.batch_id, out.alerts, out.alerts - out.unexplained_alerts, out.unexplained_alerts)
        return out

    def _write_aside(self, batch_id: int, transactions: pd.DataFrame, labels: pd.DataFrame) -> dict[str, float]:
        """The lake files and the state's staged files of a batch (in the aside thread); their ms."""
        started = time.perf_counter()
        spent = {}
        if self.lake is not None:
            kafka_position = [TOPIC, PARTITION, OFFSET]
            self.lake.write(TRANSACTIONS, batch_id, transactions.drop(columns=kafka_position), TX_DATETIME)
            self.lake.write(LABELS, batch_id, labels.drop(columns=kafka_position), TX_DATETIME)
            spent["lake"] = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
        self.state.stage(batch_id, transactions, labels)
        spent["stage"] = (time.perf_counter() - started) * 1000
        return spent


class _GcPauses:
    """The garbage collector's pauses, summed (ms): the batch's phases show those inside it (any thread's:
    a collection stops every Python thread), to tell them apart from the batch's own work in a slow one."""

    def __init__(self):
        self.total_ms = 0.0
        self._started: dict[int, float] = {}

    def __call__(self, phase: str, _info: dict) -> None:
        now, thread = time.perf_counter(), threading.get_ident()
        if phase == "start":
            self._started[thread] = now
        elif thread in self._started:
            self.total_ms += (now - self._started.pop(thread)) * 1000


_GC_PAUSES = _GcPauses()
gc.callbacks.append(_GC_PAUSES)


class _PhaseClock:
    def __init__(self, started: float):
        self.laps: dict[str, float] = {}
        self._last = started

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = (now - self._last) * 1000
        self._last = now


def _latency_ms(featured: pd.DataFrame) -> dict[str, float] | None:
    """Kafka timestamp of each transaction -> now (its score just acknowledged): p50, p99, max in ms."""
    if not len(featured) or KAFKA_TIMESTAMP not in featured:
        return None
    stamps = featured[KAFKA_TIMESTAMP].to_numpy().astype("datetime64[ns]").astype("int64") / 1e6  # as published
    waited = np.sort(time.time() * 1000 - stamps)
    p50, p99 = (waited[min(len(waited) - 1, int(np.ceil(q * len(waited))) - 1)] for q in (0.5, 0.99))
    return {"p50": round(float(p50), 1), "p99": round(float(p99), 1), "max": round(float(waited[-1]), 1)}
