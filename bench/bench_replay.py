"""`fraudctl replay` beside `kcat -P` on the same broker: 1 M generated rows and a 2-row file, as whole processes
and in-process, and the ratios.

kcat sends the very events `fraudctl replay` produces (same JSON bytes, same keys), pre-encoded as
`key<TAB>json` lines on its stdin, with the same producer settings (idempotent, acks=all, lz4, linger,
batch size). Rounds alternate kcat and replay so both see the same machine; the figures are medians, and
since both tools swing by +-20 % from one run to the next on a 2-core machine that also runs the broker,
the ratio is given two ways: of the medians, and the median of each round's own ratio.
Two replays per round: the default (replay.delivery_reports=errors: each failure counted in Python, each
success settled in confluent-kafka's C callback, delivered = produced - failed) and
replay.delivery_reports=all (each success also built into a Message and counted in Python). Two figures
for replay: whole process (rows / the wall time of `fraudctl replay`, start-up, imports and the broker
handshake included, as kcat's figure is) and in-process (its own summary's events/s: delivered / wall
time from the first row read to the last delivery report). Every run is checked against the topic's end
offsets: each event landed once. A last replay with labels shows the cost of the feedback loop (two events
a row). Then a 2-row file, whole processes only (goal: 0.4 s): there start-up is everything.

Prints figures only; never asserts on time (machines differ). Run:
    .venv/bin/python bench/bench_replay.py [--rows 1000000] [--rounds 5] [--config fraudctl.yaml]
Without --config it starts a native stack of its own (every port + 5000, or + $BENCH_PORT_OFFSET) in a
temporary folder, stops the services the benchmark does not use (Airflow, Flower, MLflow: they would
compete for the CPU), and `down --purge`s it at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing

FRAUDCTL = [sys.executable, "-m", "fraudctl"]
KCAT = shutil.which("kcat") or "/usr/bin/kcat"
# Every configured port moved by this much (kafka 14092, postgres 10432, ...): clear of the defaults, the
# tests' windows (+10000, +20000) and bench_stack's (+15000), and below Linux's ephemeral port range
# (32768-60999), where an outgoing connection can hold a port we want to listen on.
BENCH_PORT_OFFSET = int(os.environ.get("BENCH_PORT_OFFSET", "5000"))
KEEP_RUNNING = {"kafka", "postgres", "redis"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--config", type=Path, help="use the running stack of this config instead of starting one")
    parser.add_argument("--keep-services", action="store_true",
                        help="leave Airflow, Flower and MLflow running on the benchmark's own stack")
    args = parser.parse_args()
    if not Path(KCAT).exists():
        sys.exit("kcat not found (Debian package kcat)")

    with tempfile.TemporaryDirectory(prefix="fraudctl-bench-replay-") as tmp:
        folder = Path(tmp)
        own_stack = args.config is None
        config_path = args.config.resolve() if args.config else _write_config(folder)
        try:
            if own_stack:
                _stack_up(config_path, args.keep_services)
            _run(config_path, folder, args.rows, args.rounds)
        finally:
            if own_stack:
                print("stopping the benchmark stack (down --purge) ...", flush=True)
                subprocess.run([*FRAUDCTL, "-c", str(config_path), "down", "--purge"], capture_output=True,
                               timeout=600, cwd=REPO)


def _run(config_path: Path, folder: Path, rows: int, rounds: int) -> None:
    from fraudctl.config import load_config

    config = load_config(config_path, env={})
    topic = config.kafka.topics.transactions.name
    data = folder / "transactions.csv"
    started = time.perf_counter()
    _generate(data, rows)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, kcat {_kcat_version()}, "
          f"broker {config.kafka.bootstrap_servers}, topic {topic} "
          f"({config.kafka.topics.transactions.partitions} partitions)")
    print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f} s: {data.stat().st_size / 1e6:.0f} MB CSV")

    lines = folder / "events.jsonl"
    started = time.perf_counter()
    encoded = _pre_encode(data, lines)
    print(f"pre-encoded {encoded:,} events for kcat in {time.perf_counter() - started:.1f} s "
          f"({lines.stat().st_size / 1e6:.0f} MB)")
    assert encoded == rows, f"{encoded} events for {rows} rows"

    r = config.replay
    kcat_cmd = [KCAT, "-P", "-b", config.kafka.bootstrap_servers, "-t", topic, "-K", "\\t",
                "-z", r.compression, "-X", "enable.idempotence=true", "-X", "acks=all",
                "-X", f"linger.ms={r.linger_ms}", "-X", f"batch.size={r.batch_bytes}",
                "-X", "batch.num.messages=100000", "-X", "queue.buffering.max.messages=1000000"]
    replay_cmd = [*FRAUDCTL, "-c", str(config_path), "replay", str(data), "--no-labels", "-o", "json"]

    variants = {  # label -> environment of the run
        "replay": {"FRAUDCTL_REPLAY__DELIVERY_REPORTS": "errors"},  # the default, named in case the env sets it
        "replay (all)": {"FRAUDCTL_REPLAY__DELIVERY_REPORTS": "all"},
    }
    rates: dict[str, list[float]] = {"kcat -P": [], **{name: [] for name in variants}}
    process_rates: dict[str, list[float]] = {name: [] for name in variants}  # rows / whole-process seconds
    _warm_up(kcat_cmd, lines)  # a fresh broker hands out producer ids slowly at first: not kcat's fault
    print(f"\n{'round':<6} {'tool':<16} {'events':>10} {'seconds':>8} {'events/s':>11}  check")
    for round_no in range(1, rounds + 1):
        before = _end_offset(config, topic)
        t0 = time.perf_counter()
        with open(lines, "rb") as stdin:
            done = subprocess.run(kcat_cmd, stdin=stdin, capture_output=True, text=True, timeout=900)
        seconds = time.perf_counter() - t0
        landed = _end_offset(config, topic) - before
        ok = done.returncode == 0 and landed == rows
        rates["kcat -P"].append(rows / seconds)
        problem = "" if ok else f"; {done.stderr.strip()[-200:]}"
        print(f"{round_no:<6} {'kcat -P':<16} {rows:>10,} {seconds:>8.2f} {rows / seconds:>11,.0f}  "
              f"{'ok' if ok else 'MISMATCH'}: {landed:,} landed{problem}", flush=True)

        for name, env in variants.items():
            before = _end_offset(config, topic)
            t0 = time.perf_counter()
            done = subprocess.run(replay_cmd, capture_output=True, text=True, timeout=900, cwd=REPO,
                                  env={**os.environ, **env})
            process_seconds = time.perf_counter() - t0
            landed = _end_offset(config, topic) - before
            summary = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
            ok = done.returncode == 0 and landed == rows and summary.get("delivered") == rows
            rate = summary.get("events_per_second", 0.0)
            rates[name].append(rate)
            process_rates[name].append(rows / process_seconds if ok else 0.0)
            problem = "" if ok else f"; {done.stderr.strip()[-300:]}"
            print(f"{round_no:<6} {name:<16} {summary.get('delivered', 0):>10,} "
                  f"{summary.get('wall_seconds', math.nan):>8.2f} {rate:>11,.0f}  "
                  f"{'ok' if ok else 'MISMATCH'}: {landed:,} landed; whole process {process_seconds:.2f} s, "
                  f"{rows / process_seconds:,.0f}/s{problem}", flush=True)

    print()
    kcat = rates["kcat -P"]
    print(f"median  {'kcat -P':<16} {statistics.median(kcat):>11,.0f} events/s (whole process)")
    for name in variants:
        for label, figures in (("whole process", process_rates[name]), ("in-process", rates[name])):
            per_round = statistics.median(r / k for r, k in zip(figures, kcat))
            print(f"median  {name:<16} {statistics.median(figures):>11,.0f} events/s {label:<13}  ratio to kcat "
                  f"{statistics.median(figures) / statistics.median(kcat):.2f} (median of the rounds' ratios "
                  f"{per_round:.2f})")
    print("goals for the default: 0.55 or more as a whole process, 0.6 in-process")

    done = subprocess.run([*FRAUDCTL, "-c", str(config_path), "replay", str(data), "-o", "json"],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    if done.returncode == 0:
        summary = json.loads(done.stdout)
        print(f"with labels: {summary['transactions']:,} transactions + {summary['labels']:,} labels, "
              f"{summary['wall_seconds']:.2f} s, {summary['events_per_second']:,.0f} events/s, "
              f"{summary['transactions'] / summary['wall_seconds']:,.0f} rows/s")
    else:
        print(f"with labels: failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    _tiny(config_path, folder, kcat_cmd, rounds)


def _tiny(config_path: Path, folder: Path, kcat_cmd: list[str], rounds: int) -> None:
    """A 2-row file, the same 2 events from each tool, whole processes: what a user waits for on a small file."""
    tiny = folder / "tiny.csv"
    tiny.write_text("transaction_id,tx_datetime,customer_id,terminal_id,amount,is_fraud\n"
                    "1,2018-04-01T00:00:31Z,596,3156,57.16,0\n2,2018-04-01T00:02:10Z,4961,3412,81.51,1\n")
    lines = b"".join(f"{k}\t{v}\n".encode() for k, v in _events(tiny, labels=False))
    replay_cmd = [*FRAUDCTL, "-c", str(config_path), "replay", str(tiny), "--no-labels", "-o", "json"]
    times: dict[str, list[float]] = {"kcat -P": [], "replay": []}
    for _ in range(max(5, 2 * rounds)):
        t0 = time.perf_counter()
        subprocess.run(kcat_cmd, input=lines, capture_output=True, timeout=60, check=True)
        times["kcat -P"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        done = subprocess.run(replay_cmd, capture_output=True, text=True, timeout=60, cwd=REPO)
        times["replay"].append(time.perf_counter() - t0)
        if done.returncode != 0:
            print(f"tiny file: replay failed ({done.returncode}): {done.stderr.strip()[-300:]}")
            return
    print(f"\n2-row file, whole process (median of {len(times['replay'])}; goal for replay 0.4 s): "
          + ", ".join(f"{name} {statistics.median(values):.3f} s (min {min(values):.3f})"
                      for name, values in times.items()))


def _warm_up(kcat_cmd: list[str], lines: Path) -> None:
    with open(lines, "rb") as source:
        head = b"".join(source.readline() for _ in range(1000))
    subprocess.run(kcat_cmd, input=head, capture_output=True, timeout=120)


def _generate(path: Path, rows: int) -> None:
    from fraudctl.data.generator import generate_transactions, write_transactions

    days = max(1, math.ceil(rows / 9_000))  # about 9 700 transactions a day at the default sizes
    frame = generate_transactions(n_days=days, seed=0)
    while len(frame) < rows:
        days = math.ceil(days * 1.2 * rows / len(frame))
        frame = generate_transactions(n_days=days, seed=0)
    write_transactions(frame.head(rows), path)


def _pre_encode(data: Path, out: Path) -> int:
    """The exact events `fraudctl replay --no-labels` sends, as kcat's key<TAB>value lines."""
    count = 0
    with open(out, "w") as sink:
        for key, value in _events(data, labels=False):
            sink.write(f"{key}\t{value}\n")
            count += 1
    return count


