"""`fraudctl config show`."""

from __future__ import annotations

import typer

from fraudctl.cli.common import OutputFormat, OutputOption, print_json, state, stdout_console

app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@app.command("show")
def show(ctx: typer.Context, output: OutputOption = OutputFormat.text) -> None:
    """Print the effective configuration (file + FRAUDCTL_* + defaults), secrets masked."""
    config = state(ctx).config()
    data = config.masked()
    if output is OutputFormat.json:
        print_json({"source": str(config.source) if config.source else None, "config": data})
        return
    import yaml

    console = stdout_console()
    console.print(f"# source: {config.source or 'defaults (no fraudctl.yaml found)'}", highlight=False)
    console.print(yaml.safe_dump(data, sort_keys=False), highlight=False, end="")
