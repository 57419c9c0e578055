from pathlib import Path

import pytest

from fraudctl.config import load_config
from fraudctl.errors import ConfigError, ExitCode
from tests.support import config_ports, write_shifted_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fraudctl.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path):
    config = load_config(env={}, cwd=tmp_path)
    assert config.source is None
    assert config.kafka.port == 9092
    assert config.state_dir == (tmp_path / ".fraudctl").resolve()
    assert [t.name for t in config.kafka.topics.all()] == ["transactions", "labels", "scores", "alerts",
                                                           "transactions.dlq"]


def test_precedence_flag_over_env_over_file(tmp_path):
    path = write(tmp_path, "kafka:\n  port: 9100\nredis:\n  port: 7000\nmlflow:\n  port: 5100\n")
    env = {"FRAUDCTL_KAFKA__PORT": "9200", "FRAUDCTL_REDIS__PORT": "7100"}
    config = load_config(path, env=env, overrides={"kafka.port": 9300})
    assert config.kafka.port == 9300  # flag
    assert config.redis.port == 7100  # environment
    assert config.mlflow.port == 5100  # file
    assert config.postgres.port == 5432  # default


def test_relative_state_dir_is_taken_from_the_config_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    path = write(tmp_path, "runtime:\n  state_dir: state\n")
    config = load_config(path, env={}, cwd=tmp_path / "sub")
    assert config.state_dir == (tmp_path / "state").resolve()


def test_unknown_key_names_file_and_field(tmp_path):
    path = write(tmp_path, "kafka:\n  prot: 9092\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert str(path) in err.value.message
    assert "kafka.prot" in err.value.message
    assert "unknown key" in err.value.message
    assert err.value.exit_code == ExitCode.CONFIG


def test_wrong_type_and_bad_port(tmp_path):
    path = write(tmp_path, "kafka:\n  port: 70000\nmlflow:\n  workers: many\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    message = err.value.message
    assert f"{path}: kafka.port" in message and "65535" in message and "70000" in message
    assert f"{path}: mlflow.workers" in message and "'many'" in message


def test_bad_environment_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(env={"FRAUDCTL_REDIS__PORT": "abc"}, cwd=tmp_path)
    assert "environment variable FRAUDCTL_REDIS__PORT" in err.value.message


def test_unknown_environment_section_is_rejected(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(env={"FRAUDCTL_KAFAK__PORT": "1"}, cwd=tmp_path)
    assert "FRAUDCTL_KAFAK__PORT" in err.value.message


def test_yaml_syntax_error_names_line(tmp_path):
    path = write(tmp_path, "kafka:\n  port: [9092\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert f"{path}:3" in err.value.message or f"{path}:2" in err.value.message


def test_config_file_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path, env={})


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", env={})


def test_secrets_are_masked(tmp_path):
    path = write(tmp_path, "postgres:\n  password: hunter2\n")
    masked = load_config(path, env={}).masked()
    assert masked["postgres"]["password"] == "********"
    assert masked["redis"]["password"] is None
    assert "hunter2" not in repr(masked)


def test_repository_default_config_is_valid():
    repo_config = Path(__file__).resolve().parents[2] / "fraudctl.yaml"
    config = load_config(repo_config, env={})
    assert config.source == repo_config


def test_shifted_config_moves_every_port_and_keeps_state_apart(tmp_path):
    path = write_shifted_config(tmp_path, 100, redis={"port": 7000}, runtime={"stop_timeout": 20})
    config = load_config(path, env={})
    assert (config.runtime.kind, config.state_dir, config.runtime.stop_timeout) == ("native", tmp_path / ".fraudctl", 20)
    defaults = config_ports()
    assert "kafka" in defaults and "controller_port" in defaults["kafka"]
    shifted = {name: {key: port + 100 for key, port in ports.items()} for name, ports in defaults.items()}
    shifted["redis"] = {"port": 7000}
    assert config_ports(config) == shifted