def _events(data: Path, labels: bool):
    """(key, JSON value) of each event `fraudctl replay` sends, in order."""
    from fraudctl.data.replay import ReplayOptions, encoded_events

    for outgoing in encoded_events(ReplayOptions(path=data, labels=labels)):
        yield from zip(outgoing.keys, outgoing.values)


def _end_offset(config, topic: str) -> int:
    """Sum of the topic's partition end offsets."""
    from fraudctl.clients.kafka import end_offsets

    return sum(end_offsets(config.kafka, topic).values())


def _kcat_version() -> str:
    done = subprocess.run([KCAT, "-V"], capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("Version"):
            return line.split()[1]
    return "?"


def _write_config(folder: Path) -> Path:
    from bench.support import write_shifted_config

    return write_shifted_config(folder, BENCH_PORT_OFFSET, runtime={"stop_timeout": 20})


def _stack_up(config_path: Path, keep_services: bool) -> None:
    print("starting a native stack for the benchmark (fraudctl up) ...", flush=True)
    done = subprocess.run([*FRAUDCTL, "-c", str(config_path), "up", "-o", "json"], capture_output=True, text=True,
                          timeout=900, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"fraudctl up failed ({done.returncode}):\n{done.stderr}")
    if keep_services:
        return
    from fraudctl.config import load_config
    from fraudctl.stack.supervisor import Supervisor

    supervisor = Supervisor(load_config(config_path, env={}).state_dir)
    for info in supervisor.rpc().supervisor.getAllProcessInfo():
        if info["name"] not in KEEP_RUNNING:
            supervisor.stop(info["name"])


if __name__ == "__main__":
    main()
