"""`fraudctl models list|show`, `fraudctl promote V`, `fraudctl rollback`: the MLflow model registry.

Each command parses, calls one function of `fraudctl.model.workflows`, and renders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from fraudctl.cli.common import (
    OutputFormat, OutputOption, YesOption, command_config, confirm, emit, ensure_can_confirm, format_number,
    print_warnings, stderr_console, stdout_console,
)

if TYPE_CHECKING:
    from fraudctl.model.registry import Comparison

app = typer.Typer(help="The model registry: versions, aliases (@champion, @challenger), metrics.",
                  no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="models")
    root.command("promote")(promote)
    root.command("rollback")(rollback)


@app.command("list")
def list_versions(ctx: typer.Context, output: OutputOption = OutputFormat.text) -> None:
    """Every version, newest first: aliases, test metrics, windows, creation time, link to the MLflow UI."""
    from fraudctl.model.workflows import list_models

    listed = list_models(command_config(ctx))
    emit(output, {"name": listed["name"], "versions": [_without_tags(v) for v in listed["versions"]]},
         lambda _: _render_versions(listed))


def _render_versions(listed: dict[str, Any]) -> None:
    name, uri, versions = listed["name"], listed["uri"], listed["versions"]
    console = stdout_console()
    if not versions:
        console.print(f"no versions of {name} yet: `fraudctl train` registers one", highlight=False)
        return
    from rich.table import Table

    table = Table("v", "aliases", "estimator", "AUC", "AP", "CP@100", "train", "test", "created (UTC)",
                  title=f"{name} at {uri} (windows: first..last day)")
    for v in versions:
        table.add_row(v["version"], " ".join(f"@{a}" for a in v["aliases"]), v["estimator"] or "-",
                      format_number(v["test_roc_auc"]), format_number(v["test_average_precision"]),
                      format_number(v["test_card_precision_at_100"]), _days(v["train_window"]), _days(v["test_window"]),
                      v["created"][:16].replace("T", " "))
    console.print(table)
    console.print(f"UI: {uri}/#/models/{name}", highlight=False)


@app.command("show")
def show(ctx: typer.Context, version: Annotated[str, typer.Argument(help="Version number.")],
         output: OutputOption = OutputFormat.text) -> None:
    """One version in full: aliases, metrics, parameters, artifacts, feature-contract check, links."""
    from fraudctl.model.workflows import show_model

    emit(output, show_model(command_config(ctx), version), _render_details)


def _render_details(details: dict[str, Any]) -> None:
    console = stdout_console()
    aliases = " ".join(f"@{a}" for a in details["aliases"]) or "no alias"
    console.print(f"[bold]{details['name']}[/] version {details['version']} ({aliases}), created "
                  f"{details['created']}", highlight=False)
    for key in ("estimator", "train_window", "test_window", "threshold", "run_id", "url", "run_url"):
        if details.get(key) is not None:
            console.print(f"  {key}: {details[key]}", highlight=False)
    contract = details.get("contract")
    style = "green" if contract == "ok" else "red"
    console.print(f"  feature contract: [{style}]{contract}[/]", highlight=False)
    metrics = details.get("metrics") or {}
    if metrics:
        console.print("  metrics:")
        for key, value in metrics.items():
            console.print(f"    {key}: {value:.6g}", highlight=False)
    if details.get("artifacts"):
        console.print("  artifacts: " + ", ".join(details["artifacts"]), highlight=False)


def promote(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version to make @champion.")],
    force: Annotated[bool, typer.Option("--force", help="Promote even if the gate refuses.")] = False,
    yes: YesOption = False,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Compare VERSION with the @champion on VERSION's holdout, apply the gate, move @champion."""
    from fraudctl.model.workflows import promote_version

    config = command_config(ctx)
    status = stderr_console().status(f"scoring version {version} and the champion on the same holdout")

    def review(comparison: "Comparison") -> None:
        status.stop()
        if output is OutputFormat.text:
            _render_comparison(comparison, config.model.name)
        # The gate first: a refusal needs no confirmation (it raises RefusedError after this).
        if not yes and comparison.moves_champion(force):
            confirm(f"Move @champion of {config.model.name} to version {comparison.candidate}"
                    + (" although the gate refuses" if not comparison.passes else "") + "?", output)

    with status:
        result = promote_version(config, version, force=force, review=review)
    emit(output, result, _render_promotion)


def _render_promotion(result: dict[str, Any]) -> None:
    console = stdout_console()
    if not result["changed"]:
        console.print(f"nothing to do: {result['reason']}", highlight=False)
    else:
        forced = " [yellow](forced past the gate)[/]" if result["forced"] else ""
        console.print(f"[green]@champion[/] is now version {result['champion']} (previous: "
                      f"{result['previous'] or 'none'}){forced}; `fraudctl rollback` restores the previous one",
                      highlight=False)


def rollback(ctx: typer.Context, yes: YesOption = False, output: OutputOption = OutputFormat.text) -> None:
    """Give @champion back to the version it had before the last promotion."""
    from fraudctl.model.workflows import rollback_champion

    if not yes:
        ensure_can_confirm(output)  # before any network: CI without --yes learns it at once
    config = command_config(ctx)

    def ask(current: str | None, target: str) -> None:
        if not yes:
            confirm(f"Roll @champion of {config.model.name} back from version {current or '(none)'} to version "
                    f"{target}?", output)

    emit(output, rollback_champion(config, confirm=ask), lambda result: stdout_console().print(
        f"[green]@champion[/] is version {result['champion']} again (was {result['replaced'] or 'none'})",
        highlight=False))


def _render_comparison(comparison: "Comparison", name: str) -> None:
    from rich.table import Table

    console = stdout_console()
    h = comparison.holdout
    table = Table("metric", f"candidate v{comparison.candidate}",
                  f"champion v{comparison.champion}" if comparison.champion else "champion (none)",
                  title=f"{name} on the holdout of v{h['of_version']}: {h['first_tx'][:10]}..{h['last_tx'][:10]}, "
                        f"{h['rows']:,} transactions, {h['frauds']} frauds")
    champion = comparison.champion_metrics or {}
    for key, label in (("roc_auc", "ROC AUC"), ("average_precision", "average precision"),
                       ("card_precision_at_100", "card precision@100")):
        table.add_row(label, format_number(comparison.candidate_metrics.get(key)), format_number(champion.get(key)))
    console.print(table)
    verdict = "[green]passes[/]" if comparison.passes else "[red]refuses[/]"
    console.print(f"gate (margin {comparison.margin:g} on average precision) {verdict}: {comparison.reason}",
                  highlight=False)
    print_warnings(console, comparison.warnings)


def _without_tags(version: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in version.items() if k != "tags"}


def _days(window: str | None) -> str:
    """'2018-07-25..2018-08-01' (end exclusive) -> '2018-07-25..07-31' (last day shown)."""
    if not window or ".." not in window:
        return "-"
    import datetime as dt

    start, end = window.split("..")
    try:
        last = dt.date.fromisoformat(end) - dt.timedelta(days=1)
    except ValueError:
        return window
    return f"{start}..{last.isoformat()[5:]}"
