"""One micro-batch, start to end: decode and check, apply labels, compute features, score, publish, write
the lake, commit the state. `Scorer.process` is what the Spark job's foreachBatch calls."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraudctl.contracts import TRANSACTION_ID, TX_DATETIME, format_time
from fraudctl.lake import LABELS, TRANSACTIONS, Lake
from fraudctl.scoring.events import OFFSET, PARTITION, TOPIC, decode_labels, decode_transactions
from fraudctl.scoring.model import ModelHolder
from fraudctl.scoring.publish import Publisher, score_events
from fraudctl.scoring.state import FeatureState, Intent

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
    dead_letters: int = 0
    duplicates: int = 0  # transactions seen before (a replayed file, a re-sent event): scored again
    last_batch_id: int | None = None
    last_batch_rows: int = 0
    last_batch_seconds: float = 0.0
    batch_seconds: list[float] = field(default_factory=list)  # the last 100

    def as_dict(self) -> dict[str, Any]:
        recent = sorted(self.batch_seconds)
        data = {k: v for k, v in self.__dict__.items() if k != "batch_seconds"}
        data["batch_seconds_p50"] = recent[len(recent) // 2] if recent else None
        data["batch_seconds_max"] = recent[-1] if recent else None
        return data


class Scorer:
    def __init__(self, *, transactions_topic: str, labels_topic: str, state: FeatureState, models: ModelHolder,
                 publisher: Publisher, lake: Lake | None):
        self.transactions_topic = transactions_topic
        self.labels_topic = labels_topic
        self.state = state
        self.models = models
        self.publisher = publisher
        self.lake = lake
        self.counters = Counters()
        self.stopping = False

    def process(self, records: pa.Table, batch_id: int) -> None:
        if self.stopping:
            raise StopRequested(f"stopping: batch {batch_id} is left for the next start")
        started = time.perf_counter()
        if self.state.is_committed(batch_id):
            self.counters.skipped_batches += 1
            log.info("batch %d was committed before a restart: its output is out already, skipped", batch_id)
            return
        is_tx = pc.equal(records.column(TOPIC), self.transactions_topic) if records.num_rows else None
        txs = decode_transactions(records.filter(is_tx) if is_tx is not None else records)
        labels = decode_labels(records.filter(pc.invert(is_tx)) if is_tx is not None else records)
        rejects = pd.concat([txs.rejects, labels.rejects], ignore_index=True)
        # A transaction id seen before (in this batch, or within the state's history) is counted, not scored
        # again: its features would not change, and `scores` already has it.
        transactions = txs.events
        repeated = transactions[TRANSACTION_ID].duplicated(keep="first").to_numpy() | self.state.seen(transactions[TRANSACTION_ID])
        transactions = transactions[~repeated].sort_values([TX_DATETIME, TRANSACTION_ID], kind="stable")

        intent = self.state.intent(batch_id)
        model = self.models.pinned(intent.model_version) if intent else self.models.for_batch()
        if intent is None:
            intent = Intent(batch_id, model.version, format_time(pd.Timestamp.now(tz="UTC").floor("ms").to_pydatetime()))
            self.state.record_intent(intent)

        self.state.apply_labels(labels.events)  # a batch's labels count before its transactions
        featured = self.state.features(transactions)  # keeps the Kafka columns: the ingest time is published
        scores = model.score(featured)
        keys, values, alert = score_events(featured, scores, threshold=model.threshold, model_name=model.name,
                                           model_version=model.version, scored_time=intent.scored_time)
        self.publisher.send(keys, values, alert, rejects)
        self.publisher.flush()
        if self.lake is not None:
            kafka_position = [TOPIC, PARTITION, OFFSET]
            self.lake.write(TRANSACTIONS, batch_id, transactions.drop(columns=kafka_position), TX_DATETIME)
            self.lake.write(LABELS, batch_id, labels.events.drop(columns=kafka_position), TX_DATETIME)
        self.state.commit(batch_id, transactions)

        c = self.counters
        c.batches += 1
        c.transactions += len(transactions)
        c.labels += len(labels.events)
        c.scored += len(keys)
        c.alerts += int(alert.sum())
        c.dead_letters += len(rejects)
        c.duplicates += int(repeated.sum())
        c.last_batch_id = batch_id
        c.last_batch_rows = records.num_rows
        c.last_batch_seconds = time.perf_counter() - started
        c.batch_seconds = (c.batch_seconds + [c.last_batch_seconds])[-100:]
        if len(rejects):
            log.warning("batch %d: %d event(s) to the dead-letter topic, e.g. %s", batch_id, len(rejects),
                        rejects["reason"].iloc[0])
