"""A port taken by another program: `up`'s hint names the setting that moves it and its variable."""

from fraudctl.config import Config
from fraudctl.stack.native import _port_setting


def test_the_hint_names_the_setting_and_its_variable():
    config = Config()
    assert _port_setting(config, config.storage.port) == "storage.port in fraudctl.yaml, or FRAUDCTL_STORAGE__PORT"
    assert _port_setting(config, config.spark.ui_port).endswith("FRAUDCTL_SPARK__UI_PORT")
    assert _port_setting(config, config.airflow.triggerer_log_port).startswith("airflow.triggerer_log_port")
    assert "config show" in _port_setting(config, 1)
