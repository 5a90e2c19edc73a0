"""Issue 22's box, image, correlation and asymmetric losses beyond the stdlib table: kornia itself for
its image losses (it installs beside our torch), every row of tests/stdlib_rows/vision.py on every
backend in float32 and float64 (the table runs NumPy and JAX in float64), the peers' hard cases, and
the deliberate differences from torchvision, timm and scipy."""

import jax
import jax.numpy as jnp
import kornia
import numpy as np
import pytest
import scipy.stats
import torch
from oracles import jax_grads, row_grads
from sampling import covering
from stdlib_rows import vision

import lossdsl

jax.config.update("jax_enable_x64", True)

BACKENDS = ["numpy", "jax", "torch"]
TOLERANCE = {np.float64: dict(rtol=1e-9, atol=1e-11), np.float32: dict(rtol=2e-4, atol=2e-5)}


def _to_numpy(v) -> np.ndarray:
    return v.detach().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def _value_and_grads(source, backend, inputs, wrt, dtype):
    """Our value and gradients of ``source`` on ``backend``, the float inputs cast to ``dtype``."""
    cast = {k: np.asarray(v, dtype=dtype) if np.issubdtype(np.asarray(v).dtype, np.floating) else v
            for k, v in inputs.items()}
    if backend == "torch":
        cast = {k: torch.from_numpy(v) for k, v in cast.items()}
    value, grads = lossdsl.compile(source, backend=backend).value_and_grad(list(wrt))(**cast)
    return _to_numpy(value), {k: _to_numpy(g) for k, g in grads.items()}


def _table_source(case):
    return case.call.format(opts="")


@pytest.mark.parametrize("case, backend, dtype", [
    pytest.param(c, b, d, id=f"{c.id}-{b}-{d.__name__}", marks=pytest.mark.xdist_group(c.id)) for c in vision.CASES
    for b, d in covering(f"{c.id}/vision", [BACKENDS, [np.float32, np.float64]])])
def test_rows_on_every_backend_and_dtype(case, backend, dtype):
    """Each row's mean (or value) and gradient against its reference and jax.grad of it, in float64;
    in float32 against the same float64 numbers, to float32's accuracy."""
    inputs = case.sample()
    value, grads = _value_and_grads(_table_source(case), backend, inputs, case.wrt, dtype)
    reference = (lambda xp, **i: xp.mean(case.reference(xp, **i))) if case.reducible else case.reference
    np.testing.assert_allclose(value, reference(np, **inputs), **TOLERANCE[dtype])
    assert value.dtype == dtype
    want = row_grads(case, inputs)
    for name in case.wrt:
        assert grads[name].dtype == dtype and np.all(np.isfinite(grads[name])), name
        np.testing.assert_allclose(grads[name], want[name], **TOLERANCE[dtype], err_msg=name)


# --- kornia itself ---------------------------------------------------------------------------------

def _kornia_value_and_grads(fn, inputs, wrt, dtype):
    t = {k: torch.tensor(np.asarray(v), dtype=getattr(torch, np.dtype(dtype).name), requires_grad=k in wrt)
         for k, v in inputs.items()}
    value = fn(**t)
    value.sum().backward()
    return value.detach().numpy(), {k: t[k].grad.numpy() for k in wrt}


