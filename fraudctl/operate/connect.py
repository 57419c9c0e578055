"""Clients of the stack's services with the credentials the active runtime holds: what a host command that
talks to Airflow or Flower builds, whichever runtime started the stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraudctl.clients.airflow import AirflowClient
    from fraudctl.clients.airflow_rest import AirflowReader
    from fraudctl.clients.flower import FlowerClient
    from fraudctl.config import Config


def airflow_client(config: "Config") -> "AirflowClient":
    """Airflow's REST API as the stack's admin; UnavailableError when no stack was started here."""
    from fraudctl.retraining.trigger import client
    from fraudctl.stack import get_runtime

    return client(config, get_runtime(config).require_secrets().airflow_admin_password)


def airflow_reader(config: "Config", timeout: float = 10.0) -> "AirflowReader":
    """The narrow stdlib reader of Airflow's REST API as the stack's admin (what `fraudctl status` reads,
    without the generated client's 1.7 s import); UnavailableError when no stack was started here."""
    from fraudctl.clients.airflow_rest import AirflowReader
    from fraudctl.stack import get_runtime

    return AirflowReader(config.airflow, get_runtime(config).require_secrets().airflow_admin_password,
                         timeout=timeout)


def flower_client(config: "Config", **options: Any) -> "FlowerClient":
    """Flower's API with its basic-auth password; UnavailableError when no stack was started here."""
    from fraudctl.clients.flower import FlowerClient
    from fraudctl.stack import get_runtime

    return FlowerClient(config.flower, get_runtime(config).require_secrets().flower_password, **options)


def rule_store(config: "Config"):
    """The rule store (fraudctl.rules.store) in the stack's PostgreSQL, as its application user."""
    from fraudctl.rules.store import PostgresRuleStore
    from fraudctl.stack import get_runtime

    return PostgresRuleStore(config.postgres, get_runtime(config).require_secrets().postgres_password)
