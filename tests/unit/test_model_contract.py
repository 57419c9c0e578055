"""The feature-contract check over what a model's MLmodel file records, without an MLflow server: on a
hand-made model description, and on a real model saved and loaded from a local folder."""

import numpy as np
import pandas as pd
import pytest

from fraudctl.errors import ExitCode
from fraudctl.features import FEATURE_NAMES, FeatureSpec
from fraudctl.model.registry.contract import (
    ContractMismatchError, check_model_contract, contract_problems, recorded_feature_spec,
)

EXPECTED = FeatureSpec(delay_days=7)


def described(names=FEATURE_NAMES, dtype="double", predict_fn="predict_proba", spec=EXPECTED.as_dict()):
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(Schema([ColSpec(dtype, name) for name in names])) if names is not None else None
    metadata = {"fraudctl_feature_spec": spec, "fraudctl_threshold": 0.4} if spec is not None else {}
    return Model(signature=signature, metadata=metadata,
                 flavors={"python_function": {"predict_fn": predict_fn}, "sklearn": {}})


def test_a_model_on_the_contract_passes():
    assert contract_problems(described(), EXPECTED) == []
    check_model_contract(described(), EXPECTED)
    assert recorded_feature_spec(described().metadata) == EXPECTED


@pytest.mark.parametrize("model, words", [
    (lambda: described(names=None), "no input signature"),
    (lambda: described(names=FEATURE_NAMES[:5]), f"missing {FEATURE_NAMES[5]}"),
    (lambda: described(names=[*FEATURE_NAMES, "colour"]), "unknown colour"),
    (lambda: described(names=list(reversed(FEATURE_NAMES))), "columns in another order"),
    (lambda: described(dtype="long"), "inputs must be double"),
    (lambda: described(predict_fn="predict"), "the scorer needs 'predict_proba'"),
    (lambda: described(spec=None), "records no feature spec"),
    (lambda: described(spec={**EXPECTED.as_dict(), "version": -3}), "feature spec version -3"),
    (lambda: described(spec=FeatureSpec(delay_days=3).as_dict()), "model.label_delay_days"),
])
def test_each_departure_from_the_contract_is_named(model, words):
    with pytest.raises(ContractMismatchError, match="version 9 does not fit the feature contract") as caught:
        check_model_contract(model(), EXPECTED, what="model m version 9")
    assert words in caught.value.message
    assert caught.value.exit_code == ExitCode.CONTRACT and "retrain" in caught.value.hint


def test_every_problem_is_listed_at_once():
    problems = contract_problems(described(names=None, predict_fn="predict", spec=None), EXPECTED)
    assert len(problems) == 3


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A real model saved as `fraudctl train` logs it (skops, predict_proba, signature, metadata)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from fraudctl.model.estimators import make_estimator

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.random((200, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    model = make_estimator("logistic_regression").fit(x, (x["amount"] > 0.8).astype(int))
    path = tmp_path_factory.mktemp("model") / "model"
    mlflow.sklearn.save_model(model, str(path), signature=infer_signature(x, model.predict_proba(x)),
                              pyfunc_predict_fn="predict_proba", serialization_format="skops",
                              metadata={"fraudctl_feature_spec": EXPECTED.as_dict(), "fraudctl_threshold": 0.4})
    return path


def test_the_check_works_on_a_saved_and_on_a_loaded_model(saved_model):
    import mlflow.pyfunc
    from mlflow.models import Model

    check_model_contract(Model.load(str(saved_model / "MLmodel")), EXPECTED)
    loaded = mlflow.pyfunc.load_model(str(saved_model))
    check_model_contract(loaded.metadata, EXPECTED)
    with pytest.raises(ContractMismatchError, match="model.label_delay_days"):
        check_model_contract(loaded.metadata, FeatureSpec(delay_days=1))  # a deployment with another delay


def test_load_gives_the_scorer_model_threshold_spec_and_contract(saved_model, monkeypatch):
    """`Registry.load` on a version whose download is this local folder: what the streaming scorer uses."""
    import shutil
    from types import SimpleNamespace

    import mlflow.artifacts

    from fraudctl.config import Config
    from fraudctl.model.registry import LoadedModel, Registry

    def download(artifact_uri, dst_path, tracking_uri):
        assert artifact_uri == "models:/fraud-detector/3"
        return shutil.copytree(saved_model, f"{dst_path}/model")

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", download)
    registry = Registry(Config())
    registry._client = SimpleNamespace(get_model_version=lambda name, v: SimpleNamespace(version=v, run_id="r"))
    loaded = registry.load("3")
    assert isinstance(loaded, LoadedModel) and loaded.version == "3"
    assert loaded.threshold == 0.4 and loaded.feature_spec == EXPECTED
    loaded.check_contract(registry.expected_spec())
    frame = pd.DataFrame(np.random.default_rng(1).random((5, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    scores = loaded.scores(frame)
    assert scores.shape == (5,) and ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_allclose(scores, loaded.model.predict_proba(frame)[:, 1])
