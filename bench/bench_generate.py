"""Time `fraudctl generate` at the handbook's default size: simulation, CSV and parquet writing.

Prints figures only; never asserts on time (machines differ). Run:
    .venv/bin/python bench/bench_generate.py [--customers N --terminals N --days N --seed N]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from fraudctl.data.generator import generate_transactions, summarize, write_transactions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"{args.customers} customers, {args.terminals} terminals, {args.days} days, seed {args.seed}")
    started = time.perf_counter()
    frame = generate_transactions(n_customers=args.customers, n_terminals=args.terminals, n_days=args.days,
                                  seed=args.seed)
    simulate_seconds = time.perf_counter() - started
    summary = summarize(frame)
    rows = summary["rows"]
    scenarios = summary["scenarios"]
    print(f"rows {rows:,}  fraud {summary['frauds']:,} = {summary['fraud_rate']:.3%}  "
          f"(scenario 1: {scenarios['1']:,}, 2: {scenarios['2']:,}, 3: {scenarios['3']:,})")
    _report("simulate", simulate_seconds, rows)

    with tempfile.TemporaryDirectory() as folder:
        for fmt in ("csv", "parquet"):
            path = Path(folder) / f"transactions.{fmt}"
            started = time.perf_counter()
            write_transactions(frame, path)
            seconds = time.perf_counter() - started
            _report(f"write {fmt}", seconds, rows, f"{path.stat().st_size / 1e6:.1f} MB")


def _report(step: str, seconds: float, rows: int, extra: str = "") -> None:
    print(f"{step:<14} {seconds:7.2f} s  {rows / seconds:>12,.0f} rows/s  {extra}".rstrip())


if __name__ == "__main__":
    main()
