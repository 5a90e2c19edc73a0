"""The package's import graph has no cycles: lower layers never import the phases above them.

Every import of a lossdsl module counts, wherever it stands: at the top, inside a function (an
import deferred to break a cycle still is one) or under ``TYPE_CHECKING``.
"""

import ast
from pathlib import Path

import lossdsl

PACKAGE = Path(lossdsl.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The lossdsl modules that ``path`` imports, anywhere in it."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m in modules and m != name and m != "lossdsl"}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) for p in paths}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycles():
    graph = import_graph()
    assert "lossdsl.compiled" in graph["lossdsl.torch"]  # the walk sees imports at all
    assert "lossdsl.builtins" in graph["lossdsl.rewrite"]
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_lower_layers_do_not_import_the_phases():
    graph = import_graph()
    phases = {"lossdsl.resolve", "lossdsl.gradient", "lossdsl.printer", "lossdsl.pipeline", "lossdsl.compiled",
              "lossdsl.codegen", "lossdsl.parser"}
    for lower in ("lossdsl.ir", "lossdsl.builtins", "lossdsl.rewrite", "lossdsl.errors", "lossdsl.args"):
        assert not graph[lower] & phases, (lower, graph[lower] & phases)
