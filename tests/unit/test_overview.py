"""`fraudctl status`'s overview (fraudctl/operate/overview.py): the assembly with fake panels (a failing, a crashing
and a hanging one degrade to "unavailable" without holding the view), each panel's reading of what its
system answers, and the command's JSON, text, --watch loop and exit codes in-process. The real stack is in
tests/integration/test_status_view.py."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
from rich.console import Console

from fraudctl.operate import overview as ov
from fraudctl.cli import run
from fraudctl.cli import common
from fraudctl.cli import stack as cli
from fraudctl.errors import ExitCode, PrerequisiteError, UnavailableError
from fraudctl.stack.base import ServiceStatus

HEALTHY = [ServiceStatus("kafka", "RUNNING", pid=10, endpoint="127.0.0.1:9092", healthy=True, detail="ok",
                         uptime_seconds=5.0),
           ServiceStatus("scorer", "STOPPED", on_demand=True)]
UNHEALTHY = [ServiceStatus("kafka", "RUNNING", pid=10, healthy=False, detail="no answer")]


def view(panels, services=lambda: HEALTHY, timeout=1.0) -> ov.Overview:
    return ov.Overview(services, panels, runtime="native", timeout=timeout)


def test_each_panel_degrades_on_its_own_and_a_hung_one_costs_only_the_timeout():
    release = threading.Event()
    calls = {"slow": 0}

    def slow():
        calls["slow"] += 1
        release.wait(10)
        return {"late": True}

    def broken():
        raise UnavailableError("MLflow at http://x did not answer")

    def buggy():
        raise KeyError("version")

    overview = view({"fine": lambda: {"n": 1}, "down": broken, "bug": buggy, "slow": slow}, timeout=0.3)
    started = time.monotonic()
    first = overview.gather()
    assert time.monotonic() - started < 2
    assert first["healthy"] is True and [s["name"] for s in first["services"]] == ["kafka", "scorer"]
    assert first["fine"] == {"available": True, "n": 1}
    assert first["down"] == {"available": False, "error": "MLflow at http://x did not answer"}
    assert first["bug"] == {"available": False, "error": "KeyError: 'version'"}
    assert first["slow"]["available"] is False and first["slow"]["error"].startswith("no answer within")
    # still hung: not asked a second time while the first question is open
    assert overview.gather()["slow"]["available"] is False and calls["slow"] == 1
    release.set()
    assert overview.gather()["slow"] == {"available": True, "late": True}
    assert overview.gather()["slow"] == {"available": True, "late": True} and calls["slow"] == 2


def test_services_errors_propagate_once_and_are_shown_while_watching():
    def no_docker():
        raise PrerequisiteError("no Docker engine answers")

    overview = view({"fine": lambda: {}}, services=no_docker)
    with pytest.raises(PrerequisiteError):
        overview.gather()
    watched = overview.gather(strict=False)
    assert watched["services_error"] == "no Docker engine answers" and watched["healthy"] is False
    assert view({}, services=lambda: UNHEALTHY).gather()["healthy"] is False
    assert view({}, services=lambda: []).gather()["healthy"] is False  # nothing started is not healthy


def test_scorer_panel_condenses_the_scorer_status(monkeypatch):
    from fraudctl.operate import scorer_service as control

    monkeypatch.setattr(control, "status", lambda config: {
        "process": "RUNNING", "health": "healthy", "degraded": None, "model": {"version": "3", "since": 0.0},
        "input_rows_per_second": 120.0, "processed_rows_per_second": 130.5, "batch_duration_ms": 850,
        "lag": {"transactions": {"0": 5, "1": 7}, "labels": {"0": 0}}, "dead_letters": 2,
        "latency_ms": {"p50": 900.0, "p99": 1800.0, "max": 2000.0}, "counters": {"scored": 1000, "alerts": 4},
        "status_age_seconds": 0.4})
    panel = ov.scorer_panel(config=None)
    assert panel["health"] == "healthy" and panel["model_version"] == "3"
    assert panel["model_since"] == "1970-01-01T00:00:00+00:00"
    assert panel["lag"] == {"labels": 0, "transactions": 12}
    assert panel["latency_ms"]["p99"] == 1800.0 and panel["scored"] == 1000 and panel["dead_letters"] == 2


class FakeConfig:
    class model:  # noqa: N801 - the shape of Config.model
        name = "fraud-detector"

    class retrain:  # noqa: N801
        dag_id = "fraud_retrain"


def version(number, tags=None, created=1_796_000_000_000, updated=1_796_000_100_000):
    return {"version": number, "creation_timestamp": created, "last_updated_timestamp": updated,
            "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}


def test_champion_panel_takes_the_time_fraudctl_recorded_on_promotion(monkeypatch):
    aliases = {"champion": version("4", {"fraudctl.promoted_at": "2026-12-01T10:00:00+00:00",
                                         "fraudctl.promoted_over": "2", "fraudctl.promotion_forced": "false",
                                         "fraudctl.test_average_precision": "0.71"}),
               "challenger": version("5")}
    monkeypatch.setattr(ov, "_mlflow_alias", lambda config, alias, timeout: aliases.get(alias))
    panel = ov.champion_panel(FakeConfig)
    assert (panel["version"], panel["changed_at"], panel["changed_by"], panel["promoted_over"]) == \
           ("4", "2026-12-01T10:00:00+00:00", "promote", "2")
    assert panel["forced"] is False and panel["challenger"] == "5" and panel["test_average_precision"] == 0.71

    # a rollback after the promotion: the champion changed when it was restored
    aliases["champion"] = version("2", {"fraudctl.promoted_at": "2026-11-30T08:00:00+00:00",
                                        "fraudctl.restored_at": "2026-12-01T11:00:00+00:00"})
    panel = ov.champion_panel(FakeConfig)
    assert (panel["changed_at"], panel["changed_by"], panel["promoted_over"]) == \
           ("2026-12-01T11:00:00+00:00", "rollback", None)

    # an alias set by hand: no time recorded, said so; the version's own times only
    aliases["champion"] = version("7")
    panel = ov.champion_panel(FakeConfig)
    assert panel["changed_at"] is None and panel["version_updated_at"] == "2026-11-30T00:55:00+00:00"
    assert "alias time not recorded" in cli._champion_line({"available": True, **panel})

    aliases.clear()
    panel = ov.champion_panel(FakeConfig)
    assert panel["version"] is None and panel["message"].startswith("no champion")


def mlflow_config(uri):
    from fraudctl.config import Config

    config = Config()
    host, port = uri.rsplit(":", 1)
    config.mlflow.host, config.mlflow.port = host.split("//")[1], int(port)
    return config


@pytest.mark.parametrize("status_code, body, expected", [
    (200, {"model_version": {"version": "3"}}, {"version": "3"}),
    (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Registered model alias champion not found."}, None),
    (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Registered Model fraud-detector not found."}, None),
])
def test_an_unset_alias_is_no_version(status_code, body, expected):
    from tests.unit.test_registry_rest import Canned

    server = Canned()
    server.api("registered-models/alias", (status_code, body))
    try:
        assert ov._mlflow_alias(mlflow_config(server.uri), "champion", 1.0) == expected
    finally:
        server.server.shutdown()


def test_an_mlflow_error_or_silence_is_unavailable():
    from tests.unit.test_registry_rest import Canned

    server = Canned()
    try:
        server.api("registered-models/alias", (500, {"error_code": "INTERNAL_ERROR"}))
        with pytest.raises(UnavailableError, match="MLflow answered 500"):
            ov._mlflow_alias(mlflow_config(server.uri), "champion", 1.0)
        server.api("registered-models/alias", (403, {"error_code": "PERMISSION_DENIED"}))
        with pytest.raises(UnavailableError, match="MLflow answered 403: .*PERMISSION_DENIED"):
            ov._mlflow_alias(mlflow_config(server.uri), "champion", 1.0)
        server.api("registered-models/alias", ("hang", 2.0))
        with pytest.raises(UnavailableError, match="did not answer: .*timed out"):
            ov._mlflow_alias(mlflow_config(server.uri), "champion", 0.3)
    finally:
        server.server.shutdown()


def test_retrain_panel_reads_the_latest_run_and_asks_a_finished_one_once(monkeypatch):
    from fraudctl.retraining import trigger as retraining

    runs = []
    asked = []
    monkeypatch.setattr("fraudctl.operate.connect.airflow_reader", lambda config, timeout: object())
    monkeypatch.setattr(retraining, "read_runs", lambda config, limit, reader: runs[:limit])

    def status(config, run_id, reader):
        asked.append(run_id)
        return {"dag_id": "fraud_retrain", "run_id": run_id, "state": runs[0]["state"],
                "start": "2026-12-01T10:00:00+00:00", "end": "2026-12-01T10:00:42.5+00:00",
                "tasks": {"extract": "success", "report": "success"}, "failed_tasks": [],
                "report": {"version": "5", "promoted": False, "decision": "kept_as_challenger",
                           "reason": "average precision gain 0.001 below the margin 0.01"}}

    monkeypatch.setattr(retraining, "read_status", status)
    panel = ov.RetrainPanel(FakeConfig)
    assert panel()["run_id"] is None and "no run of fraud_retrain yet" in panel()["message"]
    runs.append({"run_id": "manual__1", "state": "running", "run_type": "manual"})
    assert panel()["state"] == "running" and panel()["state"] == "running" and asked == ["manual__1"] * 2
    runs[0]["state"] = "success"
    done = panel()
    assert (done["version"], done["promoted"], done["seconds"], done["run_type"]) == ("5", False, 42.5, "manual")
    assert panel() == done and asked == ["manual__1"] * 3  # finished: not asked again
    assert "kept as @challenger" in cli._retrain_line({"available": True, **done})


def test_retrain_panel_takes_a_new_client_after_an_error(monkeypatch):
    from fraudctl.retraining import trigger as retraining

    clients = []
    monkeypatch.setattr("fraudctl.operate.connect.airflow_reader",
                        lambda config, timeout: clients.append(object()) or clients[-1])

    def down(config, limit, reader):
        raise UnavailableError("Airflow api-server did not answer")

    monkeypatch.setattr(retraining, "read_runs", down)
    panel = ov.RetrainPanel(FakeConfig)
    for _ in range(2):
        with pytest.raises(UnavailableError):
            panel()
    assert len(clients) == 2


REPORT = {
    "scorer": {"available": True, "health": "healthy", "degraded": None, "model_version": "4",
               "input_rows_per_second": 10.0, "processed_rows_per_second": 12.0, "batch_duration_ms": 800,
               "latency_ms": {"p50": 950.0, "p99": 1900.0}, "lag": {"transactions": 3}, "scored": 50, "alerts": 1},
    "champion": {"available": False, "error": "MLflow at http://x did not answer: [Errno 111] Connection refused"},
    "retrain": {"available": True, "run_id": None, "message": "no run of fraud_retrain yet (fraudctl retrain)"},
    "workers": {"available": True, "online": 1, "total": 1, "workers": [
        {"name": "celery@vm", "online": True, "pid": 7, "active": 0, "processed": 3, "failed": 0,
         "heartbeat_age": 1.2}]},
}


def fake_overview(services, calls=None):
    def make(config, timeout=ov.PANEL_TIMEOUT):
        if calls is not None:
            calls.append(1)
        panels = {name: (lambda value=value: {k: v for k, v in value.items() if k != "available"})
                  for name, value in REPORT.items() if value["available"]}
        panels["champion"] = lambda: (_ for _ in ()).throw(UnavailableError(REPORT["champion"]["error"]))
        return view(panels, services=lambda: services)
    return make


def test_text_view_shows_every_panel_or_why_not():
    console = Console(file=io.StringIO(), width=240)
    console.print(cli._overview({"services": [s.as_dict() for s in HEALTHY], **REPORT}, title="at 10:00"))
    text = console.file.getvalue()
    assert "at 10:00" in text and "kafka" in text and "healthy" in text
    assert "latency p50 950 ms p99 1,900 ms" in text and "lag transactions 3" in text
    assert "unavailable: MLflow at http://x did not answer" in text
    assert "no run of fraud_retrain yet" in text and "1/1 online" in text and "heartbeat 1.2s ago" in text


def test_status_json_is_one_document_and_exit_8_keeps_its_meaning(monkeypatch, capsys):
    monkeypatch.setattr(ov, "overview", fake_overview(HEALTHY))
    assert run(["status", "-o", "json"]) == ExitCode.OK
    report = json.loads(capsys.readouterr().out)
    assert report["healthy"] is True and report["runtime"] == "native"
    assert report["workers"]["online"] == 1 and report["champion"]["available"] is False
    assert report["scorer"]["latency_ms"]["p50"] == 950.0

    monkeypatch.setattr(ov, "overview", fake_overview(UNHEALTHY))
    assert run(["status", "-o", "json"]) == ExitCode.UNAVAILABLE
    assert json.loads(capsys.readouterr().out)["healthy"] is False
    assert run(["status"]) == ExitCode.UNAVAILABLE
    captured = capsys.readouterr()
    assert "unavailable: MLflow" in captured.out and "not running here" in captured.err and "fraudctl up" in captured.err

    monkeypatch.setattr(ov, "overview", fake_overview(HEALTHY + [ServiceStatus("mlflow", "FATAL", healthy=None)]))
    assert run(["status", "-o", "json"]) == ExitCode.UNAVAILABLE
    err = capsys.readouterr().err
    assert "not fully up and healthy: mlflow" in err and "fraudctl logs mlflow" in err


def test_watch_refreshes_count_times_and_an_unhealthy_service_does_not_stop_it(monkeypatch, capsys):
    monkeypatch.setattr(ov, "overview", fake_overview(UNHEALTHY))
    started = time.monotonic()
    assert run(["status", "--watch", "--count", "3", "--interval", "0.2", "-o", "json"]) == ExitCode.UNAVAILABLE
    assert time.monotonic() - started >= 0.4  # two waits between three refreshes
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3 and all(line["healthy"] is False and line["workers"]["online"] == 1 for line in lines)

    monkeypatch.setattr(ov, "overview", fake_overview(HEALTHY))
    assert run(["status", "-w", "--count", "2", "--interval", "0.2"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "fraudctl status at" in out and "Ctrl-C to stop" in out and "1/1 online" in out


def test_ctrl_c_ends_the_watch_with_exit_0(monkeypatch, capsys):
    monkeypatch.setattr(ov, "overview", fake_overview(UNHEALTHY))
    sleeps = []

    def interrupted(seconds):
        sleeps.append(seconds)
        raise KeyboardInterrupt

    monkeypatch.setattr(common, "pause", interrupted)  # not time.sleep: other threads sleep too
    assert run(["status", "--watch", "-o", "json"]) == ExitCode.OK
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 and len(sleeps) == 1 and "Traceback" not in captured.err
