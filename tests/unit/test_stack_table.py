"""The one table of the stack's services (fraudctl.stack.table) agrees with what both runtimes run: the
services of stack/compose.yaml, their published ports and in-network addresses, and the native runtime's
service definitions. Every other module takes these facts from the table, so this is the one test of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fraudctl.config import Config, env_name
from fraudctl.stack import table

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "stack" / "compose.yaml"
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z0-9_]+)(:[-?])([^}]*)\}")


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def test_compose_runs_exactly_the_tables_compose_services(services):
    assert set(services) == {s.name for s in table.for_runtime(table.COMPOSE)}
    assert {n for n, s in services.items() if s.get("profiles")} == \
        {s.name for s in table.for_runtime(table.COMPOSE) if s.on_demand}
    assert {n for n, s in services.items() if s.get("restart") == "no"} == \
        {s.name for s in table.for_runtime(table.COMPOSE) if s.one_shot}


def test_compose_publishes_the_ports_the_table_names(services):
    for row in table.for_runtime(table.COMPOSE):
        published = []
        for port in services[row.name].get("ports", []):
            host_ip, host_port, _ = VARIABLE.sub(lambda m: f"<{m.group(1)}>", port).split(":")
            published.append((host_ip, host_port))
        expected = [(f"<{env_name(host)}>" if host else table.LOOPBACK, f"<{env_name(port)}>")
                    for port, host in row.published]
        assert published == expected, row.name


def test_containers_reach_each_service_where_the_table_says(services):
    for row in table.SERVICES:
        if row.network is None:
            continue
        host, port = row.network
        assert host == row.name and host in services, row.name
        # The port is the one the container listens on: named in its ports, listeners or health check.
        text = yaml.safe_dump(services[host])
        assert re.search(rf"(?<![0-9]){port}(?![0-9])", text), f"{row.name} does not listen on {port}"
    assert table.in_network()["airflow"] == (table.AIRFLOW_APISERVER, 8080)
    assert table.network_url(table.OBJECTSTORE) == "http://objectstore:9000"


def test_the_native_runtime_runs_the_tables_native_services(tmp_path):
    from fraudctl.stack.native_context import NativeContext
    from fraudctl.stack.native import NativeRuntime
    from fraudctl.stack.services import build_services

    config = Config.model_validate({"runtime": {"state_dir": str(tmp_path)}, "spark": {"standalone": True}})
    built = build_services(NativeContext(config, NativeRuntime(config).secrets(create=True), None))
    assert [s.name for s in built] == [s.name for s in table.for_runtime(table.NATIVE)]
    assert {s.name for s in built if s.on_demand} == {s.name for s in table.SERVICES if s.on_demand}
    by_name = {s.name: s for s in built}
    for row in table.for_runtime(table.NATIVE):
        if not row.published:
            continue
        assert table.address(config, row.name) in by_name[row.name].ports, row.name
        if row.name != table.SPARK_MASTER:  # the master's endpoint is its spark:// URL, its UI is published
            assert by_name[row.name].endpoint.startswith(table.endpoint(config, row.name)), row.name


def test_endpoints_and_ui_links_follow_the_config():
    config = Config.model_validate({"mlflow": {"port": 15000}, "spark": {"ui_port": 14040}})
    assert table.endpoint(config, table.MLFLOW) == "http://127.0.0.1:15000" == config.mlflow.tracking_uri
    assert table.endpoint(config, table.KAFKA) == f"kafka://{config.kafka.bootstrap_servers}"
    assert table.ui_urls(config) == {"mlflow": "http://127.0.0.1:15000", "airflow": config.airflow.url,
                                     "flower": config.flower.url, "spark (scorer driver)": "http://127.0.0.1:14040"}
    standalone = Config.model_validate({"spark": {"standalone": True}})
    assert list(table.ui_urls(standalone))[-1] == "spark (master)"
