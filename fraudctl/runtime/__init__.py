"""The runtimes that run the stack: `native` (local processes) and `compose` (docker compose)."""

from __future__ import annotations

from fraudctl.config import Config
from fraudctl.runtime.base import Runtime


def docker_engine_problem(timeout: float = 2.0) -> str | None:
    """Why the Docker engine of the SDK's environment (DOCKER_HOST, else the default socket) does not
    answer a ping, or None when it does."""
    try:
        import docker

        docker.from_env(timeout=timeout).ping()
        return None
    except Exception as exc:  # the SDK raises DockerException, requests' and OS errors alike
        return str(exc)


def docker_engine_answers(timeout: float = 2.0) -> bool:
    return docker_engine_problem(timeout) is None


def get_runtime(config: Config) -> Runtime:
    """The configured runtime; `auto` means compose when a Docker engine answers and no native stack runs."""
    kind = config.runtime.kind
    if kind == "auto":
        from fraudctl.runtime.supervisor import Supervisor

        native_running = Supervisor(config.state_dir).is_running()
        kind = "native" if native_running or not docker_engine_answers() else "compose"
    if kind == "compose":
        from fraudctl.runtime.compose import ComposeRuntime

        return ComposeRuntime(config)
    from fraudctl.runtime.native import NativeRuntime

    return NativeRuntime(config)
