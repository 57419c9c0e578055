"""Rules and their history (fraudctl.rules.ruleset, .history, .store with the in-memory store; the PostgreSQL
store runs the same operations in tests/integration/test_rules.py), and rules files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudctl.errors import BadInputError, ExitCode, NotFoundError, RefusedError
from fraudctl.operate.rules_service import read_rules_file
from fraudctl.rules.ruleset import CAP_MIN_MATCHES, Rule, RuleSet, make_rule
from fraudctl.rules.store import MemoryRuleStore


def rule(name="big", condition="amount > 500", **fields) -> Rule:
    return make_rule({"name": name, "condition": condition, **fields})


def frame(amounts, terminals=None) -> pd.DataFrame:
    n = len(amounts)
    return pd.DataFrame({"amount": np.asarray(amounts, dtype=float),
                         "terminal_id": terminals or [f"T{i}" for i in range(n)]})


def test_a_new_rule_is_a_shadow_alert_rule_and_bad_fields_are_named():
    made = rule()
    assert (made.action, made.mode, made.cap) == ("alert", "shadow", None)
    for data, message in [({"name": "Bad Name", "condition": "amount > 1"}, "field 'name'"),
                          ({"name": "a", "condition": "amount > 1", "mode": "on"}, "field 'mode': 'on'"),
                          ({"name": "a", "condition": "amount > 1", "action": "block"}, "field 'action'"),
                          ({"name": "a", "condition": "amount > 1", "cap": 2}, "field 'cap'"),
                          ({"name": "a", "condition": "amount >"}, "field 'condition': condition 1:"),
                          ({"name": "a", "condition": "x > 1", "colour": 1}, "field 'colour': unknown field"),
                          ({"name": "a"}, "field 'condition' is missing")]:
        with pytest.raises(BadInputError, match=message) as caught:
            make_rule(data, where="here")
        assert caught.value.message.startswith("here: ") and caught.value.exit_code == ExitCode.BAD_INPUT


def verdict_of(rules, amounts, model_alert, version=3):
    return RuleSet(version, tuple(rules)).compiled().verdict(frame(amounts), np.asarray(model_alert))


def test_shadow_rules_are_recorded_and_raise_nothing():
    v = verdict_of([rule(mode="shadow")], [100, 600, 700], [False, False, True])
    assert v.alert.tolist() == [False, False, True]  # the model's own alerts only
    assert v.shadow == [[], ["big"], ["big"]] and v.matched == [[], [], []]


def test_active_alert_rules_raise_alerts_naming_them_and_suppress_removes_the_models():
    active = Rule("big", "amount > 500", mode="active", version=4)
    allow = Rule("allow-t1", 'terminal_id == "T1"', action="suppress", mode="active", version=5)
    off = Rule("off", "amount > 0", mode="disabled", version=6)
    v = verdict_of([active, allow, off], [100, 50, 600, 10], [True, True, False, False])
    assert v.alert.tolist() == [True, False, True, False]
    assert v.matched == [[], [("allow-t1", 5)], [("big", 4)], []]
    assert v.rule_alerts == {"big": 1}


def test_an_alert_rule_over_its_cap_raises_nothing_in_that_batch_and_is_reported():
    capped = Rule("wide", "amount > 10", mode="active", cap=0.1, version=2)
    amounts = [100.0] * CAP_MIN_MATCHES + [1.0] * 20
    v = verdict_of([capped], amounts, [False] * len(amounts))
    assert not v.alert.any() and "wide" in v.over_cap and "over its cap: matched 5 of 25 rows" in v.over_cap["wide"]
    # A few matches in a small batch are not judged against the cap.
    v = verdict_of([capped], [100.0] * (CAP_MIN_MATCHES - 1) + [1.0], [False] * CAP_MIN_MATCHES)
    assert v.alert.sum() == CAP_MIN_MATCHES - 1 and not v.over_cap


def test_the_store_numbers_every_change_and_rebuilds_any_past_version():
    store = MemoryRuleStore()
    assert store.version() == 0 and store.current() == RuleSet(0)
    store.add([rule("a"), rule("b", "amount < 1")], author="ana")
    store.set_mode("a", "active", author="bo")
    store.remove("b", author="ana")
    store.add([rule("a", "amount > 900")], author="cy", replace_existing=True)
    assert store.version() == 5
    assert [(c.version, c.author, c.rule, c.what) for c in store.changes()] == [
        (1, "ana", "a", "add"), (2, "ana", "b", "add"), (3, "bo", "a", "enable"), (4, "ana", "b", "remove"),
        (5, "cy", "a", "replace")]
    assert [(r.name, r.mode, r.version) for r in store.at(2).rules] == [("a", "shadow", 1), ("b", "shadow", 2)]
    assert [(r.name, r.mode) for r in store.at(3).rules] == [("a", "active"), ("b", "shadow")]
    assert [(r.name, r.mode, r.condition) for r in store.at(4).rules] == [("a", "active", "amount > 500")]
    assert store.at(5).rules == store.current().rules and store.current().rules[0].condition == "amount > 900"
    with pytest.raises(NotFoundError):
        store.at(6)


def test_adding_again_as_given_changes_nothing_and_a_different_rule_needs_replace():
    store = MemoryRuleStore()
    store.add([rule("a")], author="ana")
    assert store.add([rule("a")], author="ana") == [] and store.version() == 1
    with pytest.raises(RefusedError, match="exists .* with another condition") as caught:
        store.add([rule("b"), rule("a", "amount > 1")], author="ana")
    assert "--replace" in caught.value.hint
    assert store.version() == 1 and [r.name for r in store.current().rules] == ["a"]  # all or none


def test_a_pause_applies_once_to_the_rule_version_it_was_found_on():
    store = MemoryRuleStore()
    store.add([rule("a", mode="active", cap=0.1)], author="ana")
    assert store.pause("a", "over its cap", rule_version=1)[0].what == "pause"
    paused = store.get("a")
    assert (paused.mode, paused.paused, store.version()) == ("disabled", "over its cap", 2)
    assert store.pause("a", "over its cap", rule_version=1) == []  # a re-run batch: nothing twice
    store.set_mode("a", "active", author="ana")
    assert store.get("a").paused is None and store.get("a").mode == "active"


def test_unknown_rules_are_not_found():
    store = MemoryRuleStore()
    for call in (lambda: store.get("x"), lambda: store.set_mode("x", "active", author="a"),
                 lambda: store.remove("x", author="a")):
        with pytest.raises(NotFoundError, match="no rule named 'x'"):
            call()


def test_a_rules_file_holds_one_rule_or_a_list(tmp_path):
    one = tmp_path / "one.yaml"
    one.write_text("name: big\ncondition: amount > 500\nmode: active\n")
    assert [r.name for r in read_rules_file(one)] == ["big"]
    many = tmp_path / "many.yaml"
    many.write_text("- name: a\n  condition: amount > 1\n- name: b\n  condition: |\n    amount > 2 and\n"
                    "    terminal_id == 'T1'\n  action: suppress\n")
    assert [(r.name, r.action) for r in read_rules_file(many)] == [("a", "alert"), ("b", "suppress")]


@pytest.mark.parametrize("text,message", [
    ("- name: a\n  condition: amount > 1\n- name: b\n  condition: amont > 2\n",
     "bad.yaml:4: field 'condition': condition 1:1: unknown field 'amont'"),
    ("- name: a\n  condition: amount > 1\n  mode: live\n", "bad.yaml:3: field 'mode': 'live'"),
    ("- name: a\n  condition: amount > 1\n- name: a\n  condition: amount > 2\n", "bad.yaml:3: field 'name': rule 'a' is in the file twice"),
    ("name: a\ncondition: [amount\n", "bad.yaml:3:1: not valid YAML"),
    ("- name: a\n  condtion: amount > 1\n", "bad.yaml:2: field 'condtion': unknown field"),
    ("", "bad.yaml: no rule in the file"),
])
def test_a_bad_rules_file_names_the_file_line_and_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError) as caught:
        read_rules_file(path)
    assert caught.value.message.startswith(str(tmp_path) + "/")
    assert message in caught.value.message, caught.value.message
