"""The house stays clean: the import graph of fraudctl/, jobs/ and dags/ (every import, also those inside
functions) has no circle and no import from a lower layer to a higher one. Computed with `ast`, no import.

The layers, bottom up (README, "Architecture"): the foundation (errors, contracts, choices, clock, config),
the clients of external systems, the stages of the data flow (features, data and rules, model, stream, retraining),
the stack (runtimes, secrets), the operator's services, and on top the CLI and the entry points (jobs/, dags/).
A module may import its own layer and the layers below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

LAYERS = [  # (rank, module prefixes): a module's layer is that of its longest matching prefix
    (0, ("fraudctl.errors", "fraudctl.contracts", "fraudctl.choices", "fraudctl.clock", "fraudctl.config")),
    (1, ("fraudctl.clients",)),
    (2, ("fraudctl.features", "fraudctl.data", "fraudctl.rules")),
    (3, ("fraudctl.model",)),
    (4, ("fraudctl.stream",)),
    (5, ("fraudctl.retraining",)),
    (6, ("fraudctl.stack",)),
    (7, ("fraudctl.operate",)),
    (8, ("fraudctl.cli", "fraudctl.reference", "fraudctl.__main__", "jobs", "dags")),
]


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for rank, prefixes in LAYERS:
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    return best[0] if best else None


def modules() -> dict[str, Path]:
    found = {}
    for root in ("fraudctl", "jobs", "dags"):
        for path in (REPO / root).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports: `from a.b import c` is a.b.c when that is a module, else a.b."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a package's attribute
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer():
    assert [name for name in graph() if name != "fraudctl" and layer_of(name) is None] == []


def test_the_import_graph_has_no_circle():
    assert cycles(graph()) == []


def test_no_module_imports_a_higher_layer():
    upward = []
    for name, targets in graph().items():
        if name == "fraudctl":
            continue
        for target in targets:
            if target != "fraudctl" and layer_of(target) > layer_of(name):
                upward.append(f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})")
    assert sorted(upward) == []


def test_the_checks_see_a_circle_and_an_upward_import():
    """The graph code itself: a made-up circle and an upward edge are found."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("fraudctl.stack.native") > layer_of("fraudctl.clients.objectstore")
    assert layer_of("fraudctl.data.replay.core") == layer_of("fraudctl.features")


def test_the_scorers_core_knows_no_spark_runtime_or_registry_client():
    """fraudctl/stream/ is the scorer's Spark-free core: jobs/scorer.py wires Spark and the registry to it,
    and the scorer as a service (fraudctl/operate/scorer_service.py) sits above the runtimes."""
    edges = graph()
    forbidden = ("fraudctl.stack", "fraudctl.operate", "fraudctl.model.registry", "fraudctl.clients.spark")
    found = [f"{name} imports {target}" for name, targets in edges.items() if name.startswith("fraudctl.stream")
             for target in targets if target.startswith(forbidden)]
    assert found == []
    for path in (REPO / "fraudctl" / "stream").glob("*.py"):
        assert "pyspark" not in path.read_text(), path
    assert not [name for name, targets in edges.items() if "fraudctl.operate.scorer_service" in targets
                and layer_of(name) < layer_of("fraudctl.operate.scorer_service")]
