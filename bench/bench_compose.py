"""The compose runtime beside the native one, in the same run: warm `up` to all healthy, idle memory, and the
streaming scorer's throughput in its container against natively on the same data; with --cold, the cold
build of every image on an empty engine. Prints figures; never asserts on time.

    DOCKER_HOST=unix:///run/fraudctl-test-docker/docker.sock .venv/bin/python bench/bench_compose.py \
        [--cold] [--rows N] [--idle-seconds 30]

Each runtime gets a stack of its own in a temporary folder: native on ports default + 15500, compose on default
+ 16500 as compose project `fraudctl-bench` (both below the ephemeral port range), purged at the end, also on
an error. The compose stack uses the engine at DOCKER_HOST (never the default socket: a test engine there
would switch every `fraudctl` on the machine to compose) with the images it holds, so its `up` is warm.

--cold: as root, a throwaway dockerd with an empty data root in a temporary folder (its own socket), and
`fraudctl up --runtime compose` on it from nothing: the base made by debootstrap when no image registry
answers, then every image built one after another (the lines `built IMAGE in Ns`), then the stack started.
The engine is stopped and its data deleted afterwards.

Scorer throughput: one generated file, one model trained on it and promoted on each stack, its first --rows
transactions (with their labels) replayed into each stack's Kafka first, then `scorer start` and the time until
`scorer wait` returns (every transaction and label read): events per second, and compose / native.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from bench.support import stack_memory, write_shifted_config  # noqa: E402

NATIVE_OFFSET, COMPOSE_OFFSET = 15500, 16500
PROJECT = "fraudctl-bench"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def run(config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 3600) -> tuple[float, str, str]:
    """`fraudctl -c CONFIG ARGS`, which must succeed: (seconds, stdout, stderr)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "fraudctl", "-c", str(config), *args], capture_output=True,
                            text=True, env={**os.environ, **(env or {})}, timeout=timeout, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"fraudctl {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return time.perf_counter() - started, result.stdout, result.stderr


def compose_config(folder: Path, offset: int = COMPOSE_OFFSET) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_shifted_config(folder, offset, runtime={"kind": "compose", "stop_timeout": 20},
                                compose={"ca_bundle": str(CA_BUNDLE) if CA_BUNDLE.is_file() else None},
                                retrain={"schedule": None},
                                # a container, the driver, an application on the compose master and an
                                # executor on its worker: minutes on two loaded cores
                                scorer={"start_timeout": 900})


class Figures(dict):
    """The figures, each also printed the moment it is measured (a later failure keeps the earlier ones)."""

    def __setitem__(self, name: str, value: str) -> None:
        print(f"  {name}: {value}", flush=True)
        super().__setitem__(name, value)


def compose_memory(env: dict[str, str], project: str) -> tuple[int, float]:
    """(containers, MiB) of the project's running containers, as `docker stats --no-stream` counts them."""
    ids = subprocess.run(["docker", "ps", "--quiet", "--filter", f"label=com.docker.compose.project={project}"],
                         capture_output=True, text=True, env={**os.environ, **env}, check=True).stdout.split()
    out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", *ids], capture_output=True,
                         text=True, env={**os.environ, **env}, check=True).stdout
    units = {"B": 2**-20, "KiB": 2**-10, "MiB": 1, "GiB": 2**10}
    total = 0.0
    for line in out.splitlines():
        match = re.match(r"([\d.]+)(\w+)", line.split("/")[0].strip())
        if match:
            total += float(match.group(1)) * units.get(match.group(2), 1)
    return len(ids), total


@contextlib.contextmanager
def throwaway_engine(folder: Path) -> Iterator[str]:
    """A dockerd of its own (socket, data root, exec root, pid file under `folder`): DOCKER_HOST; stopped and
    its data deleted on exit."""
    host = f"unix://{folder / 'docker.sock'}"
    log = open(folder / "dockerd.log", "ab")
    proc = subprocess.Popen(["dockerd", "-H", host, "--data-root", str(folder / "data"), "--exec-root",
                             str(folder / "exec"), "--pidfile", str(folder / "docker.pid")],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "-H", host, "info"], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"a throwaway dockerd did not start; see {log.name}")
            time.sleep(1)
        yield host
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(folder / "data", ignore_errors=True)


