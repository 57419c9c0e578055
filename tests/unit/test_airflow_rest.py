"""The narrow Airflow REST reader (fraudctl/clients/airflow_rest.py) that `fraudctl status` reads the latest
retrain run through, against a tiny HTTP server of our own answering JSON captured from a real Airflow 3
api-server (tests/unit/data/airflow_api.json). The same server answers the generated apache-airflow-client,
so `trigger.read_runs|read_status` (the reader) are checked equal to `trigger.list_runs|status` (the
generated client, what `fraudctl retrain list|status` show), including the errors. The real Airflow is in
tests/integration."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fraudctl.clients.airflow import AirflowClient
from fraudctl.clients.airflow_rest import AirflowReader
from fraudctl.config import AirflowConfig
from fraudctl.errors import AuthError, NotFoundError, UnavailableError
from fraudctl.retraining import trigger
from tests.local_http import LocalServer

CAPTURED = json.loads((Path(__file__).parent / "data" / "airflow_api.json").read_text())
DAG = "fraud_retrain"
RUN = CAPTURED["failed"]["dag_run"]["dag_run_id"]
PASSWORD = "s3cret"
REPORT = {"dag_id": DAG, "dag_run_id": RUN, "version": "7", "promoted": False, "decision": "kept_as_challenger",
          "reason": "average precision gain 0.001 below the margin 0.01", "metrics": {"average_precision": 0.61},
          "data": {"kind": "lake", "since": "2026-11-08", "until": "2026-12-08", "rows": 3000}}


def succeeded() -> dict:
    """The captured failed run turned into a successful one (states, durations and the report's XCom in the
    captured entry's shape): no run of the stack that was captured had succeeded."""
    answers = copy.deepcopy(CAPTURED["failed"])
    answers["dag_run"]["state"] = answers["dag_runs"]["dag_runs"][0]["state"] = "success"
    for ti in answers["task_instances"]["task_instances"]:
        ti["state"] = "skipped" if ti["task_id"] == "promote" else "success"
        ti["duration"] = 1.23456 if ti["task_id"] != "keep_champion" else None
    answers["xcom_report"] = {"status": 200, "body": {**CAPTURED["extract_xcom"], "task_id": "report",
                                                      "task_display_name": "report", "value": REPORT}}
    return answers


class FakeAirflow(LocalServer):
    """A local api-server: `answers` is one of CAPTURED's scenarios; `/auth/token` gives a token when the
    password is PASSWORD (else 401, as SimpleAuthManager). Every request is kept in `asked`."""

    def __init__(self, answers: dict):
        self.answers = answers
        super().__init__(self._answer)

    def _answer(self, request):
        if request.method == "POST":
            if (request.body or {}).get("password") == PASSWORD:
                return 201, {"access_token": "jwt-1"}
            return 401, {"detail": "Invalid credentials"}
        if request.headers.get("Authorization") != "Bearer jwt-1":
            return 401, {"detail": "Not authenticated"}
        return self.route(request.path)

    def route(self, path: str) -> tuple[int, object]:
        runs, run = f"/api/v2/dags/{DAG}/dagRuns", f"/api/v2/dags/{DAG}/dagRuns/{RUN}"
        answers = {runs: (200, self.answers["dag_runs"]), run: (200, self.answers["dag_run"]),
                   run + "/taskInstances": (200, self.answers["task_instances"]),
                   run + "/taskInstances/report/xcomEntries/return_value":
                       (self.answers["xcom_report"]["status"], self.answers["xcom_report"]["body"])}
        if path in answers:
            return answers[path]
        if path.startswith(runs + "/"):
            return 404, CAPTURED["run_404"]
        return 404, {"detail": "Not Found"}


class Config:
    """The part of fraudctl's Config the two paths read."""

    def __init__(self, port: int):
        self.airflow = AirflowConfig(port=port)

    class retrain:  # noqa: N801
        dag_id = DAG


@pytest.fixture
def fake():
    servers = []

    def start(answers):
        servers.append(FakeAirflow(answers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def both(server: FakeAirflow, run_id: str = RUN) -> tuple[str, str]:
    """(generated client's answer, reader's answer), each as the JSON `retrain list` + `retrain status` print."""
    config = Config(server.port)
    af, reader = AirflowClient(config.airflow, PASSWORD), AirflowReader(config.airflow, PASSWORD, timeout=5)
    generated = {"runs": trigger.list_runs(config, limit=1, af=af), "status": trigger.status(config, run_id, af=af)}
    narrow = {"runs": trigger.read_runs(config, limit=1, reader=reader),
              "status": trigger.read_status(config, run_id, reader=reader)}
    return json.dumps(generated), json.dumps(narrow)


@pytest.mark.parametrize("scenario", ["running", "failed", "succeeded"])
def test_the_reader_gives_exactly_what_the_generated_client_gives(fake, scenario):
    server = fake(succeeded() if scenario == "succeeded" else CAPTURED[scenario])
    generated, narrow = both(server)
    assert narrow == generated  # the same keys in the same order, the same value formats
    status = json.loads(narrow)["status"]
    if scenario == "running":
        assert status["tasks"]["extract"] == "running" and status["tasks"]["validate"] == "none"
        assert status["end"] is None and status["durations"]["validate"] is None
    if scenario == "failed":
        assert status["failed_tasks"] == ["validate"] and status["report"] is None
        assert status["start"] == "2026-12-07T02:44:40.604514+00:00" and status["durations"]["extract"] == 7.34
    if scenario == "succeeded":
        assert status["report"] == REPORT and status["durations"]["keep_champion"] is None
    listing = [asked for asked in server.asked if asked.path == f"/api/v2/dags/{DAG}/dagRuns"]
    assert listing[-1].params == {"limit": "1", "order_by": "-run_after"}  # the reader's, as the generated client's


def test_the_reader_reads_the_report_only_when_it_succeeded_and_signs_in_once(fake):
    server = fake(CAPTURED["failed"])
    reader = AirflowReader(Config(server.port).airflow, PASSWORD)
    trigger.read_status(Config(server.port), RUN, reader=reader)
    trigger.read_runs(Config(server.port), limit=1, reader=reader)
    assert [r.path for r in server.asked if "xcomEntries" in r.path] == []
    assert [r.method for r in server.asked].count("POST") == 1


def test_refused_credentials_are_the_same_auth_error_as_the_generated_clients(fake):
    server = fake(CAPTURED["failed"])
    config = Config(server.port)
    with pytest.raises(AuthError) as generated:
        AirflowClient(config.airflow, "wrong").token()
    with pytest.raises(AuthError) as narrow:
        trigger.read_runs(config, limit=1, reader=AirflowReader(config.airflow, "wrong"))
    assert narrow.value.message == generated.value.message == "Airflow refused the credentials of 'admin' (401)"
    assert narrow.value.hint == generated.value.hint and narrow.value.exit_code == 15


def test_an_unknown_run_is_the_same_not_found(fake):
    server = fake(CAPTURED["failed"])
    config = Config(server.port)
    with pytest.raises(NotFoundError) as generated:
        trigger.status(config, "nope", af=AirflowClient(config.airflow, PASSWORD))
    with pytest.raises(NotFoundError) as narrow:
        trigger.read_status(config, "nope", reader=AirflowReader(config.airflow, PASSWORD))
    assert narrow.value.message == generated.value.message
    assert "The DagRun with dag_id: `fraud_retrain` and run_id: `nope` was not found" in narrow.value.message


def test_an_api_server_that_is_not_there_is_unavailable():
    reader = AirflowReader(AirflowConfig(port=1), PASSWORD, timeout=2)
    with pytest.raises(UnavailableError, match=r"Airflow api-server http://127.0.0.1:1 did not answer: .*refused"):
        trigger.read_runs(Config(1), limit=1, reader=reader)


def test_another_error_status_is_unavailable(fake):
    server = fake({**CAPTURED["failed"], "dag_run": {"detail": "boom"}})
    server.route = lambda path: (500, {"detail": "boom"})
    with pytest.raises(UnavailableError, match=r"Airflow API error on listing the runs of fraud_retrain: 500 "):
        trigger.read_runs(Config(server.port), limit=1, reader=AirflowReader(Config(server.port).airflow, PASSWORD))


def test_the_status_panel_reads_airflow_without_the_heavy_clients(fake, tmp_path):
    """What `fraudctl status` runs for its retrain panel, in a fresh interpreter: connect.airflow_reader and
    a read of the latest run, which must not import the generated client (1.7 s) nor the other heavy ones."""
    server = fake(succeeded())
    state = tmp_path / "state"
    state.mkdir()
    (state / "secrets.json").write_text(json.dumps({"airflow_admin_password": PASSWORD}))
    (tmp_path / "fraudctl.yaml").write_text(f"airflow: {{port: {server.port}}}\n"
                                            f"runtime: {{kind: native, state_dir: {state}}}\n")
    code = ("import sys; from pathlib import Path; from fraudctl.config import load_config; "
            "from fraudctl.operate.overview import RetrainPanel; "
            f"panel = RetrainPanel(load_config(Path({str(tmp_path / 'fraudctl.yaml')!r})))(); "
            "print(panel['state'], panel['version']); "
            "print(sorted(m for m in ('airflow_client', 'mlflow', 'pandas', 'numpy', 'pyarrow', 'httpx', "
            "'urllib3') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["success 7", "[]"]
