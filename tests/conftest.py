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


def wait_for(condition, timeout: float, what: str, every: float = 0.5, *, ignoring=(), explain=None):
    """Poll `condition` until it returns something true (returned), or fail the test after `timeout`.

    `ignoring`: exception types that mean "not yet" (a service still coming back), the last one named in the
    failure. `explain`: called once on failure for what the message should add (counts seen, a status)."""
    import pytest

    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = condition()
        except ignoring as exc:
            value, last_error = None, exc
        if value:
            return value
        # checked once more at the deadline, so a slow condition still gets its last look
        if time.monotonic() >= deadline:
            break
        time.sleep(max(0.0, min(every, deadline - time.monotonic())))
    message = f"timed out after {timeout:.0f}s waiting for {what}"
    if last_error is not None:
        message += f"; last error: {last_error}"
    if explain is not None:
        try:
            message += f"; {explain()}"
        except Exception as exc:  # the timeout is the failure to report, not a broken explanation
            message += f"; (explaining failed: {exc!r})"
    pytest.fail(message)
