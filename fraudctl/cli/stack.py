"""`fraudctl up | down | status | logs`: the stack's lifecycle."""

from __future__ import annotations

import enum
import sys
import time
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from fraudctl.choices import RUNTIME_KINDS
from fraudctl.cli.common import (
    CountOption, IntervalOption, OutputFormat, OutputOption, command_config, config_option, emit, health_colour,
    refresh_loop, stderr_console, stdout_console,
)

if TYPE_CHECKING:
    from fraudctl.stack.base import ServiceStatus

# The choices are fraudctl.choices.RUNTIME_KINDS, the values config key runtime.kind accepts.
RuntimeChoice = enum.Enum("RuntimeChoice", [(kind, kind) for kind in RUNTIME_KINDS], type=str)
RuntimeOption = Annotated[Optional[RuntimeChoice], config_option(
    "runtime.kind", "--runtime", "-r", help="Which runtime runs the stack.")]


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
    app.command("logs")(logs)


def up(
    ctx: typer.Context,
    runtime: RuntimeOption = None,
    timeout: Annotated[Optional[float], config_option(
        "runtime.start_timeout", "--timeout", help="Seconds to wait for all services to be healthy.",
        fallback="under compose runtime.compose_start_timeout")] = None,
    build: Annotated[bool, typer.Option("--build", help="compose: rebuild the fraudctl/* images first "
                                                        "(after a change to the code or stack/).")] = False,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Start the stack and wait until every service passes its health probe."""
    from fraudctl.stack import get_runtime

    config = command_config(ctx)
    rt = get_runtime(config, build=build)
    limit = timeout if timeout is not None else rt.start_timeout
    started = time.monotonic()
    if output is OutputFormat.text and sys.stderr.isatty():
        from rich.live import Live

        with Live(_table([]), console=stderr_console(), refresh_per_second=4, transient=False) as live:
            statuses = rt.up(timeout=limit, on_progress=lambda s: live.update(_table(s)),
                             on_message=lambda line: live.console.print(f"[dim]{escape(line)}[/]"))
    else:
        statuses = rt.up(timeout=limit, on_message=lambda line: stderr_console().print(escape(line)))
    elapsed = time.monotonic() - started

    def render(_) -> None:
        if not sys.stderr.isatty():
            stdout_console().print(_table(statuses))
        stdout_console().print(f"[green]stack up[/] ({rt.name} runtime, {len(statuses)} services healthy in "
                               f"{elapsed:.1f}s)")

    emit(output, {"runtime": rt.name, "healthy": True, "seconds": round(elapsed, 2),
                  "services": [s.as_dict() for s in statuses]}, render)


def down(
    ctx: typer.Context,
    runtime: RuntimeOption = None,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the state: data, logs, secrets.")] = False,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Stop every service (gracefully, then forcibly after runtime.stop_timeout)."""
    from fraudctl.stack import get_runtime

    rt = get_runtime(command_config(ctx))
    started = time.monotonic()
    rt.down(purge=purge)
    elapsed = time.monotonic() - started
    emit(output, {"runtime": rt.name, "stopped": True, "purged": purge, "seconds": round(elapsed, 2)},
         lambda _: stdout_console().print(f"stack down in {elapsed:.1f}s" + (" (state deleted)" if purge else "")))


def status(
    ctx: typer.Context,
    runtime: RuntimeOption = None,
    watch: Annotated[bool, typer.Option(
        "--watch", "-w", help="Refresh the view live until Ctrl-C (or --count).")] = False,
    interval: IntervalOption = 2.0,
    count: CountOption = None,
    output: OutputOption = OutputFormat.text,
) -> None:
    """The operator's view: each service's state, pid, endpoint, health and uptime; the scorer's rates,
    latency and lag; the champion and when it changed; the last retrain run; the Celery workers.

    A part whose system does not answer within a few seconds (MLflow, Airflow or Flower down) shows why
    instead of its values; the rest of the view goes on. A stopped scorer shows as stopped.
    --watch redraws every --interval seconds (-o json: one JSON document a line).

    Exit codes: 8 when any service is unhealthy (with --watch: at the last refresh; Ctrl-C exits 0).
    """
    from fraudctl.operate.overview import overview

    view = overview(command_config(ctx))
    if watch:
        last = _watch(view, interval, count, output)
        if last is not None and not last["healthy"]:
            raise _not_healthy(last)
        return
    report = view.gather()
    emit(output, report, lambda report: stdout_console().print(_overview(report)))
    if not report["healthy"]:
        raise _not_healthy(report)


def _not_healthy(report: dict):
    from fraudctl.errors import UnavailableError

    if report.get("services_error"):
        return UnavailableError(report["services_error"])
    if not any(s["healthy"] for s in report["services"]):
        return UnavailableError("the stack is not running here", hint="fraudctl up")
    failing = [s["name"] for s in report["services"] if not _service(s).fine]
    return UnavailableError(f"the stack is not fully up and healthy: {', '.join(failing)}",
                            hint=f"`fraudctl logs {failing[0]}` says why; `fraudctl up` starts what is stopped")


def _watch(view, interval: float, count: int | None, output: OutputFormat) -> "dict | None":
    """Refresh until `count` refreshes (returns the last view) or Ctrl-C (returns None: exit 0)."""
    last, interrupted = refresh_loop(
        lambda done: view.gather(strict=False), interval=interval, count=count, json_line=lambda report: report,
        render=(lambda report: _overview(report, title=f"fraudctl status at {report['time']}, every {interval:g}s "
                                                       "(Ctrl-C to stop)")) if output is OutputFormat.text else None,
        console=stdout_console())
    return None if interrupted else last


def logs(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="Service name, as listed by `fraudctl status`.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many past lines to show.")] = 50,
    runtime: RuntimeOption = None,
) -> None:
    """Print a service's log."""
    from fraudctl.stack import get_runtime

    rt = get_runtime(command_config(ctx))
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


