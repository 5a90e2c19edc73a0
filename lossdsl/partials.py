"""The partial derivatives of one elementwise expression with respect to all its leaves at once.

``sp.diff(expr, leaf)`` once per leaf walks the whole expression for every leaf, and SymPy's
rule for a product of n factors builds n products of n factors for each: a sum or product of n
inputs costs n² to n³. ``Partials`` walks the expression's DAG once, memoised by node (so a
shared subexpression is visited once), and gives each node the derivatives with respect to the
leaves under it, built by SymPy's own rule for that node (``Add``/``Mul``/``Pow``/``Function``
``._eval_derivative``) applied to its arguments' derivatives, so that the results are the
expressions ``sp.diff`` returns, except at a power's zero base (``_power_slope``). ``Piecewise`` goes piece
by piece through the same walk; another node with a rule of its own (``Abs``, ``Min``...)
is left to ``sp.diff``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

import sympy as sp
from sympy.core.function import ArgumentIndexError

from .rewrite import safe_log

_FUNCTION_RULE = sp.Function._eval_derivative
_POW_RULE = sp.Pow._eval_derivative


class Partials:
    """``partials(expr)``: ``{leaf: d expr / d leaf}`` for the leaves in ``wrt`` that ``expr``
    holds (zero derivatives included), memoised by node across calls."""

    def __init__(self, wrt: Collection[sp.Symbol]):
        self.wrt = wrt
        self._of: dict[sp.Basic, dict[sp.Symbol, sp.Expr]] = {}

    def __call__(self, expr: sp.Basic) -> dict[sp.Symbol, sp.Expr]:
        done = self._of.get(expr)
        if done is None:
            done = self._of[expr] = self._node(expr)
        return done

    def _node(self, e: sp.Basic) -> dict[sp.Symbol, sp.Expr]:
        if e.is_Atom:
            return {e: sp.S.One} if e in self.wrt else {}
        if isinstance(e, sp.Add):
            terms: dict[sp.Symbol, list[sp.Expr]] = defaultdict(list)
            for a in e.args:
                for leaf, d in self(a).items():
                    terms[leaf].append(d)
            return {leaf: sp.Add(*ds) for leaf, ds in terms.items()}
        if isinstance(e, sp.Mul):
            # the product rule: each factor differentiated in place, the others kept
            args = e.args
            terms = defaultdict(list)
            for i, a in enumerate(args):
                for leaf, d in self(a).items():
                    terms[leaf].append(sp.Mul(*args[:i], d, *args[i + 1:]))
            return {leaf: sp.Add(*ts) for leaf, ts in terms.items()}
        if isinstance(e, sp.Pow) and type(e)._eval_derivative is _POW_RULE:
            base, exp = self(e.base), self(e.exp)
            by_base = _power_slope(e) if base else sp.S.Zero
            by_exp = e * _log_of_base(e.base) if exp else sp.S.Zero
            return {leaf: (exp[leaf] * by_exp if leaf in exp else sp.S.Zero)
                    + (base[leaf] * by_base if leaf in base else sp.S.Zero)
                    for leaf in {**base, **exp}}
        if isinstance(e, sp.Piecewise):
            # each piece by this walk (so a power inside keeps the rule at a zero base), the
            # conditions as they are: what Piecewise's own rule does with sp.diff
            pieces = [(self(value), cond) for value, cond in e.args]
            return {leaf: sp.Piecewise(*((d.get(leaf, sp.S.Zero), cond) for d, cond in pieces))
                    for leaf in set().union(*(d for d, _ in pieces))}
        if isinstance(e, sp.Function) and type(e)._eval_derivative is _FUNCTION_RULE:
            terms = defaultdict(list)
            for i, a in enumerate(e.args, 1):
                inner = {leaf: d for leaf, d in self(a).items() if not d.is_zero}
                if not inner:
                    continue
                try:
                    outer = e.fdiff(i)
                except ArgumentIndexError:
                    outer = sp.Function.fdiff(e, i)
                for leaf, d in inner.items():
                    terms[leaf].append(outer * d)
            return {leaf: sp.Add(*ts) for leaf, ts in terms.items()}
        return {leaf: sp.diff(e, leaf) for leaf in e.free_symbols if leaf in self.wrt}


def _power_slope(power: sp.Pow) -> sp.Expr:
    """d(base^e)/d(base), defined at a zero base for every exponent. A number exponent is SymPy's
    e*base^(e - 1) (never 0: base^0 folds to 1), which at base 0 is 0 for e > 1, 1 for e = 1, and
    NumPy's infinity for e < 1. An exponent that is an expression may be 0 at run time, where
    e*0^(e - 1) would be 0*inf: it reads 0 there (as PyTorch's pow backward), and the power
    base^(e - 1) is differentiated by the same rule, so second derivatives hold at e = 1 too."""
    base, exp = power.base, power.exp
    if exp.is_Number:
        return power * exp / base
    return sp.Piecewise((sp.S.Zero, sp.Eq(exp, 0)), (exp * sp.Pow(base, exp - 1), True))


def _log_of_base(base: sp.Expr) -> sp.Expr:
    """log(base) in d(base^b)/db = base^b*log(base), real where SymPy's is not. At a base of 0 it
    reads 0: 0^b is a step in b (0 for b > 0, NumPy's 1 at 0, inf below), whose derivative is 0, as
    rewrite.py reads log(a) as 0 in a^b*log(a) where a tensor a is 0 (SymPy would give 0^b*log(0),
    complex infinity). At a negative number, where only whole b give a real power, there is no
    derivative in b: NaN, as NumPy's log gives (SymPy's is complex)."""
    if base.is_number and base.is_zero:
        return sp.S.Zero
    if base.is_number and base.is_extended_negative:
        return sp.nan
    if base.is_number:
        return sp.log(base)
    return safe_log(base)  # a tensor base that is 0 at run time: 0^b*log(0) reads 0, as PyTorch's
