"""Numbers from expressions: in NumPy through lossdsl's own printer (so every builtin that prints
evaluates, including those NumPy lacks and the runtime supplies), or in SymPy's own terms at 30
digits where floats would overflow (the far tails)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import sympy as sp

from ..backend import NUMPY
from ..backends.copying import helpers_for, imports_for
from ..builtins import NATIVE_FORMS
from ..codegen import load_module
from ..printer import ExprPrinter


@lru_cache(maxsize=512)
def elementary(e: sp.Expr) -> sp.Expr:
    """``e`` with lossdsl's own functions written in SymPy's (softplus as log(1 + exp(x)), ...);
    memoised: the per-element study evaluates one expression at many points."""
    return e.replace(lambda a: hasattr(type(a), "elementary"), lambda a: type(a).elementary(*a.args))


def value_at(e: sp.Expr, t: sp.Symbol, at: sp.Expr) -> float:
    """``e`` at ``t = at``, to 30 digits in SymPy (NaN where it is not a real number)."""
    try:
        return float(precise_value(e, t, at, 30))
    except TypeError:
        return math.nan


def precise_value(e: sp.Expr, t: sp.Symbol, at: sp.Expr, digits: int) -> sp.Expr:
    """``e`` at ``t = at`` to ``digits`` digits in SymPy. Each distinct outermost function application
    is evaluated once, to twice the digits, and the arithmetic around them then: a product's
    derivative holds its n factors n times over."""
    tree = elementary(e)
    # an exact 10**12 would make c**t an exact integer of 10**12 digits; a root such as
    # 13*sqrt(6*exp(2/5) - 6)/20 is evaluated first
    at = sp.Float(sp.N(at, 2 * digits + 10), 2 * digits)
    calls = {f: sp.N(f.subs(t, at), 2 * digits) for f in _outermost_calls(tree) if t in f.free_symbols}
    return sp.N(tree.xreplace(calls).subs(t, at), digits)


def _outermost_calls(e: sp.Basic) -> set[sp.Basic]:
    """The function applications in ``e`` that no other function application holds."""
    if isinstance(e, sp.Function):
        return {e}
    return set().union(*(_outermost_calls(a) for a in e.args)) if e.args else set()


@lru_cache(maxsize=256)
def numpy_function(expr: sp.Expr, params: tuple[sp.Symbol, ...]) -> Callable[..., np.ndarray]:
    """``expr`` as a NumPy function of ``params`` (positional), printed by the NumPy backend with
    the runtime helpers it calls. Only our printer's code runs: parameters print under names of
    our own, and an expression with any other free symbol is refused."""
    stray = expr.free_symbols - set(params)
    if stray:
        raise ValueError(f"free symbols besides the parameters: {sorted(map(str, stray))}")
    names = [sp.Symbol(f"_p{k}") for k in range(len(params))]
    ours = expr.replace(lambda a: type(a) in NATIVE_FORMS, lambda a: NATIVE_FORMS[type(a)](*a.args))
    code = ExprPrinter(NUMPY)(ours.xreplace(dict(zip(params, names))))
    source = "\n\n\n".join([imports_for(code, NUMPY), helpers_for(code, NUMPY),
                            f"def _evaluate({', '.join(map(str, names))}):\n    return {code}\n"])
    return load_module(source, "analysis")._evaluate
