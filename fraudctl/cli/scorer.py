"""`fraudctl scorer start|stop|status|logs`: the streaming scorer, and `fraudctl scores tail`."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Annotated, Any, Optional

import typer

from fraudctl.cli.common import (
    OutputFormat, OutputOption, command_config, config_option, emit, format_number, health_colour, print_json,
    stderr_console, stdout_console,
)

scorer_app = typer.Typer(help="The Spark streaming scorer: Kafka transactions -> scores and alerts.", no_args_is_help=True)
scores_app = typer.Typer(help="The published scores.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(scorer_app, name="scorer")
    app.add_typer(scores_app, name="scores")


@scorer_app.command("start")
def start(
    ctx: typer.Context,
    wait_for_model: Annotated[bool, typer.Option(
        "--wait-for-model", help="Start even without a @champion and wait for one (default: refuse, exit 9).")] = False,
    # Handed to scorer_service.start, which falls back to the keys (under compose the job's config names the
    # in-network master, which --master must beat).
    master: Annotated[Optional[str], config_option(
        "spark.master", "--master", metavar="URL", override=False,
        help="Spark master: local[N], spark://host:port.")] = None,
    timeout: Annotated[Optional[float], config_option(
        "scorer.start_timeout", "--timeout", override=False, help="Seconds to wait for the query to run.")] = None,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Start the scorer under the stack's supervisor and wait until its query runs."""
    from fraudctl.operate import scorer_service as control

    config = command_config(ctx)
    with stderr_console().status("starting the scorer…") as progress:
        report = control.start(config, master=master, wait_for_model=wait_for_model, timeout=timeout,
                               on_progress=progress.update)
    emit(output, report, _render)


@scorer_app.command("stop")
def stop(ctx: typer.Context, output: OutputOption = OutputFormat.text) -> None:
    """Stop the scorer gracefully: the running micro-batch finishes, the query stops (SIGKILL after
    runtime.stop_timeout)."""
    from fraudctl.operate import scorer_service as control

    report = control.stop(command_config(ctx))
    emit(output, report, lambda report: stdout_console().print(
        "scorer stopped" if report["was"] == "RUNNING" else "the scorer was not running"))


@scorer_app.command("status")
def status(ctx: typer.Context, output: OutputOption = OutputFormat.text) -> None:
    """Rates, batch time, latency, lag per partition, model version, dead letters, state size and health.
    Exits 8 unless the scorer is running (degraded counts as running)."""
    from fraudctl.errors import UnavailableError
    from fraudctl.operate import scorer_service as control

    report = control.status(command_config(ctx))
    emit(output, report, _render)
    if not control.is_running(report["health"]):
        raise UnavailableError(f"the scorer is {report['health']}", hint="fraudctl scorer start")


