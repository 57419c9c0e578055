import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
FRAUDCTL = [sys.executable, "-m", "fraudctl"]


def run_fraudctl(*args: str, env: dict | None = None, timeout: float = 600, cwd: Path | None = None):
    """The real CLI in a child process, as an operator or a CI script runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*FRAUDCTL, *args], capture_output=True, text=True, env=full_env, timeout=timeout,
                          cwd=cwd or REPO)

