"""`fraudctl train`: fit on a time window, evaluate on a later one, log to MLflow, register as @challenger."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any, Optional

import typer

from fraudctl.cli.common import (
    MapOption, OutputFormat, OutputOption, PresetOption, StartOption, TimeFormatOption, command_config, config_option,
    emit, format_number, input_layout, print_warnings, stderr_console, stdout_console,
)
from fraudctl.model.estimators import ESTIMATORS


# The choices are fraudctl.model.estimators.ESTIMATORS, the list the config and training also use.
EstimatorChoice = enum.Enum("EstimatorChoice", [(name, name) for name in ESTIMATORS], type=str)


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def train(
    ctx: typer.Context,
    data: Annotated[str, typer.Option(
        "--data", "-d", help="Labelled transactions: a .csv/.parquet file, or a lake directory of day-partitioned "
                             "parquet (local path or s3://bucket/prefix, S3 settings from the storage section).")],
    preset: PresetOption = None,
    column_map: MapOption = None,
    time_format: TimeFormatOption = None,
    start: StartOption = None,
    train_start: Annotated[Optional[dt.datetime], typer.Option(
        "--train-start", formats=["%Y-%m-%d"],
        help="First training day (UTC). Default: the latest window that ends with the data.")] = None,
    train_days: Annotated[Optional[int], config_option(
        "model.train_days", "--train-days", help="Training days.")] = None,
    delay_days: Annotated[Optional[int], config_option(
        "model.label_delay_days", "--delay-days",
        help="Label delay: gap between training and test, and the terminal features' delay.")] = None,
    test_days: Annotated[Optional[int], config_option("model.test_days", "--test-days", help="Test days.")] = None,
    validation_days: Annotated[Optional[int], config_option(
        "model.validation_days", "--validation-days",
        help="Days at the end of the training window that pick the threshold, scored by a model trained "
             "before them; 0 picks it on training scores.")] = None,
    estimator: Annotated[Optional[EstimatorChoice], config_option(
        "model.estimator", "--estimator", help="The estimator.")] = None,
    alert_budget: Annotated[Optional[int], config_option(
        "model.alert_budget_per_day", "--alert-budget", help="Alerts per day the threshold allows.")] = None,
    precision_target: Annotated[Optional[float], config_option(
        "model.precision_target", "--precision-target",
        help="Pick the threshold reaching this precision instead of the alert budget.")] = None,
    promote_if_better: Annotated[bool, typer.Option(
        "--promote-if-better", help="Make the new version @champion if it passes the promotion gate.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Train and evaluate only; nothing is sent to MLflow.")] = False,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Train a fraud model on a time-ordered split and register it as @challenger."""
    config = command_config(ctx)
    layout = input_layout(config, column_map)
    from fraudctl.model.workflows import train_and_register
    from fraudctl.stack import get_runtime

    rt = get_runtime(config)
    with stderr_console().status("training…") as status:
        summary = train_and_register(config, data, storage=rt.storage(), check_storage=rt.check_storage,
                                     layout=layout, dry_run=dry_run, progress=status.update,
                                     train_start=train_start.date() if train_start else None,
                                     promote_if_better=promote_if_better)
    emit(output, summary, _render)


def _render(summary: dict[str, Any]) -> None:
    from rich.table import Table

    console = stdout_console()
    window = summary["window"]
    console.print(f"[bold]{summary['estimator']}[/] trained on {window['train_start']}..{window['train_end']} "
                  f"({summary['train_transactions']:,} transactions, {summary['train_frauds']} frauds) in "
                  f"{summary['fit_seconds']:.1f} s; tested on {window['test_start']}..{window['test_end']} "
                  f"(end dates exclusive)", highlight=False)
    table = Table("metric", "test", "validation")
    test, valid = summary["metrics"], summary["validation_metrics"] or {}
    for key, label in (("roc_auc", "ROC AUC"), ("average_precision", "average precision"),
                       ("card_precision_at_100", "card precision@100"), ("alerts_per_day", "alerts/day"),
                       ("precision_at_threshold", "precision at threshold"),
                       ("recall_at_threshold", "recall at threshold"), ("transactions", "transactions"),
                       ("frauds", "frauds")):
        table.add_row(label, format_number(test.get(key)), format_number(valid.get(key)))
    console.print(table)
    threshold = summary["threshold"]
    console.print(f"threshold {threshold['threshold']:.4f} ({threshold['policy']} {threshold['target']:g}, "
                  f"chosen on {threshold['chosen_on']})", highlight=False)
    print_warnings(console, summary["warnings"])
    logged = summary["registered"]
    if logged:
        console.print(f"registered [bold]{logged['name']}[/] version {logged['version']} as @{logged['alias']}\n"
                      f"  run:     {logged['run_url']}\n  version: {logged['version_url']}", highlight=False)
    else:
        console.print("dry run: nothing logged to MLflow")
    promotion = summary["promotion"]
    if promotion:
        if promotion.get("changed"):
            console.print(f"[green]promoted[/] version {promotion['champion']} to @champion "
                          f"(previous: {promotion['previous'] or 'none'}): {promotion['reason']}", highlight=False)
        else:
            console.print(f"kept as @challenger, not promoted: {promotion['reason']}", highlight=False)

