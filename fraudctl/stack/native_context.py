"""What every native service definition is made of: the service (its supervisor program, endpoint, ports,
probe, preparation) and the context it is built in (config, secrets, tools, the state dir's folders)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fraudctl.config import Config, StorageConfig
from fraudctl.stack import table
from fraudctl.stack.base import filled_storage, published_storage_url
from fraudctl.stack.prereqs import Tools
from fraudctl.stack.secrets import Secrets
from fraudctl.stack.supervisor import Program


@dataclass
class NativeService:
    name: str
    endpoint: str
    ports: list[tuple[str, int]]
    program: Program
    probe: Callable[[], str]  # raises UnavailableError until healthy
    depends_on: list[str] = field(default_factory=list)
    prepare: Callable[[], None] = lambda: None
    after_healthy: Callable[[], None] = lambda: None
    owned_dirs: list[Path] = field(default_factory=list)  # deleted by `down --purge`
    on_demand: bool = False  # started by its own command (`scorer start`), not by `up`; stopped by `down`


@dataclass
class NativeContext:
    config: Config
    secrets: Secrets
    tools: Tools | None  # None when only inspecting (status, logs, down)

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir

    @property
    def storage(self) -> "StorageConfig":
        """The object store every service reaches: the objectstore's endpoint and keys when it is the store."""
        if not runs_objectstore(self.config):
            return self.config.storage
        return filled_storage(self.config, published_storage_url(self.config), self.secrets)

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def conf_dir(self) -> Path:
        return self.state_dir / "conf"

    @property
    def venv_bin(self) -> Path:
        return Path(sys.executable).parent

    def program(self, name: str, command: list[str], directory: Path | None = None, **kwargs) -> Program:
        return Program(name=name, command=command, log_file=self.log_dir / f"{name}.log",
                       directory=directory or self.state_dir, stop_wait_seconds=self.config.runtime.stop_timeout,
                       **kwargs)


def runs_objectstore(config: Config) -> bool:
    """Whether the native stack runs its own S3 server (S3Proxy, the `objectstore` service): S3 storage with
    no endpoint configured, unless `storage.objectstore: false` (a null endpoint then means AWS)."""
    storage = config.storage
    return storage.kind == "s3" and storage.endpoint_url is None and storage.objectstore


def table_service(ctx: "NativeContext", name: str, *, program: Program, probe: Callable[[], str],
                  extra_ports: tuple[tuple[str, int], ...] = (), **options) -> NativeService:
    """A native service of the stack's table: its name, endpoint and published port come from
    fraudctl.stack.table; `extra_ports` are further ports it listens on (checked free before `up`)."""
    return NativeService(name=name, endpoint=table.endpoint(ctx.config, name),
                         ports=[table.address(ctx.config, name), *extra_ports], program=program, probe=probe,
                         **options)
