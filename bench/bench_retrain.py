"""Retrain benchmark: wall time of a full `fraud_retrain` run on the default generated data set, task by task,
beside plain `fraudctl train` on the same data (the overhead Airflow adds). Prints figures; never asserts
on time.

    .venv/bin/python bench/bench_retrain.py [--days 183] [--skip-lake] [--keep]

Runs its own stack in a temporary state dir on ports default+950 (below the ephemeral port range), generates
the data set (`fraudctl generate` defaults unless --days/--customers/--terminals), then:

  1. `fraudctl train --data FILE` (no Airflow);
  2. `fraudctl retrain --wait --conf source=FILE` over the whole file (the same rows through the DAG);
  3. the lake seeded from the file as the scorer writes it (`Lake.write`), `fraudctl retrain --wait` over
     the lake (labels that had arrived by the cutoff);

and purges the stack at the end (unless --keep).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from bench.support import write_shifted_config  # noqa: E402

BIN = Path(sys.executable).parent
OFFSET = 950
TASKS = ("check_params", "extract", "validate", "train", "evaluate", "gate", "promote", "keep_champion", "report")


def fraudctl(config: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run([str(BIN / "fraudctl"), "-c", str(config), *args], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"fraudctl {' '.join(args)} failed ({result.returncode}) after {seconds:.0f}s:\n"
                 f"{result.stderr[-3000:]}\n{result.stdout[-2000:]}")
    return seconds, result


def show_run(title: str, seconds: float, out: dict) -> None:
    durations = out.get("durations") or {}
    report = out.get("report") or {}
    print(f"\n{title}: {seconds:.1f}s end to end (trigger -> success), run {out.get('run_id')}")
    for task in [t for t in TASKS if t in durations] + sorted(set(durations) - set(TASKS)):
        value = durations[task]
        print(f"  {task:<14} {'-' if value is None else f'{value:7.1f}s'}")
    print(f"  sum of tasks   {sum(v for v in durations.values() if v):7.1f}s")
    data = report.get("data") or {}
    print(f"  rows {data.get('rows')} labelled {data.get('labelled')} lake files {data.get('lake_files')}; "
          f"version {report.get('version')} {report.get('decision')}")


def main() -> None:
    warnings.filterwarnings("ignore", message="no explicit representation of timezones")  # aware times, seeding
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--terminals", type=int, default=None)
    parser.add_argument("--skip-lake", action="store_true", help="only the file runs")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="fraudctl-bench-retrain-"))
    config = write_shifted_config(folder, OFFSET, retrain={"schedule": None}, runtime={"stop_timeout": 20})
    data = folder / "transactions.parquet"
    extra = [*(["--days", str(args.days)] if args.days else []),
             *(["--customers", str(args.customers)] if args.customers else []),
             *(["--terminals", str(args.terminals)] if args.terminals else [])]
    try:
        seconds, _ = fraudctl(config, "generate", "-O", str(data), "--format", "parquet", *extra)
        import pandas as pd

        frame = pd.read_parquet(data)
        first, last = frame["tx_datetime"].min(), frame["tx_datetime"].max()
        days = (last.normalize() - first.normalize()).days + 1
        print(f"data: {len(frame):,} transactions over {days} days ({first.date()}..{last.date()}), "
              f"generated in {seconds:.1f}s")
        seconds, _ = fraudctl(config, "up")
        print(f"up: {seconds:.1f}s")

        plain, result = fraudctl(config, "train", "--data", str(data), "-o", "json")
        trained = json.loads(result.stdout)
        print(f"\nfraudctl train --data FILE: {plain:.1f}s (process start to exit), version "
              f"{(trained.get('registered') or {}).get('version')}")

        cutoff = (last.normalize() + pd.Timedelta(days=1)).date()
        window = ["--conf", f"window_days={days}", "--conf", f"cutoff={cutoff.isoformat()}"]
        seconds, result = fraudctl(config, "retrain", "--wait", "--timeout", "1800", "-o", "json",
                                   "--conf", f"source={data}", *window)
        file_run = json.loads(result.stdout)
        show_run("fraudctl retrain --conf source=FILE (whole file)", seconds, file_run)
        tasks = sum(v for v in file_run["durations"].values() if v)
        print(f"  Airflow overhead over plain train: {seconds - plain:+.1f}s ({seconds / plain:.2f}x); "
              f"{seconds - tasks:.1f}s of the run outside any task (queueing, scheduling)")

        if not args.skip_lake:
            import fraudctl.data.lake as lakes
            from fraudctl.config import load_config
            from bench.support import seed_lake

            loaded = load_config(config, env={})
            from fraudctl.stack import get_runtime

            # the configured lake on the storage the runtime serves (the native objectstore's keys filled in)
            lake = lakes.lake_for(loaded, get_runtime(loaded).storage())
            started = time.perf_counter()
            batches = seed_lake(lake, frame, batch_rows=100_000, duplicate_batch=False)
            print(f"\nlake seeded: {batches} batches in {time.perf_counter() - started:.1f}s")
            seconds, result = fraudctl(config, "retrain", "--wait", "--timeout", "1800", "-o", "json", *window)
            show_run("fraudctl retrain (the lake, labels arrived by the cutoff)", seconds, json.loads(result.stdout))
    finally:
        if not args.keep:
            subprocess.run([str(BIN / "fraudctl"), "-c", str(config), "down", "--purge"], capture_output=True)
            shutil.rmtree(folder, ignore_errors=True)  # the generated data set
            print(f"\nstack purged, {folder} removed")
        else:
            print(f"\nstack left running: fraudctl -c {config} down --purge")


if __name__ == "__main__":
    main()
