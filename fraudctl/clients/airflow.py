"""The Airflow client of fraudctl: health, JWT, and DAG runs over the REST API (/api/v2).

Authentication is Airflow 3's: `POST /auth/token` with the admin user's password (SimpleAuthManager)
returns a JWT that the generated apache-airflow-client sends as a bearer token.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from fraudctl.config import AirflowConfig
from fraudctl.errors import AuthError, FraudctlError, NotFoundError, UnavailableError, WaitTimeoutError

HEALTH_PATH = "/api/v2/monitor/health"
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
FINISHED_STATES = {"success", "failed"}


def health(af: AirflowConfig, timeout: float = 3.0) -> dict[str, str]:
    """Each component's status as the api-server reports it, e.g. {"scheduler": "healthy", ...}."""
    from fraudctl.clients import http

    try:
        status, text = http.get(af.url + HEALTH_PATH, timeout=timeout)
        if status != 200:
            raise OSError(f"HTTP {status}")
        body = json.loads(text)
    except (OSError, ValueError) as exc:
        raise UnavailableError(f"Airflow api-server {af.url} did not answer {HEALTH_PATH}: {exc}") from None
    return {name: (body.get(name) or {}).get("status") or "unknown" for name in COMPONENTS}


def component_probe(af: AirflowConfig, component: str) -> str:
    status = health(af).get(component)
    if status != "healthy":
        raise UnavailableError(f"Airflow reports {component} as {status}")
    return f"{component} healthy"


def token_refusal(af: AirflowConfig, status: int, text: str) -> FraudctlError | None:
    """What the answer to `POST /auth/token` means when it is no token (None: it is one); shared with the
    narrow reader (`clients.airflow_rest`) so both say the same."""
    if status in (401, 403):
        return AuthError(f"Airflow refused the credentials of {af.admin_user!r} ({status})",
                         hint="the password is airflow.admin_password, else the one generated into the state "
                              "dir's secrets.json by `fraudctl up`: check the config points at that stack")
    if status not in (200, 201):
        return UnavailableError(f"Airflow refused the token request ({status}): {text[:200]}")
    return None


@dataclass
class DagRun:
    dag_id: str
    run_id: str
    state: str


class AirflowClient:
    def __init__(self, af: AirflowConfig, password: str, timeout: float = 10.0):
        self.af = af
        self.password = password
        self.timeout = timeout
        self._api = None

    def token(self) -> str:
        import httpx

        try:
            response = httpx.post(f"{self.af.url}/auth/token", timeout=self.timeout,
                                  json={"username": self.af.admin_user, "password": self.password})
        except httpx.HTTPError as exc:
            raise UnavailableError(f"Airflow api-server {self.af.url} did not answer: {exc}") from None
        refusal = token_refusal(self.af, response.status_code, response.text)
        if refusal is not None:
            raise refusal
        return response.json()["access_token"]

    def api(self):
        if self._api is None:
            import airflow_client.client as ac

            configuration = ac.Configuration(host=self.af.url, access_token=self.token())
            self._api = ac.ApiClient(configuration)
        return self._api

    def dag(self, dag_id: str) -> Any:
        import airflow_client.client as ac

        try:
            return ac.DAGApi(self.api()).get_dag(dag_id)
        except ac.ApiException as exc:
            if exc.status == 404:
                raise NotFoundError(f"Airflow has no DAG {dag_id!r} (yet): is it in dags/ and parsed?") from None
            raise UnavailableError(f"Airflow API error: {exc.status} {exc.reason}") from None

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> Any:
        """The dag-processor parses files asynchronously: wait until the DAG is known."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.dag(dag_id)
            except NotFoundError:
                if time.monotonic() > deadline:
                    raise WaitTimeoutError(f"DAG {dag_id!r} not parsed by Airflow within {timeout:.0f}s") from None
                time.sleep(1)

    def unpause(self, dag_id: str) -> None:
        import airflow_client.client as ac

        ac.DAGApi(self.api()).patch_dag(dag_id, ac.DAGPatchBody(is_paused=False), update_mask=["is_paused"])

    def trigger(self, dag_id: str, conf: dict | None = None) -> DagRun:
        import airflow_client.client as ac

        body = ac.TriggerDAGRunPostBody(logical_date=None, conf=conf or {})
        run = ac.DagRunApi(self.api()).trigger_dag_run(dag_id, body)
        return DagRun(dag_id, run.dag_run_id, _state(run))

    def run_state(self, dag_id: str, run_id: str) -> str:
        import airflow_client.client as ac

        run = ac.DagRunApi(self.api()).get_dag_run(dag_id, run_id)
        return _state(run)

    def wait_for_run(self, run: DagRun, timeout: float) -> DagRun:
        started = time.monotonic()
        while True:
            state = self.run_state(run.dag_id, run.run_id)
            if state in FINISHED_STATES:
                return DagRun(run.dag_id, run.run_id, state)
            if time.monotonic() - started > timeout:
                raise WaitTimeoutError(f"DAG run {run.run_id} of {run.dag_id} still {state} after {timeout:.0f}s")
            time.sleep(0.5)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        import airflow_client.client as ac

        instances = ac.TaskInstanceApi(self.api()).get_task_instances(dag_id, run_id).task_instances
        return {ti.task_id: _state(ti) for ti in instances}


def _state(obj: Any) -> str:
    """A run's or task's state as text (the client gives an enum, or a plain string)."""
    return str(getattr(obj.state, "value", obj.state))
