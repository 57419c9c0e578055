"""`fraudctl retrain` as plain functions: trigger the `fraud_retrain` DAG over Airflow's REST API (/api/v2,
apache-airflow-client, a JWT from the admin password), follow its tasks, and read its outcome.

Failures map to exit codes: refused credentials AuthError (15), an API that does not answer
UnavailableError (8), a run that ended failed RunFailedError (14), a wait past the timeout
WaitTimeoutError (7), a bad --conf parameter BadInputError (11). The run's outcome (new version, promoted
or not, why) is the `report` task's return value (its XCom).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from fraudctl.errors import BadInputError, RunFailedError, UnavailableError, WaitTimeoutError

if TYPE_CHECKING:
    from fraudctl.clients.airflow import AirflowClient
    from fraudctl.clients.airflow_rest import AirflowReader
    from fraudctl.config import Config

REPORT_TASK = "report"
TASK_ORDER = ("extract", "validate", "train", "evaluate", "gate", "promote", "keep_champion", "report")
POLL_SECONDS = 1.0
FAILED_TASK_STATES = {"failed", "upstream_failed"}


def parse_conf(items: list[str] | None) -> dict[str, Any]:
    """KEY=VALUE items as the run conf; a VALUE that parses as JSON (a number, true, null) is that value."""
    conf: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"--conf {item!r} is not KEY=VALUE", hint="e.g. --conf window_days=30")
        try:
            conf[key.strip()] = json.loads(value)
        except ValueError:
            conf[key.strip()] = value
    return conf


def client(config: "Config", admin_password: str) -> "AirflowClient":
    """The Airflow REST client as the stack's admin (the password: the runtime's `require_secrets()`)."""
    from fraudctl.clients.airflow import AirflowClient

    return AirflowClient(config.airflow, admin_password)


def _api_call(what: str, call: Callable[[], Any]) -> Any:
    """Run an API call; map the client's errors to fraudctl's."""
    import airflow_client.client as ac

    from fraudctl.clients.airflow_rest import api_error

    try:
        return call()
    except ac.ApiException as exc:
        body = (exc.body or "") if isinstance(exc.body, str) else str(exc.body)
        raise api_error(what, exc.status, exc.reason, body) from None
    except (OSError, ac.exceptions.OpenApiException) as exc:
        raise UnavailableError(f"Airflow API {what} failed: {exc}") from None
    except Exception as exc:  # urllib3's connection errors
        if type(exc).__module__.startswith("urllib3"):
            raise UnavailableError(f"Airflow api-server did not answer ({what}): {exc}") from None
        raise


def trigger(config: "Config", conf: Mapping[str, Any], *, af: "AirflowClient",
            dag_timeout: float = 120.0) -> dict[str, Any]:
    """Check the parameters here first (the reason comes back at once), unpause the DAG when paused, and
    trigger a run; returns its dag id, run id and state."""
    from fraudctl.retraining.steps import check_params

    check_params(config, conf)
    dag_id = config.retrain.dag_id
    af.token()  # refused credentials or no api-server: said before anything else
    dag = af.wait_for_dag(dag_id, timeout=dag_timeout)
    if dag.is_paused:
        _api_call(f"unpausing DAG {dag_id}", lambda: af.unpause(dag_id))
    run = _api_call(f"triggering DAG {dag_id}", lambda: af.trigger(dag_id, dict(conf)))
    return {"dag_id": dag_id, "run_id": run.run_id, "state": run.state, "unpaused": bool(dag.is_paused),
            "conf": dict(conf)}


def task_states(af: "AirflowClient", dag_id: str, run_id: str) -> dict[str, str]:
    return _ordered(_api_call(f"reading the tasks of run {run_id}", lambda: af.task_states(dag_id, run_id)))


def _ordered(states: Mapping[str, Any]) -> dict[str, str]:
    """Task states in the DAG's order (others after, as listed); a task not yet scheduled is "none" (the
    generated client gives it as "None", the API as null)."""
    order = {name: i for i, name in enumerate(TASK_ORDER)}
    return {k: ("none" if v in (None, "None", "") else str(v))
            for k, v in sorted(states.items(), key=lambda kv: order.get(kv[0], len(order)))}


def wait(config: "Config", run_id: str, *, timeout: float, af: "AirflowClient",
         on_change: Callable[[str, dict[str, str]], None] | None = None) -> str:
    """Follow the run until it ends; `on_change(run_state, task_states)` after every change. Returns the
    final state; raises WaitTimeoutError past `timeout`."""
    dag_id = config.retrain.dag_id
    started = time.monotonic()
    last = None
    while True:
        state = _api_call(f"reading run {run_id}", lambda: af.run_state(dag_id, run_id))
        tasks = task_states(af, dag_id, run_id)
        if (state, tasks) != last and on_change is not None:
            on_change(state, tasks)
        last = (state, tasks)
        if state in ("success", "failed"):
            return state
        if time.monotonic() - started > timeout:
            raise WaitTimeoutError(f"DAG run {run_id} of {dag_id} still {state} after {timeout:.0f}s",
                                   hint=f"it goes on in Airflow: `fraudctl retrain status {run_id}`")
        time.sleep(POLL_SECONDS)


def task_log(af: "AirflowClient", dag_id: str, run_id: str, task_id: str) -> str:
    """The text of a task's latest try."""
    import airflow_client.client as ac

    instance = _api_call(f"reading task {task_id}", lambda: ac.TaskInstanceApi(af.api()).get_task_instance(
        dag_id, run_id, task_id))
    tries = max(int(instance.try_number or 1), 1)
    response = _api_call(f"reading the log of {task_id}", lambda: ac.TaskInstanceApi(af.api()).get_log(
        dag_id, run_id, task_id, tries, full_content=True))
    content = getattr(response, "content", response)
    if isinstance(content, list):
        lines = []
        for item in content:
            event = getattr(item, "event", None) or (item.get("event") if isinstance(item, dict) else None)
            actual = getattr(item, "actual_instance", None)
            if event is None and actual is not None:
                event = getattr(actual, "event", None) or (actual if isinstance(actual, str) else str(actual))
            lines.append(str(event if event is not None else item))
        return "\n".join(lines)
    return str(content)


