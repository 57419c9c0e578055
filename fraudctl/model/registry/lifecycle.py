"""Promotion and rollback: score on the same holdout, apply the gate, move @champion, keep the history.

- every version's run holds its holdout (the featured test rows), so `compare` scores the candidate and
  the current champion on the SAME rows and `fraudctl.model.registry.gate` decides;
- the registered model tag `fraudctl.champion_history` lists earlier champions, oldest first; `promote`
  pushes the outgoing champion, `rollback` pops it back;
- `--force` overrides the gate, never the feature contract.
"""

from __future__ import annotations

from typing import Any, Callable

from fraudctl.clock import utc_seconds
from fraudctl.contracts import IS_FRAUD, TX_DATETIME
from fraudctl.errors import NotFoundError, RefusedError
from fraudctl.model.registry.client import CHALLENGER, CHAMPION, TAG, Registry
from fraudctl.model.registry.contract import ContractMismatchError
from fraudctl.model.registry.gate import Comparison, gate, headline, overlap_warning

HISTORY_TAG = f"{TAG}champion_history"


def _holdout_metrics(registry: Registry, version: str, holdout) -> dict[str, float]:
    from fraudctl.model.evaluation import evaluate

    return headline(evaluate(holdout, registry.load(version).scores(holdout)))


def compare(registry: Registry, version: str, *, margin: float | None = None) -> Comparison:
    """Score the candidate and the current champion on the candidate's holdout; apply the gate."""
    margin = registry.config.model.promotion_margin if margin is None else margin
    candidate = str(registry.version(version).version)
    registry.check_contract(candidate)
    champion = registry.alias_version(CHAMPION)
    holdout = registry.holdout(candidate)
    cand_metrics = _holdout_metrics(registry, candidate, holdout)
    info = {"rows": int(len(holdout)), "frauds": int(holdout[IS_FRAUD].sum()),
            "first_tx": str(holdout[TX_DATETIME].min()), "last_tx": str(holdout[TX_DATETIME].max()),
            "of_version": candidate}

    def compared(champ_metrics, passes, reason, warnings=()) -> Comparison:
        return Comparison(candidate, champion, info, cand_metrics, champ_metrics, margin, passes, reason,
                          list(warnings))

    if champion == candidate:
        return compared(cand_metrics, False, f"version {candidate} is already the champion")
    if champion is not None:
        try:
            registry.check_contract(champion)
        except ContractMismatchError as exc:
            return compared(None, False, f"the champion (version {champion}) cannot be scored on the current "
                                         f"features, so no comparison on the same holdout is possible: {exc.message}")
    champ_metrics = _holdout_metrics(registry, champion, holdout) if champion is not None else None
    verdict = gate(cand_metrics, champ_metrics, margin)
    warning = None
    if champion is not None:
        warning = overlap_warning((registry.version(champion).tags or {}).get(f"{TAG}train_window"), info["first_tx"])
    return compared(champ_metrics, verdict.passes, verdict.reason, [warning] if warning else [])


def history(registry: Registry) -> list[str]:
    """Earlier champions, oldest first."""
    tags = registry.client.get_registered_model(registry.name).tags or {}
    return [v for v in tags.get(HISTORY_TAG, "").split(",") if v]


def promote(registry: Registry, version: str, *, force: bool = False, comparison: Comparison | None = None,
            margin: float | None = None) -> dict[str, Any]:
    """Move `champion` to `version` if it passes the gate (or `force`); remember the previous champion."""
    comparison = comparison or compare(registry, version, margin=margin)
    candidate, previous = comparison.candidate, comparison.champion
    if comparison.already_champion:
        return {"changed": False, "champion": candidate, "previous": None, "forced": False,
                "reason": comparison.reason}
    if not comparison.moves_champion(force):
        raise RefusedError(f"promotion of {registry.name} version {candidate} refused: {comparison.reason}",
                           hint="use --force to promote anyway")
    with registry.errors(f"promoting {registry.name} version {candidate}"):
        client = registry.client
        if previous is not None:
            # The history is written before the alias moves: a crash in between leaves an entry equal
            # to the champion, which rollback skips.
            client.set_registered_model_tag(registry.name, HISTORY_TAG, ",".join(history(registry) + [previous]))
        client.set_registered_model_alias(registry.name, CHAMPION, candidate)
        if registry.alias_version(CHALLENGER) == candidate:
            client.delete_registered_model_alias(registry.name, CHALLENGER)
        for key, value in {
            "promoted_at": utc_seconds(), "promoted_over": previous or "", "promotion_forced": str(bool(force)).lower(),
            "promotion_reason": comparison.reason[:500],
        }.items():
            client.set_model_version_tag(registry.name, candidate, TAG + key, value)
    return {"changed": True, "champion": candidate, "previous": previous,
            "forced": bool(force and not comparison.passes), "reason": comparison.reason}


def rollback(registry: Registry, *, confirm: Callable[[str | None, str], None] | None = None) -> dict[str, Any]:
    """Give `champion` back to the previous champion recorded by `promote`.

    `confirm(current, target)` is called before anything changes; it aborts by raising.
    """
    with registry.errors(f"rolling back {registry.name}"):
        client = registry.client
        current = registry.alias_version(CHAMPION)
        earlier = history(registry)
        while earlier and earlier[-1] == current:
            earlier.pop()
        if not earlier:
            raise NotFoundError(f"no previous champion recorded for {registry.name}",
                                hint="rollback undoes a `fraudctl promote`; there has been none to undo")
        target = earlier[-1]
        registry.check_contract(target)  # also a NotFoundError naming it, when it was deleted since
        if confirm is not None:
            confirm(current, target)
        client.set_registered_model_alias(registry.name, CHAMPION, target)
        client.set_registered_model_tag(registry.name, HISTORY_TAG, ",".join(earlier[:-1]))
        now = utc_seconds()
        client.set_model_version_tag(registry.name, target, f"{TAG}restored_at", now)
        if current is not None:
            client.set_model_version_tag(registry.name, current, f"{TAG}rolled_back_at", now)
    return {"champion": target, "replaced": current, "history": earlier[:-1]}
