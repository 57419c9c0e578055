"""The README's reference sections, generated from the code: commands, configuration keys, exit codes.

    python -m fraudctl.reference --write README.md   # regenerate every generated section in place
    python -m fraudctl.reference --check README.md   # exit 1 (and show a diff) when a section has drifted
    python -m fraudctl.reference commands            # print one section: commands, config or exit-codes

Each section lies in README.md between `<!-- BEGIN GENERATED: <name> ... -->` and
`<!-- END GENERATED: <name> -->`; tests/unit/test_reference_docs.py fails when one differs from what this
module renders. The sources, each written once:
- commands: the typer app (`fraudctl.cli.app`): usage, the first paragraph of the help, arguments and
  options with their defaults; hidden options and typer's shell-completion options are left out;
- config: `fraudctl.config.Config`: every key with its type (and bounds), default, the `FRAUDCTL_*`
  variable that overrides it (`fraudctl.config.env_name`, the name the loader reads) and the field's
  `description`; a section's docstring introduces it;
- exit-codes: `fraudctl.errors.ExitCode` and each code's `description`.

Run only by hand and by the tests: nothing here is imported by the CLI. Defaults, ranges and metavars are
read with the helpers typer's own help uses (typer is pinned below 0.30 in pyproject.toml).
"""

from __future__ import annotations

import argparse
import difflib
import enum
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterator

REGENERATE = "python -m fraudctl.reference --write README.md"
BEGIN = "<!-- BEGIN GENERATED: {name} (do not edit: the code is the source; " + REGENERATE + ") -->"
END = "<!-- END GENERATED: {name} -->"
BLOCK = re.compile(r"<!-- BEGIN GENERATED: (?P<name>[\w-]+)\b[^>]*-->\n(?P<body>.*?)<!-- END GENERATED: (?P=name) -->",
                   re.S)
# typer's own options, the same for every typer program: not fraudctl's interface.
TYPER_OPTIONS = {"install_completion", "show_completion"}


# ---------------------------------------------------------------------------------------------- markdown


def cell(text: str) -> str:
    """Text inside a table cell: one line, pipes escaped, `<` too outside `code spans` (it could open a tag)."""
    parts = " ".join(str(text).split()).replace("|", "\\|").split("`")
    parts[::2] = [part.replace("<", "&lt;") for part in parts[::2]]
    return "`".join(parts)


