"""Phase 5, rewrite: unstable forms replaced by stable ones, in values and gradients alike.

Each rule is declared once, as a pattern and its replacement. There are two kinds:

* ``rules()``: elementwise rules over SymPy wildcards. Matching is structural: ``log(1 + a)``
  matches ``log(x + 1)`` but not ``log(x)`` (SymPy's own matcher would happily read ``log(x)``
  as ``log(1 + (x - 1))``); a product pattern such as ``a*log(a)`` also matches two factors of a
  longer product. The printer applies ``stabilize`` to every expression it prints (values and
  gradients), and the gradient pass differentiates the stabilized form, so a gradient is derived
  from ``softplus`` rather than from ``log(sigmoid)``.
* ``OP_RULES`` and ``SHIFT_RULES``: rules that cross an IR op, such as ``log(sum(exp(a)))`` →
  ``logsumexp(a)`` and ``a - logsumexp(a, keepdims=true)`` → ``log_softmax(a)``. In
  the IR, ``sum(exp(a))`` is a leaf symbol standing for a ``sum`` op whose operand is ``exp(a)``, so
  no SymPy pattern can see through it; the rule needs the graph and creates a new op. It must fire
  before the gradient pass (which walks a fixed list of ops), so the resolver applies
  ``fold_ops`` to the result of every call, as the IR is built; the ``sum`` op it bypassed
  is then dead and never printed.

SymPy itself already turns ``log(exp(a))`` into ``a`` for real ``a``, which is how
``log(softmax(z))`` becomes ``log_softmax(z)`` (softmax is ``exp(log_softmax(z))`` in the library);
the rule is declared here all the same so that it holds whatever SymPy does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import sympy as sp
from sympy.core.parameters import global_parameters

from .builtins import NATIVE_FORMS, abs_, clip, expm1, log1p, maximum, minimum, sigmoid, sign, softplus
from .ir import Apply, Graph

_a, _b = sp.Wild("a"), sp.Wild("b")
_lo, _hi = sp.Wild("lo"), sp.Wild("hi")


def safe_log(a: sp.Expr) -> sp.Expr:
    """log(a), reading 1 where a = 0: multiplied by a power of a, that is 0*log(0) = 0 (the xlogy
    trick, so that neither the value nor the gradient meets 0*inf)."""
    return sp.log(sp.Piecewise((sp.Integer(1), sp.Eq(a, 0)), (a, True)))


@functools.cache
def rules() -> tuple[tuple[sp.Expr, sp.Expr], ...]:
    """The elementwise rules, (pattern, replacement); built on first use, not at import (SymPy
    takes a while to build them)."""
    return (
        (sp.log(sigmoid(_a)), -softplus(-_a)),
        (sp.log(1 - sigmoid(_a)), -softplus(_a)),
        (sp.log(1 + sp.exp(_a)), softplus(_a)),
        (sp.log(sp.exp(_a)), _a),
        (sp.log(sp.cosh(_a)), abs_(_a) + softplus(-2 * abs_(_a)) - sp.log(2)),
        (sp.log(1 + _a), log1p(_a)),
        (sp.exp(_a) - 1, expm1(_a)),
        (_a * sp.log(_a), _a * safe_log(_a)),
        (_a**_b * sp.log(_a), _a**_b * safe_log(_a)),  # d(a^b)/db, as in focal's gradient in gamma
    )


def _finite_number(e: sp.Basic) -> bool:
    return e.is_Number and e.is_finite


# for finite numbers lo < hi (see clip in builtins.py)
CLIP = (minimum(maximum(_a, _lo), _hi), clip(_a, _lo, _hi))


def as_clip(expr: sp.Basic) -> sp.Basic | None:
    """``expr`` as a ``clip``, or None. Two patterns: CLIP, for finite numbers lo < hi; and
    ``where(|a| <= d, c*a, c*d*sign(a))`` → ``c*clip(a, -d, d)`` for a finite number d > 0 and a
    factor c free of a (``<`` alike: at |a| = d both sides are c*a), the gradients of Huber's loss
    (c = ±1) and smooth L1 (c = ±1/d): one pass rather than four."""
    bound = match(CLIP[0], expr)
    if bound is not None:
        lo, hi = bound[_lo], bound[_hi]
        return CLIP[1].xreplace(bound) if _finite_number(lo) and _finite_number(hi) and lo < hi else None
    if not (isinstance(expr, sp.Piecewise) and len(expr.args) == 2 and expr.args[1].cond is sp.true):
        return None
    (a, within), other = expr.args[0], expr.args[1].expr
    if not isinstance(within, (sp.LessThan, sp.StrictLessThan, sp.GreaterThan, sp.StrictGreaterThan)):
        return None
    small, d = (within.lhs, within.rhs) if isinstance(within, (sp.LessThan, sp.StrictLessThan)) else (
        within.rhs, within.lhs)
    if not (_finite_number(d) and d > 0 and isinstance(small, abs_)):
        return None
    x = small.args[0]
    for unit in (x, small * sign(x)):  # |x|*sign(x) is x: SymPy keeps it so in smooth L1's gradient
        c = _factor(a, unit)
        if c is not None and other - c * d * sign(x) == 0:
            return c * clip(x, -d, d)
    return None


def _factor(a: sp.Basic, unit: sp.Basic) -> sp.Basic | None:
    """``a/unit`` where it is free of ``unit``'s symbols (-1 for ``-unit``, whose terms SymPy negates
    one by one), else None; by SymPy's own evaluation, no simplification (this runs on every select)."""
    if a + unit == 0:
        return sp.Integer(-1)
    c = a / unit
    return None if c.free_symbols & unit.free_symbols else c


