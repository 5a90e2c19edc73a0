"""Formulas for people: IR expressions rendered as plain SymPy, element by element.

Inputs become plain symbols (no assumptions, so they compare equal to ``sympy.Symbol(name)``),
element counts become ``n`` (then ``n_2``, ...), and other ops read as each primitive's
``formula`` says: shape bookkeeping disappears, the rest are applied functions such as
``logsumexp(z)`` or ``matmul(transpose(X), g)``.
"""

from __future__ import annotations

import sympy as sp

from .builtins import PRIMITIVES
from .ir import Graph, Input


def render(graph: Graph, expr: sp.Expr) -> sp.Expr:
    """``expr`` with every leaf replaced by its readable form."""
    memo: dict[sp.Symbol, sp.Expr] = {}
    counts: list[sp.Symbol] = []
    taken = set(graph.inputs)

    def count_symbol() -> sp.Symbol:
        k = len(counts)
        name = "n" if k == 0 else f"n_{k + 1}"
        while name in taken:
            name += "_"
        counts.append(sp.Symbol(name, positive=True))
        return counts[-1]

    def leaf(sym: sp.Symbol) -> sp.Expr:
        if sym not in memo:
            op = graph.op_of[sym]
            if isinstance(op, Input):
                memo[sym] = sp.Symbol(op.name, real=True)
            elif op.prim == "count":
                memo[sym] = count_symbol()
            else:
                shown = PRIMITIVES[op.prim].formula or sp.Function(op.prim)
                memo[sym] = shown(*(sub(o) for o in op.operands))
        return memo[sym]

    def sub(e: sp.Expr) -> sp.Expr:
        leaves = [s for s in e.free_symbols if s in graph.op_of]
        return e.xreplace({s: leaf(s) for s in leaves})

    # Work with real symbols, as the IR does, and rename them to plain ones at the end without
    # re-evaluating: SymPy re-deriving assumptions of plain symbols through nested functions
    # (tanh(tanh(...))) takes exponential time.
    shown = sub(expr)
    with sp.evaluate(False):
        return shown.xreplace({s: sp.Symbol(s.name) for s in shown.free_symbols})
