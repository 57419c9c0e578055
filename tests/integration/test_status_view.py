"""`fraudctl status` on the real session stack: one JSON document whose panels carry real values (after a
real `retrain --wait`: the champion and when it became champion, the run and its outcome; the running
scorer's rates, latency and lag; the Celery worker), `--watch --count` as JSON lines and as the live view,
and the view degrading panel by panel, within seconds, with MLflow and the Airflow api-server stopped."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import time

import pytest

from fraudctl.config import load_config
from fraudctl.errors import ExitCode
from fraudctl.stack.services_airflow import CELERY_WORKER_NAME
from tests.conftest import fraudctl_ok, run_fraudctl, wait_for
from tests.support import module_config

TOPIC_SUFFIX = "-status-test"
WINDOW = ["--conf", "window_days=45", "--conf", "cutoff=2018-05-16"]  # the generated days and a day after
REPLAYED = 3000
PANELS = ("scorer", "champion", "retrain", "workers")


@pytest.fixture(scope="module")
def env(stack_config_path, stack_config, stack_storage, tmp_path_factory):
    """The session lake seeded, a real fraud_retrain run (the first version it registers is promoted when
    there is no champion yet), and a config with this module's own topics and lake for the scorer."""
    from fraudctl.data.generator import generate_transactions, write_transactions
    from fraudctl.data.lake import lake_for
    from bench.support import seed_lake

    frame = generate_transactions(n_customers=300, n_terminals=600, n_days=45)
    seed_lake(lake_for(stack_config, stack_storage), frame)
    retrained = json.loads(fraudctl_ok(stack_config_path, "retrain", "--wait", "--timeout", "400", "-o", "json",
                                       *WINDOW).stdout)
    folder = tmp_path_factory.mktemp("status")
    cfg = module_config(stack_config_path, folder, TOPIC_SUFFIX, storage={"lake_prefix": "lake-status-test"})
    path = folder / "tx.csv"
    write_transactions(frame, path)
    yield {"cfg": cfg, "config": load_config(cfg, env={}), "path": path, "retrained": retrained}
    run_fraudctl("-c", str(cfg), "scorer", "stop")


def status_json(config_path, *args, timeout: float = 120) -> tuple[int, dict]:
    result = run_fraudctl("-c", str(config_path), "status", "-o", "json", *args, timeout=timeout)
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout)


def assert_worker_online(view: dict) -> None:
    workers = view["workers"]
    assert workers["available"] is True, workers
    assert workers["online"] >= 1
    assert any(row["name"].startswith(CELERY_WORKER_NAME + "@") and row["online"] for row in workers["workers"])


def test_every_panel_carries_real_values(env, stack_config_path, stack_config):
    from fraudctl.model.registry import Registry

    code, view = status_json(stack_config_path)
    assert code == 0 and view["healthy"] is True and view["runtime"] == "native"
    services = {s["name"]: s for s in view["services"]}
    assert services.pop("scorer")["on_demand"] is True
    assert all(s["state"] == "RUNNING" and s["healthy"] is True for s in services.values()), services
    assert all(view[name]["available"] is True for name in PANELS), {name: view[name] for name in PANELS}
    assert_worker_online(view)

    # the champion, as MLflow has it, and when it became champion (the tag `promote` wrote)
    registry = Registry(stack_config)
    champion = registry.alias_version("champion")
    assert champion is not None  # the retrain promoted its version, or a champion was there before
    panel = view["champion"]
    tags = registry.version(champion).tags
    assert panel["version"] == champion and panel["model"] == stack_config.model.name
    assert panel["changed_at"] is not None
    assert panel["changed_at"] in (tags.get("fraudctl.promoted_at"), tags.get("fraudctl.restored_at"))
    assert panel["challenger"] == registry.alias_version("challenger")

    # the retrain run, its times and outcome
    retrained, run = env["retrained"], view["retrain"]
    assert (run["run_id"], run["state"]) == (retrained["run_id"], "success")
    assert (run["start"], run["end"]) == (retrained["start"], retrained["end"]) and run["seconds"] > 0
    report = retrained["report"]
    assert (run["version"], run["promoted"], run["decision"]) == (report["version"], report["promoted"],
                                                                   report["decision"])
    if report["promoted"]:
        assert panel["version"] == report["version"] and panel["changed_by"] == "promote"
        moment = dt.datetime.fromisoformat
        assert moment(retrained["start"]).replace(microsecond=0) <= moment(panel["changed_at"]) \
            <= moment(retrained["end"])

    # the scorer is not started: said, not a fault
    assert view["scorer"]["health"] == "stopped"

    text = run_fraudctl("-c", str(stack_config_path), "status")
    assert text.returncode == 0, text.stderr
    for expected in ("airflow-worker", "healthy", f"v{champion} since", retrained["run_id"], "online", "stopped"):
        assert expected in text.stdout, (expected, text.stdout)
    assert "unavailable" not in text.stdout


