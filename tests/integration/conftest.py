"""The real native stack for integration tests: started once per session through the real CLI, on ports
of its own (so a developer's stack on the defaults is left alone), stopped and purged at the end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.support import write_shifted_config
from tests.conftest import run_fraudctl

# The session stack sits far from a developer's stack on the defaults; stacks that a test starts (and
# breaks) on its own sit elsewhere again. Both stay below Linux's ephemeral port range (32768-60999): there
# an outgoing connection may hold the very port a test wants to listen on, and `up` would rightly refuse.
# TEST_PORT_OFFSET moves both, so two test runs can share a machine.
SESSION_OFFSET = 20000 + int(os.environ.get("TEST_PORT_OFFSET", "0"))
SCRATCH_OFFSET = 10000 + int(os.environ.get("TEST_PORT_OFFSET", "0"))


def write_config(folder: Path, offset: int = SCRATCH_OFFSET, **sections) -> Path:
    runtime = {"stop_timeout": 20, **sections.pop("runtime", {})}
    return write_shifted_config(folder, offset, runtime=runtime, **sections)


@pytest.fixture(scope="session")
def loop_answers() -> dict:
    """What the whole loop answered on each runtime that ran it in this session (tests.support.what_the_loop_answered),
    by runtime: the compose module's loop stores its own; the native loop's module, which runs later,
    compares."""
    return {}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def stack_pids(config_path: Path, state_dir: Path) -> set[int]:
    """supervisord, every service (from `status -o json`) and all their descendants."""
    import psutil

    roots = set()
    pid_file = state_dir / "run" / "supervisord.pid"
    if pid_file.exists():
        roots.add(int(pid_file.read_text()))
    status = run_fraudctl("-c", str(config_path), "status", "-o", "json")
    roots |= {s["pid"] for s in json.loads(status.stdout)["services"] if s["pid"]}
    pids = set(roots)
    for pid in roots:
        try:
            pids |= {child.pid for child in psutil.Process(pid).children(recursive=True)}
        except psutil.Error:
            pass
    return pids


def alive(pids: set[int]) -> list[str]:
    import psutil

    found = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.Error:
            pass
    return found


def processes_naming(folder: Path) -> list[str]:
    import psutil

    return [f"{p.pid} {' '.join(p.info['cmdline'] or [])[:120]}" for p in psutil.process_iter(["cmdline"])
            if str(folder) in " ".join(p.info["cmdline"] or [])]


@pytest.fixture(scope="session")
def stack_config_path(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("stack")
    # Tests trigger fraud_retrain themselves: no daily run the moment a test unpauses it.
    path = write_config(folder, SESSION_OFFSET, retrain={"schedule": None})
    result = run_fraudctl("-c", str(path), "up", "-o", "json", timeout=600)
    if result.returncode != 0:
        run_fraudctl("-c", str(path), "down", "--purge")
        pytest.fail(f"fraudctl up failed ({result.returncode}):\n{result.stderr}\n{result.stdout}")
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    yield path
    state_dir = folder / ".fraudctl"
    pids = stack_pids(path, state_dir)
    down = run_fraudctl("-c", str(path), "down", "--purge", timeout=300)
    assert down.returncode == 0, down.stderr
    leftovers = alive(pids) + processes_naming(state_dir)
    assert not leftovers, f"processes left after down: {leftovers}"
    assert not state_dir.exists()


@pytest.fixture(scope="session")
def stack_config(stack_config_path):
    """The running stack's validated Config."""
    from fraudctl.config import load_config

    return load_config(stack_config_path, env={})


@pytest.fixture(scope="session")
def stack_runtime(stack_config):
    """The runtime that runs the session stack, asked for its secrets and storage as fraudctl asks it."""
    from fraudctl.stack import get_runtime

    return get_runtime(stack_config)


@pytest.fixture(scope="session")
def stack_storage(stack_runtime):
    """The session stack's object store (the native objectstore, S3Proxy) with its generated keys."""
    return stack_runtime.storage()
