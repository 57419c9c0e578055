"""The MLflow client's error mapping, with a stand-in MlflowClient: what is missing is "not found" (9),
what cannot be reached is "unavailable" (8)."""

from types import SimpleNamespace

import pytest

from fraudctl.config import Config
from fraudctl.errors import NotFoundError, ServiceError, UnavailableError
from fraudctl.model.registry import Registry


class FakeClient:
    def __init__(self, artifacts=("holdout/holdout.parquet",), list_error=None):
        self.artifacts, self.list_error = artifacts, list_error

    def get_model_version(self, name, version):
        return SimpleNamespace(version=version, run_id="run-1", tags={})

    def list_artifacts(self, run_id, path=None):
        if self.list_error:
            raise self.list_error
        return [SimpleNamespace(path=p, is_dir=False) for p in self.artifacts]


def registry_with(client) -> Registry:
    registry = Registry(Config())
    registry._client = client  # no server: the ping is skipped
    return registry


def test_a_network_error_while_downloading_the_holdout_is_unavailable(monkeypatch):
    import mlflow.artifacts
    import requests

    def refused(**kwargs):
        raise requests.exceptions.ConnectionError("Connection refused")

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", refused)
    with pytest.raises(UnavailableError, match="did not answer"):
        registry_with(FakeClient()).holdout("1")


def test_a_network_error_while_listing_the_holdout_is_unavailable():
    from mlflow.exceptions import MlflowException

    error = MlflowException("API request to http://127.0.0.1:5000/api/2.0/mlflow/artifacts/list failed: "
                            "Max retries exceeded")
    with pytest.raises(UnavailableError):
        registry_with(FakeClient(list_error=error)).holdout("1")


def test_a_version_without_a_holdout_is_not_found():
    with pytest.raises(NotFoundError, match="has no holdout artifact"):
        registry_with(FakeClient(artifacts=())).holdout("1")


def test_an_error_mlflow_answers_with_is_a_service_error_not_a_bug():
    from mlflow.exceptions import MlflowException

    error = MlflowException("the backend store is read-only", error_code="INTERNAL_ERROR")
    with pytest.raises(ServiceError, match="read-only") as caught:
        registry_with(FakeClient(list_error=error)).holdout("1")
    assert caught.value.exit_code == 13