def _reflected(arg: sp.Basic) -> tuple[sp.Basic, bool]:
    """``(a, flipped)`` with ``arg = -a`` if flipped, else ``arg = a``: ``a`` without a leading minus,
    so that f(x) and f(-x) meet under one key."""
    return (-arg, True) if arg.could_extract_minus_sign() else (arg, False)


def reflect_logistic(expr: sp.Basic) -> sp.Basic:
    """``expr`` with ``sigmoid(-a) = 1 - sigmoid(a)`` and ``softplus(-a) = softplus(a) - a`` applied where
    terms then cancel (``(1 - y)*sigmoid(x) - y*sigmoid(-x)`` is ``sigmoid(x) - y``): the forms
    hand-written gradient-boosting objectives and the libraries' built-in ones use (``p - y``,
    ``p*(1 - p)``), one logistic function per argument, at the price of the cancellation ``share_logistic``
    avoids where ``a`` is large (an absolute error of one ulp of 1)."""
    forms = {}
    for call in expr.atoms(softplus, sigmoid):
        a, flipped = _reflected(call.args[0])
        if flipped:
            forms[call] = softplus(a) - a if isinstance(call, softplus) else 1 - sigmoid(a)
    if not forms:
        return expr
    reflected = sp.factor_terms(cancel_terms(expr.xreplace(forms)))
    return reflected if sp.count_ops(reflected) < sp.count_ops(expr) else expr  # only where terms cancel