IMAGES = {"batch": np.random.default_rng(3).uniform(size=(2, 3, 5, 6)),
          "one image": np.random.default_rng(4).normal(size=(7, 4)),
          "constant": np.full((2, 1, 4, 4), 0.25),
          "two constants": np.concatenate([np.full((1, 3, 4, 4), 0.1), np.full((1, 3, 4, 4), 0.9)], axis=2)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("image", list(IMAGES))
def test_total_variation_against_kornia(image, backend, dtype):
    """Per-image values (shape (...)) and the gradient of their sum, as torch.autograd through kornia."""
    x = IMAGES[image]
    want, want_grad = _kornia_value_and_grads(lambda x: kornia.losses.total_variation(x), {"x": x}, ["x"], dtype)
    got = _to_numpy(lossdsl.compile("total_variation(x)", backend=backend)(
        x=torch.from_numpy(x.astype(dtype)) if backend == "torch" else x.astype(dtype)))
    assert got.shape == x.shape[:-2] and got.dtype == dtype
    np.testing.assert_allclose(got, want, **TOLERANCE[dtype])
    _, grads = _value_and_grads("sum(total_variation(x))", backend, {"x": x}, ["x"], dtype)
    np.testing.assert_allclose(grads["x"], want_grad["x"], **TOLERANCE[dtype])


PSNR = {"random": (IMAGES["batch"], np.random.default_rng(5).uniform(size=(2, 3, 5, 6)), 1.0),
        "bytes": (IMAGES["batch"] * 255, np.random.default_rng(6).uniform(size=(2, 3, 5, 6)) * 255, 255.0),
        "constant images": (np.full((1, 3, 4, 4), 0.2), np.full((1, 3, 4, 4), 0.6), 1.0)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(PSNR))
def test_psnr_against_kornia(case, backend, dtype):
    """kornia.losses.psnr_loss(image, target, max_val), with gradients in both images."""
    y_true, y_pred, data_range = PSNR[case]
    inputs = {"y_true": y_true, "y_pred": y_pred}
    want, want_grads = _kornia_value_and_grads(
        lambda y_true, y_pred: kornia.losses.psnr_loss(y_pred, y_true, data_range), inputs, list(inputs), dtype)
    value, grads = _value_and_grads(f"psnr(y_true, y_pred, data_range={data_range})", backend, inputs, list(inputs),
                                    dtype)
    np.testing.assert_allclose(value, want, **TOLERANCE[dtype])
    for name in inputs:
        np.testing.assert_allclose(grads[name], want_grads[name], **TOLERANCE[dtype], err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_psnr_of_identical_images_is_minus_infinity_as_kornia(backend):
    x = IMAGES["batch"]
    want = float(kornia.losses.psnr_loss(torch.from_numpy(x), torch.from_numpy(x), 1.0))
    got = float(_to_numpy(lossdsl.compile("psnr(y_true, y_pred)", backend=backend)(
        **{k: torch.from_numpy(x) if backend == "torch" else x for k in ("y_true", "y_pred")})))
    assert want == got == -np.inf


# --- boxes: torchvision's own edge cases -------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(vision.BOX_REFERENCES))
def test_boxes_touching_and_nested(name, backend):
    """Boxes that share an edge (intersection exactly 0) and a box inside another, value per box against
    torchvision's formula, with finite gradients."""
    t = np.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 1.0, 3.0]])
    p = np.array([[2.0, 0.0, 3.0, 2.0], [0.0, 2.0, 2.0, 5.0], [1.0, 1.0, 2.0, 3.0], [0.0, 0.0, 2.0, 2.0]])
    loss = lossdsl.compile(f'{name}(y_true, y_pred, reduction="none")', backend=backend)
    args = {"y_true": t, "y_pred": p}
    if backend == "torch":
        args = {k: torch.from_numpy(v) for k, v in args.items()}
    np.testing.assert_allclose(_to_numpy(loss(**args)), vision.BOX_REFERENCES[name](np, t, p), rtol=1e-12)
    _, grads = _value_and_grads(f"{name}(y_true, y_pred)", backend, {"y_true": t, "y_pred": p},
                                ["y_true", "y_pred"], np.float64)
    assert all(np.all(np.isfinite(g)) for g in grads.values())


