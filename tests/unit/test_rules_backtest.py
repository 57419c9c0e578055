"""`fraudctl rules test` (fraudctl.operate.backtest) over a lake seeded as the scorer writes it: its figures
equal a direct count over the same window, on the offline features of the whole history."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from bench.support import seed_lake
from fraudctl.config import load_config
from fraudctl.data.lake import Lake, lake_uri
from fraudctl.features import compute_features
from fraudctl.operate import backtest
from fraudctl.rules.ruleset import make_rule

GENERATED_ARGS = dict(n_customers=150, n_terminals=300, n_days=60, seed=21)


@pytest.fixture(scope="module")
def seeded(generated, tmp_path_factory):
    folder = tmp_path_factory.mktemp("backtest")
    (folder / "fraudctl.yaml").write_text(
        f"runtime: {{kind: native, state_dir: {folder / 'state'}}}\nstorage: {{kind: local}}\n")
    config = load_config(folder / "fraudctl.yaml")
    seed_lake(Lake(lake_uri(config)), generated.frame)
    return config, generated.frame


RULES = [make_rule({"name": "busy-big", "condition": "amount > 100 and customer_tx_count_1d >= 3"}),
         make_rule({"name": "t-risk", "condition": "terminal_fraud_share_7d > 0"})]


def direct(frame: pd.DataFrame, since: dt.date, until: dt.date) -> pd.DataFrame:
    """Offline features of the generated history, by hand: ids as text, as the lake has them."""
    history = frame.drop(columns=["fraud_scenario"]).astype({"transaction_id": str, "customer_id": str,
                                                             "terminal_id": str})
    featured = compute_features(history.astype({"is_fraud": "float64"}))
    inside = (featured["tx_datetime"] >= pd.Timestamp(since)) & (featured["tx_datetime"] < pd.Timestamp(until))
    return featured[inside]


def test_backtest_figures_equal_a_direct_count(seeded):
    config, frame = seeded
    since, until = dt.date(2018, 5, 10), dt.date(2018, 5, 24)
    report = backtest.run(config, RULES, since=since, until=until, with_model=False)
    window = direct(frame, since, until)
    assert (report["since"], report["until"]) == ("2018-05-10", "2018-05-24")
    assert report["transactions"] == len(window) and report["frauds"] == int((window["is_fraud"] == 1).sum())
    hits = {"busy-big": (window["amount"] > 100) & (window["customer_tx_count_1d"] >= 3),
            "t-risk": window["terminal_fraud_share_7d"] > 0}
    for figures in report["rules"]:
        hit = hits[figures["name"]].to_numpy()
        fraud = (window["is_fraud"] == 1).to_numpy()
        assert figures["matches"] == hit.sum() > 0
        assert figures["frauds"] == (hit & fraud).sum()
        assert figures["precision"] == pytest.approx((hit & fraud).sum() / hit.sum())
        assert figures["recall"] == pytest.approx((hit & fraud).sum() / fraud.sum())
        days = window["tx_datetime"].dt.strftime("%Y-%m-%d")[hit].value_counts()
        assert figures["per_day"] == {day: int(n) for day, n in sorted(days.items())}
        assert figures["model_alerts_too"] is None  # without the model


def test_what_a_rule_adds_to_the_models_alerts(seeded):
    config, frame = seeded
    window = direct(frame, dt.date(2018, 5, 10), dt.date(2018, 5, 24)).reset_index(drop=True)
    model_alert = (window["amount"] > 150).to_numpy()  # a stand-in model
    figures = backtest.rule_figures(RULES[0], window, model_alert)
    hit = ((window["amount"] > 100) & (window["customer_tx_count_1d"] >= 3)).to_numpy()
    assert figures["model_alerts_too"] == (hit & model_alert).sum()
    assert figures["adds"] == (hit & ~model_alert).sum() > 0
    assert figures["adds_frauds"] == (hit & ~model_alert & (window["is_fraud"] == 1).to_numpy()).sum()


def test_the_default_window_is_the_lakes_last_30_days():
    since, until = backtest.window(["2018-04-01", "2018-05-30"], None, None)
    assert (since, until) == (dt.date(2018, 5, 1), dt.date(2018, 5, 31))
    with pytest.raises(Exception, match="no transactions"):
        backtest.window([], None, None)


def test_the_champion_scores_the_window_for_what_a_rule_adds(seeded, monkeypatch):
    """`rules test` asks the registry for @champion and its threshold (a stand-in registry here)."""
    import fraudctl.model.registry as registry

    class Estimator:
        def predict_proba(self, x):
            p = (x["amount"].to_numpy() > 150).astype(float)
            return np.column_stack([1 - p, p])

    class FakeRegistry:
        def __init__(self, config):
            pass

        def alias_version(self, alias):
            return "3" if alias == "champion" else None

        def load_model(self, version):
            return Estimator()

        def threshold(self, version):
            return 0.5

    monkeypatch.setattr(registry, "Registry", FakeRegistry)
    config, frame = seeded
    since, until = dt.date(2018, 5, 10), dt.date(2018, 5, 24)
    report = backtest.run(config, RULES[:1], since=since, until=until)
    window = direct(frame, since, until)
    model_alert = (window["amount"] > 150).to_numpy()
    hit = ((window["amount"] > 100) & (window["customer_tx_count_1d"] >= 3)).to_numpy()
    assert report["model"] == "fraud-detector v3" and report["model_alerts"] == model_alert.sum()
    figures = report["rules"][0]
    assert (figures["model_alerts_too"], figures["adds"]) == ((hit & model_alert).sum(), (hit & ~model_alert).sum())
