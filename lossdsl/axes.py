"""Axes and shapes: ``transpose(x, axes)``, ``swapaxes``, ``moveaxis``, ``reshape``, ``flatten`` and
``one_hot``'s class axis.

The registry (``builtins.py``) holds one entry per op; this module holds what those entries call: how
each builtin builds its IR, its reverse-mode rule and its rank rule. Every one of these ops only moves
values, so each is linear and its adjoint is the inverse move: a permutation of axes is undone by the
inverse permutation (``moveaxis`` with source and destination exchanged), a reshape by reshaping the
cotangent back (``reshape_like``, whose own adjoint is ``reshape_like`` the other way), so Hessians
pass through them as through any op.

Input ranks are known only at call time: constant axes are checked here where the rank is (a
``transpose`` with ``axes`` fixes it, and so do ranks the IR knows), and by the runtime helper
otherwise, which names the input.
"""

from __future__ import annotations

import sympy as sp

from .args import Args
from .arrays import RankOf, as_static
from .ir import Apply, Graph, Rank, Tensor
from .limits import MAX_AXIS, MAX_STATIC_SIZE


def _array(a: Args, name: str = "x") -> sp.Expr:
    x = a.tensor(name)
    if x.is_number:
        raise a.error(name, f"{a.func}() moves the axes of an array; a number has none")
    return x


def _known_rank(a: Args, x: sp.Expr) -> int | None:
    return a.graph.rank(x).fixed


def _check_axes(a: Args, name: str, axes: tuple[int, ...], n: int | None) -> tuple[int, ...]:
    """``axes`` within an array of ``n`` axes (where compile time knows ``n``), counted from 0."""
    if n is None:
        return axes
    for axis in axes:
        if not -n <= axis < n:
            raise a.error(name, f"axis {axis} is out of range for an array of {n} axes")
    return tuple(axis % n for axis in axes)


def _move(a: Args, x: sp.Expr, source: tuple[int, ...], destination: tuple[int, ...],
          ndim: int | None = None) -> Tensor:
    return Tensor(a.graph.apply("moveaxis", x, x, source=source, destination=destination, ndim=ndim,
                                label=a.describe_input("x")))


def build_transpose(a: Args) -> Tensor:
    """``transpose(x)``: every axis reversed; ``transpose(x, axes=(0, 2, 1))``: axis i of the result
    is axis ``axes[i]`` of ``x``, which must then have ``len(axes)`` axes."""
    x = a.tensor("x")
    if a.value("axes") is None:
        return Tensor(a.graph.apply("transpose", x, x))
    x = _array(a)
    axes = a.axes("axes")
    axes = axes if isinstance(axes, tuple) else (axes,)
    n = len(axes)
    known = _known_rank(a, x)
    if known is not None and known != n:
        raise a.error("axes", f"names {n} axes, but x has {known}")
    axes = _check_axes(a, "axes", axes, n)
    if len(set(axes)) < n:
        raise a.error("axes", f"must be a permutation of 0..{n - 1}; got {axes}")
    return _move(a, x, axes, tuple(range(n)), ndim=n)


def build_swapaxes(a: Args) -> Tensor:
    x = _array(a)
    pair = _check_axes(a, "a", (a.single_axis("a"),), _known_rank(a, x))
    pair += _check_axes(a, "b", (a.single_axis("b"),), _known_rank(a, x))
    if pair[0] == pair[1]:
        return Tensor(x)
    return _move(a, x, pair, pair[::-1])


def build_moveaxis(a: Args) -> Tensor:
    x = _array(a)
    source = _check_axes(a, "source", (a.single_axis("source"),), _known_rank(a, x))
    destination = _check_axes(a, "destination", (a.single_axis("destination"),), _known_rank(a, x))
    return Tensor(x) if source == destination else _move(a, x, source, destination)


