"""Formulas for people: IR expressions rendered as plain SymPy, element by element.

Inputs become plain symbols (no assumptions, so they compare equal to ``sympy.Symbol(name)``),
element counts become ``n`` (then ``n_2``, ...), and other ops read as each primitive's
``formula`` says: shape bookkeeping disappears, the rest are applied functions such as
``logsumexp(z)`` or ``matmul(transpose(X), g)``.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.printing.str import StrPrinter

from .builtins import PRIMITIVES
from .ir import Graph, Input, post_order


class Renderer:
    """Renders expressions over one graph; the leaves' forms (and the names of counts: ``n``,
    ``n_2``, ...) are worked out once and shared by every expression it renders."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self._memo: dict[sp.Symbol, sp.Expr] = {}
        self._counts: list[sp.Symbol] = []
        self._taken = set(graph.inputs)

    def _count_symbol(self) -> sp.Symbol:
        k = len(self._counts)
        name = "n" if k == 0 else f"n_{k + 1}"
        while name in self._taken:
            name += "_"
        self._counts.append(sp.Symbol(name, positive=True))
        return self._counts[-1]

    def _leaf(self, sym: sp.Symbol) -> sp.Expr:
        if sym not in self._memo:
            op = self.graph.op_of[sym]
            if isinstance(op, Input):
                self._memo[sym] = sym  # the IR's own (real) symbol: renamed once, at the end
            elif op.prim == "count":
                self._memo[sym] = self._count_symbol()
            else:
                shown = PRIMITIVES[op.prim].formula or sp.Function(op.prim)
                self._memo[sym] = shown(*(self._sub(o) for o in op.operands))
        return self._memo[sym]

    def _sub(self, e: sp.Expr) -> sp.Expr:
        # inputs render as themselves: replacing them anyway would rebuild (and re-evaluate) every node
        # in graph order, not a set's: counts are named n, n_2, ... alike in every process
        changed = {s: shown for s in self.graph.leaves(e) if (shown := self._leaf(s)) is not s}
        return e.xreplace(changed) if changed else e

    def __call__(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every leaf replaced by its readable form."""
        # Work with real symbols, as the IR does, and rename them to plain ones at the end without
        # re-evaluating: SymPy re-deriving assumptions of plain symbols through nested functions
        # (tanh(tanh(...))) takes exponential time.
        shown = self._sub(expr)
        # each distinct node once (free_symbols walks the tree: a gradient repeats its subtrees so often
        # that the walk took most of a render)
        nodes: set[sp.Basic] = set()
        for node in post_order(shown, nodes):
            nodes.add(node)
        with sp.evaluate(False):
            return shown.xreplace({s: sp.Symbol(s.name) for s in nodes if isinstance(s, sp.Symbol)})


class TextPrinter(StrPrinter):
    """``doprint(e)`` is ``sympy.sstr(e)``, printing each distinct subexpression once, across every
    expression one printer prints (a loss and its gradients share theirs). The text StrPrinter gives
    an expression does not depend on where it stands (a parent adds its parentheses around it), and a
    gradient's formula repeats its subtrees many times."""

    def __init__(self) -> None:
        super().__init__()
        self._printed: dict[sp.Basic, str] = {}

    def _print(self, expr: Any, **kwargs: Any) -> str:
        if kwargs or not isinstance(expr, sp.Basic):
            return super()._print(expr, **kwargs)
        text = self._printed.get(expr)
        if text is None:
            text = self._printed[expr] = super()._print(expr)
        return text


def render(graph: Graph, expr: sp.Expr) -> sp.Expr:
    """``expr`` with every leaf replaced by its readable form."""
    return Renderer(graph)(expr)


def text(e: sp.Basic) -> str:
    """``sympy.sstr(e)``, each distinct subexpression printed once (TextPrinter)."""
    return TextPrinter().doprint(e)
