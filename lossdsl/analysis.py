"""Know your loss: properties derived from its IR, with respect to each float input.

* ``convexity`` is proved by composition in the style of disciplined convex programming: every
  builtin and primitive declares its curvature, monotonicity and range (``Shape`` in
  ``builtins.py``), and ``Curvature.of`` applies the one composition rule. Where the rule fails,
  a one-dimensional sub-expression ``g(u)`` is tried by its derivatives (``g'' >= 0`` on the range
  of ``u``, by interval arithmetic). "nonconvex" needs a counterexample found numerically (a
  violation of midpoint convexity, reported); otherwise "unknown", with the sub-expression that
  broke the rule. A wrong "convex" is the one answer this must never give.
* ``smoothness``, ``robustness`` and ``range`` study the per-element loss ``l(t)`` (the term one
  element of the prediction contributes), with the other inputs held at a typical value.
* ``likelihood`` matches the gradient against known negative log-likelihoods up to a positive
  factor (so the loss is ``a * nll + b(target)``), on random inputs.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import sympy as sp

from .backends import numpy_runtime
from .builtins import ELEMENTWISE, FUNCTION_NAMES, INF, PRIMITIVES, Shape
from .compiled import CompiledLoss
from .formula import render
from .ir import Apply, Graph, Input

Interval = tuple[float, float]
_FULL: Interval = (-INF, INF)
_SHAPES: dict[type, Shape] = {(e.sympy_class or e.func): e.shape for e in ELEMENTWISE if e.sympy_class is not sp.Pow}
_NONSMOOTH = tuple(cls for cls, s in _SHAPES.items() if s.kink or s.jump)
# functions NumPy lacks (erf, lgamma, ...), by name, as the NumPy backend computes them: for lambdify
_NUMPY_HELPERS = {cls.__name__: getattr(numpy_runtime, forms["numpy"]) for cls, forms in FUNCTION_NAMES.items()
                  if hasattr(numpy_runtime, forms["numpy"])}


# --- interval arithmetic ---------------------------------------------------------------------

def _mul(a: Interval, b: Interval) -> Interval:
    prods = [0.0 if 0 in (p, q) else p * q for p in a for q in b]
    return min(prods), max(prods)


def _image(cls: type, shape: Shape, args: list[Interval]) -> Interval:
    """The range of an elementwise function over argument intervals, from its declared shape."""
    lo, hi = shape.range

    def at(point: tuple[float, ...], fallback: float) -> float:
        try:
            fn = getattr(cls, "elementary", cls)  # SymPy's own form also evaluates at infinities
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
    return _FULL


def _power(a: Interval, p: sp.Expr) -> Interval:
    if not p.is_number:
        return _FULL
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
        return _FULL if a[1] < 0 or q < 0 else (0.0, a[1] ** q)
    vals = [v ** q if v != INF else (INF if q > 0 else 0.0) for v in a]
    return min(vals), max(vals)


# --- the analysis of one input -----------------------------------------------------------

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


class Analysis:
    """Curvature and ranges of the expressions of one graph, with respect to one input ``x``."""

    def __init__(self, graph: Graph, x: str, ranges: dict[str, Interval]):
        self.graph, self.x = graph, graph.input(x) if x in graph.inputs else sp.Symbol(x)
        self.ranges = ranges
        self.depends: set[sp.Symbol] = set()
        for sym, op in graph:
            if sym == self.x or (isinstance(op, Apply) and any(s in self.depends for o in op.operands
                                                                for s in o.free_symbols)):
                self.depends.add(sym)
        self.reasons: list[str] = []
        self._curv: dict[sp.Basic, str] = {}
        self._bounds: dict[sp.Symbol, Interval] = {}

    def dep(self, e: sp.Basic) -> bool:
        return any(s in self.depends for s in e.free_symbols)

    # --- ranges ---
    def bounds(self, e: sp.Basic, env: dict[sp.Symbol, Interval] | None = None) -> Interval:
        env = env or {}
        if e in env:
            return env[e]
        if e.is_number:
            try:
                v = float(e)
            except TypeError:
                return _FULL
            return (v, v) if not math.isnan(v) else _FULL
        if isinstance(e, sp.Symbol):
            return self._leaf_bounds(e)
        if isinstance(e, sp.Add):
            lo = hi = 0.0
            for a in e.args:
                b = self.bounds(a, env)
                lo, hi = lo + b[0], hi + b[1]
            return (lo if not math.isnan(lo) else -INF, hi if not math.isnan(hi) else INF)
        if isinstance(e, sp.Mul):
            out = (1.0, 1.0)
            for a in e.args:
                out = _mul(out, self.bounds(a, env))
            return out
        if isinstance(e, sp.Pow):
            return _power(self.bounds(e.base, env), e.exp)
        if isinstance(e, sp.Piecewise):
            parts = [self.bounds(piece, env) for piece, _ in e.args]
            return min(p[0] for p in parts), max(p[1] for p in parts)
        shape = _SHAPES.get(type(e))
        if shape is not None:
            return _image(type(e), shape, [self.bounds(a, env) for a in e.args])
        return _FULL

    def _leaf_bounds(self, s: sp.Symbol) -> Interval:
        if s not in self._bounds:
            op = self.graph.op_of.get(s)
            out = _FULL
            if isinstance(op, Input):
                out = self.ranges.get(op.name, _FULL)
            elif isinstance(op, Apply) and op.prim in PRIMITIVES:
                shape = PRIMITIVES[op.prim].shape
                inner = self.bounds(op.operands[0]) if op.operands else _FULL
                if shape.range_of == "operand":
                    out = inner
                elif shape.range_of == "sign":
                    out = (0.0 if inner[0] >= 0 else -INF, 0.0 if inner[1] <= 0 else INF)
                else:
                    out = shape.range
                if op.prim == "within":
                    lo, hi = op.param("lower"), op.param("upper")
                    out = (max(out[0], -INF if lo is None else float(lo)), min(out[1], INF if hi is None else float(hi)))
            self._bounds[s] = out
        return self._bounds[s]

    # --- curvature ---
    def of(self, e: sp.Basic) -> str:
        """"constant", "affine", "convex", "concave" or "unknown" (the reason is recorded)."""
        if e not in self._curv:
            got = self._compose(e) if self.dep(e) else "constant"
            if got == "unknown":
                got = self._by_derivatives(e)
            self._curv[e] = got
        return self._curv[e]

    def _fail(self, e: sp.Basic, why: str) -> str:
        self.reasons.append(f"{sp.sstr(render(self.graph, e))}: {why}")
        return "unknown"

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
        shape = _SHAPES.get(type(e))
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
        that interval arithmetic cannot), simplified only when that is undecided and cheap."""
        got = self.bounds(sp.together(e), {t: span})
        if got[0] < 0 < got[1] and sp.count_ops(e) < 20:
            got = self.bounds(sp.factor(sp.simplify(e)), {t: span})
        return got

    def _by_derivatives(self, e: sp.Basic) -> str:
        """``e = g(u)`` for a sub-expression ``u`` of known curvature: ``g``'s curvature and
        monotonicity on the range of ``u`` from the signs of ``g''`` and ``g'`` (intervals)."""
        if sp.count_ops(e) > 40:  # keep the search cheap; the rule has already failed
            return "unknown"
        t = sp.Dummy("t", real=True)
        candidates = sorted({u for u in sp.preorder_traversal(e) if u != e and isinstance(u, sp.Expr) and self.dep(u)},
                            key=sp.count_ops, reverse=True)
        for u in candidates[:6]:
            g = e.xreplace({u: t})
            if self.dep(g) or any(t in a.free_symbols for a in g.atoms(sp.Piecewise, *_NONSMOOTH)):
                continue
            inner = self.of(u)
            if inner == "unknown":
                continue
            span = self.bounds(u)
            second = self._sign_bounds(sp.diff(g, t, 2), t, span)
            shape = "convex" if second[0] >= 0 else "concave" if second[1] <= 0 else None
            if shape is None:
                continue
            slope = self._sign_bounds(sp.diff(g, t), t, span)
            mono = "increasing" if slope[0] >= 0 else "decreasing" if slope[1] <= 0 else ""
            got = self._apply(e, Shape(shape, (mono,)), [u], "g")
            if got != "unknown":
                self.reasons.clear()
                return got
        return "unknown"


