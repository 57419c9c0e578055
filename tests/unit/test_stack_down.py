"""Every command that needs the stack, run against one that is not there (a config whose ports nothing
listens on, a state folder never started): it says so, says how to start it, and exits with the documented
code within a bounded time, without waiting forever. No service is involved: their absence is the point."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from fraudctl.errors import ExitCode
from bench.support import write_shifted_config

# (command, expected exit code, a word of the hint that says how to start what is missing)
COMMANDS = [
    (["status"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["logs", "kafka"], ExitCode.NOT_FOUND, "fraudctl up"),
    (["replay", "{csv}"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["train", "--data", "{csv}"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["models", "list"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["promote", "1", "--yes"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["rollback", "--yes"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["retrain"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["retrain", "list"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["workers"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["scorer", "start"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["scorer", "stop"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["scorer", "status"], ExitCode.UNAVAILABLE, "fraudctl scorer start"),
    (["scorer", "wait", "--timeout", "5"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["scores", "tail"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["scores", "summary"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["rules", "list"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["rules", "add", "big", "amount > 500"], ExitCode.UNAVAILABLE, "fraudctl up"),
    (["rules", "test", "big"], ExitCode.UNAVAILABLE, "fraudctl up"),
]
LIMIT_SECONDS = 60  # each command's own timeouts are 10 s or less; the rest is start-up on a busy machine


def test_every_command_against_a_stack_that_is_down_says_so_and_exits_with_its_code(tmp_path: Path):
    config = write_shifted_config(tmp_path, 31000)  # ports 31 000 above the defaults: nothing listens there
    csv = tmp_path / "tx.csv"
    csv.write_text("transaction_id,tx_datetime,customer_id,terminal_id,amount,is_fraud\n"
                   "0,2018-04-01T00:00:06Z,10,8333,118.13,0\n")
    env = {**os.environ, "FRAUDCTL_CONFIG": str(config)}
    started = time.monotonic()
    running = [(command, code, hint, subprocess.Popen(
        [sys.executable, "-m", "fraudctl", *[part.format(csv=csv) for part in command]], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) for command, code, hint in COMMANDS]
    problems = []
    for command, code, hint, process in running:
        try:
            out, err = process.communicate(timeout=max(1.0, LIMIT_SECONDS - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            process.kill()
            problems.append(f"{' '.join(command)}: still waiting after {LIMIT_SECONDS}s")
            continue
        if process.returncode != code or hint not in err or "Traceback" in err:
            problems.append(f"{' '.join(command)}: exit {process.returncode} (wanted {code.value}, hint {hint!r}):"
                            f" {err.strip()[-300:]}")
    assert not problems, "\n".join(problems)
