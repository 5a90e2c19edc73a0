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


# ---- integer labels (B, H, W) and logits (B, C, H, W): segmentation-models-pytorch's mode="multiclass",
# MONAI's to_onehot_y=True, softmax=True; references written from their algorithms (loops over classes
# and images, ignored pixels removed), not from lossdsl's formulas
H, W, K = 3, 4, 3
IGNORE = 255


def _labelled(rng, scale=2.0, ignore=False, absent=False, shape=(B, K, H, W)):
    """Integer labels and logits; ``ignore``: some pixels 255 and every pixel of image 1; ``absent``:
    class 2 in no image."""
    labels = rng.integers(0, shape[1] - 1 if absent else shape[1], size=(shape[0], *shape[2:]))
    if ignore:
        labels[0, 0] = IGNORE
        labels[1] = IGNORE
    return {"y_true": labels, "y_pred": rng.normal(size=shape) * scale}


def one_hot_np(labels, classes, ignore=None):
    """(B, C, ...) one-hot floats of (B, ...) labels, all zero where the label is ``ignore``."""
    hot = (labels[:, None] == np.arange(classes).reshape((1, classes) + (1,) * (labels.ndim - 1)))
    if ignore is not None:
        hot &= (labels != ignore)[:, None]
    return hot.astype(float)


def softmax(xp, x, axis=1):
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def smp_overlap(xp, y_true, y_pred, score, ignore=None):
    """smp's DiceLoss/JaccardLoss/TverskyLoss(mode="multiclass") before their mean: (C,) losses, 0 for
    a class absent from the targets."""
    b, c = y_pred.shape[:2]
    t = one_hot_np(y_true, c, ignore).reshape(b, c, -1)
    p = xp.reshape(softmax(xp, y_pred), (b, c, -1))
    if ignore is not None:
        p = p * (y_true != ignore).reshape(b, 1, -1)
    return (1 - score(xp, t, p)) * (t.sum(axis=(0, 2)) > 0)


def smp_dice_score(smooth=0.0, eps=1e-7):
    def score(xp, t, p):
        inter, card = xp.sum(t * p, axis=(0, 2)), xp.sum(t + p, axis=(0, 2))
        return (2 * inter + smooth) / xp.maximum(card + smooth, eps)
    return score


def smp_jaccard_score(smooth=0.0, eps=1e-7):
    def score(xp, t, p):
        inter, card = xp.sum(t * p, axis=(0, 2)), xp.sum(t + p, axis=(0, 2))
        return (inter + smooth) / xp.maximum(card - inter + smooth, eps)
    return score


def smp_tversky_score(alpha, beta, smooth=0.0, eps=1e-7):
    def score(xp, t, p):
        inter = xp.sum(t * p, axis=(0, 2))
        fp, fn = xp.sum(p * (1 - t), axis=(0, 2)), xp.sum((1 - p) * t, axis=(0, 2))
        return (inter + smooth) / xp.maximum(inter + alpha * fp + beta * fn + smooth, eps)
    return score


def smp_focal(xp, y_true, y_pred, gamma=2.0, alpha=None, ignore=None):
    """smp's FocalLoss(mode="multiclass"): per class, the mean over the kept pixels of the sigmoid focal
    loss of its one-vs-rest target, summed over the classes."""
    keep = np.ones(y_true.shape, bool) if ignore is None else y_true != ignore
    total = 0.0
    for c in range(y_pred.shape[1]):
        t, x = (y_true[keep] == c).astype(float), y_pred[:, c][keep]
        logpt = xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))  # BCE with logits
        loss = (1 - xp.exp(-logpt)) ** gamma * logpt
        if alpha is not None:
            loss = loss * (alpha * t + (1 - alpha) * (1 - t))
        total = total + xp.mean(loss)
    return total


def focal_per_pixel(xp, y_true, y_pred, gamma=2.0, alpha=None):
    """The same loss per pixel, (B, H, W): the sum over the classes (no pixel ignored)."""
    t = one_hot_np(y_true, y_pred.shape[1])
    logpt = xp.maximum(y_pred, 0) - y_pred * t + xp.log1p(xp.exp(-xp.abs(y_pred)))
    loss = (1 - xp.exp(-logpt)) ** gamma * logpt
    return xp.sum(loss if alpha is None else loss * (alpha * t + (1 - alpha) * (1 - t)), axis=1)


