"""Phase 4, gradient: reverse mode over the IR, with SymPy differentiating each elementwise part.

Cotangents are SymPy expressions over leaves, just like values. A cotangent may be smaller than
its tensor (a scalar, or with size-1 axes) as long as it broadcasts against it. Each contribution
to a leaf is summed down to the leaf's shape by a ``sum_to`` op, which first broadcasts it to
the full shape of the expression it came from (so a constant cotangent counts every element).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import sympy as sp
from sympy.core.parameters import distribute

from .builtins import PRIMITIVES
from .errors import LossTypeError
from .ir import Apply, Graph
from .partials import Partials
from .representable import COMPLEX, HINT, INFINITE, UNDEFINED, Constants, shown
from .rewrite import stabilize

# a sum_to lists the tensors its contribution lacks (their shape is broadcast in) up to this many;
# beyond, it lists all the expression's tensors, one operand shared by all its leaves
_LISTED = 8


def requires_grad(graph: Graph, wrt: Sequence[sp.Symbol]) -> set[sp.Symbol]:
    """The leaves whose value depends on any leaf in ``wrt``."""
    need = set(wrt)
    for sym, op in graph:
        if isinstance(op, Apply) and any(o.free_symbols & need for o in op.operands):
            need.add(sym)
    return need


def _constant_factors(graph: Graph, contribution: sp.Expr, leaf: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    """``contribution`` as (outside, inside): the factors that a sum down to the shape of ``leaf``
    can take out, as they are constant along the summed axes (numbers, 0-d leaves, functions of
    ``leaf`` itself, such as the -1/s**2 of a row sum s), and the rest: one pass fewer."""
    if not isinstance(contribution, sp.Mul):
        return sp.Integer(1), contribution
    outside, inside = [], []
    for f in contribution.args:
        constant = all(s == leaf or graph.rank(s).scalar for s in f.free_symbols)
        (outside if constant else inside).append(f)
    if not outside or not inside:  # not rebuilt: a long product costs its length again
        return (sp.Integer(1), contribution) if inside else (contribution, sp.Integer(1))
    return sp.Mul(*outside), sp.Mul(*inside)


def gradients(graph: Graph, root: sp.Expr, wrt: Sequence[str],
              seed: sp.Expr = sp.S.One) -> tuple[Graph, dict[str, sp.Expr]]:
    """d(root)/d(input) for each input in ``wrt``, as expressions over the leaves of a new graph
    that extends ``graph`` with the ops the derivatives need (``graph`` itself is left as it was).

    ``seed`` is the cotangent of ``root``: 1 for the gradient of a scalar loss, a symbol for a
    vector-Jacobian product. A non-scalar root with seed 1 gives the gradient of its sum.
    """
    if not set(wrt) <= set(graph.inputs):  # looking an input up (graph.input) adds it
        graph = graph.copy()
        for name in wrt:
            graph.input(name)
    graph, grads = leaf_gradients(graph, root, [graph.input(name) for name in wrt], seed)
    return graph, dict(zip(wrt, grads))


def leaf_gradients(graph: Graph, root: sp.Expr, wrt: Sequence[sp.Symbol],
                   seed: sp.Expr = sp.S.One) -> tuple[Graph, list[sp.Expr]]:
    """d(root)/d(leaf) for each leaf of ``graph`` in ``wrt`` (an input or any op's output, such as the
    stand-in for a binding that ``grad(expr, x)`` differentiates by), over a new graph as ``gradients``."""
    graph = graph.copy()
    forward = list(graph)
    need, targets = requires_grad(graph, wrt), set(wrt)
    # each leaf's contributions, summed once when its op is reached (a running sum is quadratic)
    ct: dict[sp.Symbol, list[sp.Expr]] = defaultdict(list)
    partials = Partials(need)

    def push(expr: sp.Expr, cotangent: sp.Expr) -> None:
        # The contribution to a leaf has the shape of ``expr`` broadcast with the cotangent; it
        # is summed down to the leaf's shape unless nothing in it is larger than the leaf.
        expr = stabilize(expr)  # differentiate the stable form: softplus, not log(sigmoid)
        d_expr = partials(expr)
        leaves = graph.leaves(expr)
        tensors = {s for s in leaves + graph.leaves(cotangent) if not graph.rank(s).scalar}
        every = None  # all of ``tensors``, for the leaves that would each list most of them
        for leaf in leaves:
            d = d_expr.get(leaf)
            if d is None or d == 0:
                continue
            contribution = cotangent * d
            if tensors <= {leaf}:
                ct[leaf].append(contribution)
                continue
            missing = tensors - contribution.free_symbols - {leaf}
            if len(missing) > _LISTED:
                # the shape of all of them is the same (the contribution and the leaf broadcast
                # against it anyway), and one shared operand is computed once when printed
                every = every if every is not None else sp.Mul(*sorted(tensors, key=lambda s: s.name))
                like = every
            else:
                like = sp.Mul(*sorted(missing, key=lambda s: s.name))
            outside, inside = _constant_factors(graph, contribution, leaf)
            ct[leaf].append(outside * graph.apply("sum_to", inside, leaf, like))

    with distribute(False):
        push(root, seed)
        for sym, op in reversed(forward):
            if not isinstance(op, Apply) or sym not in ct or sym in targets:
                continue  # a target's own operands are not differentiated by
            rule = PRIMITIVES[op.prim].vjp
            if rule is None:
                raise LossTypeError(f"'{op.prim}' has no derivative rule; this derivative is not available")
            for operand, cot in zip(op.operands, rule(graph, op, sym, sp.Add(*ct[sym]))):
                if cot is not None:
                    push(operand, cot)
        grads = [sp.Add(*ct[leaf]) for leaf in wrt]
    _check_constants([*grads, *(o for _, op in list(graph)[len(forward):] if isinstance(op, Apply)
                                         for o in op.operands)])
    return graph, grads


def _check_constants(exprs: Sequence[sp.Expr]) -> None:
    """Refuse a derivative that holds a number generated code cannot (see representable.py): a
    product of constants within float64's range may leave it once a derivative's factor joins it
    (``x^1000*1e306``). NaN and infinities are the derivative's values where it has none."""
    scan = Constants(allow=(UNDEFINED, INFINITE))
    for e in exprs:
        found = scan.first(e)
        if found is not None:
            number, why = found
            raise LossTypeError(f"the derivative holds the constant {shown(number)}, which {why}", None,
                                None if why == COMPLEX else HINT)
