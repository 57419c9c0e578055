"""The MLflow model registry of fraudctl (model `config.model.name`, "fraud-detector" by default).

Conventions: aliases only, never the deprecated stages: the newest trained version gets `challenger`, the
one the scorer serves is `champion`. One module per reason to change:

- `client`: the thin MLflow client (`Registry`): look up, describe, list, load by version, resolve aliases;
- `report`: the training run logged to MLflow (`log_training`): params, metrics, plots, datasets, holdout;
- `contract`: the feature-contract check, a pure function over a model's signature and metadata;
- `gate`: the promotion gate, a pure function over two sets of holdout metrics;
- `lifecycle`: `compare`, `promote` and `rollback`, which move the aliases.

Everything imports heavy libraries (mlflow, sklearn, pandas) inside the functions that need them.
"""

from fraudctl.model.registry.client import CHALLENGER, CHAMPION, TRUSTED_TYPES, LoadedModel, Registry
from fraudctl.model.registry.contract import (
    ContractMismatchError, UntrustedModelError, check_model_contract, contract_problems, recorded_feature_spec,
)
from fraudctl.model.registry.gate import Comparison, Verdict, gate, headline
from fraudctl.model.registry.lifecycle import compare, promote, rollback
from fraudctl.model.registry.report import git_revision, holdout_frame, log_training, make_figures, permutation_importances

__all__ = [
    "CHALLENGER", "CHAMPION", "Comparison", "ContractMismatchError", "LoadedModel", "Registry", "TRUSTED_TYPES",
    "UntrustedModelError", "Verdict", "check_model_contract", "compare", "contract_problems", "gate",
    "git_revision", "headline", "holdout_frame", "log_training", "make_figures", "permutation_importances",
    "promote", "recorded_feature_spec", "rollback",
]