def monai_generalized_dice(xp, y_true, y_pred, w_type="square", smooth_nr=1e-5, smooth_dr=1e-5, batch=False,
                           from_logits=True, ignore=None):
    """MONAI's GeneralizedDiceLoss(to_onehot_y=True, softmax=True, reduction="none"): (B,) or (1,)."""
    b, c = y_pred.shape[:2]
    if from_logits:
        t = one_hot_np(y_true, c, ignore)
        p = softmax(xp, y_pred)
        if ignore is not None:
            p = p * (y_true != ignore)[:, None]
    else:
        t, p = y_true, y_pred
    axes = tuple(range(2, y_pred.ndim))
    axes = (0, *axes) if batch else axes
    inter, ground, pred = xp.sum(t * p, axis=axes), xp.sum(t, axis=axes), xp.sum(p, axis=axes)
    if w_type == "uniform":
        w = xp.ones_like(ground)
    else:
        with np.errstate(divide="ignore"):
            w = 1 / (ground ** 2 if w_type == "square" else ground)
        infs = xp.isinf(w)
        w = xp.where(infs, 0.0, w)
        w = w + infs * xp.max(w, axis=-1, keepdims=True)
    numer = 2 * xp.sum(inter * w, axis=-1) + smooth_nr
    denom = xp.sum((ground + pred) * w, axis=-1) + smooth_dr
    return 1 - numer / denom


def lovasz_grad(xp, gt_sorted):
    """smp's _lovasz_grad: the steps of the Jaccard loss along the sorted errors."""
    gts = xp.sum(gt_sorted)
    jac = 1 - (gts - xp.cumsum(gt_sorted)) / (gts + xp.cumsum(1 - gt_sorted))
    return xp.concatenate([jac[:1], jac[1:] - jac[:-1]])


def _lovasz_flat(xp, labels, errors):
    order = xp.argsort(-errors, stable=True)  # errors sorted descending, ties in their order
    return xp.sum(errors[order] * lovasz_grad(xp, labels[order].astype(float)))


def smp_lovasz_hinge(xp, y_true, y_pred, per_image=False):
    """smp's lovasz_hinge: relu of the hinge errors dotted with the Jaccard steps."""
    def flat(labels, logits):
        return _lovasz_flat(xp, labels, xp.maximum(1 - logits * (2 * labels - 1), 0))
    if not per_image:
        return flat(np.ravel(y_true), xp.ravel(y_pred))
    return sum(flat(np.ravel(y_true[i]), xp.ravel(y_pred[i])) for i in range(len(y_true))) / len(y_true)


def smp_lovasz_softmax(xp, y_true, y_pred, per_image=False, ignore=None):
    """smp's lovasz_softmax(classes="present"): per class present, |fg - p| dotted with the Jaccard steps;
    the mean over the present classes (0 without one), per image then averaged, or over the batch."""
    def flat(labels, probas):  # labels (P,), probas (C, P)
        keep = np.ones(labels.shape, bool) if ignore is None else labels != ignore
        losses = []
        for c in range(probas.shape[0]):
            fg = (labels[keep] == c).astype(float)
            if fg.sum() > 0:
                losses.append(_lovasz_flat(xp, fg, xp.abs(fg - probas[c][keep])))
        return sum(losses) / len(losses) if losses else 0.0
    p = softmax(xp, y_pred)
    c = y_pred.shape[1]
    if not per_image:
        return flat(np.ravel(y_true), xp.reshape(xp.moveaxis(p, 1, 0), (c, -1)))
    return sum(flat(np.ravel(y_true[i]), xp.reshape(p[i], (c, -1))) for i in range(len(y_true))) / len(y_true)


def _binary_logits(rng, shape=(B, H, W)):
    return {"y_true": (rng.uniform(size=shape) < 0.4).astype(float), "y_pred": rng.normal(size=shape) * 2}


def _overlap(id, call, score, ignore=False):
    """A row of dice/tversky/jaccard on labels and logits against smp's algorithm; ``ignore``: pixels and a
    whole image labelled 255 (ignore_index=255), and a class absent from the batch."""
    if not ignore:
        return Case(id, call.format(ig="", opts="{opts}"), _labelled, lambda xp, **i: smp_overlap(xp, **i, score=score))
    return Case(id, call.format(ig=", ignore_index=255", opts="{opts}"),
                lambda rng: _labelled(rng, ignore=True, absent=True),
                lambda xp, **i: smp_overlap(xp, **i, score=score, ignore=IGNORE))


