"""Removable singularities of a loss's parameters (issue 14, item 5): values and gradients at and around them.

Barron's general loss |a-2|/a*(((r/c)^2/|a-2| + 1)^(a/2) - 1) is 0/0 at a = 0 (the Cauchy limit
log(r^2/2c^2 + 1)); the gradient with respect to a learned a was 0 there and off by 50 at a = 1e-9.
Table: the shape a at {0, +-1e-9, +-1e-6, +-1e-3} and on both sides of 2, float32 and float64, every
backend, against mpmath (50 digits) of the published formula and its derivatives, with respect to
alpha, y_pred and scale.
"""

import jax
import mpmath as mp
import numpy as np
import pytest

import lossdsl

jax.config.update("jax_enable_x64", True)
mp.mp.dps = 50

BACKENDS = ["numpy", "jax", "torch"]
NEAR_ZERO = [0.0, 1e-9, -1e-9, 1e-6, -1e-6, 1e-3, -1e-3]
NEAR_TWO = [2 + 1e-3, 2 - 1e-3, 2 + 1e-6, 2 - 1e-6]
R, SCALE = np.array([1.3, -0.2, 25.0]), 0.7


def _barron(a, r, c):
    z = (r / c) ** 2
    if a == 0:
        return mp.log1p(z / 2)
    b = abs(a - 2)
    return b / a * ((z / b + 1) ** (a / 2) - 1)


def _reference(a, r, c):
    """Value and d/d(alpha, r, scale) in 50 digits; at a = 0 the derivative in a by differences
    about a point 1e-30 away (the loss is analytic there)."""
    a, c = mp.mpf(float(a)), mp.mpf(float(c))
    out = []
    for v in r:
        v = mp.mpf(float(v))
        da = mp.diff(lambda t, v=v: _barron(t, v, c), a if a != 0 else mp.mpf("1e-30"))
        out.append((_barron(a, v, c), da, mp.diff(lambda t: _barron(a, t, c), v), mp.diff(lambda t, v=v: _barron(a, v, t), c)))
    return [np.array([float(o[k]) for o in out]) for k in range(4)]


# 2 +- 1e-6 rounds to 2 in float32 (the limit itself, covered by test_stdlib): float64 only there
@pytest.mark.parametrize("alpha, dtype", [
    pytest.param(a, d, id=f"{a}-{d.__name__}") for a in NEAR_ZERO + NEAR_TWO
    for d in (np.float64, np.float32) if not (d is np.float32 and abs(a - 2) < 1e-5)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_barron_at_and_around_its_removable_points(alpha, backend, dtype):
    a, r, c = dtype(alpha), R.astype(dtype), dtype(SCALE)
    loss = lossdsl.compile('barron(y_true, y_pred, alpha, scale, reduction="none")', backend=backend)
    total = lossdsl.compile('barron(y_true, y_pred, alpha, scale, reduction="sum")', backend=backend)
    y_true = np.zeros_like(r)
    value = np.asarray(loss(y_true=y_true, y_pred=r, alpha=np.asarray(a), scale=np.asarray(c)), dtype=np.float64)
    grads = total.grad(["alpha", "y_pred", "scale"])(y_true=y_true, y_pred=r, alpha=np.asarray(a), scale=np.asarray(c))
    want_value, want_alpha, want_r, want_scale = _reference(a, r, c)
    ulp = np.finfo(dtype).eps
    # near 2 the singularity in alpha is not removable: d/dalpha grows like log(1/|alpha - 2|) out of
    # terms that cancel, and keeps about 5 digits fewer than the dtype (a known limit, not ulp-accurate)
    alpha_tol = 64 * ulp if abs(alpha - 2) > 0.01 else 1e5 * ulp
    np.testing.assert_allclose(value, want_value, rtol=64 * ulp)
    np.testing.assert_allclose(float(np.asarray(grads["alpha"])), want_alpha.sum(), rtol=alpha_tol)
    np.testing.assert_allclose(np.asarray(grads["y_pred"], dtype=np.float64), want_r, rtol=64 * ulp)
    np.testing.assert_allclose(float(np.asarray(grads["scale"])), want_scale.sum(), rtol=64 * ulp)
