"""The language core end to end: expressions covering every construct, in both backends, against
independent references (written here against ``xp`` = numpy or jax.numpy), jax.grad of the
jax.numpy reference, and central finite differences in float64."""

import warnings
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import lossdsl

jax.config.update("jax_enable_x64", True)


@dataclass(frozen=True)
class Row:
    id: str
    source: str
    inputs: Any  # rng -> dict
    reference: Any  # (xp, **inputs) -> scalar
    wrt: tuple[str, ...]


def _huber(xp, r, delta):
    a = xp.abs(r)
    return xp.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


def _log_softmax(xp, z, axis=-1):
    m = xp.max(z, axis=axis, keepdims=True)
    return z - m - xp.log(xp.sum(xp.exp(z - m), axis=axis, keepdims=True))


def _take(xp, x, labels):
    return xp.take_along_axis(x, labels[:, None], axis=-1)[:, 0]


USER_PROGRAM = '''
# a weighted, smoothed absolute error, written by a user
def smooth_abs(y_true, y_pred, eps=0.01):
    """sqrt(r^2 + eps^2): |r| without the kink."""
    r = y_pred - y_true
    return sqrt(r^2 + eps^2)

scale = 2 * 0.5
scale * mean(smooth_abs(t, p, eps=0.1) * weight) + (
    0.01 * sum(p^2))
'''

