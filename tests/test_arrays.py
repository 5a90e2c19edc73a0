"""Shapes and constant arrays (size, eye, arange, ones, zeros, *_like, diag, concat, stack) and the
functions beside them (relu, square, log_sigmoid, logaddexp, xlogy, stop_gradient, pi, inf): each row
a loss and the same expression in jax.numpy. From each row: the value and gradient against jax.grad
of the reference on NumPy, JAX (eager, and under a caller's jax.jit), and torch, in float32 and
float64; central finite differences in float64; and Hessians through the ops whose gradient ops
must themselves be differentiable."""

import importlib.util

import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np
import pytest
import scipy.special as sc
from oracles import assert_hessian_matches_jax, assert_value_and_grads_match_jax, finite_differences
from sampling import sampled

import lossdsl
from lossdsl.blocking import row_blocks
from lossdsl.errors import InputError, LimitError, LossDSLError

jax.config.update("jax_enable_x64", True)

RUNS = ["numpy", "jax", "jax-jit"] + (["torch"] if importlib.util.find_spec("torch") else [])
RNG = np.random.default_rng(15)
X, Y = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))
SQ = RNG.normal(size=(2, 3, 3))
P = np.where(np.arange(12).reshape(4, 3) % 4 == 0, 0.0, RNG.uniform(0.1, 1.0, size=(4, 3)))
Q = RNG.uniform(0.2, 2.0, size=(4, 3))

# (id, source, inputs, reference in jax.numpy)
ROWS = [
    ("size-mean", "sum((x - y)^2) / size(x, axis=0) + log(size(x)) * mean(x)", {"x": X, "y": Y},
     lambda x, y: jnp.sum((x - y) ** 2) / 4 + jnp.log(12.0) * jnp.mean(x)),
    ("eye-of-size", "sum(eye(size(x, axis=0)) * (x @ transpose(y)))", {"x": X, "y": Y},
     lambda x, y: jnp.sum(jnp.eye(4) * (x @ y.T))),
    ("eye-of-size-arithmetic", "sum(eye(size(x, axis=-1) + 1) * eye(4)) * sum(x^2)", {"x": X},
     lambda x: 4.0 * jnp.sum(x**2)),
    ("arange-ones-zeros", "sum(arange(size(x, axis=-1)) * x) + sum(ones(3) * x^2) + sum(zeros(size(x, axis=0)) + 1)",
     {"x": X},
     lambda x: jnp.sum(jnp.arange(3) * x) + jnp.sum(x**2) + 4.0),
    ("like", "sum(ones_like(x) * y^2 + zeros_like(y) * x)", {"x": X, "y": Y},
     lambda x, y: jnp.sum(jnp.ones_like(x) * y**2 + jnp.zeros_like(y) * x)),
    ("diag", "sum(diag(s)^3) + sum(diag(x @ transpose(x)))", {"s": SQ, "x": X},
     lambda s, x: jnp.sum(jnp.diagonal(s, 0, -2, -1) ** 3) + jnp.sum(jnp.diagonal(x @ x.T))),
    ("concat", "sum(concat(x, y^2, x*y, axis=-1)^2) + sum(concat(x, y, axis=0) * 2)", {"x": X, "y": Y},
     lambda x, y: jnp.sum(jnp.concatenate([x, y**2, x * y], axis=-1) ** 2) + jnp.sum(jnp.concatenate([x, y]) * 2)),
    ("stack", "sum(logsumexp(stack(x, 2*y, axis=1), axis=1)) + sum(stack(x)^2)", {"x": X, "y": Y},
     lambda x, y: jnp.sum(jss.logsumexp(jnp.stack([x, 2 * y], axis=1), axis=1)) + jnp.sum(jnp.stack([x]) ** 2)),
    ("relu-square", "mean(relu(x) + square(y))", {"x": X, "y": Y},
     lambda x, y: jnp.mean(jnp.maximum(x, 0) + jnp.square(y))),
    ("log-sigmoid", "mean(log_sigmoid(3*x) - log(sigmoid(y)))", {"x": X, "y": Y},
     lambda x, y: jnp.mean(jax.nn.log_sigmoid(3 * x) - jax.nn.log_sigmoid(y))),
    ("logaddexp", "mean(logaddexp(x, y) + logaddexp(x, 0))", {"x": X, "y": Y},
     lambda x, y: jnp.mean(jnp.logaddexp(x, y) + jnp.logaddexp(x, 0.0))),
    ("xlogy", "sum(xlogy(p, q) - xlogy(p, p + 1))", {"p": P, "q": Q},
     lambda p, q: jnp.sum(jss.xlogy(p, q) - jss.xlogy(p, p + 1))),
    ("stop-gradient", "mean((x - stop_gradient(y))^2 + 0.25 * (stop_gradient(x) - y)^2)", {"x": X, "y": Y},
     lambda x, y: jnp.mean((x - jax.lax.stop_gradient(y)) ** 2 + 0.25 * (jax.lax.stop_gradient(x) - y) ** 2)),
    ("pi-inf", "mean(max(where(x > 0, x, -inf), axis=0)) + mean(0.5 * log(2*pi) + clip(y, -inf, 0.2))",
     {"x": X, "y": Y},
     lambda x, y: jnp.mean(jnp.max(jnp.where(x > 0, x, -jnp.inf), axis=0))
     + jnp.mean(0.5 * jnp.log(2 * jnp.pi) + jnp.minimum(y, 0.2))),
]
IDS = [r[0] for r in ROWS]