def test_the_running_scorer_shows_its_rates_latency_and_lag(env):
    cfg, config = env["cfg"], env["config"]
    run_fraudctl("-c", str(cfg), "scorer", "stop")
    shutil.rmtree(config.state_dir / "scorer", ignore_errors=True)  # a checkpoint of other topics
    fraudctl_ok(cfg, "scorer", "start", "-o", "json", timeout=300)
    try:
        fraudctl_ok(cfg, "replay", str(env["path"]), "--limit", str(REPLAYED))

        def scored() -> dict | None:
            view = status_json(cfg)[1]
            return view if (view["scorer"].get("scored") or 0) >= REPLAYED else None

        view = wait_for(scored, 180, f"the status view to count {REPLAYED} scored transactions")
        scorer = view["scorer"]
        assert scorer["available"] is True and scorer["health"] == "healthy"
        assert scorer["model_version"] == view["champion"]["version"]
        assert scorer["processed_rows_per_second"] is not None and scorer["batch_duration_ms"] is not None
        latency = scorer["latency_ms"]
        assert latency is not None and 0 < latency["p50"] <= latency["p99"] < 120_000, latency
        transactions = config.kafka.topics.transactions.name
        assert set(scorer["lag"]) == {transactions, config.kafka.topics.labels.name}
        assert scorer["lag"][transactions] == sum(scorer["lag_per_partition"][transactions].values()) >= 0
        text = run_fraudctl("-c", str(cfg), "status")
        words = " ".join(text.stdout.split())  # the panel's line wraps at the console's width
        assert text.returncode == 0 and "latency p50" in words and f"{transactions} {scorer['lag'][transactions]:,}" in words
    finally:
        fraudctl_ok(cfg, "scorer", "stop")


def test_watch_refreshes_count_times(env, stack_config_path):
    started = time.monotonic()
    result = run_fraudctl("-c", str(stack_config_path), "status", "--watch", "--count", "2", "--interval", "0.5",
                          "-o", "json", timeout=120)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 0.5  # one wait between two refreshes
    views = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(views) == 2 and views[0]["time"] <= views[1]["time"]
    for view in views:
        assert view["healthy"] is True and view["champion"]["version"] is not None
        assert view["retrain"]["run_id"] == env["retrained"]["run_id"]
        assert_worker_online(view)
    text = run_fraudctl("-c", str(stack_config_path), "status", "--watch", "--count", "2", "--interval", "0.5",
                        timeout=120)
    assert text.returncode == 0, text.stderr
    assert "fraudctl status at" in text.stdout and "Ctrl-C to stop" in text.stdout
    assert "online" in text.stdout and env["retrained"]["run_id"] in text.stdout


def test_mlflow_and_airflow_down_cost_their_panels_only(env, stack_config_path, stack_config):
    from fraudctl.stack.supervisor import Supervisor

    supervisor = Supervisor(stack_config.state_dir)
    stopped = ("mlflow", "airflow-apiserver")
    for name in stopped:
        supervisor.stop(name)
    try:
        started = time.monotonic()
        code, view = status_json(stack_config_path)
        assert time.monotonic() - started < 30  # every panel within its few seconds, the probes included
        assert code == ExitCode.UNAVAILABLE and view["healthy"] is False
        services = {s["name"]: s for s in view["services"]}
        assert all(services[name]["state"] == "STOPPED" for name in stopped)
        assert view["champion"]["available"] is False and "MLflow" in view["champion"]["error"]
        assert view["retrain"]["available"] is False and "did not answer" in view["retrain"]["error"]
        assert view["scorer"]["available"] is True and view["scorer"]["health"] == "stopped"
        assert_worker_online(view)  # Flower answers without the api-server
        text = run_fraudctl("-c", str(stack_config_path), "status")
        assert text.returncode == ExitCode.UNAVAILABLE
        assert "unavailable: MLflow" in text.stdout and re.search(r"[1-9]\d*/\d+ online", text.stdout)
        # watching: an unhealthy stack does not end the watch; the exit code is the last refresh's
        watched = run_fraudctl("-c", str(stack_config_path), "status", "-w", "--count", "2", "--interval", "0.3",
                               "-o", "json", timeout=120)
        assert watched.returncode == ExitCode.UNAVAILABLE
        lines = [json.loads(line) for line in watched.stdout.splitlines()]
        assert len(lines) == 2 and all(not line["healthy"] and not line["champion"]["available"] for line in lines)
    finally:
        for name in stopped:
            supervisor.start(name)
    wait_for(lambda: run_fraudctl("-c", str(stack_config_path), "status", "-o", "json").returncode == 0, 180,
             "MLflow and the Airflow api-server healthy again")