def elementary(e: sp.Expr) -> sp.Expr:
    """``e`` with lossdsl's own functions written in SymPy's (softplus as log(1 + exp(x)), ...)."""
    return e.replace(lambda a: hasattr(type(a), "elementary"), lambda a: type(a).elementary(*a.args))


# --- numeric helpers on the compiled loss ------------------------------------------------------

def input_ranges(graph: Graph) -> dict[str, Interval]:
    """The interval each input is checked to lie in by ``within`` (the whole line otherwise)."""
    out: dict[str, Interval] = {}
    for _, op in graph:
        if isinstance(op, Apply) and op.prim == "within" and isinstance(op.operands[0], sp.Symbol):
            src = graph.op_of.get(op.operands[0])
            if isinstance(src, Input):
                lo, hi = out.get(src.name, _FULL)
                a, b = op.param("lower"), op.param("upper")
                out[src.name] = (max(lo, -INF if a is None else float(a)), min(hi, INF if b is None else float(b)))
    return out


def _sample(loss: CompiledLoss, ranges: dict[str, Interval], shape: tuple[int, ...], rng: np.random.Generator,
            scale: float = 1.0) -> dict[str, np.ndarray]:
    out = {}
    for name in loss.inputs:
        if name not in loss.differentiable:
            out[name] = rng.integers(0, shape[-1], size=shape[:-1] if len(shape) > 1 else shape)
            continue
        lo, hi = ranges.get(name, _FULL)
        if lo > -INF and hi < INF:
            out[name] = rng.uniform(lo, hi, size=shape)
        elif lo > -INF:
            out[name] = lo + rng.exponential(scale, size=shape)
        elif hi < INF:
            out[name] = hi - rng.exponential(scale, size=shape)
        else:
            out[name] = rng.normal(0, scale, size=shape)
    return out


