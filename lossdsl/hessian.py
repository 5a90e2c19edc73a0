"""Second derivatives: Hessian-vector products by reverse mode over the gradient's own IR.

The gradient of a loss is an expression over the same graph as its value, so differentiating
``sum(gradient * v)`` once more, with the same rules, gives the Hessian-vector product ``H v``
(the Hessian is symmetric). With ``v`` all ones this is each row's sum of ``H``: for a loss that
is a sum or mean of one term per element of the prediction (every elementwise loss), ``H`` is
diagonal and this is the per-element second derivative.
"""

from __future__ import annotations

import sympy as sp

from .gradient import gradients
from .ir import Graph

DIRECTION = "_direction"  # the input that holds v; user names cannot start with "_"


def hessian_vector(graph: Graph, root: sp.Expr, wrt: str) -> tuple[Graph, sp.Expr]:
    """An extension of ``graph`` with an input ``DIRECTION`` shaped like ``wrt``, and ``H v`` over it."""
    g = graph.copy()
    v = g.input(DIRECTION)
    g, grads = gradients(g, root, [wrt])
    g, hv = gradients(g, grads[wrt], [wrt], seed=v)
    return g, hv[wrt]


def hessian_rowsum(graph: Graph, root: sp.Expr, wrt: str) -> tuple[Graph, sp.Expr]:
    """``H 1``: the per-element second derivative of an elementwise loss, as an expression."""
    g, (_, h) = gradient_and_rowsum(graph, root, wrt)
    return g, h


def gradient_and_rowsum(graph: Graph, root: sp.Expr, wrt: str) -> tuple[Graph, list[sp.Expr]]:
    """The gradient and ``H 1`` over one graph, so that they print as one function."""
    g, grads = gradients(graph, root, [wrt])
    ones = g.apply("broadcast", 1, g.input(wrt))  # the gradient's full shape, even where it simplified to a scalar
    g, h = gradients(g, grads[wrt], [wrt], seed=ones)
    return g, [grads[wrt], h[wrt]]
