"""``grad(expr, x)`` in the language: the gradient pass run at resolve time, its result spliced
into the IR as an expression like any other.

The inner gradient is built by the same reverse pass as the loss's own (``gradient.py``), from the
ops its derivative rules create (``sum_to``, ``expand_dims``, ``matmul_vjp_a``, ...); each of them
has a derivative rule in turn (the Hessians' reverse-over-reverse needs them too), so the outer
gradient, ``H v`` and the analysis read the spliced expression as they read any other.
"""

from __future__ import annotations

import sympy as sp

from .errors import LossDSLError, Span
from .gradient import leaf_gradients
from .ir import Apply, Graph


def binding_leaf(graph: Graph, value: sp.Expr) -> sp.Symbol:
    """A leaf standing for a binding's value, so that what is built from it can be differentiated by
    it: ``value`` broadcast to its own shape, an identity the gradient passes straight through."""
    return graph.apply("broadcast", value, value)


def splice_gradient(graph: Graph, expr: sp.Expr, leaf: sp.Symbol, span: Span) -> tuple[Graph, sp.Expr]:
    """A new graph extending ``graph``, and the gradient of ``sum(expr)`` with respect to ``leaf``
    over it, shaped like ``leaf`` (a gradient that simplified to a number, such as the 1 of
    ``grad(sum(x), x)``, is broadcast back to it)."""
    try:
        graph, (gradient,) = leaf_gradients(graph, expr, [leaf])
    except LossDSLError as e:
        if e.span is not None:
            raise
        raise type(e)(e.message, span, e.hint) from None
    if not _full_shape(graph, gradient, leaf):
        gradient = graph.apply("broadcast", gradient, leaf)
    return graph, gradient


def _full_shape(graph: Graph, gradient: sp.Expr, leaf: sp.Symbol) -> bool:
    """Whether ``gradient`` has ``leaf``'s whole shape: each contribution to it is summed down to that
    shape (a ``sum_to`` like ``leaf``) or holds no tensor but ``leaf`` (a scalar where it lacks it)."""
    if graph.rank(leaf).scalar:
        return True
    for s in gradient.free_symbols:
        op = graph.op_of.get(s)
        if s == leaf or (isinstance(op, Apply) and op.prim == "sum_to" and op.operands[1] == leaf):
            return True
    return False
