"""How much card precision@100 a model can still gain on the handbook protocol: the model's CP@100 beside the
CP@100 of oracles that know which frauds the features can see (issue 22, round 3).

The simulator's frauds are (1) amounts above 220, (2) every transaction at a compromised terminal for 28 days,
(3) a third of a compromised customer's transactions over 14 days, at five times the amount. A terminal fraud is
*visible* at time t when the terminal has a scenario-2 fraud in (t - 7d - 30d, t - 7d]: the labels the terminal
windows of fraudctl/features.py know at t (the 7-day label delay). Before that, the compromised terminal's
transactions are drawn exactly as honest ones and no feature can tell them apart. Scenario 1 and 3 frauds count as
visible (their amounts show). Per week:

* model: fraudctl's default lightgbm on 28 training days (bench/handbook_validation.py's "chosen");
* perfect: every fraud card first (the handbook's ceiling);
* visible: the visible fraud cards first, then the model's order (what a perfect ranking of what can be seen
  would reach, the rest ranked as today);
* visible, then activity: the visible fraud cards first, then the cards with the most transactions over the last
  24 hours (a card that transacts more is likelier to meet a terminal compromised within the delay), then the
  model's order.

On the validation weeks by default (seeds 0, 1, 2); `--test` uses bench_handbook.py's test week (training days
ending 2018-07-31) and should only be run after choosing.

    .venv/bin/python bench/handbook_ceiling.py --seeds 0 1 2

Measured 2026-12-07 (CP@100; model / perfect / visible / visible, then activity). Validation weeks, mean of four:
seed 0 0.3154 / 0.4150 / 0.3168 / 0.3175, seed 1 0.3468 / 0.4550 / 0.3489 / 0.3514, seed 2 0.3111 / 0.4086 /
0.3121 / 0.3161. Test week (`--test`, after choosing): 101 0.3114 / 0.4200 / 0.3114 / 0.3086, 102 0.3300 / 0.4314
/ 0.3343 / 0.3386, 103 0.3371 / 0.4386 / 0.3400 / 0.3357, 104 0.3286 / 0.4557 / 0.3286 / 0.3314, 105 0.3586 /
0.4657 / 0.3614 / 0.3614, 106 0.3214 / 0.4171 / 0.3243 / 0.3229. The model is within 0.000-0.004 of ranking every
visible fraud card first; the 0.09-0.14 to the perfect ceiling are frauds inside the label delay.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.handbook_validation import TRAIN_ENDS, default_model_week  # noqa: E402

TEST_END = dt.date(2018, 8, 1)  # bench_handbook.py: training week 2018-07-25..07-31, test from 08-08


def visible_frauds(featured):
    """1.0 for each fraud the features can see (module docstring), in the frame's row order."""
    import numpy as np
    import pandas as pd

    from fraudctl.features import _as_utc_ns, _count_le, _group_order

    day = 86_400 * 10**9
    times = _as_utc_ns(featured["tx_datetime"])
    terminals = pd.factorize(featured["terminal_id"])[0]
    order = _group_order(terminals, times, featured["transaction_id"].to_numpy())
    tc, tt = terminals[order], times[order]
    compromised = (featured["fraud_scenario"].to_numpy() == 2)[order].astype("float64")
    prefix = np.r_[0.0, np.cumsum(compromised)]
    position = np.arange(len(tc))
    known_to = np.minimum(_count_le(tc, tt, tc, tt - 7 * day), position)
    known_from = np.minimum(_count_le(tc, tt, tc, tt - 37 * day), known_to)
    seen = np.empty(len(order), dtype=bool)
    seen[order] = prefix[known_to] > prefix[known_from]
    fraud = featured["is_fraud"].to_numpy() == 1
    scenario = featured["fraud_scenario"].to_numpy()
    return (fraud & ((scenario != 2) | seen)).astype("float64")


def main() -> int:
    import numpy as np
    from sklearn.metrics import average_precision_score

    from fraudctl.data.generator import generate_transactions
    from fraudctl.model.evaluation import card_precision_at_k
    from fraudctl.model.training import prepare

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--test", action="store_true", help="bench_handbook.py's test week instead of validation")
    args = parser.parse_args()
    ends = [TEST_END] if args.test else TRAIN_ENDS
    names = ["AP", "model", "perfect", "visible", "visible, then activity"]
    print(f"{'seed':>4}  {'weeks':>5}  " + "  ".join(f"{n:>22}" for n in names))
    for seed in args.seeds:
        featured = prepare(generate_transactions(seed=seed))
        visible = visible_frauds(featured)
        weeks = []
        for end in ends:
            test, p = default_model_week(featured, end)
            v = visible[test.index.to_numpy()]
            activity = test["customer_tx_count_1d"].to_numpy()
            labels = test["is_fraud"].to_numpy().astype(int)
            weeks.append([average_precision_score(labels, p), card_precision_at_k(test, p)[0],
                          card_precision_at_k(test, labels)[0], card_precision_at_k(test, 2 * v + p)[0],
                          card_precision_at_k(test, 1e3 * v + activity + 1e-3 * p)[0]])
        mean = np.mean(weeks, axis=0)
        print(f"{seed:>4}  {len(ends):>5}  " + "  ".join(f"{x:>22.4f}" for x in mean), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
