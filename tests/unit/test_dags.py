"""DAG integrity: every file in dags/ imports without services, and every DAG follows the house rules."""

import json
import subprocess
import sys

from tests.conftest import REPO

# Runs in a child process: Airflow reads its configuration at import, which must not touch ours.
CHECK = r"""
import json, os, sys, tempfile
os.environ.update(AIRFLOW_HOME=tempfile.mkdtemp(), AIRFLOW__CORE__LOAD_EXAMPLES="False",
                  AIRFLOW__CORE__UNIT_TEST_MODE="True")
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "file": dag.fileloc, "tags": sorted(dag.tags),
        "retries": {t.task_id: t.retries for t in dag.tasks}, "schedule": str(dag.schedule),
    }
print("RESULT " + json.dumps(out))
"""


def load_dags():
    result = subprocess.run([sys.executable, "-c", CHECK, str(REPO / "dags")], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_every_dag_file_imports_and_follows_the_rules():
    report = load_dags()
    assert report["errors"] == {}
    files = {p.name for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_")}
    assert files <= {p.rsplit("/", 1)[-1] for p in (d["file"] for d in report["dags"].values())}
    assert "fraudctl_smoke" in report["dags"]
    for dag_id, dag in report["dags"].items():
        assert "fraudctl" in dag["tags"], f"{dag_id} lacks the fraudctl tag"
        for task_id, retries in dag["retries"].items():
            assert retries >= 1, f"{dag_id}.{task_id} has no retries"
