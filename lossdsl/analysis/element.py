"""The per-element loss ``l(t)``: the term one element of an input contributes to the reductions
it is summed or averaged through, other inputs held at a typical value; and what it shows:
smoothness (C^k at each kink), robustness (growth and influence far out) and range (minimum)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp

from ..builtins import INF, PRIMITIVES
from ..formula import render
from ..ir import Apply
from .curvature import Analysis
from .evaluate import elementary, numpy_function, precise_value, value_at
from .intervals import FULL, NONSMOOTH, SHAPES, Bounds, Interval, open_ends

if TYPE_CHECKING:
    from ..compiled import CompiledLoss


@dataclass
class Element:
    """The loss one element of ``x`` contributes, as a function of ``t``, others held fixed."""

    expr: sp.Expr  # in the graph's custom functions, over t
    t: sp.Symbol
    domain: Interval
    held: dict[str, float]
    symbolic: sp.Expr  # the rendered term, over the inputs' plain symbols
    # the loss adds terms without x beside the reductions of l (beta_vae's KL beside its
    # reconstruction term): each element's share of them depends on sizes known only at call time,
    # so l(t)'s values are known up to that constant (its shape, argmin and growth are not affected)
    offset: bool = False


def _transparent(op: Apply) -> bool:
    """Whether the op's value, as math, is its operand 0's (a range check, a broadcast)."""
    spec = PRIMITIVES.get(op.prim)
    return spec is not None and spec.formula is not None and spec.formula(*op.operands) == op.operands[0]


def _values(an: Analysis, e: sp.Expr) -> sp.Expr:
    """``e`` with each dependent op that passes its operand's value through (``within``, the
    per-sample weights' broadcast) replaced by that operand: the element's value is studied."""
    while True:
        plain = {s: an.graph.op_of[s].operands[0] for s in e.free_symbols
                 if s in an.depends and s != an.x and _transparent(an.graph.op_of[s])}
        if not plain:
            return e
        e = e.xreplace(plain)


def _positive(an: Analysis, held: Bounds, scale: sp.Expr) -> bool | None:
    """Whether a reduction's factor is positive (True) or negative (False): by the inputs' ranges,
    or else at the values the other inputs are held at (a weighted mean's 1/sum(w))."""
    for bounds in (an.bounds, held):
        lo, hi = bounds(scale)
        if lo >= 0 < hi:
            return True
        if hi <= 0 > lo:
            return False
    return None


def _term(an: Analysis, held: Bounds, e: sp.Expr) -> tuple[sp.Expr, bool] | None:
    """The operand of the reductions that ``e`` sums or averages ``x`` through, if elementwise
    (``e`` itself if it is elementwise in ``x``, as with ``reduction="none"``), and whether terms
    without ``x`` were left beside those reductions (an offset of unknown share per element)."""
    e = _values(an, e)
    if all(s == an.x or s not in an.depends for s in e.free_symbols):
        return e, False
    summands = sp.Add.make_args(sp.expand(e, deep=False, mul=True, multinomial=False))
    terms = [a for a in summands if an.dep(a)]
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
        positive = _positive(an, held, scale)
        if positive is False:  # -mean(l): a reduction takes a minus sign out of its operand (builtins._reduction)
            scale, operand = -scale, -op.operands[0]
        elif positive:
            operand = op.operands[0]
        else:
            return None
        inner.append((op.prim, scale, operand))
    if not inner or len({kind for kind, _, _ in inner}) != 1:
        return None
    # the scale stays, even on a lone term: a reduction takes a number factor out of its operand
    # (2*mean(z/(z + 4)) is Geman-McClure's mean(2*z/(z + 4))); a weighted mean's 1/sum(w) renders
    # as 1, the reduction of held inputs
    found = _term(an, held, sp.Add(*(s * o for _, s, o in inner)))
    return None if found is None else (found[0], found[1] or len(terms) < len(summands))


@lru_cache(maxsize=64)
def _exact(v: float) -> sp.Expr:
    return sp.nsimplify(v)


def _typical(interval: Interval, excluded: tuple[bool, bool] = (False, False)) -> float:
    """1 where the input may take it, else the middle of a bounded interval, else a step inside
    from its one finite end (never an end that a check excludes: taus in (0, 1) are held at 0.5)."""
    lo, hi = interval
    if (lo < 1 if excluded[0] else lo <= 1) and (1 < hi if excluded[1] else 1 <= hi):
        return 1.0
    if lo > -INF and hi < INF:
        return (lo + hi) / 2
    return lo + 1 if lo > -INF else hi - 1


def _within_domains(expr: sp.Expr, t: sp.Symbol, domain: Interval) -> Interval:
    """``domain`` narrowed to where each builtin that declares a domain (lgamma: x > 0) has its
    argument inside it, for arguments ``a*t + b``."""
    lo, hi = domain
    for call in sp.preorder_traversal(expr):
        shape = SHAPES.get(type(call))
        if shape is None or shape.domain == FULL or len(call.args) != 1 or t not in call.args[0].free_symbols:
            continue
        arg = call.args[0]
        a, b = sp.diff(arg, t), arg.subs(t, 0)
        if not (a.is_number and b.is_number and a != 0 and sp.diff(arg, t, 2) == 0):
            continue
        ends = sorted((float(end) - float(b)) / float(a) for end in shape.domain)
        lo, hi = max(lo, ends[0]), min(hi, ends[1])
    return lo, hi


def element(an: Analysis, loss: CompiledLoss) -> Element | None:
    excluded = open_ends(an.graph)
    held = {name: _typical(an.ranges.get(name, FULL), excluded.get(name, (False, False))) for name in loss.inputs}
    found = _term(an, Bounds(an.graph, {n: (v, v) for n, v in held.items()}), loss.root)
    if found is None:
        return None
    body, offset = found
    t = sp.Symbol("t", real=True)
    symbolic = render(an.graph, body)
    # one pass over the tree (subs with a dict makes one per input)
    plain = symbolic.xreplace({sp.Symbol(n): (t if n == str(an.x) else _exact(v)) for n, v in held.items()})
    plain = plain.replace(lambda a: isinstance(a, sp.core.function.AppliedUndef), lambda a: sp.Integer(1))
    plain = plain.xreplace({s: sp.Integer(1) for s in plain.free_symbols if s != t})
    domain = _within_domains(plain, t, an.ranges.get(str(an.x), FULL))
    return Element(plain, t, domain, {k: v for k, v in held.items() if k != str(an.x)}, symbolic, offset)


_STEP = sp.Rational(1, 10**12)


def _one_sided_derivatives(expr: sp.Expr, t: sp.Symbol, r: sp.Expr, side: int) -> list[float]:
    """``expr`` and its derivatives up to the 4th just beside ``r`` on one side (``side`` -1 or +1),
    from ``expr`` at r + side*(1..5)*1e-12 to 100 digits: the n-th forward difference over step^n,
    a one-sided derivative to about 1e-11 of its size. Symbolic 4th derivatives of a large loss
    (barron's) took seconds; five values take milliseconds."""
    values = [precise_value(expr, t, r + side * j * _STEP, 100) for j in range(1, 6)]
    out = []
    for n in range(5):
        difference = sum((-1) ** (n - j) * math.comb(n, j) * values[j] for j in range(n + 1))
        try:
            out.append(float(difference / (side * _STEP) ** n))
        except TypeError:  # not a real number there
            out.append(math.nan)
    return out


def smoothness(el: Element) -> dict[str, Any]:
    """C^k: one-sided derivatives up to order 4 compared where a function has a kink or a
    condition changes; a point where they all agree is no kink."""
    return copy.deepcopy(_smoothness(el.expr, el.t, el.domain))


# The studies of l(t) are memoised by l, t and the domain: inputs that contribute alike (the
# factors of a product, each parameter of a penalty) share them.
@lru_cache(maxsize=128)
def _smoothness(expr: sp.Expr, t: sp.Symbol, domain: Interval) -> dict[str, Any]:
    where: dict[sp.Expr, str] = {}
    for a in sp.preorder_traversal(expr):
        if isinstance(a, NONSMOOTH) and t in a.free_symbols:
            edge = a.args[0] - a.args[1] if len(a.args) == 2 and SHAPES[type(a)].kink else a.args[0]
            where[edge] = "kink" if SHAPES[type(a)].kink else "jump"
        if isinstance(a, sp.Piecewise):
            for _, c in a.args:
                for r in c.atoms(sp.core.relational.Relational):
                    if t in r.free_symbols:
                        where[r.lhs - r.rhs] = "jump"
    k: float = INF
    points = []
    for edge in where:
        try:
            roots = [r for r in sp.solve(elementary(edge), t) if r.is_real]
        except (NotImplementedError, ValueError):
            roots = []
        for r in roots:
            if not domain[0] < float(r) < domain[1]:
                continue
            left, right = (_one_sided_derivatives(expr, t, r, side) for side in (-1, 1))
            for order, (a, b) in enumerate(zip(left, right)):
                if abs(a - b) > 1e-6 * (1 + abs(a) + abs(b)):
                    points.append({"at": float(r), "continuous_derivatives": order - 1})
                    k = min(k, order - 1)
                    break
    kinds = {-1: "jump", 0: "kink"}
    return {"class": "inf" if k == INF else int(k),
            "points": [{**p, "kind": kinds.get(p["continuous_derivatives"], f"C^{p['continuous_derivatives']}")}
                       for p in points]}


def robustness(el: Element) -> dict[str, Any]:
    """Growth of the loss and of its derivative as the prediction runs off to either infinity."""
    return copy.deepcopy(_robustness(el.expr, el.t, el.domain))


@lru_cache(maxsize=128)
def _robustness(expr: sp.Expr, t: sp.Symbol, domain: Interval) -> dict[str, Any]:
    slope = sp.diff(expr, t)
    far, farther = sp.Integer(10) ** 8, sp.Integer(10) ** 12
    sides = {}
    for name, s in (("+", 1), ("-", -1)):
        if (domain[1] if s > 0 else -domain[0]) < INF:
            continue
        v1, v2 = value_at(expr, t, s * far), value_at(expr, t, s * farther)
        g1, g2 = abs(value_at(slope, t, s * far)), abs(value_at(slope, t, s * farther))
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
        # a slope still growing by half from 1e8 to 1e12 is log-like (log P in convex_kl), not bounded
        bounded = growth != "exponential" and math.isfinite(g2) and g2 <= 1.1 * g1 + 1e-9
        sides[name] = {"growth": growth, "influence_bounded": bool(bounded)}
    if not sides:
        return {"note": "the input is confined to a bounded interval"}
    order = ("bounded", "logarithmic", "linear", "quadratic", "exponential")
    return {"influence_bounded": all(s["influence_bounded"] for s in sides.values()),
            "growth": max((s["growth"] for s in sides.values()), key=order.index), "directions": sides}


def value_range(el: Element, an: Analysis, root: sp.Expr) -> dict[str, Any]:
    """Bounded below, non-negative (proved by intervals on the whole loss, or seen numerically),
    the minimum of the per-element loss with its place, and its maximum (None: unbounded above or,
    with an offset, not known)."""
    best, place, attained, below = _lowest(el.expr, el.t, el.domain)
    top, _, _, above = _lowest(-el.expr, el.t, el.domain)
    proved = an.bounds(root)[0] >= 0
    best = round(best, 10) + 0.0
    out = {"bounded_below": bool(below), "nonnegative": bool(proved or (below and best >= -1e-9)),
           "nonnegative_proved": bool(proved), "minimum": best if below else None,
           "attained": attained if below else False,
           "argmin": (round(place, 6) + 0.0 if isinstance(place, float) else place) if below else None,
           "maximum": round(-top, 10) + 0.0 if above else None, "held": el.held}
    if el.domain != an.ranges.get(str(an.x), FULL):  # narrowed to a builtin's domain
        out["domain"] = [None if abs(v) == INF else v for v in el.domain]
    if el.offset:  # l(t) plus an unknown share of the terms without x: its values are not known
        out.update(nonnegative=bool(proved), minimum=None, maximum=None,
                   offset=f"the loss adds terms without {an.x}; l(t) is known up to its share of them")
    return out


@lru_cache(maxsize=128)
def _lowest(expr: sp.Expr, t: sp.Symbol, domain: Interval) -> tuple[float, float | str, bool, bool]:
    """The least value of l(t) on a grid, refined by golden sections, or its infimum at an
    infinite end: (value, place, attained, bounded below)."""
    lo, hi = domain
    centre = 1.0 if lo <= 1 <= hi else (lo + hi) / 2 if hi < INF else lo + 1
    if lo > -INF and hi < INF:
        grid = np.linspace(lo, hi, 401)
    else:
        offsets = np.logspace(-4, 3, 200)
        ends = [v for v in (lo, hi) if abs(v) < INF]  # where the value may run off (-log at 0)
        grid = np.unique(np.concatenate([centre - offsets[::-1], [centre], centre + offsets, ends]))
        grid = grid[(grid >= lo) & (grid <= hi)]
    f = numpy_function(expr, (t,))

    def at(points: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(f(points), dtype=float), points.shape)

    values = at(grid)
    ok = np.isfinite(values)
    i = int(np.argmin(np.where(ok, values, np.inf)))
    best, place = float(values[i]), float(grid[i])
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    for _ in range(60):  # golden-section refinement inside the bracket
        m1, m2 = b - (b - a) / 1.618034, a + (b - a) / 1.618034
        f1, f2 = at(np.array([m1, m2]))
        a, b = (a, m2) if f1 <= f2 else (m1, b)
    refined = float(at(np.array([(a + b) / 2]))[0])
    if math.isfinite(refined) and refined <= best:
        best, place = refined, float((a + b) / 2)
    tails = {}
    attained, endless = True, False
    for name, s in (("+inf", 1), ("-inf", -1)):
        if (hi if s > 0 else -lo) == INF:
            # still falling at the grid's end (softplus(-x) there is below float precision, its
            # slope, -sigmoid(-x), is not): the infimum lies at infinity
            falling = sp.N(elementary(sp.diff(expr, t)).subs(t, sp.Float(grid[-1 if s > 0 else 0])), 30) * s
            far = [value_at(expr, t, s * sp.Integer(10) ** k) for k in (8, 12, 16)]
            tails[name] = far[1]
            if falling.is_real and falling < 0 and tails[name] <= best + 1e-9 * (1 + abs(best)):
                best, place, attained = tails[name], name, False
                # falling by as much from 1e12 to 1e16 as from 1e8 to 1e12 (-log): without end
                drop = far[1] - far[2]
                endless = endless or (drop > 1e-9 * (1 + abs(far[1])) and drop >= 0.5 * (far[0] - far[1]))
    below = (all(v > -1e6 for v in tails.values()) and math.isfinite(best) and not endless
             and not np.any(values == -np.inf))
    return best, place, attained, below
