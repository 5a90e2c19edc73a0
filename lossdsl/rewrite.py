"""Phase 5, rewrite: unstable forms replaced by stable ones, in values and gradients alike.

Each rule is declared once, as a pattern and its replacement over SymPy wildcards; the
printer applies ``stabilize`` to every expression it prints.
"""

from __future__ import annotations

import sympy as sp

from .builtins import expm1, log1p, sigmoid, softplus

_a = sp.Wild("a")

RULES: tuple[tuple[sp.Expr, sp.Expr], ...] = (
    (sp.log(sigmoid(_a)), -softplus(-_a)),
    (sp.log(1 - sigmoid(_a)), -softplus(_a)),
    (sp.log(1 + _a), log1p(_a)),
    (sp.exp(_a) - 1, expm1(_a)),
)


def stabilize(expr: sp.Basic) -> sp.Basic:
    """``expr`` with every rule applied wherever its pattern matches."""
    for pattern, replacement in RULES:
        if expr.has(pattern.func):
            expr = expr.replace(pattern, replacement)
    return expr
