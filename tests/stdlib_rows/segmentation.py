"""Segmentation losses: references written from each loss's published formula."""

import jax.numpy as jnp
import numpy as np
import optax

from . import Case

B, N, C = 4, 10, 3


def _masks(rng, shape=(B, N)):
    return {"y_true": (rng.uniform(size=shape) < 0.4).astype(float), "y_pred": rng.uniform(0.05, 0.95, size=shape)}


def _classes(rng):
    """One-hot targets and softmax probabilities, (B, N, C)."""
    logits = rng.normal(size=(B, N, C)) * 2
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return {"y_true": np.eye(C)[rng.integers(0, C, size=(B, N))], "y_pred": p}


def _dice(xp, y_true, y_pred, smooth=1.0, axis=None):
    tp = xp.sum(y_true * y_pred, axis=axis)
    return 1 - (2 * tp + smooth) / (xp.sum(y_true, axis=axis) + xp.sum(y_pred, axis=axis) + smooth)


def _tversky(xp, y_true, y_pred, alpha=0.5, beta=0.5, smooth=1.0, axis=None):
    tp = xp.sum(y_true * y_pred, axis=axis)
    fp = xp.sum((1 - y_true) * y_pred, axis=axis)
    fn = xp.sum(y_true * (1 - y_pred), axis=axis)
    return 1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


def _jaccard(xp, y_true, y_pred, smooth=1.0, axis=None):
    """The soft IoU loss: 1 - (|y*p| + s)/(|y| + |p| - |y*p| + s)."""
    inter = xp.sum(y_true * y_pred, axis=axis)
    union = xp.sum(y_true, axis=axis) + xp.sum(y_pred, axis=axis) - inter
    return 1 - (inter + smooth) / (union + smooth)


def _optax_binary(i, axis_none=False, **kw):
    """optax's dice_loss on the foreground class of a two-class (background, foreground) stack."""
    t, p = jnp.asarray(i["y_true"]), jnp.asarray(i["y_pred"])
    if axis_none:
        t, p = t.reshape(1, -1), p.reshape(1, -1)
    stack = lambda x: jnp.stack([1 - x, x], axis=-1)  # noqa: E731
    per_sample = optax.losses.dice_loss(stack(p), stack(t), class_weights=jnp.array([0.0, 1.0]),
                                        apply_softmax=False, reduction="sum", **kw)
    return per_sample.mean()


def _empty_and_full(rng):
    """Sample 0: empty mask predicted empty; 1: full mask predicted full; 2: all wrong; 3: random."""
    t = np.zeros((B, N))
    p = np.zeros((B, N))
    t[1], p[1] = 1.0, 1.0
    p[2] = 1.0
    t[3] = (rng.uniform(size=N) < 0.5).astype(float)
    p[3] = rng.uniform(size=N)
    return {"y_true": t, "y_pred": p}


