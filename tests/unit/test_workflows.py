"""The model workflows called as a DAG task would: plain arguments, a Config, a JSON-ready result."""

import datetime as dt
import json
import time

import pytest

from fraudctl.config import Config
from fraudctl.errors import UnavailableError
from fraudctl.model.workflows import train_and_register


@pytest.fixture
def config() -> Config:
    cfg = Config()
    cfg.mlflow.port = 1  # nothing listens
    cfg.model.estimator = "logistic_regression"
    cfg.model.alert_budget_per_day = 20
    return cfg


def test_train_and_register_dry_run_needs_no_mlflow(config, tmp_path):
    from fraudctl.data.generator import generate_transactions

    path = tmp_path / "history.parquet"
    generate_transactions(n_customers=300, n_terminals=600, n_days=60, seed=5).to_parquet(path)
    steps: list[str] = []
    summary = train_and_register(config, str(path), storage=config.storage, train_start=dt.date(2018, 5, 1), dry_run=True,
                                 progress=steps.append)
    assert summary["registered"] is None and summary["promotion"] is None
    assert summary["estimator"] == "logistic_regression" and summary["window"]["train_start"] == "2018-05-01"
    assert summary["data"]["kind"] == "parquet"
    assert any(step.startswith("loading") for step in steps)
    json.dumps(summary, default=str)  # what a DAG task hands on


def test_train_and_register_fails_fast_when_mlflow_is_down(config, tmp_path):
    started = time.perf_counter()
    with pytest.raises(UnavailableError, match="not reachable"):
        train_and_register(config, str(tmp_path / "not-read-yet.parquet"), storage=config.storage)  # before minutes of training
    assert time.perf_counter() - started < 10
