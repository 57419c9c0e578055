"""The operator's overview behind `fraudctl status`: the services, then one panel per part of the system:
the scorer (health, rates, batch time, latency, lag), the champion (version and when it became champion),
the last `fraud_retrain` run (state, times, outcome) and the Celery workers.

Each panel is a plain function returning a dict. `Overview.gather` runs the panels side by side in daemon
threads, each against one deadline (`timeout`), so an MLflow or Airflow that hangs or is down costs that
panel, never the view: a panel that failed or did not answer in time is `{"available": False, "error": why}`,
one that answered is `{"available": True, ...}`. Repeated gathers (`status --watch`) keep the clients, ask
a panel again only once its previous answer came in, and remember a finished retrain run.

No typer here; the command renders what `gather` returns.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from fraudctl.errors import FraudctlError, UnavailableError

if TYPE_CHECKING:
    from fraudctl.config import Config
    from fraudctl.stack.base import ServiceStatus

PANEL_TIMEOUT = 5.0  # seconds a panel may take before the view shows it as unavailable
SETTLE_SECONDS = 1.0  # how long a panel thread that has answered may take to end
HTTP_TIMEOUT = 3.0  # per request of the panels that ask over HTTP themselves (MLflow, Airflow, Flower)
PANELS = ("scorer", "champion", "retrain", "workers")
FINISHED_RUN_STATES = ("success", "failed")

Panel = Callable[[], Mapping[str, Any]]


def unavailable(why: str) -> dict[str, Any]:
    return {"available": False, "error": why}


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------- panels


def scorer_panel(config: "Config") -> dict[str, Any]:
    """The streaming scorer as its status file tells (`fraudctl scorer status`), condensed: health, model,
    rates, last batch time, end-to-end latency of the last batch with transactions (p50/p99 ms from the
    Kafka timestamp to the score acknowledged), lag per topic. A stopped scorer is an answer, not a fault."""
    from fraudctl.operate import scorer_service as control

    report = control.status(config)
    counters = report.get("counters") or {}
    model = report.get("model") or {}
    lag = report.get("lag") or {}
    return {
        "health": report["health"],
        "process": report.get("process"),
        "degraded": report.get("degraded"),
        "model_version": model.get("version"),
        "model_since": _iso(model.get("since")),
        "input_rows_per_second": report.get("input_rows_per_second"),
        "processed_rows_per_second": report.get("processed_rows_per_second"),
        "batch_duration_ms": report.get("batch_duration_ms"),
        "latency_ms": report.get("latency_ms"),
        "lag": {topic: sum(partitions.values()) for topic, partitions in sorted(lag.items())},
        "lag_per_partition": lag,
        "scored": counters.get("scored", 0),
        "alerts": counters.get("alerts", 0),
        "dead_letters": report.get("dead_letters", 0),
        "status_age_seconds": report.get("status_age_seconds"),
    }


def _mlflow_alias(config: "Config", alias: str, timeout: float) -> dict[str, Any] | None:
    """The model version an alias points at, from MLflow's REST API (None: it points nowhere, or there is
    no registered model yet). Plain HTTP on purpose (`fraudctl.model.registry.rest`, standard library only):
    the MLflow client costs 2 s to import, and this view is polled."""
    from fraudctl.model.registry import rest

    uri = config.mlflow.tracking_uri
    try:
        return rest.get(uri, "registered-models/alias", {"name": config.model.name, "alias": alias},
                        timeout).get("model_version") or None
    except rest.MlflowAnswer as exc:
        if exc.error_code in rest.NO_SUCH_THING:  # MLflow 3 answers 400 INVALID_PARAMETER_VALUE for an unset alias
            return None
        raise UnavailableError(f"MLflow answered {exc.status}: {exc.body[:200]}") from None
    except rest.BadStatus as exc:
        raise UnavailableError(f"MLflow answered {exc.status}: {exc.body[:200]}") from None
    except (OSError, ValueError) as exc:
        why = getattr(exc, "reason", None) or exc
        raise UnavailableError(f"MLflow at {uri} did not answer: {why or type(exc).__name__}") from None


def champion_panel(config: "Config", timeout: float = HTTP_TIMEOUT) -> dict[str, Any]:
    """The @champion version and when it became champion: the tag `fraudctl promote` (or `rollback`) wrote
    on it (`changed_at`, `changed_by`). MLflow keeps no time for an alias, so for a champion set another
    way `changed_at` is None and `version_updated_at` (the version's last update) is all there is. Also the
    @challenger version, if any."""
    from fraudctl.model.registry.rest import CHALLENGER, CHAMPION, TAG

    champion = _mlflow_alias(config, CHAMPION, timeout)
    challenger = _mlflow_alias(config, CHALLENGER, timeout)
    panel: dict[str, Any] = {"model": config.model.name,
                             "challenger": str(challenger["version"]) if challenger else None}
    if champion is None:
        return {**panel, "version": None, "message": f"no champion: no version of {config.model.name} is @{CHAMPION}"}
    tags = {tag["key"]: tag["value"] for tag in champion.get("tags") or []}
    # promote writes promoted_at on the new champion, rollback restored_at on the one it gives it back to
    marks = [(tags[TAG + key], how) for key, how in (("promoted_at", "promote"), ("restored_at", "rollback"))
             if tags.get(TAG + key)]
    changed_at, changed_by = max(marks) if marks else (None, None)
    created = champion.get("creation_timestamp")
    updated = champion.get("last_updated_timestamp") or created
    return {
        **panel,
        "version": str(champion["version"]),
        "changed_at": changed_at,
        "changed_by": changed_by,
        "promoted_over": (tags.get(TAG + "promoted_over") or None) if changed_by == "promote" else None,
        "forced": tags.get(TAG + "promotion_forced") == "true" if changed_by == "promote" else None,
        "version_created_at": _iso(int(created) / 1000) if created else None,
        "version_updated_at": _iso(int(updated) / 1000) if updated else None,
        "test_average_precision": _float(tags.get(TAG + "test_average_precision")),
    }


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class RetrainPanel:
    """The latest `fraud_retrain` run: state, start and end, tasks, and its outcome (the `report` task's:
    the version registered, promoted or not and why). Read through the narrow stdlib reader
    (`connect.airflow_reader`), not the generated Airflow client, whose import alone costs 1.7 s; the rows are
    `retrain list|status`'s. One reader (one token) across refreshes; a finished run is asked about once."""

    def __init__(self, config: "Config", timeout: float = HTTP_TIMEOUT):
        self.config = config
        self.timeout = timeout
        self._reader = None
        self._finished: dict[str, Any] | None = None

    def __call__(self) -> dict[str, Any]:
        from fraudctl.retraining import trigger as retraining

        if self._reader is None:
            from fraudctl.operate.connect import airflow_reader

            self._reader = airflow_reader(self.config, timeout=self.timeout)
        try:
            runs = retraining.read_runs(self.config, limit=1, reader=self._reader)
            if not runs:
                return {"dag_id": self.config.retrain.dag_id, "run_id": None,
                        "message": f"no run of {self.config.retrain.dag_id} yet (fraudctl retrain)"}
            latest = runs[0]
            if self._finished is not None and self._finished["run_id"] == latest["run_id"]:
                return self._finished
            run = retraining.read_status(self.config, latest["run_id"], reader=self._reader)
        except FraudctlError:
            self._reader = None  # a new token next time: the api-server may have restarted
            raise
        panel = retrain_summary(run, run_type=latest.get("run_type"))
        if panel["state"] in FINISHED_RUN_STATES:
            self._finished = panel
        return panel


def retrain_summary(run: Mapping[str, Any], run_type: str | None = None) -> dict[str, Any]:
    """`fraudctl.retraining.trigger.status`'s answer, condensed for the overview."""
    report = run.get("report") or {}
    start, end = run.get("start"), run.get("end")
    seconds = None
    if start and end:
        seconds = round((dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds(), 1)
    return {
        "dag_id": run.get("dag_id"), "run_id": run["run_id"], "run_type": run_type, "state": run.get("state"),
        "start": start, "end": end, "seconds": seconds,
        "running_tasks": [t for t, s in (run.get("tasks") or {}).items() if s == "running"],
        "failed_tasks": list(run.get("failed_tasks") or []),
        "version": report.get("version"), "promoted": report.get("promoted"),
        "decision": report.get("decision"), "reason": report.get("reason"),
    }


class WorkersPanel:
    """The Celery workers as Flower sees them (`fraudctl workers`): how many online, and each one's row.
    The pool size comes from Flower's cache of the workers' answers; only when an online worker is missing
    from it are the workers asked (an inspect broadcast), once."""

    def __init__(self, config: "Config", timeout: float = HTTP_TIMEOUT):
        self.config = config
        self.timeout = timeout
        self._client = None
        self._asked = False

    def __call__(self) -> dict[str, Any]:
        from fraudctl.clients.flower import worker_rows
        from fraudctl.operate.connect import flower_client

        if self._client is None:
            self._client = flower_client(self.config, timeout=self.timeout)
        events = self._client.events()
        details = self._client.workers(refresh=False)
        if not self._asked and any(e.get("hostname") not in details for e in events if e.get("status")):
            # Flower asks the workers for their pool only when told (~1 s): once per worker it has not asked
            # yet; after that its cache answers, for this process and every later one.
            details = self._client.workers(refresh=True)
            self._asked = True
        rows = worker_rows(events, details)
        return {"online": sum(1 for row in rows if row["online"]), "total": len(rows), "workers": rows}


def default_panels(config: "Config") -> dict[str, Panel]:
    return {"scorer": lambda: scorer_panel(config), "champion": lambda: champion_panel(config),
            "retrain": RetrainPanel(config), "workers": WorkersPanel(config)}


# --------------------------------------------------------------------------------------------- assembly


class _Job:
    """One panel being gathered in a daemon thread (a hung call must not keep the process alive)."""

    def __init__(self, name: str, panel: Panel):
        self.started = time.monotonic()
        self.done = threading.Event()
        self.value: dict[str, Any] | None = None
        self.thread = threading.Thread(target=self._run, args=(panel,), name=f"overview-{name}", daemon=True)
        self.thread.start()

    def _run(self, panel: Panel) -> None:
        try:
            self.value = {"available": True, **panel()}
        except FraudctlError as exc:
            self.value = unavailable(exc.message)
        except Exception as exc:  # one panel's bug or a client's surprise must not take the view down
            self.value = unavailable(f"{type(exc).__name__}: {exc}")
        finally:
            self.done.set()


class Overview:
    """Gathers the services (`services()`, the runtime's status, in the calling thread) and the panels."""

    def __init__(self, services: Callable[[], "list[ServiceStatus]"], panels: Mapping[str, Panel], *,
                 runtime: str, timeout: float = PANEL_TIMEOUT):
        self.services = services
        self.panels = dict(panels)
        self.runtime = runtime
        self.timeout = timeout
        self._pending: dict[str, _Job] = {}

    def gather(self, *, strict: bool = True) -> dict[str, Any]:
        """One view. `strict`: an error reading the services themselves propagates (the one-shot command's
        exit code); otherwise (watching) it becomes `services_error` and the view goes on."""
        deadline = time.monotonic() + self.timeout
        jobs = {name: self._pending.get(name) or _Job(name, panel) for name, panel in self.panels.items()}
        view: dict[str, Any] = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                "runtime": self.runtime}
        try:
            statuses = self.services()
            view["services_error"] = None
        except FraudctlError as exc:
            if strict:
                raise
            statuses, view["services_error"] = [], exc.message
        view["healthy"] = bool(statuses) and all(s.fine for s in statuses)
        view["services"] = [s.as_dict() for s in statuses]
        self._pending = {}
        for name, job in jobs.items():
            if job.done.wait(max(deadline - time.monotonic(), 0.0)):
                view[name] = job.value
                # Let the thread finish unwinding: a daemon thread still running (a client's teardown, a
                # warning to stderr) when the interpreter exits can abort it (SIGABRT at shutdown).
                job.thread.join(SETTLE_SECONDS)
            else:
                self._pending[name] = job  # asked again only once this answer is in
                view[name] = unavailable(f"no answer within {time.monotonic() - job.started:.0f}s")
        return view


def overview(config: "Config", timeout: float = PANEL_TIMEOUT) -> Overview:
    """The overview of the stack `config` describes, with the real panels."""
    from fraudctl.stack import get_runtime

    runtime = get_runtime(config)
    return Overview(runtime.status, default_panels(config), runtime=runtime.name, timeout=timeout)