_SHAPES_TRIED = ((1,), (2, 3), (4, 3))


def _working_shapes(loss: CompiledLoss, ranges: dict[str, Interval]) -> Iterator[tuple[int, ...]]:
    rng = np.random.default_rng(0)
    for shape in _SHAPES_TRIED:
        try:
            v = loss(**_sample(loss, ranges, shape, rng))
        except Exception:  # noqa: BLE001 - a shape the loss does not accept
            continue
        if np.ndim(v) == 0:
            yield shape


def counterexample(loss: CompiledLoss, x: str, ranges: dict[str, Interval], trials: int = 300) -> dict | None:
    """Two values of ``x`` (other inputs fixed) whose midpoint lies above the chord, if found."""
    rng = np.random.default_rng(1)
    for shape in _working_shapes(loss, ranges):
        for k in range(trials):
            scale = (0.5, 2.0, 10.0)[k % 3]
            base = _sample(loss, ranges, shape, rng, scale)
            a, b = base[x], _sample(loss, ranges, shape, rng, scale)[x]
            with np.errstate(all="ignore"):
                fa, fb = float(loss(**{**base, x: a})), float(loss(**{**base, x: b}))
                fm = float(loss(**{**base, x: (a + b) / 2}))
            if all(map(math.isfinite, (fa, fb, fm))) and fm > (fa + fb) / 2 + 1e-7 * (1 + abs(fa) + abs(fb)):
                others = {n: v.tolist() for n, v in base.items() if n != x}
                return {"inputs": others, x: [a.tolist(), b.tolist()], "loss": [fa, fb],
                        "loss_at_midpoint": fm, "chord_midpoint": (fa + fb) / 2}
    return None


