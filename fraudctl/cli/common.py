"""What every command shares: the lazily loaded config, the --output option, and rendering helpers.

Command modules import only this, typer and rich at module level; core modules (and heavy libraries)
are imported inside the command functions so that `fraudctl --help` stays fast.
"""

from __future__ import annotations

import enum
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from fraudctl.config import Config


class OutputFormat(str, enum.Enum):
    text = "text"
    json = "json"


class FileFormat(str, enum.Enum):
    csv = "csv"
    parquet = "parquet"


class PresetName(str, enum.Enum):
    """Column layouts of input files (fraudctl.replay.PRESETS), shared by `replay` and `train`."""

    auto = "auto"
    generator = "generator"
    ulb = "ulb"
    sparkov = "sparkov"


class TimeFormat(str, enum.Enum):
    """How tx_datetime is written in an input file."""

    auto = "auto"
    iso = "iso"
    epoch_s = "epoch_s"
    epoch_ms = "epoch_ms"
    offset = "offset"


OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="text for people, json for scripts (one JSON document on stdout)."),
]


@dataclass
class AppState:
    """Set by the root callback, reached by commands through `state(ctx)`."""

    config_path: Path | None = None
    debug: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    _config: "Config | None" = None

    def config(self, **overrides: Any) -> "Config":
        """The validated config; `overrides` are this command's flags as dotted keys."""
        from fraudctl.config import load_config

        merged = {**self.overrides, **{k: v for k, v in overrides.items() if v is not None}}
        if self._config is None or merged != self.overrides:
            self._config = load_config(self.config_path, overrides=merged)
            self.overrides = merged
        return self._config


def state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


# Piped output is not cut at rich's default of 80 columns: logs and CI consoles are wide.
PIPE_WIDTH = 160


def stdout_console() -> Console:
    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else PIPE_WIDTH)


def stderr_console() -> Console:
    return Console(file=sys.stderr, stderr=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def format_number(value: Any) -> str:
    """A table cell: 4 decimals for metrics, thousands separators for counts, "-" for missing."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_warnings(console: Console, warnings: list[str]) -> None:
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
