"""`fraudctl replay FILE`: a CSV or parquet file into Kafka `transactions`, with delayed `labels`."""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from fraudctl.cli.common import (
    FileFormat, MapOption, OutputFormat, OutputOption, PresetOption, StartOption, TimeFormatOption, command_config,
    config_option, emit, input_layout, stderr_console, stdout_console,
)


def replay(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV (optionally .csv.gz) or parquet file to replay.",
                                         dir_okay=True, show_default=False)],
    preset: PresetOption = None,
    column_map: MapOption = None,
    time_format: TimeFormatOption = None,
    start: StartOption = None,
    labels: Annotated[bool, typer.Option(
        "--labels/--no-labels", help="Send label events to the labels topic when the file has a label column.")
    ] = True,
    label_delay: Annotated[Optional[str], config_option(
        "replay.label_delay", "--label-delay", metavar="DURATION", fallback="else model.label_delay_days",
        help="Event-time delay of each label after its transaction: 7d, 12h, 30m, 90s, or days.")] = None,
    rate: Annotated[Optional[float], typer.Option(
        "--rate", min=0.001, help="Pace at N transactions per second (default: as fast as possible).")] = None,
    speedup: Annotated[Optional[float], typer.Option(
        "--speedup", min=0.000001, help="Pace at X times event time (labels included).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=0, help="Replay at most N data rows.")] = None,
    skip: Annotated[int, typer.Option("--skip", min=0, help="Skip the first N data rows.")] = 0,
    max_errors: Annotated[Optional[int], config_option(
        "replay.max_errors", "--max-errors", min=0, fallback="0",
        help="Rejected rows allowed before the exit code is 11.")] = None,
    rejects: Annotated[Optional[Path], typer.Option(
        "--rejects", dir_okay=False,
        help="Where rejected rows go (line, reason, content). (default: FILE.rejects.csv beside FILE, or in "
             "replay.rejects_dir)", show_default=False)] = None,
    file_format: Annotated[Optional[FileFormat], typer.Option(
        "--format", case_sensitive=False, help="File format (default: from the extension).")] = None,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Replay a file of transactions into Kafka, with delayed label events interleaved in event time.

    Idempotent producer, acks=all, key = customer_id. Bad rows go to the rejects file with line and reason.

    Ctrl-C stops reading, flushes and prints the summary; Ctrl-C again gives up waiting.

    Exit codes: 11 rejects over --max-errors, 8 broker unreachable or events undelivered, 130 interrupted.
    """
    from fraudctl.data.replay.options import ReplayOptions  # light: no numpy, no pyarrow

    if rate is not None and speedup is not None:
        raise typer.BadParameter("give --rate or --speedup, not both", param_hint="'--rate' / '--speedup'")
    config = command_config(ctx)
    options = ReplayOptions.from_config(
        config, file, file_format=file_format.value if file_format else None, layout=input_layout(config, column_map),
        labels=labels, rate=rate, speedup=speedup, limit=limit, skip=skip, rejects_path=rejects)

    # The broker handshake runs while the heavy part of replay (numpy, pyarrow) is imported.
    from fraudctl.data.replay.producer import Connecting, Deliveries

    deliveries = Deliveries()
    connecting = Connecting(config, deliveries)
    from fraudctl.data.replay import ReplayInterrupted, raise_for_outcome, replay as run_replay

    interrupt = threading.Event()
    started = time.monotonic()
    with _progress_bar() as (progress, task), _stop_on_signals(interrupt):
        def on_progress(p) -> None:
            rate = p.delivered / max(time.monotonic() - started, 1e-3)
            progress.update(task, completed=(p.fraction or 0.0) * 1000, rows=f"{p.rows_sent:,}", rate=f"{rate:,.0f}")

        summary = run_replay(config, options, on_progress=on_progress, interrupt=interrupt,
                             producer_factory=connecting.producer, deliveries=deliveries)

    emit(output, summary.as_dict(), lambda _: _print_summary(summary))
    if summary.interrupted:
        resume = f"--skip {summary.resume_skip}" if summary.resume_skip is not None else f"--skip {skip}"
        raise ReplayInterrupted("interrupted: the summary counts what was sent before the stop",
                                hint=f"{resume} resumes after the last transaction sent")
    raise_for_outcome(summary, options.max_errors)


def _print_summary(s) -> None:
    console = stdout_console()
    label_part = f", {s.labels:,} labels to {s.topics['labels']}" if s.topics.get("labels") else ""
    console.print(
        f"{'interrupted: ' if s.interrupted else ''}replayed {s.file} ({s.preset} preset): "
        f"{s.read:,} rows read, {s.rejected:,} rejected\n"
        f"produced {s.produced:,} events ({s.transactions:,} transactions to {s.topics['transactions']}"
        f"{label_part}); delivered {s.delivered:,}, failed {s.failed:,}\n"
        f"{s.wall_seconds:.1f} s, {s.events_per_second:,.0f} events/s",
        highlight=False, soft_wrap=True,
    )
    notes = stderr_console()
    if s.rejects_file:
        notes.print(f"[yellow]rejects:[/] {s.rejects_file}", highlight=False, soft_wrap=True)
    if s.unconfirmed:
        notes.print(f"[yellow]{s.unconfirmed:,} events unconfirmed[/] (no delivery report before giving up)")
    if s.labels_pending:
        notes.print(f"[yellow]{s.labels_pending:,} labels not sent[/]: not yet due when the replay stopped")
    if s.out_of_order:
        notes.print(f"[yellow]{s.out_of_order:,} transactions out of event-time order[/] in the file; "
                    "they were sent in file order")
    if s.ignored_columns:
        notes.print("ignored columns: " + ", ".join(repr(name) for name in s.ignored_columns),
                    style="dim", highlight=False, soft_wrap=True)


@contextmanager
def _progress_bar() -> Iterator:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    console = stderr_console()
    # Only on a terminal: a bar redrawn into a CI log or a pipe is noise.
    progress = Progress(
        TextColumn("replaying"), BarColumn(bar_width=24), TaskProgressColumn(),
        TextColumn("{task.fields[rows]} rows, {task.fields[rate]} events/s, ETA"), TimeRemainingColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task("replay", total=1000, rows="0", rate="0")
        yield progress, task


@contextmanager
def _stop_on_signals(interrupt: threading.Event) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM): stop reading, flush, summarise. A second Ctrl-C: stop waiting for the flush."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame) -> None:
        if interrupt.is_set():
            raise KeyboardInterrupt
        interrupt.set()
        stderr_console().print("[yellow]stopping:[/] delivering what was sent (Ctrl-C again to give up)")

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
