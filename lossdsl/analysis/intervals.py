"""Interval arithmetic over a loss's IR: the range of each expression, from the ranges its inputs
are checked to lie in and the range, monotonicity and sign that every builtin declares."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import sympy as sp

from ..builtins import ELEMENTWISE, INF, PRIMITIVES, Shape
from ..ir import Apply, Graph, Input

Interval = tuple[float, float]
FULL: Interval = (-INF, INF)
#: SymPy function class -> what its registry entry declares (powers are handled apart)
SHAPES: dict[type, Shape] = {(e.sympy_class or e.func): e.shape for e in ELEMENTWISE if e.sympy_class is not sp.Pow}
NONSMOOTH = tuple(cls for cls, s in SHAPES.items() if s.kink or s.jump)


def _mul(a: Interval, b: Interval) -> Interval:
    prods = [0.0 if 0 in (p, q) else p * q for p in a for q in b]
    return min(prods), max(prods)


def local(shape: Shape, args: list[Interval]) -> Shape | None:
    """What ``shape`` declares for arguments in ``args``: its first piece that holds the (one)
    argument's interval, or the shape itself; None where the argument may leave its domain."""
    if not args:
        return shape
    (a, b) = args[0]
    if shape.domain != FULL and not (shape.domain[0] <= a and b <= shape.domain[1]):
        return None
    for lo, hi, curvature, monotone in shape.pieces:
        if lo <= a and b <= hi:
            return dataclasses.replace(shape, curvature=curvature, monotone=(monotone,))
    return shape


def _image(cls: type, shape: Shape, args: list[Interval]) -> Interval:
    """The range of an elementwise function over argument intervals, from its declared shape."""
    here = local(shape, args)
    if here is None:
        return FULL
    shape = here
    lo, hi = shape.range

    def at(point: tuple[float, ...], fallback: float) -> float:
        fn = getattr(cls, "elementary", cls)  # SymPy's own form also evaluates at infinities
        # at an infinite end, the function must be real on the way there: SymPy's log(-oo) is oo
        # (log|x|), though log is not real anywhere below 0
        near = [sp.Integer(10) ** 6 * (1 if p > 0 else -1) if abs(p) == INF else sp.Rational(p) for p in point]
        try:
            if any(abs(p) == INF for p in point) and fn(*near).is_extended_real is False:
                return fallback
        except ArithmeticError:  # SymPy could not decide: the value at the infinity below stands
            pass
        try:
            v = float(fn(*(sp.oo if p == INF else -sp.oo if p == -INF else sp.Rational(p) for p in point)))
        except (TypeError, ValueError):
            return fallback
        return fallback if math.isnan(v) else v

    mono = shape.monotone
    if all(m == "increasing" for m in mono):
        out = (at(tuple(a[0] for a in args), lo), at(tuple(a[1] for a in args), hi))
    elif mono == ("decreasing",):
        out = (at((args[0][1],), lo), at((args[0][0],), hi))
    elif mono == ("sign",):
        a, b = args[0]
        if a >= 0:
            out = (at((a,), lo), at((b,), hi))
        elif b <= 0:
            out = (at((b,), lo), at((a,), hi))
        else:
            out = (at((0,), lo), max(at((a,), hi), at((b,), hi)))
    else:
        out = (lo, hi)
    return max(out[0], lo), min(out[1], hi)


def _reciprocal(a: Interval) -> Interval:
    if a[0] > 0 or a[1] < 0:
        return (1 / a[1] if a[1] != INF and a[1] != -INF else 0.0, 1 / a[0] if abs(a[0]) != INF else 0.0)
    # an interval that ends at 0: 1/t over the rest of it, to the infinity that t -> 0 approaches
    if a[0] == 0 < a[1]:
        return (1 / a[1] if a[1] != INF else 0.0, INF)
    if a[0] < 0 == a[1]:
        return (-INF, 1 / a[0] if a[0] != -INF else 0.0)
    return FULL


def _power(a: Interval, p: sp.Expr) -> Interval:
    if not p.is_number:
        return FULL
    q = float(p)
    if p.is_integer and q >= 0:
        k = int(q)
        vals = [v ** k for v in a]
        if k % 2 == 0 and a[0] <= 0 <= a[1]:
            return 0.0, max(vals)
        return min(vals), max(vals)
    if p.is_integer:
        return _power(_reciprocal(a), -p)
    if a[0] < 0 or (q < 0 and a[0] <= 0):
        return FULL if a[1] < 0 or q < 0 else (0.0, a[1] ** q)
    vals = [v ** q if v != INF else (INF if q > 0 else 0.0) for v in a]
    return min(vals), max(vals)


