import re
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import BaseModel

from fraudctl.config import Config, load_config
from fraudctl.errors import ConfigError, ExitCode
from bench.support import config_ports, write_shifted_config


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


REPO = Path(__file__).resolve().parents[2]
REPO_CONFIG = REPO / "fraudctl.yaml"


def test_repository_default_config_is_valid():
    config = load_config(REPO_CONFIG, env={})
    assert config.source == REPO_CONFIG


def config_leaves(model: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of every field, descending into sections (a dict-valued field is one key)."""
    found: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        if info.exclude:  # Config.source: where the values came from, not a key
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            found.update(config_leaves(value, f"{prefix}{name}."))
        else:
            found[prefix + name] = value
    return found


def file_keys(data: dict[str, Any], model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted keys written in a config file, descending where the model has a section."""
    keys = set()
    for name, value in data.items():
        info = model.model_fields.get(name)
        section = info.annotation if info else None
        if isinstance(value, dict) and isinstance(section, type) and issubclass(section, BaseModel):
            keys |= file_keys(value, section, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def test_repository_config_lists_every_key_with_its_default():
    """fraudctl.yaml claims to show every key with its default: it must follow Config both ways."""
    data = yaml.safe_load(REPO_CONFIG.read_text())
    defaults = config_leaves(Config())
    written = file_keys(data, Config)
    missing, unknown = sorted(set(defaults) - written), sorted(written - set(defaults))
    assert not missing, f"keys of Config missing from fraudctl.yaml: {missing}"
    assert not unknown, f"keys in fraudctl.yaml that Config does not have: {unknown}"
    shown = config_leaves(Config.model_validate(data))
    differ = {key: (shown[key], value) for key, value in defaults.items() if shown[key] != value}
    assert not differ, f"fraudctl.yaml shows values other than the defaults (shown, default): {differ}"


def test_config_keys_named_in_the_readme_exist():
    defaults = config_leaves(Config())
    sections = set(Config.model_fields)
    named = {m.group(1) for m in re.finditer(r"`([a-z_]+(?:\.[a-z_]+)+)", (REPO / "README.md").read_text())
             if m.group(1).split(".")[0] in sections}
    unknown = sorted(key for key in named if not any(k == key or k.startswith(key + ".") for k in defaults))
    assert named and not unknown, f"README names config keys Config does not have: {unknown}"


def test_shifted_config_moves_every_port_and_keeps_state_apart(tmp_path):
    path = write_shifted_config(tmp_path, 100, redis={"port": 7000}, runtime={"stop_timeout": 20})
    config = load_config(path, env={})
    assert (config.runtime.kind, config.state_dir, config.runtime.stop_timeout) == ("native", tmp_path / ".fraudctl", 20)
    defaults = config_ports()
    assert "kafka" in defaults and "controller_port" in defaults["kafka"]
    shifted = {name: {key: port + 100 for key, port in ports.items()} for name, ports in defaults.items()}
    shifted["redis"] = {"port": 7000}
    assert config_ports(config) == shifted


@pytest.mark.parametrize("command", ["up", "down", "status", "logs"])
def test_runtime_flag_offers_exactly_the_config_choices(command, capfd):
    """--runtime is checked against runtime.kind's values before any config is read."""
    from fraudctl.choices import RUNTIME_KINDS
    from fraudctl.cli import run
    from fraudctl.config import RuntimeConfig

    assert RUNTIME_KINDS == ("auto", "native", "compose") == get_args(RuntimeConfig.model_fields["kind"].annotation)
    assert run([command, "--runtime", "kubernetes"]) == ExitCode.USAGE
    error = capfd.readouterr().err
    assert all(repr(kind) in error for kind in RUNTIME_KINDS), error
