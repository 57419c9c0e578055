"""`fraudctl workers`: the Celery workers that run Airflow's tasks, as Flower sees them (once, or live)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fraudctl.cli.common import (
    CountOption, IntervalOption, OutputFormat, OutputOption, command_config, emit, refresh_loop, stdout_console,
)

COLUMNS = ("worker", "online", "pid", "concurrency", "active", "processed", "failed", "load 1/5/15", "heartbeat")


def register(app: typer.Typer) -> None:
    app.command("workers")(workers)


def workers(
    ctx: typer.Context,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Refresh the view live until Ctrl-C (or --count).")] = False,
    interval: IntervalOption = 2.0,
    count: CountOption = None,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Celery workers from Flower: online, pid, pool, active, processed, failed, load, heartbeat age.

    Online: a heartbeat within Flower's expiry window (workers beat every 2 s).
    A worker restarted under the same name is online again with a new pid.
    --follow redraws the table every --interval seconds (-o json: a line each).

    Exit codes: 8 no worker online (with --follow: at the last refresh),
    Flower unreachable, or no stack.
    """
    from fraudctl.operate.connect import flower_client

    config = command_config(ctx)
    client = flower_client(config)
    if not follow:
        rows = _rows(client, refresh=True)
        emit(output, {"workers": rows},
             lambda _: stdout_console().print(_table(rows) if rows else "no Celery worker known to Flower"))
        _check_online(rows)
        return
    rows = _follow(client, config.flower.url, interval, count, output)
    _check_online(rows)


def _rows(client, refresh: bool) -> list[dict[str, Any]]:
    from fraudctl.clients.flower import worker_rows

    return worker_rows(client.events(), client.workers(refresh=refresh))


def _check_online(rows: list[dict[str, Any]] | None) -> None:
    from fraudctl.errors import UnavailableError

    if rows is None:
        raise UnavailableError("Flower did not answer at the last refresh")
    if not any(row["online"] for row in rows):
        raise UnavailableError("no Celery worker is online",
                               hint="`fraudctl status` shows airflow-worker; `fraudctl logs airflow-worker`")


def _follow(client, url: str, interval: float, count: int | None, output: OutputFormat):
    """Refresh until Ctrl-C or `count` refreshes; returns the last rows (None if Flower did not answer)."""
    import time

    from fraudctl.errors import UnavailableError

    def step(done: int):
        try:
            # the inspect broadcast (pool size, pid) once; then Flower's cache and its event view
            rows, error = _rows(client, refresh=done == 0), None
        except UnavailableError as exc:
            rows, error = None, str(exc)
        return rows, error, time.strftime("%H:%M:%S")

    last, _ = refresh_loop(
        step, interval=interval, count=count,
        json_line=lambda r: {"time": r[2], "workers": r[0], "error": r[1]},
        render=(lambda r: _view(r[0], r[1], url, r[2], interval)) if output is OutputFormat.text else None,
        console=stdout_console())
    return last[0] if last else None


def _view(rows, error: str | None, url: str, stamp: str, interval: float):
    from rich.console import Group
    from rich.text import Text

    title = Text(f"Celery workers from Flower {url} at {stamp}, every {interval:g}s (Ctrl-C to stop)", style="bold")
    if error is not None:
        return Group(title, Text(error, style="red"))
    return Group(title, _table(rows) if rows else Text("no Celery worker known to Flower"))


def _table(rows: list[dict[str, Any]]):
    from rich.table import Table

    table = Table(show_edge=False)
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("worker", "online") else "right")
    for row in rows:
        age = row["heartbeat_age"]
        table.add_row(
            row["name"], "[green]online[/]" if row["online"] else "[red]offline[/]", str(row["pid"] or "-"),
            str(row["concurrency"] or "-"), str(row["active"]), str(row["processed"]),
            f"[red]{row['failed']}[/]" if row["failed"] else "0",
            " ".join(f"{x:.2f}" for x in row["load"]) if row["load"] else "-",
            "-" if age is None else f"{age:.1f}s ago")
    return table
