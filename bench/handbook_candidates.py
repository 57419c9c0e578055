"""Candidate features that were measured and NOT kept (issue 22): computed here, offline only, so that
bench_handbook.py can print their gain on every run. A candidate that earns its place moves to
fraudctl/features.py, its one home, with an online computation and a parity test; these have neither.

All windows are over the customer's (or the pair's, or the terminal's) transactions up to and including the
current one in event order (tx_datetime, transaction_id), like the customer windows in features.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudctl.contracts import AMOUNT, CUSTOMER_ID, IS_FRAUD, TERMINAL_ID, TRANSACTION_ID, TX_DATETIME
from fraudctl.features import _as_utc_ns, _count_le, _group_order

_NS_PER_DAY = 86_400 * 10**9

CANDIDATES = {
    "pair_tx_count_30d": "transactions of this customer at this terminal over 30 days (how new the pair is)",
    "pair_age_days_30d": "days since the pair's first transaction within 30 days (0: a new pair)",
    "customer_gap_days": "days since the customer's previous transaction, 30 when none within 30 days",
    "customer_amount_z_30d": "customer_amount_z over 30 days instead of 7",
    "terminal_volume_ratio": "the terminal's transactions over 1 day against its daily mean over 30 days",
    # round 2 (model2), measured with lightgbm on 28 training days over the version 3 features
    "customer_median_ratio_30d": "amount / the customer's median amount over 30 days",
    "customer_robust_z_30d": "(amount - the 30-day median) / the 30-day interquartile range, 0 under half a cent",
    "terminal_last_fraud_age_days": "days since the terminal's latest known fraud within its 30 known days, 0: none",
    "terminal_fraud_count_30d": "the terminal's known frauds within its 30 known days",
}


def _windows(codes: np.ndarray, times: np.ndarray, ids: np.ndarray, days: int) -> dict[str, np.ndarray]:
    """Per row, in the input order: the count over (t - days, t] of its group, and the times of the group's
    first row in that window and of its previous row (-1 when none)."""
    order = _group_order(codes, times, ids)
    c, t = codes[order], times[order]
    lower = _count_le(c, t, c, t - days * _NS_PER_DAY)
    position = np.arange(len(c))
    first = np.r_[True, c[1:] != c[:-1]]
    values = {"count": (position + 1 - lower).astype("float64"), "first_time": t[lower],
              "previous_time": np.where(first, -1, np.r_[0, t[:-1]])}
    back = np.empty(len(order), dtype=np.int64)
    back[order] = position
    return {name: v[back] for name, v in values.items()}


def _window_quantiles(values: np.ndarray, lower: np.ndarray, at: np.ndarray, qs: list[float],
                      budget: int = 1 << 22) -> np.ndarray:
    """Per i, the quantiles qs (linear) of values[lower[i] : at[i] + 1], padded rows sorted, in chunks."""
    counts = at + 1 - lower
    out = np.zeros((len(qs), len(at)))
    first = 0
    while first < len(at):
        widest = np.maximum.accumulate(counts[first:first + budget])
        rows = max(int(np.searchsorted(widest * np.arange(1, len(widest) + 1), budget, side="right")), 1)
        last, column = first + rows, np.arange(int(widest[rows - 1]))
        n = counts[first:last]
        ordered = np.sort(np.where(column < n[:, None], values[np.minimum(lower[first:last, None] + column,
                                                                           len(values) - 1)], np.inf), axis=1)
        row = np.arange(last - first)
        for j, q in enumerate(qs):
            position = q * (n - 1)
            below = np.floor(position).astype(np.int64)
            above = np.minimum(below + 1, n - 1)
            share = position - below
            out[j, first:last] = ordered[row, below] + share * (ordered[row, above] - ordered[row, below])
        first = last
    return out


def add_candidates(featured: pd.DataFrame) -> pd.DataFrame:
    """`featured` (fraudctl's features) with the CANDIDATES columns added."""
    from fraudctl.features import _window_spread

    times = _as_utc_ns(featured[TX_DATETIME])
    ids = featured[TRANSACTION_ID].to_numpy()
    customers = pd.factorize(featured[CUSTOMER_ID])[0]
    terminals = pd.factorize(featured[TERMINAL_ID])[0]
    pairs = pd.factorize(pd.MultiIndex.from_arrays([featured[CUSTOMER_ID], featured[TERMINAL_ID]]))[0]
    out = {}
    pair = _windows(pairs, times, ids, 30)
    out["pair_tx_count_30d"] = pair["count"]
    out["pair_age_days_30d"] = (times - pair["first_time"]) / _NS_PER_DAY
    customer = _windows(customers, times, ids, 30)
    gap = (times - customer["previous_time"]) / _NS_PER_DAY
    out["customer_gap_days"] = np.where(customer["previous_time"] < 0, 30.0, np.minimum(gap, 30.0))
    order = _group_order(customers, times, ids)
    c, t, a = customers[order], times[order], featured[AMOUNT].to_numpy(dtype="float64")[order]
    at = np.arange(len(c))
    mean, spread = _window_spread(a, _count_le(c, t, c, t - 30 * _NS_PER_DAY), at)
    z = np.divide(a - mean, spread, out=np.zeros(len(at)), where=spread >= 0.005)
    back = np.empty(len(order), dtype=np.int64)
    back[order] = at
    out["customer_amount_z_30d"] = z[back]
    day, month = _windows(terminals, times, ids, 1), _windows(terminals, times, ids, 30)
    out["terminal_volume_ratio"] = day["count"] / (month["count"] / 30.0)
    quartile, median, upper = _window_quantiles(a, _count_le(c, t, c, t - 30 * _NS_PER_DAY), at, [0.25, 0.5, 0.75])
    spread = upper - quartile
    out["customer_median_ratio_30d"] = np.divide(a, median, out=np.ones(len(at)), where=median > 0)[back]
    out["customer_robust_z_30d"] = np.divide(a - median, spread, out=np.zeros(len(at)), where=spread >= 0.005)[back]
    # the terminal's known labels: (t - 7d - 30d, t - 7d], as the terminal windows of features.py
    order = _group_order(terminals, times, ids)
    tc, tt = terminals[order], times[order]
    frauds = featured[IS_FRAUD].fillna(0).to_numpy(dtype="float64")[order]
    position = np.arange(len(tc))
    known_to = np.minimum(_count_le(tc, tt, tc, tt - 7 * _NS_PER_DAY), position)
    known_from = np.minimum(_count_le(tc, tt, tc, tt - 37 * _NS_PER_DAY), known_to)
    latest = np.maximum.accumulate(np.where(frauds == 1, position, -1))[np.maximum(known_to - 1, 0)]
    seen = (known_to > known_from) & (latest >= known_from)
    prefix = np.r_[0.0, np.cumsum(frauds)]
    back_t = np.empty(len(order), dtype=np.int64)
    back_t[order] = position
    out["terminal_last_fraud_age_days"] = np.where(seen, (tt - tt[np.maximum(latest, 0)]) / _NS_PER_DAY, 0.0)[back_t]
    out["terminal_fraud_count_30d"] = (prefix[known_to] - prefix[known_from])[back_t]
    return featured.assign(**out)


# round 3 (issue 22's CP@100 goal): card-level signals, measured with lightgbm on 28 training days over the
# version 4 features. Outliers are amounts above OUTLIER_FACTOR x the customer's 30-day median (the current one
# included), as customer_outlier_count_14d; only the window they are counted in changes.
CARD_CANDIDATES = {
    "customer_outlier_count_1d": "customer_outlier_count_14d counted over 1 day",
    "customer_outlier_count_3d": "customer_outlier_count_14d counted over 3 days",
    "customer_max_median_ratio_1d": "customer_max_median_ratio_14d over 1 day",
    "customer_outlier_share_14d": "customer_outlier_count_14d / the customer's transactions over 14 days",
    "terminal_fraud_share_3d": "the terminal's known fraud share over (t - 7d - 3d, t - 7d]",
    "terminal_fraud_share_14d": "the terminal's known fraud share over (t - 7d - 14d, t - 7d]",
}


def add_card_candidates(featured: pd.DataFrame) -> pd.DataFrame:
    """`featured` with the CARD_CANDIDATES columns added."""
    from fraudctl.features import OUTLIER_FACTOR, _window_outliers

    times = _as_utc_ns(featured[TX_DATETIME])
    ids = featured[TRANSACTION_ID].to_numpy()
    customers = pd.factorize(featured[CUSTOMER_ID])[0]
    terminals = pd.factorize(featured[TERMINAL_ID])[0]
    order = _group_order(customers, times, ids)
    c, t, a = customers[order], times[order], featured[AMOUNT].to_numpy(dtype="float64")[order]
    at = np.arange(len(c))
    back = np.empty(len(order), dtype=np.int64)
    back[order] = at
    median_from = _count_le(c, t, c, t - 30 * _NS_PER_DAY)
    out = {}
    for days in (1, 3):
        count_from = _count_le(c, t, c, t - days * _NS_PER_DAY)
        count, largest, median = _window_outliers(a, median_from, count_from, at, OUTLIER_FACTOR)
        out[f"customer_outlier_count_{days}d"] = count[back]
        if days == 1:
            out["customer_max_median_ratio_1d"] = np.divide(largest, median, out=np.ones(len(at)),
                                                            where=median > 0)[back]
    fortnight = at + 1 - _count_le(c, t, c, t - 14 * _NS_PER_DAY)
    out["customer_outlier_share_14d"] = featured["customer_outlier_count_14d"].to_numpy() / fortnight[back]
    order = _group_order(terminals, times, ids)
    tc, tt = terminals[order], times[order]
    frauds = featured[IS_FRAUD].fillna(0).to_numpy(dtype="float64")[order]
    position = np.arange(len(tc))
    back_t = np.empty(len(order), dtype=np.int64)
    back_t[order] = position
    prefix = np.r_[0.0, np.cumsum(frauds)]
    known_to = np.minimum(_count_le(tc, tt, tc, tt - 7 * _NS_PER_DAY), position)
    for days in (3, 14):
        known_from = np.minimum(_count_le(tc, tt, tc, tt - (7 + days) * _NS_PER_DAY), known_to)
        n = known_to - known_from
        share = np.divide(prefix[known_to] - prefix[known_from], n, out=np.zeros(len(n)), where=n > 0)
        out[f"terminal_fraud_share_{days}d"] = share[back_t]
    return featured.assign(**out)
