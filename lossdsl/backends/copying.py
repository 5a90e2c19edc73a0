"""Runtime helpers as generated modules copy them, and the check that a copy needs nothing more.

A generated module imports its array library and nothing of lossdsl: it copies the source of the
helpers it calls. A backend sees the helpers of its own runtime module (``<backend>_runtime.py``)
and, where that defines none of the name, those of the shared ``runtime.py``, written against
``xp`` (NumPy's API): ``xp.NAME`` prints as the backend's array alias, or as what the runtime's
``NUMPY_NAMES`` stands in for a NumPy function its library lacks or spells otherwise.

Each helper is checked, when a backend is first used, for the global names it refers to: each must
be the array module (and its attributes), another helper, a builtin, or a standard-library module
that the helper's runtime file imports, which the generated module then imports too. So a helper
that needs ``math``, or a constant of its file, fails here rather than when a generated module runs.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import importlib.util
import re
import symtable
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol

from . import runtime as shared

_SHARED_ALIAS = "xp"
_HELPER_CALL = re.compile(r"\b(_[a-z][a-z0-9_]*)\(")


class BackendLike(Protocol):
    alias: str  # the array module's name in generated code
    imports: str  # the import statements every generated module of the backend opens with
    runtime_module: str  # the backend's runtime file, as a module name


@dataclass(frozen=True)
class Helper:
    source: str  # as the backend's modules hold it
    needs: tuple[str, ...]  # the other helpers it refers to, in the order they appear
    imports: tuple[str, ...]  # import statements it needs beyond the backend's own


def helpers_for(code: str, backend: BackendLike) -> str:
    """Source of the runtime helpers ``code`` calls and those they need, each once."""
    table = _helpers(backend.runtime_module, backend.alias, backend.imports)
    return "\n\n\n".join(table[name].source for name in _closure(code, table))


def imports_for(code: str, backend: BackendLike) -> str:
    """The import statements of a module of ``code`` and its helpers: the standard-library modules
    the helpers need, then the backend's own, grouped and sorted as isort (and ruff) want them."""
    table = _helpers(backend.runtime_module, backend.alias, backend.imports)
    extra = {line for name in _closure(code, table) for line in table[name].imports}
    ordered = sorted(extra, key=lambda line: (line.startswith("from "), line))
    return "\n".join(ordered) + "\n\n" + backend.imports if ordered else backend.imports


def check(backend: BackendLike) -> tuple[str, ...]:
    """The names of the helpers the backend can copy; raises unless each refers only to what its copy
    will find."""
    return tuple(_helpers(backend.runtime_module, backend.alias, backend.imports))


def _closure(code: str, table: dict[str, Helper]) -> list[str]:
    order: list[str] = []

    def visit(names: list[str] | tuple[str, ...]) -> None:
        for name in names:
            if name in table and name not in order:
                order.append(name)
                visit(table[name].needs)

    visit(_HELPER_CALL.findall(code))
    return order


@dataclass(frozen=True)
class _Def:
    module: str
    source: str
    imports: dict[str, str]  # the names its file binds by import -> the statement


@functools.cache
def _helpers(runtime: str, alias: str, imports: str) -> dict[str, Helper]:
    """Every helper a backend's modules can copy, by name, each checked (see the module docstring).
    The runtime file is read, not imported, so that a module prints where its array library is not
    installed; where it is, each ``alias.NAME`` a helper calls is checked to exist."""
    tree = _tree(runtime)
    defs = _defs(shared.__name__) | _defs(runtime)  # where both define a name, the backend's own
    array = _array_module(runtime, alias)
    renamed: dict[str, str] = next((ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                                    and [getattr(t, "id", None) for t in node.targets] == ["NUMPY_NAMES"]), {})
    header = _bound(ast.parse(imports))
    table = {}
    for name, d in defs.items():
        source = d.source
        if d.module == shared.__name__:
            source = re.sub(rf"\b{_SHARED_ALIAS}\.(\w+)", lambda m: renamed.get(m[1], f"{alias}.{m[1]}"), source)
        table[name] = _checked(name, d, source, defs, header, array, alias)
    return table


def _checked(name: str, d: _Def, source: str, defs: dict[str, _Def], header: dict[str, str],
             array: ModuleType | None, alias: str) -> Helper:
    where = f"runtime helper {name} (of {d.module}, as copied for {alias})"
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == alias \
                and array is not None and not hasattr(array, node.attr):
            raise AttributeError(f"{where} calls {alias}.{node.attr}, which {alias} lacks: write it with what "
                                 f"{alias} has, or stand one in (NUMPY_NAMES of the backend's runtime)")
    needs, imports = [], []
    for free in _free_names(source, tree):
        if free in header or hasattr(builtins, free):
            continue
        if free in defs:
            needs.append(free)
        elif free in d.imports and d.imports[free].split()[1].split(".")[0] in sys.stdlib_module_names:
            imports.append(d.imports[free])
        else:
            raise NameError(f"{where} refers to {free!r}, which a generated module would not define: a helper "
                            "may use only its array module, other helpers, builtins and standard-library "
                            "modules its runtime file imports")
    return Helper(source.rstrip(), tuple(needs), tuple(imports))


def _free_names(source: str, tree: ast.Module) -> list[str]:
    """The global names the one function in ``source`` refers to, in the order they first appear."""
    names: set[str] = set()

    def collect(table: symtable.SymbolTable) -> None:
        names.update(s.get_name() for s in table.get_symbols() if s.is_global() and s.is_referenced())
        for child in table.get_children():
            collect(child)

    collect(symtable.symtable(source, "<helper>", "exec").get_children()[0])
    seen = sorted((n.lineno, n.col_offset, n.id) for n in ast.walk(tree)
                  if isinstance(n, ast.Name) and n.id in names)
    return list(dict.fromkeys(name for _, _, name in seen))


def _source(module: str) -> str:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module  # our own files
    return Path(spec.origin).read_text(encoding="utf-8")


def _tree(module: str) -> ast.Module:
    return ast.parse(_source(module))


def _array_module(runtime: str, alias: str) -> ModuleType | None:
    """The array module a runtime file calls ``alias``, or None where it is not installed."""
    statement = _bound(_tree(runtime))[alias]
    name = statement.split()[1]
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _defs(module: str) -> dict[str, _Def]:
    """The functions a runtime file defines (not those it imports), with the names it imports."""
    source = _source(module)
    tree = ast.parse(source)
    lines = source.splitlines()
    imports = _bound(tree)
    return {node.name: _Def(module, "\n".join(lines[node.lineno - 1:node.end_lineno]), imports)
            for node in tree.body if isinstance(node, ast.FunctionDef)}


def _bound(tree: ast.Module) -> dict[str, str]:
    """The names the module's top-level absolute imports bind -> the statement that binds each."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0):
            head = f"from {node.module} import " if isinstance(node, ast.ImportFrom) else "import "
            for a in node.names:
                out[(a.asname or a.name).split(".")[0]] = head + a.name + (f" as {a.asname}" if a.asname else "")
    return out
