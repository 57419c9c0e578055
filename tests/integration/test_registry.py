"""The registry against the real MLflow server of the native stack: registration, aliases, the gate,
--force, rollback, plots as artifacts, contract and connection errors, and the CLI on top."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import time
import uuid

import numpy as np
import pytest

from fraudctl.errors import ExitCode, NotFoundError, RefusedError, UnavailableError
from fraudctl.features import FEATURE_NAMES
from fraudctl.model.registry import compare, log_training, promote, rollback

from tests.conftest import FRAUDCTL

pytestmark = pytest.mark.integration

TRAIN_START = dt.date(2018, 5, 15)


@pytest.fixture(scope="module")
def history():
    from fraudctl.data.generator import generate_transactions

    return generate_transactions(n_customers=600, n_terminals=1200, n_days=70, seed=11)


@pytest.fixture(scope="module")
def good_result(history):
    from fraudctl.model.training import SplitSpec, prepare, train

    return train(prepare(history), SplitSpec(TRAIN_START), estimator="gradient_boosting", alert_budget_per_day=20)


@pytest.fixture(scope="module")
def bad_result(good_result):
    """The same windows and holdout, but a model fitted on shuffled labels: clearly worse."""
    from fraudctl.model.training import evaluate, make_estimator

    train = good_result.train
    shuffled = np.random.default_rng(0).permutation(train["is_fraud"].to_numpy())
    model = make_estimator("logistic_regression").fit(train[FEATURE_NAMES], shuffled)
    scores = model.predict_proba(good_result.test[FEATURE_NAMES])[:, 1]
    return dataclasses.replace(good_result, model=model, estimator="logistic_regression",
                               test=good_result.test.assign(score=scores),
                               metrics=evaluate(good_result.test, scores, good_result.threshold.threshold))


@pytest.fixture
def config(stack_config):
    """The stack's config with a model name of this test's own, so tests never see each other's versions."""
    cfg = stack_config.model_copy(deep=True)
    cfg.model.name = f"fraud-detector-test-{uuid.uuid4().hex[:8]}"
    return cfg


@pytest.fixture
def registry(config):
    from fraudctl.model.registry import Registry

    return Registry(config)


def test_training_run_is_registered_as_challenger_with_its_plots(registry, good_result, history):
    from fraudctl.model.training import LoadedData

    data = LoadedData(history, "/data/generated.parquet", "parquet", "f" * 64, 1)
    logged = log_training(registry, good_result, data)
    assert logged["version"] == "1"
    assert registry.alias_version("challenger") == "1"
    assert registry.alias_version("champion") is None

    details = registry.show("1")
    assert details["aliases"] == ["challenger"]
    assert details["contract"] == "ok"
    for plot in ("pr_curve.png", "roc_curve.png", "score_distribution.png", "feature_importance.png"):
        assert f"plots/{plot}" in details["artifacts"]
    assert "holdout/holdout.parquet" in details["artifacts"] and "lineage.json" in details["artifacts"]
    assert details["metrics"]["test_average_precision"] == pytest.approx(good_result.metrics["average_precision"])
    assert details["params"]["window.test_start"] == str(good_result.split.test_start)
    assert details["params"]["data.fingerprint"] == "f" * 64
    assert details["threshold"] == pytest.approx(good_result.threshold.threshold)
    assert details["tags"]["fraudctl.git_commit"]

    # The registered model scores exactly like the one trained, loaded with skops and our trusted types.
    loaded = registry.load_model("1")
    holdout = registry.holdout("1")
    np.testing.assert_allclose(loaded.predict_proba(holdout[FEATURE_NAMES])[:, 1],
                               good_result.model.predict_proba(holdout[FEATURE_NAMES])[:, 1])
    assert len(holdout) == len(good_result.test)

    # What the streaming scorer calls: the version @challenger names, loaded with its threshold and spec.
    served = registry.load(registry.alias_version("challenger"))
    assert served.version == "1" and served.threshold == pytest.approx(good_result.threshold.threshold)
    assert served.feature_spec == good_result.spec == registry.feature_spec("1") == registry.expected_spec()
    assert registry.threshold("1") == served.threshold
    served.check_contract(registry.expected_spec())
    np.testing.assert_allclose(served.scores(holdout), good_result.model.predict_proba(holdout[FEATURE_NAMES])[:, 1])

    listed = registry.list_versions()
    assert [v["version"] for v in listed] == ["1"] and listed[0]["aliases"] == ["challenger"]
    assert listed[0]["test_window"] == f"{good_result.split.test_start}..{good_result.split.test_end}"


