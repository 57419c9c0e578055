"""The fraud_retrain DAG's integrity (imported without services, in a child process as in test_dags.py):
its tasks and their order, retries >= 2 with a delay, tags, no catch-up, the schedule and the Params'
defaults from the config, and no heavy library imported when Airflow parses the file."""

import json
import subprocess
import sys

from tests.conftest import REPO

CHECK = r"""
import json, os, sys, tempfile
os.environ.update(AIRFLOW_HOME=tempfile.mkdtemp(), AIRFLOW__CORE__LOAD_EXAMPLES="False",
                  AIRFLOW__CORE__UNIT_TEST_MODE="True")
os.environ.pop("FRAUDCTL_CONFIG", None)
HEAVY = ("pandas", "numpy", "sklearn", "mlflow", "pyarrow", "airflow_client", "pyspark", "fraudctl.model.training",
         "fraudctl.model.registry", "fraudctl.data.lake")
from airflow.dag_processing.dagbag import DagBag
before = sorted(m for m in HEAVY if m in sys.modules)
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.dags["fraud_retrain"]
print("RESULT " + json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "heavy_before": before, "heavy_after": sorted(m for m in HEAVY if m in sys.modules),
    "tasks": {t.task_id: {"retries": t.retries, "delay": t.retry_delay.total_seconds(), "queue": t.queue,
                          "downstream": sorted(t.downstream_task_ids), "trigger_rule": getattr(t.trigger_rule, "value", str(t.trigger_rule))}
              for t in dag.tasks},
    "tags": sorted(dag.tags), "schedule": str(dag.schedule), "catchup": dag.catchup,
    "params": {k: dag.params.get_param(k).value for k in dag.params},
    "schemas": {k: dag.params.get_param(k).schema for k in dag.params},
}))
"""


def load():
    result = subprocess.run([sys.executable, "-c", CHECK, str(REPO / "dags")], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_fraud_retrain_dag_integrity():
    from fraudctl.config import load_config

    config = load_config(REPO / "fraudctl.yaml", env={})
    report = load()
    assert report["errors"] == {}
    assert report["heavy_after"] == report["heavy_before"], "the DAG file imports heavy libraries at top level"
    tasks = report["tasks"]
    assert set(tasks) == {"extract", "validate", "train", "evaluate", "gate", "promote", "keep_champion", "report"}
    for task_id, task in tasks.items():
        assert task["retries"] >= 2, f"{task_id} retries {task['retries']}"
        assert task["delay"] > 0, f"{task_id} has no retry delay"
        assert task["queue"] == config.retrain.queue
    assert tasks["extract"]["downstream"] == ["report", "train", "validate"]
    assert tasks["validate"]["downstream"] == ["train"]
    assert tasks["train"]["downstream"] == ["evaluate", "report"]
    assert tasks["evaluate"]["downstream"] == ["gate", "keep_champion", "promote", "report"]
    assert tasks["gate"]["downstream"] == ["keep_champion", "promote"]
    assert tasks["promote"]["downstream"] == tasks["keep_champion"]["downstream"] == ["report"]
    assert tasks["report"]["trigger_rule"] == "none_failed_min_one_success"
    assert {"fraudctl", "retrain"} <= set(report["tags"])
    assert report["catchup"] is False
    assert "@daily" in report["schedule"] or "0 0 * * *" in report["schedule"]
    assert report["params"] == {"window_days": config.retrain.window_days, "estimator": config.model.estimator,
                                "promotion_margin": config.model.promotion_margin,
                                "alert_budget_per_day": config.model.alert_budget_per_day, "source": "", "cutoff": ""}
    schemas = report["schemas"]
    assert schemas["window_days"]["type"] == "integer" and schemas["window_days"]["minimum"] == 1
    assert schemas["promotion_margin"]["type"] == "number" and schemas["promotion_margin"]["minimum"] == 0
    assert schemas["alert_budget_per_day"]["type"] == "integer" and schemas["alert_budget_per_day"]["minimum"] == 1
    assert config.model.estimator in schemas["estimator"]["enum"]