@pytest.mark.parametrize("row, run, dtype", sampled(ROWS, IDS, [RUNS, [np.float64, np.float32]], "arrays"))
def test_value_and_gradient_against_jax_grad(row, run, dtype):
    _, source, inputs, ref = row
    assert_value_and_grads_match_jax(source, inputs, run, dtype, ref)


@pytest.mark.parametrize("row", [r for r in ROWS if r[0] != "stop-gradient"], ids=[i for i in IDS if i != "stop-gradient"])
def test_gradient_against_finite_differences(row):
    _, source, inputs, _ = row
    loss = lossdsl.compile(source)
    grads = loss.grad(list(inputs))(**inputs)
    for name in inputs:
        np.testing.assert_allclose(grads[name], finite_differences(loss, inputs, name), rtol=1e-5, atol=1e-6,
                                   err_msg=name)


# --- second derivatives: the gradient ops (diag_vjp, part, part_vjp, sigmoid, log, a/b) differentiate again

HESSIANS = [
    ("diag", "sum(diag(s)^3) + sum(diag(s) * sum(s, axis=-1))", {"s": SQ}, "s",
     lambda s: jnp.sum(jnp.diagonal(s, 0, -2, -1) ** 3) + jnp.sum(jnp.diagonal(s, 0, -2, -1) * jnp.sum(s, axis=-1))),
    ("concat", "sum(concat(x^2, y*x, axis=1)^2)", {"x": X, "y": Y}, "x",
     lambda x, y: jnp.sum(jnp.concatenate([x**2, y * x], axis=1) ** 2)),
    ("stack", "sum(logsumexp(stack(x, x^2, axis=0), axis=0))", {"x": X}, "x",
     lambda x: jnp.sum(jss.logsumexp(jnp.stack([x, x**2]), axis=0))),
    ("logaddexp", "sum(logaddexp(x, 2*y) * x)", {"x": X, "y": Y}, "x",
     lambda x, y: jnp.sum(jnp.logaddexp(x, 2 * y) * x)),
    ("xlogy-in-b", "sum(xlogy(p, q^2))", {"p": P, "q": Q}, "q", lambda p, q: jnp.sum(jss.xlogy(p, q**2))),
    ("xlogy-in-a", "sum(xlogy(p^2, q) * p)", {"p": P, "q": Q}, "p", lambda p, q: jnp.sum(jss.xlogy(p**2, q) * p)),
    ("stop-gradient", "sum(stop_gradient(x^2) * x^2)", {"x": X}, "x",
     lambda x: jnp.sum(jax.lax.stop_gradient(x**2) * x**2)),
]


@pytest.mark.parametrize("backend", ["numpy", "jax"] + (["torch"] if "torch" in RUNS else []))
@pytest.mark.parametrize("row", HESSIANS, ids=[h[0] for h in HESSIANS])
def test_hessian_against_jax_hessian(row, backend):
    _, source, inputs, wrt, ref = row
    assert_hessian_matches_jax(source, inputs, wrt, ref, backend)


# --- conventions and edges -----------------------------------------------------------------------------

def test_xlogy_at_zero_follows_scipy_and_jax():
    p = np.array([0.0, 0.0, 2.0, 0.0])
    q = np.array([0.0, 3.0, 0.5, np.inf])
    loss = lossdsl.compile("sum(xlogy(p, q))")
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(loss.value_and_grad("p")(p=p, q=q)[0], np.sum(sc.xlogy(p, q)))
    grads = loss.grad(["p", "q"])(p=p, q=q)
    want = jax.grad(lambda a, b: jnp.sum(jss.xlogy(a, b)), argnums=(0, 1))(p, q)
    np.testing.assert_array_equal(grads["p"], np.asarray(want[0]))  # log(q), -inf at q = 0
    np.testing.assert_array_equal(grads["q"], np.asarray(want[1]))  # p/q: NaN at 0/0, as jax's


def test_logaddexp_does_not_overflow():
    x = np.array([1000.0, -1000.0, 800.0])
    y = np.array([999.0, -1001.0, -800.0])
    for backend in RUNS[:2]:
        value, grads = lossdsl.compile("sum(logaddexp(x, y))", backend=backend).value_and_grad(["x", "y"])(x=x, y=y)
        np.testing.assert_allclose(float(value), np.sum(np.logaddexp(x, y)), rtol=1e-14)
        np.testing.assert_allclose(grads["x"], sc.expit(x - y), rtol=1e-14)
        np.testing.assert_allclose(grads["y"], sc.expit(y - x), rtol=1e-14)


