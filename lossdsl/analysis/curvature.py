"""Curvature by composition, in the style of disciplined convex programming: every builtin and
primitive declares its curvature, monotonicity and range (``Shape`` in ``builtins.py``) and
``Analysis.of`` applies the one composition rule. Where the rule fails, a one-dimensional
sub-expression ``g(u)`` is tried by its derivatives (``g'' >= 0`` on the range of ``u``, by interval
arithmetic). A wrong "convex" is the one answer this must never give."""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from ..builtins import PRIMITIVES, Shape
from ..formula import render
from ..ir import Apply, Graph, Input
from .evaluate import elementary
from .intervals import NONSMOOTH, SHAPES, Bounds, Interval

_T = sp.Dummy("t", real=True)  # the variable of g(u) in the derivative test, shared so that tests repeat

_JOIN = {frozenset({"convex"}): "convex", frozenset({"concave"}): "concave", frozenset({"affine"}): "affine"}
_FLIP = {"convex": "concave", "concave": "convex"}


def _join(curvatures: list[str]) -> str:
    """The curvature of a sum."""
    kinds = frozenset(c for c in curvatures if c != "constant")
    if not kinds:
        return "constant"
    kinds = kinds - {"affine"} or frozenset({"affine"})
    return _JOIN.get(kinds, "unknown")


def _effective(mono: str, arg: Interval) -> str:
    if mono != "sign":
        return mono
    return "increasing" if arg[0] >= 0 else "decreasing" if arg[1] <= 0 else ""


def _power_shape(p: sp.Expr, base: Interval) -> Shape:
    """The shape of ``t^p`` for a constant ``p`` on the range of its base."""
    q = float(p)
    if p.is_integer and q >= 0:
        if int(q) % 2 == 0:
            return Shape("convex", ("sign",))
        return Shape("convex" if base[0] >= 0 else "concave" if base[1] <= 0 else "unknown", ("increasing",))
    if q > 0:  # a fractional power: defined for t >= 0
        return Shape("convex" if q > 1 else "concave", ("increasing",)) if base[0] >= 0 else Shape()
    if base[0] > 0:
        return Shape("convex", ("decreasing",))
    if base[1] < 0 and p.is_integer:
        return Shape("convex" if int(q) % 2 == 0 else "concave", ("increasing" if int(q) % 2 == 0 else "decreasing",))
    return Shape()


@lru_cache(maxsize=512)
def _derivative(g: sp.Expr, t: sp.Symbol, n: int) -> sp.Expr:
    """``d^n g / dt^n`` with the factors free of ``t`` kept outside: SymPy's product rule over a
    product of k factors builds on the order of k^n terms, most of them zero."""
    scale, h = g.as_independent(t, as_Add=False)
    return scale * sp.diff(h, t, n)


