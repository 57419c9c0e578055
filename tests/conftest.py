import os
import subprocess
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
FRAUDCTL = [sys.executable, "-m", "fraudctl"]


def run_fraudctl(*args: str, env: dict | None = None, timeout: float = 600, cwd: Path | None = None):
    """The real CLI in a child process, as an operator or a CI script runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*FRAUDCTL, *args], capture_output=True, text=True, env=full_env, timeout=timeout,
                          cwd=cwd or REPO)



def fraudctl_ok(config_path: Path, *args: str, timeout: float = 600):
    """The CLI against a config, which must succeed (the failure message carries its output)."""
    result = run_fraudctl("-c", str(config_path), *args, timeout=timeout)
    assert result.returncode == 0, f"fraudctl {' '.join(args)} exited {result.returncode}:\n{result.stderr}\n{result.stdout}"
    return result


def wait_for(condition, timeout: float, what: str, every: float = 0.5):
    """Poll `condition` until it returns something true (returned), or fail the test after `timeout`."""
    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