def _input_checks(graph: Graph) -> Iterator[tuple[str, Apply]]:
    """Each ``within`` check of an input, with the input's name."""
    for op in graph.op_of.values():
        if isinstance(op, Apply) and op.prim == "within" and isinstance(op.operands[0], sp.Symbol):
            src = graph.op_of.get(op.operands[0])
            if isinstance(src, Input):
                yield src.name, op


def input_ranges(graph: Graph) -> dict[str, Interval]:
    """The interval each input is checked to lie in by ``within`` (the whole line otherwise)."""
    out: dict[str, Interval] = {}
    for name, op in _input_checks(graph):
        lo, hi = out.get(name, FULL)
        a, b = op.param("lower"), op.param("upper")
        out[name] = (max(lo, -INF if a is None else float(a)), min(hi, INF if b is None else float(b)))
    return out


def open_ends(graph: Graph) -> dict[str, tuple[bool, bool]]:
    """Whether each end of an input's checked interval is excluded (``above=``/``below=``): the
    interval's ends themselves are no values of the input where a check excludes them."""
    ranges = input_ranges(graph)
    out: dict[str, tuple[bool, bool]] = {}
    for name, op in _input_checks(graph):
        (lo, hi), (a, b), strict = ranges[name], (op.param("lower"), op.param("upper")), op.param("strict")
        was = out.get(name, (False, False))
        out[name] = (was[0] or (strict[0] and a is not None and float(a) == lo),
                     was[1] or (strict[1] and b is not None and float(b) == hi))
    return out


class Bounds:
    """The interval of each expression over one graph. Calls without an environment are memoised
    per sub-expression, so shared sub-expressions (and every input's analysis of one loss) are
    bounded once."""

    def __init__(self, graph: Graph, ranges: dict[str, Interval]):
        self.graph, self.ranges = graph, ranges
        self._memo: dict[sp.Basic, Interval] = {}
        self.signs: dict[tuple[sp.Expr, Interval], Interval] = {}  # for curvature's derivative test

    def __call__(self, e: sp.Basic, env: dict[sp.Symbol, Interval] | None = None) -> Interval:
        if env:
            return env[e] if e in env else self._bound(e, env)
        got = self._memo.get(e)
        if got is None:
            got = self._memo[e] = self._bound(e, None)
        return got

    def _bound(self, e: sp.Basic, env: dict[sp.Symbol, Interval] | None) -> Interval:
        if e.is_number:
            try:
                v = float(e)
            except TypeError:
                return FULL
            return (v, v) if not math.isnan(v) else FULL
        if isinstance(e, sp.Symbol):
            return self._leaf(e)
        if isinstance(e, sp.Add):
            lo = hi = 0.0
            for a in e.args:
                b = self(a, env)
                lo, hi = lo + b[0], hi + b[1]
            return (lo if not math.isnan(lo) else -INF, hi if not math.isnan(hi) else INF)
        if isinstance(e, sp.Mul):
            out = (1.0, 1.0)
            for a in e.args:
                out = _mul(out, self(a, env))
            return out
        if isinstance(e, sp.Pow):
            return _power(self(e.base, env), e.exp)
        if isinstance(e, sp.Piecewise):
            parts = [self(piece, env) for piece, _ in e.args]
            return min(p[0] for p in parts), max(p[1] for p in parts)
        shape = SHAPES.get(type(e))
        if shape is not None:
            return _image(type(e), shape, [self(a, env) for a in e.args])
        return FULL

    def _leaf(self, s: sp.Symbol) -> Interval:
        if s in self._memo:
            return self._memo[s]
        op = self.graph.op_of.get(s)
        out = FULL
        if isinstance(op, Input):
            out = self.ranges.get(op.name, FULL)
        elif isinstance(op, Apply) and op.prim in PRIMITIVES:
            shape = PRIMITIVES[op.prim].shape
            inner = self(op.operands[0]) if op.operands else FULL
            if shape.range_of == "operand":
                out = inner
            elif shape.range_of == "operands":  # each of them, somewhere (concat, stack)
                parts = [self(o) for o in op.operands]
                out = (min(p[0] for p in parts), max(p[1] for p in parts))
            elif shape.range_of == "sign":
                out = (0.0 if inner[0] >= 0 else -INF, 0.0 if inner[1] <= 0 else INF)
            else:
                out = shape.range
            if op.prim == "within":
                lo, hi = op.param("lower"), op.param("upper")
                out = (max(out[0], -INF if lo is None else float(lo)), min(out[1], INF if hi is None else float(hi)))
        self._memo[s] = out
        return out