def share_logistic(exprs: list[sp.Basic], kinds: tuple[str, ...] = ("softplus", "sigmoid"),
                   tail_from_sigmoids: bool = False) -> list[sp.Basic]:
    """``exprs`` with the calls among ``softplus(±a)`` and ``sigmoid(±a)``, where two or more of them
    occur (the value and the gradient of BCE and focal loss from logits), written through one
    ``e = exp(-|a|)``: ``softplus(±a) = max(±a, 0) + log1p(e)``, ``sigmoid(a) = where(a >= 0, 1, e)/(1 + e)``
    and ``sigmoid(-a) = where(a >= 0, e, 1)/(1 + e)``, each as accurate as the helper it replaces, for
    a backend that evaluates each helper on its own (NumPy): one exponential where there were up to
    four. Never ``softplus(-a) = softplus(a) - a`` or ``sigmoid(-a) = 1 - sigmoid(a)``: both cancel
    where ``a`` is large (the first is 0 at a = 40 in float64, where the true value is 4e-18).
    ``kinds``: the functions shared (torch's sigmoid is one vectorised kernel, cheaper than exp).
    ``tail_from_sigmoids``: where ``sigmoid(a)`` and ``sigmoid(-a)`` both stay (not shared), the
    softplus pair's ``log1p(e)`` is ``-log1p(-u)`` with ``u = min(sigmoid(a), sigmoid(-a))``, which is
    ``sigmoid(-|a|) = e/(1 + e)`` itself (the call of the two on the non-positive argument): three ops
    on arrays computed anyway for four, and no exponential (see ``Backend.tail_from_sigmoids``)."""
    groups: dict[sp.Basic, set[sp.Basic]] = {}
    shared = tuple(f for f in (softplus, sigmoid) if f.__name__ in kinds)
    calls = {c for e in exprs for c in _logistic_calls(e)}
    for call in calls:
        if isinstance(call, shared):
            groups.setdefault(_reflected(call.args[0])[0], set()).add(call)
    forms: dict[sp.Basic, sp.Basic] = {}
    tails = []
    for a, group in groups.items():
        if len(group) < 2:
            continue
        e = sp.exp(-abs_(a))
        tail = log1p(e)
        if tail_from_sigmoids and sigmoid not in shared and {sigmoid(a), sigmoid(-a)} <= calls:
            tail = -log1p(-minimum(sigmoid(a), sigmoid(-a)))
        tails.append(tail)
        for call in group:
            flipped = _reflected(call.args[0])[1]
            if isinstance(call, softplus):
                forms[call] = maximum(-a if flipped else a, 0) + tail
            else:
                near, far = (e, sp.Integer(1)) if flipped else (sp.Integer(1), e)
                forms[call] = sp.Piecewise((near, a >= 0), (far, True)) / (1 + e)
    if not forms:
        return exprs
    return [_tails_taken_out(x.xreplace(forms), tuple(tails)) for x in exprs]


def _tails_taken_out(expr: sp.Basic, tails: tuple[sp.Basic, ...]) -> sp.Basic:
    """``expr`` with each sum ``c1*(r1 + t) + c2*(r2 + t) + ...`` of a shared tail ``t`` whose weights
    add up to a number (BCE's ``1 - y`` and ``y``: 1) written ``k*t + c1*r1 + c2*r2 + ...``: the tail
    added once, not once per term (an op on arrays fewer). The same sum, rounded otherwise where the
    weights' sum rounds (``(1 - y) + y`` is 1 within an ulp)."""
    def taken_out(add: sp.Basic) -> sp.Basic:
        for t in tails:
            if not isinstance(add, sp.Add):  # what one tail's rewrite left may no longer be a sum
                break
            weights, rests, others = [], [], []
            for term in add.args:
                inner = next((f for f in sp.Mul.make_args(term) if isinstance(f, sp.Add) and t in f.args), None)
                if inner is None:
                    others.append(term)
                else:
                    weights.append(term / inner)
                    rests.append(weights[-1] * (inner - t))
            total = sp.Add(*weights)
            if len(weights) > 1 and total.is_Number:
                add = sp.Add(total * t, *rests, *others)
        return add
    return expr.replace(lambda x: isinstance(x, sp.Add), taken_out) if any(expr.has(t) for t in tails) else expr


@functools.lru_cache(maxsize=1 << 16)  # the printer meets one expression in several functions of a module
def _logistic_calls(expr: sp.Basic) -> frozenset[sp.Basic]:
    return frozenset(expr.atoms(softplus, sigmoid))


@functools.lru_cache(maxsize=1 << 16)  # as _logistic_calls
def clamped_quadratics(expr: sp.Basic) -> sp.Basic:
    """``expr`` with each Huber-shaped select written through a clip: ``c*x^2/2`` where ``|x| <= k``
    and ``c*(k*|x| - k^2/2)`` beyond (``c = 1/k``: smooth L1), for a number k > 0, is
    ``c*(m*x - m^2/2)`` with ``m = clip(x, -k, k)``: the same numbers (bit for bit inside, where
    ``x*x - (x*x)/2`` is exact unless x*x is subnormal; beyond, the same two roundings; infinite at
    infinity, NaN at NaN) without the comparison and the select, and ``m`` is the gradient's own
    clip, computed once for both. For printing only: differentiated, the clip form would give a
    longer gradient."""
    forms = {p: q for p in expr.atoms(sp.Piecewise) if (q := _clamped_quadratic(p)) is not None}
    return expr.xreplace(forms) if forms else expr


