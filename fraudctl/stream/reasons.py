"""The reasons an alert carries: the active rules that matched it (name, version) and the model's top 3 signed
feature contributions to its score (fraudctl.model.explain: exact TreeSHAP for lightgbm, [] for estimators
without exact contributions). Computed for the alerting rows only.

One function for both paths: the scorer calls it on the batch's online features, `fraudctl rules test` and the
parity test on the offline features of the same transactions, so the same model and transaction give the
same reasons.

Contributions cost ~0.25 ms of CPU an alert (TreeSHAP over 100 trees), nothing next to a normal batch's
handful of alerts, but 12 s for a 50 000-row batch that alerts on every row (a broken model, a cold start):
the scorer caps how many alerts of a batch get them (`scorer.explained_alerts_per_batch`). Over the cap, the
highest scores get contributions and the others `"features": null`; rules are always named.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudctl.model.explain import TOP_REASONS, contributions


def alert_reasons(estimator, featured: pd.DataFrame, alert: np.ndarray,
                  matched: list[list[tuple[str, int]]] | None = None, *, scores: np.ndarray | None = None,
                  explain_at_most: int | None = None) -> dict[int, dict]:
    """Row position -> {"rules": [{"name", "version"}], "features": [{"feature", "contribution"}] or None} for
    every alerting row of `featured`.

    `explain_at_most`: when more rows alert, only that many get feature contributions, the highest `scores`
    first (ties in row order, so a re-run batch picks the same rows); the others get None."""
    rows = np.flatnonzero(np.asarray(alert, dtype=bool))
    if not len(rows):
        return {}
    explained_rows = rows
    if explain_at_most is not None and len(rows) > explain_at_most:
        if scores is None:
            raise ValueError("explain_at_most needs the scores that rank the alerts")
        ranked = rows[np.argsort(-np.asarray(scores, dtype="float64")[rows], kind="stable")]
        explained_rows = np.sort(ranked[:explain_at_most])
    explained = contributions(estimator, featured.iloc[explained_rows])  # no rows: no contributions
    tops = dict(zip(explained_rows.tolist(), explained.top(TOP_REASONS) if explained is not None
                    else [[] for _ in explained_rows]))
    return {int(i): {"rules": [{"name": name, "version": version} for name, version in (matched[i] if matched else [])],
                     "features": tops.get(int(i))}
            for i in rows}


def unexplained(reasons: dict[int, dict]) -> int:
    """How many of the alerts went without feature contributions (over the batch's cap)."""
    return sum(1 for reason in reasons.values() if reason["features"] is None)