def test_gate_refuses_a_worse_model_force_overrides_rollback_restores(registry, good_result, bad_result):
    log_training(registry, good_result)
    first = promote(registry, "1")  # no champion yet: nothing to beat
    assert first["changed"] and first["champion"] == "1" and first["previous"] is None
    assert registry.alias_version("challenger") is None  # the challenger became champion

    log_training(registry, bad_result)
    comparison = compare(registry, "2")
    # Both scored on version 2's holdout, which is the same rows as version 1's.
    assert comparison.champion == "1" and comparison.holdout["rows"] == len(good_result.test)
    assert comparison.champion_metrics["average_precision"] == pytest.approx(
        good_result.metrics["average_precision"])
    assert comparison.candidate_metrics["average_precision"] < comparison.champion_metrics["average_precision"]
    assert not comparison.passes
    with pytest.raises(RefusedError, match="refused"):
        promote(registry, "2")
    assert registry.alias_version("champion") == "1"

    forced = promote(registry, "2", force=True)
    assert forced["changed"] and forced["forced"] and forced["previous"] == "1"
    assert registry.alias_version("champion") == "2"
    assert registry.show("2")["tags"]["fraudctl.promotion_forced"] == "true"

    back = rollback(registry)
    assert back == {"champion": "1", "replaced": "2", "history": []}
    assert registry.alias_version("champion") == "1"
    with pytest.raises(NotFoundError, match="no previous champion"):
        rollback(registry)


def test_a_better_model_passes_the_gate_and_margin_applies(registry, good_result, bad_result):
    log_training(registry, bad_result)
    promote(registry, "1")
    log_training(registry, good_result)
    with pytest.raises(RefusedError, match=">= 0.99"):
        promote(registry, "2", margin=0.99)  # an impossible margin refuses even a better model
    promoted = promote(registry, "2", margin=0.0)
    assert promoted["changed"] and not promoted["forced"] and promoted["previous"] == "1"
    assert promote(registry, "2")["changed"] is False  # already champion: nothing to do


def test_unknown_version_is_not_found(registry, good_result):
    log_training(registry, good_result)
    for action in (lambda: registry.show("42"), lambda: promote(registry, "42"), lambda: registry.load_model("42")):
        with pytest.raises(NotFoundError, match="no version 42"):
            action()


def test_a_model_off_the_feature_contract_is_refused(registry, config, good_result):
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from fraudctl.model.registry import ContractMismatchError
    from fraudctl.model.training import make_estimator

    log_training(registry, good_result)  # version 1, fine
    # Version 2: trained on only part of the features, as an older or foreign pipeline would be.
    few = FEATURE_NAMES[:5]
    model = make_estimator("logistic_regression").fit(good_result.train[few], good_result.train["is_fraud"])
    mlflow.set_tracking_uri(registry.uri)
    mlflow.set_experiment(config.mlflow.experiment)
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", registered_model_name=registry.name,
                                 signature=infer_signature(good_result.test[few], model.predict_proba(
                                     good_result.test[few])),
                                 pyfunc_predict_fn="predict_proba", serialization_format="skops",
                                 pip_requirements=["scikit-learn"])
    with pytest.raises(ContractMismatchError, match="missing customer_tx_count_7d") as caught:
        registry.check_contract("2")
    assert caught.value.exit_code == ExitCode.CONTRACT
    with pytest.raises(ContractMismatchError):
        promote(registry, "2", force=True)  # --force overrides the gate, never the contract
    assert "missing" in registry.show("2")["contract"]


def test_unreachable_mlflow_fails_fast(config):
    from fraudctl.model.registry import Registry

    dead = config.model_copy(deep=True)
    dead.mlflow.port = 1  # nothing listens there
    started = time.perf_counter()
    with pytest.raises(UnavailableError, match="not reachable"):
        Registry(dead).list_versions()
    assert time.perf_counter() - started < 10


