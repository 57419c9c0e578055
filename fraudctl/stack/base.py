"""What both runtimes (native processes, docker compose) offer the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Protocol


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


class Runtime(Protocol):
    name: str

    def up(self, *, timeout: float, on_progress: ProgressCallback | None = None) -> list[ServiceStatus]:
        """Start every service and wait until all are healthy; raise FraudctlError otherwise."""

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
