"""`fraudctl config show`."""

from __future__ import annotations

import typer

from fraudctl.cli.common import OutputFormat, OutputOption, command_config, emit, stdout_console

app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@app.command("show")
def show(ctx: typer.Context, output: OutputOption = OutputFormat.text) -> None:
    """Print the effective configuration (file + FRAUDCTL_* + defaults), secrets masked."""
    config = command_config(ctx)
    emit(output, {"source": str(config.source) if config.source else None, "config": config.masked()}, _render)


def _render(shown: dict) -> None:
    import yaml

    console = stdout_console()
    console.print(f"# source: {shown['source'] or 'defaults (no fraudctl.yaml found)'}", highlight=False)
    console.print(yaml.safe_dump(shown["config"], sort_keys=False), highlight=False, end="")
