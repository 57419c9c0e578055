"""What both runtimes (native processes, docker compose) offer the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from fraudctl.config import Config, StorageConfig
    from fraudctl.stack.secrets import Secrets


@dataclass
class ServiceStatus:
    name: str
    state: str  # e.g. STOPPED, STARTING, RUNNING, FATAL, EXITED (supervisor's words) or compose's
    pid: int | None = None
    endpoint: str | None = None
    healthy: bool | None = None  # None: not probed (not running)
    detail: str = ""  # the probe's answer or its error
    uptime_seconds: float | None = None
    on_demand: bool = False  # started by its own command (the scorer): being stopped is not a fault

    @property
    def fine(self) -> bool:
        """Healthy, or an on-demand service that is simply not started."""
        return bool(self.healthy) or (self.on_demand and self.pid is None and self.healthy is None)

    def as_dict(self) -> dict:
        return asdict(self)


ProgressCallback = Callable[[list[ServiceStatus]], None]
MessageCallback = Callable[[str], None]  # a line for the operator (e.g. compose: "building fraudctl/python")


class Runtime(Protocol):
    """A runtime answers for its stack: callers ask it instead of branching on its name."""

    name: str
    build: bool  # rebuild what the runtime builds (compose: the images) before starting; native: nothing to build

    @property
    def start_timeout(self) -> float:
        """Seconds `up` waits for every service to be healthy when the command names none."""

    def secrets(self, *, create: bool = False) -> "Secrets | None":
        """The stack's secrets; generated and kept on first use when `create`, else None if never started."""

    def require_secrets(self) -> "Secrets":
        """The stack's secrets, or UnavailableError saying no stack was started here."""

    def storage(self) -> "StorageConfig":
        """The object store as the host reaches it: the stack's own S3 server with its generated keys when the
        config names no endpoint, else the configured storage as it is."""

    def storage_in_network(self) -> "StorageConfig":
        """The object store as services inside the stack (MLflow, the Airflow tasks, the scorer) reach it."""

    def check_storage(self) -> None:
        """Before work that stores objects: raise UnavailableError naming the stack's own store when it does
        not answer (an external S3 is left to its own errors: its keys may not allow the probe)."""

    def up(self, *, timeout: float, on_progress: ProgressCallback | None = None,
           on_message: MessageCallback | None = None) -> list[ServiceStatus]:
        """Start every service and wait until all are healthy; raise FraudctlError otherwise. `on_message`
        gets a line about long steps before the services start (compose: building the images)."""

    def down(self, *, purge: bool = False) -> None:
        """Stop every service (gracefully, then forcibly); with purge, delete the state too."""

    def status(self) -> list[ServiceStatus]: ...

    def logs(self, service: str, *, lines: int = 50, follow: bool = False) -> Iterator[str]: ...


class OnDemandServices(Protocol):
    """What both runtimes offer for a service `up` leaves alone (the scorer), so `fraudctl scorer` is one code
    path: natively a supervisord program, under compose a service of profile `scorer` inside the network."""

    name: str

    def job_config(self) -> dict:
        """The configuration (with its secrets) a job started by this runtime reads from its launch file."""

    def start_on_demand(self, name: str) -> object: ...

    def stop_service(self, name: str) -> None: ...

    def service_state(self, name: str) -> str:
        """In supervisor's words (RUNNING, STOPPED, EXITED, BACKOFF, FATAL) for either runtime."""

    def log_tail(self, name: str, lines: int = 30) -> str: ...


class Answers:
    """The Runtime protocol's answers both runtimes give the same way, from where each keeps its secrets
    (`secrets_location`, read by `secrets()`) and whether the storage is the stack's own S3 server."""

    config: "Config"
    secrets_location: "Path"

    def secrets(self, *, create: bool = False) -> "Secrets | None":
        raise NotImplementedError

    def own_store(self) -> bool:
        raise NotImplementedError

    def require_secrets(self) -> "Secrets":
        found = self.secrets()
        if found is None:
            from fraudctl.errors import UnavailableError

            raise UnavailableError(f"no stack has been started here ({self.secrets_location} does not exist)",
                                   hint="fraudctl up")
        return found

    def storage(self) -> "StorageConfig":
        if not self.own_store():
            return self.config.storage
        return filled_storage(self.config, published_storage_url(self.config), self.secrets())

    def check_storage(self) -> None:
        if self.own_store():
            from fraudctl.clients.objectstore import probe

            probe(self.storage())


def filled_storage(config: "Config", endpoint_url: str, secrets: "Secrets | None") -> "StorageConfig":
    """config.storage at the stack's own S3 server, with the keys the stack generated (when started)."""
    from pydantic import SecretStr

    update: dict = {"endpoint_url": endpoint_url}
    if secrets is not None:
        update["access_key_id"] = SecretStr(secrets.objectstore_access_key)
        update["secret_access_key"] = SecretStr(secrets.objectstore_secret_key)
    return config.storage.model_copy(update=update)


def published_storage_url(config: "Config") -> str:
    """Where the host reaches the stack's own S3 server (either runtime publishes it on storage.host:port)."""
    return f"http://{config.storage.host}:{config.storage.port}"
