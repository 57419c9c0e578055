"""The CLI's error boundary, exit codes and fast help, through the real entry point."""

import enum
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fraudctl.cli import run
from fraudctl.errors import ExitCode, FraudctlError
from tests.conftest import FRAUDCTL, REPO, run_fraudctl


def test_every_exit_code_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    documented = {int(code): name for code, name in re.findall(r"^\| (\d+) \| `(\w+)` \|", readme, re.M)}
    assert documented == {code.value: code.name for code in ExitCode}


def test_exit_codes_are_distinct():
    # Iterating an Enum skips aliases (a second name for a value): count the names instead.
    values = [code.value for code in ExitCode.__members__.values()]
    assert len(values) == len(set(values))
    with pytest.raises(ValueError, match="duplicate values"):  # and ExitCode is unique by construction
        enum.unique(enum.IntEnum("Codes", {"A": 1, "B": 1}))


def test_the_registry_raises_no_bare_fraudctl_error():
    """A bare FraudctlError exits 1, which the README calls a bug: every known failure has its class."""
    from fraudctl.model import registry

    for path in Path(registry.__file__).parent.glob("*.py"):
        assert not re.search(r"raise FraudctlError\(", path.read_text()), path


@pytest.mark.parametrize("error_class", FraudctlError.__subclasses__())
def test_each_error_class_maps_to_its_code(error_class, monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise error_class("something specific went wrong", hint="do this")

    monkeypatch.setattr("fraudctl.cli.common.AppState.config", boom)
    code = run(["config", "show"])
    err = capsys.readouterr().err
    assert code == error_class.exit_code and code != 0
    assert "error:" in err and "something specific went wrong" in err and "hint: do this" in err
    assert "Traceback" not in err


def test_unexpected_exception_is_exit_1_without_traceback(monkeypatch, capsys):
    monkeypatch.setattr("fraudctl.cli.common.AppState.config", lambda *a, **k: 1 / 0)
    assert run(["config", "show"]) == ExitCode.ERROR
    err = capsys.readouterr().err
    assert "unexpected error: ZeroDivisionError" in err and "--debug" in err and "Traceback" not in err


def test_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setattr("fraudctl.cli.common.AppState.config", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run(["--debug", "config", "show"])


def test_usage_error_is_exit_2():
    assert run(["up", "--no-such-flag"]) == ExitCode.USAGE
    assert run(["no-such-command"]) == ExitCode.USAGE


@pytest.mark.parametrize("command", ["replay", "train"])
def test_layout_choices_are_checked_alike_by_replay_and_train(command, capsys):
    args = ["x.csv"] if command == "replay" else ["--data", "x.csv"]
    assert run([command, *args, "--preset", "nope"]) == ExitCode.USAGE
    assert "'nope' is not one of 'auto', 'generator', 'ulb', 'sparkov'" in capsys.readouterr().err
    assert run([command, *args, "--time-format", "weird"]) == ExitCode.USAGE


def test_config_show_json_masks_secrets(tmp_path):
    cfg = tmp_path / "fraudctl.yaml"
    cfg.write_text("redis:\n  password: s3cret-value\nkafka:\n  port: 9999\n")
    result = run_fraudctl("--config", str(cfg), "config", "show", "--output", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source"] == str(cfg)
    assert data["config"]["kafka"]["port"] == 9999
    assert data["config"]["redis"]["password"] == "********"
    assert "s3cret-value" not in result.stdout


def test_environment_override_reaches_the_cli(tmp_path):
    result = run_fraudctl("config", "show", "-o", "json", env={"FRAUDCTL_MLFLOW__PORT": "5123"}, cwd=tmp_path)
    assert json.loads(result.stdout)["config"]["mlflow"]["port"] == 5123


def test_bad_config_file_exit_code_and_message(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("kafka:\n  port: 0\n  colour: blue\n")
    result = run_fraudctl("-c", str(cfg), "up")
    assert result.returncode == ExitCode.CONFIG
    assert f"{cfg}: kafka.port" in result.stderr and f"{cfg}: kafka.colour" in result.stderr
    assert "unknown key" in result.stderr


def test_missing_prerequisites_are_listed_with_install_hints(tmp_path):
    # An empty PATH hides java, mvn and redis-server; the check runs before anything starts.
    result = run_fraudctl("up", "--runtime", "native",
                          env={"PATH": str(tmp_path), "JAVA_HOME": "", "FRAUDCTL_RUNTIME__STATE_DIR": str(tmp_path / "s")},
                          cwd=tmp_path)
    assert result.returncode == ExitCode.PREREQUISITE, result.stderr
    for words in ("Java 17+", "apt-get install maven", "apt-get install redis-server"):
        assert words in result.stderr
    assert not (tmp_path / "s" / "run").exists()  # nothing was started


def test_help_is_fast_and_imports_no_heavy_library():
    code = ("import sys, time; t=time.perf_counter(); from fraudctl.cli import run; "
            "rc = run(['--help']); heavy = [m for m in ('pyspark','mlflow','sklearn','airflow','pandas','pydantic',"
            "'confluent_kafka','docker','boto3') if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    command = "bash stack/native/install.sh && .venv/bin/python -m pytest tests/unit tests/integration"
    assert f"```bash\n{command}\n```" in readme
    assert command in ci.splitlines()


def test_ctrl_c_exits_130_not_0(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("fraudctl.cli.common.AppState.config", interrupted)
    assert run(["config", "show"]) == ExitCode.INTERRUPTED
    assert "interrupted" in capsys.readouterr().err


def test_a_confirmation_without_a_terminal_refuses_and_names_yes(monkeypatch):
    from fraudctl.cli.common import OutputFormat, confirm
    from fraudctl.errors import UsageError

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # CI: stdin is no terminal (and at EOF)
    with pytest.raises(UsageError) as caught:
        confirm("Roll back?", OutputFormat.text)
    assert caught.value.exit_code == ExitCode.USAGE and "--yes" in caught.value.hint


def test_rollback_without_a_terminal_exits_usage_before_reaching_mlflow(tmp_path):
    cfg = tmp_path / "fraudctl.yaml"
    cfg.write_text("mlflow:\n  port: 1\n")  # nothing listens: the refusal must come first
    result = subprocess.run([*FRAUDCTL, "-c", str(cfg), "rollback"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "--yes" in result.stderr and "not a terminal" in result.stderr and "interrupted" not in result.stderr


def test_estimator_choices_come_from_one_list():
    import typing

    from fraudctl.cli.train import EstimatorChoice
    from fraudctl.config import ModelConfig
    from fraudctl.model.estimators import ESTIMATORS, HYPERPARAMETERS

    assert [choice.value for choice in EstimatorChoice] == list(ESTIMATORS)
    assert typing.get_args(ModelConfig.model_fields["estimator"].annotation) == ESTIMATORS
    assert set(HYPERPARAMETERS) == set(ESTIMATORS)


def test_no_help_text_loses_words_to_rich_markup():
    """`--help` renders help texts as rich markup, where "[config model.train_days]" is a style tag and
    vanishes ("Training days ."): every command's and option's help must read the same once rendered."""
    import click
    import typer.main
    from rich.markup import render

    from fraudctl.cli import app

    lost = []

    def visit(command: click.Command, path: str) -> None:
        texts = [command.help or ""] + [getattr(param, "help", None) or "" for param in command.params]
        lost.extend(f"{path}: {text!r}" for text in texts if render(text).plain != text.replace("\\[", "["))
        for name, sub in getattr(command, "commands", {}).items():
            visit(sub, f"{path} {name}")

    visit(typer.main.get_command(app), "fraudctl")
    assert not lost, "\n".join(lost)


def test_scorer_status_text_shows_the_last_batch_latency(monkeypatch, capsys):
    report = {"process": "RUNNING", "health": "healthy", "pid": 42, "master": "local[2]",
              "model": {"name": "fraud-detector", "version": "3", "since": 1_700_000_000, "threshold": 0.5},
              "batch_duration_ms": 240, "latency_ms": {"p50": 377.4, "p99": 722.0, "max": 842.2},
              "counters": {"scored": 1500}, "lag": {}, "state_size": None, "ui": "http://127.0.0.1:4040"}
    monkeypatch.setattr("fraudctl.operate.scorer_service.status", lambda config: report)
    assert run(["scorer", "status"]) == 0
    out = capsys.readouterr().out
    assert "p50 377 ms, p99 722 ms, max 842 ms" in out and "v3" in out

    monkeypatch.setattr("fraudctl.operate.scorer_service.status", lambda config: {**report, "latency_ms": None})
    assert run(["scorer", "status"]) == 0
    assert re.search(r"^\s*latency\s+│\s+-\s*$", capsys.readouterr().out, re.M)


def test_config_options_reach_the_config_as_overrides(monkeypatch, capsys):
    seen = {}

    def train_and_register(config, data, **kwargs):
        seen["config"] = config
        return {"trained": True}

    monkeypatch.setattr("fraudctl.model.workflows.train_and_register", train_and_register)
    assert run(["train", "--data", "x.csv", "--train-days", "3", "--estimator", "random_forest",
                "--preset", "ulb", "--dry-run", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"trained": True}
    config = seen["config"]
    assert (config.model.train_days, config.model.estimator, config.layout.preset) == (3, "random_forest", "ulb")
    assert config.model.test_days == 7  # not given: the config's


@pytest.mark.parametrize("health, code", [("healthy", 0), ("degraded", 0), ("stalled", ExitCode.UNAVAILABLE),
                                          ("stopped", ExitCode.UNAVAILABLE)])
def test_scorer_status_exits_8_unless_running(health, code, monkeypatch, capsys):
    monkeypatch.setattr("fraudctl.operate.scorer_service.status", lambda config: {"health": health, "lag": {}})
    assert run(["scorer", "status", "-o", "json"]) == code
    assert json.loads(capsys.readouterr().out)["health"] == health
