"""The promotion gate as a pure function over two sets of holdout metrics: no MLflow, no models."""

import math

import pytest

from fraudctl.model.registry.gate import Comparison, gate, headline, overlap_warning


def metrics(ap: float) -> dict[str, float]:
    return {"roc_auc": 0.9, "average_precision": ap, "card_precision_at_100": 0.2}


def test_no_champion_passes_without_a_comparison():
    verdict = gate(metrics(0.1), None, margin=0.5)
    assert verdict.passes and verdict.gain is None and "no champion yet" in verdict.reason


@pytest.mark.parametrize("candidate, champion, margin, passes", [
    (0.60, 0.50, 0.0, True),    # better
    (0.75, 0.50, 0.25, True),   # better by exactly the margin
    (0.75, 0.50, 0.26, False),  # better, but by less than the margin
    (0.50, 0.50, 0.0, False),   # equal: a gain must be positive even with no margin
    (0.40, 0.50, 0.0, False),   # worse
])
def test_gain_must_be_positive_and_reach_the_margin(candidate, champion, margin, passes):
    verdict = gate(metrics(candidate), metrics(champion), margin)
    assert verdict.passes is passes
    assert verdict.gain == pytest.approx(candidate - champion)
    assert f"gain {candidate - champion:+.4f}" in verdict.reason and f">= {margin:g}" in verdict.reason


def test_only_average_precision_decides():
    better_elsewhere = {"roc_auc": 0.99, "average_precision": 0.4, "card_precision_at_100": 0.9}
    assert not gate(better_elsewhere, metrics(0.5), 0.0).passes


def test_unmeasurable_average_precision_refuses():
    verdict = gate(metrics(math.nan), metrics(0.5), 0.0)
    assert not verdict.passes and "cannot be measured" in verdict.reason


def test_headline_keeps_the_three_reported_metrics_as_floats():
    assert headline({"roc_auc": 1, "average_precision": 0.5, "card_precision_at_100": 0.25, "frauds": 7}) == {
        "roc_auc": 1.0, "average_precision": 0.5, "card_precision_at_100": 0.25}


def test_overlap_warning_when_the_champion_trained_on_holdout_days():
    assert "overlaps this holdout" in overlap_warning("2018-05-01..2018-06-02", "2018-05-29 00:01:02")
    assert overlap_warning("2018-05-01..2018-05-29", "2018-05-29 00:01:02") is None  # end is exclusive
    assert overlap_warning(None, "2018-05-29") is None and overlap_warning("junk", "2018-05-29") is None


def test_a_comparison_moves_the_champion_only_when_it_passes_or_is_forced():
    def comparison(champion, passes):
        return Comparison("2", champion, {}, metrics(0.5), None, 0.0, passes, "", [])

    assert comparison("1", True).moves_champion()
    assert not comparison("1", False).moves_champion() and comparison("1", False).moves_champion(force=True)
    assert not comparison("2", False).moves_champion(force=True)  # already champion: nothing moves
    assert comparison(None, True).as_dict()["candidate"] == "2"
