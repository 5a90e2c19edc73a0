"""One row per user-callable builtin; from each row: value against NumPy, gradient against finite
differences and jax.grad of a jax.numpy reference, both backends, and finiteness at extreme inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lossdsl
from lossdsl.builtins import BUILTINS

jax.config.update("jax_enable_x64", True)


def real(rng):
    return rng.normal(size=6) * 2


def positive(rng):
    return rng.uniform(0.2, 3.0, size=6)


def matrix(rng):
    return rng.normal(size=(3, 4))


LABELS = np.array([2, 0, 3])


def frames(rng):
    return rng.normal(size=(5, 3, 4)) * 2  # (T, B, C) scores for ctc_nll


def ctc_one_label(xp, x, blank=1):
    """CTC of the one-label targets LABELS by enumerating the alignments: blank* label+ blank*."""
    lb = x[:, :, blank]
    lk = xp.take_along_axis(x, np.broadcast_to(LABELS[None, :, None], (x.shape[0], len(LABELS), 1)), axis=2)[..., 0]
    paths = xp.stack([xp.sum(lb[:i], 0) + xp.sum(lk[i:j], 0) + xp.sum(lb[j:], 0)
                      for i in range(x.shape[0]) for j in range(i + 1, x.shape[0] + 1)])
    m = xp.max(paths, axis=0)
    return -xp.sum(m + xp.log(xp.sum(xp.exp(paths - m), axis=0)))


# name: (lossdsl expression over x, sampler, reference(xp, x), extreme inputs or None)
ROWS = {
    "exp": ("sum(exp(x))", real, lambda xp, x: xp.sum(xp.exp(x)), [-700.0, 0.0, 700.0]),
    "log": ("sum(log(x))", positive, lambda xp, x: xp.sum(xp.log(x)), [1e-300, 1.0, 1e300]),
    "log1p": ("sum(log1p(x))", positive, lambda xp, x: xp.sum(xp.log1p(x)), [1e-300, 0.0, 1e300]),
    "expm1": ("sum(expm1(x))", real, lambda xp, x: xp.sum(xp.expm1(x)), [-1e3, 1e-300, 700.0]),
    "sqrt": ("sum(sqrt(x))", positive, lambda xp, x: xp.sum(xp.sqrt(x)), [1e-300, 1.0, 1e300]),
    "abs": ("sum(abs(x))", real, lambda xp, x: xp.sum(xp.abs(x)), [-1e300, 1e300]),
    "sign": ("sum(sign(x) * x)", real, lambda xp, x: xp.sum(xp.sign(x) * x), [-1e300, 1e300]),
    "tanh": ("sum(tanh(x))", real, lambda xp, x: xp.sum(xp.tanh(x)), [-1e3, 0.0, 1e3]),
    "cosh": ("sum(cosh(x))", real, lambda xp, x: xp.sum(xp.cosh(x)), [-700.0, 0.0, 700.0]),
    "sinh": ("sum(sinh(x))", real, lambda xp, x: xp.sum(xp.sinh(x)), [-700.0, 0.0, 700.0]),
    "sigmoid": ("sum(sigmoid(x))", real, lambda xp, x: xp.sum(1 / (1 + xp.exp(-x))), [-1e3, -300.0, 0.0, 300.0, 1e3]),
    "softplus": ("sum(softplus(x))", real, lambda xp, x: xp.sum(xp.logaddexp(0, x)),
                 [-1e3, -400.0, 0.0, 400.0, 1e3]),
    "maximum": ("sum(maximum(x, 0.5))", real, lambda xp, x: xp.sum(xp.maximum(x, 0.5)), [-1e300, 1e300]),
    "minimum": ("sum(minimum(x, 0.5))", real, lambda xp, x: xp.sum(xp.minimum(x, 0.5)), [-1e300, 1e300]),
    "heaviside": ("sum(heaviside(x, 0.5) * x)", real, lambda xp, x: xp.sum(xp.where(x > 0, x, 0.0)), None),
    "where": ("sum(where(x > 0, x^2, -x))", real, lambda xp, x: xp.sum(xp.where(x > 0, x**2, -x)), None),
    "sum": ("sum(sum(x, axis=1)^2)", matrix, lambda xp, x: xp.sum(xp.sum(x, axis=1) ** 2), None),
    "mean": ("mean(mean(x, axis=0)^2) + mean(x)", matrix, lambda xp, x: xp.mean(xp.mean(x, axis=0) ** 2) + xp.mean(x),
             None),
    "max": ("sum(max(x, axis=1)) + sum(max(x, 0.3))", matrix,
            lambda xp, x: xp.sum(xp.max(x, axis=1)) + xp.sum(xp.maximum(x, 0.3)), None),
    "min": ("sum(min(x, axis=0)) + min(x)", matrix, lambda xp, x: xp.sum(xp.min(x, axis=0)) + xp.min(x), None),
    "logsumexp": ("sum(logsumexp(x, axis=-1))", matrix,
                  lambda xp, x: xp.sum(xp.log(xp.sum(xp.exp(x), axis=-1))), [-1e3, 0.0, 1e3]),
    "norm": ("sum(norm(x, axis=1))", matrix, lambda xp, x: xp.sum(xp.sqrt(xp.sum(x**2, axis=1))), None),
    "matmul": ("sum(matmul(x, transpose(x)))", matrix, lambda xp, x: xp.sum(x @ x.T), None),
    "transpose": ("sum(transpose(x) * expand_dims(sum(x, axis=0), 1))", matrix,
                  lambda xp, x: xp.sum(x.T * xp.sum(x, axis=0)[:, None]), None),
    "expand_dims": ("sum((expand_dims(x, 1) - expand_dims(x, 0))^2)", matrix,
                    lambda xp, x: xp.sum((x[:, None, :] - x[None, :, :]) ** 2), None),
    "take": ("sum(take(x, labels) ^ 2)", matrix,
             lambda xp, x: xp.sum(xp.take_along_axis(x, LABELS[:, None], axis=-1) ** 2), None),
    "one_hot": ("sum(one_hot(labels, 4) * x^2)", matrix, lambda xp, x: xp.sum(jax.nn.one_hot(LABELS, 4) * x**2), None),
    "within": ("sum(within(x, 0, 5)^2)", positive, lambda xp, x: xp.sum(x**2), None),
    "per_sample": ("sum(per_sample(sum(x, axis=1), x) * x)", matrix,
                   lambda xp, x: xp.sum(xp.sum(x, axis=1)[:, None] * x), None),
    # one_hot(labels, 4) (sum 3) marks labels as integer labels, which ctc_nll's targets argument does not
    # do through expand_dims (index arguments see only the inputs they name directly)
    "ctc_nll": ("sum(ctc_nll(x, expand_dims(labels, 1), 5, 1, blank=1)) + sum(one_hot(labels, 4))", frames,
                lambda xp, x: ctc_one_label(xp, x) + 3, None),
}


def test_every_builtin_has_a_row():
    assert set(ROWS) == set(BUILTINS)


def _inputs(name, expr):
    x = ROWS[name][1](np.random.default_rng(len(name)))
    return {"x": x, **({"labels": LABELS} if "labels" in expr else {})}


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("name", sorted(ROWS))
def test_value_and_gradient(name, backend):
    expr, _, reference, _ = ROWS[name]
    inputs = _inputs(name, expr)
    loss = lossdsl.compile(expr, backend=backend)
    value, grad = loss.value_and_grad("x")(**inputs)
    np.testing.assert_allclose(float(value), float(reference(np, inputs["x"])), rtol=1e-9)
    want = jax.grad(lambda v: reference(jnp, v))(jnp.asarray(inputs["x"]))
    np.testing.assert_allclose(np.asarray(grad), want, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_gradient_against_finite_differences(name):
    expr = ROWS[name][0]
    inputs = _inputs(name, expr)
    loss = lossdsl.compile(expr)
    grad = loss.grad("x")(**inputs)
    x = inputs["x"]
    fd = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = 1e-6
        fd[i] = (float(loss(**{**inputs, "x": x + e})) - float(loss(**{**inputs, "x": x - e}))) / 2e-6
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("name", sorted(n for n in ROWS if ROWS[n][3] is not None))
def test_finite_at_extreme_inputs(name, backend):
    expr, _, reference, extremes = ROWS[name]
    x = np.array(extremes, dtype=np.float64)
    if expr.startswith("sum(logsumexp"):
        x = np.stack([x, x[::-1]])
    loss = lossdsl.compile(expr, backend=backend)
    value, grad = loss.value_and_grad("x")(x=x)
    want = float(reference(np, x))
    if np.isfinite(want):
        np.testing.assert_allclose(float(value), want, rtol=1e-9)
        assert np.all(np.isfinite(np.asarray(grad)))