def test_log_sigmoid_prints_as_log_of_sigmoid():
    for backend in ("numpy", "jax", "torch"):
        a = lossdsl.compile("mean(log_sigmoid(x))", backend=backend).source
        b = lossdsl.compile("mean(log(sigmoid(x)))", backend=backend).source
        assert a.split('"""', 2)[2].replace("log_sigmoid(x)", "log(sigmoid(x))") == b.split('"""', 2)[2]


def test_stop_gradient_is_constant_in_the_analysis():
    report = lossdsl.analyze("mean(stop_gradient(x) * y) + mean(size(x) * y^2)")["inputs"]
    assert report["x"]["convexity"]["proof"] == "the loss does not depend on it"
    assert report["y"]["convexity"]["verdict"] == "convex"


@pytest.mark.parametrize("source, verdict", [
    ("mean(relu(x))", "convex"), ("mean(square(x))", "convex"), ("mean(-log_sigmoid(x))", "convex"),
    ("mean(logaddexp(x, 2*x + 1))", "convex"), ("mean(concat(x, -x)^2)", "convex"),
    ("mean(diag(x)^2)", "convex")])
def test_curvature_of_the_new_functions(source, verdict):
    assert lossdsl.analyze(source)["inputs"]["x"]["convexity"]["verdict"] == verdict


def test_inputs_named_as_numpy_constants_draw_a_note():
    notes = lossdsl.analyze("mean((e * y_pred - y_true)^2 + nan)")["notes"]
    assert any("'e' is an input here, not Euler's number" in n for n in notes)
    assert any("'nan'" in n for n in notes)
    assert lossdsl.analyze("mean(pi * y_pred^2)")["notes"] == []
    assert "pi" not in lossdsl.compile("mean(pi * y_pred^2)").inputs


def test_constructor_sized_by_size_works_under_a_callers_jit():
    loss = lossdsl.compile("sum(eye(size(x, axis=0)) * (x @ transpose(x))) + sum(arange(size(x, axis=1)) * x)",
                           backend="jax")
    f = jax.jit(lambda x: loss.value_and_grad("x")(x=x))
    value, grad = f(jnp.asarray(X))
    np.testing.assert_allclose(float(value), np.sum(X**2) + np.sum(np.arange(3) * X), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad), 2 * X + np.arange(3), rtol=1e-12)


def test_standalone_module_runs_jitted(tmp_path):
    import importlib.util as u
    import sys
    loss = lossdsl.compile("sum(diag(x @ transpose(x))) / size(x, axis=0) + mean(concat(x, ones_like(x)))",
                           backend="jax")
    path = tmp_path / "arrays_loss.py"
    path.write_text(loss.source)
    spec = u.spec_from_file_location("arrays_loss", path)
    module = u.module_from_spec(spec)
    sys.modules["arrays_loss"] = module
    spec.loader.exec_module(module)
    value, grads = jax.jit(lambda x: module.value_and_grad(x=x))(jnp.asarray(X))
    np.testing.assert_allclose(float(value), np.sum(X**2) / 4 + (np.sum(X) + 12) / 24, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grads["x"]), 2 * X / 4 + 1 / 24, rtol=1e-12)


def test_sizes_are_not_row_blocked():
    # size(x, axis=0) of a block of rows is not the whole array's: the loss must run on whole arrays
    loss = lossdsl.compile("mean(x^2 * size(x, axis=0))")
    assert row_blocks(loss.graph, loss.root) is None
    x = RNG.normal(size=(300_000, 2))
    np.testing.assert_allclose(float(loss(x=x)), np.mean(x**2) * 300_000, rtol=1e-12)


@pytest.mark.parametrize("source, error, message", [
    ("sum(eye(2000000) * x)", LimitError, "beyond the limit"),
    ("sum(ones(-1) * x)", LossDSLError, "expected a constant integer >= 0"),
    ("sum(ones(x) * x)", LossDSLError, "array values cannot size an array"),
    ("sum(diag(sum(x)))", LossDSLError, "at least 2 axes"),
    ("sum(concat(x, 1))", LossDSLError, "a number has none"),
    ("sum(concat(axis=0))", LossDSLError, "missing its argument .arrays."),
    ("size(2, axis=1)", LossDSLError, "a number has no axis"),
])
def test_compile_time_errors(source, error, message):
    with pytest.raises(error, match=message):
        lossdsl.compile(source)


@pytest.mark.parametrize("source", ["sum(x) / size(x, axis=2)", "sum(eye(size(x)) * 0) + sum(x)"])
def test_call_time_errors(source):
    x = np.ones((20_000, 2))
    with pytest.raises(InputError, match="axis 2 is out of range|more than 2\\^28"):
        lossdsl.compile(source)(x=x)
