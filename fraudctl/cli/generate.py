"""`fraudctl generate`: the Fraud Detection Handbook's transaction simulator, written to CSV or parquet."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from fraudctl.cli.common import FileFormat, OutputFormat, OutputOption, emit, stderr_console, stdout_console


def _check_start_date(value: str) -> str:
    """At parse time, so that a bad date is a usage mistake (exit 2) found before any work."""
    from fraudctl.data.generator import parse_start_date
    from fraudctl.errors import BadInputError

    try:
        parse_start_date(value)
    except BadInputError as exc:
        raise typer.BadParameter(exc.message) from None
    return value.strip()


# The defaults are fraudctl.data.generator's DEFAULT_* (the handbook's run), written out because importing the
# generator (numpy) would slow `fraudctl --help`; tests/unit/test_generator.py holds the two equal.
def generate(
    customers: Annotated[int, typer.Option("--customers", min=1, help="Number of customers.")] = 5000,
    terminals: Annotated[int, typer.Option("--terminals", min=1, help="Number of terminals.")] = 10000,
    days: Annotated[int, typer.Option("--days", min=1, help="Number of days simulated.")] = 183,
    start_date: Annotated[str, typer.Option("--start-date", callback=_check_start_date, metavar="YYYY-MM-DD",
                                            help="First simulated day (UTC).")] = "2018-04-01",
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed: the same seed writes the same bytes.")] = 0,
    file_format: Annotated[Optional[FileFormat], typer.Option(
        "--format", case_sensitive=False,
        help="File format (default: from the extension of --out, else csv).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-O", dir_okay=False, show_default=False,
        help="File to write, parent folders created (default: data/transactions.csv, or .parquet with "
             "--format parquet). CSV times are ISO-8601 UTC, e.g. 2018-04-01T00:07:56Z.")] = None,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Simulate card transactions with labelled fraud (Fraud Detection Handbook, chapter 3) into a file.

    Defaults: about 1.75 M transactions over 183 days, about 0.84 % of them fraud.

    fraud_scenario 1: amount over 220; 2: compromised terminal (28 days); 3: compromised customer (14 days).
    """
    from fraudctl.errors import BadInputError
    from fraudctl.data.generator import (
        generate_transactions, output_path, resolve_format, summarize, write_transactions,
    )

    fmt = file_format.value if file_format else None
    path = output_path(out, fmt)
    try:
        fmt = resolve_format(path, fmt)  # before the work, so a bad name fails at once
    except BadInputError as exc:
        # A usage mistake (exit 2), not bad data.
        raise typer.BadParameter(f"{exc.message}; {exc.hint}" if exc.hint else exc.message,
                                 param_hint="'--out' / '--format'") from None

    started = time.perf_counter()
    with _progress_bar() as progress:
        simulating = progress.add_task("simulating", total=None)
        df = generate_transactions(
            n_customers=customers, n_terminals=terminals, n_days=days, start_date=start_date, seed=seed,
            on_progress=lambda done, total: progress.update(simulating, completed=done, total=total),
        )
        writing = progress.add_task(f"writing {path.name}", total=len(df))
        write_transactions(df, path, fmt,
                           on_progress=lambda done, total: progress.update(writing, completed=done, total=total))
    seconds = time.perf_counter() - started

    emit(output, {
        "path": str(path), "format": fmt, **summarize(df), "seconds": round(seconds, 3),
        "parameters": {"customers": customers, "terminals": terminals, "days": days, "start_date": start_date,
                       "seed": seed},
    }, lambda summary: _print_summary(summary, seconds))


def _print_summary(summary: dict, seconds: float) -> None:
    scenarios = summary["scenarios"]
    stdout_console().print(
        f"wrote {summary['rows']:,} transactions to {summary['path']} in {seconds:.1f} s; "
        f"fraud {summary['fraud_rate']:.2%} ({summary['frauds']:,}: amount {scenarios['1']:,}, "
        f"terminal {scenarios['2']:,}, customer {scenarios['3']:,})",
        highlight=False,
    )


def _progress_bar():
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    console = stderr_console()
    # Only on a terminal: a bar redrawn into a CI log or a pipe is noise.
    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                    console=console, transient=True, disable=not console.is_terminal)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