@pytest.mark.parametrize("sample", [vision.boxes, vision.disjoint_boxes, vision.degenerate_boxes])
def test_ciou_gradient_against_finite_differences_with_alpha_held(sample):
    """CIoU's gradient treats alpha as a constant (torchvision's torch.no_grad): central differences of
    the reference with alpha held at its value at the sample."""
    inputs = sample(np.random.default_rng(11))
    t, p = inputs["y_true"], inputs["y_pred"]
    v = 4 / np.pi**2 * (np.arctan2(t[:, 2] - t[:, 0], t[:, 3] - t[:, 1])
                        - np.arctan2(p[:, 2] - p[:, 0], p[:, 3] - p[:, 1])) ** 2
    alpha = v / (vision.iou_loss_reference(np, t, p) + v + 1e-7)
    grads = lossdsl.compile("ciou(y_true, y_pred)").grad(["y_pred"])(**inputs)
    h, fd = 1e-6, np.zeros_like(p)
    for i in np.ndindex(p.shape):
        e = np.zeros_like(p)
        e[i] = h
        up, down = (np.mean(vision.ciou_reference(np, t, p + s * e, alpha=alpha)) for s in (1, -1))
        fd[i] = (up - down) / (2 * h)
    np.testing.assert_allclose(grads["y_pred"], fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ciou_of_a_point_box_is_finite_where_torchvision_is_nan(backend):
    """The deliberate difference: torchvision's arctan(w/h) is arctan(0/0), NaN, for a box of zero width
    and height; ours takes its angle as 0, so the value is diou's plus alpha*v with v = (4/pi^2)*
    arctan(w/h)^2 of the other box, and the gradient is finite."""
    t = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    p = np.array([[0.0, 0.5, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    with np.errstate(invalid="ignore"):
        assert np.all(np.isnan(vision.ciou_reference(np, t, p)))
    v = 4 / np.pi**2 * np.arctan2(p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]) ** 2
    iou_loss = vision.iou_loss_reference(np, t, p)
    want = vision.diou_reference(np, t, p) + v / (iou_loss + v + 1e-7) * v
    value, grads = _value_and_grads('ciou(y_true, y_pred, reduction="sum")', backend, {"y_true": t, "y_pred": p},
                                    ["y_true", "y_pred"], np.float64)
    np.testing.assert_allclose(value, want.sum(), rtol=1e-12)
    assert all(np.all(np.isfinite(g)) for g in grads.values())


# --- correlation: scipy ------------------------------------------------------------------------------

def test_pearson_against_scipy():
    rng = np.random.default_rng(7)
    y = rng.normal(size=20)
    p = 0.5 * y + rng.normal(size=20)
    got = float(lossdsl.compile("pearson(y_true, y_pred)")(y_true=y, y_pred=p))
    np.testing.assert_allclose(got, 1 - scipy.stats.pearsonr(y, p).statistic, rtol=1e-12)


def test_pearson_of_a_constant_prediction_is_nan_as_scipy():
    y = np.random.default_rng(8).normal(size=9)
    with pytest.warns(scipy.stats.ConstantInputWarning):
        assert np.isnan(scipy.stats.pearsonr(y, np.full(9, 0.3)).statistic)
    with np.errstate(invalid="ignore"):
        assert np.isnan(float(lossdsl.compile("pearson(y_true, y_pred)")(y_true=y, y_pred=np.full(9, 0.3))))


@pytest.mark.parametrize("backend", BACKENDS)
def test_ccc_of_a_perfect_prediction_is_zero_and_of_a_shifted_one_is_not(backend):
    """Lin's CCC is 1 exactly for y_pred = y_true, and below 1 for a shifted copy (Pearson's r stays 1)."""
    y = np.random.default_rng(9).normal(size=12)
    ccc = lossdsl.compile("ccc(y_true, y_pred)", backend=backend)
    pearson = lossdsl.compile("pearson(y_true, y_pred)", backend=backend)
    args = (lambda **kw: {k: torch.from_numpy(v) for k, v in kw.items()}) if backend == "torch" else dict
    assert float(_to_numpy(ccc(**args(y_true=y, y_pred=y.copy())))) == pytest.approx(0, abs=1e-15)
    shifted = args(y_true=y, y_pred=y + 1)
    assert float(_to_numpy(pearson(**shifted))) == pytest.approx(0, abs=1e-15)
    var = np.var(y)
    np.testing.assert_allclose(float(_to_numpy(ccc(**shifted))), 1 - 2 * var / (2 * var + 1), rtol=1e-12)


# --- asymmetric: timm's reductions and saturated logits ------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_asymmetric_sum_is_timms_value_and_saturated_logits_stay_finite(backend, dtype):
    """reduction="sum" is timm's original -loss.sum(); at logits of +-100 (and +-1000) against both
    labels the value and the gradient are finite, the gradient as jax.grad of timm's formula."""
    inputs = vision.saturated(np.random.default_rng(10))
    inputs["y_pred"][0, :4] = [1000.0, -1000.0, 1000.0, -1000.0]
    want = float(np.sum(vision.asymmetric_reference(np, **inputs)))
    value, grads = _value_and_grads('asymmetric(y_true, y_pred, reduction="sum")', backend, inputs, ["y_pred"], dtype)
    np.testing.assert_allclose(value, want, **TOLERANCE[dtype])
    want_grad = jax_grads(lambda **i: jnp.sum(vision.asymmetric_reference(jnp, **i)), inputs, ["y_pred"])["y_pred"]
    assert np.all(np.isfinite(grads["y_pred"]))
    np.testing.assert_allclose(grads["y_pred"], want_grad, **TOLERANCE[dtype])
