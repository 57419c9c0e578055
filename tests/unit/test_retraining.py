"""`fraudctl retrain` without services: --conf parsing, and a bad parameter refused before Airflow is asked."""

import pytest

from fraudctl.cli import run
from fraudctl.errors import BadInputError, ExitCode
from fraudctl.retraining.trigger import parse_conf


def test_conf_values_parse_as_json_else_text():
    assert parse_conf(["window_days=30", "promotion_margin=0.5", "source=/data/tx.csv", "cutoff=2018-05-16",
                       "estimator=random_forest"]) == {
        "window_days": 30, "promotion_margin": 0.5, "source": "/data/tx.csv", "cutoff": "2018-05-16",
        "estimator": "random_forest"}
    with pytest.raises(BadInputError, match="not KEY=VALUE"):
        parse_conf(["window_days"])


def test_a_bad_parameter_exits_11_with_the_reason_before_any_service(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FRAUDCTL_RUNTIME__STATE_DIR", str(tmp_path / "nowhere"))
    assert run(["retrain", "--conf", "window_days=0", "--conf", "estimator=xgb"]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "window_days must be a whole number >= 1, not 0" in err and "'xgb'" in err
    # a good one goes on to Airflow, and with no stack started that is said plainly
    assert run(["retrain", "--conf", "window_days=3"]) == ExitCode.UNAVAILABLE
    assert "no stack has been started" in capsys.readouterr().err
