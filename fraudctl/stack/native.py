"""The native runtime: the stack's services as local processes under supervisord, state in one folder."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Iterator

from fraudctl.config import Config
from fraudctl.errors import (NotFoundError, PortInUseError, ServiceFailedError, UnavailableError,
                             WaitTimeoutError)
from fraudctl.stack.base import Answers, MessageCallback, ProgressCallback, ServiceStatus
from fraudctl.stack.provision import provision
from fraudctl.stack.secrets import SECRETS_FILE, Secrets, load_file
from fraudctl.stack.native_context import NativeContext, NativeService, runs_objectstore
from fraudctl.stack.services import build_services
from fraudctl.stack.supervisor import BACKOFF, DOWN_STATES, EXITED, FATAL, RUNNING, STOPPED, Supervisor, tail

POLL_SECONDS = 0.5
LOG_TAIL_LINES = 25


class NativeRuntime(Answers):
    name = "native"

    def __init__(self, config: Config, *, build: bool = False):
        self.config = config
        self.build = build  # nothing is built natively: the processes run from the venv and Maven's jars
        self.supervisor = Supervisor(config.state_dir)
        self.secrets_location = config.state_dir / SECRETS_FILE

    # --- what callers ask instead of branching on the runtime's name (and Answers) --------------------------
    @property
    def start_timeout(self) -> float:
        return self.config.runtime.start_timeout

    def secrets(self, *, create: bool = False) -> Secrets | None:
        return load_file(self.secrets_location, self.config, create=create)

    def own_store(self) -> bool:
        return runs_objectstore(self.config)

    def storage_in_network(self):
        return self.storage()  # every service is a process on this host

    def _services(self, tools=None, create_secrets: bool = False) -> list[NativeService]:
        secrets = self.secrets(create=create_secrets)
        if secrets is None:  # never started here: nothing to inspect
            return []
        return build_services(NativeContext(self.config, secrets, tools))

    # --- up ------------------------------------------------------------------------------------------------
    def up(self, *, timeout: float, on_progress: ProgressCallback | None = None,
           on_message: MessageCallback | None = None) -> list[ServiceStatus]:
        from fraudctl.stack.prereqs import check_native

        tools = check_native()
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        every = self._services(tools, create_secrets=True)
        services = [s for s in every if not s.on_demand]
        daemon_was_running = self.supervisor.is_running()
        running = {s.name for s in services if daemon_was_running and self._state(s.name) == RUNNING}
        _check_ports(self.config, [s for s in services if s.name not in running])

        self.supervisor.write_config([s.program for s in every])
        if daemon_was_running:
            self.supervisor.reload()
        else:
            self.supervisor.start_daemon()

        started: list[NativeService] = []
        try:
            statuses = self._start_and_wait(services, started, timeout, on_progress)
            provision(self.config, self.storage() if self.own_store() else None)
            return statuses
        except BaseException:
            # Nothing half-started stays behind: stop what this `up` started, and the daemon if idle.
            for service in reversed(started):
                self._stop_quietly(service.name)
            if not any(self._state(s.name) == RUNNING for s in services):
                self.supervisor.shutdown(self.config.runtime.stop_timeout)
            raise

    def _start_and_wait(self, services, started, timeout, on_progress) -> list[ServiceStatus]:
        deadline = time.monotonic() + timeout
        healthy: set[str] = set()
        detail: dict[str, str] = {}

        def report() -> list[ServiceStatus]:
            statuses = [self._status(s, healthy=(s.name in healthy), detail=detail.get(s.name, "")) for s in services]
            if on_progress:
                on_progress(statuses)
            return statuses

        while True:
            for service in services:
                if service.name in healthy:
                    continue
                state = self._state(service.name)
                is_ours = service in started
                if state in DOWN_STATES and not is_ours:
                    if all(dep in healthy for dep in service.depends_on):
                        detail[service.name] = "preparing"
                        report()
                        service.prepare()
                        detail[service.name] = "starting"
                        self.supervisor.start(service.name)
                        started.append(service)
                    else:
                        detail[service.name] = "waiting for " + ", ".join(service.depends_on)
                elif state in (FATAL, EXITED, BACKOFF, STOPPED) and is_ours:
                    info = self.supervisor.info(service.name)
                    raise ServiceFailedError(
                        f"{service.name} exited while starting ({info.get('description') or state})",
                        detail=f"last lines of {service.program.log_file}:\n" + tail(service.program.log_file, LOG_TAIL_LINES),
                        hint=f"fraudctl logs {service.name}",
                    )
                elif state == RUNNING:
                    try:
                        detail[service.name] = service.probe()
                    except UnavailableError as exc:
                        detail[service.name] = exc.message
                    else:
                        service.after_healthy()
                        healthy.add(service.name)
            statuses = report()
            if len(healthy) == len(services):
                _record_pids(self.supervisor, statuses)
                return statuses
            if time.monotonic() > deadline:
                waiting = [s for s in services if s.name not in healthy]
                raise WaitTimeoutError(
                    f"not healthy after {timeout:.0f}s: " + ", ".join(s.name for s in waiting),
                    detail="\n\n".join(
                        f"{s.name}: {detail.get(s.name, '')}\nlast lines of {s.program.log_file}:\n"
                        + tail(s.program.log_file, LOG_TAIL_LINES) for s in waiting),
                    hint="raise --timeout, or look at `fraudctl logs SERVICE`",
                )
            time.sleep(POLL_SECONDS)

    # --- down ----------------------------------------------------------------------------------------------
    def down(self, *, purge: bool = False) -> None:
        services = self._services()
        pids = _stack_pids(self.supervisor)
        if self.supervisor.is_running():
            self._stop_in_levels(services)
            self.supervisor.shutdown(self.config.runtime.stop_timeout)
        _terminate(pids, self.config.runtime.stop_timeout, self.config.runtime.kill_timeout)
        if purge:
            for service in services:
                for folder in service.owned_dirs:
                    shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(self.config.state_dir, ignore_errors=True)

    def _stop_in_levels(self, services: list[NativeService]) -> None:
        """Dependents first, each level's services stopped together (supervisor SIGKILLs after stop_timeout)."""
        by_name = {s.name: s for s in services}
        depth: dict[str, int] = {}

        def level(service: NativeService) -> int:
            if service.name not in depth:
                depth[service.name] = 1 + max((level(by_name[d]) for d in service.depends_on), default=-1)
            return depth[service.name]

        runtime = self.config.runtime
        for current in sorted({level(s) for s in services}, reverse=True):
            names = [s.name for s in services if depth[s.name] == current]
            for name in names:
                self._stop_quietly(name, wait=False)
            deadline = time.monotonic() + runtime.stop_timeout + runtime.kill_timeout
            while time.monotonic() < deadline and any(self._state(n) not in DOWN_STATES for n in names):
                time.sleep(0.2)

    def _stop_quietly(self, name: str, wait: bool = True) -> None:
        try:
            self.supervisor.stop(name, wait)
        except Exception:
            pass  # down goes on; the pid sweep afterwards kills what did not stop

    # --- on-demand services (the scorer) --------------------------------------------------------------------
    def service(self, name: str) -> NativeService:
        found = {s.name: s for s in self._services()}
        if not found:
            raise UnavailableError(f"no stack has been started from {self.config.state_dir}", hint="fraudctl up")
        if name not in found:
            raise NotFoundError(f"no service named {name!r}")
        return found[name]

    def start_on_demand(self, name: str) -> NativeService:
        """Start a service `up` leaves alone, once the stack's daemon runs and the service's dependencies
        are up; the program is (re)registered first, so a stack started by an older fraudctl learns it."""
        service = self.service(name)
        if not self.supervisor.is_running():
            raise UnavailableError("the stack is not running", hint="fraudctl up")
        down = [d for d in service.depends_on if self._state(d) != RUNNING]
        if down:
            raise UnavailableError(f"{name} needs {', '.join(down)}, which is not running", hint="fraudctl up")
        if self._state(name) != RUNNING:
            self.supervisor.write_config([s.program for s in self._services()])
            self.supervisor.reload_only({name})
            _check_ports(self.config, [service])
            self.supervisor.start(name)
        return service

    def job_config(self) -> dict:
        """The configuration a job started by this runtime (the scorer) reads: as given, with its secrets and
        the storage it reaches (the objectstore's endpoint and keys filled in)."""
        from fraudctl.stack.secrets import config_with_secrets

        bound = self.config.model_copy(update={"storage": self.storage_in_network()})
        return config_with_secrets(bound, self.require_secrets())

    def log_tail(self, name: str, lines: int = 30) -> str:
        return tail(self.service(name).program.log_file, lines)

    def stop_service(self, name: str) -> None:
        self.service(name)
        if self.supervisor.is_running():
            self.supervisor.stop(name, wait=True)

    def service_state(self, name: str) -> str:
        return self._state(name) if self.supervisor.is_running() else STOPPED

    # --- status and logs -----------------------------------------------------------------------------------
    def status(self) -> list[ServiceStatus]:
        services = self._services()
        daemon = self.supervisor.is_running()
        states = {s.name: self._state(s.name) if daemon else STOPPED for s in services}
        answers = _probe_all([s for s in services if states[s.name] == RUNNING])
        statuses = []
        for service in services:
            state = states[service.name]
            healthy, detail = answers.get(service.name, (None, ""))
            status = self._status(service, healthy=healthy, detail=detail, state=state)
            status.on_demand = service.on_demand
            if service.on_demand and state in DOWN_STATES and not detail:
                status.detail = f"not started (fraudctl {service.name} start)"
            statuses.append(status)
        if daemon:
            _record_pids(self.supervisor, statuses)  # supervisord may have restarted a service since `up`
        return statuses

    def logs(self, service: str, *, lines: int = 50, follow: bool = False) -> Iterator[str]:
        names = [s.name for s in self._services()] or ["postgres", "redis", "kafka", "mlflow"]
        if service not in names + ["supervisord"]:
            raise NotFoundError(f"no service named {service!r}; services: {', '.join(names)}")
        path = self.config.state_dir / "logs" / f"{service}.log"
        if not path.exists():
            raise NotFoundError(f"no log yet for {service} ({path}); has `fraudctl up` run here?")
        yield from tail(path, lines).splitlines()
        if follow:
            with open(path, "r", errors="replace") as fh:
                fh.seek(0, os.SEEK_END)
                while True:
                    line = fh.readline()
                    if line:
                        yield line.rstrip("\n")
                    else:
                        time.sleep(0.25)

    # --- helpers -------------------------------------------------------------------------------------------
    def _state(self, name: str) -> str:
        try:
            return self.supervisor.info(name)["statename"]
        except Exception:
            return STOPPED

    def _status(self, service: NativeService, *, healthy: bool | None, detail: str, state: str | None = None) -> ServiceStatus:
        return _service_status(self.supervisor, service, healthy=healthy, detail=detail, state=state)