def moved_class_axis(a: Args, labels: sp.Expr, encoded: sp.Expr) -> sp.Expr:
    """``one_hot``'s classes (its last axis) moved to ``axis``: (B, H, W) labels give (B, C, H, W)
    with ``axis=1``, as PyTorch lays them out; checked now where the labels' rank is known."""
    known = 0 if labels.is_number else a.graph.rank(labels).fixed
    (axis,) = _check_axes(a, "axis", (a.single_axis("axis"),), None if known is None else known + 1)
    if axis in (-1, known):
        return encoded
    return a.graph.apply("moveaxis", encoded, encoded, source=(-1,), destination=(axis,), ndim=None,
                         label=f"one_hot() of {a.describe_input('labels')}")


def vjp_moveaxis(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    """The inverse move: source and destination exchanged (the cotangent broadcast to ``out``'s shape)."""
    return (g.apply("moveaxis", ct, out, source=op.param("destination"), destination=op.param("source"),
                    ndim=op.param("ndim"), label="a cotangent"), None)


# --- reshape and flatten -------------------------------------------------------------------------

def build_reshape(a: Args) -> Tensor:
    """``reshape(x, shape)``: each entry a constant or an expression of ``size(...)`` values (run-time
    lengths, Python ints under jit too), at most one of them -1 (the length the others leave)."""
    x = _array(a)
    entries = a.value("shape")
    entries = entries if isinstance(entries, tuple) else (entries,)
    if not entries:
        raise a.error("shape", "expected a tuple of lengths")
    if len(entries) > MAX_AXIS:
        raise a.error("shape", f"an array has at most {MAX_AXIS} axes; got {len(entries)} lengths")
    spec: list[int | str] = []
    lengths: list[sp.Expr] = []
    for entry in entries:
        n = entry.expr if isinstance(entry, Tensor) else entry
        if isinstance(n, bool) or not isinstance(n, (int, sp.Expr)):
            raise a.error("shape", f"expected lengths (constants or computed from size(...)), got {entry!r}")
        n = sp.Integer(n) if isinstance(n, int) else n
        if n.is_number:
            if not n.is_Integer or n < -1:
                raise a.error("shape", f"a length must be a whole number >= 0, or -1; got {n}")
            if n > MAX_STATIC_SIZE:
                raise a.error("shape", f"length {n} is beyond the limit of {MAX_STATIC_SIZE}")
            spec.append(int(n))
            continue
        static = as_static(a.graph, n)
        if static is None:
            raise a.error("shape", "expected lengths that are constants or computed from size(...), such as "
                          "size(x, axis=0); array values cannot shape an array")
        spec.append("d")
        lengths.append(static)
    if spec.count(-1) > 1:
        raise a.error("shape", "at most one length may be -1")
    return Tensor(a.graph.apply("reshape", x, *lengths, spec=tuple(spec), label=a.describe_input("x")))


def build_flatten(a: Args) -> Tensor:
    x = _array(a)
    start = a.static_int("start", limit=MAX_AXIS)
    known = _known_rank(a, x)
    if known is not None and not -max(known, 1) <= start < max(known, 1):
        raise a.error("start", f"axis {start} is out of range for an array of {known} axes")
    return Tensor(a.graph.apply("flatten", x, start=start, label=a.describe_input("x")))


def vjp_reshaped(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    """``reshape`` and ``flatten``: the cotangent (broadcast to ``out``'s shape) reshaped back to the operand's."""
    return (g.apply("reshape_like", ct, out, op.operands[0]),) + (None,) * (len(op.operands) - 1)


def vjp_reshape_like(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    _, source, target = op.operands
    return (g.apply("reshape_like", ct, target, source), None, None)  # linear: its adjoint reshapes back


def rank_reshape(op: Apply, rank: RankOf) -> Rank:
    return Rank(fixed=len(op.param("spec")))


def rank_flatten(op: Apply, rank: RankOf) -> Rank:
    """Axes from ``start`` on become one: ``start + 1`` axes, or ``-start - 1`` fewer for a negative start."""
    start, r = op.param("start"), rank(op.operands[0])
    if start >= 0:
        return Rank(fixed=start + 1)
    return Rank(None if r.deficit is None else r.deficit - start - 1,
                None if r.fixed is None else r.fixed + start + 1)
