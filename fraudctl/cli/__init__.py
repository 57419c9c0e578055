"""The `fraudctl` command line: a thin typer layer over the core modules, with one error boundary.

`main()` is the only entry point. It maps every `FraudctlError` to a red message on stderr and its
documented exit code (fraudctl.errors.ExitCode); anything else is a bug, reported as such with exit 1.
Tracebacks are shown only with --debug (or FRAUDCTL_DEBUG=1).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional, Sequence

import typer

from fraudctl import __version__
from fraudctl.cli import config_cmd, generate, models, replay, retrain, rules, scorer, stack, train, workers
from fraudctl.cli.common import state
from fraudctl.errors import ExitCode, FraudctlError

app = typer.Typer(
    name="fraudctl",
    help="Operate a real-time ML fraud-detection stack: Kafka, Spark, Airflow, MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"fraudctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", "-c", help="Config file (default: $FRAUDCTL_CONFIG, else ./fraudctl.yaml).",
                     dir_okay=False),
    ] = None,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show tracebacks and the client libraries' log lines (librdkafka's among them).",
        envvar="FRAUDCTL_DEBUG")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    app_state = state(ctx)
    app_state.config_path = config
    app_state.debug = debug
    if debug:
        import logging

        from fraudctl.clients.kafka import show_client_logs

        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        show_client_logs()


stack.register(app)
generate.register(app)
replay.register(app)
train.register(app)
retrain.register(app)
models.register(app)
workers.register(app)
scorer.register(app)
rules.register(app)
app.add_typer(config_cmd.app, name="config")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI and exit with the documented code."""
    import faulthandler

    # A crash in a client library's C code (SIGSEGV, SIGABRT) then leaves every thread's Python stack on
    # stderr instead of a bare exit status.
    faulthandler.enable()
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("FRAUDCTL_DEBUG", "").lower() in ("1", "true", "yes")
    try:
        # Outside standalone mode typer returns (not raises) typer.Exit codes and Ctrl-C's 130.
        result = app(args=args, prog_name="fraudctl", standalone_mode=False)
        if result == ExitCode.INTERRUPTED:
            _print_plain_error("interrupted")
        return result if isinstance(result, int) else ExitCode.OK
    except FraudctlError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        _print_error(exc)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        _print_plain_error("interrupted")
        return ExitCode.INTERRUPTED
    except typer.TyperException as exc:  # usage errors: typer prints them with the command's usage line
        show = getattr(exc, "show", None)
        show() if show else _print_plain_error(exc.format_message())
        return ExitCode.USAGE
    except KeyboardInterrupt:
        _print_plain_error("interrupted")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # the boundary: anything unexpected is a bug, said plainly
        if debug:
            raise
        _print_plain_error(f"unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
        return ExitCode.ERROR


def _print_error(exc: FraudctlError) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=sys.stderr, stderr=True, highlight=False)
    console.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
    if exc.detail:
        console.print(escape(exc.detail), style="dim", soft_wrap=True)
    if exc.hint:
        console.print(f"[yellow]hint:[/] {escape(exc.hint)}", soft_wrap=True)


def _print_plain_error(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(file=sys.stderr, stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
