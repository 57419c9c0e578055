"""The feature contract a model must fit to be served: a pure check over what its MLmodel file records.

A servable model takes exactly FEATURE_NAMES as doubles, in that order; its pyfunc flavor returns
predict_proba ([P(legit), P(fraud)] per row); and it records (metadata `fraudctl_feature_spec`) the
feature windows and label delay it was trained on, which must equal what this deployment computes.

`check_model_contract` takes anything with `signature`, `flavors` and `metadata` attributes: the
`ModelInfo` of a registered version (no download), the `mlflow.models.Model` of a downloaded one
(`fraudctl.model.registry.LoadedModel.mlmodel`), or a loaded pyfunc model's `.metadata`. No MLflow server needed.
"""

from __future__ import annotations

from typing import Any, Mapping

from fraudctl.contracts import TAG_PREFIX
from fraudctl.errors import ContractError
from fraudctl.features import FEATURE_NAMES, FEATURE_SPEC_VERSION, FeatureSpec

TAG = TAG_PREFIX
PREDICT_FN = "predict_proba"  # the pyfunc flavor returns [P(legit), P(fraud)] per row; column 1 is the score
SPEC_METADATA = "fraudctl_feature_spec"
THRESHOLD_METADATA = "fraudctl_threshold"
RETRAIN_HINT = "retrain it with `fraudctl train` so it takes the current features"


class ContractMismatchError(ContractError):
    """The model's input signature or output does not fit the feature contract (exit code CONTRACT)."""


class UntrustedModelError(ContractError):
    """The model cannot be saved or loaded safely: not skops, or it holds types fraudctl does not trust
    (exit code CONTRACT: the scorer could not load it)."""


def recorded_feature_spec(metadata: Mapping[str, Any] | None) -> FeatureSpec | None:
    """The FeatureSpec a model's metadata records, or None."""
    spec = (metadata or {}).get(SPEC_METADATA)
    return FeatureSpec.from_dict(spec) if spec is not None else None


def _signature_problems(signature: Any) -> list[str]:
    if signature is None or signature.inputs is None:
        return ["it has no input signature"]
    names = list(signature.inputs.input_names())
    if names != FEATURE_NAMES:
        missing = [n for n in FEATURE_NAMES if n not in names]
        extra = [n for n in names if n not in FEATURE_NAMES]
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing)}")
        if extra:
            detail.append(f"unknown {', '.join(map(str, extra))}")
        if not detail:
            detail.append("columns in another order")
        return [f"its inputs do not match the feature contract ({'; '.join(detail)})"]
    types = {spec.name: str(spec.type) for spec in signature.inputs.inputs}
    wrong = [f"{n}: {t}" for n, t in types.items() if "double" not in t.lower()]
    return [f"inputs must be double: {', '.join(wrong)}"] if wrong else []


def _spec_problems(metadata: Mapping[str, Any] | None, expected: FeatureSpec) -> list[str]:
    spec = (metadata or {}).get(SPEC_METADATA)
    if spec is None:
        return [f"it records no feature spec (metadata {SPEC_METADATA})"]
    if int(spec.get("version", -1)) != FEATURE_SPEC_VERSION:
        return [f"it was trained on feature spec version {spec.get('version')}, "
                f"this fraudctl computes version {FEATURE_SPEC_VERSION}"]
    if FeatureSpec.from_dict(spec) != expected:
        return [f"it was trained with feature windows/delay {spec}, this deployment computes "
                f"{expected.as_dict()} (model.label_delay_days)"]
    return []


def contract_problems(model: Any, expected: FeatureSpec) -> list[str]:
    """Every way `model` (signature, flavors, metadata) differs from the contract; empty when it fits."""
    problems = _signature_problems(getattr(model, "signature", None))
    pyfunc = (getattr(model, "flavors", None) or {}).get("python_function", {})
    predict_fn = pyfunc.get("predict_fn", "predict")
    if predict_fn != PREDICT_FN:
        problems.append(f"its pyfunc predict function is {predict_fn!r}, the scorer needs {PREDICT_FN!r}")
    return problems + _spec_problems(getattr(model, "metadata", None), expected)


def check_model_contract(model: Any, expected: FeatureSpec, *, what: str = "the model") -> None:
    """Raise ContractMismatchError naming `what` and every problem, unless `model` fits the contract."""
    problems = contract_problems(model, expected)
    if problems:
        raise ContractMismatchError(f"{what} does not fit the feature contract: {'; '.join(problems)}",
                                    hint=RETRAIN_HINT)