ROWS = [
    Row("card", "0.5*huber(delta=1) + l1(w, 0.1)",
        lambda r: {"y_true": r.normal(size=8), "y_pred": 2 * r.normal(size=8), "w": r.normal(size=4)},
        lambda xp, y_true, y_pred, w: 0.5 * xp.mean(_huber(xp, y_pred - y_true, 1.0)) + 0.1 * xp.sum(xp.abs(w)),
        ("y_true", "y_pred", "w")),
    Row("mse", "mean((y_pred - y_true)^2)",
        lambda r: {"y_true": r.normal(size=6), "y_pred": r.normal(size=6)},
        lambda xp, y_true, y_pred: xp.mean((y_pred - y_true) ** 2), ("y_true", "y_pred")),
    Row("bce-probabilities", "mean(-(y_true*log(y_pred) + (1 - y_true)*log(1 - y_pred)))",
        lambda r: {"y_true": (r.uniform(size=6) > 0.5) * 1.0, "y_pred": r.uniform(0.1, 0.9, size=6)},
        lambda xp, y_true, y_pred: -xp.mean(y_true * xp.log(y_pred) + (1 - y_true) * xp.log(1 - y_pred)),
        ("y_pred",)),
    Row("reduce-axis", "mean(sum(x^2, axis=1)) + sum(mean(x, axis=0, keepdims=true) * x)",
        lambda r: {"x": r.normal(size=(3, 4))},
        lambda xp, x: xp.mean(xp.sum(x**2, axis=1)) + xp.sum(xp.mean(x, axis=0, keepdims=True) * x), ("x",)),
    Row("softmax-cross-entropy", "mean(-sum(t * log(softmax(z)), axis=-1))",
        lambda r: {"t": r.dirichlet(np.ones(5), size=4), "z": 3 * r.normal(size=(4, 5))},
        lambda xp, t, z: xp.mean(-xp.sum(t * _log_softmax(xp, z), axis=-1)), ("t", "z")),
    Row("logsumexp", "mean(logsumexp(z, axis=-1)) - logsumexp(z)",
        lambda r: {"z": 4 * r.normal(size=(3, 5))},
        lambda xp, z: xp.mean(xp.log(xp.sum(xp.exp(z), axis=-1))) - xp.log(xp.sum(xp.exp(z))), ("z",)),
    Row("where-guarded-sqrt", "sum(where(x > 0, sqrt(x), -x^2))",
        lambda r: {"x": r.normal(size=7)},
        lambda xp, x: xp.sum(xp.where(x > 0, xp.sqrt(xp.abs(x)), -(x**2))), ("x",)),
    Row("linear-regression", "mean((X @ w - y)^2) + 0.1*sum(w^2)",
        lambda r: {"X": r.normal(size=(6, 3)), "w": r.normal(size=3), "y": r.normal(size=6)},
        lambda xp, X, w, y: xp.mean((X @ w - y) ** 2) + 0.1 * xp.sum(w**2), ("X", "w")),
    Row("matrix-product", "sum(tanh(A @ B))",
        lambda r: {"A": r.normal(size=(3, 4)), "B": r.normal(size=(4, 2))},
        lambda xp, A, B: xp.sum(xp.tanh(A @ B)), ("A", "B")),
    Row("integer-labels-take", "mean(-take(log_softmax(z), labels))",
        lambda r: {"z": r.normal(size=(5, 4)), "labels": np.array([0, 3, 1, 1, 2])},
        lambda xp, z, labels: -xp.mean(_take(xp, _log_softmax(xp, z), labels)), ("z",)),
    Row("integer-labels-one-hot", "mean(-sum(one_hot(labels, 4) * log_softmax(z), axis=-1))",
        lambda r: {"z": r.normal(size=(5, 4)), "labels": np.array([2, 0, 3, 3, 1])},
        lambda xp, z, labels: -xp.mean(xp.sum(jax.nn.one_hot(labels, 4) * _log_softmax(xp, z), axis=-1)),
        ("z",)),
    Row("loss-parameter", "huber(y_true, y_pred, delta=d)",
        lambda r: {"y_true": r.normal(size=9), "y_pred": 2 * r.normal(size=9), "d": np.array(0.8)},
        lambda xp, y_true, y_pred, d: xp.mean(_huber(xp, y_pred - y_true, d)), ("y_pred", "d")),
    Row("broadcast-row", "mean((x - b)^2 * s)",
        lambda r: {"x": r.normal(size=(4, 3)), "b": r.normal(size=3), "s": r.uniform(1, 2, size=(4, 1))},
        lambda xp, x, b, s: xp.mean((x - b) ** 2 * s), ("x", "b", "s")),
    Row("max-min-reductions", "sum(max(z, axis=-1)) - min(z) + max(z)",
        lambda r: {"z": r.normal(size=(3, 5))},
        lambda xp, z: xp.sum(xp.max(z, axis=-1)) - xp.min(z) + xp.max(z), ("z",)),
    Row("norm", "mean(norm(a - b, axis=-1)) + norm(a)",
        lambda r: {"a": r.normal(size=(4, 3)), "b": r.normal(size=(4, 3))},
        lambda xp, a, b: xp.mean(xp.sqrt(xp.sum((a - b) ** 2, axis=-1))) + xp.sqrt(xp.sum(a**2)), ("a", "b")),
    Row("clip-and-hinge", "mean(max(0, 1 - y*p)) + sum(clip(p, -0.5, 0.5)^2)",
        lambda r: {"y": np.sign(r.normal(size=8)), "p": r.normal(size=8)},
        lambda xp, y, p: xp.mean(xp.maximum(0, 1 - y * p)) + xp.sum(xp.clip(p, -0.5, 0.5) ** 2), ("p",)),
    Row("elementwise-builtins", "sum(sigmoid(x) + softplus(x) + log1p(x^2) + expm1(x/4) + cosh(x) + exp(-x^2))",
        lambda r: {"x": r.normal(size=6)},
        lambda xp, x: xp.sum(1 / (1 + xp.exp(-x)) + xp.log1p(xp.exp(x)) + xp.log1p(x**2) + xp.expm1(x / 4)
                             + xp.cosh(x) + xp.exp(-(x**2))), ("x",)),
    Row("conditions", "mean(where((x > 0) and not (x > 1) or x < -1, x^2, 0.5*x)) + sum(x if 1 < 2 else 0)",
        lambda r: {"x": 2 * r.normal(size=9)},
        lambda xp, x: xp.mean(xp.where(((x > 0) & ~(x > 1)) | (x < -1), x**2, 0.5 * x)) + xp.sum(x), ("x",)),
    Row("user-program", USER_PROGRAM,
        lambda r: {"t": r.normal(size=5), "p": r.normal(size=5), "weight": r.uniform(0.5, 1.5, size=5)},
        lambda xp, t, p, weight: xp.mean(xp.sqrt((p - t) ** 2 + 0.01) * weight) + 0.01 * xp.sum(p**2),
        ("t", "p", "weight")),
    Row("multi-task", "mse(y1, p1) + 0.5*mean(-sum(t * log_softmax(z), axis=-1)) + l2(w, 0.01)",
        lambda r: {"y1": r.normal(size=4), "p1": r.normal(size=4), "t": r.dirichlet(np.ones(3), size=4),
                   "z": r.normal(size=(4, 3)), "w": r.normal(size=5)},
        lambda xp, y1, p1, t, z, w: xp.mean((p1 - y1) ** 2) + 0.5 * xp.mean(-xp.sum(t * _log_softmax(xp, z), -1))
        + 0.01 * xp.sum(w**2), ("p1", "z", "w")),
]

