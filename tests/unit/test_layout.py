"""The house's rules (docs/architecture.md), read from the code's own imports.

agi_server and admin_api never import each other, trunx imports neither, nothing shipped
imports devtools, and no module imports itself back through others. Imports inside
functions count too: a late import is still a dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("trunx", "agi_server", "admin_api")
PACKAGES = SHIPPED + ("devtools",)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules `name` imports (a `from pkg import mod` names pkg.mod)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize(("importer", "forbidden"), [
    ("agi_server", {"admin_api", "devtools"}),
    ("admin_api", {"agi_server", "devtools"}),
    ("trunx", {"agi_server", "admin_api", "devtools"}),
])
def test_rooms_import_only_downwards(importer, forbidden):
    wrong = sorted(f"{name} -> {dep}" for name, deps in GRAPH.items()
                   if _top(name) == importer for dep in deps if _top(dep) in forbidden)
    assert wrong == []


def test_no_module_imports_itself_back():
    """Tarjan's strongly connected components: any with two or more modules is a cycle.
    Package __init__ modules are left out: importing `a.b` runs `a/__init__`, which is
    not a dependency of a.b's code."""
    graph = {n: {d for d in deps if not MODULES[d].name == "__init__.py"}
             for n, deps in GRAPH.items() if MODULES[n].name != "__init__.py"}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph.get(node, ()):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_graph_is_read_at_all():
    """The checks above pass vacuously on an empty graph: the engine's wiring must show."""
    assert {"agi_server.calls.registry", "agi_server.ivr.runner"} <= GRAPH["agi_server.engine"]
    assert "trunx.ivr.program" in GRAPH["trunx.ivr.store"]
