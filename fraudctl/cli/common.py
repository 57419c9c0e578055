"""What every command shares: the lazily loaded config, config-bound options, the --output option, and
rendering helpers.

Command modules import only this, typer and rich at module level; core modules (and heavy libraries)
are imported inside the command functions so that `fraudctl --help` stays fast.
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer
from rich.console import Console

from fraudctl.choices import FILE_FORMATS, PRESET_NAMES, TIME_FORMATS

if TYPE_CHECKING:
    from fraudctl.config import Config
    from fraudctl.data.layout import InputLayout


class OutputFormat(str, enum.Enum):
    text = "text"
    json = "json"


# Input layouts (fraudctl.data.layout), shared by `replay` and `train`: the same tuples type the config.
FileFormat = enum.Enum("FileFormat", [(name, name) for name in FILE_FORMATS], type=str)
PresetName = enum.Enum("PresetName", [(name, name) for name in PRESET_NAMES], type=str)
TimeFormat = enum.Enum("TimeFormat", [(name, name) for name in TIME_FORMATS], type=str)


# Options whose default is a config key: {option: dotted key} of those `command_config` passes as overrides.
_OVERRIDES: dict[Any, str] = {}


def config_option(key: str, *param_decls: str, help: str, fallback: str | None = None, override: bool = True,
                  **kwargs: Any) -> Any:
    """A typer.Option whose default is config key `key`: the parameter defaults to None (the config decides)
    and the help ends with the key, e.g. "(default: config replay.max_errors, 0)", `fallback` naming what
    applies when the key is unset. With `override` (the usual case) `command_config` passes the given value
    as the key's override; without, the command hands the value to a core function that falls back to the
    key itself."""
    default = f"{key}, {fallback}" if fallback else key
    option = typer.Option(*param_decls, help=f"{help} (default: config {default})", show_default=False, **kwargs)
    if override:
        _OVERRIDES[option] = key
    return option


def config_overrides(ctx: typer.Context) -> dict[str, Any]:
    """The config-bound options of the running command (see `config_option`) as {dotted key: value given};
    an option not given is None, which leaves the key to the file, FRAUDCTL_* or the default."""
    keys = _override_keys(ctx.command.callback)
    return {key: _plain(ctx.params.get(name)) for name, key in keys.items()}


@functools.lru_cache(maxsize=None)
def _override_keys(callback: Callable[..., Any] | None) -> dict[str, str]:
    """{parameter name: config key} from the command function's Annotated options."""
    if callback is None:
        return {}
    hints = typing.get_type_hints(inspect.unwrap(callback), include_extras=True)
    return {name: _OVERRIDES[meta] for name, hint in hints.items() for meta in getattr(hint, "__metadata__", ())
            if meta in _OVERRIDES}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def command_config(ctx: typer.Context) -> "Config":
    """The validated config with the running command's config-bound options as overrides."""
    return state(ctx).config(**config_overrides(ctx))


# The layout options of every command that reads an input file (`replay`, `train --data`).
PresetOption = Annotated[Optional[PresetName], config_option(
    "layout.preset", "--preset", case_sensitive=False, fallback="auto",
    help="Column layout: generator (fraudctl generate), ulb (Time,V1..V28,Amount,Class), sparkov "
         "(trans_date_trans_time,cc_num,merchant,amt,is_fraud), or auto: recognised from the header.")]
MapOption = Annotated[Optional[list[str]], typer.Option(
    "--map", "-m", metavar="SOURCE=FIELD",
    help="Map a source column to a field (transaction_id, tx_datetime, customer_id, terminal_id, amount, "
         "is_fraud), over the preset and layout.columns; SOURCE= ignores a column. Repeatable, e.g. "
         "--map TX_FRAUD=is_fraud.")]
TimeFormatOption = Annotated[Optional[TimeFormat], config_option(
    "layout.time_format", "--time-format", case_sensitive=False, fallback="else the preset's, else auto",
    help="How tx_datetime is written: iso, epoch_s, epoch_ms, offset (seconds after --start), or auto.")]
