"""`fraudctl rules add|list|show|enable|disable|remove|test`: rules beside the model, kept with their history in
the stack's PostgreSQL and picked up by the running scorer within seconds. Each command parses, calls
`fraudctl.operate.rules_service` and renders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from fraudctl.cli.common import OutputFormat, OutputOption, command_config, emit, format_number, stdout_console

app = typer.Typer(help="Rules beside the model: conditions over a transaction's fields and features, hot-loaded "
                       "by the scorer, backtested on the lake.", no_args_is_help=True)

AuthorOption = Annotated[Optional[str], typer.Option(
    "--author", help="Who makes the change, for the history (default: the OS user).")]
NameArgument = Annotated[str, typer.Argument(help="The rule's name.")]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="rules")


def _store(ctx: typer.Context):
    from fraudctl.operate.connect import rule_store

    return rule_store(command_config(ctx))


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(help="The rule's name (lower case, digits, - _ .).")] = None,
    condition: Annotated[Optional[str], typer.Argument(
        help="The condition, e.g. 'amount > 500 and customer_tx_count_1d >= 5' (README, \"Rules\").")] = None,
    file: Annotated[Optional[Path], typer.Option(
        "--file", "-f", dir_okay=False, help="A YAML file of a rule or a list of rules (instead of NAME CONDITION).")] = None,
    action: Annotated[str, typer.Option(help="alert, or suppress (remove the model's alert: an allow-list).")] = "alert",
    mode: Annotated[str, typer.Option(help="shadow (record matches only), active or disabled.")] = "shadow",
    cap: Annotated[Optional[float], typer.Option(
        help="Largest share of a batch an active alert rule may alert on; over it, the scorer pauses the rule.")] = None,
    description: Annotated[str, typer.Option(help="What the rule is for.")] = "",
    replace: Annotated[bool, typer.Option("--replace", help="Replace rules of the same name.")] = False,
    author: AuthorOption = None,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Add rules (a new rule is in shadow unless --mode says otherwise). A condition with an unknown field, a
    type error or anything but comparisons, and/or/not, + - * / and `in (...)` is refused (exit 11) with its
    position. Rules already stored as given are left alone, so a file can be applied again from CI."""
    from fraudctl.operate import rules_service as core
    from fraudctl.rules.ruleset import make_rule

    if (file is None) == (name is None or condition is None):
        raise typer.BadParameter("give NAME and CONDITION, or --file", param_hint="'NAME CONDITION' / '--file'")
    if file is not None:
        rules = core.read_rules_file(file)
    else:
        rules = [make_rule({"name": name, "condition": condition, "action": action, "mode": mode, "cap": cap,
                            "description": description}, where="rule")]
    report = core.add(_store(ctx), rules, who=core.author(author), replace_existing=replace)
    emit(output, report, _render_changes)


@app.command("list")
def list_rules(ctx: typer.Context, output: OutputOption = OutputFormat.text) -> None:
    """The current rules and the set's version."""
    from fraudctl.operate import rules_service as core

    emit(output, core.listing(_store(ctx)), _render_list)


@app.command("show")
def show(ctx: typer.Context, name: NameArgument, output: OutputOption = OutputFormat.text) -> None:
    """A rule and its history: who changed what, when, at which set version."""
    from fraudctl.operate import rules_service as core

    emit(output, core.show(_store(ctx), name), _render_show)


@app.command("enable")
def enable(
    ctx: typer.Context, name: NameArgument,
    shadow: Annotated[bool, typer.Option("--shadow", help="Back to shadow (matches recorded, nothing raised).")] = False,
    author: AuthorOption = None, output: OutputOption = OutputFormat.text,
) -> None:
    """Make a rule active (or with --shadow, shadow); a paused rule is resumed."""
    from fraudctl.operate import rules_service as core

    report = core.set_mode(_store(ctx), name, "shadow" if shadow else "active", who=core.author(author))
    emit(output, report, _render_changes)


@app.command("disable")
def disable(ctx: typer.Context, name: NameArgument, author: AuthorOption = None,
            output: OutputOption = OutputFormat.text) -> None:
    """Stop applying a rule (it stays, with its history)."""
    from fraudctl.operate import rules_service as core

    emit(output, core.set_mode(_store(ctx), name, "disabled", who=core.author(author)), _render_changes)


