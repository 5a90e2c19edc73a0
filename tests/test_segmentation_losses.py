"""Segmentation losses on integer labels (B, H, W) and logits (B, C, H, W): MONAI where it ships the loss
(value and torch-autograd gradient), and on every backend, float32 and float64, JAX eagerly and under
jit, the smp/MONAI algorithms written in NumPy (tests/stdlib_rows/segmentation.py: loops over classes and
images, ignored pixels removed) with jax.grad of them; with the peers' hard cases: a class absent from
the batch, every pixel of an image ignored, saturated logits of +-100, and ties among the Lovász errors.
"""

import functools

import jax
import jax.numpy as jnp
import monai.losses as monai_losses  # a dev dependency (pyproject's dev extra)
import numpy as np
import pytest
import torch
from oracles import finite_differences
from sampling import sampled
from stdlib_rows.segmentation import (
    IGNORE,
    K,
    focal_per_pixel,
    monai_generalized_dice,
    smp_dice_score,
    smp_focal,
    smp_jaccard_score,
    smp_lovasz_hinge,
    smp_lovasz_softmax,
    smp_overlap,
    smp_tversky_score,
)

import lossdsl
from lossdsl.errors import LossDSLError

jax.config.update("jax_enable_x64", True)
SHAPE = (3, K, 4, 5)


