"""Metrics and the decision threshold, over scored transactions (the Fraud Detection Handbook's, chapter 3.4).

* ROC AUC and average precision, over transactions.
* Card precision@100: per test day, each remaining card's highest score, the 100 highest cards, the share
  of them that are compromised that day; cards found on a day are removed from the following days; the
  daily values are averaged.
* The threshold: the lowest score within an alert budget (alerts per day), or reaching a precision target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraudctl.contracts import CUSTOMER_ID, IS_FRAUD, TX_DATETIME
from fraudctl.errors import BadInputError

CARD_PRECISION_K = 100


def day_of(frame: pd.DataFrame) -> pd.Series:
    """Each transaction's day (midnight of its event time)."""
    return frame[TX_DATETIME].dt.floor("D")


def card_precision_at_k(frame: pd.DataFrame, scores: np.ndarray, k: int = CARD_PRECISION_K,
                        ) -> tuple[float, list[float]]:
    """The handbook's card precision@k: the daily values' mean, and the daily values in day order.

    Per day: each card's highest score and whether any of its transactions that day is fraud; the k cards
    with the highest scores (ties: lower customer id first); the compromised share of those k (the
    denominator is k even on a day with fewer cards). Cards detected on a day are dropped from later days.
    """
    data = pd.DataFrame({
        "day": day_of(frame).to_numpy(), "card": frame[CUSTOMER_ID].to_numpy(),
        "fraud": frame[IS_FRAUD].to_numpy(), "score": np.asarray(scores, dtype="float64"),
    })
    detected: set[Any] = set()
    daily = []
    for _, day in data.groupby("day", sort=True):
        day = day[~day["card"].isin(detected)]
        cards = day.groupby("card", sort=True).agg(score=("score", "max"), fraud=("fraud", "max"))
        top = cards.sort_values("score", ascending=False, kind="mergesort").head(k)
        found = top.index[top["fraud"] == 1]
        daily.append(len(found) / k)
        detected.update(found)
    return (float(np.mean(daily)) if daily else float("nan")), daily


def evaluate(frame: pd.DataFrame, scores: np.ndarray, threshold: float | None = None,
             k: int = CARD_PRECISION_K) -> dict[str, Any]:
    """ROC AUC, average precision, card precision@k, and the alert figures at `threshold`."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = frame[IS_FRAUD].to_numpy().astype(int)
    scores = np.asarray(scores, dtype="float64")
    n_days = int(day_of(frame).nunique()) or 1
    both = len(np.unique(labels)) == 2
    cp_mean, cp_daily = card_precision_at_k(frame, scores, k)
    metrics: dict[str, Any] = {
        "roc_auc": float(roc_auc_score(labels, scores)) if both else float("nan"),
        "average_precision": float(average_precision_score(labels, scores)) if both else float("nan"),
        f"card_precision_at_{k}": cp_mean,
        f"card_precision_at_{k}_daily": cp_daily,
        "transactions": int(len(labels)),
        "frauds": int(labels.sum()),
        "days": n_days,
    }
    if threshold is not None:
        alerts = scores >= threshold
        true_alerts = int((alerts & (labels == 1)).sum())
        metrics.update({
            "alerts_per_day": float(alerts.sum() / n_days),
            "precision_at_threshold": float(true_alerts / alerts.sum()) if alerts.any() else 0.0,
            "recall_at_threshold": float(true_alerts / labels.sum()) if labels.any() else 0.0,
        })
    return metrics


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    policy: str  # "alert_budget" or "precision_target"
    target: float  # alerts per day, or the precision wanted
    achieved: float  # alerts per day, or the precision reached, on the slice it was chosen on
    chosen_on: str  # "validation" or "training" (validation_days=0)
    note: str = ""


def choose_threshold(frame: pd.DataFrame, scores: np.ndarray, *, alert_budget_per_day: int = 100,
                     precision_target: float | None = None, chosen_on: str = "validation") -> ThresholdChoice:
    """The lowest score threshold that keeps within the alert budget, or reaches the precision target."""
    scores = np.asarray(scores, dtype="float64")
    labels = frame[IS_FRAUD].to_numpy().astype(int)
    n_days = int(day_of(frame).nunique()) or 1
    if len(scores) == 0:
        raise BadInputError("no transactions to choose a threshold on")
    if precision_target is not None:
        from sklearn.metrics import precision_recall_curve

        precision, _, thresholds = precision_recall_curve(labels, scores)
        precision = precision[:-1]  # the last point has no threshold
        reaching = np.flatnonzero(precision >= precision_target)
        if len(reaching):
            i = int(reaching[0])  # thresholds ascend: the first one reaching the target alerts the most
            return ThresholdChoice(float(thresholds[i]), "precision_target", precision_target,
                                   float(precision[i]), chosen_on)
        i = int(np.argmax(precision))
        return ThresholdChoice(float(thresholds[i]), "precision_target", precision_target, float(precision[i]),
                               chosen_on, note=f"precision {precision_target} not reachable on {chosen_on}; "
                                               f"used the most precise threshold ({precision[i]:.3f})")
    allowed = alert_budget_per_day * n_days
    ranked = np.sort(scores)[::-1]
    threshold = float(ranked[min(allowed, len(ranked)) - 1])
    # Ties at the cut would exceed the budget: move just above them then.
    if (scores >= threshold).sum() > allowed:
        threshold = float(np.nextafter(threshold, np.inf))
    return ThresholdChoice(threshold, "alert_budget", float(alert_budget_per_day),
                           float((scores >= threshold).sum() / n_days), chosen_on)
