"""The README's claims about the tree hold."""

import re
import subprocess

from tests.conftest import REPO


def layout_entries() -> set[str]:
    """The top-level names the README's layout section lists (`dags/`, `fraudctl.yaml`, ...)."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"^## Layout\n+```\n(.*?)^```", readme, re.M | re.S)
    assert block, "README has no layout block"
    # A line names one or more entries, then two or more spaces, then what they hold.
    return {name for line in block.group(1).splitlines() if line and not line[0].isspace()
            for name in re.split(r"\s{2,}", line)[0].split()}


def holds_files(path) -> bool:
    return path.is_file() or any(p.is_file() and "__pycache__" not in p.parts for p in path.rglob("*"))


def test_readme_layout_matches_the_tree():
    listed = layout_entries()
    missing = sorted(name for name in listed if not holds_files(REPO / name))
    assert not missing, f"the README's layout lists what the tree does not have: {missing}"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    folders = {path.split("/")[0] + "/" for path in tracked.splitlines() if "/" in path and not path.startswith(".")}
    unlisted = sorted(folders - listed)
    assert not unlisted, f"folders of the tree the README's layout does not list: {unlisted}"


def test_readme_architecture_names_every_package():
    readme = (REPO / "README.md").read_text()
    section = re.search(r"^## Architecture\n(.*?)^## ", readme, re.M | re.S)
    assert section, "README has no Architecture section"
    packages = sorted(p.parent.name for p in (REPO / "fraudctl").glob("*/__init__.py"))
    assert [name for name in packages if f"`{name}/`" not in section.group(1)] == []


def test_benchmarks_do_not_import_the_tests():
    """bench/ runs from a checkout without tests/ on its mind: what both need lives in bench/support.py."""
    import ast

    found = []
    for path in sorted((REPO / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found += [f"{path.name}:{node.lineno} {name}" for name in names if name.split(".")[0] == "tests"]
    assert not found, f"benchmarks import the tests: {found}"
