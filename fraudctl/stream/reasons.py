"""The reasons an alert carries: the active rules that matched it (name, version) and the model's top 3 signed
feature contributions to its score (fraudctl.model.explain: exact TreeSHAP for lightgbm, [] for estimators
without exact contributions). Computed for the alerting rows only.

One function for both paths: the scorer calls it on the batch's online features, `fraudctl rules test` and the
parity test on the offline features of the same transactions, so the same model and transaction give the
same reasons.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudctl.model.explain import TOP_REASONS, contributions


def alert_reasons(estimator, featured: pd.DataFrame, alert: np.ndarray,
                  matched: list[list[tuple[str, int]]] | None = None) -> dict[int, dict]:
    """Row position -> {"rules": [{"name", "version"}], "features": [{"feature", "contribution"}]} for every
    alerting row of `featured`."""
    rows = np.flatnonzero(np.asarray(alert, dtype=bool))
    if not len(rows):
        return {}
    explained = contributions(estimator, featured.iloc[rows])
    tops = explained.top(TOP_REASONS) if explained is not None else [[] for _ in rows]
    return {int(i): {"rules": [{"name": name, "version": version} for name, version in (matched[i] if matched else [])],
                     "features": top}
            for i, top in zip(rows, tops)}
