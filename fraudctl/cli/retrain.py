"""`fraudctl retrain`: trigger the fraud_retrain DAG on Airflow and follow it; `retrain list|status`.

Exit codes: 14 the run failed, 7 --timeout passed (the run goes on), 15 Airflow refused the credentials,
8 the api-server did not answer, 11 a bad --conf parameter.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from fraudctl.cli.common import (
    OutputFormat, OutputOption, command_config, config_option, emit, print_json, stderr_console, stdout_console,
)

app = typer.Typer(help="Retrain on Airflow (the fraud_retrain DAG): trigger, follow, list, inspect.",
                  invoke_without_command=True, no_args_is_help=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="retrain")


@app.callback(invoke_without_command=True)
def retrain(
    ctx: typer.Context,
    conf: Annotated[Optional[list[str]], typer.Option(
        "--conf", metavar="KEY=VALUE",
        help="A run parameter: window_days, estimator, promotion_margin, alert_budget_per_day, source (a file instead of the lake), "
             "cutoff (ISO date). Repeatable.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run to its end, showing task states.")] = False,
    timeout: Annotated[Optional[float], config_option(
        "retrain.timeout", "--timeout", override=False,
        help="Seconds --wait waits; then exit 7, the run goes on.")] = None,
    logs: Annotated[bool, typer.Option("--logs", help="Print the failing task's log when the run fails.")] = False,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Trigger a retraining run (unpausing the DAG if needed); with --wait, follow it to the outcome."""
    if ctx.invoked_subcommand is not None:
        return
    from fraudctl.errors import RunFailedError
    from fraudctl.operate.connect import airflow_client
    from fraudctl.retraining.trigger import parse_conf, retrain as run

    config = command_config(ctx)
    err = stderr_console()
    shown: dict[str, Any] = {}

    def on_change(run_state: str, tasks: dict[str, str]) -> None:
        if output is OutputFormat.json:
            return
        changed = {t: s for t, s in tasks.items() if shown.get(t) != s}
        shown.update(tasks)
        if changed:
            err.print(f"run {run_state}: " + "  ".join(f"{t}={s}" for t, s in changed.items()), highlight=False)

    try:
        result = run(config, parse_conf(conf), connect=lambda: airflow_client(config), wait_for_end=wait,
                     timeout=timeout or config.retrain.timeout, logs=logs, on_change=on_change)
    except RunFailedError as exc:
        if output is OutputFormat.json and getattr(exc, "result", None):
            print_json(exc.result)  # type: ignore[attr-defined]
        raise
    emit(output, result, _render)


@app.command("list")
def list_runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
    output: OutputOption = OutputFormat.text,
) -> None:
    """The latest runs of the retraining DAG."""
    from fraudctl.operate.connect import airflow_client
    from fraudctl.retraining.trigger import list_runs as runs

    config = command_config(ctx)
    emit(output, {"runs": runs(config, limit=limit, af=airflow_client(config))}, _render_runs)


@app.command("status")
def status(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The DAG run id (from `retrain list`).")],
    logs: Annotated[bool, typer.Option("--logs", help="Print the failed tasks' logs.")] = False,
    output: OutputOption = OutputFormat.text,
) -> None:
    """One run: its state, its tasks and, when it finished, the outcome."""
    from fraudctl.operate.connect import airflow_client
    from fraudctl.retraining.trigger import status as run_status

    config = command_config(ctx)
    emit(output, run_status(config, run_id, logs=logs, af=airflow_client(config)), _render)


def _render_runs(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table("run id", "type", "state", "start", "end")
    for row in data["runs"]:
        table.add_row(row["run_id"], row["run_type"] or "-", row["state"] or "-", row["start"] or "-",
                      row["end"] or "-")
    stdout_console().print(table)


def _render(result: dict[str, Any]) -> None:
    from rich.table import Table

    console = stdout_console()
    console.print(f"DAG [bold]{result['dag_id']}[/] run [bold]{result['run_id']}[/]: {result['state']}",
                  highlight=False)
    if "tasks" not in result:
        console.print("triggered; follow it with `fraudctl retrain status RUN_ID` or --wait", highlight=False)
        return
    table = Table("task", "state", "seconds")
    durations = result.get("durations") or {}
    for task, task_state in result["tasks"].items():
        seconds = durations.get(task)
        table.add_row(task, task_state, f"{seconds:.1f}" if seconds is not None else "-")
    console.print(table)
    report = result.get("report")
    if report:
        metrics = report.get("metrics") or {}
        console.print(f"version {report['version']}: "
                      f"{'[green]promoted to @champion[/]' if report['promoted'] else 'kept as @challenger'} "
                      f"({report['reason']})", highlight=False)
        console.print(f"  average precision {metrics.get('average_precision', float('nan')):.4f}, ROC AUC "
                      f"{metrics.get('roc_auc', float('nan')):.4f}; data {report['data']['since']}.."
                      f"{report['data']['until']} ({report['data']['lake_files']} lake files)", highlight=False)
    for task, text in (result.get("logs") or {}).items():
        console.print(f"--- log of {task} ---", highlight=False)
        console.print("\n".join(text.splitlines()[-60:]), highlight=False, markup=False)
