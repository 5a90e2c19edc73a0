"""Which SymPy numbers generated code can hold as constants: real ones within float64's range.

Constants fold exactly (``1e200`` is the rational 10^200), so a product of constants can leave
the range of every float type, whatever stands between its factors: ``x*1e200*1e200`` holds 10^400,
which float64 rounds to inf, and ``x/1e200/1e200`` holds 10^-400, which it rounds to 0. Such a
constant, a complex one (``log(-1)``, ``sqrt(-2)``) and an infinite one (``lgamma(0)``) are
refused at compile time: by the resolver where each step of the program makes one
(``limits.ExprMeter``), by the gradient pass where a derivative does. Refusing keeps every
position alike, where folding to inf would not (``(x*1e200)*1e200`` at x = 1e-300 is 1e100).
"""

from __future__ import annotations

import math
import sys

import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair

from .ir import post_order

FLOAT64_MAX = sys.float_info.max
UNDEFINED = "has no value"  # SymPy's zoo and nan: x/0, log(0), 0*log(0) folded
INFINITE = "is infinite"
COMPLEX = "is complex (lossdsl computes in real numbers)"
OVERFLOW = f"overflows float64 (whose magnitudes reach {FLOAT64_MAX:.3g})"
UNDERFLOW = "underflows float64: it is nonzero, but float64 rounds it to 0"
HINT = ("constants fold exactly and each must fit float64: group the factors so that no constant "
        "they make leaves its range")


def problem(c: sp.Expr) -> str | None:
    """Why the number ``c`` cannot be a constant of generated code, or None where it can."""
    if c is sp.zoo or c is sp.nan:
        return UNDEFINED
    if c is sp.oo or c is sp.S.NegativeInfinity:
        return INFINITE
    if c.is_Rational:
        value = float(c)  # inf or 0.0 out of range, never an error
    else:
        if c.is_extended_real is False:
            return COMPLEX
        v = c.evalf(17)
        if v is sp.zoo or v is sp.nan:
            return UNDEFINED
        real, imaginary = v.as_real_imag()
        if not (real.is_Number and imaginary.is_Number):  # a function without a numeric form
            return None
        if imaginary != 0:
            return COMPLEX
        value = float(real)
    if math.isinf(value):
        return OVERFLOW
    if value == 0 and c.is_zero is False:
        return UNDERFLOW
    return None


def shown(c: sp.Expr) -> str:
    """``c`` in a message: as written where short (``I*pi``), else to 4 digits (``1.000e+400``)."""
    text = sp.sstr(c)
    return text if len(text) <= 24 else sp.sstr(sp.N(c, 4))


class Constants:
    """Finds a number that generated code cannot hold in an expression, walking each distinct
    node once across calls."""

    def __init__(self, allow: tuple[str, ...] = (), bounds: tuple[type, ...] = ()) -> None:
        self.allow = allow  # problems not counted: a derivative's NaN where it has no value
        # functions whose arguments may be a written +-inf, as a where's side may: a bound, such as
        # clip(x, -inf, 0)'s, or a value that only selects (inf as a float constant, where(m, x, -inf))
        self.takes_infinity = (ExprCondPair, *bounds)
        # node -> (whether it is a number, the first number under it that cannot be a constant)
        self._seen: dict[sp.Basic, tuple[bool, tuple[sp.Expr, str] | None]] = {}

    def first(self, expr: sp.Basic) -> tuple[sp.Expr, str] | None:
        """``(number, why)`` for a number in ``expr`` that cannot be a constant, or None."""
        seen = self._seen
        for node in post_order(expr, seen):
            number = isinstance(node, sp.Expr) and (node.is_number if node.is_Atom
                                                     else all(seen[a][0] for a in node.args))
            why = problem(node) if number else None
            if why and why not in self.allow:
                found = (node, why)
            else:
                bound = isinstance(node, self.takes_infinity)
                found = next((seen[a][1] for a in node.args if seen[a][1]
                              and not (bound and a in (sp.oo, sp.S.NegativeInfinity))), None)
            seen[node] = (number, found)
        return seen[expr][1]
