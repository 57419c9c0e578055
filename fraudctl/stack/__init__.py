"""The runtimes that run the stack: `native` (local processes) and `compose` (docker compose)."""

from __future__ import annotations

from fraudctl.config import Config
from fraudctl.stack.base import Runtime


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


_resolved: dict[tuple, str] = {}  # auto's answer, once per process (a Docker ping costs up to 2 s)


def active_kind(config: Config) -> str:
    """`native` or `compose`: the configured runtime, with `auto` meaning compose when a Docker engine answers
    and no native stack runs from the state dir. Every host command that needs an endpoint or a secret of
    the stack asks this, so one command works against either stack."""
    kind = config.runtime.kind
    if kind != "auto":
        return kind
    import os

    key = (str(config.state_dir), os.environ.get("DOCKER_HOST"), os.environ.get("DOCKER_CONTEXT"))
    if key not in _resolved:
        from fraudctl.stack.supervisor import Supervisor

        native_running = Supervisor(config.state_dir).is_running()
        _resolved[key] = "native" if native_running or not docker_engine_answers() else "compose"
    return _resolved[key]


def get_runtime(config: Config) -> Runtime:
    """The active runtime (`active_kind`)."""
    if active_kind(config) == "compose":
        from fraudctl.stack.compose import ComposeRuntime

        return ComposeRuntime(config)
    from fraudctl.stack.native import NativeRuntime

    return NativeRuntime(config)
