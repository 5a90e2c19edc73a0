"""Curvature by composition, in the style of disciplined convex programming: every builtin and
primitive declares its curvature, monotonicity and range (``Shape`` in ``builtins.py``) and
``Analysis.of`` applies the one composition rule. Where the rule fails, a one-dimensional
sub-expression ``g(u)`` is tried by its derivatives (``g'' >= 0`` on the range of ``u``, by interval
arithmetic). A wrong "convex" is the one answer this must never give."""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from ..builtins import PRIMITIVES, Shape
from ..formula import render, text
from ..ir import Apply, Graph, Input
from .evaluate import elementary
from .intervals import NONSMOOTH, SHAPES, Bounds, Interval, local

_T = sp.Dummy("t", real=True)  # the variable of g(u) in the derivative test, shared so that tests repeat

_ORDER = (sp.StrictGreaterThan, sp.StrictLessThan, sp.GreaterThan, sp.LessThan)
_JOIN = {frozenset({"convex"}): "convex", frozenset({"concave"}): "concave", frozenset({"affine"}): "affine"}
_FLIP = {"convex": "concave", "concave": "convex"}


def _join(curvatures: list[str]) -> str:
    """The curvature of a sum."""
    kinds = frozenset(c for c in curvatures if c != "constant")
    if not kinds:
        return "constant"
    kinds = kinds - {"affine"} or frozenset({"affine"})
    return _JOIN.get(kinds, "unknown")


def decided(cond: sp.Basic, bounds: Bounds) -> bool | None:
    """Whether a piece's condition holds everywhere on the domain (True), nowhere (False), or
    neither (None), from the interval of ``lhs - rhs``."""
    if cond in (sp.true, sp.false):
        return bool(cond)
    if not isinstance(cond, (*_ORDER, sp.Eq, sp.Ne)):
        return None
    lo, hi = bounds(cond.lhs - cond.rhs)
    tests = {sp.StrictGreaterThan: (lo > 0, hi <= 0), sp.GreaterThan: (lo >= 0, hi < 0),
             sp.StrictLessThan: (hi < 0, lo >= 0), sp.LessThan: (hi <= 0, lo > 0),
             sp.Eq: (lo == hi == 0, lo > 0 or hi < 0), sp.Ne: (lo > 0 or hi < 0, lo == hi == 0)}
    always, never = tests[type(cond)]
    return True if always else False if never else None


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


def _valued(op: Apply) -> list[sp.Expr]:
    """The operands whose values an op's value depends on: not those it takes only the shape or
    integer labels of ("static", as the losses that per-sample weights are matched to)."""
    spec = PRIMITIVES.get(op.prim)
    monotone = spec.shape.monotone if spec is not None else ()
    return [o for k, o in enumerate(op.operands) if k >= len(monotone) or monotone[k] != "static"]


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
            if sym == self.x or (isinstance(op, Apply) and any(s in self.depends for o in _valued(op)
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
        return f"{text(render(self.graph, e))}: {why}"

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
        here = local(shape, [self.bounds(a) for a in args])
        if here is None:
            lo, hi = shape.domain
            return self._fail(e, f"{name} is studied for arguments in [{lo:g}, {hi:g}] only")
        shape = here
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
        e = self._taken(e)
        if not isinstance(e, sp.Piecewise):
            return self.of(e)
        pieces = [self.of(piece) for piece, _ in e.args]
        if not any(self.dep(c) for _, c in e.args):  # each element takes one piece, whatever x is
            got = _join(pieces) if "unknown" not in pieces else "unknown"
            if set(pieces) - {"constant", "affine"} == {"convex", "concave"}:
                got = "unknown"
            return got if got != "unknown" else self._fail(e, "pieces of different curvature")
        face = self._on_a_face(e)
        if face is not None:
            return face
        kinds = set(pieces) - {"constant", "affine"}
        if len(kinds) != 1 or not self._glued(e):
            return self._fail(e, "a piecewise definition whose conditions depend on the input")
        return kinds.pop()

    def _taken(self, e: sp.Piecewise) -> sp.Expr:
        """``e`` without the pieces whose condition is false on the whole domain (by intervals),
        and ending at the first whose condition is true there; one piece left is that piece."""
        kept = []
        for piece, cond in e.args:
            holds = decided(cond, self.bounds)
            if holds is False:
                continue
            kept.append((piece, sp.true if holds else cond))
            if holds:
                break
        if len(kept) == 1 and kept[0][1] == sp.true:
            return kept[0][0]
        return e if len(kept) == len(e.args) else sp.Piecewise(*kept) if kept else sp.nan

    def _on_a_face(self, e: sp.Piecewise) -> str | None:
        """``where(d > 0, g, h)`` with ``d >= 0`` on the domain and everything a function of one
        affine ``u``: ``h`` is taken only on the face ``d = 0`` (as ``0 log 0 = 0`` in KL). The
        whole is as convex as ``g`` if ``h`` there is at least ``g``'s limit (concave: at most)."""
        if len(e.args) != 2 or e.args[1][1] != sp.true or not isinstance(e.args[0][1], _ORDER):
            return None
        (first, cond), (second, _) = e.args
        d = cond.lhs - cond.rhs
        lo, hi = self.bounds(d)
        # which piece is taken off the face, and on which side of it
        sides = {(sp.StrictGreaterThan, lo == 0): (first, second, 1), (sp.StrictLessThan, hi == 0): (first, second, -1),
                 (sp.GreaterThan, hi == 0): (second, first, -1), (sp.LessThan, lo == 0): (second, first, 1)}
        found = sides.get((type(cond), True))
        leaves = {s for s in e.free_symbols if s in self.depends}
        if found is None or len(leaves) != 1:
            return None
        inner, on_face, side = found
        (u,) = leaves
        slope = sp.diff(d, u)
        if self.of(u) != "affine" or not slope.is_number or slope == 0 or sp.diff(d, u, 2) != 0:
            return None
        curvature = self.of(inner)
        if curvature not in ("convex", "concave", "affine"):
            return None
        at = sp.solve(d, u)
        if len(at) != 1:
            return None
        t = sp.Dummy("t", real=True)
        try:
            limit = sp.limit(elementary(inner).xreplace({u: t}), t, at[0], "+" if side * slope > 0 else "-")
        except (NotImplementedError, ValueError, TypeError):
            return None
        if not limit.is_finite or limit.has(sp.Limit):
            return None
        gap = self.bounds(on_face.xreplace({u: at[0]}) - limit)
        if curvature != "concave" and gap[0] >= 0:
            return "convex" if curvature == "convex" or gap[1] > 0 else "affine"
        if curvature != "convex" and gap[1] <= 0:
            return "concave" if curvature == "concave" or gap[0] < 0 else "affine"
        return None

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
