"""The runtimes that run the stack: `native` (local processes) and `compose` (docker compose)."""

from __future__ import annotations

from fraudctl.config import Config
from fraudctl.stack.base import Runtime
from fraudctl.stack.engine import docker_engine_answers


_resolved: dict[tuple, str] = {}  # auto's answer, once per process (a Docker ping costs up to 2 s)


def active_kind(config: Config) -> str:
    """`native` or `compose`: the configured runtime, with `auto` meaning compose when a Docker engine answers
    and no native stack runs from the state dir. Only `get_runtime` asks; everything else asks the runtime."""
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


def get_runtime(config: Config, *, build: bool = False) -> Runtime:
    """The active runtime (`active_kind`), resolved once per command and asked for what differs between
    runtimes (secrets, storage, timeouts); `build`: rebuild what the runtime builds before starting."""
    if active_kind(config) == "compose":
        from fraudctl.stack.compose import ComposeRuntime

        return ComposeRuntime(config, build=build)
    from fraudctl.stack.native import NativeRuntime

    return NativeRuntime(config, build=build)
