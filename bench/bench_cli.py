"""What the operator's read commands cost as whole processes, the way an operator (or a script polling
them) pays: interpreter start, imports, config, the questions to the stack, rendering.

Runs each command ROUNDS times in a fresh `python -m fraudctl -c CONFIG ...` process against the stack the
config describes (start it first: `fraudctl -c CONFIG up`), and prints the median and range of the wall time
and the median CPU time (user + system of the process and its children), with the exit codes seen.
`fraudctl --help` is the reference: what any command costs before it does anything. Prints figures;
asserts nothing about time.

    .venv/bin/python bench/bench_cli.py --config fraudctl.yaml [--rounds 5] [--warmup 1]

PYTHONPATH (e.g. a clone of the repo) is passed on to the commands, so a clone can be measured with the
venv of another.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "--help": ["--help"],
    "status": ["status"],
    "scorer status": ["scorer", "status"],
    "models list": ["models", "list"],
}


def one_run(python: str, config: Path, args: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system, the process and its descendants) and the exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([python, "-m", "fraudctl", "-c", str(config), *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 8):  # 8: `status` on a stack with an unhealthy service, still measured
        print(f"  exit {done.returncode}: {done.stderr.strip()[:300]}", file=sys.stderr)
    return wall, cpu, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", "-c", type=Path, required=True, help="fraudctl.yaml of a running stack")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each command (the median is printed)")
    parser.add_argument("--warmup", type=int, default=1, help="runs of each command first, not counted")
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose fraudctl is measured")
    parser.add_argument("--only", action="append", choices=sorted(COMMANDS), help="measure only these commands")
    options = parser.parse_args()
    names = options.only or list(COMMANDS)
    print(f"{options.rounds} rounds each (+{options.warmup} warm-up), {options.python} -m fraudctl "
          f"-c {options.config}; PYTHONPATH={os.environ.get('PYTHONPATH', '')}; {os.cpu_count()} CPUs")
    print(f"{'command':<16} {'wall median':>12} {'wall min..max':>16} {'CPU median':>11}  exit codes")
    for name in names:
        args = COMMANDS[name]
        for _ in range(options.warmup):
            one_run(options.python, options.config, args)
        runs = [one_run(options.python, options.config, args) for _ in range(options.rounds)]
        walls = [wall for wall, _, _ in runs]
        cpus = [cpu for _, cpu, _ in runs]
        codes = sorted({code for _, _, code in runs})
        print(f"{name:<16} {statistics.median(walls):>11.2f}s {min(walls):>7.2f}..{max(walls):>5.2f}s "
              f"{statistics.median(cpus):>10.2f}s  {', '.join(map(str, codes))}")


if __name__ == "__main__":
    main()
