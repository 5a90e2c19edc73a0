"""The pipeline in one place: every phase, run once, at compile time.

source ──parse──▶ AST ──resolve──▶ IR ──gradient──▶ gradient IR ──rewrite, print──▶ module source ──load──▶ module

Each phase takes what the one before returned and returns something new; nothing here or later
adds to a graph another object holds. A loss that cannot be differentiated or printed fails here,
at ``compile()``, not at its first call.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import sympy as sp

from . import syntax as A
from .backend import Backend, backend
from .codegen import ModuleWriter, formula_lines, load_module
from .errors import LimitError, LossDSLError, Span
from .gradient import gradients
from .ir import Graph
from .library import library
from .parser import MAX_SOURCE_CHARS, parse
from .resolve import Resolver


def read_source(source: str | Path) -> tuple[str, str]:
    """``(text, file)`` for an expression, or for a path to a ``.loss`` file."""
    if isinstance(source, Path) or (isinstance(source, str) and source.endswith(".loss")
                                    and "\n" not in source and Path(source).is_file()):
        return read_file(Path(source)), str(source)
    if isinstance(source, str) and source.endswith(".loss") and "\n" not in source and "(" not in source:
        raise LossDSLError(f"{source} is a directory, not a .loss file" if Path(source).is_dir()
                           else f"no such file: {source}")
    return source, "<string>"


def read_file(path: Path) -> str:
    """A source file's text, read no further than the parser's limit allows (a sparse file, a pipe
    or /dev/zero is never read whole), decoded as UTF-8 with a message naming the first bad byte."""
    limit = MAX_SOURCE_CHARS * 4  # UTF-8 takes at most 4 bytes a character
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise LossDSLError(f"cannot read {path}: {e.strerror}") from None
    if len(data) > limit:
        raise LimitError(f"source longer than {MAX_SOURCE_CHARS} characters", Span(1, 1, "", str(path)))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise LossDSLError(f"not UTF-8 text: byte 0x{data[e.start]:02x} cannot be decoded "
                           "(save the file as UTF-8)",
                           Span(line, column, data.decode("utf-8", "replace"), str(path))) from None


def lower(program: A.Program) -> tuple[Graph, sp.Expr]:
    """Resolve a parsed program against the standard library into an IR graph and its root."""
    resolver = Resolver(program, library())
    root = resolver.resolve()
    return resolver.graph, root


@dataclass(frozen=True)
class Compilation:
    """Everything compile time derives for one source and backend; read-only from here on."""

    text: str
    file: str
    backend: Backend
    graph: Graph
    root: sp.Expr
    writer: ModuleWriter  # holds the full gradient IR; writes the modules asked for later
    source: str  # the standalone module
    module: types.ModuleType | None  # None where only printed (load=False)


@dataclass(frozen=True)
class Front:
    """What a source derives whatever the backend: its IR, its full gradient IR and the formulas of
    its modules' docstrings. Each backend's writer only reads them, so one is shared by all."""

    graph: Graph
    root: sp.Expr
    gradient: tuple[Graph, dict[str, sp.Expr]]
    formulas: tuple[str, ...]


@lru_cache(maxsize=256)
def front(text: str, file: str) -> Front:
    """Parse, resolve and differentiate ``text``, and render its formulas: once per source, however
    many backends print it (a failure is raised again each time: lru_cache keeps no exceptions)."""
    program = parse(text, file)
    graph, root = lower(program)
    float_inputs = tuple(n for n in graph.inputs if n not in graph.index_inputs)
    try:
        gradient = gradients(graph, root, float_inputs)
    except LossDSLError as e:  # the derivative of the whole loss: point at the loss expression
        if e.span is not None or program.result is None:
            raise
        raise type(e)(e.message, program.result.span, e.hint) from None
    return Front(graph, root, gradient, formula_lines(graph, root, gradient, len(text)))


def build(text: str, file: str, backend_name: str, load: bool = True, checks: bool = True) -> Compilation:
    """Run every phase for ``text`` and the backend called ``backend_name``; ``load``: also load the
    module (which imports its array library; without, the source prints where that is not installed);
    ``checks``: whether the generated code checks values at call time (see checks.py)."""
    b = backend(backend_name, installed=load)
    f = front(text, file)
    writer = ModuleWriter(text, b, f.graph, f.root, f.gradient, f.formulas, checks)
    source = writer.module()
    return Compilation(text, file, b, f.graph, f.root, writer, source, load_module(source, b.name) if load else None)