def status(config: "Config", run_id: str, *, af: "AirflowClient",
           logs: bool = False) -> dict[str, Any]:
    """A run: its state, its tasks, the `report` task's outcome when it ran, the failed tasks (and their
    logs with `logs`)."""
    import airflow_client.client as ac

    dag_id = config.retrain.dag_id
    run = _api_call(f"reading run {run_id}", lambda: ac.DagRunApi(af.api()).get_dag_run(dag_id, run_id))
    result = _status_row(dag_id, run_id, _text(run.state), run.conf, _iso(run.start_date), _iso(run.end_date),
                         task_states(af, dag_id, run_id))
    if result["tasks"].get(REPORT_TASK) == "success":
        entry = _api_call("reading the report", lambda: ac.XComApi(af.api()).get_xcom_entry(
            dag_id, REPORT_TASK, run_id, "return_value", deserialize=True))
        result["report"] = _report(getattr(entry, "actual_instance", entry).value)  # the client wraps it in a oneOf
    if logs and result["failed_tasks"]:
        result["logs"] = {t: task_log(af, dag_id, run_id, t) for t in result["failed_tasks"]}
    result["durations"] = task_durations(af, dag_id, run_id)
    return result


def task_durations(af: "AirflowClient", dag_id: str, run_id: str) -> dict[str, float | None]:
    import airflow_client.client as ac

    instances = _api_call("reading task durations", lambda: ac.TaskInstanceApi(af.api()).get_task_instances(
        dag_id, run_id).task_instances)
    return {ti.task_id: _seconds(ti.duration) for ti in instances}


def _status_row(dag_id: str, run_id: str, state: str | None, conf: Any, start: str | None, end: str | None,
                tasks: dict[str, str]) -> dict[str, Any]:
    """`status`'s answer up to the report (None until read), with both clients' values already as text."""
    return {"dag_id": dag_id, "run_id": run_id, "state": state, "conf": conf, "start": start, "end": end,
            "tasks": tasks, "report": None,
            "failed_tasks": [t for t, s in tasks.items() if s in FAILED_TASK_STATES and s == "failed"]}


def _report(value: Any) -> Any:
    """The `report` task's return value: Airflow may hand it back as JSON text."""
    return json.loads(value) if isinstance(value, str) else value


def _seconds(duration: Any) -> float | None:
    return round(float(duration), 2) if duration is not None else None


def _run_row(run_id: str, state: str | None, run_type: str | None, run_after: str | None, start: str | None,
             end: str | None, conf: Any) -> dict[str, Any]:
    return {"run_id": run_id, "state": state, "run_type": run_type, "run_after": run_after, "start": start,
            "end": end, "conf": conf}


