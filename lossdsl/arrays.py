"""Shapes and constant arrays: ``size``, the constructors, ``diag``, ``concat`` and ``stack``.

The registry (``builtins.py``) holds one entry per op; this module holds what those entries call:
how each builtin builds its IR, its reverse-mode rule and its rank rule.

A length is a number at run time (``size(x, axis=0)``), yet under JAX's jit an array's length must
be a Python int while tracing. Shapes are: so a constructor's length is written over ``dim`` ops,
which print the shape's own int, where ``size`` (for arithmetic) prints a number of the loss's dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from .args import Args
from .ir import Apply, Graph, Rank, Tensor
from .limits import MAX_AXIS, MAX_STATIC_SIZE

RankOf = Callable[[sp.Basic], Rank]
MAX_JOINED = 256  # arrays one concat or stack joins (the registry declares each operand's monotonicity)


# --- size, and lengths that stay static under jit ---------------------------------------------

def build_size(a: Args) -> Tensor:
    axis = a.axis("axis")
    x = a.tensor("x")
    if x.is_number:  # a number has one element and no axes
        if axis is not None:
            raise a.error("axis", f"a number has no axis {axis}")
        return Tensor(sp.Integer(1))
    return Tensor(a.graph.apply("size", x, axis=axis, label=a.describe_input("x")))


def static_length(a: Args, name: str) -> sp.Expr:
    """A constructor's length: a constant integer (within the limit on sizes the source fixes), or an
    expression of ``size(...)`` values, rewritten over ``dim`` ops so that it prints as a Python int."""
    n = a.tensor(name)
    if n.is_number:
        return sp.Integer(a.static_int(name, minimum=0, limit=MAX_STATIC_SIZE))
    static = as_static(a.graph, n)
    if static is None:
        raise a.error(name, "expected a constant integer or a length computed from size(...), "
                      "such as size(x, axis=0); array values cannot size an array")
    return static


def as_static(graph: Graph, n: sp.Expr) -> sp.Expr | None:
    """``n``, an expression of ``size(...)`` values, over ``dim`` ops instead (Python ints, static under
    jit); None where it reads anything else."""
    sizes = {s: graph.op_of.get(s) for s in n.free_symbols}
    if not all(isinstance(op, Apply) and op.prim == "size" for op in sizes.values()):
        return None
    return n.xreplace({s: graph.apply("dim", *op.operands, **dict(op.params)) for s, op in sizes.items()})


def _what(a: Args) -> str:
    return f"{a.func}()"


def build_eye(a: Args) -> Tensor:
    return Tensor(a.graph.apply("eye", static_length(a, "n"), what=_what(a)))


def build_arange(a: Args) -> Tensor:
    return Tensor(a.graph.apply("arange", static_length(a, "n"), what=_what(a)))


def build_full(value: int) -> Callable[[Args], Tensor]:
    def build(a: Args) -> Tensor:
        return Tensor(a.graph.apply("full", static_length(a, "n"), value=value, what=_what(a)))
    return build


def build_full_like(value: int) -> Callable[[Args], Tensor]:
    def build(a: Args) -> Tensor:
        x = a.tensor("x")
        return Tensor(a.graph.apply("broadcast", value, x) if not x.is_number else sp.Integer(value))
    return build


# --- diag --------------------------------------------------------------------------------------

def build_diag(a: Args) -> Tensor:
    x = a.tensor("x")
    r = a.graph.rank(x)
    if x.is_number or (r.fixed is not None and r.fixed < 2):
        raise a.error("x", "diag() takes the diagonal of the last two axes: it needs an array of at least 2 axes")
    return Tensor(a.graph.apply("diag", x))


def vjp_diag(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    return (g.apply("diag_vjp", ct, op.operands[0]),)


def vjp_diag_vjp(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    return (g.apply("diag", ct), None)  # linear in the cotangent: its adjoint takes the diagonal back


def rank_diag(op: Apply, rank: RankOf) -> Rank:
    r = rank(op.operands[0])
    return Rank(None if r.deficit is None else r.deficit + 1, None if r.fixed is None else r.fixed - 1)


# --- concat and stack ---------------------------------------------------------------------------

def build_join(stacked: bool) -> Callable[[Args], Tensor]:
    def build(a: Args) -> Tensor:
        parts = a.tensors("arrays")
        if len(parts) > MAX_JOINED:
            raise a.error("arrays", f"joins at most {MAX_JOINED} arrays in one call; got {len(parts)}")
        axis = a.static_int("axis", limit=MAX_AXIS)
        if not stacked and any(p.is_number for p in parts):
            raise a.error("arrays", "concat() joins arrays along an existing axis; a number has none "
                          "(stack() makes a new axis)")
        return Tensor(a.graph.apply("stack" if stacked else "concat", *parts, axis=axis))
    return build


def _parts(g: Graph, op: Apply, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    """Each operand's cotangent: the slice (or entry) of ``ct`` its values went to."""
    stacked = op.prim == "stack"
    return tuple(None if part.is_number else
                 g.apply("part", ct, *op.operands, index=i, axis=op.param("axis"), stacked=stacked)
                 for i, part in enumerate(op.operands))


def vjp_join(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    return _parts(g, op, ct)


def vjp_part(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    """``part`` is linear in its cotangent operand; its adjoint puts ``ct`` back in its place."""
    params = {k: v for k, v in op.params}
    return (g.apply("part_vjp", ct, *op.operands[1:], **params),) + (None,) * (len(op.operands) - 1)


def vjp_part_vjp(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    params = {k: v for k, v in op.params}
    return (g.apply("part", ct, *op.operands[1:], **params),) + (None,) * (len(op.operands) - 1)


def _common(ranks: list[Rank]) -> Rank | None:
    kinds = {(r.deficit, r.fixed) for r in ranks}
    if len(kinds) != 1 or (None, None) in kinds:
        return None
    ((deficit, fixed),) = kinds
    return Rank(deficit, fixed)


def rank_concat(op: Apply, rank: RankOf) -> Rank:
    return _common([rank(o) for o in op.operands]) or Rank()


def rank_stack(op: Apply, rank: RankOf) -> Rank:
    r = _common([rank(o) for o in op.operands])
    if r is None:
        return Rank()
    return Rank(None if r.deficit is None else r.deficit - 1, None if r.fixed is None else r.fixed + 1)


def rank_part(op: Apply, rank: RankOf) -> Rank:
    r = rank(op.operands[1 + op.param("index")])
    return Rank(r.deficit, r.fixed)


def rank_part_vjp(op: Apply, rank: RankOf) -> Rank:
    joined = Apply("stack" if op.param("stacked") else "concat", op.operands[1:], (("axis", op.param("axis")),))
    return (rank_stack if op.param("stacked") else rank_concat)(joined, rank)


# --- fixed ranks ----------------------------------------------------------------------------------

def fixed(n: int, small: bool = False) -> Callable[[Apply, RankOf], Rank]:
    def rule(op: Apply, rank: RankOf) -> Rank:
        return Rank(fixed=n, small=small)
    return rule
