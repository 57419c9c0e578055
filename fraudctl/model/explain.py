"""Why the model gave a score: each feature's signed contribution to the raw score (log-odds), exact.

For a tree ensemble that is TreeSHAP (LightGBM computes it natively: `pred_contrib`); for a logistic
regression it is each coefficient times the standardised value, against the mean row. Either way the
contributions of a row add up to its raw score minus the expected value, which the tests check. Estimators
without exact contributions (scikit-learn's forests and gradient boosting) give None: reasons then name
rules only.

Computed only for the rows that alert, so its cost follows the alert rate, not the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraudctl.features import FEATURE_NAMES

TOP_REASONS = 3  # feature contributions an alert carries


@dataclass(frozen=True)
class Contributions:
    values: np.ndarray  # rows x features, signed, in raw-score (log-odds) units
    expected: np.ndarray  # per row: the model's expected raw score (the same for every row of a model)
    features: tuple[str, ...]

    def top(self, k: int = TOP_REASONS) -> list[list[dict]]:
        """Per row, the k largest contributions by magnitude, largest first."""
        order = np.argsort(-np.abs(self.values), axis=1, kind="stable")[:, :k]
        return [[{"feature": self.features[j], "contribution": round(float(row[j]), 6)} for j in picks]
                for row, picks in zip(self.values, order)]


def contributions(estimator, featured: pd.DataFrame) -> Contributions | None:
    """Exact contributions of each feature for each row of `featured`, or None for an estimator without them."""
    frame = featured[FEATURE_NAMES]
    booster = getattr(estimator, "booster_", None)
    exact = booster is not None or set(getattr(estimator, "named_steps", None) or ()) == {"scale", "classify"}
    if exact and len(frame) == 0:
        # A batch without alerts: LightGBM and scikit-learn both refuse an empty input rather than return
        # nothing, and the scorer asks for its alerting rows only.
        return Contributions(np.zeros((0, len(FEATURE_NAMES))), np.zeros(0), tuple(FEATURE_NAMES))
    if booster is not None:  # LightGBM: last column is the expected value
        raw = np.asarray(booster.predict(frame, pred_contrib=True), dtype=float)
        return Contributions(raw[:, :-1], raw[:, -1], tuple(FEATURE_NAMES))
    steps = getattr(estimator, "named_steps", None)
    if steps and set(steps) == {"scale", "classify"}:
        scale, classify = steps["scale"], steps["classify"]
        coef = classify.coef_[0]
        standardised = scale.transform(frame)
        values = standardised * coef
        expected = np.full(len(frame), float(classify.intercept_[0]))  # StandardScaler centres: mean row is 0
        return Contributions(values, expected, tuple(FEATURE_NAMES))
    return None


def raw_score(estimator, featured: pd.DataFrame) -> np.ndarray:
    """The log-odds the contributions add up to (what the tests compare against)."""
    if len(featured) == 0:
        return np.zeros(0)
    booster = getattr(estimator, "booster_", None)
    if booster is not None:
        return np.asarray(booster.predict(featured[FEATURE_NAMES], raw_score=True), dtype=float)
    p = np.clip(estimator.predict_proba(featured[FEATURE_NAMES])[:, 1], 1e-300, 1 - 1e-16)
    return np.log(p) - np.log1p(-p)
