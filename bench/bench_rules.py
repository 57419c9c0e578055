"""Rules and reasons benchmark (issue 22, "Benchmarks"): what rules and alert reasons cost the scorer, and how
long a 30-day backtest takes.

    .venv/bin/python bench/bench_rules.py [--days 70] [--customers 5000] [--rate 5000]

1. The scorer's core (`Scorer.process`: decode, features on the real online state, the model, rules, reasons,
   encode; the lake off, a publisher that encodes but sends nowhere) on the quick start's data shape (5 000
   customers, 10 000 terminals), with a LightGBM champion (exact reasons), in four runs on the same batches:
   today's path (no rules holder, no reasons), then 0, 20 and 100 active rules with reasons on. Input is
   paced at --rate transactions/s: each batch holds what arrived while the previous one ran (at least 0.1 s worth), as Spark's
   as-soon-as-possible trigger does, so latency = waiting in the batch + its processing. Throughput is the
   rate the core sustains over unpaced 20 000-row batches. Spark's own per-batch cost (Kafka read, offsets,
   ~100-200 ms: README, "The streaming scorer") and Kafka's acknowledgement are outside these figures; the
   full-stack figures of bench/bench_scorer.py add them.
2. Backtest: `fraudctl.operate.backtest.run` of 20 rules over the last 30 days of a lake seeded as the scorer
   writes it (`bench.support.seed_lake`), without the model (no registry here).

Prints figures; never asserts on time. The machine is small and may be shared: figures are noisy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.support import seed_lake  # noqa: E402
from fraudctl import contracts as c  # noqa: E402

RULE_TEMPLATES = [
    "amount > {a} and customer_tx_count_1d >= {n}",
    "terminal_fraud_share_7d > 0.{d} and amount > {a}",
    'terminal_id in ("{t}", "{t}1", "{t}2") and amount > 10',
    "customer_amount_ratio_7d > {n} and is_night == 1",
    "amount / customer_mean_amount_30d > {n} or terminal_fraud_run >= {n}",
]


def make_rules(count: int, seed: int = 1) -> list:
    from fraudctl.rules.ruleset import make_rule

    rng = np.random.default_rng(seed)
    return [make_rule({"name": f"bench-{i}", "mode": "active", "condition": RULE_TEMPLATES[i % len(RULE_TEMPLATES)].format(
        a=int(rng.integers(300, 2000)), n=int(rng.integers(3, 9)), d=int(rng.integers(2, 9)), t=int(rng.integers(1, 9000)))})
        for i in range(count)]


class NullPublisher:
    def __init__(self):
        self.sent = 0

    def send(self, keys, values, alert, rejects) -> None:
        self.sent += len(values)

    def flush(self) -> None:
        pass


def kafka_records(frame: pd.DataFrame, start_ms: int) -> pa.Table:
    values = [json.dumps(c.transaction_event(transaction_id=r.transaction_id, tx_datetime=r.tx_datetime.to_pydatetime(),
                                             customer_id=r.customer_id, terminal_id=r.terminal_id, amount=r.amount)).encode()
              for r in frame.itertuples(index=False)]
    n = len(values)
    return pa.table({"topic": pa.array(["transactions"] * n), "partition": pa.array([0] * n, pa.int32()),
                     "offset": pa.array(range(n), pa.int64()),
                     "timestamp": pa.array(np.full(n, start_ms, dtype="int64").astype("datetime64[ms]"), pa.timestamp("ms")),
                     "key": pa.array([v[:8] for v in values], pa.binary()), "value": pa.array(values, pa.binary())})


def scorer_for(model, rule_count: int | None, folder: Path):
    from fraudctl.features import DEFAULT_SPEC
    from fraudctl.rules.store import MemoryRuleStore
    from fraudctl.stream.rules import RulesHolder
    from fraudctl.stream.scorer import Scorer
    from fraudctl.stream.state import FeatureState

    class Holder:
        def for_batch(self):
            return model

        def pinned(self, version):
            return model

    rules = None
    if rule_count is not None:
        store = MemoryRuleStore()
        if rule_count:
            store.add(make_rules(rule_count), author="bench")
        rules = RulesHolder(store)
        rules.check_now()
    return Scorer(transactions_topic="transactions", labels_topic="labels",
                  state=FeatureState(folder, DEFAULT_SPEC, snapshot_every=10_000), models=Holder(),
                  publisher=NullPublisher(), lake=None, rules=rules)


def warm(scorer, history: pd.DataFrame) -> int:
    """The state filled with the history before the measured part (unmeasured), as a running scorer has it."""
    batch_id = 0
    for start in range(0, len(history), 50_000):
        scorer.process(kafka_records(history.iloc[start:start + 50_000], 0), batch_id)
        batch_id += 1
    return batch_id


def paced(scorer, live: pd.DataFrame, rate: float, first_batch: int) -> dict:
    """Latency per transaction at `rate` tx/s: wait in its batch (gathering) + the batch's processing."""
    latencies, rows_done, batch_id, rules_ms = [], 0, first_batch, []
    duration = 0.1
    while rows_done < len(live):
        size = max(int(rate * max(duration, 0.1)), 1)
        part = live.iloc[rows_done:rows_done + size]
        started = time.perf_counter()
        scorer.process(kafka_records(part, 0), batch_id)
        duration = time.perf_counter() - started
        rules_ms.append(scorer.counters.last_batch_phases_ms.get("rules", 0.0))
        gathered = np.linspace(max(duration, 0.1), 0, len(part))  # the first arrived a batch-time earlier
        latencies.extend((gathered + duration) * 1000)
        rows_done += len(part)
        batch_id += 1
    values = np.sort(latencies)
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99)),
            "rules_reasons_ms_p50": float(np.median(rules_ms)), "batches": batch_id - first_batch,
            "alerts": scorer.counters.alerts, "rule_alerts": scorer.counters.rule_alerts}


