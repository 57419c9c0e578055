"""`fraudctl workers`: the Celery workers that run Airflow's tasks, as Flower sees them."""

from __future__ import annotations

import typer

from fraudctl.cli.common import OutputFormat, OutputOption, print_json, state, stdout_console


def register(app: typer.Typer) -> None:
    app.command("workers")(workers)


def workers(ctx: typer.Context, output: OutputOption = OutputFormat.text) -> None:
    """List Celery workers: status, pool size, active and processed tasks (from Flower's API)."""
    from fraudctl.errors import UnavailableError
    from fraudctl.flower import FlowerClient
    from fraudctl.secrets import load_secrets

    config = state(ctx).config()
    secrets = load_secrets(config, create=False)
    if secrets is None:
        raise UnavailableError(f"no stack has been started from {config.state_dir}", hint="fraudctl up")
    client = FlowerClient(config.flower, secrets.flower_password)
    online = client.online()
    details = client.workers()
    rows = []
    for name in sorted(set(online) | set(details)):
        info = details.get(name) or {}
        stats = info.get("stats") or {}
        rows.append({
            "name": name,
            "online": bool(online.get(name)),
            "concurrency": (stats.get("pool") or {}).get("max-concurrency"),
            "active": len(info.get("active") or []),
            "processed": sum((stats.get("total") or {}).values()),
        })
    if output is OutputFormat.json:
        print_json({"workers": rows})
    else:
        from rich.table import Table

        table = Table(show_edge=False)
        for column in ("worker", "online", "concurrency", "active", "processed"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["name"], "[green]yes[/]" if row["online"] else "[red]no[/]",
                          str(row["concurrency"] or "-"), str(row["active"]), str(row["processed"]))
        stdout_console().print(table if rows else "no Celery worker known to Flower")
    if not any(row["online"] for row in rows):
        raise UnavailableError("no Celery worker is online")
