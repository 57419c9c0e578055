"""The compose stack's containers in fraudctl's words: the uptime `status` shows comes from `docker inspect`."""

from __future__ import annotations

import datetime as dt
import os
import stat

from fraudctl.stack import compose_ps
from fraudctl.stack.compose_ps import started_at, uptimes, with_uptimes

NOW = dt.datetime(2026, 12, 7, 5, 0, 0, tzinfo=dt.timezone.utc)


def test_started_at_reads_dockers_nanosecond_times_and_the_zero_time():
    assert started_at("2026-12-07T04:38:11.123456789Z") == dt.datetime(2026, 12, 7, 4, 38, 11, tzinfo=dt.timezone.utc)
    assert started_at("0001-01-01T00:00:00Z") is None  # never started
    assert started_at("") is None and started_at("garbage") is None


def fake_docker(tmp_path, output: str) -> dict[str, str]:
    """A `docker` on PATH that prints `output` for `docker inspect` and records its arguments."""
    script = tmp_path / "docker"
    script.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'args'}\ncat <<'EOF'\n{output}\nEOF\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}


def test_uptimes_of_running_containers_from_one_inspect(tmp_path, monkeypatch):
    env = fake_docker(tmp_path, "aaa111 true 2026-12-07T04:58:00.5Z\nbbb222 false 2026-12-07T04:00:00Z")
    monkeypatch.setenv("PATH", env["PATH"])
    assert uptimes(["aaa", "bbb"], env, now=NOW) == {"aaa111": 120.0}
    assert (tmp_path / "args").read_text().split()[-2:] == ["aaa", "bbb"]  # one call for every container


def test_with_uptimes_matches_compose_short_ids(monkeypatch):
    monkeypatch.setattr(compose_ps, "uptimes", lambda ids, env: {"abc123def456" + "0" * 52: 65.04} if ids else {})
    rows = [{"Service": "kafka", "ID": "abc123def456", "State": "running", "Health": "healthy"},
            {"Service": "scorer", "ID": "", "State": "exited", "ExitCode": 137}]
    statuses = with_uptimes(rows, {})
    assert statuses["kafka"].uptime_seconds == 65.0 and statuses["kafka"].healthy is True
    assert statuses["scorer"].uptime_seconds is None and statuses["scorer"].healthy is False


def test_no_docker_cli_means_no_uptime_not_an_error(monkeypatch):
    monkeypatch.setattr(compose_ps.shutil, "which", lambda name: None)
    assert uptimes(["abc"], {}) == {}
