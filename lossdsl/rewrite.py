"""Phase 5, rewrite: unstable forms replaced by stable ones, in values and gradients alike.

Each rule is declared once, as a pattern and its replacement over SymPy wildcards. Matching is
structural: ``log(1 + a)`` matches ``log(x + 1)`` but not ``log(x)`` (SymPy's own matcher would
happily read ``log(x)`` as ``log(1 + (x - 1))``). The printer applies ``stabilize`` to every
expression it prints.
"""

from __future__ import annotations

import sympy as sp

from .builtins import expm1, log1p, sigmoid, softplus

_a = sp.Wild("a")

RULES: tuple[tuple[sp.Expr, sp.Expr], ...] = (
    (sp.log(sigmoid(_a)), -softplus(-_a)),
    (sp.log(1 - sigmoid(_a)), -softplus(_a)),
    (sp.log(1 + sp.exp(_a)), softplus(_a)),
    (sp.log(1 + _a), log1p(_a)),
    (sp.exp(_a) - 1, expm1(_a)),
)


def match(pattern: sp.Basic, expr: sp.Basic, bound: dict | None = None) -> dict | None:
    """Bindings of the wildcards that make ``pattern`` equal ``expr`` term for term, or None.

    In a sum or product, the pattern's constant must be one of the expression's terms and the
    remaining terms match the pattern's one other term.
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
        const, rest = pattern.as_independent(*pattern.atoms(sp.Wild), as_Add=isinstance(pattern, sp.Add))
        if const not in expr.args or len(pattern.args) != 2:
            return None
        others = list(expr.args)
        others.remove(const)
        return match(rest, type(expr)(*others), bound)
    if len(pattern.args) != len(expr.args):
        return None
    for p, e in zip(pattern.args, expr.args):
        bound = match(p, e, bound)
        if bound is None:
            return None
    return bound


def _rewrite_node(expr: sp.Basic) -> sp.Basic:
    for pattern, replacement in RULES:
        bound = match(pattern, expr)
        if bound is not None:
            return replacement.xreplace(bound)
    return expr


def stabilize(expr: sp.Basic) -> sp.Basic:
    """``expr`` with every rule applied wherever its pattern matches, innermost first."""
    if expr.is_Atom:
        return expr
    args = [stabilize(a) for a in expr.args]
    if any(a is not b for a, b in zip(args, expr.args)):
        expr = expr.func(*args)
    return _rewrite_node(expr)
