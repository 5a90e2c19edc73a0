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
from ..builtins import FUNCTION_NAMES
from ..codegen import load_module
from ..printer import ExprPrinter


def _natives() -> dict[type, type]:
    """SymPy's own classes that are a registry builtin's ``elementary`` form (Abs for abs, Max for
    maximum, ...): SymPy writes them when it evaluates (sqrt(x^2) is Abs(x)); they print as the builtin."""
    out: dict[type, type] = {}
    for cls in FUNCTION_NAMES:
        elementary_form, arity = getattr(cls, "elementary", None), getattr(cls, "nargs", {None})
        if elementary_form is None or len(arity) != 1:
            continue
        args = sp.symbols(f"a:{next(iter(arity))}", real=True)
        native = elementary_form(*args)
        if native.args == args and type(native) not in FUNCTION_NAMES:
            out[type(native)] = cls
    return out


_NATIVE = _natives()


@lru_cache(maxsize=512)
def elementary(e: sp.Expr) -> sp.Expr:
    """``e`` with lossdsl's own functions written in SymPy's (softplus as log(1 + exp(x)), ...);
    memoised: the per-element study evaluates one expression at many points."""
    return e.replace(lambda a: hasattr(type(a), "elementary"), lambda a: type(a).elementary(*a.args))


def value_at(e: sp.Expr, t: sp.Symbol, at: sp.Expr) -> float:
    """``e`` at ``t = at``, to 30 digits in SymPy (NaN where it is not a real number)."""
    v = sp.N(elementary(e).subs(t, at), 30)
    try:
        return float(v)
    except TypeError:
        return math.nan


@lru_cache(maxsize=256)
def numpy_function(expr: sp.Expr, params: tuple[sp.Symbol, ...]) -> Callable[..., np.ndarray]:
    """``expr`` as a NumPy function of ``params`` (positional), printed by the NumPy backend with
    the runtime helpers it calls. Only our printer's code runs: parameters print under names of
    our own, and an expression with any other free symbol is refused."""
    stray = expr.free_symbols - set(params)
    if stray:
        raise ValueError(f"free symbols besides the parameters: {sorted(map(str, stray))}")
    names = [sp.Symbol(f"_p{k}") for k in range(len(params))]
    ours = expr.replace(lambda a: type(a) in _NATIVE, lambda a: _NATIVE[type(a)](*a.args))
    code = ExprPrinter(NUMPY)(ours.xreplace(dict(zip(params, names))))
    source = "\n\n\n".join([imports_for(code, NUMPY), helpers_for(code, NUMPY),
                            f"def _evaluate({', '.join(map(str, names))}):\n    return {code}\n"])
    return load_module(source, "analysis")._evaluate
