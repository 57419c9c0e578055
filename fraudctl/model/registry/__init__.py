"""The MLflow model registry of fraudctl (model `config.model.name`, "fraud-detector" by default).

Conventions: aliases only, never the deprecated stages: the newest trained version gets `challenger`, the
one the scorer serves is `champion`. One module per reason to change:

- `client`: the thin MLflow client (`Registry`): look up, describe, list, load by version, resolve aliases;
- `report`: the training run logged to MLflow (`log_training`): params, metrics, plots, datasets, holdout;
- `contract`: the feature-contract check, a pure function over a model's signature and metadata;
- `gate`: the promotion gate, a pure function over two sets of holdout metrics;
- `lifecycle`: `compare`, `promote` and `rollback`, which move the aliases;
- `rest`: a narrow stdlib-only client of MLflow's REST API for the operator's reads (`status`, `models list`).

Everything imports heavy libraries (mlflow, sklearn, pandas) inside the functions that need them, and this
package imports its modules only when one of their names is asked for (`from fraudctl.model.registry import
Registry`): `fraudctl.model.registry.rest` alone costs no pandas (which `client` pulls in through
fraudctl.features).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraudctl.model.registry.client import CHALLENGER, CHAMPION, TRUSTED_TYPES, LoadedModel, Registry
    from fraudctl.model.registry.contract import (
        ContractMismatchError, UntrustedModelError, check_model_contract, contract_problems, recorded_feature_spec,
    )
    from fraudctl.model.registry.gate import Comparison, Verdict, gate, headline
    from fraudctl.model.registry.lifecycle import compare, promote, rollback
    from fraudctl.model.registry.report import (
        git_revision, holdout_frame, log_training, make_figures, permutation_importances,
    )

_WHERE = {
    "client": ("CHALLENGER", "CHAMPION", "TRUSTED_TYPES", "LoadedModel", "Registry"),
    "contract": ("ContractMismatchError", "UntrustedModelError", "check_model_contract", "contract_problems",
                 "recorded_feature_spec"),
    "gate": ("Comparison", "Verdict", "gate", "headline"),
    "lifecycle": ("compare", "promote", "rollback"),
    "report": ("git_revision", "holdout_frame", "log_training", "make_figures", "permutation_importances"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