def list_runs(config: "Config", *, limit: int = 20, af: "AirflowClient") -> list[dict[str, Any]]:
    """The DAG's latest runs, newest first."""
    import airflow_client.client as ac

    dag_id = config.retrain.dag_id
    runs = _api_call(f"listing the runs of {dag_id}", lambda: ac.DagRunApi(af.api()).get_dag_runs(
        dag_id, limit=limit, order_by=["-run_after"])).dag_runs
    return [_run_row(r.dag_run_id, _text(r.state), _text(r.run_type), _iso(r.run_after), _iso(r.start_date),
                     _iso(r.end_date), r.conf) for r in runs]


# The same answers through the narrow stdlib reader (`clients.airflow_rest`), for `fraudctl status`: the
# generated client costs 1.7 s to import. Built by the same helpers, so the rows are equal (a test checks it).


def read_runs(config: "Config", *, limit: int = 20, reader: "AirflowReader") -> list[dict[str, Any]]:
    """`list_runs` through the narrow reader."""
    from fraudctl.clients.airflow_rest import iso

    runs = reader.dag_runs(config.retrain.dag_id, limit=limit, order_by="-run_after")
    return [_run_row(r["dag_run_id"], _text(r.get("state")), _text(r.get("run_type")), iso(r.get("run_after")),
                     iso(r.get("start_date")), iso(r.get("end_date")), r.get("conf")) for r in runs]


def read_status(config: "Config", run_id: str, *, reader: "AirflowReader") -> dict[str, Any]:
    """`status` (without logs) through the narrow reader: one listing of the task instances gives both the
    states and the durations."""
    from fraudctl.clients.airflow_rest import iso

    dag_id = config.retrain.dag_id
    run = reader.dag_run(dag_id, run_id)
    instances = reader.task_instances(dag_id, run_id)
    result = _status_row(dag_id, run_id, _text(run.get("state")), run.get("conf"), iso(run.get("start_date")),
                         iso(run.get("end_date")), _ordered({ti["task_id"]: ti.get("state") for ti in instances}))
    if result["tasks"].get(REPORT_TASK) == "success":
        result["report"] = _report(reader.xcom_value(dag_id, run_id, REPORT_TASK, "return_value",
                                                     what="reading the report"))
    result["durations"] = {ti["task_id"]: _seconds(ti.get("duration")) for ti in instances}
    return result


def retrain(config: "Config", conf: Mapping[str, Any], *, connect: Callable[[], "AirflowClient"], wait_for_end: bool,
            timeout: float, logs: bool = False,
            on_change: Callable[[str, dict[str, str]], None] | None = None) -> dict[str, Any]:
    """Trigger, and with `wait_for_end` follow to the end: the outcome, or RunFailedError naming the failed
    task(s) and their error. `connect` makes the Airflow client, after the parameters are checked."""
    from fraudctl.retraining.steps import check_params

    check_params(config, conf)  # a bad parameter is said before any service is asked
    af = connect()
    triggered = trigger(config, conf, af=af)
    if not wait_for_end:
        return {**triggered, "waited": False}
    started = time.monotonic()
    wait(config, triggered["run_id"], timeout=timeout, af=af, on_change=on_change)
    result = {**triggered, **status(config, triggered["run_id"], af=af, logs=True), "waited": True,
              "wall_seconds": round(time.monotonic() - started, 1)}
    if result["state"] != "success":
        detail = "\n".join(f"--- {task} ---\n{_tail(text)}" for task, text in result.get("logs", {}).items())
        error = RunFailedError(
            f"retrain run {triggered['run_id']} failed in {', '.join(result['failed_tasks']) or 'a task'}"
            + (f": {_reason(result.get('logs', {}))}" if result.get("logs") else ""),
            hint=f"see the task log: `fraudctl retrain status {triggered['run_id']} --logs`",
            detail=detail if logs else None)
        error.result = result  # type: ignore[attr-defined]
        raise error
    if not logs:
        result.pop("logs", None)
    return result


def _reason(logs: Mapping[str, str]) -> str:
    """The last error line of the failed tasks' logs."""
    for text in logs.values():
        for line in reversed(text.splitlines()):
            if any(word in line for word in ("Error", "Exception", "failed")):
                return line.strip()[:400]
    return ""


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _text(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
