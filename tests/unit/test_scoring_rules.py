"""Rules and reasons in the scorer (`Scorer.process` with a rules holder over the in-memory store): shadow
matches recorded on the score event, active rules alerting and suppressing, a rule over its cap paused in the
store, a re-run batch fenced to its first run's rule-set version, and reasons that equal the offline path's
for the same model and transactions (the parity of tests/unit/test_scoring_parity.py, for reasons)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fraudctl.contracts import (
    CUSTOMER_ID, DECISION, IS_FRAUD, REASONS, RULES_SHADOW, SCHEMA_VERSION_FIELD, TERMINAL_ID,
    TRANSACTION_ID, TX_DATETIME, read_score_event,
)
from fraudctl.data.lake import Lake
from fraudctl.features import DEFAULT_SPEC, FEATURE_NAMES, compute_features
from fraudctl.rules.ruleset import make_rule
from fraudctl.rules.store import MemoryRuleStore
from fraudctl.stream.model import LoadedModel
from fraudctl.stream.reasons import alert_reasons, unexplained
from fraudctl.stream.rules import RulesHolder
from fraudctl.stream.scorer import Scorer
from fraudctl.stream.state import FeatureState
from tests.unit.test_scoring_scorer import FakeHolder, FakePublisher, L, T, label, records, tx

GENERATED_ARGS = dict(n_customers=80, n_terminals=150, n_days=24, seed=11)


def make_scorer(tmp_path, store, holder=None, publisher=None, explained_alerts_per_batch=None):
    rules = RulesHolder(store, refresh_seconds=60)
    rules.check_now()  # what the background thread does every second; here by hand
    publisher = publisher or FakePublisher()
    scorer = Scorer(transactions_topic=T, labels_topic=L, state=FeatureState(tmp_path / "state", DEFAULT_SPEC),
                    models=holder or FakeHolder(), publisher=publisher, lake=Lake(str(tmp_path / "lake")), rules=rules,
                    explained_alerts_per_batch=explained_alerts_per_batch)
    return scorer, publisher, rules


def events_of(sent) -> dict[str, dict]:
    return {json.loads(v)[TRANSACTION_ID]: json.loads(v) for batch in sent for v in batch["values"]}


BATCH = [(T, tx("a", "2018-05-01T10:00:00", amount=50.0, terminal="T1")),   # model: legit
         (T, tx("b", "2018-05-01T10:01:00", amount=900.0, terminal="T2")),  # model: fraud (AmountModel)
         (T, tx("c", "2018-05-01T10:02:00", amount=30.0, terminal="T9")),
         (T, tx("d", "2018-05-01T10:03:00", amount=700.0, terminal="T9"))]


def test_shadow_rules_are_recorded_on_the_score_event_and_raise_nothing(tmp_path):
    store = MemoryRuleStore()
    store.add([make_rule({"name": "t9", "condition": 'terminal_id == "T9"'})], author="ana")
    scorer, publisher, _ = make_scorer(tmp_path, store)
    scorer.process(records(BATCH), 0)
    events = events_of(publisher.sent)
    assert {tid: e[RULES_SHADOW] for tid, e in events.items()} == {"a": [], "b": [], "c": ["t9"], "d": ["t9"]}
    assert publisher.sent[0]["alert"] == [False, True, False, True]  # the model's alone
    assert all(e[SCHEMA_VERSION_FIELD] == 2 for e in events.values())
    assert scorer.counters.shadow_matches == 2 and scorer.counters.rule_alerts == 0
    assert scorer.state.intent(0).rules_version == 1


def test_active_rules_alert_naming_themselves_and_suppress_the_models_alerts(tmp_path):
    store = MemoryRuleStore()
    store.add([make_rule({"name": "t1-small", "condition": 'terminal_id == "T1" and amount < 100', "mode": "active"}),
               make_rule({"name": "allow-t9", "condition": 'terminal_id == "T9"', "action": "suppress",
                          "mode": "active"})], author="ana")
    scorer, publisher, _ = make_scorer(tmp_path, store)
    scorer.process(records(BATCH), 0)
    events = events_of(publisher.sent)
    assert {tid: e[DECISION] for tid, e in events.items()} == {"a": "fraud", "b": "fraud", "c": "legit", "d": "legit"}
    assert events["a"][REASONS] == {"rules": [{"name": "t1-small", "version": 1}], "features": []}
    assert events["b"][REASONS] == {"rules": [], "features": []}  # the model's alert; AmountModel has no contributions
    assert events["c"][REASONS] is None and events["d"][REASONS] is None
    assert publisher.sent[0]["alert"] == [True, True, False, False]
    assert (scorer.counters.rule_alerts, scorer.counters.suppressed, scorer.counters.alerts) == (1, 1, 2)


def test_a_rule_over_its_cap_is_paused_in_the_store_and_reported(tmp_path):
    store = MemoryRuleStore()
    store.add([make_rule({"name": "wide", "condition": "amount > 0", "mode": "active", "cap": 0.5})], author="ana")
    scorer, publisher, rules = make_scorer(tmp_path, store)
    many = [(T, tx(f"x{i}", f"2018-05-01T10:{i:02d}:00", amount=10.0)) for i in range(10)]
    scorer.process(records(many), 0)
    assert not any(publisher.sent[0]["alert"])  # over its cap in this batch: no alert from it
    assert "wide" in rules.describe()["paused"]
    rules.check_now()  # the background thread writes the pause, then reads the new version
    paused = store.get("wide")
    assert (paused.mode, store.version()) == ("disabled", 2) and "over its cap" in paused.paused
    assert store.changes()[-1].author == "fraudctl-scorer"
    assert rules.for_batch().version == 2 and len(rules.current) == 0


def test_a_rerun_batch_uses_its_first_runs_rule_set_and_sends_the_same_bytes(tmp_path):
    store = MemoryRuleStore()
    store.add([make_rule({"name": "t2", "condition": 'terminal_id == "T2"'})], author="ana")
    scorer, publisher, rules = make_scorer(tmp_path, store, publisher=FakePublisher(fail_flushes=1))
    with pytest.raises(Exception):
        scorer.process(records(BATCH), 0)  # sent, not acknowledged: Spark runs the batch again
    store.set_mode("t2", "active", author="ana")  # the set moves on meanwhile
    store.add([make_rule({"name": "all", "condition": "amount > 0", "mode": "active"})], author="ana")
    rules.check_now()
    scorer.process(records(BATCH), 0)
    assert publisher.sent[1]["values"] == publisher.sent[0]["values"]  # byte-identical
    assert scorer.state.intent(0).rules_version == 1
    scorer.process(records([(T, tx("e", "2018-05-01T11:00:00", amount=5.0))]), 1)  # the next batch: the new set
    assert events_of(publisher.sent[2:])["e"][REASONS]["rules"] == [{"name": "all", "version": 3}]


def test_old_score_events_read_as_version_2():
    old = {"schema_version": 1, TRANSACTION_ID: "a", DECISION: "fraud"}
    assert read_score_event(old) == {**old, RULES_SHADOW: [], REASONS: None}


# --- parity: the same model and transactions give the same reasons online and offline -----------------------

@pytest.fixture(scope="module")
def history(generated) -> pd.DataFrame:
    frame = generated.frame.drop(columns=["fraud_scenario"])
    frame[TRANSACTION_ID] = frame[TRANSACTION_ID].astype(str)
    frame[CUSTOMER_ID], frame[TERMINAL_ID] = frame[CUSTOMER_ID].astype(str), frame[TERMINAL_ID].astype(str)
    return frame.sort_values([TX_DATETIME, TRANSACTION_ID], kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def lightgbm_model(history) -> LoadedModel:
    from fraudctl.model.estimators import make_estimator

    featured = compute_features(history)
    estimator = make_estimator("lightgbm", random_state=0)
    estimator.fit(featured[FEATURE_NAMES], featured[IS_FRAUD].astype(int))
    threshold = float(np.quantile(estimator.predict_proba(featured[FEATURE_NAMES])[:, 1], 0.97))
    return LoadedModel("fraud-detector", "1", estimator, threshold)


def kafka_stream(history: pd.DataFrame, delay_days: int) -> list[tuple[str, bytes]]:
    """Transactions and their labels (each due delay_days later) in time order, as replay sends them."""
    items = []
    for row in history.itertuples(index=False):
        when = row.tx_datetime.strftime("%Y-%m-%dT%H:%M:%S")
        items.append((row.tx_datetime, 1, (T, tx(row.transaction_id, when, row.customer_id, row.terminal_id, row.amount))))
        items.append((row.tx_datetime + pd.Timedelta(days=delay_days), 0,
                      (L, label(row.transaction_id, when, int(row.is_fraud), row.customer_id, row.terminal_id))))
    items.sort(key=lambda item: (item[0], item[1]))
    return [event for *_, event in items]


def test_online_and_offline_reasons_agree(history, lightgbm_model, tmp_path):
    store = MemoryRuleStore()
    store.add([make_rule({"name": "busy", "condition": "customer_tx_count_1d >= 4 and amount > 80", "mode": "active"}),
               make_rule({"name": "night", "condition": "is_night == 1 and amount > 150"})], author="ana")
    holder = FakeHolder()
    holder.models = {"1": lightgbm_model}
    scorer, publisher, rules = make_scorer(tmp_path, store, holder=holder)
    stream = kafka_stream(history, DEFAULT_SPEC.delay_days)
    for batch_id, start in enumerate(range(0, len(stream), 1500)):
        scorer.process(records(stream[start:start + 1500]), batch_id)
    online = events_of(publisher.sent)

    featured = compute_features(history)  # the offline path: the same definitions over the whole history
    model_alert = lightgbm_model.score(featured) >= lightgbm_model.threshold
    verdict = store.current().compiled().verdict(featured, model_alert)
    offline = alert_reasons(lightgbm_model.estimator, featured, verdict.alert, verdict.matched)
    offline = {featured[TRANSACTION_ID].iloc[i]: reason for i, reason in offline.items()}

    alerted = {tid for tid, e in online.items() if e[DECISION] == "fraud"}
    assert alerted == set(offline) and len(alerted) > 20
    assert any(r["rules"] for r in offline.values()) and any(not r["rules"] for r in offline.values())
    for tid in alerted:
        got, want = online[tid][REASONS], offline[tid]
        assert got["rules"] == want["rules"]
        assert [f["feature"] for f in got["features"]] == [f["feature"] for f in want["features"]]
        np.testing.assert_allclose([f["contribution"] for f in got["features"]],
                                   [f["contribution"] for f in want["features"]], atol=2e-6)
        assert len(got["features"]) == 3
    shadow = {tid for tid, e in online.items() if e[RULES_SHADOW] == ["night"]}
    assert shadow == set(featured[TRANSACTION_ID][verdict_shadow(verdict)])


def test_over_the_cap_the_highest_scores_get_contributions_and_every_alert_names_its_rules(history, lightgbm_model):
    featured = compute_features(history)
    scores = lightgbm_model.score(featured)
    alert = scores >= np.quantile(scores, 0.9)
    matched = [[("r", 2)] if i % 2 else [] for i in range(len(featured))]
    whole = alert_reasons(lightgbm_model.estimator, featured, alert, matched)
    capped = alert_reasons(lightgbm_model.estimator, featured, alert, matched, scores=scores, explain_at_most=25)

    assert set(capped) == set(whole) and len(whole) > 100
    explained = {i for i, r in capped.items() if r["features"] is not None}
    highest = set(np.flatnonzero(alert)[np.argsort(-scores[alert], kind="stable")][:25].tolist())
    assert explained == highest
    assert all(capped[i] == whole[i] for i in explained)  # the same contributions as uncapped
    assert all(capped[i]["rules"] == whole[i]["rules"] and capped[i]["features"] is None for i in set(whole) - explained)
    assert unexplained(capped) == len(whole) - 25 and unexplained(whole) == 0
    none = alert_reasons(lightgbm_model.estimator, featured, alert, matched, scores=scores, explain_at_most=0)
    assert unexplained(none) == len(whole)


def test_the_scorer_caps_contributions_per_batch_and_a_rerun_keeps_its_first_runs_cap(history, lightgbm_model,
                                                                                       tmp_path):
    holder = FakeHolder()
    low = LoadedModel("fraud-detector", "1", lightgbm_model.estimator, 0.0)  # alerts on every row: a storm
    holder.models = {"1": low}
    scorer, publisher, _ = make_scorer(tmp_path, MemoryRuleStore(), holder=holder,
                                       publisher=FakePublisher(fail_flushes=1), explained_alerts_per_batch=5)
    batch = kafka_stream(history, DEFAULT_SPEC.delay_days)[:400]
    with pytest.raises(Exception):
        scorer.process(records(batch), 0)  # sent, not acknowledged: Spark runs the batch again
    scorer.explained_alerts_per_batch = 50  # a restart with another setting: the re-run keeps the first one
    scorer.process(records(batch), 0)
    assert publisher.sent[1]["values"] == publisher.sent[0]["values"]  # byte-identical
    events = events_of(publisher.sent[1:])
    alerts = [e for e in events.values() if e[DECISION] == "fraud"]
    assert len(alerts) == len(events) > 5
    assert sum(e[REASONS]["features"] is not None for e in alerts) == 5
    assert scorer.counters.unexplained_alerts == len(alerts) - 5
    assert scorer.state.intent(0).explained_alerts == 5


def verdict_shadow(verdict) -> np.ndarray:
    return np.array([names == ["night"] for names in verdict.shadow])


def test_contributions_add_up_to_the_raw_score(history, lightgbm_model):
    from fraudctl.model.explain import contributions, raw_score

    featured = compute_features(history).iloc[:500]
    explained = contributions(lightgbm_model.estimator, featured)
    np.testing.assert_allclose(explained.values.sum(axis=1) + explained.expected,
                               raw_score(lightgbm_model.estimator, featured), atol=1e-9)


def test_the_holder_swaps_between_batches_and_keeps_its_set_when_the_store_is_unreachable():
    from fraudctl.errors import UnavailableError

    store = MemoryRuleStore()
    store.add([make_rule({"name": "a", "condition": "amount > 1", "mode": "active"})], author="ana")
    holder = RulesHolder(store)
    holder.check_now()
    assert holder.current.version == 0  # staged, not swapped: a batch running now keeps its set
    assert (holder.describe()["version"], holder.describe()["last_batch_version"]) == (1, 0)  # read, not yet used
    assert holder.for_batch().version == 1 and holder.describe()["active"] == ["a"]
    assert holder.describe()["last_batch_version"] == 1

    class Down:
        def version(self):
            raise UnavailableError("connection refused")

    holder.source = Down()
    holder.check_now()
    assert "rule store unreachable: connection refused" in holder.describe()["degraded"]
    assert holder.for_batch().version == 1  # the set in hand keeps applying
    holder.source = store
    holder.check_now()
    assert holder.describe()["degraded"] is None


def test_an_emptied_set_is_staged_and_reported_like_any_other():
    """An empty rule set is falsy: the holder must still stage it, and the status must name its version before
    a batch runs (what `bench_scorer.py --rules` and an operator read)."""
    store = MemoryRuleStore()
    store.add([make_rule({"name": "a", "condition": "amount > 1", "mode": "active"})], author="ana")
    holder = RulesHolder(store)
    holder.check_now()
    assert holder.for_batch().version == 1
    store.remove("a", author="ana")
    holder.check_now()
    described = holder.describe()
    assert (described["version"], described["active"], described["last_batch_version"]) == (2, [], 1)
    assert holder.for_batch().version == 2 and len(holder.current) == 0


def test_an_alert_past_the_cap_says_why_it_has_no_contributions():
    from fraudctl.cli.scorer import reason_text

    rules = [{"name": "big", "version": 4}]
    assert reason_text({"rules": rules, "features": [{"feature": "amount", "contribution": 1.9}]}) == "rule big v4; amount +1.9"
    assert reason_text({"rules": rules, "features": None}) == \
        "rule big v4; no contributions (batch over scorer.explained_alerts_per_batch)"
    assert reason_text({"rules": [], "features": []}) == "-"  # an estimator without contributions
