"""README.md's reference sections (commands, configuration, exit codes) are generated from the code and
must not drift from it: fraudctl/reference.py renders them, this checks them."""

import subprocess
import sys
from typing import Annotated, Optional

import pytest
import typer

from fraudctl import reference
from fraudctl.config import Config, Section, env_name, load_config
from tests.conftest import REPO

README = REPO / "README.md"


def test_readme_reference_sections_are_generated_from_the_code():
    diff = reference.drift(README)
    assert not diff, (f"README.md's generated sections differ from the code. Regenerate them with:\n\n"
                      f"    {reference.REGENERATE}\n\n(diff, README as it is -> generated)\n{diff}")


def test_every_generated_section_is_in_the_readme_once():
    names = [match.group("name") for match in reference.BLOCK.finditer(README.read_text())]
    assert sorted(names) == sorted(reference.SECTIONS)


def test_regenerate_replaces_only_what_lies_between_the_markers():
    text = "\n".join(["# title", "prose before", "",
                      *(reference.block(name, "STALE BODY\n") for name in reference.SECTIONS), "", "prose after", ""])
    fresh = reference.regenerate(text)
    assert fresh.startswith("# title\nprose before\n\n") and fresh.endswith("\n\nprose after\n")
    assert "STALE BODY" not in fresh
    assert reference.regenerate(fresh) == fresh


def test_regenerate_refuses_a_readme_without_markers():
    with pytest.raises(ValueError, match="no markers"):
        reference.regenerate("# title\n")


def test_check_exits_1_and_names_the_command_on_drift(tmp_path):
    stale = tmp_path / "README.md"
    stale.write_text(README.read_text().replace("| 130 | `INTERRUPTED` |", "| 130 | `INTERRUPTED` | drifted |"))
    result = subprocess.run([sys.executable, "-m", "fraudctl.reference", "--check", str(stale)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1 and reference.REGENERATE in result.stderr and "drifted" in result.stdout
    subprocess.run([sys.executable, "-m", "fraudctl.reference", "--write", str(stale)], check=True, cwd=REPO,
                   capture_output=True)
    assert not reference.drift(stale)


def test_commands_reference_leaves_out_hidden_and_typer_options():
    app = typer.Typer(name="demo", help="A demo.")

    @app.command()
    def run(
        name: Annotated[str, typer.Argument(help="Who.")],
        count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many.")] = 3,
        loud: Annotated[bool, typer.Option("--loud/--quiet", help="Volume.")] = False,
        secret: Annotated[Optional[str], typer.Option("--secret", hidden=True, help="Internal.")] = None,
    ) -> None:
        """Run it.

        More detail that stays in --help.
        """

    @app.command(hidden=True)
    def internal() -> None:
        """Not for operators."""

    text = reference.commands_markdown(app)
    assert "#### `demo run`" in text and "Run it." in text and "More detail" not in text
    assert "`demo run [OPTIONS] NAME`" in text
    assert "| `NAME` |  | Who. Required. |" in text
    assert "| `-n, --count <int>` | `3` | How many. Range: `x>=1`. |" in text
    assert "| `--loud / --quiet` | `--quiet` | Volume. |" in text
    for absent in ("--secret", "Internal", "internal", "--install-completion", "--show-completion"):
        assert absent not in text


def config_keys() -> list[str]:
    keys = []
    for section, info in Config.model_fields.items():
        if not info.exclude:
            keys += [f"{section}.{key}" for key, *_ in reference._config_rows(getattr(Config(), section))]
    return keys


def test_every_config_key_has_a_description_and_every_section_a_docstring():
    """The configuration reference takes both from the code: a new key needs Field(description=...)."""
    undescribed = [f"{cls.__name__}.{name}" for cls in Section.__subclasses__() if cls is not Config
                   for name, info in cls.model_fields.items()
                   if not info.description and not (isinstance(info.annotation, type)
                                                    and issubclass(info.annotation, Section))]
    assert not undescribed, f"give these config fields a Field(description=...): {undescribed}"
    undocumented = [name for name, info in Config.model_fields.items()
                    if not info.exclude and not (info.annotation.__doc__ or "").strip()]
    assert not undocumented, f"give these config sections a docstring: {undocumented}"


def test_each_documented_variable_overrides_its_key(tmp_path):
    """The variables the reference names are the ones the loader reads (flag > FRAUDCTL_* > file > default)."""
    rows = {f"{section}.{key}": default for section in Config.model_fields if section != "source"
            for key, _, default, _ in reference._config_rows(getattr(Config(), section))}
    env = {env_name(key): default for key, default in rows.items() if "<" not in key and default != "null"}
    assert len(env) > 50
    loaded = load_config(env=env, cwd=tmp_path)  # an unknown key would be an error naming the variable
    assert loaded.model_dump() == Config(runtime={"state_dir": loaded.runtime.state_dir}).model_dump()
    assert load_config(env={"FRAUDCTL_LAYOUT__COLUMNS__AMT": "amount"}, cwd=tmp_path).layout.columns == {"amt": "amount"}