# ------------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_env(stack_config_path, config, monkeypatch):
    monkeypatch.setenv("FRAUDCTL_MODEL__NAME", config.model.name)
    from fraudctl.cli import app, models, train

    names = {c.name for c in app.registered_commands}
    if "train" not in names:  # until the lead wires them into fraudctl.cli
        train.register(app)
        models.register(app)
    return stack_config_path


def run_cli(capsys, config_path, *args):
    """The real CLI in-process through its error boundary (fraudctl.cli.run): exit code, stdout, stderr."""
    from fraudctl.cli import run

    capsys.readouterr()
    code = run(["-c", str(config_path), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_train_models_promote_rollback(capsys, cli_env, history, tmp_path, bad_result):
    data = tmp_path / "history.parquet"
    history.to_parquet(data)
    code, out, err = run_cli(capsys, cli_env, "train", "--data", str(data), "--train-start", str(TRAIN_START),
                             "--alert-budget", "20", "-o", "json")
    assert code == 0, err
    trained = json.loads(out)
    assert trained["registered"]["version"] == "1" and trained["registered"]["alias"] == "challenger"
    assert trained["window"]["test_start"] == "2018-05-29"
    # Only the days the split and the features' look-back need are read: up to the test end, 2018-06-05.
    assert trained["data"]["rows"] == int((history["tx_datetime"] < "2018-06-05").sum())

    code, out, _ = run_cli(capsys, cli_env, "models", "list", "-o", "json")
    assert code == 0 and json.loads(out)["versions"][0]["aliases"] == ["challenger"]
    code, out, _ = run_cli(capsys, cli_env, "promote", "1", "--yes", "-o", "json")
    assert code == 0 and json.loads(out)["champion"] == "1"

    from fraudctl.model.registry import Registry
    from fraudctl.config import load_config

    log_training(Registry(load_config(cli_env)), bad_result)  # version 2, worse
    code, _, err = run_cli(capsys, cli_env, "promote", "2", "--yes")
    assert code == ExitCode.REFUSED and "refused" in err and "--force" in err
    code, _, err = run_cli(capsys, cli_env, "promote", "2", "--force", "-o", "json")
    assert code == ExitCode.USAGE and "--yes" in err  # json output never prompts: scripts say --yes
    code, out, _ = run_cli(capsys, cli_env, "promote", "2", "--force", "--yes", "-o", "json")
    assert code == 0 and json.loads(out)["forced"] is True
    # CI: no terminal on stdin, no --yes: refused with exit 2 naming --yes, and nothing moves.
    no_tty = subprocess.run([*FRAUDCTL, "-c", str(cli_env), "rollback"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=120)  # FRAUDCTL_MODEL__NAME: cli_env
    assert no_tty.returncode == ExitCode.USAGE and "--yes" in no_tty.stderr, no_tty.stderr
    assert Registry(load_config(cli_env)).alias_version("champion") == "2"
    code, out, _ = run_cli(capsys, cli_env, "rollback", "--yes", "-o", "json")
    assert code == 0 and json.loads(out)["champion"] == "1"
    code, _, err = run_cli(capsys, cli_env, "models", "show", "7")
    assert code == ExitCode.NOT_FOUND and "no version 7" in err


def test_cli_train_with_promote_if_better(capsys, cli_env, history, tmp_path):
    data = tmp_path / "history.parquet"
    history.to_parquet(data)
    code, out, err = run_cli(capsys, cli_env, "train", "--data", str(data), "--train-start", str(TRAIN_START),
                             "--promote-if-better", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["promotion"]["changed"] is True  # first version: no champion to beat
    code, out, err = run_cli(capsys, cli_env, "train", "--data", str(data), "--train-start", str(TRAIN_START),
                             "--promote-if-better", "-o", "json")
    assert code == 0, err
    second = json.loads(out)["promotion"]
    # The same data and seed give the same model: not better, so it stays challenger, and that is no error.
    assert second["changed"] is False and "gain +0.0000" in second["reason"]