@scorer_app.command("wait")
def wait(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(help="Seconds to wait; then exit 7 (the scorer goes on).")] = 600.0,
    champion: Annotated[bool, typer.Option("--champion", help=(
        "Also wait until the scorer has taken the model @champion names now (in use, or staged for its next "
        "micro-batch): after a promotion, what is replayed next is scored by the new champion."))] = False,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Wait until the running scorer has read every transaction and label that is in Kafka now.
    Exits 8 if the scorer is not running, 7 on timeout, 12 if it refused the champion (--champion)."""
    from fraudctl.operate.summary import wait_until_caught_up

    def progress_text(left: dict[str, int], to_take: str | None) -> str:
        records = ", ".join(f"{n:,} {topic}" for topic, n in left.items()) + " to read"
        return "waiting for the scorer to catch up: " + records + (f"; @champion v{to_take} to take" if to_take else "")

    config = command_config(ctx)
    with stderr_console().status("waiting for the scorer to catch up…") as progress:
        report = wait_until_caught_up(config, timeout=timeout, champion=champion,
                                      on_progress=lambda left, to_take: progress.update(progress_text(left, to_take)))
    emit(output, report, lambda report: stdout_console().print(
        f"scorer caught up: {report['counters'].get('scored', 0):,} scored since it started"))


@scorer_app.command("logs")
def logs(
    ctx: typer.Context,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many past lines to show.")] = 50,
) -> None:
    """Print the scorer's log (the Spark driver's output)."""
    from fraudctl.stack import get_runtime

    for line in get_runtime(command_config(ctx)).logs("scorer", lines=lines, follow=follow):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


@scores_app.command("tail")
def tail(
    ctx: typer.Context,
    alerts: Annotated[bool, typer.Option("--alerts", help="Read `alerts` (score >= threshold) instead of `scores`.")] = False,
    count: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many of the latest to show.")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new scores (Ctrl-C stops).")] = False,
    output: OutputOption = OutputFormat.text,
) -> None:
    """The latest scores (or alerts), newest last; with --follow, new ones as they are published."""
    from fraudctl.clients.kafka import follow_records, latest_records

    config = command_config(ctx)
    topics = config.kafka.topics
    topic = topics.alerts.name if alerts else topics.scores.name
    latest = latest_records(config.kafka, topic, count)
    if output is OutputFormat.json and not follow:
        print_json({"topic": topic, "scores": latest})
        return
    if output is OutputFormat.json:  # one JSON document per line while following
        for record in latest:
            sys.stdout.write(_json_line(record))
        for record in follow_records(config.kafka, topic):
            sys.stdout.write(_json_line(record))
            sys.stdout.flush()
        return
    console = stdout_console()
    console.print(_scores_table(latest, title=f"latest {len(latest)} of {topic}", reasons=alerts))
    if follow:
        for record in follow_records(config.kafka, topic):
            console.print(_score_line(record, reasons=alerts), highlight=False)


@scores_app.command("summary")
def summary(
    ctx: typer.Context,
    since: Annotated[Optional[dt.datetime], typer.Option(
        metavar="DATETIME", help="Only transactions at or after this event time (UTC), e.g. after the training window.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds reading the topics may take; then exit 7.")] = 300.0,
    output: OutputOption = OutputFormat.text,
) -> None:
    """What was scored, read back from Kafka: events scored, alerts, the alerts' precision and recall against
    the labels that have arrived, latency (transaction -> score, Kafka timestamps), the model versions that
    scored, and the UIs' URLs."""
    from fraudctl.operate.summary import summarize

    config = command_config(ctx)
    with stderr_console().status("reading the scores…") as progress:
        report = summarize(config, since=since, timeout=timeout, on_progress=progress.update)
    emit(output, report, _render_summary)


def _render_summary(report: dict[str, Any]) -> None:
    from rich.table import Table

    console = stdout_console()
    latency = report["latency_seconds"] or {}
    head = Table("what", "value", show_edge=False, show_header=False)
    head.add_row("transactions in Kafka", f"{report['transactions_in_kafka']:,}")
    head.add_row("scored" + (f" (event time >= {report['since']})" if report["since"] else ""),
                 f"{report['scored']:,} ({report['duplicate_scores']:,} duplicate publications)")
    head.add_row("alerts", f"{report['alerts']:,}")
    head.add_row("labels arrived for", f"{report['labelled']:,} scored ({report['frauds']:,} frauds)")
    head.add_row("alerts' precision / recall", f"{_share(report['precision'])} / {_share(report['recall'])}")
    head.add_row("latency p50 / p95 / p99 / max",
                 " / ".join(f"{latency[k]:.2f}s" for k in ("p50", "p95", "p99", "max")) if latency else "-")
    head.add_row("dead letters", f"{report['dead_letters']:,}")
    console.print(head)
    versions = Table("model version", "scored", "alerts", "precision", "recall", show_edge=False)
    for version, figures in report["model_versions"].items():
        versions.add_row(version, f"{figures['scored']:,}", f"{figures['alerts']:,}", _share(figures["precision"]), _share(figures["recall"]))
    console.print(versions)
    for name, url in report["urls"].items():
        console.print(f"{name:<22} {url}", highlight=False)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _json_line(record: dict[str, Any]) -> str:
    import json

    return json.dumps(record) + "\n"


SCORE_COLUMNS = ("scored_time", "transaction_id", "score", "decision", "model_version", "tx_datetime")


def _scores_table(records: list[dict[str, Any]], title: str, reasons: bool = False):
    from rich.table import Table

    table = Table(*SCORE_COLUMNS, *(("reasons",) if reasons else ()), title=title, show_edge=False)
    for record in records:
        table.add_row(*_cells(record, reasons))
    return table