# --- the per-element loss ----------------------------------------------------------------------

@dataclass
class Element:
    """The loss one element of ``x`` contributes, as a function of ``t``, others held fixed."""

    expr: sp.Expr  # in the graph's custom functions, over t
    t: sp.Symbol
    domain: Interval
    held: dict[str, float]
    symbolic: sp.Expr  # the rendered term, over the inputs' plain symbols


def _term(an: Analysis, e: sp.Expr) -> sp.Expr | None:
    """The operand of the reductions that ``e`` sums or averages ``x`` through, if elementwise."""
    terms = [a for a in sp.Add.make_args(sp.expand(e, deep=False, mul=True, multinomial=False)) if an.dep(a)]
    inner = []
    for term in terms:
        leaves = [s for s in term.free_symbols if s in an.depends]
        if len(leaves) != 1 or leaves[0] == an.x:
            return None
        (leaf,) = leaves
        scale = term / leaf
        op = an.graph.op_of[leaf]
        if an.dep(scale) or not isinstance(op, Apply) or op.prim not in ("sum", "mean"):
            return None
        lo, hi = an.bounds(scale)
        if hi < 0:  # -mean(l): a reduction takes a minus sign out of its operand (builtins._reduction)
            scale, operand = -scale, -op.operands[0]
        elif lo > 0:
            operand = op.operands[0]
        else:
            return None
        inner.append((op.prim, scale, operand))
    if not inner or len({kind for kind, _, _ in inner}) != 1:
        return None
    body = sp.Add(*(s * o if len(inner) > 1 else o for _, s, o in inner))
    if all(s == an.x or s not in an.depends for s in body.free_symbols):
        return body
    return _term(an, body)


def element(an: Analysis, loss: CompiledLoss) -> Element | None:
    body = _term(an, loss.root)
    if body is None:
        return None
    t = sp.Symbol("t", real=True)
    held: dict[str, float] = {}
    for name in loss.inputs:
        lo, hi = an.ranges.get(name, _FULL)
        held[name] = 1.0 if lo <= 1 <= hi else (lo + hi) / 2 if hi < INF else lo + 1
    symbolic = render(an.graph, body)
    plain = symbolic.subs({sp.Symbol(n): (t if n == str(an.x) else sp.nsimplify(v)) for n, v in held.items()})
    plain = plain.replace(lambda a: isinstance(a, sp.core.function.AppliedUndef), lambda a: sp.Integer(1))
    plain = plain.subs({s: 1 for s in plain.free_symbols if s != t})
    return Element(plain, t, an.ranges.get(str(an.x), _FULL), {k: v for k, v in held.items() if k != str(an.x)},
                   symbolic)


def _value(e: sp.Expr, t: sp.Symbol, at: sp.Expr) -> float:
    v = sp.N(elementary(e).subs(t, at), 30)
    try:
        return float(v)
    except TypeError:
        return math.nan


def smoothness(el: Element) -> dict[str, Any]:
    """C^k: one-sided derivatives up to order 4 compared where a function has a kink or a
    condition changes; a point where they all agree is no kink."""
    t = el.t
    where: dict[sp.Expr, str] = {}
    for a in sp.preorder_traversal(el.expr):
        if isinstance(a, _NONSMOOTH) and t in a.free_symbols:
            edge = a.args[0] - a.args[1] if len(a.args) == 2 and _SHAPES[type(a)].kink else a.args[0]
            where[edge] = "kink" if _SHAPES[type(a)].kink else "jump"
        if isinstance(a, sp.Piecewise):
            for _, c in a.args:
                for r in c.atoms(sp.core.relational.Relational):
                    if t in r.free_symbols:
                        where[r.lhs - r.rhs] = "jump"
    derivs = [el.expr]
    for _ in range(4):
        derivs.append(sp.diff(derivs[-1], t))
    k: float = INF
    points = []
    delta = sp.Rational(1, 10**12)
    for edge in where:
        try:
            roots = [r for r in sp.solve(elementary(edge), t) if r.is_real]
        except (NotImplementedError, ValueError):
            roots = []
        for r in roots:
            if not el.domain[0] < float(r) < el.domain[1]:
                continue
            for order, d in enumerate(derivs):
                left, right = _value(d, t, r - delta), _value(d, t, r + delta)
                if abs(left - right) > 1e-6 * (1 + abs(left) + abs(right)):
                    points.append({"at": float(r), "continuous_derivatives": order - 1})
                    k = min(k, order - 1)
                    break
    kinds = {-1: "jump", 0: "kink"}
    return {"class": "inf" if k == INF else int(k),
            "points": [{**p, "kind": kinds.get(p["continuous_derivatives"], f"C^{p['continuous_derivatives']}")}
                       for p in points]}


