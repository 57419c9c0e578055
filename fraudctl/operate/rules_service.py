"""The core of `fraudctl rules ...` (no typer here): rules from options or a YAML file, checked before the
store sees them, and the store's answers as plain data."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from fraudctl.errors import BadInputError, NotFoundError
from fraudctl.rules.ruleset import Rule, make_rule
from fraudctl.rules.store import RuleStore


def author(given: str | None) -> str:
    """Who makes a change: --author, else the OS user."""
    if given:
        return given
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without passwd entry)
        return "unknown"


def read_rules_file(path: Path) -> list[Rule]:
    """A YAML file of one rule (a mapping) or a list of rules; errors name the file, the line and the field."""
    import yaml

    if not path.is_file():
        raise NotFoundError(f"no rules file {path}")
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise BadInputError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        raise BadInputError(f"{path}: no rule in the file")
    items, nodes = (data, node.value) if isinstance(data, list) else ([data], [node])
    rules, seen = [], set()
    for item, item_node in zip(items, nodes):
        lines = _field_lines(item_node)
        start = item_node.start_mark.line + 1

        def where(field: str | None, lines=lines, start=start) -> str:
            return f"{path}:{lines.get(field, start)}" if field else f"{path}:{start}"
        rule = make_rule(item, where=where)
        if rule.name in seen:
            raise BadInputError(f"{where('name')}: field 'name': rule {rule.name!r} is in the file twice")
        seen.add(rule.name)
        rules.append(rule)
    return rules


def _field_lines(node) -> dict[str, int]:
    """field -> the line of its value, in one rule's YAML mapping."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: value.start_mark.line + 1 for key, value in node.value if isinstance(key, yaml.ScalarNode)}


def add(store: RuleStore, rules: list[Rule], *, who: str, replace_existing: bool) -> dict[str, Any]:
    changes = store.add(rules, author=who, replace_existing=replace_existing)
    changed = {c.rule for c in changes}
    return {"version": store.version(), "changes": [c.as_dict() for c in changes],
            "unchanged": [r.name for r in rules if r.name not in changed]}


def listing(store: RuleStore) -> dict[str, Any]:
    current = store.current()
    return {"version": current.version, "rules": [r.as_dict() for r in current.rules]}


def show(store: RuleStore, name: str) -> dict[str, Any]:
    rule = store.get(name)
    return {"rule": rule.as_dict(), "history": [c.as_dict() for c in store.changes(rule=name)]}


def set_mode(store: RuleStore, name: str, mode: str, *, who: str) -> dict[str, Any]:
    changes = store.set_mode(name, mode, author=who)
    return {"version": store.version(), "changes": [c.as_dict() for c in changes], "rule": store.get(name).as_dict()}


def remove(store: RuleStore, name: str, *, who: str) -> dict[str, Any]:
    changes = store.remove(name, author=who)
    return {"version": store.version(), "changes": [c.as_dict() for c in changes]}
