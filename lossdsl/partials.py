"""The partial derivatives of one elementwise expression with respect to all its leaves at once.

``sp.diff(expr, leaf)`` once per leaf walks the whole expression for every leaf, and SymPy's
rule for a product of n factors builds n products of n factors for each: a sum or product of n
inputs costs n² to n³. ``Partials`` walks the expression's DAG once, memoised by node (so a
shared subexpression is visited once), and gives each node the derivatives with respect to the
leaves under it, built by SymPy's own rule for that node (``Add``/``Mul``/``Pow``/``Function``
``._eval_derivative``) applied to its arguments' derivatives, so that the results are the
expressions ``sp.diff`` returns. A node with a rule of its own (``Piecewise``, ``Abs``, ``Min``...)
is left to ``sp.diff``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

import sympy as sp
from sympy.core.function import ArgumentIndexError

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
            log_base = _log_of_base(e.base) if exp else sp.S.Zero
            return {leaf: e * ((exp[leaf] * log_base if leaf in exp else sp.S.Zero)
                               + (base[leaf] * e.exp / e.base if leaf in base else sp.S.Zero))
                    for leaf in {**base, **exp}}
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
    return sp.log(base)