def robustness(el: Element) -> dict[str, Any]:
    """Growth of the loss and of its derivative as the prediction runs off to either infinity."""
    t = el.t
    slope = sp.diff(el.expr, t)
    far, farther = sp.Integer(10) ** 8, sp.Integer(10) ** 12
    sides = {}
    for name, s in (("+", 1), ("-", -1)):
        if (el.domain[1] if s > 0 else -el.domain[0]) < INF:
            continue
        v1, v2 = _value(el.expr, t, s * far), _value(el.expr, t, s * farther)
        g1, g2 = abs(_value(slope, t, s * far)), abs(_value(slope, t, s * farther))
        if abs(v2) > 1e40 or (abs(v1) > 0 and math.log(abs(v2) / abs(v1)) / math.log(1e4) > 2.5):
            growth = "exponential"
        elif abs(v2) > 1e-300 and abs(v1) > 1e-300 and math.log(abs(v2) / abs(v1)) / math.log(1e4) > 1.5:
            growth = "quadratic"
        elif abs(v2) > 1e-300 and abs(v1) > 1e-300 and math.log(abs(v2) / abs(v1)) / math.log(1e4) > 0.5:
            growth = "linear"
        elif v2 - v1 > 1e-3 * (1 + abs(v1)):
            growth = "logarithmic"
        else:
            growth = "bounded"
        bounded = growth != "exponential" and math.isfinite(g2) and g2 <= 2 * g1 + 1e-9
        sides[name] = {"growth": growth, "influence_bounded": bool(bounded)}
    if not sides:
        return {"note": "the input is confined to a bounded interval"}
    order = ("bounded", "logarithmic", "linear", "quadratic", "exponential")
    return {"influence_bounded": all(s["influence_bounded"] for s in sides.values()),
            "growth": max((s["growth"] for s in sides.values()), key=order.index), "directions": sides}


