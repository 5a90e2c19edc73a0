"""Constants that float64 cannot hold, complex constants, and the derivative of 0^x, on every backend.

Constants fold exactly, and each constant a step of the program makes must be real and within
float64's range (README, "The language"): a product or quotient that overflows or underflows is a
compile-time error pointing at the operator that makes it, whatever stands between its factors and
wherever it stands (inside a function, a binding, a definition, a derivative); one that leaves the range
and comes back (``x*1e200*1e-200``) is exact. Complex, infinite and undefined constants (``log(-1)``,
``lgamma(0)``, ``log(0)``) are compile-time errors too. Accepted losses are checked in NumPy, JAX (eager
and under ``jax.jit``) and torch, in float32 and float64, against NumPy references written from the
formula; the printer is checked to print every number as code that names nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from oracles import run_value_and_grads

import lossdsl
from lossdsl.backend import BACKENDS
from lossdsl.errors import LossDSLError
from lossdsl.printer import ExprPrinter

torch = pytest.importorskip("torch")
jax.config.update("jax_enable_x64", True)

BACKEND_RUNS = ["numpy", "jax", "jax-jit", "torch"]
DTYPES = [np.float32, np.float64]

# --- refused: constants leaving float64's range --------------------------------------------------
# (first factor, operator, second factor, what the folded constant does)
SHAPES = [
    ("1e200", "*", "1e200", "overflows"),
    ("1e308", "*", "10", "overflows"),
    ("1e200", "/", "1e-200", "overflows"),
    ("1e-200", "*", "1e-200", "underflows"),
    ("1e-200", "/", "1e200", "underflows"),
    ("-1e200", "*", "1e200", "overflows"),
]
POSITIONS = [
    "mean(x * {a} {op} {b})",
    "mean({a} * x {op} {b})",
    "mean((x * {a}) {op} {b})",
    "mean(x * ({a} {op} {b}))",
    "mean({a} {op} {b} * x)",
    "mean(exp(x * {a} {op} {b}))",
    "mean(maximum(x, x * {a} {op} {b}))",
    "mean(where(x > 0, x * {a} {op} {b}, x))",
    "mean(x) + sum(y * {a} {op} {b})",
    "a = {a}\nmean(x * a {op} {b})",
    "def f(v):\n    return v * {a}\nmean(f(x) {op} {b})",
    "mean(nan * {a} {op} {b})",  # an input named nan: an error, never a silent wrong answer
]


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("a, op, b, what", SHAPES)
def test_a_constant_leaving_float64_is_refused_at_the_operator_that_makes_it(a, op, b, what, position, backend):
    source = position.format(a=a, op=op, b=b)
    with pytest.raises(LossDSLError) as info:
        lossdsl.compile(source, backend=backend)
    err = info.value
    assert f"{what} float64" in err.message, str(err)
    line = source.split("\n")[err.line - 1]
    assert line[err.column - 1] == op or line[err.column - 1] == "*", str(err)
    assert err.hint and "fit float64" in err.hint


# a constant within range whose derivative's constant is not: the error points at the loss
@pytest.mark.parametrize("source", ["mean(x^1000 * 1e306)", "mean((1e154 * x)^2)", "mean(5e-324 * x^0.25)"])
def test_a_derivative_leaving_float64_is_refused_at_the_loss(source):
    with pytest.raises(LossDSLError) as info:
        lossdsl.compile(source)
    assert "derivative" in info.value.message and "flows float64" in info.value.message, str(info.value)
    assert (info.value.line, info.value.column) == (1, 1)


def test_a_hessian_leaving_float64_is_refused():
    loss = lossdsl.compile("mean(x^3 * 5e307)")  # gradient 1.5e308 x^2 fits; the Hessian's 3e308 does not
    with pytest.raises(LossDSLError, match="overflows float64"):
        loss.hessian("x")(x=np.array([1.0, 2.0]))


# --- refused: complex, infinite and undefined constants -------------------------------------------
CONSTANTS = [("log(-1)", "complex"), ("log(0 - 1)", "complex"), ("log(-2)", "complex"), ("sqrt(-2)", "complex"),
             ("sqrt(0 - 2)", "complex"), ("(-8)^(1/3)", "complex"), ("(0 - 8)^(1/3)", "complex"),
             ("(-1)^0.5", "complex"), ("lgamma(0)", "infinite"), ("log(0)", "no value"),
             ("digamma(0)", "no value"), ("exp(1000)", "overflows"), ("exp(-1000)", "underflows")]
CONSTANT_POSITIONS = ["mean(x * {c})", "mean({c} * x)", "mean(exp(x * {c}))", "mean(where(x > 0, {c}, x))",
                      "c = {c}\nmean(x + c)", "mean(x) + {c}", "def f(v):\n    return v - {c}\nmean(f(x))"]


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("position", CONSTANT_POSITIONS)
@pytest.mark.parametrize("constant, what", CONSTANTS)
def test_a_complex_or_undefined_constant_is_a_compile_time_error_at_it(constant, what, position, backend):
    source = position.format(c=constant)
    with pytest.raises(LossDSLError) as info:
        lossdsl.compile(source, backend=backend)
    err = info.value
    assert what in err.message, str(err)
    line = source.split("\n")[err.line - 1]
    start = line.index(constant)
    assert start < err.column <= start + len(constant), str(err)  # the caret is under the constant


# --- accepted: values and gradients on every backend ----------------------------------------------
@dataclass(frozen=True)
class Row:
    id: str
    source: str
    inputs: dict[str, np.ndarray]  # float64 samples
    value: Callable[..., float]  # the loss, from its formula, in float64
    grads: Callable[..., dict[str, np.ndarray]]  # its gradient, from the formula


_X = np.array([0.5, 0.75, 1.5, 2.0, 3.0])
_N = len(_X)
_ZEROS = np.array([0.0, 0.0, 0.5, 1.0, 2.0, 3.0])  # 0^x at and right of its step


def _mean_of(f, df):
    """A row's references for mean(f(x)): the value and d/dx = f'(x)/n."""
    return (lambda x: np.mean(f(x))), (lambda x: {"x": df(x) / x.size})


def _row(id, source, f, df, x=_X):
    value, grads = _mean_of(f, df)
    return Row(id, source, {"x": x}, value, grads)


_ONE = np.ones_like
_NAMED = {"x": _X, "nan": _X[::-1] + 0.25, "e": _X * 0.5 + 1.0}  # pi and inf are constants

ROWS = [
    _row("up and back", "mean(x * 1e200 * 1e-200)", lambda x: x, _ONE),
    _row("between the factors", "mean(1e300 * x * 1e-300 * 3)", lambda x: 3 * x, lambda x: 3 * _ONE(x)),
    _row("parenthesised", "mean((x * 1e-250) * 1e250 + 1)", lambda x: x + 1, _ONE),
    _row("quotients", "mean(x / 1e200 / 1e-200)", lambda x: x, _ONE),
    _row("quotient and product", "mean(x * 1e200 / 1e200 * x)", lambda x: x**2, lambda x: 2 * x),
    _row("inside a function", "mean(exp(x * 1e-300 * 1e300))", np.exp, np.exp),
    _row("in a power", "mean((x * 1e100)^2 * 1e-200)", lambda x: x**2, lambda x: 2 * x),
    _row("in bindings", "a = 1e-300\nb = 1e300\nmean(a * x * b * x)", lambda x: x**2, lambda x: 2 * x),
    _row("in a definition", "def f(v, s):\n    return v * s\nmean(f(x, 1e250) * 1e-250)", lambda x: x, _ONE),
    _row("in a condition", "mean(where(x > 1e-300 * 1e300, x * 1e200 * 1e-200, 0))",
         lambda x: np.where(x > 1, x, 0), lambda x: np.where(x > 1, 1.0, 0.0)),
    _row("in a maximum", "mean(maximum(x * 1e300 * 1e-300, 1))", lambda x: np.maximum(x, 1),
         lambda x: np.where(x > 1, 1.0, 0.0)),
    # 0^x: NumPy's values (1 at 0, 0 right of it); a step, so its derivative is 0 (JAX and torch agree below)
    _row("0^x", "mean(0^x)", lambda x: 0.0**x, lambda x: 0 * x, x=_ZEROS),
    _row("0^x in a function", "mean(exp(0^(x*x)) + x)", lambda x: np.exp(0.0 ** (x * x)) + x, _ONE,
         x=np.array([-1.0, 0.0, 0.5, 2.0])),
    Row("0^x times an input", "mean(0^x * y + x * y)", {"x": _ZEROS, "y": _ZEROS + 1.5},
        lambda x, y: np.mean(0.0**x * y + x * y),
        lambda x, y: {"x": y / x.size, "y": (0.0**x + x) / x.size}),
    # a negative base: a real power only at whole exponents, where NumPy's log(-2) is nan
    _row("a negative base", "mean((0 - 2)^x)", lambda x: (-2.0)**x, lambda x: (-2.0)**x * np.log(-2.0 + 0 * x),
         x=np.array([0.0, 1.0, 2.0, 3.0])),
    # inputs with the names of float constants: the generated code's constants never read them
    Row("inputs named nan and e beside the constants inf and pi", "mean(x * 1e200 * 1e-200 + nan * e - pi)",
        _NAMED, lambda x, nan, e: np.mean(x + nan * e - np.pi),
        lambda x, nan, e: {"x": _ONE(x) / _N, "nan": e / _N, "e": nan / _N}),
    Row("one-sided clips beside inputs named nan and e", "mean(maximum(x, 1.1) + minimum(nan, 1.1) + e^2 - pi + maximum(x, -inf))",
        _NAMED, lambda x, nan, e: np.mean(np.maximum(x, 1.1) + np.minimum(nan, 1.1) + e**2 - np.pi + x),
        lambda x, nan, e: {"x": (x > 1.1) / _N + 1 / _N, "nan": (nan < 1.1) / _N, "e": 2 * e / _N}),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("backend", BACKEND_RUNS)
@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_constants_that_cross_the_float_range_fold_exactly(row, backend, dtype):
    value, grads = run_value_and_grads(row.source, row.inputs, backend, dtype)
    with np.errstate(all="ignore"):
        want_value = np.asarray(row.value(**row.inputs)).astype(dtype)  # float64, then rounded once
        want_grads = {k: np.asarray(g, dtype=np.float64).astype(dtype) for k, g in row.grads(**row.inputs).items()}
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    assert value.dtype == dtype and set(grads) == set(want_grads)
    np.testing.assert_allclose(value, want_value, rtol=rtol, atol=0)
    for name, want in want_grads.items():
        assert grads[name].dtype == dtype and grads[name].shape == want.shape, name
        np.testing.assert_allclose(grads[name], want, rtol=rtol, atol=0, err_msg=name)


@pytest.mark.parametrize("backend", ["numpy", "torch"])  # XLA flushes subnormal floats to 0
def test_a_subnormal_constant_is_exact(backend):
    value, grads = run_value_and_grads("mean(x * 1e-160 * 1e-160)", {"x": _X}, backend, np.float64)
    np.testing.assert_allclose(value, np.mean(_X) * 1e-320, rtol=1e-3)  # subnormals hold few digits
    np.testing.assert_allclose(grads["x"], np.full(_N, 1e-320 / _N), rtol=1e-3)


def test_the_gradient_of_0_to_the_x_is_what_jax_and_torch_give_at_and_right_of_the_step():
    x = _ZEROS
    got = lossdsl.compile("mean(0^x)").grad("x")(x=x)
    np.testing.assert_array_equal(got, np.asarray(jax.grad(lambda v: jnp.mean(0.0**v))(jnp.asarray(x))))
    t = torch.tensor(x, requires_grad=True)
    torch.mean(torch.pow(0.0, t)).backward()
    np.testing.assert_array_equal(got, t.grad.numpy())
    right = x > 0  # where 0^x is 0 on both sides: central differences
    h = 1e-6
    with np.errstate(divide="ignore"):  # 0^(0 - h) is inf, at the step, which the mask leaves out
        fd = (0.0 ** (x + h) - 0.0 ** (x - h)) / (2 * h) / x.size
    np.testing.assert_array_equal(got[right], fd[right])


# --- the printer: every number prints as code that names nothing ----------------------------------
_x = sp.Symbol("x", real=True)
NUMBERS = [sp.oo, -sp.oo, sp.nan, sp.zoo, sp.Integer(10) ** 400, -sp.Integer(10) ** 400, sp.Rational(1, 10**400),
           sp.Rational(1, 10**310), sp.Rational(3, 10**320), sp.Float("1e400"), sp.Float("-1e400"),
           sp.Integer(2) ** 70, sp.Rational(10**300, 3)]


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("number", NUMBERS, ids=lambda n: str(n) if len(str(n)) < 16 else sp.sstr(sp.N(n, 3)))
def test_every_number_prints_as_code_that_names_nothing(number, backend):
    b = BACKENDS[backend]
    module = {"numpy": np, "jax": jnp, "torch": torch}[backend]
    x = np.array([0.5, 2.0])
    value = np.nan if number is sp.zoo else float(number)  # IEEE's value: inf or 0.0 beyond the range
    arg = torch.as_tensor(x) if backend == "torch" else module.asarray(x)
    for expr, want in ((number, value), (sp.Mul(number, _x), value * x)):
        code = ExprPrinter(b)(expr)
        # our own printed code, run with the array module and x only: a bare inf or nan is a NameError
        got = np.asarray(eval(code, {"__builtins__": {}, b.alias: module, "x": arg}))  # noqa: S307
        # atol: XLA flushes subnormal products to 0
        np.testing.assert_allclose(*np.broadcast_arrays(got, want), rtol=1e-15, atol=1e-300, err_msg=code)