class Analysis:
    """Curvature and ranges of the expressions of one graph, with respect to one input ``x``."""

    def __init__(self, graph: Graph, x: str, bounds: Bounds):
        self.graph, self.bounds, self.ranges = graph, bounds, bounds.ranges
        self.x = next((s for s, op in graph.op_of.items() if isinstance(op, Input) and op.name == x), sp.Symbol(x))
        self.depends: set[sp.Symbol] = set()
        for sym, op in graph.op_of.items():
            if sym == self.x or (isinstance(op, Apply) and any(s in self.depends for o in op.operands
                                                                for s in o.free_symbols)):
                self.depends.add(sym)
        self._failures: list[tuple[sp.Basic, str]] = []  # rendered only when reported
        self._curv: dict[sp.Basic, str] = {}
        self._dep: dict[sp.Basic, bool] = {}

    def dep(self, e: sp.Basic) -> bool:
        """Whether ``e`` depends on the input (memoised: free_symbols walks the whole tree)."""
        got = self._dep.get(e)
        if got is None:
            got = self._dep[e] = any(s in self.depends for s in e.free_symbols)
        return got

    # --- curvature ---
    def of(self, e: sp.Basic) -> str:
        """"constant", "affine", "convex", "concave" or "unknown" (the reason is recorded)."""
        if e not in self._curv:
            got = self._compose(e) if self.dep(e) else "constant"
            if got == "unknown" and not self._scaled_failure(e):
                got = self._by_derivatives(e)
            self._curv[e] = got
        return self._curv[e]

    def _scaled_failure(self, e: sp.Basic) -> bool:
        """Whether ``e`` is a constant times one factor whose curvature the rule and the derivative
        test have already failed to find: the test on ``e`` would be that test again, scaled (and
        SymPy's product rule over many constant factors is slow)."""
        if not isinstance(e, sp.Mul):
            return False
        dependent = [a for a in e.args if self.dep(a)]
        return len(dependent) == 1 and self._curv.get(dependent[0]) == "unknown"

    def _fail(self, e: sp.Basic, why: str) -> str:
        self._failures.append((e, why))
        return "unknown"

    def reason(self) -> str | None:
        """Why the rule failed: the first sub-expression that broke it, as the user reads it."""
        if not self._failures:
            return None
        e, why = self._failures[0]
        return f"{sp.sstr(render(self.graph, e))}: {why}"

    def _compose(self, e: sp.Basic) -> str:
        if isinstance(e, sp.Symbol):
            if e == self.x:
                return "affine"
            op = self.graph.op_of[e]
            spec = PRIMITIVES.get(op.prim) if isinstance(op, Apply) else None
            if spec is None:
                return self._fail(e, f"{op.prim} declares no curvature")
            return self._apply(e, spec.shape, list(op.operands), op.prim)
        if isinstance(e, sp.Add):
            got = _join([self.of(a) for a in e.args])
            return got if got != "unknown" else self._fail(e, "a sum of convex and concave terms")
        if isinstance(e, sp.Mul):
            dependent = [a for a in e.args if self.dep(a)]
            if len(dependent) > 1:
                return self._fail(e, "a product of two terms that depend on the input")
            inner = self.of(dependent[0])
            scale = self.bounds(sp.Mul(*(a for a in e.args if not self.dep(a))))
            if inner in ("constant", "affine", "unknown"):
                return inner
            if scale[0] >= 0:
                return inner
            if scale[1] <= 0:
                return _FLIP[inner]
            return self._fail(e, "a factor of unknown sign")
        if isinstance(e, sp.Pow):
            if self.dep(e.exp):
                if self.dep(e.base) or not (e.base.is_number and e.base.is_positive):
                    return self._fail(e, "an exponent that depends on the input")
                grows = "increasing" if e.base >= 1 else "decreasing"
                return self._apply(e, Shape("convex", (grows,)), [e.exp], "power")
            if not e.exp.is_number:
                return self._fail(e, "a power with a symbolic exponent")
            if e.exp == 1:
                return self.of(e.base)
            return self._apply(e, _power_shape(e.exp, self.bounds(e.base)), [e.base], f"power {e.exp}")
        if isinstance(e, sp.Piecewise):
            return self._piecewise(e)
        shape = SHAPES.get(type(e))
        if shape is None:
            return self._fail(e, f"{type(e).__name__} declares no curvature")
        return self._apply(e, shape, list(e.args), type(e).__name__)

    def _apply(self, e: sp.Basic, shape: Shape, args: list[sp.Expr], name: str) -> str:
        """The composition rule: f convex, each argument affine, or convex where f increases, or
        concave where f decreases (mirrored for concave f, signs applied for affine f)."""
        curv = [self.of(a) if self.dep(a) else "constant" for a in args]
        monos = [*shape.monotone, *[""] * (len(args) - len(shape.monotone))]
        live = [(c, _effective(m, self.bounds(a))) for c, a, m in zip(curv, args, monos)
                if c != "constant" and m != "static"]
        if not live:
            return "constant"
        if shape.curvature == "constant":
            return "constant"
        if shape.curvature == "multilinear":
            if len(live) == 1 and live[0][0] == "affine":
                return "affine"
            return self._fail(e, f"{name} of two arguments that depend on the input, or of a nonlinear one")
        if shape.curvature == "unknown":
            return self._fail(e, f"{name} is neither convex nor concave")
        results = []
        for c, m in live:
            if c == "affine":
                results.append(shape.curvature)
            elif c == "unknown":
                return "unknown"
            elif shape.curvature == "affine" and m in ("increasing", "decreasing"):
                results.append(c if m == "increasing" else _FLIP[c])
            elif (shape.curvature, c, m) in (("convex", "convex", "increasing"), ("convex", "concave", "decreasing"),
                                             ("concave", "concave", "increasing"), ("concave", "convex", "decreasing")):
                results.append(shape.curvature)
            else:
                mono = m or "not monotone"
                return self._fail(e, f"{name} ({shape.curvature}, {mono} here) of a {c} argument")
        return _join(results)

    def _piecewise(self, e: sp.Piecewise) -> str:
        pieces = [self.of(piece) for piece, _ in e.args]
        if not any(self.dep(c) for _, c in e.args):  # each element takes one piece, whatever x is
            got = _join(pieces) if "unknown" not in pieces else "unknown"
            if set(pieces) - {"constant", "affine"} == {"convex", "concave"}:
                got = "unknown"
            return got if got != "unknown" else self._fail(e, "pieces of different curvature")
        kinds = set(pieces) - {"constant", "affine"}
        if len(kinds) != 1 or not self._glued(e):
            return self._fail(e, "a piecewise definition whose conditions depend on the input")
        return kinds.pop()

    def _glued(self, e: sp.Piecewise) -> bool:
        """Whether every piece meets every other with equal value and slope where a condition
        changes (then convex pieces make a convex whole: its derivative never drops)."""
        if any(s in self.depends and s != self.x for s in e.free_symbols):
            return False
        edges = [r.lhs - r.rhs for _, c in e.args for r in c.atoms(sp.core.relational.Relational)]
        pieces = [p for p, _ in e.args]
        slopes = [sp.diff(p, self.x) for p in pieces]
        for edge in edges:
            try:
                points = sp.solve(elementary(edge), self.x)
            except (NotImplementedError, ValueError):
                return False
            for b in points:
                for f in (pieces, slopes):
                    at = [elementary(g.subs(self.x, b)) for g in f]
                    if any(sp.simplify(a - at[0]) != 0 for a in at[1:]):
                        return False
        return True

    def _sign_bounds(self, e: sp.Expr, t: sp.Symbol, span: Interval) -> Interval:
        """Bounds of ``e`` for ``t`` in ``span``: over one fraction first (which cancels terms
        that interval arithmetic cannot), simplified only when that is undecided and cheap.
        Memoised with the graph's bounds: the inputs of one loss often pose the same test."""
        key = (e, span)
        got = self.bounds.signs.get(key)
        if got is None:
            got = self.bounds(sp.together(e), {t: span})
            if got[0] < 0 < got[1] and sp.count_ops(e) < 20:
                got = self.bounds(sp.factor(sp.simplify(e)), {t: span})
            self.bounds.signs[key] = got
        return got

    def _by_derivatives(self, e: sp.Basic) -> str:
        """``e = g(u)`` for a sub-expression ``u`` of known curvature: ``g``'s curvature and
        monotonicity on the range of ``u`` from the signs of ``g''`` and ``g'`` (intervals)."""
        if sp.count_ops(e) > 40:  # keep the search cheap; the rule has already failed
            return "unknown"
        t = _T
        candidates = sorted({u for u in sp.preorder_traversal(e) if u != e and isinstance(u, sp.Expr) and self.dep(u)},
                            key=sp.count_ops, reverse=True)
        for u in candidates[:6]:
            g = e.xreplace({u: t})
            if self.dep(g) or any(t in a.free_symbols for a in g.atoms(sp.Piecewise, *NONSMOOTH)):
                continue
            inner = self.of(u)
            if inner == "unknown":
                continue
            span = self.bounds(u)
            second = self._sign_bounds(_derivative(g, t, 2), t, span)
            shape = "convex" if second[0] >= 0 else "concave" if second[1] <= 0 else None
            if shape is None:
                continue
            slope = self._sign_bounds(_derivative(g, t, 1), t, span)
            mono = "increasing" if slope[0] >= 0 else "decreasing" if slope[1] <= 0 else ""
            got = self._apply(e, Shape(shape, (mono,)), [u], "g")
            if got != "unknown":
                self._failures.clear()
                return got
        return "unknown"
