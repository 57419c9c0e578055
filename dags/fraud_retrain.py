"""fraud_retrain: retrain the fraud model from what the stream has seen, and promote it when it is better.

extract (the lake's window, or the file in the run conf `source`) -> validate (schema, row counts, label
rate, freshness) -> train (as `fraudctl train`: log to MLflow, register as @challenger) -> evaluate (the
candidate and the champion on the same holdout, the promotion gate) -> promote or keep_champion (a branch)
-> report (versions, metrics, decision).

Each task is one call into `fraudctl.retraining.steps`, which calls the functions `fraudctl train` and
`fraudctl promote` use. Tasks pass paths (under <state_dir>/retrain/<run id>/), never data. The schedule,
the queue, the retries and the parameters' defaults come from the fraudctl config ($FRAUDCTL_CONFIG, which
the native stack sets for every Airflow process). Nothing heavy is imported at module level: the
dag-processor parses this file often.
"""

from __future__ import annotations

import datetime as dt
from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task

from fraudctl.config import load_config
from fraudctl.model.estimators import ESTIMATORS

CONFIG = load_config()
RC = CONFIG.retrain

DEFAULT_ARGS = {
    "owner": "fraudctl",
    "retries": RC.retries,
    "retry_delay": timedelta(seconds=RC.retry_delay),
    "queue": RC.queue,
}

PARAMS = {
    "window_days": Param(RC.window_days, type="integer", minimum=1,
                         description="Event days read from the lake, ending at the cutoff."),
    "estimator": Param(CONFIG.model.estimator, type="string", enum=list(ESTIMATORS),
                       description="The scikit-learn estimator to train."),
    "promotion_margin": Param(CONFIG.model.promotion_margin, type="number", minimum=0,
                              description="Average-precision gain over the champion needed to promote."),
    "alert_budget_per_day": Param(CONFIG.model.alert_budget_per_day, type="integer", minimum=1,
                                  description="Alerts a day the new version's threshold allows."),
    "source": Param(RC.source or "", type="string",
                    description="A CSV/parquet file (or lake dir) to train on instead of the lake; empty: the lake."),
    "cutoff": Param("", type="string",
                    description="ISO date/datetime (UTC) the data and labels are taken up to; empty: the run's time."),
}


def _setup():
    """The config (read on the worker, at run time), the run's checked params, its folder, a logger."""
    import logging

    from airflow.sdk.exceptions import AirflowFailException

    from fraudctl.retraining import steps
    from fraudctl.errors import BadInputError

    context = get_current_context()
    config = load_config()
    log = logging.getLogger("airflow.task").info
    try:
        params = steps.check_params(config, dict(context["params"]))
    except BadInputError as exc:  # no retry can fix a bad parameter
        raise AirflowFailException(exc.message) from None
    return context, config, params, steps.run_dir(config, context["run_id"]), log


def _storage(config):
    """The object store as this worker reaches it: the runtime's answer (the stack's own store, or S3)."""
    from fraudctl.stack import get_runtime

    return get_runtime(config).storage_in_network()


def _fail_fast(call, *args, **kwargs):
    """Bad input (a failed validation, no data) fails the task without retries, with the reason."""
    from airflow.sdk.exceptions import AirflowFailException

    from fraudctl.errors import BadInputError, NotFoundError

    try:
        return call(*args, **kwargs)
    except (BadInputError, NotFoundError) as exc:
        raise AirflowFailException(exc.message + (f" ({exc.hint})" if exc.hint else "")) from None


@dag(dag_id=RC.dag_id, schedule=RC.schedule, start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
     catchup=False, max_active_runs=1, tags=["fraudctl", "retrain", "mlflow"], default_args=DEFAULT_ARGS,
     params=PARAMS, doc_md=__doc__)
def fraud_retrain():
    @task
    def extract() -> dict:
        from fraudctl.retraining.steps import extract as run

        context, config, params, folder, log = _setup()
        dag_run = context["dag_run"]
        run_time = context.get("data_interval_end") or getattr(dag_run, "run_after", None) \
            or dt.datetime.now(dt.timezone.utc)
        run_time = run_time.astimezone(dt.timezone.utc)
        return _fail_fast(run, config, params, folder, run_time, storage=_storage(config), log=log)

    @task
    def validate(extracted: dict) -> dict:
        from fraudctl.retraining.steps import validate as run

        _, config, _, folder, log = _setup()
        return _fail_fast(run, config, extracted, folder, log)

    @task
    def train(extracted: dict, validated: dict) -> dict:
        from fraudctl.retraining.steps import train as run

        context, config, params, folder, log = _setup()
        return _fail_fast(run, config, params, extracted, folder, storage=_storage(config), dag_id=context["dag"].dag_id,
                          run_id=context["run_id"], log=log)

    @task
    def evaluate(trained: dict) -> dict:
        from fraudctl.retraining.steps import evaluate as run

        _, config, params, folder, log = _setup()
        return run(config, params, trained, folder, log)

    @task.branch
    def gate(evaluated: dict) -> str:
        _, _, _, _, log = _setup()
        log(f"gate: {'promote' if evaluated['passes'] else 'keep the champion'}: {evaluated['reason']}")
        return "promote" if evaluated["passes"] else "keep_champion"

    @task
    def promote(evaluated: dict) -> dict:
        from fraudctl.retraining.steps import promote as run

        _, config, params, folder, log = _setup()
        return run(config, params, evaluated, folder, log)

    @task
    def keep_champion(evaluated: dict) -> dict:
        _, _, _, _, log = _setup()
        log(f"version {evaluated['version']} stays @challenger: {evaluated['reason']}")
        return {"changed": False, "reason": evaluated["reason"]}

    @task(trigger_rule="none_failed_min_one_success")
    def report(extracted: dict, trained: dict, evaluated: dict, promoted: dict | None,
               kept: dict | None) -> dict:
        from fraudctl.retraining.steps import report as run

        context, config, params, folder, log = _setup()
        return run(config, params, folder, dag_id=context["dag"].dag_id, run_id=context["run_id"],
                   extracted=extracted, trained=trained, evaluated=evaluated, promoted=promoted or kept, log=log)

    extracted = extract()
    validated = validate(extracted)
    trained = train(extracted, validated)
    evaluated = evaluate(trained)
    branch = gate(evaluated)
    promoted, kept = promote(evaluated), keep_champion(evaluated)
    branch >> [promoted, kept]
    report(extracted, trained, evaluated, promoted, kept)


fraud_retrain()
