"""``grad(expr, x)`` inside the language: gradient penalties (WGAN-GP, R1, double backpropagation,
GradNorm's per-task gradient norms) written as text, their values and their outer gradients against
nested jax.grad of the same expressions written in jax.numpy and against central finite differences,
on every backend (JAX eager and under jit), in float32 and float64; second derivatives through
grad(...) against jax.hessian; the standalone module; and the errors a misplaced grad meets."""

import functools
import importlib.util
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import sympy
from oracles import assert_finite_differences, float_names, jax_grads

import lossdsl
from lossdsl.errors import LossTypeError, NameResolutionError

jax.config.update("jax_enable_x64", True)

BACKENDS = ("numpy", "jax") + (("torch",) if importlib.util.find_spec("torch") else ())

CRITIC = "def critic(x, W):\n    return sum(tanh(x @ W), axis=-1)\n"
DISCRIMINATOR = "def D(x, W, v):\n    return tanh(x @ W) @ v\n"


def _critic(x, W):
    return jnp.sum(jnp.tanh(x @ W), axis=-1)


def _gradient(f, x):
    """The gradient of sum(f(x)) by x: the oracle the language's grad(...) answers to."""
    return jax.grad(lambda z: jnp.sum(f(z)))(x)


def _wgan_gp(xhat, W):
    return jnp.mean((jnp.linalg.norm(_gradient(lambda z: _critic(z, W), xhat), axis=-1) - 1) ** 2)


def _r1(x, W, v):
    d = lambda z: jnp.tanh(z @ W) @ v  # noqa: E731
    return 0.5 * jnp.mean(jnp.sum(_gradient(d, x) ** 2, axis=-1)) + jnp.mean(jax.nn.softplus(-d(x)))


def _double_backprop(x, W, y):
    data = lambda z: jnp.mean((jnp.tanh(z @ W) - y) ** 2)  # noqa: E731
    return data(x) + 0.1 * jnp.sum(_gradient(data, x) ** 2)


def _by_binding(x, W, v):
    return jnp.sum(_gradient(lambda h: jax.nn.softplus(h) * v, x @ W) ** 2)


def _gradnorm(x, W, a, b, y1, y2):
    l1 = lambda w: jnp.mean((x @ w @ a - y1) ** 2)  # noqa: E731
    l2 = lambda w: jnp.mean((x @ w @ b - y2) ** 2)  # noqa: E731
    g1, g2 = jnp.linalg.norm(jax.grad(l1)(W)), jnp.linalg.norm(jax.grad(l2)(W))
    return (g1 - g2) ** 2 + l1(W) + l2(W)


def _constant_gradient(x, y):
    return jnp.sum(_gradient(lambda z: jnp.sum(z ** 3) + 3 * jnp.sum(z), x) * y)


@dataclass(frozen=True)
class Row:
    name: str
    source: str
    sample: Callable[[np.random.Generator], dict[str, Any]]
    reference: Callable[..., Any]  # jax.numpy, with nested jax.grad where the source has grad(...)


ROWS = [
    Row("wgan_gp", CRITIC + "mean((norm(grad(critic(xhat, W), xhat), axis=-1) - 1)^2)",
        lambda rng: {"xhat": rng.normal(size=(5, 3)), "W": rng.normal(size=(3, 4))}, _wgan_gp),
    Row("r1", DISCRIMINATOR + "0.5 * mean(sum(grad(D(x, W, v), x)^2, axis=-1)) + mean(softplus(-D(x, W, v)))",
        lambda rng: {"x": rng.normal(size=(6, 3)), "W": rng.normal(size=(3, 4)), "v": rng.normal(size=4)}, _r1),
    Row("double_backprop", "data = mean((tanh(x @ W) - y)^2)\ndata + 0.1 * sum(grad(data, x)^2)",
        lambda rng: {"x": rng.normal(size=(5, 3)), "W": rng.normal(size=(3, 2)), "y": rng.normal(size=(5, 2))},
        _double_backprop),
    Row("binding", "h = x @ W\nsum(grad(sum(softplus(h) * v), h)^2)",
        lambda rng: {"x": rng.normal(size=(4, 3)), "W": rng.normal(size=(3, 5)), "v": rng.normal(size=5)},
        _by_binding),
    Row("gradnorm", "task1 = mean((x @ W @ a - y1)^2)\ntask2 = mean((x @ W @ b - y2)^2)\n"
        "(norm(grad(task1, W)) - norm(grad(task2, W)))^2 + task1 + task2",
        lambda rng: {"x": rng.normal(size=(6, 3)), "W": rng.normal(size=(3, 4)), "a": rng.normal(size=4),
                     "b": rng.normal(size=4), "y1": rng.normal(size=6), "y2": rng.normal(size=6)}, _gradnorm),
    Row("constant_gradient", "sum(grad(sum(x^3) + 3 * sum(x), x) * y)",
        lambda rng: {"x": rng.normal(size=(3, 4)), "y": rng.normal(size=(3, 4))}, _constant_gradient),
]
IDS = [row.name for row in ROWS]


