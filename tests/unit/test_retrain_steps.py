"""fraudctl.retraining.steps without Airflow or MLflow: the parameters, extract from a seeded lake (or a
file), and validate's checks naming the numbers."""

import datetime as dt
import json

import pandas as pd
import pytest

from fraudctl.retraining import steps
from fraudctl.config import load_config
from fraudctl.errors import BadInputError
from fraudctl.data.lake import Lake, lake_uri
from bench.support import seed_lake

GENERATED_ARGS = dict(n_customers=100, n_terminals=200, n_days=30)  # for the `generated` fixture


@pytest.fixture
def config(tmp_path):
    # 100 simulated customers make a fraud rate near 30 %: above the default bound of the label-rate check
    return load_config(None, env={}, overrides={"runtime.state_dir": str(tmp_path / "state"),
                                                "retrain.max_label_rate": 0.5,
                                                "storage.kind": "local"}, cwd=tmp_path)  # no S3 server here


def test_params_default_from_the_config_and_bad_ones_say_why(config):
    params = steps.check_params(config, {})
    assert params.window_days == config.retrain.window_days and params.estimator == config.model.estimator
    assert params.promotion_margin == config.model.promotion_margin and params.source == "" and params.cutoff == ""
    assert params.alert_budget_per_day == config.model.alert_budget_per_day
    assert steps.check_params(config, {"alert_budget_per_day": 25}).alert_budget_per_day == 25
    with pytest.raises(BadInputError) as err:
        steps.check_params(config, {"window_days": 0, "estimator": "xgb", "promotion_margin": -1,
                                    "alert_budget_per_day": 2.5, "source": "/no/such.csv", "cutoff": "yesterday"})
    message = err.value.message
    for words in ("window_days must be a whole number >= 1, not 0", "estimator must be one of", "'xgb'",
                  "promotion_margin must be a number >= 0", "alert_budget_per_day must be a whole number >= 1, not 2.5",
                  "/no/such.csv", "cutoff must be an ISO date"):
        assert words in message
    with pytest.raises(BadInputError, match="unknown parameter"):
        steps.check_params(config, {"windows": 3})


def test_extract_from_the_lake_and_validate(config, generated):
    history = generated.frame
    seed_lake(Lake(lake_uri(config)), history, batch_rows=2000)
    params = steps.check_params(config, {"window_days": 20, "cutoff": "2018-05-01"})
    folder = steps.run_dir(config, "manual__2018-05-01T00:00:00+00:00")
    assert folder.name == "manual__2018-05-01T00_00_00_00_00"
    extracted = steps.extract(config, params, folder, dt.datetime(2030, 1, 1), storage=config.storage, log=lambda line: None)
    assert (extracted["since"], extracted["until"]) == ("2018-04-11", "2018-05-01")
    frame = pd.read_parquet(extracted["path"])
    window = history[(history["tx_datetime"] >= "2018-04-11") & (history["tx_datetime"] < "2018-05-01")]
    assert len(frame) == len(window) and frame["transaction_id"].is_unique
    # labels arrive 7 days after the transaction: the last 7 days have none by the cutoff
    assert frame.loc[frame["tx_datetime"] >= "2018-04-24", "is_fraud"].isna().all()
    assert frame.loc[frame["tx_datetime"] < "2018-04-23", "is_fraud"].notna().all()
    lineage = json.loads(open(extracted["lineage_path"]).read())
    assert lineage["kind"] == "lake" and len(lineage["transaction_files"]) >= 20 and lineage["labels_after_cutoff"] > 0
    validated = steps.validate(config, extracted, folder, log=lambda line: None)
    assert validated["labelled"] == int(frame["is_fraud"].notna().sum())
    checks = json.loads((folder / "validate.json").read_text())
    assert [c["check"] for c in checks] == ["schema", "row_count", "label_rate", "freshness"]
    assert all(c["ok"] for c in checks)


def test_validate_names_the_failed_checks_and_numbers(config, generated):
    seed_lake(Lake(lake_uri(config)), generated.frame, batch_rows=2000)
    params = steps.check_params(config, {"window_days": 5, "cutoff": "2018-06-01"})  # after the data
    folder = steps.run_dir(config, "r1")
    extracted = steps.extract(config, params, folder, dt.datetime(2030, 1, 1), storage=config.storage, log=lambda line: None)
    assert extracted["rows"] == 0
    with pytest.raises(BadInputError) as err:
        steps.validate(config, extracted, folder, log=lambda line: None)
    assert "row_count: 0 labelled of 0 transactions, at least 1,000 needed" in err.value.message
    assert "freshness" in err.value.message

    strict = config.model_copy(update={"retrain": config.retrain.model_copy(update={"max_label_rate": 0.001})})
    params = steps.check_params(config, {"window_days": 20, "cutoff": "2018-05-01"})
    extracted = steps.extract(config, params, folder, dt.datetime(2030, 1, 1), storage=config.storage, log=lambda line: None)
    with pytest.raises(BadInputError, match=r"label_rate: fraud rate 0\.\d+ \(\d+ frauds\), allowed 0.0001..0.001"):
        steps.validate(strict, extracted, folder, log=lambda line: None)


def test_extract_from_a_file(config, generated, tmp_path):
    path = tmp_path / "data.csv"
    generated.frame.to_csv(path, index=False)
    params = steps.check_params(config, {"window_days": 10, "source": str(path), "cutoff": "2018-04-21"})
    folder = steps.run_dir(config, "r2")
    extracted = steps.extract(config, params, folder, dt.datetime(2030, 1, 1), storage=config.storage, log=lambda line: None)
    frame = pd.read_parquet(extracted["path"])
    assert frame["tx_datetime"].min() >= pd.Timestamp("2018-04-11")
    assert frame["tx_datetime"].max() < pd.Timestamp("2018-04-21") and frame["is_fraud"].notna().all()
    assert json.loads(open(extracted["lineage_path"]).read())["kind"] == "source"