def value_range(el: Element, an: Analysis, root: sp.Expr) -> dict[str, Any]:
    """Bounded below, non-negative (proved by intervals on the whole loss, or seen numerically),
    and the minimum of the per-element loss with its place."""
    t = el.t
    lo, hi = el.domain
    centre = 1.0 if lo <= 1 <= hi else (lo + hi) / 2 if hi < INF else lo + 1
    if lo > -INF and hi < INF:
        grid = np.linspace(lo, hi, 401)
    else:
        offsets = np.logspace(-4, 3, 200)
        grid = np.concatenate([centre - offsets[::-1], [centre], centre + offsets])
        grid = grid[(grid >= lo) & (grid <= hi)]
    f = sp.lambdify(t, elementary(el.expr), modules=[_NUMPY_HELPERS, "numpy"])
    with np.errstate(all="ignore"):
        values = np.broadcast_to(np.asarray(f(grid), dtype=float), grid.shape)
    ok = np.isfinite(values)
    i = int(np.argmin(np.where(ok, values, np.inf)))
    best, place = float(values[i]), float(grid[i])
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    for _ in range(60):  # golden-section refinement inside the bracket
        m1, m2 = b - (b - a) / 1.618034, a + (b - a) / 1.618034
        with np.errstate(all="ignore"):
            f1, f2 = float(f(m1)), float(f(m2))
        a, b = (a, m2) if f1 <= f2 else (m1, b)
    with np.errstate(all="ignore"):
        refined = float(f((a + b) / 2))
    if math.isfinite(refined) and refined <= best:
        best, place = refined, float((a + b) / 2)
    tails = {}
    attained = True
    for name, s in (("+inf", 1), ("-inf", -1)):
        if (hi if s > 0 else -lo) == INF:
            # still falling at the grid's end (softplus(-x) there is below float precision, its
            # slope, -sigmoid(-x), is not): the infimum lies at infinity
            falling = sp.N(elementary(sp.diff(el.expr, t)).subs(t, sp.Float(grid[-1 if s > 0 else 0])), 30) * s
            tails[name] = _value(el.expr, t, s * sp.Integer(10) ** 12)
            if falling.is_real and falling < 0 and tails[name] <= best + 1e-9 * (1 + abs(best)):
                best, place, attained = tails[name], name, False
    below = all(v > -1e6 for v in tails.values()) and math.isfinite(best)
    proved = an.bounds(root)[0] >= 0
    best = round(best, 10) + 0.0
    return {"bounded_below": bool(below), "nonnegative": bool(proved or (below and best >= -1e-9)),
            "nonnegative_proved": bool(proved), "minimum": best if below else None,
            "attained": attained if below else False,
            "argmin": (round(place, 6) + 0.0 if isinstance(place, float) else place) if below else None,
            "held": el.held}


# --- likelihoods: known negative log-likelihoods, by their gradients -----------------------------

@dataclass(frozen=True)
class NLL:
    """A negative log-likelihood of a target y under a prediction x, up to terms in y alone."""

    distribution: str
    parameter: str
    target: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
    prediction: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
    gradient: Callable[[np.ndarray, np.ndarray], np.ndarray]  # d nll / d x
    simplex: bool = False  # x and y are distributions along the last axis


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _dirichlet(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])


def _normal(rng, shape):
    return rng.normal(0, 2, shape)


LIKELIHOODS = (
    NLL("Gaussian", "mean", _normal, _normal, lambda y, x: x - y),  # (x - y)^2 / (2 s^2)
    NLL("Laplace", "location", _normal, _normal, lambda y, x: np.sign(x - y)),  # |x - y| / b
    NLL("Bernoulli", "logit", lambda r, s: r.uniform(0, 1, s), _normal,
        lambda y, x: 1 / (1 + np.exp(-x)) - y),  # -y log sigmoid(x) - (1 - y) log sigmoid(-x)
    NLL("Bernoulli", "probability", lambda r, s: r.uniform(0, 1, s), lambda r, s: r.uniform(0.05, 0.95, s),
        lambda y, x: (x - y) / (x * (1 - x))),  # -y log x - (1 - y) log(1 - x)
    NLL("Poisson", "log-rate", lambda r, s: r.poisson(3, s).astype(float), lambda r, s: r.normal(0, 1, s),
        lambda y, x: np.exp(x) - y),  # e^x - y x + log y!
    NLL("Poisson", "rate", lambda r, s: r.poisson(3, s).astype(float), lambda r, s: r.uniform(0.5, 5, s),
        lambda y, x: 1 - y / x),  # x - y log x + log y!
    NLL("categorical", "logits", _dirichlet, _normal, lambda y, x: _softmax(x) * y.sum(-1, keepdims=True) - y),
    NLL("categorical", "probabilities", _dirichlet, _dirichlet, lambda y, x: -y / x, simplex=True),
)


