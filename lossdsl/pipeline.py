"""The pipeline in one place: source → AST → IR (graph and root) → compiled loss."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import sympy as sp

from . import syntax as A
from .compiled import CompiledLoss
from .errors import LossDSLError
from .ir import Graph
from .library import library
from .parser import parse
from .resolve import Resolver


def read_source(source: str | Path) -> tuple[str, str]:
    """``(text, file)`` for an expression, or for a path to a ``.loss`` file."""
    if isinstance(source, Path) or (isinstance(source, str) and source.endswith(".loss")
                                    and "\n" not in source and Path(source).is_file()):
        path = Path(source)
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as e:
            raise LossDSLError(f"cannot read {path}: {e.strerror}") from None
    if isinstance(source, str) and source.endswith(".loss") and "\n" not in source and "(" not in source:
        raise LossDSLError(f"no such file: {source}")
    return source, "<string>"


def lower(program: A.Program) -> tuple[Graph, sp.Expr]:
    """Resolve a parsed program against the standard library into an IR graph and its root."""
    resolver = Resolver(program, library())
    root = resolver.resolve()
    return resolver.graph, root


@lru_cache(maxsize=256)
def _compile(text: str, file: str, backend: str) -> CompiledLoss:
    graph, root = lower(parse(text, file))
    return CompiledLoss(text, graph, root, backend)


def compile(source: str | Path, backend: str = "numpy") -> CompiledLoss:  # noqa: A001 - public name
    """Compile a loss (an expression, a program, or a path to a ``.loss`` file) for a backend.

    Results are cached by source text and backend.
    """
    text, file = read_source(source)
    return _compile(text, file, backend)
