"""`fraudctl workers`: rows from Flower's payloads (shapes as Flower 2.2 answers /workers?json=1 and
/api/workers), the table, and the --follow loop's count, JSON lines and exit code (fraudctl's own logic;
the real Flower is in tests/integration)."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from fraudctl.cli import workers as cli
from fraudctl.cli.common import OutputFormat
from fraudctl.errors import UnavailableError
from fraudctl.clients.flower import worker_rows

NOW = 1_796_125_920.0

EVENTS = [
    {"worker-online": 1, "worker-heartbeat": 17, "task-succeeded": 5, "task-failed": 2, "hostname": "w1@vm",
     "pid": 17699, "freq": 2.0, "clock": 42, "active": 1, "processed": 7, "loadavg": [7.2, 7.64, 7.62],
     "sw_ident": "py-celery", "sw_ver": "5.6.3", "sw_sys": "Linux", "status": True,
     "heartbeats": [NOW - 3.5, NOW - 1.52]},
    {"worker-online": 1, "worker-heartbeat": 3, "hostname": "w2@vm", "pid": 555, "freq": 2.0, "active": 0,
     "processed": 0, "loadavg": [1.0, 1.0, 1.0], "status": False, "heartbeats": [NOW - 40.0]},
]
DETAILS = {
    "w1@vm": {"stats": {"pid": 17699, "total": {"execute_workload": 7},
                        "pool": {"max-concurrency": 2}}, "active": [{"id": "x"}]},
    "w3@vm": {"stats": {"pid": 9, "total": {"a": 2, "b": 3}, "pool": {"max-concurrency": 4}}, "active": []},
}


def test_rows_merge_the_event_view_and_the_inspect_replies():
    rows = {row["name"]: row for row in worker_rows(EVENTS, DETAILS, now=NOW)}
    assert list(rows) == ["w1@vm", "w2@vm", "w3@vm"]
    assert rows["w1@vm"] == {"name": "w1@vm", "online": True, "pid": 17699, "concurrency": 2, "active": 1,
                             "processed": 7, "failed": 2, "succeeded": 5, "load": [7.2, 7.64, 7.62],
                             "heartbeat_age": 1.5}
    # dead for 40 s: Flower says offline; the age says how long
    assert rows["w2@vm"]["online"] is False and rows["w2@vm"]["heartbeat_age"] == 40.0
    assert rows["w2@vm"]["concurrency"] is None
    # known only from an inspect reply (no event seen): not online, counts from the reply
    assert rows["w3@vm"] == {"name": "w3@vm", "online": False, "pid": 9, "concurrency": 4, "active": 0,
                             "processed": 5, "failed": 0, "succeeded": 0, "load": None, "heartbeat_age": None}


def test_rows_of_nothing_and_a_clock_behind_the_heartbeat():
    assert worker_rows([], None) == []
    ahead = [{**EVENTS[0], "heartbeats": [NOW + 2]}]
    assert worker_rows(ahead, now=NOW)[0]["heartbeat_age"] == 0.0


def test_the_table_shows_offline_and_the_heartbeat_age():
    console = Console(file=io.StringIO(), width=200)
    console.print(cli._table(worker_rows(EVENTS, DETAILS, now=NOW)))
    text = console.file.getvalue()
    assert "offline" in text and "online" in text and "40.0s ago" in text and "7.20 7.64 7.62" in text


class FakeFlower:
    """Answers like FlowerClient: a worker that goes offline at the second refresh; None: unreachable."""

    def __init__(self, plan):
        self.plan = list(plan)
        self.refreshes = []

    def events(self):
        step = self.plan.pop(0)
        if step is None:
            raise UnavailableError("Flower http://x did not answer")
        return [{**EVENTS[0], "status": step, "heartbeats": [NOW]}]

    def workers(self, refresh=True):
        self.refreshes.append(refresh)
        return DETAILS


def test_follow_prints_a_json_line_per_refresh_and_asks_the_workers_once(capsys):
    fake = FakeFlower([True, False, True])
    rows = cli._follow(fake, "http://x", 0.2, 3, OutputFormat.json)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["workers"][0]["online"] for line in lines] == [True, False, True]
    assert fake.refreshes == [True, False, False]
    assert rows[0]["online"] is True


def test_follow_goes_on_when_flower_does_not_answer_and_the_exit_follows_the_last_refresh(capsys):
    rows = cli._follow(FakeFlower([True, None]), "http://x", 0.2, 2, OutputFormat.json)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[1]["workers"] is None and "did not answer" in lines[1]["error"]
    with pytest.raises(UnavailableError, match="did not answer"):
        cli._check_online(rows)
    with pytest.raises(UnavailableError, match="no Celery worker is online") as info:
        cli._check_online(cli._follow(FakeFlower([False]), "http://x", 0.2, 1, OutputFormat.json))
    assert info.value.exit_code == 8


def test_follow_text_draws_the_live_view(monkeypatch):
    console = Console(file=io.StringIO(), width=200)
    monkeypatch.setattr(cli, "stdout_console", lambda: console)
    cli._follow(FakeFlower([True, False]), "http://flower:1", 0.2, 2, OutputFormat.text)
    text = console.file.getvalue()
    assert "Celery workers from Flower http://flower:1" in text and "offline" in text