@functools.lru_cache(maxsize=1 << 16)  # one select appears in a value, its gradients and every backend's print
def _clamped_quadratic(p: sp.Piecewise) -> sp.Basic | None:
    if len(p.args) != 2 or p.args[1].cond != sp.true:
        return None
    (inner, cond), (outer, _) = p.args
    if isinstance(cond, (sp.GreaterThan, sp.StrictGreaterThan)):
        cond = cond.reversed
    if not (isinstance(cond, (sp.LessThan, sp.StrictLessThan)) and isinstance(cond.lhs, abs_)):
        return None
    x, k = cond.lhs.args[0], cond.rhs
    if not (_finite_number(k) and k > 0) or not x.is_real:
        return None
    as_sympy = {abs_(x): sp.Abs(x)}  # whose square SymPy knows to be x^2
    c = _factor(2 * inner.xreplace(as_sympy), x**2)
    if c is None or outer.xreplace(as_sympy) - c * (k * sp.Abs(x) - k**2 / 2) != 0:
        return None
    m = clip(x, -k, k)
    return c * (m * x - m**2 / 2)  # m*(x - m/2) would print x's terms again (SymPy flattens the sum)


@dataclass(frozen=True)
class OpRule:
    """``outer(prim(inner(a)))`` → ``replacement(a)``, the op's parameters (axis, keepdims) kept."""

    outer: type[sp.Function]
    prim: str
    inner: type[sp.Function]
    replacement: str


OP_RULES: tuple[OpRule, ...] = (
    OpRule(sp.log, "sum", sp.exp, "logsumexp"),
)


@dataclass(frozen=True)
class ShiftRule:
    """``a - prim(a, keepdims=true)`` → ``replacement(a)``, the axis kept: computed as one op, the
    difference of two large numbers (x and logsumexp(x) at logits of 1000) is never formed."""

    prim: str
    replacement: str


SHIFT_RULES: tuple[ShiftRule, ...] = (
    ShiftRule("logsumexp", "log_softmax"),
)


def match(pattern: sp.Basic, expr: sp.Basic, bound: dict | None = None) -> dict | None:
    """Bindings of the wildcards that make ``pattern`` equal ``expr`` term for term, or None.

    In a sum or product, the pattern's constant must be one of the expression's terms and the
    remaining terms match the pattern's one other term; in a pattern with no constant (``a*log(a)``)
    one term matches one of the expression's terms and the other term the rest.
    """
    bound = {} if bound is None else bound
    if isinstance(pattern, sp.Wild):
        if pattern in bound:
            return bound if bound[pattern] == expr else None
        return {**bound, pattern: expr}
    if pattern.is_Atom or expr.is_Atom:
        return bound if pattern == expr else None
    if type(pattern) is not type(expr):
        return None
    if isinstance(pattern, (sp.Add, sp.Mul)):
        return _match_terms(pattern, expr, bound)
    if len(pattern.args) != len(expr.args):
        return None
    for p, e in zip(pattern.args, expr.args):
        bound = match(p, e, bound)
        if bound is None:
            return None
    return bound


def _match_terms(pattern: sp.Expr, expr: sp.Expr, bound: dict) -> dict | None:
    if len(pattern.args) != 2:
        return None
    kind = type(expr)
    const, rest = pattern.as_independent(*pattern.atoms(sp.Wild), as_Add=isinstance(pattern, sp.Add))
    if const != kind.identity:
        if const not in expr.args:
            return None
        others = list(expr.args)
        others.remove(const)
        return match(rest, kind(*others), bound)
    for first, second in (pattern.args, pattern.args[::-1]):
        if len(expr.args) > 2 and isinstance(second, sp.Function):
            continue  # the rest of a longer sum or product is one again, never a function's value
        for i, e in enumerate(expr.args):
            b = match(first, e, bound)
            if b is not None:
                b = match(second, kind(*expr.args[:i], *expr.args[i + 1:]), b)
                if b is not None:
                    return b
    return None


