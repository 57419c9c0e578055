"""The native stack's object store (S3Proxy, the `objectstore` service) is where the model artifacts and the
lake live by default: `train` puts the model's files in the bucket and it loads back from there; with the
store stopped, what needs it fails as unavailable naming it and leaves nothing that looks complete."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid

import pandas as pd
import pytest
from pydantic import SecretStr

from fraudctl.errors import ExitCode, FraudctlError, UnavailableError
from tests.conftest import run_fraudctl, wait_for

pytestmark = pytest.mark.integration

TRAIN_START = dt.date(2018, 5, 15)


@pytest.fixture(scope="module")
def history():
    from fraudctl.data.generator import generate_transactions

    return generate_transactions(n_customers=400, n_terminals=800, n_days=70, seed=5)


@pytest.fixture
def model_name():
    return f"fraud-detector-store-{uuid.uuid4().hex[:8]}"


def storage_of(config):
    from fraudctl.stack import get_runtime

    return get_runtime(config).storage()


def bucket_keys(config, prefix: str) -> list[str]:
    from fraudctl.clients.objectstore import client

    storage = storage_of(config)
    s3, keys, token = client(storage), [], None
    while True:
        page = s3.list_objects_v2(Bucket=storage.bucket, Prefix=prefix,
                                  **({"ContinuationToken": token} if token else {}))
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return keys
        token = page["NextContinuationToken"]


def train(config_path, data, model_name, timeout=600):
    return run_fraudctl("-c", str(config_path), "train", "--data", str(data), "--train-start", str(TRAIN_START),
                        "--alert-budget", "20", "-o", "json", env={"FRAUDCTL_MODEL__NAME": model_name},
                        timeout=timeout)


def test_storage_defaults_to_the_native_objectstore(stack_config):
    from fraudctl.clients.objectstore import probe
    from fraudctl.stack.native_context import runs_objectstore

    assert stack_config.storage.kind == "s3" and runs_objectstore(stack_config)
    storage = storage_of(stack_config)
    assert storage.endpoint_url == f"http://127.0.0.1:{stack_config.storage.port}"
    assert probe(storage) == f"bucket {storage.bucket} reachable"  # `up` created it
    # the probe signs its own requests (AWS SigV4 over urllib): the real server accepts them
    assert re.fullmatch(r"S3 API answers, [1-9][0-9]* bucket\(s\)", probe(storage, bucket=False))
    with pytest.raises(UnavailableError, match="has no bucket no-such-bucket"):
        probe(storage.model_copy(update={"bucket": "no-such-bucket"}))
    # the keys are generated ones, and the store checks them
    wrong = storage.model_copy(update={"secret_access_key": SecretStr("not-the-key")})
    for bucket in (True, False):
        with pytest.raises(UnavailableError, match="refused"):
            probe(wrong, bucket=bucket)
    # its data lives under the state dir (removed by `down --purge`)
    assert (stack_config.state_dir / "data" / "objectstore" / storage.bucket).is_dir()


def test_train_puts_the_model_in_the_bucket_and_it_loads_back(stack_config_path, stack_config, history,
                                                              tmp_path, model_name):
    from fraudctl.model.registry import Registry

    data = tmp_path / "history.parquet"
    history.to_parquet(data)
    result = train(stack_config_path, data, model_name)
    assert result.returncode == 0, result.stderr
    registered = json.loads(result.stdout)["registered"]
    run_id = registered["run_id"]

    keys = bucket_keys(stack_config, "mlflow/")
    run_keys = [k for k in keys if f"/{run_id}/" in k]
    assert any(k.endswith("/lineage.json") for k in run_keys), run_keys
    # the logged model (MLflow 3 keeps it under models/<model id>/artifacts) is objects in the bucket too
    model_files = [k for k in keys if "/models/" in k and k.endswith("/MLmodel")]
    assert model_files, keys

    config = stack_config.model_copy(deep=True)
    config.model.name = model_name
    model = Registry(config).load_model(registered["version"])
    assert hasattr(model, "predict_proba")


def test_objectstore_stopped_commands_fail_unavailable_and_nothing_half_written(
        stack_config_path, stack_config, history, tmp_path, model_name):
    from fraudctl.data.lake import lake_for, read_training_frame
    from fraudctl.clients.objectstore import SERVICE, probe
    from fraudctl.model.registry import Registry, log_training
    from fraudctl.stack.supervisor import Supervisor
    from fraudctl.model.training import SplitSpec, prepare, train as fit

    supervisor = Supervisor(stack_config.state_dir)
    config = stack_config.model_copy(deep=True)
    config.model.name = model_name
    registry = Registry(config)
    data = tmp_path / "history.parquet"
    history.to_parquet(data)
    result = fit(prepare(history), SplitSpec(TRAIN_START), estimator="logistic_regression", alert_budget_per_day=20)

    supervisor.stop(SERVICE, wait=True)
    try:
        with pytest.raises(UnavailableError):
            probe(storage_of(stack_config))
        # `train` checks the store before minutes of training
        started = time.monotonic()
        refused = train(stack_config_path, data, model_name)
        assert refused.returncode == ExitCode.UNAVAILABLE, refused.stderr
        assert "unavailable" in refused.stderr and SERVICE in refused.stderr, refused.stderr
        assert time.monotonic() - started < 120

        # the store going away under a run: the run fails, no version is registered
        with pytest.raises(FraudctlError):
            log_training(registry, result)
        assert registry.list_versions() == []
        from mlflow import MlflowClient

        experiment = MlflowClient(config.mlflow.tracking_uri).get_experiment_by_name(config.mlflow.experiment)
        runs = MlflowClient(config.mlflow.tracking_uri).search_runs(
            [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
        assert runs and runs[0].info.status == "FAILED"

        # the lake: writing and reading fail as unavailable, naming the store
        lake = lake_for(stack_config, storage_of(stack_config))
        frame = pd.DataFrame({"transaction_id": [1], "tx_datetime": pd.to_datetime(["2018-04-01 10:00"])})
        with pytest.raises(UnavailableError, match=SERVICE):
            lake.write("transactions", 999_999, frame, "tx_datetime")
        with pytest.raises(UnavailableError, match=SERVICE):
            read_training_frame(stack_config, storage_of(stack_config))

        status = json.loads(run_fraudctl("-c", str(stack_config_path), "status", "-o", "json").stdout)
        service = next(s for s in status["services"] if s["name"] == SERVICE)
        assert service["state"] == "STOPPED" and status["healthy"] is False
    finally:
        supervisor.start(SERVICE)
        wait_for(lambda: probe(storage_of(stack_config)), 120, "the objectstore to answer again",
                 ignoring=UnavailableError)
    assert not [k for k in bucket_keys(stack_config, "lake/transactions/") if "batch-000000999999" in k]
