"""A rule set's history: every change is a numbered record (the set's version), and the set at any version is
the fold of the changes up to it. Both stores (PostgreSQL, and the in-memory one of the tests) keep the
records and use this one fold, so a past version reads back the same from either.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable

from fraudctl.errors import NotFoundError, RefusedError
from fraudctl.rules.ruleset import ACTIVE, DISABLED, SHADOW, Rule, RuleSet

ADD, REPLACE, ENABLE, SHADOWED, DISABLE, PAUSE, REMOVE = "add", "replace", "enable", "shadow", "disable", "pause", "remove"
SCORER_AUTHOR = "fraudctl-scorer"  # the author of the pauses the scorer makes


@dataclass(frozen=True)
class Change:
    version: int
    at: str  # ISO-8601 UTC
    author: str
    rule: str
    what: str  # ADD, REPLACE, ENABLE, SHADOWED, DISABLE, PAUSE, REMOVE
    detail: str  # e.g. the fields that changed, or why the scorer paused it
    after: dict[str, Any] | None  # the rule after the change (None: removed)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fold(changes: Iterable[Change], version: int | None = None) -> RuleSet:
    """The set at `version` (None: the latest) from the changes, in any order."""
    rules: dict[str, Rule] = {}
    top = 0
    for change in sorted(changes, key=lambda c: c.version):
        if version is not None and change.version > version:
            break
        top = change.version
        if change.after is None:
            rules.pop(change.rule, None)
        else:
            rules[change.rule] = Rule(**change.after)
    return RuleSet(top if version is None else version, tuple(sorted(rules.values(), key=lambda r: r.name)))


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plan_add(current: dict[str, Rule], rule: Rule, *, replace_existing: bool) -> tuple[str, str] | None:
    """(what, detail) of adding `rule` to a set holding `current`; None when it is there already as given."""
    existing = current.get(rule.name)
    if existing is None:
        return ADD, f"{rule.action} when {rule.condition} ({rule.mode})"
    differing = [name for name in ("condition", "action", "mode", "cap", "description")
                 if getattr(existing, name) != getattr(rule, name)]
    if not differing:
        return None
    if not replace_existing:
        raise RefusedError(f"rule {rule.name!r} exists (version {existing.version}) with another "
                           f"{', '.join(differing)}", hint="pass --replace to replace it")
    return REPLACE, ", ".join(f"{name}: {getattr(existing, name)!r} -> {getattr(rule, name)!r}" for name in differing)


def plan_mode(current: dict[str, Rule], name: str, mode: str) -> tuple[str, str] | None:
    """(what, detail) of setting a rule's mode; None when it has that mode already (and is not paused)."""
    existing = current.get(name)
    if existing is None:
        raise NotFoundError(f"no rule named {name!r}", hint="fraudctl rules list")
    if existing.mode == mode and not existing.paused:
        return None
    what = {ACTIVE: ENABLE, SHADOW: SHADOWED, DISABLED: DISABLE}[mode]
    return what, f"mode {existing.mode} -> {mode}"


def changed_rule(current: dict[str, Rule], name: str, version: int, **fields: Any) -> dict[str, Any]:
    """The `after` of a change to an existing rule: its fields updated and stamped with the new version."""
    return asdict(replace(current[name], version=version, **fields))


def new_rule(rule: Rule, version: int) -> dict[str, Any]:
    return asdict(replace(rule, version=version, paused=None))


def to_json(after: dict[str, Any] | None) -> str | None:
    return None if after is None else json.dumps(after, sort_keys=True)

