"""Streaming scorer benchmark: sustained throughput, end-to-end latency at paced input, and promotion -> first
score by the new version, on a native stack of its own (issue 10, "Benchmarks").

    .venv/bin/python bench/bench_scorer.py [--quick] [--variants] [--lean] [--rows N] [--rules 0 20 100] [--keep-dir]

What it does, on ports default + 500 (or + $BENCH_PORT_OFFSET) with its state in a temporary folder:

1. Set-up: `fraudctl up` (the whole stack: the issue asks for figures "with the rest of the stack up"; --lean
   stops Airflow and Flower), `fraudctl generate` (60 days, 5 000 customers, 10 000 terminals; --quick: 21 days,
   1 000 customers, 2 000 terminals; 10 days more, quick 5, for each latency run past the first), `fraudctl
   train --data` and `fraudctl promote V1 --yes --force` for a champion, and a second version V2 (logistic
   regression, quick to train) registered for step 4.
2. Sustained throughput: `fraudctl replay FILE --limit N` (transactions and their labels) into Kafka first, then
   for each `scorer.max_offsets_per_trigger` tried: `scorer stop`, the scorer's checkpoint and feature state
   wiped (so every trial reads the same events from the start into an empty state), the value written to the
   config file, `scorer start`, and the scorer's own counters (its status file, the one `scorer status -o json`
   reads, rewritten every second) watched until every event is processed. The rate is measured from the end of
   the first batch (which carries the query's start-up) to the last: transactions/s and events/s (tx + labels).
   Batch durations: the foreachBatch part (`counters.batch_seconds_*`: decode, features, model, publish, lake,
   commit) and Spark's whole trigger (`batch_duration_ms` of the query's last progress, sampled once a second).
3. Latency: with the scorer caught up and warmed (a few seconds of paced input after each start, not
   measured: a fresh query's first batches with data are slow), `fraudctl replay FILE --rate R --skip S --limit L --no-labels` of rows
   not replayed before; latency = the score record's Kafka timestamp - the transaction record's Kafka
   timestamp (both CreateTime, the producers' clocks on this machine), matched by transaction_id, read with
   confluent-kafka from the offsets taken before the run. The replay producer's linger (replay.linger_ms,
   50 ms by default) is inside that figure, as it would be for any producer. Labels are left out of paced runs
   (a short run's labels are due after its last transaction and would only arrive as a burst at the end).
   Each run also prints where a batch's time went: the median and max ms of each phase over the sampled
   batches, the scorer's own (status `counters.last_batch_phases_ms`: read = Spark's Kafka read and Arrow
   transfer, decode, features, score, encode, publish, wait, commit; lake and stage run beside them in a
   thread; gc = the garbage collector's pauses within the batch, status `counters.last_batch_gc_ms`) and Spark's
   (status `spark_ms`: latestOffset, walCommit, queryPlanning, addBatch = the foreachBatch call, commitOffsets,
   triggerExecution = the whole trigger). The status is sampled, so it misses batches; the records do not:
   every output batch, told apart by its scores' `scored_time`, with how long its transactions gathered
   (first to last Kafka timestamp: about the previous batch's time), how long from its last transaction to its
   first score (about its own), the gap between two batches' scores, and the worst batch (a latency is about
   gathering + to score; the worst shows whether the tail is one slow batch or many, and when in the run).
   --variants also tries scorer.trigger_seconds 0.5 and scorer.linger_ms 20 (a scorer restart each).
   --rules N [N ...] runs the throughput trials and the latency runs once per count of active rules (issue 22),
   each a set of bench/bench_rules.py's templates written to the stack's rule store before the trial (for the
   latency runs, hot-loaded: the run waits until the scorer's status shows the set's version), with alert reasons
   on (they always are); it prints the share of transactions that alerted, since reasons cost per alert.
4. Promotion: during a paced replay, `fraudctl promote V2 --yes --force`; from the command's return to the
   Kafka timestamp of the first `scores` record with model_version V2 (scorer.model_refresh_seconds, 5 s by
   default, is the period at which the scorer re-resolves @champion).

Prints figures only; never asserts on time. The machine is small and may be shared: figures are noisy.
The stack is stopped with `down --purge` at the end, also on an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing

FRAUDCTL = [sys.executable, "-m", "fraudctl"]
PORT_OFFSET = int(os.environ.get("BENCH_PORT_OFFSET", "500"))
LEAN_STOP = ("airflow-", "flower")  # --lean: services stopped after `up` (the scorer needs Kafka and MLflow)


@dataclass
class Plan:
    days: int
    customers: int
    terminals: int
    train_args: list[str]
    rows: int  # transactions replayed for the throughput trials
    max_offsets: list[int]
    rates: list[int]
    paced_seconds: float
    promote_rate: int
    promote_seconds: float
    promote_after: float  # seconds into the paced replay when V2 is promoted
    variants: list[dict[str, Any]]  # scorer settings for the latency runs
    warm_up_seconds: float  # paced input after each scorer start, not measured
    catch_up_timeout: float
    rules: list[int]  # counts of active rules to run the throughput and latency figures with


def make_plan(args: argparse.Namespace) -> Plan:
    base_variant = {"trigger_seconds": 0.0, "linger_ms": 5}
    variants = [base_variant]
    if args.variants:
        variants += [{"trigger_seconds": 0.5, "linger_ms": 5}, {"trigger_seconds": 0.0, "linger_ms": 20}]
    # Every extra latency run (a variant, a count of rules) replays rows not replayed before: a default data
    # set grows by the days those take (quick: ~1 900 transactions a day, ~9 000 a run; full: ~9 700 and ~95 000).
    extra_runs = len(variants) * len(args.rules) - 1
    if args.quick:
        return Plan(days=args.days or 21 + 5 * extra_runs, customers=1000, terminals=2000,
                    train_args=["--validation-days", "0"], rows=args.rows or 10_000,
                    max_offsets=args.max_offsets or [5_000], rates=args.rates or [500, 1000],
                    paced_seconds=args.paced_seconds or 5, promote_rate=500, promote_seconds=30, promote_after=3,
                    variants=variants, catch_up_timeout=240, warm_up_seconds=3, rules=args.rules)
    return Plan(days=args.days or 60 + 10 * extra_runs, customers=5000, terminals=10000, train_args=[], rows=args.rows or 230_000,
                max_offsets=args.max_offsets or [50_000, 100_000, 200_000], rates=args.rates or [1000, 5000],
                paced_seconds=args.paced_seconds or 15, promote_rate=1000, promote_seconds=60, promote_after=5,
                variants=variants, catch_up_timeout=600, warm_up_seconds=5, rules=args.rules)


class Bench:
    def __init__(self, folder: Path, plan: Plan, lean: bool):
        from bench.support import write_shifted_config

        self.folder = folder
        self.plan = plan
        self.lean = lean
        self.config_path = write_shifted_config(folder, PORT_OFFSET, runtime={"stop_timeout": 30})
        self.data = folder / "transactions.csv"
        self.figures: list[tuple[str, str]] = []  # (what, figure) for the final table
        self.notes: list[str] = []
        self.background: subprocess.Popen | None = None
        self.next_row = 0  # first data row not yet replayed
        self.v1 = self.v2 = ""

    # -- helpers ----------------------------------------------------------------------------------------------
    @property
    def config(self):
        from fraudctl.config import load_config

        return load_config(self.config_path, env={})

    def run(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*FRAUDCTL, "-c", str(self.config_path), *args], capture_output=True, text=True,
                              timeout=timeout, cwd=REPO)
        if check and done.returncode != 0:
            raise RuntimeError(f"fraudctl {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done

    def json_of(self, *args: str, timeout: float = 900) -> dict[str, Any]:
        return json.loads(self.run(*args, "-o", "json", timeout=timeout).stdout)

    def say(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def figure(self, what: str, value: str) -> None:
        self.figures.append((what, value))
        print(f"    {what}: {value}", flush=True)

    def set_scorer(self, **values: Any) -> None:
        data = yaml.safe_load(self.config_path.read_text())
        data["scorer"] = {**data.get("scorer", {}), **values}
        self.config_path.write_text(yaml.safe_dump(data))

    def scorer_folder(self) -> Path:
        from fraudctl.clients.spark import scorer_dir

        return scorer_dir(self.config)

    def status(self) -> dict[str, Any]:
        from fraudctl.stream.status import read_status

        return read_status(self.scorer_folder()) or {}

    def end_offsets(self, topic: str) -> dict[int, int]:
        from fraudctl.clients.kafka import end_offsets

        return end_offsets(self.config.kafka, topic)

    # -- set-up -----------------------------------------------------------------------------------------------
    def set_up(self) -> None:
        p = self.plan
        self.say(f"fraudctl up (native, ports +{PORT_OFFSET}, state in {self.folder}) ...")
        started = time.perf_counter()
        self.run("up", "-o", "json", timeout=900)
        self.figure("stack up", f"{time.perf_counter() - started:.0f} s")
        if self.lean:
            from fraudctl.stack.supervisor import Supervisor

            supervisor = Supervisor(self.config.state_dir)
            for info in supervisor.rpc().supervisor.getAllProcessInfo():
                if info["name"].startswith(LEAN_STOP):
                    supervisor.stop(info["name"])
            self.notes.append("--lean: Airflow and Flower stopped during the benchmark")

        self.say(f"fraudctl generate --days {p.days} --customers {p.customers} --terminals {p.terminals}")
        generated = self.json_of("generate", "--days", str(p.days), "--customers", str(p.customers),
                                 "--terminals", str(p.terminals), "-O", str(self.data))
        self.total_rows = int(generated["rows"])
        runs = len(p.variants) * len(p.rules)
        needed = p.rows + runs * sum(int(r * p.paced_seconds) for r in p.rates) \
            + int(p.promote_rate * p.promote_seconds) + (runs + 1) * int(p.rates[0] * p.warm_up_seconds)
        self.figure("data set", f"{self.total_rows:,} transactions over {p.days} days "
                                f"({p.customers:,} customers, {p.terminals:,} terminals); the runs use {needed:,}")
        if needed > self.total_rows:
            raise SystemExit(f"the runs need {needed:,} rows but the data set has {self.total_rows:,}: "
                             f"raise --days or lower --rows / --paced-seconds")

        self.say("fraudctl train --data (V1, the default estimator) ...")
        started = time.perf_counter()
        trained = self.json_of("train", "--data", str(self.data), *p.train_args, timeout=1800)
        self.v1 = str(trained["registered"]["version"])
        self.figure(f"train V1 ({trained.get('estimator')})", f"{time.perf_counter() - started:.0f} s")
        self.run("promote", self.v1, "--yes", "--force", "-o", "json")
        self.say("fraudctl train --data --estimator logistic_regression (V2, for the promotion run) ...")
        trained = self.json_of("train", "--data", str(self.data), *p.train_args, "--estimator",
                               "logistic_regression", timeout=1800)
        self.v2 = str(trained["registered"]["version"])
        self.say(f"champion: version {self.v1}; V2 = version {self.v2} (@challenger)")

    # -- scorer control ---------------------------------------------------------------------------------------
    def scorer_start(self, **settings: Any) -> float:
        if settings:
            self.set_scorer(**settings)
        started = time.perf_counter()
        self.run("scorer", "start", "-o", "json", timeout=900)
        return time.perf_counter() - started

    def scorer_stop(self) -> None:
        self.run("scorer", "stop", "-o", "json", timeout=300, check=False)

    def wipe_scorer(self) -> None:
        """Forget what the scorer has read and learnt: the next start reads the topics from the beginning into an
        empty feature state."""
        folder = self.scorer_folder()
        for name in ("checkpoint", "state"):
            shutil.rmtree(folder / name, ignore_errors=True)

    def wait_counters(self, done, timeout: float, what: str) -> list[dict[str, Any]]:
        """Poll the status file until done(status) holds; returns every distinct status seen."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            current = self.status()
            if current.get("updated_at") and (not seen or current["updated_at"] != seen[-1]["updated_at"]):
                seen.append(current)
                if current.get("state") == "failed":
                    raise RuntimeError(f"the scorer failed: {current.get('error')}")
                if done(current):
                    return seen
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not done after {timeout:.0f} s; last status: "
                                   f"{json.dumps(current.get('counters'))}")
            time.sleep(0.2)

    def wait_caught_up(self, timeout: float) -> dict[str, Any]:
        """Until the last progress shows no lag and the counters stay still for 3 s."""
        last: tuple | None = None
        still_since = time.monotonic()
        deadline = time.monotonic() + timeout
        while True:
            current = self.status()
            counters = current.get("counters") or {}
            key = (counters.get("transactions"), counters.get("labels"), counters.get("batches"))
            lag = sum(sum(parts.values()) for parts in (current.get("lag") or {}).values())
            if key != last:
                last, still_since = key, time.monotonic()
            if current.get("state") == "running" and lag == 0 and time.monotonic() - still_since >= 3:
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(f"the scorer did not catch up within {timeout:.0f} s (lag {lag})")
            time.sleep(0.25)

    # -- 2. throughput ----------------------------------------------------------------------------------------
    def throughput(self) -> None:
        p = self.plan
        self.say(f"replaying {p.rows:,} rows with labels into Kafka (no scorer yet) ...")
        summary = self.json_of("replay", str(self.data), "--limit", str(p.rows), timeout=1800)
        self.next_row = p.rows
        tx, labels = int(summary["transactions"]), int(summary["labels"])
        events = tx + labels
        self.figure("replay into Kafka (no scorer)", f"{tx:,} tx + {labels:,} labels in "
                                                     f"{summary['wall_seconds']:.1f} s")
        for max_offsets, rules in [(m, r) for r in p.rules for m in p.max_offsets]:
            self.scorer_stop()
            self.wipe_scorer()
            with_rules = self.set_rules(rules)
            self.say(f"throughput, scorer.max_offsets_per_trigger={max_offsets:,}{with_rules}: scorer start ...")
            t_start = time.time()
            start_seconds = self.scorer_start(max_offsets_per_trigger=max_offsets, trigger_seconds=0.0,
                                              linger_ms=5)
            processed = lambda s: sum((s.get("counters") or {}).get(k, 0)  # noqa: E731
                                      for k in ("transactions", "labels", "duplicates", "dead_letters"))
            seen = self.wait_counters(lambda s: processed(s) >= events, p.catch_up_timeout,
                                      f"scoring {events:,} events")
            first = next(s for s in seen if (s.get("counters") or {}).get("batches", 0) >= 1)
            last = seen[-1]
            c1, c2 = first["counters"], last["counters"]
            seconds = float(last["updated_at"]) - float(first["updated_at"])
            label = f"throughput max_offsets={max_offsets:,}{with_rules}"
            spark_ms = _trigger_ms(seen)
            batches = c2["batches"]
            if seconds > 0 and c2["batches"] > c1["batches"]:
                tx_rate = (c2["scored"] - c1["scored"]) / seconds
                ev_rate = (processed(last) - processed(first)) / seconds
                rate_text = f"{tx_rate:,.0f} tx/s, {ev_rate:,.0f} events/s"
            else:
                rate_text = "n/a (everything in the first batch)"
            self.figure(label, f"{rate_text} over {batches} batches "
                               f"(first batch {c1['scored']:,} tx excluded; {seconds:.1f} s)")
            self.figure(f"  start -> all {events:,} events processed",
                        f"{float(last['updated_at']) - t_start:.1f} s (scorer start returned after "
                        f"{start_seconds:.1f} s)")
            self.figure("  batch time, foreachBatch part (p50 / max)",
                        f"{_fmt_s(c2.get('batch_seconds_p50'))} / {_fmt_s(c2.get('batch_seconds_max'))}")
            if spark_ms:
                self.figure(f"  batch time, Spark trigger ({len(spark_ms)} of {batches} sampled; p50 / max)",
                            f"{statistics.median(spark_ms) / 1000:.2f} s / {max(spark_ms) / 1000:.2f} s")
            if len(p.rules) > 1 or rules:
                self.figure("  alerted (rules and model)", f"{c2.get('alerts', 0) / max(1, c2['scored']):.2%} of "
                                                           f"{c2['scored']:,} scored; {c2.get('unexplained_alerts', 0):,} "
                                                           "without contributions (over scorer.explained_alerts_per_batch)")
            if c2.get("dead_letters") or c2.get("duplicates"):
                self.notes.append(f"{label}: {c2.get('dead_letters')} dead letters, {c2.get('duplicates')} duplicates")

    # -- 3. latency -------------------------------------------------------------------------------------------
    def latency(self) -> None:
        p = self.plan
        for variant in p.variants:
            self.scorer_stop()
            self.say(f"latency runs with scorer {variant}: scorer start ...")
            self.scorer_start(max_offsets_per_trigger=100_000, **variant)
            self.wait_caught_up(p.catch_up_timeout)
            for rules in p.rules:
                self.paced_runs(variant, rules)

    def paced_runs(self, variant: dict[str, Any], rules: int) -> None:
        """The paced runs at each rate with `rules` active rules, hot-loaded into the running scorer."""
        p = self.plan
        with_rules = self.set_rules(rules)
        if with_rules:
            version = self.rule_store().version()
            self.wait_counters(lambda s: (s.get("rules") or {}).get("version") == version, 60,
                               f"the scorer taking rule set version {version}")
        self.warm_up()
        for rate in p.rates:
            limit = int(rate * p.paced_seconds)
            name = (f"latency {rate:,} tx/s, trigger {variant['trigger_seconds']} s, linger {variant['linger_ms']} ms"
                    f"{with_rules}")
            self.say(f"{name}: replay --rate {rate} --skip {self.next_row:,} --limit {limit:,}")
            first = self.status()
            before = first.get("counters", {}).get("last_batch_id")
            scored_before = first.get("counters", {}).get("scored", 0)
            start = self._offsets()
            summary, during = self.replay_sampling(rate, limit)
            sent = int(summary["transactions"])
            seen = during + self.wait_counters(
                lambda s: s.get("counters", {}).get("scored", 0) >= scored_before + sent, p.catch_up_timeout, name)
            seen = [s for s in seen if (s.get("counters") or {}).get("last_batch_id") != before]
            matched, missing = self._latencies(start)
            latencies = [score_ms - sent_ms for sent_ms, score_ms, _ in matched]
            achieved = sent / summary["wall_seconds"] if summary.get("wall_seconds") else math.nan
            if latencies:
                q = _quantiles(latencies)
                self.figure(name, f"p50 {q[50]:.0f} ms, p95 {q[95]:.0f} ms, p99 {q[99]:.0f} ms, "
                                  f"max {max(latencies):.0f} ms ({len(latencies):,} tx, sent at "
                                  f"{achieved:,.0f}/s{f', {missing} unmatched' if missing else ''})")
            else:
                self.figure(name, f"no matched records ({missing} unmatched)")
            spark, own = _trigger_ms(seen), _batch_seconds(seen)
            batches = (seen[-1].get("counters", {}).get("batches", 0) - first.get("counters", {}).get("batches", 0)
                       if seen else 0)
            self.figure(f"  batch time ({len(own)} of {batches} batches sampled), foreachBatch / Spark trigger",
                        f"p50 {_median_s(own)} / {_median_s(spark, 1000)}, "
                        f"max {_max_s(own)} / {_max_s(spark, 1000)}")
            phases = _phases(seen)
            if phases:
                self.figure("  where a batch's time went (p50/max ms over the sampled batches)", phases)
            if matched:
                self.figure("  every output batch, from the records (p50/max ms)", _output_batches(matched))
            if with_rules and seen:
                alerts = seen[-1].get("counters", {}).get("alerts", 0) - first.get("counters", {}).get("alerts", 0)
                unexplained = seen[-1].get("counters", {}).get("unexplained_alerts", 0) \
                    - first.get("counters", {}).get("unexplained_alerts", 0)
                self.figure("  alerted (rules and model)", f"{alerts / max(1, sent):.2%} of {sent:,} sent; "
                                                           f"{unexplained:,} without contributions")

    # -- rules ------------------------------------------------------------------------------------------------
    def rule_store(self):
        from fraudctl.operate.connect import rule_store

        return rule_store(self.config)

    def set_rules(self, count: int) -> str:
        """Make the store's active rules exactly `count` of bench_rules' set; the figures' label suffix."""
        if self.plan.rules == [0]:
            return ""  # no --rules: the store is left alone, the labels as before issue 22
        from bench.bench_rules import make_rules

        store, wanted = self.rule_store(), make_rules(count)
        names = {rule.name for rule in wanted}
        for rule in store.current().rules:
            if rule.name not in names:
                store.remove(rule.name, author="bench")
        if wanted:
            store.add(wanted, author="bench", replace_existing=True)
        return f", {count} rules"

    def replay_sampling(self, rate: int, limit: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A paced replay of the next `limit` rows, the scorer's status sampled while it runs."""
        replay = subprocess.Popen(
            [*FRAUDCTL, "-c", str(self.config_path), "replay", str(self.data), "--rate", str(rate),
             "--skip", str(self.next_row), "--limit", str(limit), "--no-labels", "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        self.background = replay
        seen: list[dict[str, Any]] = []
        while replay.poll() is None:
            current = self.status()
            if current.get("updated_at") and (not seen or current["updated_at"] != seen[-1]["updated_at"]):
                seen.append(current)
            time.sleep(0.2)
        out, err = replay.communicate()
        self.background = None
        if replay.returncode != 0:
            raise RuntimeError(f"the paced replay failed ({replay.returncode}): {err[-2000:]}")
        self.next_row += limit
        return json.loads(out), seen

    def warm_up(self) -> None:
        """A few seconds of paced input, not measured: a fresh query's first batches with data run slower."""
        p = self.plan
        rate, limit = p.rates[0], int(p.rates[0] * p.warm_up_seconds)
        before = self.status().get("counters", {}).get("scored", 0)
        summary = self.json_of("replay", str(self.data), "--rate", str(rate), "--skip", str(self.next_row),
                               "--limit", str(limit), "--no-labels", timeout=1800)
        self.next_row += limit
        sent = int(summary["transactions"])
        self.wait_counters(lambda s: s.get("counters", {}).get("scored", 0) >= before + sent, p.catch_up_timeout,
                           "warm-up")

    def _offsets(self) -> dict[str, dict[int, int]]:
        topics = self.config.kafka.topics
        return {t: self.end_offsets(t) for t in (topics.transactions.name, topics.scores.name)}

    def _latencies(self, start: dict[str, dict[int, int]]) -> tuple[list[tuple[int, int, str]], int]:
        """(the transaction's Kafka timestamp, its first score's, the score's `scored_time` = its micro-batch)
        for each transaction sent since `start`, and how many have no score."""
        from fraudctl.contracts import SCORED_TIME

        topics = self.config.kafka.topics
        tx_topic, scores_topic = topics.transactions.name, topics.scores.name
        sent: dict[str, int] = {}
        for _, value, ts in self._consume(tx_topic, start[tx_topic]):
            sent[json.loads(value)["transaction_id"]] = ts
        scored: dict[str, tuple[int, str]] = {}
        for key, value, ts in self._consume(scores_topic, start[scores_topic]):
            tid = key.decode()
            if tid in sent and (tid not in scored or ts < scored[tid][0]):
                # the first score of a transaction (a re-run batch may send it twice)
                scored[tid] = ts, json.loads(value)[SCORED_TIME]
        matched = [(sent[t], *scored[t]) for t in sent if t in scored]
        return matched, len(sent) - len(matched)

    def _consume(self, topic: str, start: dict[int, int], timeout: float = 120):
        """(key, value, timestamp ms) of every record from `start` to the current end offsets."""
        from confluent_kafka import Consumer, TopicPartition

        from fraudctl.clients.kafka import client_config

        end = self.end_offsets(topic)
        wanted = {p: end[p] for p in end if end[p] > start.get(p, 0)}
        if not wanted:
            return
        consumer = Consumer(client_config(self.config.kafka, **{
            "group.id": "fraudctl-bench-scorer", "enable.auto.commit": False, "fetch.max.bytes": 52_428_800}))
        try:
            consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in wanted])
            left = sum(end[p] - start.get(p, 0) for p in wanted)
            deadline = time.monotonic() + timeout
            while left > 0 and time.monotonic() < deadline:
                for message in consumer.consume(10_000, timeout=1.0):
                    if message.error() or message.offset() >= wanted.get(message.partition(), -1):
                        continue
                    left -= 1
                    yield message.key(), message.value(), message.timestamp()[1]
        finally:
            consumer.close()

    # -- 4. promotion -----------------------------------------------------------------------------------------
    def promotion(self) -> None:
        p = self.plan
        self.scorer_stop()
        self.say(f"promotion: scorer start (defaults), paced replay at {p.promote_rate}/s, promote V2 "
                 f"(version {self.v2}) after {p.promote_after:.0f} s ...")
        self.scorer_start(max_offsets_per_trigger=100_000, trigger_seconds=0.0, linger_ms=5)
        self.wait_caught_up(p.catch_up_timeout)
        self.warm_up()
        import fraudctl.model.registry  # noqa: F401 - MLflow's import, before the measured part

        refresh = self.config.scorer.model_refresh_seconds
        scores_topic = self.config.kafka.topics.scores.name
        start = self.end_offsets(scores_topic)
        before = self.status().get("counters", {}).get("scored", 0)
        limit = int(p.promote_rate * p.promote_seconds)  # at most: stopped once the scorer has swapped
        self.background = subprocess.Popen(
            [*FRAUDCTL, "-c", str(self.config_path), "replay", str(self.data), "--rate", str(p.promote_rate),
             "--skip", str(self.next_row), "--limit", str(limit), "--no-labels", "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        time.sleep(p.promote_after)
        moved = AliasWatch(self.config, self.v2)  # when @champion actually moves (promote does more around it)
        t0, called_ms = time.perf_counter(), time.time() * 1000
        try:
            self.run("promote", self.v2, "--yes", "--force", "-o", "json")
        finally:
            moved_ms = moved.stop(wait=5.0)
        promote_seconds = time.perf_counter() - t0
        returned_ms = time.time() * 1000
        # Keep the input flowing until the scorer has swapped, then a few seconds more; then Ctrl-C the replay
        # (it flushes and prints its summary, exit 130).
        deadline = time.monotonic() + p.promote_seconds
        while self.background.poll() is None and time.monotonic() < deadline:
            if str((self.status().get("model") or {}).get("version")) == self.v2:
                time.sleep(3)
                break
            time.sleep(0.25)
        if self.background.poll() is None:
            self.background.send_signal(signal.SIGINT)
        out, err = self.background.communicate(timeout=120)
        code, self.background = self.background.returncode, None
        if code not in (0, 130) or not out.strip().startswith("{"):
            raise RuntimeError(f"the paced replay failed ({code}): {err[-2000:]}")
        summary = json.loads(out)
        sent = int(summary["transactions"])
        self.next_row += int(summary.get("resume_skip") or self.next_row + limit) - self.next_row
        self.wait_counters(lambda s: s.get("counters", {}).get("scored", 0) >= before + sent, p.catch_up_timeout,
                           "scoring the promotion run")
        first_v2 = None
        last_v1 = None
        for _, value, ts in self._consume(scores_topic, start):
            version = str(json.loads(value).get("model_version"))
            if version == self.v2 and (first_v2 is None or ts < first_v2):
                first_v2 = ts
            elif version == self.v1 and (last_v1 is None or ts > last_v1):
                last_v1 = ts
        status = self.status()
        swapped = (status.get("model") or {}).get("since")
        where = (f"`promote` took {promote_seconds:.1f} s (start-up and the gate's comparison on the holdout, "
                 f"then the alias), @champion moved "
                 + (f"{(moved_ms - called_ms) / 1000:.1f} s after the call" if moved_ms else "at an unseen time"))
        if first_v2 is None:
            self.figure("promote -> first score by V2", f"none within the run ({p.promote_seconds:.0f} s of input); "
                                                        + where)
        else:
            if moved_ms:
                self.figure("@champion moved -> first score by V2 (goal <= 10 s)",
                            f"{(first_v2 - moved_ms) / 1000:.1f} s (model_refresh_seconds {refresh:g}; alias polled "
                            f"every {AliasWatch.EVERY:g} s)")
                if swapped:
                    self.figure("  @champion moved -> swap (the scorer's model.since)",
                                f"{float(swapped) - moved_ms / 1000:.1f} s")
            self.figure("  promote command returned -> first score by V2",
                        f"{(first_v2 - returned_ms) / 1000:.1f} s ({(first_v2 - called_ms) / 1000:.1f} s after the "
                        f"call); {where}")
            if last_v1 is not None and last_v1 > first_v2:
                self.notes.append(f"scores by V1 after the first by V2: {(last_v1 - first_v2) / 1000:.1f} s later")

    # -- end --------------------------------------------------------------------------------------------------
    def stop_background(self) -> None:
        if self.background is not None and self.background.poll() is None:
            self.background.terminate()
            try:
                self.background.wait(30)
            except subprocess.TimeoutExpired:
                self.background.kill()
        self.background = None

    def scorer_log_tail(self, lines: int = 40) -> str:
        done = self.run("scorer", "logs", "-n", str(lines), timeout=60, check=False)
        return done.stdout or done.stderr

    def table(self, started: float, mode: str) -> None:
        width = max((len(what) for what, _ in self.figures), default=10)
        print()
        print(f"fraudctl streaming scorer benchmark ({mode}) - {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
        print(f"  machine: {os.cpu_count()} CPUs (nproc {_nproc()}), {_memory()}, load {_load()}, "
              f"python {platform.python_version()}, {platform.platform(terse=True)}")
        print(f"  spark {self._spark_version()}, master {self.config.spark.master}, shuffle partitions "
              f"{self.config.spark.shuffle_partitions}; ports +{PORT_OFFSET}; total {time.perf_counter() - started:.0f} s")
        print("  figures are noisy: 2 cores, shared with the broker, MLflow and whatever else runs")
        for what, value in self.figures:
            print(f"  {what:<{width}}  {value}")
        print("  goals (issue 10): >= 20 000 events/s sustained; p99 <= 1 s at 1 000 and 5 000/s; promote -> "
              "new version <= 10 s")
        for note in self.notes:
            print(f"  note: {note}")

    @staticmethod
    def _spark_version() -> str:
        try:
            from importlib.metadata import version

            return version("pyspark")
        except Exception:
            return "?"


class AliasWatch:
    """Polls the registry for @champion == version in a thread; `stop` returns when it was first seen (ms)."""

    EVERY = 0.2

    def __init__(self, config, version: str):
        import threading

        from fraudctl.model.registry import CHAMPION, Registry

        self.registry, self.alias, self.version = Registry(config), CHAMPION, version
        self.seen_ms: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            asked_ms = time.time() * 1000
            try:
                if self.registry.alias_version(self.alias) == self.version:
                    self.seen_ms = asked_ms  # the move happened before this answer, after the previous one's
                    return
            except Exception:  # noqa: BLE001 - a failed poll is retried; the figure says when none saw it
                pass
            self._stop.wait(self.EVERY)

    def stop(self, wait: float) -> float | None:
        self._thread.join(wait)
        self._stop.set()
        return self.seen_ms


def _trigger_ms(seen: list[dict[str, Any]]) -> list[float]:
    """Spark's trigger duration per micro-batch from the sampled statuses: one per batch the scorer counted (the
    longest sample of it; an idle progress between batches reports only a short offset check)."""
    by_batch: dict[int, float] = {}
    for status in seen:
        batch, ms = (status.get("counters") or {}).get("last_batch_id"), status.get("batch_duration_ms")
        if batch is not None and ms:
            by_batch[batch] = max(by_batch.get(batch, 0.0), float(ms))
    return list(by_batch.values())


def _output_batches(matched: list[tuple[int, int, str]]) -> str:
    """Every micro-batch of a paced run, told apart by its scores' `scored_time`, seen from the records alone:
    how long its transactions gathered (first to last Kafka timestamp: about the previous batch's time), how
    long from its last transaction to its first score (about its own time), and the gap between two batches'
    scores. A latency is about the sum of the first two; the worst batch shows whether the tail is one slow
    batch or many."""
    batches: dict[str, list[tuple[int, int]]] = {}
    for sent_ms, score_ms, batch in matched:
        batches.setdefault(batch, []).append((sent_ms, score_ms))
    rows = []  # (first score, gathered, to the score, worst latency, transactions)
    for pairs in batches.values():
        sent, scores = [s for s, _ in pairs], [t for _, t in pairs]
        rows.append((min(scores), max(sent) - min(sent), min(scores) - max(sent),
                     max(t - s for s, t in pairs), len(pairs)))
    rows.sort()
    gaps = [later[0] - earlier[0] for earlier, later in zip(rows, rows[1:])]
    gathered, to_score = [r[1] for r in rows], [r[2] for r in rows]
    worst = max(rows, key=lambda r: r[3])
    return (f"{len(rows)} batches: gathering {statistics.median(gathered):.0f}/{max(gathered):.0f}, "
            f"last transaction to score {statistics.median(to_score):.0f}/{max(to_score):.0f}, "
            f"between two batches' scores {statistics.median(gaps) if gaps else 0:.0f}/{max(gaps, default=0):.0f}; "
            f"the worst batch: {worst[4]:,} tx, gathered {worst[1]} + to score {worst[2]} = latency {worst[3]} ms, "
            f"scored {(worst[0] - rows[0][0]) / 1000:.1f} s into the run")


def _phases(seen: list[dict[str, Any]]) -> str:
    """Median/max ms per phase of the sampled batches: the scorer's own (status counters.last_batch_phases_ms:
    read = Spark's Kafka read and Arrow transfer, then decode ... commit; lake and stage run beside them) and
    Spark's trigger (status spark_ms: latestOffset, walCommit, queryPlanning, addBatch = foreachBatch,
    commitOffsets, triggerExecution = all)."""
    own: dict[int, dict[str, float]] = {}
    spark: dict[int, dict[str, float]] = {}
    for status in seen:
        counters = status.get("counters") or {}
        if counters.get("last_batch_id") is not None and counters.get("last_batch_phases_ms"):
            own[counters["last_batch_id"]] = counters["last_batch_phases_ms"] | (
                {"gc": counters["last_batch_gc_ms"]} if "last_batch_gc_ms" in counters else {})
        if (status.get("spark_ms") or {}).get("batch_id") is not None:
            spark[status["spark_ms"]["batch_id"]] = {k: v for k, v in status["spark_ms"].items() if k != "batch_id"}

    def medians(by_batch: dict[int, dict[str, float]]) -> str:
        # The max beside the median: p99 latency follows the slow batches, not the typical one.
        names = list(dict.fromkeys(name for phases in by_batch.values() for name in phases))
        return ", ".join(f"{name} {statistics.median(v := [p[name] for p in by_batch.values() if name in p]):.0f}"
                         f"/{max(v):.0f}" for name in names)

    parts = [f"scorer ({len(own)} batches): {medians(own)}"] if own else []
    parts += [f"Spark ({len(spark)} batches): {medians(spark)}"] if spark else []
    return "; ".join(parts)


def _batch_seconds(seen: list[dict[str, Any]]) -> list[float]:
    """The foreachBatch part's seconds per micro-batch the sampled statuses saw."""
    by_batch = {}
    for status in seen:
        counters = status.get("counters") or {}
        if counters.get("last_batch_id") is not None:
            by_batch[counters["last_batch_id"]] = float(counters.get("last_batch_seconds") or 0.0)
    return list(by_batch.values())


def _median_s(values: list[float], per_second: float = 1.0) -> str:
    return f"{statistics.median(values) / per_second:.2f} s" if values else "n/a"


def _max_s(values: list[float], per_second: float = 1.0) -> str:
    return f"{max(values) / per_second:.2f} s" if values else "n/a"


def _quantiles(values: list[float]) -> dict[int, float]:
    ordered = sorted(values)
    return {q: ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))] for q in (50, 95, 99)}


def _fmt_s(value: Any) -> str:
    return f"{float(value):.2f} s" if value is not None else "n/a"


def _nproc() -> str:
    try:
        return subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB RAM"
    except OSError:
        pass
    return "? RAM"


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run: small data, a few seconds each")
    parser.add_argument("--variants", action="store_true",
                        help="also latency with scorer.trigger_seconds 0.5 and with scorer.linger_ms 20")
    parser.add_argument("--lean", action="store_true", help="stop Airflow and Flower while measuring")
    parser.add_argument("--rows", type=int, help="transactions for the throughput trials (full 230 000)")
    parser.add_argument("--days", type=int, help="days generated (full 60, quick 21)")
    parser.add_argument("--max-offsets", type=int, nargs="+", help="scorer.max_offsets_per_trigger values to try")
    parser.add_argument("--rates", type=int, nargs="+", help="paced transactions/s (full 1000 5000)")
    parser.add_argument("--paced-seconds", type=float, help="length of each paced run (full 15)")
    parser.add_argument("--skip-promotion", action="store_true")
    parser.add_argument("--rules", type=int, nargs="+", default=[0],
                        help="counts of active rules to run the throughput and latency figures with (e.g. 0 20 100)")
    parser.add_argument("--keep-dir", action="store_true", help="keep the temporary folder (logs) after down --purge")
    args = parser.parse_args()
    plan = make_plan(args)

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    folder = Path(tempfile.mkdtemp(prefix="fraudctl-bench-scorer-"))
    bench = Bench(folder, plan, args.lean)
    started = time.perf_counter()
    failed = False
    try:
        bench.set_up()
        bench.throughput()
        bench.latency()
        if not args.skip_promotion:
            bench.promotion()
    except BaseException as exc:
        failed = True
        print(f"\nbenchmark stopped: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        if not isinstance(exc, KeyboardInterrupt):
            try:
                print("scorer log (tail):\n" + bench.scorer_log_tail(), file=sys.stderr)
            except Exception:
                pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave the stack running
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            bench.stop_background()
            if bench.figures:
                bench.table(started, "quick" if args.quick else "full")
        finally:
            print("stopping the benchmark stack (down --purge) ...", flush=True)
            subprocess.run([*FRAUDCTL, "-c", str(bench.config_path), "down", "--purge"], capture_output=True,
                           timeout=600, cwd=REPO)
            if args.keep_dir:
                print(f"kept {folder}")
            else:
                shutil.rmtree(folder, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