BACKENDS = ["numpy", "jax"]


def _inputs(row):
    return row.inputs(np.random.default_rng(sum(map(ord, row.id))))


def _jnp(inputs):
    return {k: jnp.asarray(v) for k, v in inputs.items()}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_value_and_gradient_against_references(row, backend):
    inputs = _inputs(row)
    loss = lossdsl.compile(row.source, backend=backend)
    value, grads = loss.value_and_grad(list(row.wrt))(**inputs)
    np.testing.assert_allclose(float(value), float(row.reference(np, **inputs)), rtol=1e-6, atol=1e-12)
    for name in row.wrt:
        want = jax.grad(lambda v, name=name: row.reference(jnp, **{**_jnp(inputs), name: v}))(jnp.asarray(inputs[name]))
        np.testing.assert_allclose(np.asarray(grads[name]), want, rtol=1e-6, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_gradient_against_finite_differences(row):
    inputs = _inputs(row)
    loss = lossdsl.compile(row.source)
    grads = loss.grad(list(row.wrt))(**inputs)
    for name in row.wrt:
        x = np.asarray(inputs[name], dtype=np.float64)
        fd = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            e = np.zeros_like(x)
            e[i] = 1e-6
            fd[i] = (float(loss(**{**inputs, name: x + e})) - float(loss(**{**inputs, name: x - e}))) / 2e-6
        np.testing.assert_allclose(grads[name], fd, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_backends_agree_and_jax_transforms_use_the_symbolic_gradient(row):
    inputs = _inputs(row)
    np_loss, jax_loss = lossdsl.compile(row.source), lossdsl.compile(row.source, backend="jax")
    np.testing.assert_allclose(float(jax_loss(**inputs)), float(np_loss(**inputs)), rtol=1e-12)
    symbolic = jax_loss.grad(list(row.wrt))(**inputs)
    through = jax.grad(lambda *vs: jax_loss(**{**inputs, **dict(zip(row.wrt, vs))}),
                       argnums=tuple(range(len(row.wrt))))(*(jnp.asarray(inputs[n]) for n in row.wrt))
    for name, g in zip(row.wrt, through):
        np.testing.assert_allclose(g, symbolic[name], rtol=1e-12, atol=1e-15, err_msg=name)
    jitted = jax.jit(lambda kw: jax_loss(**kw))(inputs)
    np.testing.assert_allclose(float(jitted), float(np_loss(**inputs)), rtol=1e-12)
    first = row.wrt[0]
    batch = jnp.stack([jnp.asarray(inputs[first]), 2 * jnp.asarray(inputs[first])])
    mapped = jax.vmap(lambda v: jax_loss(**{**inputs, first: v}))(batch)
    expected = [float(np_loss(**{**inputs, first: np.asarray(v)})) for v in batch]
    np.testing.assert_allclose(mapped, expected, rtol=1e-12)


def test_inputs_in_order_of_first_appearance():
    assert lossdsl.compile("0.5*huber(delta=1) + l1(w, 0.1)").inputs == ("y_true", "y_pred", "w")


def test_gradient_formula_mse():
    y_pred, y_true, n = sp.symbols("y_pred y_true n")
    got = lossdsl.compile("mean((y_pred - y_true)^2)").gradient_formula("y_pred")
    assert sp.simplify(got - 2 * (y_pred - y_true) / n) == 0


def test_gradient_formula_bce():
    y_pred, y_true, n = sp.symbols("y_pred y_true n")
    got = lossdsl.compile("mean(-(y_true*log(y_pred) + (1 - y_true)*log(1 - y_pred)))").gradient_formula("y_pred")
    assert sp.simplify(got - (y_pred - y_true) / (n * y_pred * (1 - y_pred))) == 0


def test_gradient_formula_of_a_loss_parameter_and_of_weights():
    d, y_pred, y_true, n = sp.symbols("d y_pred y_true n")
    got = lossdsl.compile("mean(d^2*(sqrt(1 + ((y_pred - y_true)/d)^2) - 1))").gradient_formula("d")
    r = y_pred - y_true
    assert sp.simplify(got - sp.diff(d**2 * (sp.sqrt(1 + (r / d) ** 2) - 1), d) / n) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_in_float32_out(backend):
    loss = lossdsl.compile("0.5*huber(delta=1) + l1(w, 0.1)", backend=backend)
    f32 = {"y_true": np.zeros(4, np.float32), "y_pred": np.linspace(-2, 2, 4, dtype=np.float32),
           "w": np.ones(3, np.float32)}
    value, grads = loss.value_and_grad(["y_true", "y_pred", "w"])(**f32)
    assert np.asarray(value).dtype == np.float32 and np.asarray(value).shape == ()
    assert all(np.asarray(g).dtype == np.float32 for g in grads.values())
    ints = {**f32, "y_true": np.arange(4)}  # integer targets do not promote float32 predictions
    assert np.asarray(loss(**ints)).dtype == np.float32


@pytest.mark.parametrize("backend", BACKENDS)
def test_untaken_where_branch_leaks_no_nan_and_no_warning(backend):
    loss = lossdsl.compile("sum(where(x > 0, log(x), 0)) + sum(where(x > 0, sqrt(x), 0))", backend=backend)
    x = np.array([-1.0, 0.0, 0.5, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = loss.value_and_grad("x")(x=x)
    np.testing.assert_allclose(float(value), np.log(0.5) + np.log(2) + np.sqrt(0.5) + np.sqrt(2))
    np.testing.assert_allclose(grad, [0, 0, 1 / 0.5 + 0.5 / np.sqrt(0.5), 1 / 2 + 0.5 / np.sqrt(2)])
    if backend == "jax":
        through = jax.grad(lambda v: loss(x=v))(jnp.asarray(x))
        assert np.all(np.isfinite(through))
        np.testing.assert_allclose(through, grad)


def test_subgradient_at_kinks():
    loss = lossdsl.compile("sum(abs(x)) + sum(maximum(x, 0))")
    np.testing.assert_array_equal(loss.grad("x")(x=np.zeros(3)), [0.5, 0.5, 0.5])  # abs'(0)=0, ties split


def test_gradient_is_shaped_like_its_input_under_broadcasting():
    loss = lossdsl.compile("sum(a * b)")
    grads = loss.grad(["a", "b"])(a=np.ones((2, 1, 3)), b=np.arange(4.0).reshape(4, 1))
    assert grads["a"].shape == (2, 1, 3) and grads["b"].shape == (4, 1)
    np.testing.assert_allclose(grads["a"], np.full((2, 1, 3), 6.0))
    np.testing.assert_allclose(grads["b"], np.full((4, 1), 6.0))


def test_generated_module_is_standalone():
    for backend, allowed in (("numpy", {"import numpy as np"}), ("jax", {"import jax", "import jax.numpy as jnp"})):
        source = lossdsl.compile("0.5*huber(delta=1) + l1(w, 0.1)", backend=backend).source
        imports = {line for line in source.splitlines() if line.startswith(("import ", "from "))}
        assert imports == allowed
        assert "lossdsl" not in source.replace("generated by lossdsl", "")