def _probe_all(services: list[NativeService]) -> dict[str, tuple[bool, str]]:
    """Every service's probe at once, each (healthy, its answer or error): a status costs its slowest probe,
    not their sum (the Celery ping alone waits for its reply over the broker)."""
    from concurrent.futures import ThreadPoolExecutor

    def probe(service: NativeService) -> tuple[bool, str]:
        try:
            return True, service.probe()
        except UnavailableError as exc:
            return False, exc.message

    if not services:
        return {}
    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        return dict(zip((s.name for s in services), pool.map(probe, services)))


def _check_ports(config: Config, services: list[NativeService]) -> None:
    for service in services:
        for host, port in service.ports:
            if _port_taken(host, port):
                raise PortInUseError(
                    f"port {port} on {host}, needed by {service.name}, is already in use{_who_listens(port)}",
                    hint=f"stop that program, or give {service.name} another port: {_port_setting(config, port)}",
                )


def _service_status(supervisor: Supervisor, service: NativeService, *, healthy: bool | None, detail: str,
                    state: str | None = None) -> ServiceStatus:
    """A service's status from supervisord's view of its program and the probe's answer."""
    info: dict = {}
    try:
        info = supervisor.info(service.name)
    except Exception:
        pass
    state = state or info.get("statename", STOPPED)
    running = state == RUNNING
    return ServiceStatus(
        name=service.name,
        state=state,
        pid=(info.get("pid") or None) if running else None,
        endpoint=service.endpoint,
        healthy=healthy if running else None,
        detail=detail,
        uptime_seconds=float(info["now"] - info["start"]) if running and info.get("start") else None,
    )