@app.command("remove")
def remove(ctx: typer.Context, name: NameArgument, author: AuthorOption = None,
           output: OutputOption = OutputFormat.text) -> None:
    """Remove a rule (its history stays)."""
    from fraudctl.operate import rules_service as core

    emit(output, core.remove(_store(ctx), name, who=core.author(author)), _render_changes)


@app.command("test")
def test(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(help="A stored rule (or --file).")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", dir_okay=False, help="Rules from a YAML file.")] = None,
    since: Annotated[Optional[dt.datetime], typer.Option(
        "--from", metavar="DATE", help="First event day (UTC; default: 30 days before --to).")] = None,
    until: Annotated[Optional[dt.datetime], typer.Option(
        "--to", metavar="DATE", help="Day after the last event day (UTC; default: after the lake's last day).")] = None,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Backtest rules on the lake's window with the features the scorer would have computed and the labels
    that arrived: matches per day, precision and recall, the matches the @champion model already alerts on and
    what the rule adds."""
    from fraudctl.operate import backtest
    from fraudctl.operate import rules_service as core

    if (file is None) == (name is None):
        raise typer.BadParameter("give a rule NAME or --file", param_hint="'NAME' / '--file'")
    config = command_config(ctx)
    rules = core.read_rules_file(file) if file is not None else [_store(ctx).get(name)]
    report = backtest.run(config, rules, since=since.date() if since else None, until=until.date() if until else None)
    emit(output, report, _render_backtest)


def _render_changes(report: dict[str, Any]) -> None:
    console = stdout_console()
    for change in report["changes"]:
        console.print(f"v{change['version']} {change['what']} {change['rule']}: {change['detail']}", highlight=False)
    for name in report.get("unchanged", []):
        console.print(f"{name}: unchanged", highlight=False)
    console.print(f"rule set version {report['version']}", highlight=False)


def _rule_row(rule: dict[str, Any]) -> list[str]:
    mode = rule["mode"] + (" (paused)" if rule.get("paused") else "")
    return [rule["name"], mode, rule["action"], rule["condition"], format_number(rule.get("cap")), str(rule["version"])]


def _render_list(report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table("name", "mode", "action", "condition", "cap", "version", show_edge=False,
                  title=f"rule set version {report['version']}")
    for rule in report["rules"]:
        table.add_row(*_rule_row(rule))
    stdout_console().print(table)


def _render_show(report: dict[str, Any]) -> None:
    from rich.table import Table

    console = stdout_console()
    rule = report["rule"]
    for key in ("name", "condition", "action", "mode", "cap", "description", "version", "paused"):
        console.print(f"{key:<12} {rule.get(key) if rule.get(key) not in (None, '') else '-'}", highlight=False)
    table = Table("version", "at", "author", "what", "detail", show_edge=False, title="history")
    for change in report["history"]:
        table.add_row(str(change["version"]), change["at"], change["author"], change["what"], change["detail"])
    console.print(table)


def _render_backtest(report: dict[str, Any]) -> None:
    from rich.table import Table

    console = stdout_console()
    console.print(f"window {report['since']} .. {report['until']} (exclusive): {report['transactions']:,} "
                  f"transactions, {report['labelled']:,} labelled, {report['frauds']:,} frauds; "
                  f"model {report['model'] or '-'}; {report['seconds']:.1f} s", highlight=False)
    table = Table("rule", "matches", "labelled", "frauds", "precision", "recall", "model alerts too", "adds",
                  "adds frauds", show_edge=False)
    for rule in report["rules"]:
        table.add_row(rule["name"], f"{rule['matches']:,}", f"{rule['labelled']:,}", f"{rule['frauds']:,}",
                      format_number(rule["precision"]), format_number(rule["recall"]),
                      format_number(rule["model_alerts_too"]), format_number(rule["adds"]),
                      format_number(rule["adds_frauds"]))
    console.print(table)
    for rule in report["rules"]:
        days = ", ".join(f"{day}: {n:,}" for day, n in rule["per_day"].items())
        console.print(f"{rule['name']} per day: {days or '-'}", highlight=False)
