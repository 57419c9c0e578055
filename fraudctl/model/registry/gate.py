"""The promotion gate: a pure decision over two sets of holdout metrics, and the record of a comparison.

A candidate replaces the champion only when both were scored on the SAME holdout and the candidate's
average precision is higher by a positive gain of at least `margin` (`model.promotion_margin`). With no
champion there is nothing to beat. No MLflow here: `fraudctl.model.registry.lifecycle` scores the two models
and calls `gate`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

GATE_METRIC = "average_precision"
HEADLINE_METRICS = ("roc_auc", "average_precision", "card_precision_at_100")


@dataclass(frozen=True)
class Verdict:
    passes: bool
    reason: str
    gain: float | None  # candidate minus champion on GATE_METRIC; None without a champion


def headline(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics a comparison reports, as floats."""
    return {k: float(metrics[k]) for k in HEADLINE_METRICS}


def gate(candidate: Mapping[str, float], champion: Mapping[str, float] | None, margin: float) -> Verdict:
    """Whether the candidate may replace the champion, both measured on the same holdout."""
    if champion is None:
        return Verdict(True, "no champion yet: the first promotion needs no gate", None)
    cand, champ = float(candidate[GATE_METRIC]), float(champion[GATE_METRIC])
    if math.isnan(cand) or math.isnan(champ):
        return Verdict(False, f"average precision cannot be measured on this holdout (candidate {cand}, "
                              f"champion {champ}): a holdout without frauds compares nothing", None)
    gain = cand - champ
    passes = gain > 0 and gain >= margin
    reason = (f"average precision {cand:.4f} vs champion {champ:.4f}: gain {gain:+.4f}, "
              f"required > 0 and >= {margin:g}")
    return Verdict(passes, reason, gain)


def overlap_warning(champion_train_window: str | None, holdout_first_day: str) -> str | None:
    """A warning when the champion trained on days of the holdout ('START..END', END exclusive)."""
    if not champion_train_window or ".." not in champion_train_window:
        return None
    train_end = champion_train_window.split("..")[1]
    if train_end > holdout_first_day[:10]:
        return (f"the champion was trained on data up to {train_end} (exclusive), which overlaps this "
                f"holdout: the comparison favours the champion")
    return None


@dataclass
class Comparison:
    """Candidate and champion scored on the candidate's holdout, and the gate's verdict."""

    candidate: str
    champion: str | None
    holdout: dict[str, Any]  # rows, frauds, first_tx, last_tx, of_version
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    margin: float
    passes: bool
    reason: str
    warnings: list[str]

    @property
    def already_champion(self) -> bool:
        return self.champion == self.candidate

    def moves_champion(self, force: bool = False) -> bool:
        """Whether promoting would move @champion (the gate passes, or `force` overrides it)."""
        return not self.already_champion and (self.passes or force)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
