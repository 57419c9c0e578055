"""`fraudctl rules ...` in-process over the in-memory store: it parses, calls, renders; JSON for scripts; the
documented exit codes."""

from __future__ import annotations

import json

import pytest

from fraudctl.cli import run
from fraudctl.rules.store import MemoryRuleStore


@pytest.fixture
def store(monkeypatch, tmp_path):
    shared = MemoryRuleStore()
    monkeypatch.setattr("fraudctl.operate.connect.rule_store", lambda config: shared)
    monkeypatch.setenv("FRAUDCTL_CONFIG", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text(f"runtime: {{state_dir: {tmp_path}}}\n")
    return shared


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return int(code), out, err


def test_add_list_show_enable_disable_remove(store, capsys):
    code, out, _ = cli(capsys, "rules", "add", "big", "amount > 500", "--author", "ana", "-o", "json")
    assert code == 0 and json.loads(out)["version"] == 1 and json.loads(out)["changes"][0]["author"] == "ana"
    assert cli(capsys, "rules", "enable", "big", "--author", "bo")[0] == 0
    listed = json.loads(cli(capsys, "rules", "list", "-o", "json")[1])
    assert listed["version"] == 2 and listed["rules"][0]["mode"] == "active"
    code, out, _ = cli(capsys, "rules", "show", "big")
    assert code == 0 and "amount > 500" in out and "enable" in out and "bo" in out
    assert cli(capsys, "rules", "disable", "big")[0] == 0 and store.get("big").mode == "disabled"
    assert cli(capsys, "rules", "remove", "big")[0] == 0 and store.current().rules == ()
    assert "rule set version 4" in cli(capsys, "rules", "list")[1]


def test_refusals_exit_with_their_codes(store, capsys):
    code, _, err = cli(capsys, "rules", "add", "x", "open('/etc/passwd').read() == ''")
    assert code == 11 and "condition 1:1: a function call is not allowed" in err
    assert cli(capsys, "rules", "show", "nope")[0] == 9
    cli(capsys, "rules", "add", "x", "amount > 1")
    code, _, err = cli(capsys, "rules", "add", "x", "amount > 2")
    assert code == 10 and "--replace" in err
    assert cli(capsys, "rules", "add", "x", "amount > 2", "--replace")[0] == 0
    assert cli(capsys, "rules", "add", "x")[0] == 2  # NAME without CONDITION: usage


def test_add_from_a_file_and_again_changes_nothing(store, capsys, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("- name: a\n  condition: amount > 1\n- name: b\n  condition: amount < 1\n  mode: active\n")
    assert json.loads(cli(capsys, "rules", "add", "--file", str(path), "-o", "json")[1])["version"] == 2
    again = json.loads(cli(capsys, "rules", "add", "--file", str(path), "-o", "json")[1])
    assert again["changes"] == [] and again["unchanged"] == ["a", "b"]
    path.write_text("- name: a\n  condition: amount >> 1\n")
    code, _, err = cli(capsys, "rules", "add", "--file", str(path))
    assert code == 11 and f"{path}:2: field 'condition'" in err.replace("\n", "")
