import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest


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


class Generated(NamedTuple):
    frame: Any  # pandas.DataFrame, as generate_transactions returns it
    path: Path  # the same rows as `fraudctl generate` writes them (CSV)


@pytest.fixture(scope="module")
def generated(request, tmp_path_factory) -> Generated:
    """Simulated transactions for the requesting module, made once per module with its GENERATED_ARGS
    (generate_transactions' arguments): each module's assertions hold for its own data (a date range, a fraud
    rate, a replay's length), so the data are shared as a recipe, not as one frame."""
    from fraudctl.data.generator import generate_transactions, write_transactions

    arguments = getattr(request.module, "GENERATED_ARGS", None)
    if arguments is None:
        pytest.fail(f"{request.module.__name__} uses `generated` but sets no GENERATED_ARGS")
    frame = generate_transactions(**arguments)
    path = tmp_path_factory.mktemp("generated") / "transactions.csv"
    write_transactions(frame, path)
    return Generated(frame, path)