def _overview(report: dict, title: str | None = None):
    """The services table, then one line per panel (or why it is unavailable)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts = [Text(title, style="bold")] if title else []
    if report.get("services_error"):
        parts.append(Text(f"services: {report['services_error']}", style="red"))
    elif report["services"]:
        parts.append(_table([_service(s) for s in report["services"]]))
    else:
        parts.append(Text("no stack has been started here (fraudctl up)"))
    panels = Table(show_edge=False, show_header=False, pad_edge=False, box=None)
    panels.add_column("panel", style="bold")
    panels.add_column("value", overflow="fold")
    for name, describe in (("scorer", _scorer_line), ("champion", _champion_line), ("retrain", _retrain_line),
                           ("workers", _workers_line)):
        panel = report.get(name) or {"available": False, "error": "not gathered"}
        panels.add_row(name, describe(panel) if panel.get("available") else
                       f"[yellow]unavailable:[/] {escape(str(panel.get('error')))}")
    parts += [Text(""), panels]
    return Group(*parts)


def _service(data: dict) -> "ServiceStatus":
    from fraudctl.stack.base import ServiceStatus

    return ServiceStatus(**data)


def _scorer_line(p: dict) -> str:
    from fraudctl.operate.scorer_service import is_running

    line = f"[{health_colour(p['health'])}]{p['health']}[/]"
    if p.get("degraded"):
        line += f" ({escape(str(p['degraded']))})"
    if p.get("model_version"):
        line += f", model v{p['model_version']}"
    if is_running(p["health"]):
        latency = p.get("latency_ms") or {}
        line += (f", in {_figure(p.get('input_rows_per_second'))} rows/s, processed "
                 f"{_figure(p.get('processed_rows_per_second'))} rows/s, batch "
                 f"{_figure(p.get('batch_duration_ms'))} ms, latency "
                 + (f"p50 {latency['p50']:,.0f} ms p99 {latency['p99']:,.0f} ms" if latency else "-")
                 + ", lag " + (", ".join(f"{topic} {n:,}" for topic, n in p["lag"].items()) or "-"))
    elif p["health"] == "stopped":
        line += " (fraudctl scorer start)"
    return line + f"; {p.get('scored', 0):,} scored, {p.get('alerts', 0):,} alerts"


def _figure(value) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _champion_line(p: dict) -> str:
    challenger = f"; challenger v{p['challenger']}" if p.get("challenger") else ""
    if p.get("version") is None:
        return f"[yellow]{escape(p.get('message') or 'no champion')}[/]{challenger}"
    line = f"{escape(p['model'])} v{p['version']}"
    if p.get("changed_at"):
        line += f" since {p['changed_at']} ({p['changed_by']}"
        line += f" over v{p['promoted_over']})" if p.get("promoted_over") else ")"
        if p.get("forced"):
            line += " [yellow]forced[/]"
    else:
        line += f", alias time not recorded (version updated {p.get('version_updated_at') or '-'})"
    return line + challenger


def _retrain_line(p: dict) -> str:
    if p.get("run_id") is None:
        return escape(p.get("message") or "no run yet")
    colour = {"success": "green", "failed": "red"}.get(p.get("state"), "yellow")
    line = f"{escape(p['run_id'])} [{colour}]{p.get('state')}[/], started {p.get('start') or '-'}"
    if p.get("end"):
        line += f", ended {p['end']}" + (f" ({p['seconds']:g}s)" if p.get("seconds") is not None else "")
    if p.get("running_tasks"):
        line += f", running {', '.join(p['running_tasks'])}"
    if p.get("failed_tasks"):
        line += f", [red]failed in {', '.join(p['failed_tasks'])}[/]"
    if p.get("version"):
        outcome = "[green]promoted to @champion[/]" if p.get("promoted") else "kept as @challenger"
        line += f": v{p['version']} {outcome}" + (f" ({escape(str(p['reason']))})" if p.get("reason") else "")
    return line


def _workers_line(p: dict) -> str:
    colour = "green" if p["online"] else "red"
    line = f"[{colour}]{p['online']}/{p['total']} online[/]"
    for row in p["workers"]:
        age = row.get("heartbeat_age")
        line += (f"; {escape(row['name'])} {'online' if row['online'] else '[red]offline[/]'} "
                 f"(pid {row.get('pid') or '-'}, active {row.get('active', 0)}, processed {row.get('processed', 0)}, "
                 f"failed {row.get('failed', 0)}, heartbeat {'-' if age is None else f'{age:.1f}s ago'})")
    return line
