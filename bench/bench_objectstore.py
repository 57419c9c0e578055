"""What the native objectstore service (S3Proxy) costs: start-up time (process start to the first
authenticated S3 answer) and idle memory (RSS) after it has created the bucket and stored one object.

Runs the service's own command (the `objectstore` NativeService: same JVM flags, properties and jars) in a
scratch state dir on a free port, ROUNDS times. Prints figures; asserts nothing about time.

    .venv/bin/python bench/bench_objectstore.py [--rounds 3] [--idle 30]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fraudctl.clients import objectstore  # noqa: E402
from fraudctl.config import load_config  # noqa: E402
from fraudctl.errors import UnavailableError  # noqa: E402
from fraudctl.stack.prereqs import check_native  # noqa: E402
from fraudctl.stack.native_context import NativeContext  # noqa: E402
from fraudctl.stack.services import build_services  # noqa: E402
from fraudctl.stack.native import NativeRuntime  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_round(idle: float) -> tuple[float, float]:
    import psutil

    with tempfile.TemporaryDirectory() as folder:
        config = load_config(None, env={}, overrides={"runtime.kind": "native", "runtime.state_dir": folder,
                                                      "storage.port": free_port()}, cwd=Path(folder))
        runtime = NativeRuntime(config)
        secrets = runtime.secrets(create=True)
        ctx = NativeContext(config, secrets, check_native())
        service = next(s for s in build_services(ctx) if s.name == objectstore.SERVICE)
        service.prepare()
        storage = runtime.storage()
        log = open(Path(folder) / "objectstore.log", "w")
        started = time.monotonic()
        proc = subprocess.Popen(service.program.command, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    service.probe()
                    break
                except UnavailableError:
                    if proc.poll() is not None or time.monotonic() - started > 120:
                        raise SystemExit(f"objectstore did not start; see {log.name}")
                    time.sleep(0.05)
            ready = time.monotonic() - started
            service.after_healthy()
            objectstore.client(storage).put_object(Bucket=storage.bucket, Key="bench/one", Body=b"x" * 1024)
            time.sleep(idle)  # idle on purpose: the figure is the memory of a store nobody uses
            rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    return ready, rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()
    results = [one_round(args.idle) for _ in range(args.rounds)]
    for i, (ready, rss) in enumerate(results, 1):
        print(f"round {i}: ready after {ready:.2f} s, idle RSS {rss:.0f} MiB")
    print(f"median: start-up {statistics.median(r for r, _ in results):.2f} s, "
          f"idle RSS {statistics.median(m for _, m in results):.0f} MiB")


if __name__ == "__main__":
    main()
