"""The handbook's validation weeks, where fraudctl's features and hyperparameters are chosen (never on the test
week of bench/bench_handbook.py nor on its unseen seeds 101-103).

Per generator seed (default 0, 1, 2), four training weeks ending 2018-06-27, 07-04, 07-11 and 07-18, each tested
on the week after its 7-day label delay, with the known compromised cards removed as the handbook does. A longer
training window ends on the same day and keeps the same test week: the 7-day split's, so its known cards (frauds
from the 7-day window's start) and its test rows stay those every configuration is compared on.

Each configuration prints, per seed, the mean over the four weeks of average precision and card precision@100,
LightGBM's predict CPU time per 1000 rows (one thread, the median week) and fit CPU seconds, then its gain over the
first configuration named. `--iterations` also scores each fitted model truncated to fewer trees (the
n_estimators sweep for free).

    .venv/bin/python bench/handbook_validation.py                          # the configurations below
    .venv/bin/python bench/handbook_validation.py --configs issue22 chosen --seeds 0
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

TRAIN_ENDS = [dt.date(2018, 6, 27), dt.date(2018, 7, 4), dt.date(2018, 7, 11), dt.date(2018, 7, 18)]
ISSUE22 = {"n_estimators": 400, "learning_rate": 0.03}  # the lightgbm default before model2

ROUND2_FEATURES = ("customer_outlier_count_14d", "customer_max_median_ratio_14d")  # feature spec version 4

# name: (lightgbm overrides over fraudctl's defaults, training days, feature spec version 3 or 4, candidates added)
CONFIGS: dict[str, tuple[dict, int, int, tuple[str, ...]]] = {
    "issue22": (ISSUE22, 7, 3, ()),
    "issue22, 100 trees": ({}, 7, 3, ()),
    "issue22, 14 training days": (ISSUE22, 14, 3, ()),
    "issue22, 28 training days": (ISSUE22, 28, 3, ()),
    "issue22, 28 training days, 200 trees": ({"n_estimators": 200}, 28, 3, ()),
    "issue22, 42 training days, 200 trees": ({"n_estimators": 200}, 42, 3, ()),
    "learning rate 0.1, 28 days": ({"learning_rate": 0.1, "n_estimators": 50}, 28, 3, ()),
    "min_child_samples 200, 28 days": ({"min_child_samples": 200, "n_estimators": 200}, 28, 3, ()),
    "num_leaves 15, 28 days": ({"num_leaves": 15, "n_estimators": 200}, 28, 3, ()),
    "chosen, 7 training days": ({}, 7, 4, ()),
    "chosen": ({}, 28, 4, ()),
    # round 3: aimed at CP@100, each over "chosen"
    "+ customer_outlier_count_1d": ({}, 28, 4, ("customer_outlier_count_1d",)),
    "+ customer_outlier_count_3d": ({}, 28, 4, ("customer_outlier_count_3d",)),
    "+ customer_max_median_ratio_1d": ({}, 28, 4, ("customer_max_median_ratio_1d",)),
    "+ customer_outlier_share_14d": ({}, 28, 4, ("customer_outlier_share_14d",)),
    "+ terminal_fraud_share_3d": ({}, 28, 4, ("terminal_fraud_share_3d",)),
    "+ terminal_fraud_share_14d": ({}, 28, 4, ("terminal_fraud_share_14d",)),
    "200 trees, learning rate 0.015": ({"n_estimators": 200, "learning_rate": 0.015}, 28, 4, ()),
    "min_child_samples 20": ({"min_child_samples": 20}, 28, 4, ()),
    "min_child_samples 100": ({"min_child_samples": 100}, 28, 4, ()),
    "reg_lambda 5": ({"reg_lambda": 5.0}, 28, 4, ()),
    "path_smooth 10": ({"path_smooth": 10.0}, 28, 4, ()),
    "max_bin 2047": ({"max_bin": 2047}, 28, 4, ()),
    "max_bin 4095": ({"max_bin": 4095}, 28, 4, ()),
    "max_bin 8191": ({"max_bin": 8191}, 28, 4, ()),
}



def default_model_week(featured, end: dt.date, train_days: int = 28):
    """The default lightgbm (random_state 0) fitted on the `train_days` days before `end`, and the week it is
    tested on (after the 7-day delay, known cards removed): (test rows, their fraud probabilities)."""
    import pandas as pd

    from fraudctl.features import FEATURE_NAMES
    from fraudctl.model.estimators import make_estimator
    from fraudctl.model.training import SplitSpec, split_train_test

    times = featured["tx_datetime"]
    _, test = split_train_test(featured, SplitSpec(end - dt.timedelta(days=7)))
    train = featured[(times >= pd.Timestamp(end - dt.timedelta(days=train_days))) & (times < pd.Timestamp(end))]
    model = make_estimator("lightgbm", 0)
    model.fit(train[FEATURE_NAMES], train["is_fraud"].astype(int))
    return test, model.predict_proba(test[FEATURE_NAMES])[:, 1]

def main() -> int:
    from fraudctl.data.generator import generate_transactions
    from fraudctl.model.training import prepare

    from bench.handbook_candidates import CARD_CANDIDATES, add_candidates, add_card_candidates

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), help=f"of: {', '.join(CONFIGS)}")
    parser.add_argument("--iterations", nargs="*", type=int, default=[], help="also score the first N trees")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--random-state", type=int, default=0,
                        help="lightgbm's seed (row and column sampling): another one shows what is noise")
    args = parser.parse_args()

    results = []
    for seed in args.seeds:
        featured = prepare(generate_transactions(seed=seed))
        extras = {e for name in args.configs for e in CONFIGS[name][3]}
        if extras - set(CARD_CANDIDATES):
            featured = add_candidates(featured)
        if extras & set(CARD_CANDIDATES):
            featured = add_card_candidates(featured)
        for name in args.configs:
            overrides, train_days, version, extra = CONFIGS[name]
            mine = validate(featured, overrides, train_days, version, list(extra), args.iterations, args.random_state)
            results += [{"seed": seed, "config": name, "random_state": args.random_state, **r} for r in mine]
            # the gain over the first configuration at its own number of trees
            reference = [x for x in results if x["seed"] == seed and x["config"] == args.configs[0]][-1]
            for r in mine:
                print(f"seed {seed}  {name:<36} {r['trees']:>4} trees  AP {r['average_precision']:.4f} "
                      f"({r['average_precision'] - reference['average_precision']:+.4f})  CP@100 "
                      f"{r['card_precision_at_100']:.4f} "
                      f"({r['card_precision_at_100'] - reference['card_precision_at_100']:+.4f})  predict CPU "
                      f"{r['predict_cpu_ms_per_1000']:5.1f} ms/1000  fit CPU {r['fit_cpu_seconds']:5.1f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"train_ends": [d.isoformat() for d in TRAIN_ENDS], "results": results},
                                        indent=2))
    return 0


def validate(featured, overrides: dict, train_days: int, version: int, extra: list[str],
             iterations: list[int], random_state: int = 0) -> list[dict]:
    """Mean AP and CP@100 over the four validation weeks of one seed, per number of trees scored."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import average_precision_score

    from fraudctl.features import FEATURE_NAMES
    from fraudctl.model.estimators import make_estimator
    from fraudctl.model.evaluation import card_precision_at_k
    from fraudctl.model.training import SplitSpec, split_train_test

    columns = [n for n in FEATURE_NAMES if version >= 4 or n not in ROUND2_FEATURES] + extra
    model = make_estimator("lightgbm", random_state, **overrides)
    trees = sorted({*iterations, model.get_params()["n_estimators"]})
    weeks = []
    for end in TRAIN_ENDS:
        _, test = split_train_test(featured, SplitSpec(end - dt.timedelta(days=7)))
        times = featured["tx_datetime"]
        train = featured[(times >= pd.Timestamp(end - dt.timedelta(days=train_days))) & (times < pd.Timestamp(end))]
        model = make_estimator("lightgbm", random_state, **overrides)
        cpu = time.process_time()
        model.fit(train[columns], train["is_fraud"].astype(int))
        week = {"fit_cpu_seconds": time.process_time() - cpu}
        labels = test["is_fraud"].astype(int).to_numpy()
        for n in trees:
            cpu = time.process_time()
            scores = model.predict_proba(test[columns], num_iteration=n)[:, 1]
            week[n] = (average_precision_score(labels, scores), card_precision_at_k(test, scores)[0],
                       (time.process_time() - cpu) * 1e6 / len(test))
        weeks.append(week)
    return [{"trees": n, "train_days": train_days, "overrides": overrides, "version": version, "extra": extra,
             "average_precision": float(np.mean([w[n][0] for w in weeks])),
             "card_precision_at_100": float(np.mean([w[n][1] for w in weeks])),
             "predict_cpu_ms_per_1000": float(np.median([w[n][2] for w in weeks])),
             "fit_cpu_seconds": float(np.mean([w["fit_cpu_seconds"] for w in weeks])),
             "weeks": [{"average_precision": w[n][0], "card_precision_at_100": w[n][1]} for w in weeks]}
            for n in trees]


if __name__ == "__main__":
    sys.exit(main())