def throughput(scorer, rows: pd.DataFrame, first_batch: int) -> float:
    started = time.perf_counter()
    for i, start in enumerate(range(0, len(rows), 20_000)):
        scorer.process(kafka_records(rows.iloc[start:start + 20_000], 0), first_batch + i)
    return len(rows) / (time.perf_counter() - started)


def train_model(history: pd.DataFrame):
    from fraudctl.features import FEATURE_NAMES, compute_features
    from fraudctl.model.estimators import make_estimator
    from fraudctl.stream.model import LoadedModel

    sample = compute_features(history.iloc[-200_000:])
    estimator = make_estimator("lightgbm", random_state=0)
    estimator.fit(sample[FEATURE_NAMES], sample[c.IS_FRAUD].astype(int))
    # An alert rate near the handbook's budget (100 of ~10 000 transactions a day): the top 0.5 % of scores.
    threshold = float(np.quantile(estimator.predict_proba(sample[FEATURE_NAMES])[:, 1], 0.995))
    return LoadedModel("fraud-detector", "1", estimator, threshold)


def bench_scorer(frame: pd.DataFrame, rate: float) -> None:
    cut = len(frame) - 60_000
    history, live, unpaced = frame.iloc[:cut], frame.iloc[cut:cut + 20_000], frame.iloc[cut + 20_000:]
    model = train_model(history)
    print(f"scorer core: {len(history):,} transactions of state, then {len(live):,} paced at {rate:,.0f} tx/s and "
          f"{len(unpaced):,} unpaced; LightGBM champion (threshold {model.threshold:.3f})")
    print(f"{'variant':<28}{'tx/s sustained':>16}{'p50 ms':>10}{'p99 ms':>10}{'rules+reasons ms':>18}{'alerts':>9}")
    import fraudctl.stream.scorer as core

    with_reasons = core.alert_reasons
    for label, count in (("today (no rules, no reasons)", None), ("0 rules, reasons on", 0),
                         ("20 active rules, reasons on", 20), ("100 active rules, reasons on", 100)):
        # today's path: no rules holder, and the reasons left out (as before issue 22)
        core.alert_reasons = (lambda *args, **kwargs: {}) if count is None else with_reasons
        with tempfile.TemporaryDirectory() as folder:
            scorer = scorer_for(model, count, Path(folder))
            first = warm(scorer, history)
            figures = paced(scorer, live, rate, first)
            rate_done = throughput(scorer, unpaced, first + figures["batches"])
        core.alert_reasons = with_reasons
        print(f"{label:<28}{rate_done:>16,.0f}{figures['p50_ms']:>10.0f}{figures['p99_ms']:>10.0f}"
              f"{figures['rules_reasons_ms_p50']:>18.1f}{figures['alerts']:>9,}")


def bench_backtest(frame: pd.DataFrame) -> None:
    from fraudctl.config import load_config
    from fraudctl.data.lake import Lake, lake_uri
    from fraudctl.operate import backtest

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "fraudctl.yaml").write_text(
            f"runtime: {{kind: native, state_dir: {folder}/state}}\nstorage: {{kind: local}}\n")
        config = load_config(Path(folder) / "fraudctl.yaml", env={})
        generated = frame.assign(fraud_scenario=0)
        seed_lake(Lake(lake_uri(config)), generated, duplicate_batch=False, batch_rows=20_000)
        started = time.perf_counter()
        report = backtest.run(config, make_rules(20), since=None, until=None, with_model=False)
        seconds = time.perf_counter() - started
    print(f"backtest: 20 rules over {report['since']}..{report['until']} ({report['transactions']:,} transactions, "
          f"features over {report['transactions']:,} + 37 days of history): {seconds:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=70)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=5000.0)
    args = parser.parse_args()
    from fraudctl.data.generator import generate_transactions

    started = time.perf_counter()
    frame = generate_transactions(n_customers=args.customers, n_terminals=2 * args.customers, n_days=args.days, seed=3)
    frame = frame.drop(columns=["fraud_scenario"]).astype({c.TRANSACTION_ID: str, c.CUSTOMER_ID: str, c.TERMINAL_ID: str})
    frame = frame.sort_values([c.TX_DATETIME, c.TRANSACTION_ID], kind="stable").reset_index(drop=True)
    print(f"data: {len(frame):,} transactions over {args.days} days ({time.perf_counter() - started:.0f} s to generate), "
          f"{dt.datetime.now():%Y-%m-%d %H:%M}")
    bench_backtest(frame)
    bench_scorer(frame, args.rate)


if __name__ == "__main__":
    main()
