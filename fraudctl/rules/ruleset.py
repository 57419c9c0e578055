"""Rules and rule sets: what a rule is (checked when it is made), and a set's verdict on a micro-batch.

A rule: a name, a condition (fraudctl.rules.condition), an action (`alert`: raise an alert naming the rule;
`suppress`: remove the model's alert, for an allow-list), a mode (`shadow`: matches recorded on the score
event, nothing raised — a new rule's default; `active`; `disabled`) and an optional cap: the largest share of
a batch an active `alert` rule may alert on. A batch in which it matches more (and at least CAP_MIN_MATCHES
rows, so one odd row of a tiny batch does not count) gets no alert from it, and the scorer pauses it in the
store (disabled, with the reason), which `scorer status` and `rules list` report.

The verdict depends only on the batch and the set's version, so a re-run batch pinned to the version its
first run used gives the same output.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from fraudctl.errors import BadInputError
from fraudctl.rules.condition import Condition, compile_condition

ALERT, SUPPRESS = "alert", "suppress"
ACTIONS = (ALERT, SUPPRESS)
SHADOW, ACTIVE, DISABLED = "shadow", "active", "disabled"
MODES = (SHADOW, ACTIVE, DISABLED)
CAP_MIN_MATCHES = 5
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
RULE_FIELDS = ("name", "condition", "action", "mode", "cap", "description")


@dataclass(frozen=True)
class Rule:
    name: str
    condition: str
    action: str = ALERT
    mode: str = SHADOW
    cap: float | None = None
    description: str = ""
    version: int = 0  # the set version of the rule's last change (0: not stored yet)
    paused: str | None = None  # why the scorer paused it (over its cap), while it stays disabled

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_rule(data: Mapping[str, Any], *, where: str | Callable[[str | None], str] = "rule") -> Rule:
    """A checked Rule from plain data (a YAML item, CLI options). BadInputError names where and the field;
    `where` may be a function of the field (None: the rule itself), e.g. a file's line of that field."""
    at = where if callable(where) else (lambda field: where)

    def bad(field: str | None, message: str, detail: str | None = None) -> BadInputError:
        return BadInputError(f"{at(field)}: " + (f"field {field!r}: " if field else "") + message, detail=detail)

    if not isinstance(data, Mapping):
        raise bad(None, f"a rule is a mapping of {', '.join(RULE_FIELDS)}, not {type(data).__name__}")
    unknown = sorted(set(data) - set(RULE_FIELDS), key=str)
    if unknown:
        raise bad(unknown[0], f"unknown field: expected {', '.join(RULE_FIELDS)}")
    for required in ("name", "condition"):
        if data.get(required) in (None, ""):
            raise bad(None, f"field {required!r} is missing")
    name = data["name"]
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise bad("name", f"{name!r} is not a rule name: expected lower-case letters, digits, '_', '-', '.', "
                          "starting with a letter, at most 63 characters")
    action = data.get("action") or ALERT
    if action not in ACTIONS:
        raise bad("action", f"{action!r}: expected one of {', '.join(ACTIONS)}")
    mode = data.get("mode") or SHADOW
    if mode not in MODES:
        raise bad("mode", f"{mode!r}: expected one of {', '.join(MODES)}")
    cap = data.get("cap")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float)) or not 0 < cap <= 1):
        raise bad("cap", f"{cap!r}: expected a share of the batch, 0 < cap <= 1")
    description = data.get("description") or ""
    if not isinstance(description, str) or len(description) > 500:
        raise bad("description", "expected text of at most 500 characters")
    try:
        compile_condition(data["condition"])
    except BadInputError as exc:
        raise bad("condition", exc.message, exc.detail) from None
    return Rule(name, data["condition"].strip(), action, mode, None if cap is None else float(cap), description)


@dataclass(frozen=True)
class RuleSet:
    """The rules of one set version (0: no rule was ever added)."""

    version: int
    rules: tuple[Rule, ...] = ()

    def compiled(self) -> "CompiledRules":
        return CompiledRules(self)


class RowLists:
    """Per row, the labels of the rules that matched it, from a (rules x rows) matrix of hits: built for a row
    when asked (reasons ask for the alerting rows only), so a batch pays for its matches, not its rows."""

    def __init__(self, hits: np.ndarray, labels: list):
        self.hits, self.labels = hits, labels

    def __getitem__(self, row: int) -> list:
        return [self.labels[j] for j in np.flatnonzero(self.hits[:, row]).tolist()] if len(self.labels) else []

    def __len__(self) -> int:
        return self.hits.shape[1]

    def __iter__(self):
        return (self[row] for row in range(len(self)))

    def __eq__(self, other) -> bool:
        return list(self) == list(other)

    def all(self) -> list[list]:
        """Every row's list (a score event's `rules_shadow`), in one pass over the matches."""
        out: list[list] = [[] for _ in range(len(self))]
        rows, columns = np.nonzero(self.hits.T)  # row by row, each row's rules in their order
        labels = self.labels
        for row, column in zip(rows.tolist(), columns.tolist()):
            out[row].append(labels[column])
        return out


@dataclass
class Verdict:
    """A set's verdict on a batch, row by row (in the batch's row order)."""

    alert: np.ndarray  # the final decision: the model's alerts, less suppressed rows, plus active alert rules
    matched: RowLists  # per row: the active rules that matched (name, version), both actions
    shadow: list[list[str]]  # per row: the shadow rules that matched
    over_cap: dict[str, str] = field(default_factory=dict)  # rule name -> why it was paused in this batch
    rule_alerts: dict[str, int] = field(default_factory=dict)  # rule name -> rows it alerted on


class CompiledRules:
    def __init__(self, ruleset: RuleSet):
        self.version = ruleset.version
        live = [rule for rule in ruleset.rules if rule.mode in (SHADOW, ACTIVE)]
        self.rules: list[tuple[Rule, Condition]] = [(rule, compile_condition(rule.condition)) for rule in live]

    def __len__(self) -> int:
        return len(self.rules)

    def verdict(self, frame: pd.DataFrame, model_alert: np.ndarray) -> Verdict:
        n = len(frame)
        alert = np.asarray(model_alert, dtype=bool).copy()
        cache: dict[str, np.ndarray] = {}
        suppressed, raised = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        shadow_hits, shadow_names, active_hits, active_labels = [], [], [], []
        over_cap, rule_alerts = {}, {}
        for rule, condition in (self.rules if n else []):
            hits = condition.evaluate(frame, cache)
            matches = int(hits.sum())
            if not matches:
                continue
            if rule.mode == SHADOW:
                shadow_hits.append(hits)
                shadow_names.append(rule.name)
                continue
            if rule.action == ALERT and rule.cap is not None and matches >= CAP_MIN_MATCHES and matches > rule.cap * n:
                over_cap[rule.name] = (f"over its cap: matched {matches:,} of {n:,} rows "
                                       f"({matches / n:.1%} > {rule.cap:.1%}) at set version {self.version}")
                continue
            active_hits.append(hits)
            active_labels.append((rule.name, rule.version))
            if rule.action == SUPPRESS:
                suppressed |= hits
            else:
                raised |= hits
                rule_alerts[rule.name] = matches
        shadow = RowLists(np.array(shadow_hits).reshape(len(shadow_hits), n), shadow_names).all()
        matched = RowLists(np.array(active_hits).reshape(len(active_hits), n), active_labels)
        return Verdict((alert & ~suppressed) | raised, matched, shadow, over_cap, rule_alerts)
