"""Exact contributions: each row's contributions add up to its raw score minus the expected value."""

import numpy as np
import pandas as pd
import pytest

from fraudctl.features import FEATURE_NAMES
from fraudctl.model.estimators import make_estimator
from fraudctl.model.explain import TOP_REASONS, contributions, raw_score


def _data(rows=3000, seed=7):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    signal = 2.0 * frame[FEATURE_NAMES[0]] - 1.5 * frame[FEATURE_NAMES[1]] + rng.normal(size=rows)
    return frame, (signal > 2.0).astype(int)


@pytest.mark.parametrize("name,overrides", [("lightgbm", {"n_estimators": 40}), ("logistic_regression", {})])
def test_contributions_add_up_to_the_raw_score(name, overrides):
    frame, label = _data()
    model = make_estimator(name, 0, **overrides).fit(frame, label)
    explained = contributions(model, frame)
    assert explained is not None and explained.values.shape == (len(frame), len(FEATURE_NAMES))
    np.testing.assert_allclose(explained.values.sum(axis=1) + explained.expected, raw_score(model, frame),
                               atol=1e-6)
    # the features that carry the signal are the ones named
    top = explained.top()
    assert all(len(reasons) == TOP_REASONS for reasons in top)
    named = {r["feature"] for reasons in top for r in reasons[:1]}
    assert named & {FEATURE_NAMES[0], FEATURE_NAMES[1]}


def test_an_estimator_without_exact_contributions_gives_none():
    frame, label = _data(rows=500)
    model = make_estimator("random_forest", 0, n_estimators=5, n_jobs=1).fit(frame, label)
    assert contributions(model, frame) is None


def test_top_is_ordered_by_magnitude_and_signed():
    frame, label = _data(rows=2000)
    model = make_estimator("lightgbm", 0, n_estimators=30).fit(frame, label)
    explained = contributions(model, frame.head(50))
    for row, reasons in zip(explained.values, explained.top()):
        magnitudes = [abs(r["contribution"]) for r in reasons]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert magnitudes[0] == pytest.approx(np.abs(row).max(), abs=1e-6)


def test_the_default_estimator_explains_itself():
    from fraudctl.choices import DEFAULT_ESTIMATOR

    frame, label = _data(rows=1000)
    model = make_estimator(DEFAULT_ESTIMATOR, 0, n_estimators=10).fit(frame, label)
    assert contributions(model, frame.head(5)) is not None


def test_a_lightgbm_model_saved_with_skops_loads_with_the_trusted_types_and_explains_the_same():
    """The registry saves models with skops and loads them with its own allow-list: a LightGBM model must need
    no type outside it, and the loaded model must give the same scores and contributions."""
    import skops.io

    from fraudctl.model.registry import TRUSTED_TYPES

    frame, label = _data(rows=1500)
    model = make_estimator("lightgbm", 0, n_estimators=30).fit(frame, label)
    saved = skops.io.dumps(model)
    assert set(skops.io.get_untrusted_types(data=saved)) <= set(TRUSTED_TYPES)
    loaded = skops.io.loads(saved, trusted=list(TRUSTED_TYPES))
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    np.testing.assert_array_equal(contributions(loaded, frame).values, contributions(model, frame).values)


@pytest.mark.parametrize("name,overrides", [("lightgbm", {"n_estimators": 5}), ("logistic_regression", {})])
def test_no_rows_no_contributions(name, overrides):
    """A micro-batch without alerts asks for the contributions of no rows: an empty answer, not an error."""
    frame, label = _data(rows=500)
    model = make_estimator(name, 0, **overrides).fit(frame, label)
    explained = contributions(model, frame.head(0))
    assert explained.values.shape == (0, len(FEATURE_NAMES)) and explained.top() == []
    assert raw_score(model, frame.head(0)).shape == (0,)
