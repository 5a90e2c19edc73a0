"""Loss expressions end to end, in both backends, each against two references written here from the
math: one in NumPy (for values) and one in jax.numpy (whose jax.grad gives the expected gradient).

From every row: the value against NumPy; the gradient with respect to every float input against
jax.grad of the jax.numpy reference and against central finite differences in float64; the two
backends against each other; and, for JAX, jax.grad, jit and vmap through the compiled loss.
Inputs are drawn away from kinks (|x| = 0, |r| = delta, ties) so that finite differences are valid.

Sampled (tests/sampling.py): finite differences run on one backend per row, drawn per row (each
backend for about half the rows). Every row's gradient on both backends is still checked against
jax.grad of the reference, and the backends against each other to 1e-10, so finite differences on
the other backend would check nothing new. A row's tests share one xdist group (one worker
compiles each of its sources once).
"""

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp
from oracles import assert_finite_differences, assert_gradients, float_names, jax_grads
from sampling import one_of

import lossdsl

jax.config.update("jax_enable_x64", True)

BACKENDS = ("numpy", "jax")


@dataclass(frozen=True)
class Row:
    id: str
    source: str
    sample: Callable[[np.random.Generator], dict[str, Any]]
    np_ref: Callable[..., Any]  # NumPy, from the math: the expected value
    jnp_ref: Callable[..., Any]  # jax.numpy, from the math: jax.grad of it is the expected gradient


# --- samplers that keep away from kinks ------------------------------------------------------

