"""Order statistics and scans: ``sort``, ``topk``, ``cumsum``, ``cumprod``, ``logcumsumexp``.

The registry (``builtins.py``) holds one entry per op; this module holds what those entries call:
how each builtin builds its IR and its reverse-mode rule.

Sort and topk gather ``x`` by its stable argsort (ties in their original order, ascending or
descending); their adjoint ``order_scatter`` writes the cotangent back where each value came from,
and its own adjoint ``order_gather`` gathers again, so second derivatives pass through. The
permutation is piecewise constant in ``x``: no cotangent flows through it.

Scans take their gradients as scans the other way. ``cumsum`` is linear, its adjoint the cumsum in
the other direction. ``cumprod`` and ``logcumsumexp`` take a first-order linear recurrence,
``linear_scan`` (h_0 = b_0, h_i = a_i*h_(i-1) + b_i in scan order), run backwards, which neither
divides (cumprod's gradient holds with zeros present) nor overflows (logcumsumexp's factors
exp(out_j - out_(j+1)) are sigmoid(out_j - x_(j+1)), in (0, 1)); ``scan_shift`` moves an operand one step
along the axis. ``linear_scan`` and ``scan_shift`` have adjoints of their own kind, so Hessians pass too.
(logcumsumexp's rule sits in the registry beside the ``sigmoid`` it builds.)
"""

from __future__ import annotations

import sympy as sp

from .args import Args
from .arrays import static_length
from .ir import Apply, Graph, Tensor

VjpResult = tuple[sp.Expr | None, ...]


def _array(a: Args, name: str = "x") -> sp.Expr:
    """An operand with an axis to sort or scan along: a number, or a value known to be 0-d, has none."""
    x = a.tensor(name)
    if x.is_number or a.graph.rank(x).fixed == 0:
        raise a.error(name, f"{a.func}() works along an axis; got a single number")
    return x


# --- sort and topk ---------------------------------------------------------------------------------

def build_sort(a: Args) -> Tensor:
    x = _array(a)
    return Tensor(a.graph.apply("sort", x, axis=a.single_axis("axis"), descending=a.flag("descending")))


def build_topk(a: Args) -> Tensor:
    x = _array(a)
    axis = a.single_axis("axis")
    return Tensor(a.graph.apply("topk", x, static_length(a, "k"), axis=axis, label=a.describe_input("x")))


def _length_of(g: Graph, x: sp.Expr, axis: int) -> sp.Expr:
    return g.apply("dim", x, axis=axis, label="the sorted array")


def vjp_sort(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> VjpResult:
    (x,) = op.operands
    axis = op.param("axis")
    return (g.apply("order_scatter", ct, x, _length_of(g, x, axis), axis=axis, descending=op.param("descending")),)


def vjp_topk(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> VjpResult:
    x, k = op.operands
    return (g.apply("order_scatter", ct, x, k, axis=op.param("axis"), descending=True), None)


def vjp_order_gather(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> VjpResult:
    """Linear in the gathered operand: its adjoint scatters by the same order."""
    _, x, k = op.operands
    return (g.apply("order_scatter", ct, x, k, **dict(op.params)), None, None)


def vjp_order_scatter(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> VjpResult:
    """Linear in the scattered cotangent: its adjoint gathers by the same order."""
    _, x, k = op.operands
    return (g.apply("order_gather", ct, x, k, **dict(op.params)), None, None)


def unpermuted(graph: Graph, x: sp.Expr, axis: int | tuple[int, ...] | None) -> sp.Expr:
    """A reduction's operand with a sort along a reduced axis looked through: a permutation changes
    no sum, mean, extremum or norm (so ``sum(sort(x))`` is ``sum(x)``, to the analysis too)."""
    op = graph.op_of.get(x)
    if not (isinstance(op, Apply) and op.prim == "sort"):
        return x
    sorted_axis = op.param("axis")
    if axis is None or axis == sorted_axis or (isinstance(axis, tuple) and sorted_axis in axis):
        return op.operands[0]
    return x


# --- scans -----------------------------------------------------------------------------------------

def _scan_params(a: Args) -> dict[str, object]:
    return {"axis": a.single_axis("axis"), "reverse": a.flag("reverse")}


def build_cumsum(a: Args) -> Tensor:
    x = _array(a)
    return Tensor(a.graph.apply("cumsum", x, x, **_scan_params(a)))


def build_scan(kind: str):
    def build(a: Args) -> Tensor:
        return Tensor(a.graph.apply(kind, _array(a), **_scan_params(a)))
    return build


def next_shift(reverse: bool) -> int:
    """The shift that brings each entry's successor in scan order to its place."""
    return 1 if reverse else -1


def vjp_cumsum(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> VjpResult:
    return (g.apply("cumsum", ct, out, axis=op.param("axis"), reverse=not op.param("reverse")), None)


def vjp_cumprod(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> VjpResult:
    """d/dx_j = out_(j-1) * lam_j, lam_j = ct_j + x_(j+1)*lam_(j+1): no division, so zeros are exact."""
    (x,) = op.operands
    axis, reverse = op.param("axis"), op.param("reverse")
    successor = g.apply("scan_shift", x, x, axis=axis, by=next_shift(reverse), fill=0)
    lam = g.apply("linear_scan", successor, ct, axis=axis, reverse=not reverse)
    return (lam * g.apply("scan_shift", out, out, axis=axis, by=-next_shift(reverse), fill=1),)


def vjp_linear_scan(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> VjpResult:
    """h_i = a_i*h_(i-1) + b_i: mu_i = ct_i + a_(i+1)*mu_(i+1) is b's cotangent, mu_i*h_(i-1) a's."""
    a, _ = op.operands
    axis, reverse = op.param("axis"), op.param("reverse")
    successor = g.apply("scan_shift", a, out, axis=axis, by=next_shift(reverse), fill=0)
    mu = g.apply("linear_scan", successor, ct, axis=axis, reverse=not reverse)
    return (mu * g.apply("scan_shift", out, out, axis=axis, by=-next_shift(reverse), fill=0), mu)


def vjp_scan_shift(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> VjpResult:
    _, like = op.operands
    return (g.apply("scan_shift", ct, like, axis=op.param("axis"), by=-op.param("by"), fill=0), None)