def likelihood(loss: CompiledLoss, x: str, ranges: dict[str, Interval]) -> dict[str, Any] | None:
    """The known NLL whose gradient the loss's gradient is a constant positive multiple of."""
    others = [n for n in loss.inputs if n != x]
    if len(others) > 1:
        return None
    rng = np.random.default_rng(2)
    for form in LIKELIHOODS:
        if not others and form.distribution not in ("Gaussian", "Laplace"):
            continue  # a penalty of x alone: a prior centred at 0
        for shape in ((8,), (4, 5)) if not form.simplex and form.distribution != "categorical" else ((4, 5),):
            ratios = []
            try:
                for _ in range(4):
                    y = form.target(rng, shape) if others else np.zeros(shape)
                    xv = form.prediction(rng, shape)
                    inputs = {x: xv, **({others[0]: y} if others else {})}
                    with np.errstate(all="ignore"):
                        got = np.asarray(loss.grad(x)(**inputs), dtype=float)
                        want = form.gradient(y, xv)
                    if form.simplex:  # along the simplex only: a constant per row does not count
                        got = got - got.mean(-1, keepdims=True)
                        want = want - want.mean(-1, keepdims=True)
                    keep = np.abs(want) > 1e-6
                    ratios.append(got[keep] / want[keep])
            except Exception:  # noqa: BLE001 - inputs this form's samples do not fit
                continue
            r = np.concatenate(ratios)
            if r.size and np.all(np.isfinite(r)) and r.min() > 0 and np.ptp(r) <= 1e-7 * abs(r.mean()):
                return {"distribution": form.distribution, "parameter": form.parameter,
                        "target": others[0] if others else None, "scale": float(r.mean())}
    return None


# --- the report ----------------------------------------------------------------------------------

def _order(loss: CompiledLoss) -> list[str]:
    names = list(loss.differentiable)
    return sorted(names, key=lambda n: n != "y_pred")


def analyze_input(loss: CompiledLoss, x: str) -> dict[str, Any]:
    ranges = input_ranges(loss.graph)
    an = Analysis(loss.graph, x, ranges)
    curvature = an.of(loss.root)
    report: dict[str, Any] = {"input": x}
    if curvature in ("convex", "concave", "affine"):
        report["convexity"] = {"verdict": curvature, "proof": "composition rules"}
    elif curvature == "constant":
        report["convexity"] = {"verdict": "affine", "proof": "the loss does not depend on it"}
    else:
        found = counterexample(loss, x, ranges)
        if found is not None:
            report["convexity"] = {"verdict": "nonconvex", "counterexample": found}
        else:
            report["convexity"] = {"verdict": "unknown", "reason": an.reasons[0] if an.reasons else
                                   "the composition rules do not apply"}
    el = element(an, loss)
    if el is None:
        kinks = [a for a in sp.preorder_traversal(loss.root) if isinstance(a, (*_NONSMOOTH, sp.Piecewise))]
        smooth = {"class": "inf", "points": []} if not kinks and not any(
            isinstance(op, Apply) and PRIMITIVES.get(op.prim, None) is not None and PRIMITIVES[op.prim].shape.kink
            for s, op in loss.graph if s in an.depends) else {"class": "unknown", "points": []}
        report.update(smoothness=smooth, robustness=None, range=None)
    else:
        report.update(per_element=sp.sstr(el.symbolic), smoothness=smoothness(el), robustness=robustness(el),
                      range=value_range(el, an, loss.root))
    report["likelihood"] = likelihood(loss, x, ranges)
    report["hessian"] = {"per_element": sp.sstr(loss.hessian_formula(x)), "diagonal": el is not None,
                         "full": f"CompiledLoss.hessian({x!r})"}
    return report


def analyze(source: str) -> dict[str, Any]:
    """Properties of a loss with respect to each float input (the prediction first): a
    JSON-serialisable dict (see the module docstring)."""
    return copy.deepcopy(_analyze(source))


@lru_cache(maxsize=128)
def _analyze(source: str) -> dict[str, Any]:
    from .pipeline import compile as compile_loss
    loss = compile_loss(source)
    return {"source": loss.text, "formula": sp.sstr(loss.formula()),
            "inputs": {x: analyze_input(loss, x) for x in _order(loss)}}


# --- the selection guide ---------------------------------------------------------------------

