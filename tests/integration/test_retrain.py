"""fraud_retrain on the real native stack: the lake seeded as the scorer writes it, `fraudctl retrain --wait`
runs every task on the Celery worker, registers a version with its metrics and lineage, promotes it when
the gate allows, keeps it as @challenger when it does not (the run still succeeds and says why); refused
credentials, an unreachable API and a failed run each give their exit code."""

from __future__ import annotations

import json
import socket
import time

import pytest

from fraudctl.errors import ExitCode
from tests.conftest import run_fraudctl

WINDOW = ["--conf", "window_days=45", "--conf", "cutoff=2018-05-16"]  # the generated days and a day after


@pytest.fixture(scope="module")
def seeded(stack_config, stack_storage):
    from fraudctl.data.generator import generate_transactions
    from fraudctl.data.lake import lake_for
    from bench.support import seed_lake

    lake = lake_for(stack_config, stack_storage)
    batches = seed_lake(lake, generate_transactions(n_customers=300, n_terminals=600, n_days=45))
    return {"uri": lake.uri, "batches": batches}


def retrain(config_path, *args, env=None, timeout=600):
    started = time.monotonic()
    result = run_fraudctl("-c", str(config_path), "retrain", *args, env=env, timeout=timeout)
    print(f"retrain {' '.join(args)}: exit {result.returncode} in {time.monotonic() - started:.1f}s")
    return result


def registry(config):
    from fraudctl.model.registry import Registry

    return Registry(config)


def test_retrain_registers_with_lineage_then_a_worse_candidate_is_kept(stack_config_path, stack_config, seeded):
    result = retrain(stack_config_path, "--wait", "--timeout", "400", "-o", "json", *WINDOW)
    assert result.returncode == 0, result.stderr + result.stdout
    out = json.loads(result.stdout)
    print("task seconds:", out["durations"], "wall:", out["wall_seconds"])
    assert out["state"] == "success" and out["unpaused"] is True
    report = out["report"]
    assert report["dag_run_id"] == out["run_id"]
    assert report["data"]["kind"] == "lake" and report["data"]["lake_files"] >= 45
    assert report["data"]["since"] == "2018-04-01" and report["data"]["until"] == "2018-05-16"
    assert report["data"]["duplicates_dropped"] == 5000  # the batch the seed wrote twice
    assert 0 < report["metrics"]["average_precision"] <= 1
    first = report["version"]
    reg = registry(stack_config)
    version = reg.client.get_model_version(reg.name, first)
    assert version.tags["fraudctl.dag_run_id"] == out["run_id"]
    assert version.tags["fraudctl.retrain_window"] == "2018-04-01..2018-05-16"
    assert version.tags["fraudctl.retrain_decision"].startswith(report["decision"])
    lineage = reg.client.download_artifacts(version.run_id, "retrain_lineage.json")
    lineage = json.loads(open(lineage).read())
    assert lineage["dag_run_id"] == out["run_id"] and len(lineage["transaction_files"]) == report["data"]["lake_files"]
    assert all("/transactions/event_date=2018-" in f for f in lineage["transaction_files"])
    champion_before = report["champion_before"]
    if champion_before is None:  # nothing to beat: the first version becomes the champion
        assert report["promoted"] is True and out["tasks"]["promote"] == "success"
    champion = reg.alias_version("champion")

    # the same data with a margin no candidate can reach: registered, not promoted, the run succeeds
    result = retrain(stack_config_path, "--wait", "--timeout", "400", "-o", "json", *WINDOW,
                     "--conf", "promotion_margin=10")
    assert result.returncode == 0, result.stderr + result.stdout
    out = json.loads(result.stdout)
    print("task seconds:", out["durations"], "wall:", out["wall_seconds"])
    report = out["report"]
    assert out["tasks"]["promote"] == "skipped" and out["tasks"]["keep_champion"] == "success"
    assert report["promoted"] is False and report["decision"] == "kept_as_challenger"
    assert ">= 10" in report["reason"] and report["version"] != first
    assert reg.alias_version("champion") == champion
    assert reg.alias_version("challenger") == report["version"]

    listed = json.loads(retrain(stack_config_path, "list", "-o", "json").stdout)["runs"]
    assert listed[0]["run_id"] == out["run_id"] and listed[0]["state"] == "success"
    status = retrain(stack_config_path, "status", out["run_id"])
    assert status.returncode == 0 and "kept as @challenger" in status.stdout


def test_a_failed_run_exits_14_and_names_the_check(stack_config_path, seeded):
    # a cutoff years after the seeded days: the window is empty, validate fails (no retries for bad data)
    result = retrain(stack_config_path, "--wait", "--timeout", "300", "--logs",
                     "--conf", "cutoff=2030-01-01", "--conf", "window_days=5")
    assert result.returncode == ExitCode.RUN_FAILED, result.stderr + result.stdout
    assert "failed in validate" in result.stderr
    assert "row_count: 0 labelled of 0 transactions" in result.stderr + result.stdout


def test_refused_credentials_and_unreachable_api(stack_config_path, stack_config):
    wrong = retrain(stack_config_path, env={"FRAUDCTL_AIRFLOW__ADMIN_PASSWORD": "wrong"}, timeout=60)
    assert wrong.returncode == ExitCode.AUTH, wrong.stderr
    assert "refused the credentials" in wrong.stderr
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = retrain(stack_config_path, env={"FRAUDCTL_AIRFLOW__PORT": str(port)}, timeout=60)
    assert down.returncode == ExitCode.UNAVAILABLE, down.stderr
    assert "did not answer" in down.stderr
    # a run that cannot end within a second (it fails fast in validate, after the wait gave up)
    late = retrain(stack_config_path, "--wait", "--timeout", "1", "--conf", "cutoff=2030-01-01",
                   "--conf", "window_days=5", timeout=120)
    assert late.returncode == ExitCode.TIMEOUT, late.stderr
    assert "retrain status" in late.stderr