def cold_build(figures: Figures) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fraudctl-bench-engine-", dir="/var/lib"))
    try:
        with throwaway_engine(folder) as host:
            env = {"DOCKER_HOST": host, "COMPOSE_PROJECT_NAME": PROJECT + "-cold"}
            config = compose_config(folder / "stack")
            seconds, _, err = run(config, "up", "-o", "json", env=env)
            built = [line for line in err.splitlines() if line.startswith(("built ", "made ", "the base"))]
            figures["cold: up from nothing on an empty engine (base, every image, all healthy)"] = f"{seconds:.0f} s"
            figures["cold: the builds, one after another"] = "; ".join(built) or "(no build line)"
            run(config, "down", "--purge", env=env)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def scorer_throughput(config: Path, data: Path, env: dict[str, str], rows: int) -> float:
    """Train and promote on `data`, replay its first `rows`, then events per second from `scorer start` to
    caught up."""
    _, out, _ = run(config, "train", "--data", str(data), "--validation-days", "0", "-o", "json", env=env)
    version = json.loads(out)["registered"]["version"]
    run(config, "promote", str(version), "--force", "--yes", env=env)
    run(config, "replay", str(data), "--limit", str(rows), env=env)
    run(config, "scorer", "start", env=env)
    seconds, _, _ = run(config, "scorer", "wait", "--timeout", "3000", env=env)
    run(config, "scorer", "stop", env=env)
    return 2 * rows / seconds  # transactions and their labels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", action="store_true", help="also build every image on a throwaway engine (root)")
    parser.add_argument("--rows", type=int, default=0, help="transactions replayed for the scorer (default: all of "
                        "21 days of 1 000 customers)")
    parser.add_argument("--idle-seconds", type=float, default=30)
    args = parser.parse_args()
    if not os.environ.get("DOCKER_HOST"):
        raise SystemExit("set DOCKER_HOST to the engine to use (never a test engine on the default socket)")
    compose_env = {"COMPOSE_PROJECT_NAME": PROJECT}
    folder = Path(tempfile.mkdtemp(prefix="fraudctl-bench-compose-"))
    (folder / "native").mkdir()
    native_cfg = write_shifted_config(folder / "native", NATIVE_OFFSET, runtime={"kind": "native", "stop_timeout": 20},
                                      retrain={"schedule": None})
    compose_cfg = compose_config(folder / "compose")
    figures = Figures()
    figures["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    figures["machine"] = f"{os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.1f}"
    try:
        run(compose_cfg, "down", "--purge", env=compose_env)  # warm: images cached, no volume of the project
        seconds, _, err = run(compose_cfg, "up", "-o", "json", env=compose_env)
        built = [line for line in err.splitlines() if line.startswith("built ")]
        figures["compose: up (images cached, fresh volumes) -> all healthy"] = (
            f"{seconds:.1f} s" + (f" (built: {'; '.join(built)})" if built else ""))
        seconds, _, _ = run(native_cfg, "up", "-o", "json")
        figures["native: up (fresh state) -> all healthy"] = f"{seconds:.1f} s"

        time.sleep(args.idle_seconds)  # start-up work (migrations, DAG parsing) settles before idle is measured
        count, mib = compose_memory(compose_env, PROJECT)
        figures[f"compose: idle memory ({count} containers, docker stats)"] = f"{mib:.0f} MiB"
        count, rss, pss = stack_memory(folder / "native" / ".fraudctl")
        figures[f"native: idle memory ({count} processes)"] = f"RSS {rss:.0f} MiB, PSS {pss:.0f} MiB"

        data = folder / "tx.csv"
        generate = ["generate", "--days", "21", "--customers", "1000", "--terminals", "2000", "--out", str(data)]
        run(native_cfg, *generate)
        rows = sum(1 for _ in open(data)) - 1
        rows = min(rows, args.rows) if args.rows else rows
        native_rate = scorer_throughput(native_cfg, data, {}, rows)
        compose_rate = scorer_throughput(compose_cfg, data, compose_env, rows)
        figures[f"scorer, {rows:,} transactions + labels from a backlog: native (local[2])"] = f"{native_rate:,.0f} events/s"
        figures["scorer: compose (driver in its container, executors on the compose worker)"] = f"{compose_rate:,.0f} events/s"
        figures["scorer: compose / native"] = f"{compose_rate / native_rate:.2f}"
    finally:
        with contextlib.suppress(SystemExit):
            run(native_cfg, "down", "--purge")
        with contextlib.suppress(SystemExit):
            run(compose_cfg, "down", "--purge", env=compose_env)
    if args.cold:
        cold_build(figures)
    figures["load average at the end"] = f"{os.getloadavg()[0]:.1f}"
    width = max(map(len, figures))
    print("\nfraudctl compose runtime beside native")
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