StartOption = Annotated[Optional[str], config_option(
    "layout.start", "--start", metavar="DATETIME", fallback="else the preset's",
    help="Origin of offset times, ISO-8601 (UTC when no offset), e.g. 2013-09-01T00:00:00Z.")]

OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="text for people, json for scripts (one JSON document on stdout)."),
]
# The live views' pacing (`workers --follow`, `status --watch`).
IntervalOption = Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between live refreshes.")]
CountOption = Annotated[Optional[int], typer.Option(
    "--count", min=1, help="Stop the live view after this many refreshes (for scripts and tests).")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (for scripts and CI).")]


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


def emit(output: OutputFormat, data: Any, render: Callable[[Any], Any]) -> None:
    """The end of a command: `data` as one JSON document on stdout for scripts, or `render(data)` for people."""
    if output is OutputFormat.json:
        print_json(data)
    else:
        render(data)


def pause(seconds: float) -> None:
    """The live views' wait between refreshes (a name of its own, so a test can interrupt it alone)."""
    import time

    time.sleep(seconds)


def refresh_loop(step: Callable[[int], Any], *, interval: float, count: int | None,
                 json_line: Callable[[Any], Any], render: Callable[[Any], Any] | None = None,
                 console: Console | None = None) -> tuple[Any, bool]:
    """The loop of the live views (`workers --follow`, `status --watch`): `step(n)` (n = 0, 1, ...) every
    `interval` seconds until `count` steps or Ctrl-C. With `render`, each result is drawn by rich Live on
    `console` over the previous one; without, `json_line(result)` is printed as one JSON document a line.
    Returns the last result (None if there was none) and whether Ctrl-C ended the loop."""
    import time

    live = None
    last = None
    done = 0
    if render is not None:
        from rich.live import Live

        live = Live(console=console or stdout_console(), auto_refresh=False)
        live.start()
    try:
        while True:
            started = time.monotonic()
            last = step(done)
            done += 1
            if live is None:
                sys.stdout.write(json.dumps(json_line(last), default=str) + "\n")
                sys.stdout.flush()
            else:
                live.update(render(last), refresh=True)
            if count is not None and done >= count:
                return last, False
            pause(max(interval - (time.monotonic() - started), 0.0))
    except KeyboardInterrupt:
        return last, True
    finally:
        if live is not None:
            live.stop()
            if not live.console.is_terminal:  # Live leaves the last line open when it cannot redraw
                live.console.print()


def input_layout(config: "Config", column_map: list[str] | None) -> "InputLayout":
    """The layout of an input file: the config's layout section, --map items over its columns. A malformed
    --map item is a usage mistake (exit 2), not bad data."""
    from fraudctl.errors import BadInputError
    from fraudctl.data.layout import InputLayout

    try:
        return InputLayout.from_settings(config.layout, column_map)
    except BadInputError as exc:
        raise typer.BadParameter(f"{exc.message}" + (f"; {exc.hint}" if exc.hint else ""),
                                 param_hint="'--map'") from None


def format_number(value: Any) -> str:
    """A table cell: 4 decimals for metrics, thousands separators for counts, "-" for missing."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ensure_can_confirm(output: OutputFormat) -> None:
    """Refuse (UsageError, exit 2) a command that would have to ask and cannot: with --output json the
    prompt would mix into the JSON a script reads; without a terminal on stdin (CI, a pipe) no one answers."""
    from fraudctl.errors import UsageError

    if output is OutputFormat.json:
        raise UsageError("this command asks for confirmation, which --output json cannot show",
                         hint="pass --yes with --output json")
    if not sys.stdin.isatty():
        raise UsageError("this command asks for confirmation and stdin is not a terminal (CI, a pipe)",
                         hint="pass --yes to go ahead without asking")


def confirm(question: str, output: OutputFormat) -> None:
    """Ask on the terminal before a change (Ctrl-C or "no" aborts, exit 130); refuse when no one can answer."""
    ensure_can_confirm(output)
    typer.confirm(question, abort=True, err=True)


def health_colour(health: str) -> str:
    """The colour of the scorer's health (fraudctl.operate.scorer_service.status) in text views."""
    return {"healthy": "green", "degraded": "yellow"}.get(health, "red")


def print_warnings(console: Console, warnings: list[str]) -> None:
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