GUIDE_LOSSES = {
    "regression": ["mse()", "mae()", "huber(delta=1)", "smooth_l1(beta=1)", "pseudo_huber(delta=1)",
                   "quantile(tau=0.9)", "log_cosh()", "tukey()", "barron(alpha=0)"],
    "classification": ["bce(from_logits=true)", "cce(from_logits=true)", "hinge()", "squared_hinge()",
                       "focal(from_logits=true)"],
    "probabilistic": ["kl_div()", "poisson_nll()"],
    "regularization": ["l1(w)", "l2(w)", "elastic_net(w)"],
}


def _cells(report: dict[str, Any]) -> list[str]:
    conv = report["convexity"]["verdict"]
    smooth = report["smoothness"]["class"]
    rob = report["robustness"] or {}
    lik = report["likelihood"]
    return [conv, "C^∞" if smooth == "inf" else f"C^{smooth}" if smooth != "unknown" else "?",
            {True: "yes", False: "no", None: "–"}[rob.get("influence_bounded")], rob.get("growth", "–"),
            f"{lik['distribution']} ({lik['parameter']})" if lik else "–"]


def selection_guide() -> str:
    """docs/selection-guide.md: the stdlib's properties, derived by ``analyze``."""
    out = ["# Choosing a loss: derived properties", "",
           "Generated by `lossdsl docs --guide -o docs/selection-guide.md` from `lossdsl.analyze`; do not edit by",
           "hand. Each row is the analysis of the loss with respect to its prediction (`y_pred`; the",
           "regularisers: `w`): convexity proved by composition rules (or refuted by a counterexample),",
           "smoothness class, whether the influence |dl/dy_pred| stays bounded as the prediction runs off,",
           "how fast the loss grows there, and the distribution whose negative log-likelihood it is.", ""]
    for family, sources in GUIDE_LOSSES.items():
        out += [f"## {family}", "", "| loss | convexity | smoothness | bounded influence | growth | likelihood |",
                "|---|---|---|---|---|---|"]
        for source in sources:
            report = next(iter(analyze(source)["inputs"].values()))
            out.append(f"| `{source}` | " + " | ".join(_cells(report)) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def table(result: dict[str, Any]) -> str:
    """``analyze``'s result as a readable table (for ``lossdsl explain``)."""
    lines = [f"loss: {result['source']}", f"formula: {result['formula']}"]
    for x, r in result["inputs"].items():
        conv = r["convexity"]
        detail = conv.get("reason") or conv.get("proof") or (
            f"midpoint above the chord: {conv['counterexample']['loss_at_midpoint']:.6g} > "
            f"{conv['counterexample']['chord_midpoint']:.6g}" if "counterexample" in conv else "")
        rows = [("convexity", f"{conv['verdict']} ({detail})")]
        sm = r["smoothness"]
        where = ", ".join(f"{p['kind']} at {x} = {p['at']:g}" for p in sm["points"])
        rows.append(("smoothness", ("C^inf" if sm["class"] == "inf" else f"C^{sm['class']}") +
                     (f" ({where}; other inputs held at {r['range']['held']})" if where and r.get("range") else "")))
        rob = r["robustness"]
        if rob and "growth" in rob:
            rows.append(("robustness", f"growth {rob['growth']}, influence "
                                       f"{'bounded' if rob['influence_bounded'] else 'unbounded'}"))
        rng = r["range"]
        if rng:
            rows.append(("range", f"bounded below: {rng['bounded_below']}, non-negative: {rng['nonnegative']}, "
                                  f"minimum {rng['minimum']} at {x} = {rng['argmin']}"
                                  f"{'' if rng['attained'] else ' (approached, not attained)'}"))
        lik = r["likelihood"]
        rows.append(("likelihood", f"{lik['distribution']} NLL ({lik['parameter']} = {x})" if lik else "none found"))
        rows.append(("hessian", f"{r['hessian']['per_element']}" +
                     ("" if r["hessian"]["diagonal"] else f"  (full: {r['hessian']['full']})")))
        lines.append(f"\nwith respect to {x}:")
        lines += [f"  {k:<11} {v}" for k, v in rows]
    return "\n".join(lines) + "\n"