def code(text: str) -> str:
    """Text as a code span inside a table cell."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}" if text else ""


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def first_paragraph(text: str | None) -> str:
    """The first paragraph of a help text or docstring, as one line."""
    if not text:
        return ""
    paragraph = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines() if line.strip() != "\b")


# ---------------------------------------------------------------------------------------------- commands


def commands_markdown(app: Any = None) -> str:
    """Every command of the typer app (fraudctl's unless given): usage, help, arguments and options."""
    import typer

    if app is None:
        from fraudctl.cli import app
    root = typer.main.get_command(app)
    context_class = type(root).context_class
    ctx = context_class(root, info_name=app.info.name or "fraudctl")
    lines = ["Every command takes `-h`/`--help`. Options without a default here take theirs from the configuration "
             "(the help says which key) or are off."]
    for path, command, command_ctx in _walk(root, ctx, (ctx.info_name,)):
        lines += ["", f"#### `{' '.join(path)}`", ""]
        help_text = first_paragraph(command.help) or first_paragraph(command.short_help)
        if help_text:
            lines += [help_text, ""]
        lines.append(code(" ".join(path + _usage(command, command_ctx))))
        rows = [row for param in command.params if (row := _param_row(param, command_ctx))]
        if rows:
            lines += [""] + table(("argument / option", "default", "description"), rows)
        subcommands = _subcommands(command, command_ctx)
        if subcommands:
            names = ", ".join(f"`{name}`" for name, _ in subcommands)
            lines += ["", f"Sub-commands: {names}."]
    return "\n".join(lines) + "\n"


def _subcommands(command: Any, ctx: Any) -> list[tuple[str, Any]]:
    if not hasattr(command, "list_commands"):
        return []
    found = [(name, command.get_command(ctx, name)) for name in command.list_commands(ctx)]
    return [(name, sub) for name, sub in found if sub is not None and not sub.hidden]


def _walk(command: Any, ctx: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    yield path, command, ctx
    for name, sub in _subcommands(command, ctx):
        sub_ctx = type(ctx)(sub, info_name=name, parent=ctx)
        yield from _walk(sub, sub_ctx, path + (name,))


def _argument_name(param: Any) -> str:
    return (param.metavar or param.name.upper()) + ("..." if param.nargs != 1 else "")


def _usage(command: Any, ctx: Any) -> tuple[str, ...]:
    """`[OPTIONS] FILE [MORE]... COMMAND [ARGS]...`, from what the help shows."""
    params = [param for param in command.params if not getattr(param, "hidden", False) and param.name not in TYPER_OPTIONS]
    pieces = ["[OPTIONS]"] if any(param.param_type_name == "option" for param in params) else []
    for param in params:
        if param.param_type_name == "argument":
            pieces.append(_argument_name(param) if param.required else f"[{_argument_name(param)}]")
    if _subcommands(command, ctx):
        pieces.append("COMMAND [ARGS]..." if not getattr(command, "invoke_without_command", False)
                      else "[COMMAND [ARGS]...]")
    return tuple(pieces)


def _param_row(param: Any, ctx: Any) -> tuple[str, str, str] | None:
    if getattr(param, "hidden", False) or param.name in TYPER_OPTIONS:
        return None
    is_option = param.param_type_name == "option"
    if is_option:
        names = ", ".join(sorted(param.opts, key=lambda opt: (opt.startswith("--"), opt)))
        if param.secondary_opts:
            names += " / " + ", ".join(param.secondary_opts)
        if not param.is_flag and not param.count:
            metavar = param.metavar or (param.display_type_rich(ctx) or "").replace(" range>", ">")
            names += f" {metavar}" if metavar else ""
    else:
        names = _argument_name(param)
    description = [first_paragraph(getattr(param, "help", None))]
    if getattr(param, "multiple", False) and "repeatable" not in description[0].lower():
        description.append("Repeatable.")
    span = param._get_number_range_help_str() if is_option and hasattr(param, "_get_number_range_help_str") else ""
    if span:
        description.append(f"Range: `{span}`.")
    if param.envvar:
        envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
        description.append("Environment: " + ", ".join(f"`{name}`" for name in envvars) + ".")
    if param.required:
        description.append("Required.")
    return code(names), code(_param_default(param, ctx)), " ".join(cell(part) for part in description if part)


def _param_default(param: Any, ctx: Any) -> str:
    if isinstance(param.show_default, str):
        return param.show_default
    if not param.show_default:
        return ""
    default = param._extract_default_help_str(ctx=ctx)
    if default is None or (param.param_type_name == "option" and param.is_flag and not param.secondary_opts):
        return ""  # an on/off flag is off unless given
    if param.param_type_name == "option" and param.is_flag:
        return (param.opts if default else param.secondary_opts)[0]
    return param._get_default_string(ctx=ctx, show_default_is_str=False, default_value=default)


# ---------------------------------------------------------------------------------------------- config


def config_markdown() -> str:
    """Every key of fraudctl.config.Config, one table per section."""
    from pydantic import BaseModel

    from fraudctl.config import DEFAULT_CONFIG_NAME, ENV_CONFIG_PATH, ENV_NESTING, ENV_PREFIX, Config, env_name

    lines = [f"Every key is optional; `{DEFAULT_CONFIG_NAME}` shows them all with their defaults. The variable "
             f"`{ENV_PREFIX}<SECTION>{ENV_NESTING}<KEY>` overrides a key (a deeper key adds `{ENV_NESTING}<KEY>` "
             f"per level); `{ENV_CONFIG_PATH}` names the file."]
    defaults = Config()
    for section, info in Config.model_fields.items():
        if info.exclude:  # Config.source: where the values came from, not a key
            continue
        value = getattr(defaults, section)
        lines += ["", f"#### `{section}`", ""]
        doc = first_paragraph(type(value).__doc__) if isinstance(value, BaseModel) else ""
        if doc:
            lines += [cell(doc), ""]
        rows = [(code(key), code(type_text), code(default), code(env_name(f"{section}.{key}")), cell(description))
                for key, type_text, default, description in _config_rows(value)]
        lines += table(("key", "type", "default", "variable", "description"), rows)
    return "\n".join(lines) + "\n"


def _config_rows(model: Any, prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(key under the section, type, default, description) of each field, descending into sub-sections."""
    from pydantic import BaseModel

    for name, info in type(model).model_fields.items():
        if info.exclude:
            continue
        value = getattr(model, name)
        key = prefix + name
        if isinstance(value, BaseModel):
            yield from _config_rows(value, key + ".")
        elif isinstance(value, dict) or _is_mapping(info.annotation):
            # A mapping's entries are keys of their own: FRAUDCTL_LAYOUT__COLUMNS__<NAME> sets one.
            yield key + ".<name>", _type_text(info.annotation, info.metadata), _default_text(value), \
                info.description or ""
        else:
            yield key, _type_text(info.annotation, info.metadata), _default_text(value), info.description or ""


def _is_mapping(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (dict, typing.Mapping)


def _type_text(annotation: Any, metadata: list[Any]) -> str:
    text = _annotation_text(annotation)
    bounds = _bounds_text(metadata)
    return f"{text} {bounds}" if bounds else text


def _annotation_text(annotation: Any) -> str:
    from pydantic import SecretStr

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(str(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        parts = [_annotation_text(arg) for arg in args if arg is not type(None)]
        text = " | ".join(parts)
        return text + " | null" if type(None) in args else text
    if origin is typing.Annotated:
        return _annotation_text(args[0])
    if origin in (dict, typing.Mapping):
        return f"map {_annotation_text(args[0])} → {_annotation_text(args[1])}" if args else "map"
    if annotation is SecretStr:
        return "secret"
    if annotation is Path:
        return "path"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " | ".join(str(member.value) for member in annotation)
    return getattr(annotation, "__name__", str(annotation))


def _bounds_text(metadata: list[Any]) -> str:
    """pydantic's constraints (annotated_types and its own) as `1..65535`, `> 0`, `length >= 1`, `matching ...`."""
    found: dict[str, Any] = {}
    for item in metadata:
        for attribute in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            if getattr(item, attribute, None) is not None:
                found[attribute] = getattr(item, attribute)
    parts = []
    if "ge" in found and "le" in found:
        parts.append(f"{found.pop('ge')}..{found.pop('le')}")
    symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "length >=", "max_length": "length <=",
               "pattern": "matching"}
    if len(str(found.get("pattern", ""))) > 24:  # a long pattern is noise in a table: the description says it
        found.pop("pattern")
    parts += [f"{symbols[attribute]} {bound}" for attribute, bound in found.items()]
    return ", ".join(parts)


def _default_text(value: Any) -> str:
    """A default as fraudctl.yaml writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)


# ---------------------------------------------------------------------------------------------- exit codes


def exit_codes_markdown() -> str:
    from fraudctl.errors import ExitCode

    rows = [(str(code.value), f"`{code.name}`", cell(code.description)) for code in ExitCode]
    return "\n".join(table(("code", "name", "meaning"), rows)) + "\n"


# ---------------------------------------------------------------------------------------------- README

SECTIONS: dict[str, Callable[[], str]] = {
    "commands": commands_markdown,
    "config": config_markdown,
    "exit-codes": exit_codes_markdown,
}


def block(name: str, body: str) -> str:
    return f"{BEGIN.format(name=name)}\n{body}\n{END.format(name=name)}"  # a blank line ends a table


def regenerate(text: str) -> str:
    """`text` (a README) with every generated section rendered afresh; every section must have its markers."""
    found = {match.group("name") for match in BLOCK.finditer(text)}
    unknown = sorted(found - set(SECTIONS))
    missing = sorted(set(SECTIONS) - found)
    if unknown or missing:
        raise ValueError(
            (f"unknown generated sections {unknown}; " if unknown else "")
            + (f"no markers for {missing}: add `{BEGIN.format(name=missing[0])}` and "
               f"`{END.format(name=missing[0])}` where the section goes" if missing else ""))
    rendered = {name: render() for name, render in SECTIONS.items()}
    return BLOCK.sub(lambda match: block(match.group("name"), rendered[match.group("name")]), text)


def drift(path: Path) -> str:
    """A unified diff of `path` against its regenerated self; empty when the generated sections are current."""
    text = path.read_text()
    fresh = regenerate(text)
    if fresh == text:
        return ""
    return "".join(difflib.unified_diff(text.splitlines(keepends=True), fresh.splitlines(keepends=True),
                                        f"{path} (as it is)", f"{path} (generated from the code)"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fraudctl.reference", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", metavar="README", type=Path, help="regenerate the generated sections in place")
    mode.add_argument("--check", metavar="README", type=Path, help="exit 1 when a generated section has drifted")
    mode.add_argument("section", nargs="?", choices=sorted(SECTIONS), help="print one section's markdown")
    args = parser.parse_args(argv)
    try:
        if args.section:
            sys.stdout.write(SECTIONS[args.section]())
            return 0
        if args.write:
            text = args.write.read_text()
            fresh = regenerate(text)
            if fresh != text:
                args.write.write_text(fresh)
            print(f"{args.write}: {'regenerated' if fresh != text else 'already current'}")
            return 0
        diff = drift(args.check)
        if diff:
            sys.stdout.write(diff)
            print(f"\n{args.check}: generated sections are out of date; run: {REGENERATE}", file=sys.stderr)
            return 1
        print(f"{args.check}: generated sections are current")
        return 0
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
