"""The model workflows as plain functions: what `fraudctl train|models|promote|rollback` and the Airflow
retraining DAG's tasks call. Arguments are plain values and a Config; results are JSON-ready dicts.

Prompts and rendering stay with the caller: `promote_version` hands the comparison to `review` before
anything moves, `rollback_champion` asks `confirm`; either aborts by raising.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from fraudctl.config import Config, StorageConfig
    from fraudctl.model.registry import Comparison
    from fraudctl.data.layout import InputLayout

Progress = Callable[[str], None]


def _registry(config: "Config"):
    from fraudctl.model.registry import Registry

    return Registry(config)


def train_and_register(config: "Config", source: str | Path, *, storage: "StorageConfig",
                       check_storage: Callable[[], None] = lambda: None, layout: "InputLayout | None" = None,
                       train_start: dt.date | None = None, promote_if_better: bool = False, dry_run: bool = False,
                       progress: Progress | None = None) -> dict[str, Any]:
    """Train on `source`, log the run and register the model as @challenger (unless `dry_run`), and with
    `promote_if_better` make it @champion when it passes the promotion gate. `storage` is where an s3://
    source is read (the runtime's answer, `Runtime.storage()`); `check_storage` runs before training on a
    real run (`Runtime.check_storage()`: the stack's own store, where MLflow puts the artifacts).

    Returns the training summary with `data` (lineage), `registered` (name, version, links; None on a dry
    run) and `promotion` (None unless asked; `changed` False when the gate keeps the champion, no error).
    """
    from fraudctl.model.registry import compare, log_training, promote
    from fraudctl.model.training import train_from_source

    say = progress or (lambda step: None)
    registry = None
    if not dry_run:
        registry = _registry(config)
        registry.ping()  # before minutes of training, not after
        check_storage()
    data, result = train_from_source(source, config.model, layout=layout, storage=storage,
                                     train_start=train_start, progress=say)
    logged: dict[str, Any] | None = None
    promotion: dict[str, Any] | None = None
    if registry is not None:
        say("logging the run and registering the model in MLflow")
        logged = log_training(registry, result, data)
        if promote_if_better:
            say(f"comparing version {logged['version']} with the champion")
            comparison = compare(registry, logged["version"])
            if comparison.passes:
                promotion = {**promote(registry, logged["version"], comparison=comparison),
                             "comparison": comparison.as_dict()}
            else:
                promotion = {"changed": False, "reason": comparison.reason, "comparison": comparison.as_dict()}
    return {**result.summary(), "data": data.lineage(), "registered": logged, "promotion": promotion}


def list_models(config: "Config") -> dict[str, Any]:
    """Every version of the configured model, newest first, and where the registry lives. Over MLflow's REST
    API with the standard library (`rest.RestRegistry`): the same answer as `Registry.list_versions`, without
    the 2 s of importing mlflow and pandas."""
    from fraudctl.model.registry.rest import RestRegistry

    registry = RestRegistry.from_config(config)
    return {"name": registry.name, "uri": registry.uri, "versions": registry.list_versions()}


def show_model(config: "Config", version: str) -> dict[str, Any]:
    """One version in full, with its feature-contract check."""
    return _registry(config).show(version)


def promote_version(config: "Config", version: str, *, force: bool = False,
                    review: "Callable[[Comparison], None] | None" = None) -> dict[str, Any]:
    """Compare `version` with the champion on its holdout, apply the gate, move @champion.

    `review(comparison)` runs before anything moves (to show it, to ask); a refusal by the gate raises
    RefusedError after it. The result carries the comparison.
    """
    from fraudctl.model.registry import compare, promote

    registry = _registry(config)
    comparison = compare(registry, version)
    if review is not None:
        review(comparison)
    return {**promote(registry, version, force=force, comparison=comparison), "comparison": comparison.as_dict()}


def rollback_champion(config: "Config", *,
                      confirm: "Callable[[str | None, str], None] | None" = None) -> dict[str, Any]:
    """Give @champion back to the previous champion; `confirm(current, target)` runs before it moves."""
    from fraudctl.model.registry import rollback

    return rollback(_registry(config), confirm=confirm)