def merge_powers(expr: sp.Basic) -> sp.Basic:
    """The rule ``a**b * a**c`` → ``a**(b + c)`` for a symbolic exponent, which SymPy leaves apart
    when ``a`` is a sum: its derivative of ``u**g`` is ``g*u**g/u``, 0/0 where ``u`` underflows
    to 0, while ``g*u**(g - 1)`` is finite. (A wildcard pattern cannot state it: SymPy would merge
    the pattern's own powers.)"""
    if not isinstance(expr, sp.Mul):
        return expr
    exps: dict[sp.Basic, list[sp.Expr]] = {}
    for f in expr.args:
        base, e = f.as_base_exp()
        exps.setdefault(base, []).append(e)
    merge = {b for b, es in exps.items() if len(es) > 1 and not all(e.is_Number for e in es)}
    if not merge:
        return expr
    kept = [f for f in expr.args if f.as_base_exp()[0] not in merge]
    return sp.Mul(*kept, *(sp.Pow(b, sp.Add(*exps[b])) for b in merge))


def _candidate_pairs(pattern: sp.Mul, expr: sp.Mul) -> list[tuple[sp.Basic, sp.Basic]]:
    """Pairs of ``expr``'s factors that could match a two-factor ``pattern``: one of them must be
    an application of a function the pattern applies (such as log), which keeps long products
    linear rather than quadratic in their length."""
    heads = {type(f) for f in pattern.args if isinstance(f, sp.Function)}
    if not heads:
        return list(combinations(expr.args, 2))
    return [(f, g) for f in expr.args if type(f) in heads for g in expr.args if g is not f]


def _rewrite_node(expr: sp.Basic) -> sp.Basic:
    if type(expr) in NATIVE_FORMS:  # SymPy's Abs (from sqrt(x^2)), Max, sign, ... read as the builtin
        expr = NATIVE_FORMS[type(expr)](*expr.args)
    expr = merge_powers(expr)
    clipped = as_clip(expr)
    if clipped is not None:
        return clipped
    for pattern, replacement in rules():
        bound = match(pattern, expr)
        if bound is not None:
            return replacement.xreplace(bound)
        if isinstance(expr, sp.Mul) and isinstance(pattern, sp.Mul) and len(expr.args) > 2:
            for pair in _candidate_pairs(pattern, expr):  # a*log(a) among other factors
                bound = match(pattern, sp.Mul(*pair))
                if bound is not None:
                    others = list(expr.args)
                    for f in pair:
                        others.remove(f)
                    return sp.Mul(replacement.xreplace(bound), *others)
    return expr


def _spread(term: sp.Basic) -> list[sp.Basic] | None:
    """The terms of ``c*(a + b + ...)`` with exactly one sum among its factors, ``[c*a, c*b, ...]``;
    None for another term."""
    if not isinstance(term, sp.Mul):
        return None
    sums = [f for f in term.args if isinstance(f, sp.Add)]
    if len(sums) != 1:
        return None
    rest = [f for f in term.args if f is not sums[0]]
    return [sp.Mul(*rest, s) for s in sums[0].args]


def cancel_terms(expr: sp.Basic) -> sp.Basic:
    """A sum with its products by a sum distributed, where terms then cancel: fewer operations.
    ``1/2 - (1 + sign(r))/2`` is ``-sign(r)/2`` (the quantile loss's gradient). Only a product with one
    sum among its factors is distributed: that is neutral numerically (c*(a + b) and c*a + c*b
    lose the same where a + b cancels), while (x - a)*(x + a) → x² - a² would not be. The
    gradient pass builds under ``distribute(False)``, so SymPy leaves these apart on its own."""
    if not isinstance(expr, sp.Add):
        return expr
    spread = [(t, _spread(t)) for t in expr.args]
    if not any(terms for _, terms in spread):
        return expr
    candidate = sp.Add(*(x for t, terms in spread for x in (terms or [t])))
    return candidate if sp.count_ops(candidate) < sp.count_ops(expr) else expr