def _cells(record: dict[str, Any], reasons: bool = False) -> list[str]:
    from fraudctl.contracts import read_score_event

    record = read_score_event(record)
    decision = record.get("decision", "-")
    cells = [str(record.get("scored_time", "-")), str(record.get("transaction_id", "-")),
             format_number(record.get("score")), f"[red]{decision}[/]" if decision == "fraud" else str(decision),
             str(record.get("model_version", "-")), str(record.get("tx_datetime", "-"))]
    return cells + ([reason_text(record.get("reasons"))] if reasons else [])


def reason_text(reasons: dict[str, Any] | None) -> str:
    """An alert's reasons in one cell: `rule NAME vN`, then the model's contributions, e.g.
    `rule big-night v4; amount +1.92, terminal_fraud_share_7d +0.81, is_night -0.12`."""
    if not reasons:
        return "-"
    parts = [f"rule {r['name']} v{r['version']}" for r in reasons.get("rules") or []]
    if "features" in reasons and reasons["features"] is None:
        return "; ".join(parts + ["no contributions (batch over scorer.explained_alerts_per_batch)"])
    features = ", ".join(f"{f['feature']} {f['contribution']:+.3g}" for f in reasons.get("features") or [])
    return "; ".join(parts + ([features] if features else [])) or "-"


def _score_line(record: dict[str, Any], reasons: bool = False) -> str:
    return "  ".join(_cells(record, reasons))


def _render(report: dict[str, Any]) -> None:
    from rich.table import Table

    console = stdout_console()
    model = report.get("model") or {}
    since = dt.datetime.fromtimestamp(model["since"], tz=dt.timezone.utc).isoformat(timespec="seconds") \
        if model.get("since") else "-"
    console.print(f"scorer [{health_colour(report['health'])}]{report['health']}[/] (process {report['process']}, "
                  f"pid {report.get('pid') or '-'}, master {report.get('master') or '-'})", highlight=False)
    if report.get("degraded"):
        console.print(f"[yellow]degraded:[/] {report['degraded']}", highlight=False)
    counters = report.get("counters") or {}
    table = Table("what", "value", show_edge=False, show_header=False)
    table.add_row("model", f"{model.get('name') or '-'} v{model.get('version') or '-'} since {since} "
                           f"(threshold {format_number(model.get('threshold'))})")
    for version, reason in (model.get("refused") or {}).items():
        table.add_row(f"refused v{version}", reason)
    rules = report.get("rules") or {}
    if rules:
        table.add_row("rules", f"set version {rules.get('version')}: {len(rules.get('active') or [])} active, "
                               f"{len(rules.get('shadow') or [])} in shadow")
    for name, reason in (rules.get("paused") or {}).items():
        table.add_row(f"[yellow]paused rule {name}[/]", reason)
    table.add_row("input rows/s", format_number(report.get("input_rows_per_second")))
    table.add_row("processed rows/s", format_number(report.get("processed_rows_per_second")))
    table.add_row("last batch", f"{format_number(report.get('batch_duration_ms'))} ms")
    latency = report.get("latency_ms") or {}
    table.add_row("latency", "-" if not latency else (
        f"p50 {latency['p50']:,.0f} ms, p99 {latency['p99']:,.0f} ms, max {latency['max']:,.0f} ms "
        "(last batch; Kafka timestamp to score)"))
    table.add_row("scored / alerts", f"{counters.get('scored', 0):,} / {counters.get('alerts', 0):,}")
    if counters.get("unexplained_alerts"):
        table.add_row("[yellow]alerts without contributions[/]",
                      f"{counters['unexplained_alerts']:,} (batches over scorer.explained_alerts_per_batch)")
    table.add_row("dead letters", f"{report.get('dead_letters', 0):,}")
    table.add_row("duplicates skipped", f"{counters.get('duplicates', 0):,}")
    for topic, partitions in sorted((report.get("lag") or {}).items()):
        table.add_row(f"lag {topic}", ", ".join(f"p{p}: {n:,}" for p, n in sorted(partitions.items())))
    size = report.get("state_size") or {}
    if size:
        table.add_row("state", f"{size.get('transactions', 0):,} transactions, {size.get('labelled', 0):,} labelled, "
                               f"{size.get('disk_bytes', 0) / 1e6:.1f} MB on disk")
    table.add_row("Spark UI", report.get("ui") or "-")
    console.print(table)
