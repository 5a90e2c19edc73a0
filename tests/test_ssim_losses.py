"""ssim (stdlib/images.loss): value and gradients against jax.value_and_grad of the shifted-sums reference
(tests/stdlib_rows/ssim.py) on NumPy, JAX (eager and under a caller's jax.jit) and torch, in float32 and
float64 (a covering of run x dtype per case: tests/sampling.py); its filter against scipy.ndimage; kornia.losses.ssim_loss in value and gradient; constant
images; the window's checks."""

import functools
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
from oracles import (
    RUNS,
    assert_value_and_grads_match_jax,
)
from sampling import sampled
from stdlib_rows.ssim import gaussian_filter, gaussian_window, images, ssim_map

import lossdsl
from lossdsl.errors import LossTypeError, ParameterError

jax.config.update("jax_enable_x64", True)

HAS_KORNIA = importlib.util.find_spec("kornia") is not None


def _flat(level_true, level_pred, shape=(1, 2, 9, 8)):
    return {"y_true": np.full(shape, level_true), "y_pred": np.full(shape, level_pred)}


CASES = [
    ("noisy", "ssim(y_true, y_pred)", images(shape=(2, 2, 10, 9))(np.random.default_rng(1)), {}),
    ("window-5-sigma-range", "ssim(y_true, y_pred, window=5, sigma=s, data_range=r)",
     {**images(shape=(3, 7, 6), noise=0.3, scale=255.0)(np.random.default_rng(2)),
      "s": np.array(0.8), "r": np.array(255.0)}, {"window": 5}),
    ("constant-equal", "ssim(y_true, y_pred)", _flat(0.4, 0.4), {}),
    ("constant-different", "ssim(y_true, y_pred)", _flat(0.2, 0.9), {}),
]


@functools.cache  # one function per window: oracles remember its results by it
def _reference(window=11):
    def ref(y_true, y_pred, s=1.5, r=1.0):
        return jnp.mean(ssim_map(jnp, y_true, y_pred, window=window, sigma=s, data_range=r))
    return ref


@pytest.mark.parametrize("row, run, dtype", sampled(CASES, [c[0] for c in CASES], [RUNS, [np.float32, np.float64]],
                                                     "ssim"))
def test_value_and_gradients_match_jax(row, run, dtype):
    case, source, inputs, opts = row
    tol = None
    if dtype == np.float32 and case.startswith("constant"):
        tol = 1e-4  # mu^2 + ... - mu^2 of flat images: float32 cancellation in the variances, scaled by 1/c2
    assert_value_and_grads_match_jax(source, inputs, run, dtype, _reference(**opts), tol=tol)


def test_the_filter_is_scipy_gaussian_with_mirror_borders():
    """The reference's filter is scipy.ndimage's correlate1d along each axis with 'mirror' borders
    (NumPy's and torch's 'reflect'), and gaussian_filter's own window at radius 5."""
    x = np.random.default_rng(3).normal(size=(2, 13, 11))
    k = gaussian_window(np, 11, 1.5)
    want = ndi.correlate1d(ndi.correlate1d(x, k, axis=-1, mode="mirror"), k, axis=-2, mode="mirror")
    np.testing.assert_allclose(gaussian_filter(np, x, 11, 1.5), want, rtol=1e-13, atol=1e-15)
    scipy_own = ndi.gaussian_filter(x, 1.5, mode="mirror", radius=5, axes=(-2, -1))
    np.testing.assert_allclose(want, scipy_own, rtol=1e-13, atol=1e-15)


def test_constant_images_give_zero_where_equal_and_a_zero_gradient():
    loss = lossdsl.compile("ssim(y_true, y_pred)")
    value, grads = loss.value_and_grad(["y_true", "y_pred"])(**_flat(0.4, 0.4))
    assert 0 <= value < 1e-7  # 1e-12 / ((2 mu^2 + c1) c2) / 2
    # not exactly 0: the 1e-12 in the denominator leaves S just below 1
    assert np.all(np.abs(grads["y_pred"]) < 1e-9) and np.all(np.abs(grads["y_true"]) < 1e-9)
    assert loss(**_flat(0.0, 1.0)) > 0.49  # black against white: S = c1 / (1 + c1)


@pytest.mark.skipif(not HAS_KORNIA, reason="kornia is a test-only dependency (dev extra)")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", ["noisy", "constant-equal", "constant-different"])
def test_kornia_ssim_loss(case, dtype):
    import kornia
    import torch

    inputs = next(c[2] for c in CASES if c[0] == case)
    a, b = (torch.tensor(inputs[k].astype(dtype), requires_grad=True) for k in ("y_true", "y_pred"))
    want = kornia.losses.ssim_loss(a, b, 11, max_val=1.0)
    want_grads = torch.autograd.grad(want, (a, b))
    value, grads = lossdsl.compile("ssim(y_true, y_pred)", backend="torch").value_and_grad(
        ["y_true", "y_pred"])(y_true=a.detach(), y_pred=b.detach())
    tol = 2e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(float(value), float(want), rtol=tol, atol=tol)
    for got, w in zip((grads["y_true"], grads["y_pred"]), want_grads):
        np.testing.assert_allclose(got.numpy(), w.numpy(), rtol=tol, atol=tol)
    # NumPy, whose window is built in float64, to float64's precision where kornia runs in float64
    if dtype == np.float64:
        np.testing.assert_allclose(lossdsl.compile("ssim(y_true, y_pred)")(**inputs), float(want), rtol=1e-12)


def test_reduction_none_is_the_map_and_weights_are_per_image():
    inputs = images(shape=(3, 2, 8, 8))(np.random.default_rng(4))
    got = lossdsl.compile('ssim(y_true, y_pred, reduction="none")')(**inputs)
    want = ssim_map(np, **inputs)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    w = np.array([1.0, 0.0, 3.0])
    weighted = lossdsl.compile("ssim(y_true, y_pred, weights=w)")(**inputs, w=w)
    np.testing.assert_allclose(weighted, (want[0].mean() + 3 * want[2].mean()) / 4, rtol=1e-12)


def test_window_is_an_odd_constant_integer():
    """A fraction or a window below 1 is refused naming it; an even one has no centre pixel."""
    for bad in ("0.5", "0"):
        with pytest.raises(ParameterError, match="'window'"):
            lossdsl.compile(f"ssim(y_true, y_pred, window={bad})")
    with pytest.raises(LossTypeError, match="pad"):
        lossdsl.compile("ssim(y_true, y_pred, window=4)")


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_images_smaller_than_the_half_window_reflect_as_numpy_pad(backend):
    """kornia (torch's reflect) refuses a 4 x 4 image under a window of 11; numpy.pad reflects again."""
    inputs = images(shape=(1, 4, 4))(np.random.default_rng(6))
    got = lossdsl.compile("ssim(y_true, y_pred)", backend=backend)(**inputs)
    np.testing.assert_allclose(got, np.mean(ssim_map(np, **inputs)), rtol=1e-12)