def stabilize(expr: sp.Basic) -> sp.Basic:
    """``expr`` with every rule applied wherever its pattern matches, innermost first, and terms
    that then cancel cancelled."""
    stable = _stabilized(expr, *_evaluation())
    return expr if stable == expr else stable  # the caller's own object where nothing changed


def _evaluation() -> tuple[bool, bool]:
    """SymPy's evaluation flags (per thread), which decide what a rebuilt node becomes: the
    gradient pass builds under ``distribute(False)``, the printer does not. Memoised results
    are kept apart by them."""
    return global_parameters.evaluate, global_parameters.distribute


# Memoised by node (SymPy's are immutable and hashable; lru_cache is safe across threads), so
# that a subexpression shared within an expression, or between the value and its gradients, is
# rewritten once: the printer stabilizes every operand and output, the gradient pass every operand.
_MEMO = 1 << 16


@functools.lru_cache(maxsize=_MEMO)
def _stabilized(expr: sp.Basic, *flags: bool) -> sp.Basic:
    return _cancelled(_rules_applied(expr, *flags), *flags)


@functools.lru_cache(maxsize=_MEMO)
def _rules_applied(expr: sp.Basic, *flags: bool) -> sp.Basic:
    """``expr`` with the rules applied to every node, innermost first."""
    return expr if expr.is_Atom else _rewrite_node(_rebuilt(expr, _rules_applied, flags))


@functools.lru_cache(maxsize=_MEMO)
def _cancelled(expr: sp.Basic, *flags: bool) -> sp.Basic:
    """``expr`` with ``cancel_terms`` applied to every node, innermost first."""
    return expr if expr.is_Atom else cancel_terms(_rebuilt(expr, _cancelled, flags))


def clear_memo() -> None:
    """Forget the memoised rewrites (for timing a compile from scratch)."""
    for memo in (_stabilized, _rules_applied, _cancelled, _clamped_quadratic, clamped_quadratics, _logistic_calls):
        memo.cache_clear()


def _rebuilt(expr: sp.Basic, walk: Callable[..., sp.Basic], flags: tuple[bool, ...]) -> sp.Basic:
    """``expr`` with ``walk`` applied to its arguments (rebuilt only where one changed)."""
    args = [walk(a, *flags) for a in expr.args]
    # equal, not identical: a memoised result may be an equal node built elsewhere, and rebuilding
    # from it would re-evaluate a node built under other flags (-(1 - x) as x - 1)
    return expr.func(*args) if any(a is not b and a != b for a, b in zip(args, expr.args)) else expr


def fold_ops(graph: Graph, expr: sp.Basic) -> sp.Basic:
    """``expr`` with every ``OP_RULES`` and ``SHIFT_RULES`` pattern replaced by its op (created in ``graph``)."""
    replacements = {}
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Add):
            shifted = _shifted(graph, node)
            if shifted is not None:
                replacements[node] = shifted
                continue
        for rule in OP_RULES:
            if type(node) is not rule.outer or node.args[0] not in graph.op_of:
                continue
            op = graph.op_of[node.args[0]]
            if isinstance(op, Apply) and op.prim == rule.prim and type(op.operands[0]) is rule.inner:
                replacements[node] = graph.apply(rule.replacement, op.operands[0].args[0], **dict(op.params))
    return expr.xreplace(replacements) if replacements else expr


def _shifted(graph: Graph, node: sp.Add) -> sp.Basic | None:
    """``node`` as ``rest + replacement(a)`` where it holds ``a - prim(a, keepdims=true)`` of a
    ``SHIFT_RULES`` entry (``rest`` the terms besides, usually none), else None."""
    for term in node.args:
        op = graph.op_of.get(-term)
        rule = next((r for r in SHIFT_RULES if isinstance(op, Apply) and op.prim == r.prim), None)
        if rule is None or not op.param("keepdims"):
            continue
        a, others = op.operands[0], set(sp.Add.make_args(node + (-term)))
        if set(sp.Add.make_args(a)) <= others:
            return node + (-term) - a + graph.apply(rule.replacement, a, axis=op.param("axis"))
    return None
