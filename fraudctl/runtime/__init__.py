"""The runtimes that run the stack: `native` (local processes) and `compose` (docker compose)."""

from __future__ import annotations

from fraudctl.config import Config
from fraudctl.runtime.base import Runtime


def docker_engine_answers(timeout: float = 2.0) -> bool:
    try:
        import docker

        docker.from_env(timeout=timeout).ping()
        return True
    except Exception:
        return False


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
