"""`fraudctl up | down | status | logs`: the stack's lifecycle."""

from __future__ import annotations

import enum
import sys
import time
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from fraudctl.choices import RUNTIME_KINDS
from fraudctl.cli.common import OutputFormat, OutputOption, print_json, state, stderr_console, stdout_console

if TYPE_CHECKING:
    from fraudctl.runtime.base import ServiceStatus

# The choices are fraudctl.choices.RUNTIME_KINDS, the values config key runtime.kind accepts.
RuntimeChoice = enum.Enum("RuntimeChoice", [(kind, kind) for kind in RUNTIME_KINDS], type=str)
RuntimeOption = Annotated[
    Optional[RuntimeChoice],
    typer.Option("--runtime", "-r", help="Which runtime runs the stack (default from config: runtime.kind)."),
]


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
    app.command("logs")(logs)


def up(
    ctx: typer.Context,
    runtime: RuntimeOption = None,
    timeout: Annotated[Optional[float], typer.Option(help="Seconds to wait for all services to be healthy "
                                                          "(default: runtime.start_timeout).")] = None,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Start the stack and wait until every service passes its health probe."""
    from fraudctl.runtime import get_runtime

    config = state(ctx).config(**{"runtime.kind": runtime, "runtime.start_timeout": timeout})
    rt = get_runtime(config)
    started = time.monotonic()
    if output is OutputFormat.text and sys.stderr.isatty():
        from rich.live import Live

        with Live(_table([]), console=stderr_console(), refresh_per_second=4, transient=False) as live:
            statuses = rt.up(timeout=config.runtime.start_timeout, on_progress=lambda s: live.update(_table(s)))
    else:
        statuses = rt.up(timeout=config.runtime.start_timeout)
    elapsed = time.monotonic() - started
    if output is OutputFormat.json:
        print_json({"runtime": rt.name, "healthy": True, "seconds": round(elapsed, 2),
                    "services": [s.as_dict() for s in statuses]})
        return
    if not sys.stderr.isatty():
        stdout_console().print(_table(statuses))
    stdout_console().print(f"[green]stack up[/] ({rt.name} runtime, {len(statuses)} services healthy in {elapsed:.1f}s)")


def down(
    ctx: typer.Context,
    runtime: RuntimeOption = None,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the state: data, logs, secrets.")] = False,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Stop every service (gracefully, then forcibly after runtime.stop_timeout)."""
    from fraudctl.runtime import get_runtime

    config = state(ctx).config(**{"runtime.kind": runtime})
    rt = get_runtime(config)
    started = time.monotonic()
    rt.down(purge=purge)
    elapsed = time.monotonic() - started
    if output is OutputFormat.json:
        print_json({"runtime": rt.name, "stopped": True, "purged": purge, "seconds": round(elapsed, 2)})
    else:
        stdout_console().print(f"stack down in {elapsed:.1f}s" + (" (state deleted)" if purge else ""))


def status(
    ctx: typer.Context,
    runtime: RuntimeOption = None,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Show each service's state, pid, endpoint, health and uptime. Exits 8 when any service is unhealthy."""
    from fraudctl.errors import UnavailableError
    from fraudctl.runtime import get_runtime

    config = state(ctx).config(**{"runtime.kind": runtime})
    rt = get_runtime(config)
    statuses = rt.status()
    all_healthy = bool(statuses) and all(s.fine for s in statuses)
    if output is OutputFormat.json:
        print_json({"runtime": rt.name, "healthy": all_healthy, "services": [s.as_dict() for s in statuses]})
    else:
        stdout_console().print(_table(statuses) if statuses else "no stack has been started here (fraudctl up)")
    if not all_healthy:
        raise UnavailableError("the stack is not fully up and healthy")


def logs(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="Service name, as listed by `fraudctl status`.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many past lines to show.")] = 50,
    runtime: RuntimeOption = None,
) -> None:
    """Print a service's log."""
    from fraudctl.runtime import get_runtime

    rt = get_runtime(state(ctx).config(**{"runtime.kind": runtime}))
    for line in rt.logs(service, lines=lines, follow=follow):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _table(statuses: "list[ServiceStatus]"):
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for column in ("service", "state", "pid", "endpoint", "health", "uptime", "detail"):
        table.add_column(column, overflow="fold")
    for s in statuses:
        health = {True: "[green]healthy[/]", False: "[red]unhealthy[/]", None: "[dim]-[/]"}[s.healthy]
        uptime = _duration(s.uptime_seconds) if s.uptime_seconds is not None else "-"
        table.add_row(s.name, s.state, str(s.pid or "-"), s.endpoint or "-", health, uptime, s.detail[:80])
    return table


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