def _inputs(row):
    return row.sample(np.random.default_rng(sum(map(ord, row.name))))


def _as(backend, inputs, dtype=np.float64):
    if backend == "torch":
        import torch
        return {k: torch.from_numpy(np.asarray(v, dtype)) for k, v in inputs.items()}
    return {k: np.asarray(v, dtype) for k, v in inputs.items()}


def _numpy(v):
    return np.asarray(v.detach() if hasattr(v, "detach") else v)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_value_and_gradient_against_nested_jax_grad(row, backend):
    inputs = _inputs(row)
    names = float_names(inputs)
    want = jax_grads(row.reference, inputs, names)
    value, grads = lossdsl.compile(row.source, backend=backend).value_and_grad(names)(**_as(backend, inputs))
    np.testing.assert_allclose(float(value), float(row.reference(**inputs)), rtol=1e-11, atol=1e-13)
    for name in names:
        got = _numpy(grads[name])
        assert got.shape == inputs[name].shape and got.dtype == np.float64, name
        np.testing.assert_allclose(got, want[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_gradient_against_finite_differences(row):
    assert_finite_differences(lossdsl.compile(row.source), _inputs(row))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_float32_in_float32_out(row, backend):
    inputs = _inputs(row)
    names = float_names(inputs)
    value, grads = lossdsl.compile(row.source, backend=backend).value_and_grad(names)(
        **_as(backend, inputs, np.float32))
    exact = {k: np.asarray(v, np.float32).astype(np.float64) for k, v in inputs.items()}
    want = jax_grads(row.reference, exact, names)
    assert _numpy(value).dtype == np.float32
    np.testing.assert_allclose(float(value), float(row.reference(**exact)), rtol=2e-5, atol=1e-6)
    for name in names:
        got = _numpy(grads[name])
        assert got.dtype == np.float32, name
        np.testing.assert_allclose(got, want[name], rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_under_jax_jit_and_jax_grad(row):
    """The compiled JAX loss under the caller's jit, and jax.grad through it (its custom_vjp: the
    symbolic outer gradient) against nested jax.grad of the reference."""
    inputs = _inputs(row)
    names = float_names(inputs)
    loss = lossdsl.compile(row.source, backend="jax")
    args = {k: jnp.asarray(v) for k, v in inputs.items()}
    value, grads = jax.jit(jax.value_and_grad(lambda kw: loss(**kw)))(args)
    np.testing.assert_allclose(float(value), float(row.reference(**inputs)), rtol=1e-11, atol=1e-13)
    want = jax_grads(row.reference, inputs, names)
    for name in names:
        np.testing.assert_allclose(np.asarray(grads[name]), want[name], rtol=1e-9, atol=1e-12, err_msg=name)


HESSIAN_ROWS = [("wgan_gp", "W"), ("wgan_gp", "xhat"), ("r1", "v"), ("double_backprop", "W"), ("binding", "W"),
                ("gradnorm", "a")]


@functools.cache
def _hessian(name, wrt):
    """jax.hessian of the row's reference in ``wrt``: once per row and process (its backends share an
    xdist group)."""
    row = ROWS[IDS.index(name)]
    args = {k: jnp.asarray(v) for k, v in _inputs(row).items()}
    return np.asarray(jax.hessian(lambda z: row.reference(**{**args, wrt: z}))(args[wrt]))


@pytest.mark.parametrize("name, wrt, backend", [pytest.param(n, w, b, id=f"{n}-{w}-{b}", marks=pytest.mark.xdist_group(
    f"hessian-{n}-{w}")) for n, w in HESSIAN_ROWS for b in BACKENDS])
def test_second_derivatives_through_grad(name, wrt, backend):
    row = ROWS[IDS.index(name)]
    inputs = _inputs(row)
    want = _hessian(name, wrt)
    loss = lossdsl.compile(row.source, backend=backend)
    np.testing.assert_allclose(_numpy(loss.hessian(wrt)(**_as(backend, inputs))), want, rtol=1e-8, atol=1e-10)
    direction = np.random.default_rng(1).normal(size=inputs[wrt].shape)
    n = direction.size
    hv = _numpy(loss.hvp(wrt)(_as(backend, {"d": direction})["d"], **_as(backend, inputs)))
    np.testing.assert_allclose(hv, (want.reshape(n, n) @ direction.ravel()).reshape(direction.shape),
                               rtol=1e-8, atol=1e-10)


def test_the_standalone_module_runs_without_lossdsl(tmp_path):
    row = ROWS[0]
    inputs = _inputs(row)
    loss = lossdsl.compile(row.source)
    imports = {line for line in loss.source.splitlines() if line.startswith(("import ", "from "))}
    assert imports == {"import numpy as np"}
    path = tmp_path / "wgan_gp_penalty.py"
    path.write_text(loss.source)
    np.savez(tmp_path / "inputs.npz", **inputs)
    # lossdsl blocked from import: the module must not need it
    script = ("import sys, runpy, numpy as np; sys.modules['lossdsl'] = None; "
              f"m = runpy.run_path({str(path)!r}); i = dict(np.load({str(tmp_path / 'inputs.npz')!r})); "
              "v, g = m['value_and_grad'](**i); print(repr(float(v))); np.save('g.npy', g['W'])")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True)
    np.testing.assert_allclose(float(done.stdout), float(row.reference(**inputs)), rtol=1e-11)
    want = jax_grads(row.reference, inputs, ["W"])["W"]
    np.testing.assert_allclose(np.load(tmp_path / "g.npy"), want, rtol=1e-9, atol=1e-12)


def test_the_analysis_sees_through_grad():
    """The analysis reads the spliced gradient: 9 x^4 summed is convex; the mean of softplus's gradient,
    sigmoid, is not, with a counterexample whose values are the sigmoid's."""
    report = lossdsl.analyze("sum(grad(sum(x^3), x)^2)")
    assert report["inputs"]["x"]["convexity"]["verdict"] == "convex"
    convexity = lossdsl.analyze("mean(grad(sum(softplus(x)), x))")["inputs"]["x"]["convexity"]
    assert convexity["verdict"] == "nonconvex"
    points = np.asarray(convexity["counterexample"]["x"])
    np.testing.assert_allclose(convexity["counterexample"]["loss"], scipy.special.expit(points).mean(axis=-1))
    report = lossdsl.analyze(DISCRIMINATOR + "mean(sum(grad(D(x, W, v), x)^2, axis=-1))")
    assert set(report["inputs"]) == {"x", "W", "v"}


def test_the_gradient_formula_shows_the_inner_gradient():
    loss = lossdsl.compile("sum(grad(sum(x^3), x)^2)")  # (3x^2)^2 summed: gradient 36 x^3
    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(loss.grad("x")(x=x), 36 * x**3)
    formula = loss.gradient_formula("x")
    (x_,) = formula.free_symbols
    assert sympy.simplify(formula - 36 * x_**3) == 0


@pytest.mark.parametrize(("source", "error", "text", "column"), [
    ("grad(sum(x^2), x + 1)", LossTypeError, "name of an input or a binding", 18),
    ("grad(sum(x^2), mse)", LossTypeError, "is a function", 16),
    ("def f(a):\n    return grad(sum(a^2), b)\nsum(f(x))", NameResolutionError, "'b' is not defined", 27),
    ("c = 2\nsum(grad(c * sum(x), c))", LossTypeError, "'c' is the number 2", 22),
    ("sum(grad(sum(take(x, y)), y))", LossTypeError, "integer labels", 27),
    ("grad(sum(x))", NameResolutionError, "missing its argument 'x'", 1),
    ("grad(sum(x), x, y)", NameResolutionError, "at most 2 positional", 17),
    ("grad(sum(x), wrt=x)", NameResolutionError, "no parameter 'wrt'", 14),
])
def test_errors_point_at_the_argument(source, error, text, column):
    with pytest.raises(error) as e:
        lossdsl.compile(source)
    assert text in e.value.message and e.value.column == column, str(e.value)
