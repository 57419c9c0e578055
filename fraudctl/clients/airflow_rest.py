"""A narrow Airflow 3 REST reader (standard library only) for what `fraudctl status` reads: a DAG's latest
runs, one run, its task instances, a task's XCom. The generated apache-airflow-client (`clients.airflow`)
stays for `fraudctl retrain` (trigger, follow, logs): importing it costs about 1.7 s of CPU (its pydantic
models), while `status` must answer within a second and is polled by `status --watch`.

It answers the API's JSON as is (dicts); `fraudctl.retraining.trigger` shapes both clients' answers into
the same rows. Failures map as the generated client's do in `trigger._api_call` (`api_error` is shared):
refused credentials AuthError (15, `clients.airflow.token_refusal`), what Airflow says is missing
NotFoundError (9), a refused parameter BadInputError (11), any other status or no answer UnavailableError (8).

Nothing here imports more than the standard library, fraudctl.errors and fraudctl.clients.airflow (whose
module level is as light).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from fraudctl.errors import BadInputError, FraudctlError, NotFoundError, UnavailableError

if TYPE_CHECKING:
    from fraudctl.config import AirflowConfig

API = "/api/v2"
TOKEN_PATH = "/auth/token"


def api_error(what: str, status: int, reason: str, body: str) -> FraudctlError:
    """An error status of the API as fraudctl's error; `body` is the answer's text (quoted, shortened)."""
    body = (body or "")[:500]
    if status in (400, 422):
        return BadInputError(f"Airflow refused {what}: {body or reason}")
    if status == 404:
        return NotFoundError(f"Airflow has no {what.split(' ', 1)[-1]} ({body or reason})")
    return UnavailableError(f"Airflow API error on {what}: {status} {reason} {body}")


def iso(text: str | None) -> str | None:
    """A date-time of the API ("2026-12-07T02:44:40.604514Z") in the form the generated client's datetime
    gives through `isoformat()` ("...+00:00"), so both clients' rows are equal."""
    return None if text is None else dt.datetime.fromisoformat(text).isoformat()


def quote(segment: str) -> str:
    """A path segment: run ids hold ':' and '+' ("manual__2026-12-07T02:44:39.511819+00:00")."""
    return urllib.parse.quote(segment, safe="")


class AirflowReader:
    """GETs against Airflow's /api/v2 as the stack's admin, with one JWT from `POST /auth/token` for the
    reader's life (a caller that gets an error makes a new reader: the api-server may have restarted)."""

    def __init__(self, af: "AirflowConfig", password: str, timeout: float = 10.0):
        self.af = af
        self.password = password
        self.timeout = timeout
        self._token: str | None = None

    def token(self) -> str:
        from fraudctl.clients.airflow import token_refusal

        body = json.dumps({"username": self.af.admin_user, "password": self.password}).encode()
        request = urllib.request.Request(self.af.url + TOKEN_PATH, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, text = response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            with exc:
                status, text = exc.code, exc.read().decode("utf-8", "replace")
        except (OSError, ValueError) as exc:  # URLError (refused, unknown host), a timeout
            raise UnavailableError(f"Airflow api-server {self.af.url} did not answer: "
                                   f"{getattr(exc, 'reason', None) or exc}") from None
        refusal = token_refusal(self.af, status, text)
        if refusal is not None:
            raise refusal
        try:
            return json.loads(text)["access_token"]
        except (ValueError, KeyError, TypeError):
            raise UnavailableError(f"Airflow answered the token request without a token: {text[:200]}") from None

    def get(self, what: str, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET `API + path` (`what` names it in errors) and its JSON body."""
        if self._token is None:
            self._token = self.token()
        url = f"{self.af.url}{API}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self._token}",
                                                       "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            with exc:
                body = exc.read().decode("utf-8", "replace")
            raise api_error(what, exc.code, str(exc.reason), body) from None
        except (OSError, ValueError) as exc:  # refused, reset, timed out; or not JSON
            raise UnavailableError(f"Airflow api-server {self.af.url} did not answer ({what}): "
                                   f"{getattr(exc, 'reason', None) or exc}") from None

    def dag_runs(self, dag_id: str, *, limit: int, order_by: str = "-run_after") -> list[dict[str, Any]]:
        return self.get(f"listing the runs of {dag_id}", f"/dags/{quote(dag_id)}/dagRuns",
                        {"limit": limit, "order_by": order_by})["dag_runs"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"reading run {run_id}", f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.get(f"reading the tasks of run {run_id}",
                        f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances")["task_instances"]

    def xcom_value(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", *,
                   what: str | None = None) -> Any:
        """The XCom's value, deserialized by Airflow (a dict stays a dict)."""
        entry = self.get(what or f"reading XCom {key} of {task_id}", f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/"
                         f"{quote(task_id)}/xcomEntries/{quote(key)}", {"deserialize": "true"})
        return entry.get("value")