def _pids_file(supervisor: Supervisor) -> Path:
    return supervisor.run_dir / "services.json"


def _record_pids(supervisor: Supervisor, statuses: list[ServiceStatus]) -> None:
    """Remember each service's pid and start time, for a `down` after supervisord itself died."""
    import json

    import psutil

    recorded = {}
    for status in statuses:
        try:
            recorded[status.name] = [status.pid, psutil.Process(status.pid).create_time()]
        except (psutil.Error, TypeError, ValueError):
            pass
    _pids_file(supervisor).write_text(json.dumps(recorded))


def _stack_pids(supervisor: Supervisor) -> list[int]:
    """supervisord and every service with all their descendants. Services are found from supervisord
    and, should it have died and left them as orphans, from the pids `up` recorded (a pid counts only
    while its start time matches, so a reused pid is never killed)."""
    import json

    import psutil

    roots = []
    if supervisor.is_running():
        roots.append(supervisor.daemon_pid())
    try:
        recorded = json.loads(_pids_file(supervisor).read_text())
    except (OSError, ValueError):
        recorded = {}
    for pid, started in recorded.values():
        try:
            if abs(psutil.Process(pid).create_time() - started) < 1:
                roots.append(pid)
        except psutil.Error:
            pass
    pids = set()
    for pid in filter(None, roots):
        try:
            pids |= {pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))}
        except psutil.Error:
            pass
    pids.discard(os.getpid())
    return sorted(pids)


def _port_setting(config: Config, port: int) -> str:
    """Which setting holds a port, and its environment variable (e.g. storage.port, FRAUDCTL_STORAGE__PORT)."""
    from fraudctl.config import env_name

    for section_name in type(config).model_fields:
        section = getattr(config, section_name)
        for key in getattr(type(section), "model_fields", {}):
            if (key == "port" or key.endswith("_port")) and getattr(section, key) == port:
                dotted = f"{section_name}.{key}"
                return f"{dotted} in fraudctl.yaml, or {env_name(dotted)}"
    return "its port setting in fraudctl.yaml (`fraudctl config show` lists them)"


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def _who_listens(port: int) -> str:
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                return f" (by {proc.name()}, pid {conn.pid})"
    except Exception:
        pass
    return ""


def _terminate(pids: list[int], graceful: float, forced: float) -> None:
    """SIGTERM what is left of the stack, then SIGKILL after `graceful` seconds."""
    import psutil

    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            pass
    alive = [p for p in procs if p.is_running()]
    for proc in alive:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=graceful if alive else 0)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=forced)