def _inputs(kind, seed=0):
    """Labels and logits: "plain"; "ignore" (label 255 on a row of image 0 and on all of image 1, class 2
    absent); "saturated" (logits +-100); "ties" (every pixel the same logits, so every error ties)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K - 1 if kind == "ignore" else K, size=(SHAPE[0], *SHAPE[2:]))
    logits = rng.normal(size=SHAPE) * 2
    if kind == "ignore":
        labels[0, 0], labels[1] = IGNORE, IGNORE
    if kind == "saturated":
        logits = np.where(rng.uniform(size=SHAPE) < 0.5, -100.0, 100.0)
    if kind == "ties":
        logits = np.broadcast_to(rng.normal(size=(1, K, 1, 1)), SHAPE).copy()
    return labels, logits


IG = IGNORE
# call, reference(xp, y_true, y_pred) with the ignore label where the call names it
CASES = {
    "dice": ("dice(y_true, y_pred, smooth=0.5, axis=1, from_logits=true{ig})",
             lambda xp, ig, **i: xp.mean(smp_overlap(xp, **i, score=smp_dice_score(0.5), ignore=ig))),
    "tversky": ("tversky(y_true, y_pred, alpha=0.3, beta=0.7, axis=1, from_logits=true{ig})",
                lambda xp, ig, **i: xp.mean(smp_overlap(xp, **i, score=smp_tversky_score(0.3, 0.7, 1.0),
                                                         ignore=ig))),
    "jaccard": ("jaccard(y_true, y_pred, smooth=0, axis=1, from_logits=true{ig})",
                lambda xp, ig, **i: xp.mean(smp_overlap(xp, **i, score=smp_jaccard_score(0.0), ignore=ig))),
    "focal": ("focal(y_true, y_pred, alpha=-1, from_logits=true, axis=1{ig})",
              lambda xp, ig, **i: smp_focal(xp, **i, ignore=ig)),
    "generalized_dice": ("generalized_dice(y_true, y_pred, from_logits=true{ig})",
                         lambda xp, ig, **i: xp.mean(monai_generalized_dice(xp, **i, ignore=ig))),
    "lovasz_softmax": ("lovasz_softmax(y_true, y_pred{ig})",
                       lambda xp, ig, **i: smp_lovasz_softmax(xp, **i, ignore=ig)),
    "lovasz_softmax_per_image": ("lovasz_softmax(y_true, y_pred, per_image=true{ig})",
                                 lambda xp, ig, **i: smp_lovasz_softmax(xp, **i, per_image=True, ignore=ig)),
}
KINDS = ["plain", "ignore", "saturated", "ties"]


def _call(name, kind):
    call, _ = CASES[name]
    return call.format(ig=", ignore_index=255" if kind == "ignore" else "")


def _reference(name, kind, labels, logits, xp=np):
    return CASES[name][1](xp, IGNORE if kind == "ignore" else None, y_true=labels, y_pred=logits)


def _reference_grad(name, kind, labels, logits):
    return np.asarray(jax.grad(lambda x: _reference(name, kind, labels, x, jnp))(jnp.asarray(logits)))


@functools.cache
def _expected(name, kind):
    """The row's inputs, reference value and jax.grad of it: once per row and process (a row's
    backends and dtypes share an xdist group: sampling.sampled)."""
    labels, logits = _inputs(kind)
    return labels, logits, _reference(name, kind, labels, logits), _reference_grad(name, kind, labels, logits)


@pytest.mark.parametrize("name_kind, backend, dtype", sampled(
    [(n, k) for n in CASES for k in KINDS], [f"{n}-{k}" for n in CASES for k in KINDS],
    [["numpy", "jax", "torch"], [np.float64, np.float32]], "segmentation"))
def test_value_and_gradient_on_every_backend(name_kind, backend, dtype):
    name, kind = name_kind
    labels, logits, want, want_grad = _expected(name, kind)
    loss = lossdsl.compile(_call(name, kind), backend=backend)
    x = logits.astype(dtype)
    value, grads = loss.value_and_grad("y_pred")(y_true=labels, y_pred=torch.tensor(x) if backend == "torch" else x)
    value, grad = np.asarray(value), np.asarray(grads)
    assert value.dtype == dtype and grad.dtype == dtype and grad.shape == SHAPE
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (2e-5, 2e-6)
    np.testing.assert_allclose(value, want, rtol=rtol, atol=atol)
    np.testing.assert_allclose(grad, want_grad, rtol=rtol, atol=atol)


@pytest.mark.parametrize("kind", ["plain", "ignore"])
@pytest.mark.parametrize("name", CASES)
def test_jax_eager_under_jit_and_through_jax_grad(name, kind):
    labels, logits = _inputs(kind, seed=1)
    loss = lossdsl.compile(_call(name, kind), backend="jax")
    f = lambda x: loss(y_true=labels, y_pred=x)  # noqa: E731
    want, want_grad = _reference(name, kind, labels, logits), _reference_grad(name, kind, labels, logits)
    with jax.disable_jit():
        np.testing.assert_allclose(f(jnp.asarray(logits)), want, rtol=1e-10)
    np.testing.assert_allclose(jax.jit(f)(logits), want, rtol=1e-10)
    np.testing.assert_allclose(jax.jit(jax.grad(f))(logits), want_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["lovasz_softmax", "lovasz_softmax_per_image", "generalized_dice", "jaccard"])
def test_gradient_matches_finite_differences(name):
    labels, logits = _inputs("ignore", seed=2)
    loss = lossdsl.compile(_call(name, "ignore"))
    fd = finite_differences(loss, {"y_true": labels, "y_pred": logits}, "y_pred")
    np.testing.assert_allclose(loss.grad("y_pred")(y_true=labels, y_pred=logits), fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("kind", ["plain", "saturated", "ties"])
@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_lovasz_hinge(per_image, kind, backend):
    labels, logits = _inputs(kind, seed=3)
    mask, x = (labels == 1).astype(float), logits[:, 1]
    if kind == "ties":
        x = np.zeros_like(x)  # every hinge error is 1
    loss = lossdsl.compile(f"lovasz_hinge(y_true, y_pred, per_image={str(per_image).lower()})", backend=backend)
    value, grad = loss.value_and_grad("y_pred")(y_true=mask, y_pred=x)
    np.testing.assert_allclose(np.asarray(value), smp_lovasz_hinge(np, mask, x, per_image), rtol=1e-10)
    want = jax.grad(lambda v: smp_lovasz_hinge(jnp, mask, v, per_image))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(grad), want, rtol=1e-10, atol=1e-12)


def _torch_grad(f, logits):
    x = torch.tensor(logits, requires_grad=True)
    value = f(x)
    value.backward()
    return value.item(), x.grad.numpy()


MONAI = {  # our call, MONAI's loss (input, target (B, 1, H, W)), and the factor between them
    "dice": ("dice(y_true, y_pred, smooth=1e-5, axis=1, from_logits=true)",
             monai_losses.DiceLoss(to_onehot_y=True, softmax=True, batch=True), 1.0),
    "dice-smooth": ("dice(y_true, y_pred, smooth=0.3, axis=1, from_logits=true)",
                    monai_losses.DiceLoss(to_onehot_y=True, softmax=True, batch=True, smooth_nr=0.3, smooth_dr=0.3),
                    1.0),
    "tversky": ("tversky(y_true, y_pred, alpha=0.3, beta=0.7, smooth=1e-5, axis=1, from_logits=true)",
                monai_losses.TverskyLoss(to_onehot_y=True, softmax=True, batch=True, alpha=0.3, beta=0.7), 1.0),
    # MONAI's Jaccard form doubles the union against the doubled intersection: its smoothing is ours twice
    "jaccard": ("jaccard(y_true, y_pred, smooth=0.1, axis=1, from_logits=true)",
                monai_losses.DiceLoss(to_onehot_y=True, softmax=True, batch=True, jaccard=True, smooth_nr=0.2,
                                      smooth_dr=0.2), 1.0),
    # MONAI's mean runs over the classes too
    "focal": ("focal(y_true, y_pred, gamma=2, alpha=-1, from_logits=true, axis=1)",
              monai_losses.FocalLoss(to_onehot_y=True, gamma=2.0), 1 / K),
    "focal-alpha": ("focal(y_true, y_pred, gamma=1.5, alpha=0.25, from_logits=true, axis=1)",
                    monai_losses.FocalLoss(to_onehot_y=True, gamma=1.5, alpha=0.25), 1 / K),
    "generalized_dice": ("generalized_dice(y_true, y_pred, from_logits=true)",
                         monai_losses.GeneralizedDiceLoss(to_onehot_y=True, softmax=True), 1.0),
    "generalized_dice-simple-batch": ("generalized_dice(y_true, y_pred, w_type=\"simple\", batch=true, "
                                      "smooth_nr=0.01, smooth_dr=0.02, from_logits=true)",
                                      monai_losses.GeneralizedDiceLoss(to_onehot_y=True, softmax=True, w_type="simple",
                                                                       batch=True, smooth_nr=0.01, smooth_dr=0.02),
                                      1.0),
    "generalized_dice-uniform": ("generalized_dice(y_true, y_pred, w_type=\"uniform\", from_logits=true)",
                                 monai_losses.GeneralizedDiceLoss(to_onehot_y=True, softmax=True, w_type="uniform"),
                                 1.0),
}


@pytest.mark.parametrize("kind", ["plain", "saturated"])
@pytest.mark.parametrize("name", MONAI)
def test_agrees_with_monai(name, kind):
    """Every class present (where MONAI scores an absent class, smp and lossdsl zero it)."""
    call, peer, factor = MONAI[name]
    labels, logits = _inputs(kind, seed=4)
    labels[:, 0, :K] = np.arange(K)
    loss = lossdsl.compile(call, backend="torch")
    ours, ours_grad = _torch_grad(lambda x: loss(y_true=torch.tensor(labels), y_pred=x), logits)
    theirs, their_grad = _torch_grad(lambda x: peer(x, torch.tensor(labels)[:, None]) / factor, logits)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9)  # MONAI's focal keeps float32 steps
    np.testing.assert_allclose(ours_grad, their_grad, rtol=1e-6, atol=1e-9)


def test_generalized_dice_of_probabilities_with_an_absent_class_agrees_with_monai():
    labels, logits = _inputs("ignore", seed=5)  # class 2 absent; MONAI takes the sample's largest weight
    labels = np.where(labels == IGNORE, 0, labels)
    target = np.eye(K)[labels].transpose(0, 3, 1, 2)
    probs = torch.softmax(torch.tensor(logits), 1).numpy()
    loss = lossdsl.compile("generalized_dice(y_true, y_pred)", backend="torch")
    ours, ours_grad = _torch_grad(lambda p: loss(y_true=torch.tensor(target), y_pred=p), probs)
    theirs, their_grad = _torch_grad(lambda p: monai_losses.GeneralizedDiceLoss()(p, torch.tensor(target)), probs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-7)
    np.testing.assert_allclose(ours_grad, their_grad, rtol=1e-7, atol=1e-12)


def test_old_calls_keep_their_meaning():
    """dice's axis without from_logits is still the axis summed over (masks and probabilities)."""
    rng = np.random.default_rng(6)
    t, p = (rng.uniform(size=(4, 6)) < 0.5).astype(float), rng.uniform(size=(4, 6))
    want = 1 - (2 * (t * p).sum(1) + 1) / (t.sum(1) + p.sum(1) + 1)
    np.testing.assert_allclose(lossdsl.compile("dice(y_true, y_pred, axis=1)")(y_true=t, y_pred=p), want.mean())


@pytest.mark.parametrize("call, message", [
    ("dice(y_true, y_pred, axis=1, ignore_index=255)", "ignore_index needs integer labels"),
    ("jaccard(y_true, y_pred, from_logits=true)", "integer labels need the class axis"),
    ("focal(y_true, y_pred, ignore_index=255)", "ignore_index needs integer labels"),
    ("generalized_dice(y_true, y_pred, w_type=\"cube\")", "w_type must be"),
])
def test_misuse_is_reported_at_compile_time(call, message):
    with pytest.raises(LossDSLError, match=message):
        lossdsl.compile(call)


def test_focal_per_pixel_reference_is_smp_without_ignored_pixels():
    """The two focal references agree where nothing is ignored (the rows use the per-pixel one)."""
    labels, logits = _inputs("plain", seed=7)
    np.testing.assert_allclose(np.mean(focal_per_pixel(np, labels, logits)), smp_focal(np, labels, logits),
                               rtol=1e-12)