CASES = [
    # dice
    Case("dice", "dice(y_true, y_pred)", _masks, _dice, wrt=("y_true", "y_pred"), reducible=False,
         extra={"optax": lambda i: _optax_binary(i, axis_none=True, smooth=0.5)}),
    Case("dice-smooth", "dice(y_true, y_pred, smooth=0.1)", _masks,
         lambda xp, **i: _dice(xp, **i, smooth=0.1), wrt=("y_true", "y_pred"), reducible=False),
    Case("dice-per-sample", "dice(y_true, y_pred, axis=1{opts})", _masks, lambda xp, **i: _dice(xp, **i, axis=1),
         wrt=("y_true", "y_pred"), extra={"optax": lambda i: _optax_binary(i, smooth=0.5)}),
    Case("dice-per-sample-last-axis", "dice(y_true, y_pred, smooth=0.5, axis=-1{opts})",
         lambda rng: _masks(rng, (B, 2, N)), lambda xp, **i: _dice(xp, **i, smooth=0.5, axis=-1),
         wrt=("y_true", "y_pred")),
    Case("dice-classes", "dice(y_true, y_pred, axis=1{opts})", _classes, lambda xp, **i: _dice(xp, **i, axis=1),
         wrt=("y_true", "y_pred"),
         extra={"optax": lambda i: optax.losses.dice_loss(i["y_pred"], i["y_true"], smooth=0.5, apply_softmax=False,
                                                          axis=1).mean()}),
    Case("dice-smooth-input", "dice(y_true, y_pred, smooth=s, axis=1{opts})",
         lambda rng: {**_masks(rng), "s": np.array(0.7)},
         lambda xp, s, **i: _dice(xp, **i, smooth=s, axis=1), wrt=("y_pred", "s")),
    Case("dice-empty-full-wrong", "dice(y_true, y_pred, axis=1{opts})", _empty_and_full,
         lambda xp, **i: _dice(xp, **i, axis=1), wrt=("y_true", "y_pred"), finite_differences=False),
    Case("dice-all-empty", "dice(y_true, y_pred)", lambda rng: {"y_true": np.zeros((B, N)), "y_pred": np.zeros((B, N))},
         _dice, wrt=("y_true", "y_pred"), reducible=False, finite_differences=False),
    Case("dice-saturated", "dice(y_true, y_pred, smooth=1e-6, axis=1{opts})",
         lambda rng: {"y_true": (t := (rng.uniform(size=(B, N)) < 0.5).astype(float)), "y_pred": t.copy()},
         lambda xp, **i: _dice(xp, **i, smooth=1e-6, axis=1), wrt=("y_true", "y_pred"), finite_differences=False),

    # tversky
    Case("tversky", "tversky(y_true, y_pred, alpha=0.3, beta=0.7)", _masks,
         lambda xp, **i: _tversky(xp, **i, alpha=0.3, beta=0.7), wrt=("y_true", "y_pred"), reducible=False,
         extra={"optax": lambda i: _optax_binary(i, axis_none=True, alpha=0.3, beta=0.7)}),
    Case("tversky-defaults", "tversky(y_true, y_pred)", _masks, _tversky, wrt=("y_true", "y_pred"), reducible=False),
    Case("tversky-per-sample", "tversky(y_true, y_pred, alpha=0.7, beta=0.3, smooth=0.5, axis=1{opts})", _masks,
         lambda xp, **i: _tversky(xp, **i, alpha=0.7, beta=0.3, smooth=0.5, axis=1), wrt=("y_true", "y_pred"),
         extra={"optax": lambda i: _optax_binary(i, alpha=0.7, beta=0.3, smooth=0.5)}),
    Case("tversky-classes", "tversky(y_true, y_pred, alpha=0.4, beta=0.6, axis=1{opts})", _classes,
         lambda xp, **i: _tversky(xp, **i, alpha=0.4, beta=0.6, axis=1), wrt=("y_true", "y_pred"),
         extra={"optax": lambda i: optax.losses.dice_loss(i["y_pred"], i["y_true"], alpha=0.4, beta=0.6,
                                                          apply_softmax=False, axis=1).mean()}),
    Case("tversky-jaccard", "tversky(y_true, y_pred, alpha=1, beta=1, axis=1{opts})", _masks,
         lambda xp, **i: _jaccard(xp, **i, axis=1), wrt=("y_true", "y_pred")),
    Case("tversky-inputs", "tversky(y_true, y_pred, alpha=a, beta=b, smooth=s, axis=1{opts})",
         lambda rng: {**_masks(rng), "a": np.array(0.2), "b": np.array(0.9), "s": np.array(0.4)},
         lambda xp, a, b, s, **i: _tversky(xp, **i, alpha=a, beta=b, smooth=s, axis=1),
         wrt=("y_pred", "a", "b", "s")),
    Case("tversky-empty-full-wrong", "tversky(y_true, y_pred, alpha=0.3, beta=0.7, axis=1{opts})", _empty_and_full,
         lambda xp, **i: _tversky(xp, **i, alpha=0.3, beta=0.7, axis=1), wrt=("y_true", "y_pred"),
         finite_differences=False),
    Case("tversky-all-empty", "tversky(y_true, y_pred)",
         lambda rng: {"y_true": np.zeros((B, N)), "y_pred": np.zeros((B, N))},
         _tversky, wrt=("y_true", "y_pred"), reducible=False, finite_differences=False),
]