MULTICLASS = [
    _overlap("dice-multiclass", "dice(y_true, y_pred, axis=1, from_logits=true{ig}{opts})", smp_dice_score(1.0)),
    _overlap("dice-multiclass-smooth0-ignore-absent", "dice(y_true, y_pred, smooth=0, axis=1, from_logits=true{ig}{opts})",
             smp_dice_score(0.0), ignore=True),
    _overlap("tversky-multiclass", "tversky(y_true, y_pred, alpha=0.3, beta=0.7, axis=1, from_logits=true{ig}{opts})",
             smp_tversky_score(0.3, 0.7, 1.0)),
    _overlap("tversky-multiclass-ignore-absent",
             "tversky(y_true, y_pred, smooth=0.5, axis=1, from_logits=true{ig}{opts})",
             smp_tversky_score(0.5, 0.5, 0.5), ignore=True),
    Case("jaccard", "jaccard(y_true, y_pred, axis=1{opts})", _masks, lambda xp, **i: _jaccard(xp, **i, axis=1),
         wrt=("y_true", "y_pred")),
    Case("jaccard-all", "jaccard(y_true, y_pred, smooth=0.3)", _masks,
         lambda xp, **i: _jaccard(xp, **i, smooth=0.3), wrt=("y_true", "y_pred"), reducible=False),
    _overlap("jaccard-multiclass", "jaccard(y_true, y_pred, axis=1, from_logits=true{ig}{opts})", smp_jaccard_score(1.0)),
    _overlap("jaccard-multiclass-smooth0-ignore-absent",
             "jaccard(y_true, y_pred, smooth=0, axis=1, from_logits=true{ig}{opts})", smp_jaccard_score(0.0),
             ignore=True),
    Case("focal-multiclass", "focal(y_true, y_pred, alpha=-1, from_logits=true, axis=1{opts})", _labelled,
         focal_per_pixel),
    Case("focal-multiclass-alpha", "focal(y_true, y_pred, gamma=1.5, from_logits=true, axis=1{opts})", _labelled,
         lambda xp, **i: focal_per_pixel(xp, **i, gamma=1.5, alpha=0.25)),
    Case("focal-multiclass-ignore", "focal(y_true, y_pred, alpha=-1, from_logits=true, axis=1, ignore_index=255)",
         lambda rng: _labelled(rng, ignore=True, absent=True),
         lambda xp, **i: smp_focal(xp, **i, ignore=IGNORE), reducible=False),
    Case("generalized-dice", "generalized_dice(y_true, y_pred, from_logits=true{opts})", _labelled,
         monai_generalized_dice),
    Case("generalized-dice-simple-absent-ignore",
         "generalized_dice(y_true, y_pred, w_type=\"simple\", from_logits=true, ignore_index=255{opts})",
         lambda rng: _labelled(rng, ignore=True, absent=True),
         lambda xp, **i: monai_generalized_dice(xp, **i, w_type="simple", ignore=IGNORE)),
    Case("generalized-dice-uniform-batch",
         "generalized_dice(y_true, y_pred, w_type=\"uniform\", smooth_nr=0.1, smooth_dr=0.2, batch=true, "
         "from_logits=true)", lambda rng: _labelled(rng, absent=True),
         lambda xp, **i: monai_generalized_dice(xp, **i, w_type="uniform", smooth_nr=0.1, smooth_dr=0.2,
                                                batch=True), reducible=False),
    Case("generalized-dice-probabilities", "generalized_dice(y_true, y_pred{opts})",
         lambda rng: {"y_true": one_hot_np(rng.integers(0, K, size=(B, H, W)), K),
                      "y_pred": softmax(np, rng.normal(size=(B, K, H, W)))},
         lambda xp, **i: monai_generalized_dice(xp, **i, from_logits=False)),
    Case("lovasz-hinge", "lovasz_hinge(y_true, y_pred)", _binary_logits, smp_lovasz_hinge, reducible=False),
    Case("lovasz-hinge-per-image", "lovasz_hinge(y_true, y_pred, per_image=true)", _binary_logits,
         lambda xp, **i: smp_lovasz_hinge(xp, **i, per_image=True), reducible=False),
    Case("lovasz-softmax", "lovasz_softmax(y_true, y_pred)", _labelled, smp_lovasz_softmax, reducible=False),
    Case("lovasz-softmax-per-image-ignore-absent", "lovasz_softmax(y_true, y_pred, per_image=true, ignore_index=255)",
         lambda rng: _labelled(rng, ignore=True, absent=True),
         lambda xp, **i: smp_lovasz_softmax(xp, **i, per_image=True, ignore=IGNORE), reducible=False),
    Case("lovasz-softmax-ignore", "lovasz_softmax(y_true, y_pred, ignore_index=255)",
         lambda rng: _labelled(rng, ignore=True),
         lambda xp, **i: smp_lovasz_softmax(xp, **i, ignore=IGNORE), reducible=False),
]
CASES += MULTICLASS