def _away(rng, shape, lo, hi):
    """Values with lo <= |v| <= hi and random signs: away from a kink at 0."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(lo, hi, size=shape)


def _residuals(rng, n, delta):
    """Residuals on both sides of |r| = delta, none within 0.1*delta of it (or of 0)."""
    small = rng.uniform(0.1 * delta, 0.9 * delta, size=n)
    large = rng.uniform(1.1 * delta, 3 * delta, size=n)
    return rng.choice([-1.0, 1.0], size=n) * np.where(np.arange(n) % 2 == 0, small, large)


def _card_inputs(rng):
    y_true = rng.normal(size=8)
    return {"y_true": y_true, "y_pred": y_true + _residuals(rng, 8, 1.0), "w": _away(rng, 4, 0.1, 2.0)}


def _huber_param_inputs(rng):
    y_true = rng.normal(size=9)
    return {"y_true": y_true, "y_pred": y_true + _residuals(rng, 9, 0.8), "d": np.array(0.8)}


def _hinge_inputs(rng):
    y = rng.choice([-1.0, 1.0], size=8)
    margin = _away(rng, 8, 0.2, 1.5)  # 1 - y*p, away from the hinge at 0
    p = (1 - margin) * y
    return {"y": y, "p": p}


def _clip_inputs(rng):
    inside = rng.uniform(-0.4, 0.4, size=4)
    outside = rng.choice([-1.0, 1.0], size=4) * rng.uniform(0.6, 2.0, size=4)
    return {"p": np.concatenate([inside, outside]), "q": rng.normal(size=8)}


def _conditions_inputs(rng):
    # away from the condition's edges at -1, 0 and 1
    return {"x": np.array([-2.1, -1.4, -0.7, -0.2, 0.3, 0.8, 1.3, 2.2, 0.55])}


# --- reference helpers: NumPy and jax.numpy written separately ---------------------------------

def np_logsumexp(z, axis=None, keepdims=False):
    m = np.max(z, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def np_log_softmax(z, axis=-1):
    return z - np_logsumexp(z, axis=axis, keepdims=True)


def np_huber(r, delta):
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


def jnp_huber(r, delta):
    a = jnp.abs(r)
    return jnp.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


def np_pick(z, labels):
    return z[np.arange(z.shape[0]), labels]


def jnp_pick(z, labels):
    return jnp.take_along_axis(z, labels[:, None], axis=-1)[:, 0]


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


USER_PROGRAM = '''
# a binary focal loss on logits, written by a user, mixed with a plain cross-entropy
def focal(y_true, logits, gamma=2.0):
    """Focal loss: the cross-entropy scaled by (1 - p_t)^gamma."""
    p = sigmoid(logits)
    pt = where(y_true > 0.5, p, 1 - p)   # the probability of the true class
    ce = y_true * softplus(-logits) + (1 - y_true) * softplus(logits)
    return (1 - pt)^gamma * ce

alpha = 0.25
penalty = 0.01 * norm(z)
mean(alpha * focal(y, z, gamma=2) + (1 - alpha) * focal(y, z, gamma=0)) + (
    penalty)
'''


def np_focal(y, z, gamma):
    p = np_sigmoid(z)
    pt = np.where(y > 0.5, p, 1 - p)
    ce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return (1 - pt) ** gamma * ce


def jnp_focal(y, z, gamma):
    p = jax.nn.sigmoid(z)
    pt = jnp.where(y > 0.5, p, 1 - p)
    ce = y * jax.nn.softplus(-z) + (1 - y) * jax.nn.softplus(z)
    return (1 - pt) ** gamma * ce


ROWS = [
    Row("card", "0.5*huber(delta=1) + l1(w, 0.1)", _card_inputs,
        lambda y_true, y_pred, w: 0.5 * np.mean(np_huber(y_pred - y_true, 1.0)) + 0.1 * np.sum(np.abs(w)),
        lambda y_true, y_pred, w: 0.5 * jnp.mean(optax.losses.huber_loss(y_pred, y_true, delta=1.0))
        + 0.1 * jnp.sum(jnp.abs(w))),
    Row("axis-reductions", "mean(sum(x^2, axis=1)) + sum(mean(x, axis=0, keepdims=true) * x)"
        " + sum(x * sum(exp(x), axis=-1, keepdims=true)) + sum(mean(u, axis=1)^2)",
        lambda r: {"x": r.normal(size=(3, 4)), "u": r.normal(size=(2, 3, 4))},
        lambda x, u: np.mean(np.einsum("ij,ij->i", x, x)) + np.sum(x.mean(axis=0)[None, :] * x)
        + np.sum(x * np.exp(x).sum(axis=1)[:, None]) + np.sum(u.mean(axis=1) ** 2),
        lambda x, u: jnp.mean(jnp.sum(x**2, axis=1)) + jnp.sum(jnp.mean(x, axis=0, keepdims=True) * x)
        + jnp.sum(x * jnp.sum(jnp.exp(x), axis=-1, keepdims=True)) + jnp.sum(jnp.mean(u, axis=1) ** 2)),
    Row("softmax-cross-entropy", "mean(-sum(t * log(softmax(z)), axis=-1))",
        lambda r: {"t": r.dirichlet(np.ones(5), size=4), "z": 3 * r.normal(size=(4, 5))},
        lambda t, z: np.mean(-np.sum(t * np.log(np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)), axis=-1)),
        lambda t, z: jnp.mean(-jnp.sum(t * jnp.log(jax.nn.softmax(z, axis=-1)), axis=-1))),
    Row("logsumexp", "mean(logsumexp(z, axis=-1)) - logsumexp(z) + sum(logsumexp(z, axis=0, keepdims=true) * z)",
        lambda r: {"z": 4 * r.normal(size=(3, 5))},
        lambda z: np.mean(np.log(np.exp(z).sum(axis=1))) - np.log(np.exp(z).sum())
        + np.sum(np.log(np.exp(z).sum(axis=0))[None, :] * z),
        lambda z: jnp.mean(jax.scipy.special.logsumexp(z, axis=-1)) - jax.scipy.special.logsumexp(z)
        + jnp.sum(jax.scipy.special.logsumexp(z, axis=0, keepdims=True) * z)),
    Row("where-guards", "sum(where(x > 0, sqrt(x), 0)) + mean(where(x < -0.5, x^2, -x)) + sum(where(x > 0, log(x), x))",
        lambda r: {"x": np.array([-1.7, -0.9, -0.3, -0.1, 0.2, 0.6, 1.4, 2.5])},
        lambda x: np.sum(np.sqrt(np.clip(x, 0, None)))
        + np.mean(np.where(x < -0.5, x**2, -x)) + np.sum(np.log(np.where(x > 0, x, 1.0))) + np.sum(x[x <= 0]),
        lambda x: jnp.sum(jnp.where(x > 0, jnp.sqrt(jnp.where(x > 0, x, 1.0)), 0.0))
        + jnp.mean(jnp.where(x < -0.5, x**2, -x)) + jnp.sum(jnp.where(x > 0, jnp.log(jnp.where(x > 0, x, 1.0)), x))),
    Row("where-of-numbers", "sum(sigmoid(where(x > 0, 2, -1)) * x) + mean(softplus(where(x < 0, 1, 3) * x))",
        lambda r: {"x": _away(r, 8, 0.1, 2.0)},  # where of two integers is a float, also in JAX
        lambda x: np.sum(x / (1 + np.exp(-np.where(x > 0, 2.0, -1.0)))) + np.mean(np.logaddexp(0, np.where(x < 0, 1.0, 3.0) * x)),
        lambda x: jnp.sum(jax.nn.sigmoid(jnp.where(x > 0, 2.0, -1.0)) * x)
        + jnp.mean(jax.nn.softplus(jnp.where(x < 0, 1.0, 3.0) * x))),
    Row("linear-regression", "mean((X @ w - y)^2) + 0.1*sum(w^2)",
        lambda r: {"X": r.normal(size=(6, 3)), "w": r.normal(size=3), "y": r.normal(size=6)},
        lambda X, w, y: np.mean((np.einsum("ij,j->i", X, w) - y) ** 2) + 0.1 * np.dot(w, w),
        lambda X, w, y: jnp.mean((jnp.matmul(X, w) - y) ** 2) + 0.1 * jnp.sum(w**2)),
    Row("matrix-matrix", "sum(tanh(A @ B)) + sum((U @ B)^2) + sum(v @ B)",
        lambda r: {"A": r.normal(size=(3, 4)), "B": r.normal(size=(4, 2)), "U": r.normal(size=(2, 3, 4)),
                   "v": r.normal(size=4)},
        lambda A, B, U, v: np.sum(np.tanh(np.einsum("ik,kj->ij", A, B)))
        + np.sum(np.einsum("bik,kj->bij", U, B) ** 2) + np.sum(np.einsum("k,kj->j", v, B)),
        lambda A, B, U, v: jnp.sum(jnp.tanh(A @ B)) + jnp.sum((U @ B) ** 2) + jnp.sum(v @ B)),
    Row("softmax-regression", "mean(logsumexp(X @ W + b, axis=-1) - take(X @ W + b, labels, axis=-1))",
        lambda r: {"X": r.normal(size=(5, 3)), "W": r.normal(size=(3, 4)), "b": r.normal(size=4),
                   "labels": np.array([0, 3, 1, 1, 2])},
        lambda X, W, b, labels: np.mean(-np_pick(np_log_softmax(X @ W + b[None, :]), labels)),
        lambda X, W, b, labels: jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(X @ W + b, labels))),
    Row("take-labels", "mean(-take(log_softmax(z), labels, axis=-1)) + 0.1*sum(take(z, rows, axis=0)^2)",
        lambda r: {"z": r.normal(size=(5, 4)), "labels": np.array([0, 3, 1, 1, 2]), "rows": np.array([4, 0, 0, 2])},
        lambda z, labels, rows: -np.mean(np_pick(np_log_softmax(z), labels)) + 0.1 * np.sum(z[rows, np.arange(4)] ** 2),
        lambda z, labels, rows: -jnp.mean(jnp_pick(jax.nn.log_softmax(z), labels))
        + 0.1 * jnp.sum(jnp.take_along_axis(z, rows[None, :], axis=0) ** 2)),
    Row("one-hot-labels", "mean(-sum(one_hot(labels, 4) * log_softmax(z), axis=-1)) + sum(one_hot(seg, 3) * u^2)",
        lambda r: {"labels": np.array([2, 0, 3, 3, 1]), "z": r.normal(size=(5, 4)),
                   "seg": np.array([[0, 2, 1], [1, 1, 0]]), "u": r.normal(size=(2, 3, 3))},
        lambda labels, z, seg, u: -np.mean(np.sum(np.eye(4)[labels] * np_log_softmax(z), axis=-1))
        + np.sum(np.eye(3)[seg] * u**2),
        lambda labels, z, seg, u: jnp.mean(optax.losses.softmax_cross_entropy(z, jax.nn.one_hot(labels, 4)))
        + jnp.sum(jax.nn.one_hot(seg, 3) * u**2)),
    Row("loss-parameter", "huber(y_true, y_pred, delta=d)", _huber_param_inputs,
        lambda y_true, y_pred, d: np.mean(np_huber(y_pred - y_true, d)),
        lambda y_true, y_pred, d: jnp.mean(jnp_huber(y_pred - y_true, d))),
    Row("broadcast-rows", "mean((x - b)^2 * s) + sum(x * b) + sum(softmax(x + b) * x)",
        lambda r: {"x": r.normal(size=(4, 3)), "b": r.normal(size=3), "s": r.uniform(1, 2, size=(4, 1))},
        lambda x, b, s: np.mean((x - b[None, :]) ** 2 * s) + np.sum(x * b[None, :])
        + np.sum(np.exp(np_log_softmax(x + b[None, :])) * x),
        lambda x, b, s: jnp.mean((x - b) ** 2 * s) + jnp.sum(x * b) + jnp.sum(jax.nn.softmax(x + b) * x)),
    Row("size-one-axes", "2*mean(x) + 0.5*sum(c)",  # constant gradients into (N, 1) and (1,) inputs
        lambda r: {"x": r.normal(size=(3, 1)), "c": r.normal(size=1)},
        lambda x, c: 2 * np.sum(x) / 3 + 0.5 * c[0],
        lambda x, c: 2 * jnp.mean(x) + 0.5 * jnp.sum(c)),
    Row("bias-and-penalty", "mean((X @ w + b - y)^2) + l2(b, 0.1) + l2(w, 0.01)",  # b: a scalar, 0-d
        lambda r: {"X": r.normal(size=(6, 3)), "w": r.normal(size=3), "b": np.array(0.7), "y": r.normal(size=6)},
        lambda X, w, b, y: np.mean((X @ w + b - y) ** 2) + 0.1 * b**2 + 0.01 * np.dot(w, w),
        lambda X, w, b, y: jnp.mean(optax.losses.squared_error(X @ w + b, y)) + 0.1 * b**2 + 0.01 * jnp.sum(w**2)),
    Row("max-min-reductions", "sum(max(z, axis=-1)) - min(z) + max(z) + sum(min(z, axis=0, keepdims=true) * z)",
        lambda r: {"z": r.permutation(15).reshape(3, 5) * 0.3 + 0.01 * r.normal(size=(3, 5))},
        lambda z: z.max(axis=1).sum() - z.min() + z.max() + np.sum(z.min(axis=0)[None, :] * z),
        lambda z: jnp.sum(jnp.max(z, axis=-1)) - jnp.min(z) + jnp.max(z)
        + jnp.sum(jnp.min(z, axis=0, keepdims=True) * z)),
    Row("norm", "mean(norm(a - b, axis=-1)) + norm(a) + sum(norm(b, axis=0, keepdims=true) * a)",
        lambda r: {"a": r.normal(size=(4, 3)), "b": r.normal(size=(4, 3))},
        lambda a, b: np.mean(np.linalg.norm(a - b, axis=1)) + np.sqrt(np.sum(a * a))
        + np.sum(np.linalg.norm(b, axis=0)[None, :] * a),
        lambda a, b: jnp.mean(jnp.linalg.norm(a - b, axis=-1)) + jnp.linalg.norm(a)
        + jnp.sum(jnp.linalg.norm(b, axis=0, keepdims=True) * a)),
    Row("clip", "sum(clip(p, -0.5, 0.5)^2) + sum(clip(q, -1, 1) * p)", _clip_inputs,
        lambda p, q: np.sum(np.clip(p, -0.5, 0.5) ** 2) + np.sum(np.clip(q, -1, 1) * p),
        lambda p, q: jnp.sum(jnp.clip(p, -0.5, 0.5) ** 2) + jnp.sum(jnp.clip(q, -1, 1) * p)),
    Row("hinge", "mean(maximum(0, 1 - y*p))", _hinge_inputs,
        lambda y, p: np.mean(np.where(1 - y * p > 0, 1 - y * p, 0.0)),
        lambda y, p: jnp.mean(jax.nn.relu(1 - y * p))),
    Row("conditions", "mean(where((x > 0) and not (x > 1) or x < -1, x^2, 0.5*x)) + sum(x if 1 < 2 else 0)"
        " + (sum(x^3) if \"a\" == \"b\" else 0)", lambda r: _conditions_inputs(r),
        lambda x: np.mean(np.where(((x > 0) & (x <= 1)) | (x < -1), x**2, 0.5 * x)) + np.sum(x),
        lambda x: jnp.mean(jnp.where(jnp.logical_or(jnp.logical_and(x > 0, x <= 1), x < -1), x**2, 0.5 * x))
        + jnp.sum(x)),
    Row("user-program", USER_PROGRAM,
        lambda r: {"y": (r.uniform(size=6) > 0.5) * 1.0, "z": 2 * r.normal(size=6)},
        lambda y, z: np.mean(0.25 * np_focal(y, z, 2.0) + 0.75 * np_focal(y, z, 0.0)) + 0.01 * np.sqrt(np.sum(z**2)),
        lambda y, z: jnp.mean(0.25 * jnp_focal(y, z, 2.0) + 0.75 * jnp_focal(y, z, 0.0)) + 0.01 * jnp.linalg.norm(z)),
    Row("multi-task", "mse(y1, p1) + 0.5*mean(-sum(t * log_softmax(z), axis=-1))",
        lambda r: {"y1": r.normal(size=4), "p1": r.normal(size=4), "t": r.dirichlet(np.ones(3), size=4),
                   "z": r.normal(size=(4, 3))},
        lambda y1, p1, t, z: np.mean((p1 - y1) ** 2) + 0.5 * np.mean(-np.sum(t * np_log_softmax(z), axis=-1)),
        lambda y1, p1, t, z: jnp.mean(optax.losses.squared_error(p1, y1))
        + 0.5 * jnp.mean(optax.losses.softmax_cross_entropy(z, t))),
    Row("logistic", "mean(softplus(z) - y*z) + mean(-(y*log(sigmoid(z)) + (1 - y)*log(1 - sigmoid(z))))",
        lambda r: {"z": 2 * r.normal(size=7), "y": r.uniform(size=7)},
        lambda z, y: 2 * np.mean(np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0) - y * z),
        lambda z, y: 2 * jnp.mean(optax.losses.sigmoid_binary_cross_entropy(z, y))),
]

ROW_IDS = [row.id for row in ROWS]
GROUPED = [pytest.param(row, id=row.id, marks=pytest.mark.xdist_group(f"expressions/{row.id}")) for row in ROWS]
FD_PARAMS = [pytest.param(row, b, id=f"{row.id}-{b}", marks=pytest.mark.xdist_group(f"expressions/{row.id}"))
             for row in ROWS for b in one_of(f"{row.id}/fd", BACKENDS)]


def test_the_table_has_enough_rows():
    assert len(ROWS) >= 16 and len(set(ROW_IDS)) == len(ROWS)


# --- helpers ----------------------------------------------------------------------------------

def _inputs(row):
    return row.sample(np.random.default_rng(sum(map(ord, row.id))))


def _as_jnp(inputs):
    return {k: jnp.asarray(v) for k, v in inputs.items()}


@functools.cache
def _reference_grads(row_id):
    """jax.grad of the row's jax.numpy reference at the row's inputs, per float input (computed once)."""
    row = ROWS[ROW_IDS.index(row_id)]
    inputs = _inputs(row)
    return jax_grads(row.jnp_ref, inputs, float_names(inputs))


# --- (a) value, (b) gradient vs jax.grad of the reference, (c) finite differences --------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", GROUPED)
def test_value_against_numpy_reference(row, backend):
    inputs = _inputs(row)
    loss = lossdsl.compile(row.source, backend=backend)
    value = loss(**inputs)
    assert np.shape(value) == ()
    np.testing.assert_allclose(float(value), float(row.np_ref(**inputs)), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", GROUPED)
def test_gradient_against_jax_grad_of_reference(row, backend):
    inputs = _inputs(row)
    assert_gradients(lossdsl.compile(row.source, backend=backend), inputs, _reference_grads(row.id), rtol=1e-6)


def test_finite_differences_visit_every_backend():
    assert {p.values[1] for p in FD_PARAMS} == set(BACKENDS)


@pytest.mark.parametrize("row, backend", FD_PARAMS)
def test_gradient_against_finite_differences(row, backend):
    assert_finite_differences(lossdsl.compile(row.source, backend=backend), _inputs(row))


# --- (d) the backends agree; (e) JAX transformations through the compiled loss -------------------

@pytest.mark.parametrize("row", GROUPED)
def test_backends_agree(row):
    inputs = _inputs(row)
    names = float_names(inputs)
    np_value, np_grads = lossdsl.compile(row.source).value_and_grad(names)(**inputs)
    jax_value, jax_grads = lossdsl.compile(row.source, backend="jax").value_and_grad(names)(**inputs)
    np.testing.assert_allclose(float(jax_value), float(np_value), rtol=1e-10, atol=1e-13)
    for name in names:
        np.testing.assert_allclose(np.asarray(jax_grads[name]), np_grads[name], rtol=1e-10, atol=1e-13,
                                   err_msg=name)


@pytest.mark.parametrize("row", GROUPED)
def test_jax_grad_through_the_compiled_loss(row):
    inputs = _inputs(row)
    names = float_names(inputs)
    loss = lossdsl.compile(row.source, backend="jax")
    symbolic = loss.grad(names)(**inputs)

    def f(*values):
        return loss(**{**inputs, **dict(zip(names, values))})

    through = jax.grad(f, argnums=tuple(range(len(names))))(*(jnp.asarray(inputs[n]) for n in names))
    for name, g in zip(names, through):
        assert not np.any(np.isnan(np.asarray(g))), name
        np.testing.assert_allclose(np.asarray(g), np.asarray(symbolic[name]), rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("row", GROUPED)
def test_jax_jit_and_vmap(row):
    inputs = _inputs(row)
    names = float_names(inputs)
    loss = lossdsl.compile(row.source, backend="jax")
    jitted = jax.jit(lambda kw: loss(**kw))(_as_jnp(inputs))
    np.testing.assert_allclose(float(jitted), float(row.np_ref(**inputs)), rtol=1e-10)

    # a batch of the first float input, under jit(vmap(value_and_grad)) through the compiled loss
    first = names[0]
    x = np.asarray(inputs[first])
    batch = np.stack([x, 0.9 * x, 0.8 * x])  # scaling keeps each input in its domain
    values, grads = jax.jit(jax.vmap(jax.value_and_grad(lambda v: loss(**{**inputs, first: v}))))(jnp.asarray(batch))
    assert values.shape == (3,) and grads.shape == batch.shape
    want = [float(row.np_ref(**{**inputs, first: v})) for v in batch]
    np.testing.assert_allclose(np.asarray(values), want, rtol=1e-10, atol=1e-13)
    step = loss.grad(names)
    for v, g in zip(batch, grads):
        np.testing.assert_allclose(np.asarray(g), np.asarray(step(**{**inputs, first: v})[first]),
                                   rtol=1e-10, atol=1e-13)


# --- dtypes ------------------------------------------------------------------------------------

CARD = "0.5*huber(delta=1) + l1(w, 0.1)"


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_inputs_give_float32_value_and_gradients(backend):
    loss = lossdsl.compile(CARD, backend=backend)
    f32 = {"y_true": np.array([0.0, 1.0, -1.0, 2.0], np.float32), "y_pred": np.linspace(-2, 2, 4, dtype=np.float32),
           "w": np.array([0.5, -1.5, 2.0], np.float32)}
    value = loss(**f32)
    assert np.asarray(value).dtype == np.float32 and np.shape(value) == ()
    value, grads = loss.value_and_grad(["y_true", "y_pred", "w"])(**f32)
    assert np.asarray(value).dtype == np.float32
    for name, g in grads.items():
        assert np.asarray(g).dtype == np.float32, name
        assert np.shape(g) == f32[name].shape, name
    r = f32["y_pred"].astype(np.float64) - f32["y_true"]
    want = 0.5 * np.mean(np_huber(r, 1.0)) + 0.1 * np.sum(np.abs(f32["w"].astype(np.float64)))
    np.testing.assert_allclose(float(value), want, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grads["w"]), 0.1 * np.sign(f32["w"]), rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_targets_keep_float32_predictions_float32(backend):
    loss = lossdsl.compile(CARD, backend=backend)
    inputs = {"y_true": np.array([0, 1, 2, 3]), "y_pred": np.array([0.5, 1.0, 4.0, 2.5], np.float32),
              "w": np.array([1.0, -2.0], np.float32)}
    value, g = loss.value_and_grad("y_pred")(**inputs)
    assert np.asarray(value).dtype == np.float32
    assert np.asarray(g).dtype == np.float32 and np.shape(g) == (4,)
    r = np.array([0.5, 0.0, 2.0, -0.5])
    np.testing.assert_allclose(float(value), 0.5 * np.mean(np_huber(r, 1.0)) + 0.3, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(g), 0.5 * np.clip(r, -1, 1) / 4, rtol=1e-6)


# --- formulas and inputs ------------------------------------------------------------------------

def test_gradient_formula_of_mse():
    y_pred, y_true, n = sp.symbols("y_pred y_true n")
    got = lossdsl.compile("mean((y_pred - y_true)^2)").gradient_formula("y_pred")
    assert sp.simplify(got - 2 * (y_pred - y_true) / n) == 0


def test_gradient_formula_of_binary_cross_entropy():
    y_pred, y_true, n = sp.symbols("y_pred y_true n")
    got = lossdsl.compile("mean(-(y_true*log(y_pred) + (1 - y_true)*log(1 - y_pred)))").gradient_formula("y_pred")
    assert sp.simplify(got - (y_pred - y_true) / (n * y_pred * (1 - y_pred))) == 0


def test_inputs_of_the_card_example_in_order_of_first_appearance():
    for backend in BACKENDS:
        assert lossdsl.compile(CARD, backend=backend).inputs == ("y_true", "y_pred", "w")


# --- where with a NaN/inf in the untaken branch; abs'(0) -------------------------------------------

GUARDED = [
    # (source, NumPy value, NumPy gradient), at X below
    ("sum(where(x > 0, log(x), 0))",
     lambda x: np.sum(np.log(x[x > 0])), lambda x: np.where(x > 0, 1 / np.where(x > 0, x, 1), 0)),
    ("sum(where(x > 0, sqrt(x), 0))",
     lambda x: np.sum(np.sqrt(x[x > 0])), lambda x: np.where(x > 0, 0.5 / np.sqrt(np.where(x > 0, x, 1)), 0)),
    ("sum(where(x != 0, 1/x, 0))",
     lambda x: np.sum(1 / x[x != 0]), lambda x: np.where(x != 0, -1 / np.where(x != 0, x, 1) ** 2, 0)),
    ("mean(where(x >= 0, x, log(-x)))",  # log of 0 and of negatives in the untaken branch
     lambda x: (np.sum(x[x >= 0]) + np.sum(np.log(-x[x < 0]))) / x.size,
     lambda x: np.where(x >= 0, 1.0, 1 / np.where(x < 0, x, 1)) / x.size),
]

X_GUARDED = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", range(len(GUARDED)))
def test_untaken_where_branch_leaks_no_nan(case, backend):
    source, value_ref, grad_ref = GUARDED[case]
    x = X_GUARDED
    loss = lossdsl.compile(source, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss(x=x)
        g_value, grad = loss.value_and_grad("x")(x=x)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
    with np.errstate(all="ignore"):
        want_value, want_grad = value_ref(x), grad_ref(x)
    np.testing.assert_allclose(float(value), want_value, rtol=1e-12)
    np.testing.assert_allclose(float(g_value), want_value, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad), want_grad, rtol=1e-12)
    if backend == "jax":
        through = np.asarray(jax.grad(lambda v: loss(x=v))(jnp.asarray(x)))
        assert not np.any(np.isnan(through))
        np.testing.assert_allclose(through, want_grad, rtol=1e-12)


def test_the_where_example_with_negatives_and_zeros_in_numpy_emits_no_warning():
    loss = lossdsl.compile("sum(where(x > 0, log(x), 0))")
    x = np.array([-2.0, -0.0, 0.0, 1.5, 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = loss.value_and_grad("x")(x=x)
    np.testing.assert_allclose(float(value), np.log(1.5) + np.log(3.0), rtol=1e-12)
    np.testing.assert_allclose(grad, [0, 0, 0, 1 / 1.5, 1 / 3.0], rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_abs_has_zero_gradient_at_zero(backend):
    loss = lossdsl.compile("sum(abs(x))", backend=backend)
    x = np.array([0.0, -0.0, 0.0, 2.0, -3.0])
    np.testing.assert_array_equal(np.asarray(loss.grad("x")(x=x)), [0.0, 0.0, 0.0, 1.0, -1.0])
    if backend == "jax":
        through = jax.grad(lambda v: loss(x=v))(jnp.asarray(x))
        np.testing.assert_array_equal(np.asarray(through), [0.0, 0.0, 0.0, 1.0, -1.0])


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
