"""Stack benchmark: cold `up`, no-op `up`, `down`, warm `up`, idle memory, DAG trigger-to-success, and
`fraudctl --help` beside `mlflow --help`. Prints figures; never asserts on time.

    .venv/bin/python bench/bench_stack.py [--dag-runs 3] [--keep]

Runs its own stack in a temporary state dir on ports default+15000 (below the ephemeral port range), and purges it at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from bench.support import stack_memory, write_shifted_config  # noqa: E402

BIN = Path(sys.executable).parent
OFFSET = 15000


def timed(command: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    return time.perf_counter() - started, result


def fraudctl(config: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    seconds, result = timed([str(BIN / "fraudctl"), "-c", str(config), *args])
    if result.returncode != 0:
        sys.exit(f"fraudctl {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return seconds, result


def median_time(command: list[str], runs: int) -> float:
    return statistics.median(timed(command)[0] for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dag-runs", type=int, default=3)
    parser.add_argument("--help-runs", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="fraudctl-bench-"))
    config = write_shifted_config(folder, OFFSET)
    state_dir = folder / ".fraudctl"
    figures: dict[str, str] = {}

    help_fraudctl = median_time([str(BIN / "fraudctl"), "--help"], args.help_runs)
    help_mlflow = median_time([str(BIN / "mlflow"), "--help"], args.help_runs)
    figures["fraudctl --help (median)"] = f"{help_fraudctl:.3f} s"
    figures["mlflow --help (median)"] = f"{help_mlflow:.3f} s"
    figures["ratio fraudctl/mlflow"] = f"{help_fraudctl / help_mlflow:.3f}"

    cold, result = fraudctl(config, "up", "-o", "json")
    services = json.loads(result.stdout)["services"]
    figures[f"cold up ({len(services)} services, fresh state) -> all healthy"] = f"{cold:.1f} s"
    noop, _ = fraudctl(config, "up", "-o", "json")
    figures["second up while running (starts nothing)"] = f"{noop:.1f} s"

    time.sleep(args.idle_seconds)  # let start-up work (migrations, DAG parsing) settle before measuring idle
    count, rss, pss = stack_memory(state_dir)
    figures[f"idle memory after {args.idle_seconds:.0f} s ({count} processes)"] = f"RSS {rss:.0f} MiB, PSS {pss:.0f} MiB"

    from fraudctl.clients.airflow import AirflowClient
    from fraudctl.config import load_config
    from fraudctl.stack import get_runtime

    cfg = load_config(config, env={})
    client = AirflowClient(cfg.airflow, get_runtime(cfg).require_secrets().airflow_admin_password)
    client.wait_for_dag("fraudctl_smoke", timeout=180)
    client.unpause("fraudctl_smoke")
    durations = []
    for _ in range(args.dag_runs):
        started = time.perf_counter()
        run = client.wait_for_run(client.trigger("fraudctl_smoke"), timeout=300)
        durations.append(time.perf_counter() - started)
        assert run.state == "success", run
    figures[f"trivial 2-task DAG trigger -> success ({args.dag_runs} runs)"] = (
        f"median {statistics.median(durations):.1f} s, min {min(durations):.1f} s, max {max(durations):.1f} s")

    down, _ = fraudctl(config, "down")
    figures["down (graceful)"] = f"{down:.1f} s"
    warm, _ = fraudctl(config, "up", "-o", "json")
    figures["warm up (state kept) -> all healthy"] = f"{warm:.1f} s"
    if not args.keep:
        down2, _ = fraudctl(config, "down", "--purge")
        figures["down --purge"] = f"{down2:.1f} s"

    width = max(map(len, figures))
    print("\nfraudctl stack benchmark (native runtime, 2 cores)")
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    main()
