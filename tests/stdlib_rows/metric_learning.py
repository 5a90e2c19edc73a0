"""Metric-learning losses: references written from each loss's published formula.

Euclidean distances in the references use a norm whose gradient is 0 at the zero vector (the
subgradient lossdsl's norm uses), so that rows with coincident points compare gradients too.
"""

import numpy as np
import optax

from . import Case

B, D = 6, 4
LABELS = np.array([0, 1, 0, 2, 1, 0, 2, 1])


def _norm(xp, x, axis=-1, keepdims=False):
    """Euclidean norm with gradient 0 at the zero vector."""
    s = xp.sum(x**2, axis=axis, keepdims=keepdims)
    nonzero = s > 0
    return xp.where(nonzero, xp.sqrt(xp.where(nonzero, s, 1.0)), 0.0)


def _triplets(scale_p=0.7, scale_n=0.9, scale=1.0):
    def make(rng):
        a = rng.normal(size=(B, D)) * scale
        return {"anchor": a, "positive": a + scale_p * scale * rng.normal(size=(B, D)),
                "negative": a + scale_n * scale * rng.normal(size=(B, D))}
    return make


def _triplet(xp, anchor, positive, negative, margin=0.2, squared=True, eps=1e-6, axis=-1, swap=False):
    if squared:
        dp = xp.sum((anchor - positive) ** 2, axis=axis)
        dn = xp.sum((anchor - negative) ** 2, axis=axis)
        ds = xp.sum((positive - negative) ** 2, axis=axis)
    else:  # torch.nn.functional.pairwise_distance: ||x1 - x2 + eps||_2
        dp = _norm(xp, anchor - positive + eps, axis=axis)
        dn = _norm(xp, anchor - negative + eps, axis=axis)
        ds = _norm(xp, positive - negative + eps, axis=axis)
    if swap:  # Balntas et al. 2016: the negative's nearer distance, to the anchor or to the positive
        dn = xp.minimum(dn, ds)
    return xp.maximum(dp - dn + margin, 0.0)


def _swap_triplets(rng):
    """Negatives nearer the positive than the anchor in half the rows, so that the swap matters."""
    a = rng.normal(size=(B, D))
    p = a + 0.8 * rng.normal(size=(B, D))
    n = a + 0.9 * rng.normal(size=(B, D))
    n[::2] = p[::2] + 0.5 * rng.normal(size=(B // 2, D))
    return {"anchor": a, "positive": p, "negative": n}


def _pm1_labels(rng, n=B):
    return np.where(rng.uniform(size=n) < 0.5, -1.0, 1.0)


def _margin_ranking(xp, x1, x2, y_true, margin=0.0):
    """torch.nn.functional.margin_ranking_loss: max(0, -y*(x1 - x2) + margin)."""
    return xp.maximum(0.0, -y_true * (x1 - x2) + margin)


def _cosine_embedding(xp, x1, x2, y_true, margin=0.0, axis=-1):
    """torch.nn.functional.cosine_embedding_loss, with its 1e-12 on each squared norm."""
    cos = xp.sum(x1 * x2, axis=axis) / xp.sqrt((xp.sum(x1**2, axis=axis) + 1e-12) * (xp.sum(x2**2, axis=axis) + 1e-12))
    return xp.where(y_true == 1, 1 - cos, 0.0) + xp.where(y_true == -1, xp.maximum(0.0, cos - margin), 0.0)


def _hinge_embedding(xp, y_true, y_pred, margin=1.0):
    """torch.nn.functional.hinge_embedding_loss: x for y = 1, max(0, margin - x) for y = -1."""
    return xp.where(y_true == 1, y_pred, 0.0) + xp.where(y_true == -1, xp.maximum(0.0, margin - y_pred), 0.0)


def _pairs(rng):
    return {"x1": rng.normal(size=(B, D)), "x2": rng.normal(size=(B, D)), "y_true": _pm1_labels(rng)}


def _distances(rng):
    return {"y_true": _pm1_labels(rng, 2 * B), "y_pred": rng.uniform(0.05, 2.5, size=2 * B)}


def _pairwise(xp, embeddings, squared):
    diff = embeddings[:, None, :] - embeddings[None, :, :]
    return xp.sum(diff**2, axis=-1) if squared else _norm(xp, diff)


def _batch_hard(xp, embeddings, labels, margin=0.2, squared=False):
    d = _pairwise(xp, embeddings, squared)
    same = labels[:, None] == labels[None, :]
    positive = same & ~np.eye(len(labels), dtype=bool)
    hardest_positive = xp.max(xp.where(positive, d, 0.0), axis=1)
    # no negative in the batch: the anchor's largest distance (TensorFlow Addons' TripletHardLoss)
    hardest_negative = xp.min(xp.where(~same, d, xp.max(d, axis=1, keepdims=True)), axis=1)
    return xp.maximum(hardest_positive - hardest_negative + margin, 0.0)


def _batch_all(xp, embeddings, labels, margin=0.2, squared=False):
    d = _pairwise(xp, embeddings, squared)
    same = labels[:, None] == labels[None, :]
    positive = same & ~np.eye(len(labels), dtype=bool)
    valid = positive[:, :, None] & ~same[:, None, :]
    losses = d[:, :, None] - d[:, None, :] + margin
    counted = valid & (losses > 0)
    return xp.sum(xp.where(counted, losses, 0.0)) / xp.maximum(xp.sum(counted), 1)


def _embeddings(scale=1.0, labels=LABELS):
    return lambda rng: {"embeddings": rng.normal(size=(len(labels), 3)) * scale, "labels": labels}


def _duplicated(rng):
    e = rng.normal(size=(len(LABELS), 3))
    e[2] = e[0]  # same label as row 0: a positive at distance 0
    e[4] = e[0]  # another label: a negative at distance 0
    return {"embeddings": e, "labels": LABELS}


def _pairs(rng, n=B):
    x1 = rng.normal(size=(n, D))
    return {"x1": x1, "x2": x1 + rng.normal(size=(n, D)) * 0.8, "y_true": (np.arange(n) % 2).astype(float)}


def _contrastive(xp, x1, x2, y_true, margin=1.0, axis=-1):
    d = _norm(xp, x1 - x2, axis=axis)
    return (1 - y_true) * d**2 + y_true * xp.maximum(margin - d, 0.0) ** 2


def _unit(xp, x, axis):
    """keras.ops.normalize: x / max(||x||, epsilon), epsilon = keras.config.epsilon() = 1e-7."""
    return x / xp.maximum(_norm(xp, x, axis=axis, keepdims=True), 1e-7)


def _cosine(xp, y_true, y_pred, axis=-1):
    return -xp.sum(_unit(xp, y_true, axis) * _unit(xp, y_pred, axis), axis=axis)


def _with_zero_rows(rng):
    t, p = rng.normal(size=(B, D)), rng.normal(size=(B, D))
    t[1] = 0.0
    p[3] = 0.0
    t[5] = p[5] = 0.0
    return {"y_true": t, "y_pred": p}


CASES = [
    # triplet, squared (FaceNet)
    Case("triplet", "triplet(anchor, positive, negative, margin=1.0{opts})", _triplets(),
         lambda xp, **i: _triplet(xp, **i, margin=1.0), wrt=("anchor", "positive", "negative")),
    Case("triplet-defaults", "triplet(anchor, positive, negative{opts})", _triplets(0.5, 0.6),
         lambda xp, **i: _triplet(xp, **i), wrt=("anchor", "positive", "negative")),
    Case("triplet-axis0", "triplet(anchor, positive, negative, margin=2.0, axis=0{opts})",
         lambda rng: {k: v.T for k, v in _triplets()(rng).items()},
         lambda xp, **i: _triplet(xp, **i, margin=2.0, axis=0), wrt=("anchor", "positive", "negative")),
    Case("triplet-margin-input", "triplet(anchor, positive, negative, margin=m{opts})",
         lambda rng: {**_triplets()(rng), "m": np.array(1.5)},
         lambda xp, m, **i: _triplet(xp, **i, margin=m), wrt=("anchor", "negative", "m")),
    # triplet, Euclidean (PyTorch's triplet_margin_loss)
    Case("triplet-euclidean", "triplet(anchor, positive, negative, margin=0.5, squared=false{opts})",
         _triplets(), lambda xp, **i: _triplet(xp, **i, margin=0.5, squared=False),
         wrt=("anchor", "positive", "negative")),
    Case("triplet-euclidean-eps", "triplet(anchor, positive, negative, margin=0.5, squared=false, eps=0.1{opts})",
         _triplets(), lambda xp, **i: _triplet(xp, **i, margin=0.5, squared=False, eps=0.1),
         wrt=("anchor", "positive", "negative")),
    Case("triplet-euclidean-eps0", "triplet(anchor, positive, negative, margin=0.5, squared=false, eps=0{opts})",
         _triplets(), lambda xp, **i: _triplet(xp, **i, margin=0.5, squared=False, eps=0.0),
         wrt=("anchor", "positive", "negative"),
         extra={"optax": lambda i: optax.losses.triplet_margin_loss(
             i["anchor"], i["positive"], i["negative"], margin=0.5, eps=0.0).mean()}),
    # hard rows: coincident points, everything equal, far-away points
    Case("triplet-euclidean-anchor-is-positive", "triplet(anchor, positive, negative, squared=false{opts})",
         lambda rng: {**(t := _triplets()(rng)), "positive": t["anchor"].copy()},
         lambda xp, **i: _triplet(xp, **i, squared=False), wrt=("anchor", "positive", "negative"),
         finite_differences=False),
    Case("triplet-anchor-is-positive", "triplet(anchor, positive, negative, margin=3.0{opts})",
         lambda rng: {**(t := _triplets()(rng)), "positive": t["anchor"].copy()},
         lambda xp, **i: _triplet(xp, **i, margin=3.0), wrt=("anchor", "positive", "negative"),
         finite_differences=False),
    Case("triplet-all-equal", "triplet(anchor, positive, negative, squared=false{opts})",
         lambda rng: {k: v.copy() for k, v in dict.fromkeys(("anchor", "positive", "negative"),
                                                            rng.normal(size=(B, D))).items()},
         lambda xp, **i: _triplet(xp, **i, squared=False), wrt=("anchor", "positive", "negative"),
         finite_differences=False),
    Case("triplet-far-1e4", "triplet(anchor, positive, negative, margin=1.0, squared=false{opts})",
         _triplets(scale=1e4), lambda xp, **i: _triplet(xp, **i, margin=1.0, squared=False),
         wrt=("anchor", "positive", "negative"), finite_differences=False),
    Case("triplet-far-squared-1e4", "triplet(anchor, positive, negative, margin=1.0{opts})",
         _triplets(scale=1e4), lambda xp, **i: _triplet(xp, **i, margin=1.0),
         wrt=("anchor", "positive", "negative"), finite_differences=False),

    # batch hard
    Case("triplet_batch_hard", "triplet_batch_hard(embeddings, labels, margin=1.0{opts})", _embeddings(),
         lambda xp, **i: _batch_hard(xp, **i, margin=1.0), wrt=("embeddings",)),
    Case("triplet_batch_hard-squared", "triplet_batch_hard(embeddings, labels, margin=2.0, squared=true{opts})",
         _embeddings(), lambda xp, **i: _batch_hard(xp, **i, margin=2.0, squared=True), wrt=("embeddings",)),
    Case("triplet_batch_hard-defaults", "triplet_batch_hard(embeddings, labels{opts})", _embeddings(0.3),
         lambda xp, **i: _batch_hard(xp, **i), wrt=("embeddings",)),
    Case("triplet_batch_hard-margin-input", "triplet_batch_hard(embeddings, labels, margin=m{opts})",
         lambda rng: {**_embeddings()(rng), "m": np.array(0.8)},
         lambda xp, m, **i: _batch_hard(xp, **i, margin=m), wrt=("embeddings", "m")),
    Case("triplet_batch_hard-singleton-class", "triplet_batch_hard(embeddings, labels, margin=1.0{opts})",
         _embeddings(labels=np.array([0, 1, 0, 2, 1, 0, 1])),  # class 2 has no other member
         lambda xp, **i: _batch_hard(xp, **i, margin=1.0), wrt=("embeddings",)),
    Case("triplet_batch_hard-coincident", "triplet_batch_hard(embeddings, labels, margin=1.0{opts})",
         _duplicated, lambda xp, **i: _batch_hard(xp, **i, margin=1.0), wrt=("embeddings",),
         finite_differences=False),
    Case("triplet_batch_hard-one-class", "triplet_batch_hard(embeddings, labels{opts})",
         _embeddings(labels=np.zeros(5, dtype=int)), lambda xp, **i: _batch_hard(xp, **i),
         wrt=("embeddings",), finite_differences=False),
    Case("triplet_batch_hard-far-1e4", "triplet_batch_hard(embeddings, labels{opts})", _embeddings(1e4),
         lambda xp, **i: _batch_hard(xp, **i), wrt=("embeddings",), finite_differences=False),

    # batch all
    Case("triplet_batch_all", "triplet_batch_all(embeddings, labels, margin=1.0)", _embeddings(),
         lambda xp, **i: _batch_all(xp, **i, margin=1.0), wrt=("embeddings",), reducible=False),
    Case("triplet_batch_all-squared", "triplet_batch_all(embeddings, labels, margin=2.0, squared=true)",
         _embeddings(), lambda xp, **i: _batch_all(xp, **i, margin=2.0, squared=True),
         wrt=("embeddings",), reducible=False),
    Case("triplet_batch_all-defaults", "triplet_batch_all(embeddings, labels)", _embeddings(0.3),
         lambda xp, **i: _batch_all(xp, **i), wrt=("embeddings",), reducible=False),
    # margin as an input: its value and the embeddings' gradient (its own gradient in the next row)
    Case("triplet_batch_all-margin-input", "triplet_batch_all(embeddings, labels, margin=m)",
         lambda rng: {**_embeddings()(rng), "m": np.array(0.8)},
         lambda xp, m, **i: _batch_all(xp, **i, margin=m), wrt=("embeddings",), reducible=False),
    Case("triplet_batch_all-coincident", "triplet_batch_all(embeddings, labels, margin=1.0)", _duplicated,
         lambda xp, **i: _batch_all(xp, **i, margin=1.0), wrt=("embeddings",), reducible=False,
         finite_differences=False),
    Case("triplet_batch_all-coincident-squared", "triplet_batch_all(embeddings, labels, squared=true)",
         _duplicated, lambda xp, **i: _batch_all(xp, **i, squared=True), wrt=("embeddings",), reducible=False,
         finite_differences=False),
    Case("triplet_batch_all-none-active", "triplet_batch_all(embeddings, labels, margin=0.1)",
         lambda rng: {"embeddings": np.array([[0.0, 0.0], [0.0, 1e-3], [5.0, 0.0], [5.0, 1e-3]]),
                      "labels": np.array([0, 0, 1, 1])},
         lambda xp, **i: _batch_all(xp, **i, margin=0.1), wrt=("embeddings",), reducible=False,
         finite_differences=False),
    Case("triplet_batch_all-one-class", "triplet_batch_all(embeddings, labels)",
         _embeddings(labels=np.zeros(5, dtype=int)), lambda xp, **i: _batch_all(xp, **i),
         wrt=("embeddings",), reducible=False, finite_differences=False),

    # contrastive
    Case("contrastive", "contrastive(x1, x2, y_true, margin=2.0{opts})", _pairs,
         lambda xp, **i: _contrastive(xp, **i, margin=2.0), wrt=("x1", "x2", "y_true")),
    Case("contrastive-defaults", "contrastive(x1, x2, y_true{opts})", _pairs,
         lambda xp, **i: _contrastive(xp, **i), wrt=("x1", "x2")),
    Case("contrastive-axis0", "contrastive(x1, x2, y_true, margin=2.5, axis=0{opts})",
         lambda rng: {**(p := _pairs(rng)), "x1": p["x1"].T, "x2": p["x2"].T},
         lambda xp, **i: _contrastive(xp, **i, margin=2.5, axis=0), wrt=("x1", "x2", "y_true")),
    Case("contrastive-margin-input", "contrastive(x1, x2, y_true, margin=m{opts})",
         lambda rng: {**_pairs(rng), "m": np.array(1.7)},
         lambda xp, m, **i: _contrastive(xp, **i, margin=m), wrt=("x1", "m")),
    Case("contrastive-x1-is-x2", "contrastive(x1, x2, y_true{opts})",
         lambda rng: {**(p := _pairs(rng)), "x2": np.where(np.arange(B)[:, None] < 4, p["x1"], p["x2"])},
         lambda xp, **i: _contrastive(xp, **i), wrt=("x1", "x2", "y_true"), finite_differences=False),
    Case("contrastive-far-1e4", "contrastive(x1, x2, y_true{opts})",
         lambda rng: {k: (v * 1e4 if k != "y_true" else v) for k, v in _pairs(rng).items()},
         lambda xp, **i: _contrastive(xp, **i), wrt=("x1", "x2", "y_true"), finite_differences=False),

    # cosine similarity (Keras)
    Case("cosine_similarity", "cosine_similarity(y_true, y_pred{opts})",
         lambda rng: {"y_true": rng.normal(size=(B, D)), "y_pred": rng.normal(size=(B, D))},
         _cosine, wrt=("y_true", "y_pred"),
         extra={"optax": lambda i: -optax.losses.cosine_similarity(i["y_pred"], i["y_true"]).mean()}),
    Case("cosine_similarity-axis0", "cosine_similarity(y_true, y_pred, axis=0{opts})",
         lambda rng: {"y_true": rng.normal(size=(D, B)), "y_pred": rng.normal(size=(D, B))},
         lambda xp, **i: _cosine(xp, **i, axis=0), wrt=("y_true", "y_pred")),
    Case("cosine_similarity-zero-vectors", "cosine_similarity(y_true, y_pred{opts})", _with_zero_rows,
         _cosine, wrt=("y_true", "y_pred"), finite_differences=False),
    Case("cosine_similarity-parallel", "cosine_similarity(y_true, y_pred{opts})",
         lambda rng: {"y_true": (t := rng.normal(size=(B, D))), "y_pred": t * np.array([3.0, -2.0, 1e-5, 1e5, 1.0, -1.0])[:, None]},
         _cosine, wrt=("y_true", "y_pred"), finite_differences=False),
    Case("cosine_similarity-scales", "cosine_similarity(y_true, y_pred{opts})",
         lambda rng: {"y_true": rng.normal(size=(B, D)) * 1e-5,
                      "y_pred": rng.normal(size=(B, D)) * np.array([1e-6, 1e-3, 1.0, 1e3, 1e6, 1e100])[:, None]},
         _cosine, wrt=("y_true", "y_pred"), finite_differences=False),
    Case("triplet_batch_all-margin-input-grad", "triplet_batch_all(embeddings, labels, margin=m)",
         lambda rng: {**_embeddings()(rng), "m": np.array(0.8)},
         lambda xp, m, **i: _batch_all(xp, **i, margin=m), wrt=("embeddings", "m"), reducible=False),
    # triplet with PyTorch's distance swap
    Case("triplet-swap", "triplet(anchor, positive, negative, margin=1.0, swap=true{opts})", _swap_triplets,
         lambda xp, **i: _triplet(xp, **i, margin=1.0, swap=True), wrt=("anchor", "positive", "negative")),
    Case("triplet-euclidean-swap", "triplet(anchor, positive, negative, margin=1.0, squared=false, swap=true{opts})",
         _swap_triplets, lambda xp, **i: _triplet(xp, **i, margin=1.0, squared=False, swap=True),
         wrt=("anchor", "positive", "negative")),

    # PyTorch's pairwise ranking and embedding losses
    Case("margin_ranking", "margin_ranking(x1, x2, y_true{opts})",
         lambda rng: {"x1": rng.normal(size=2 * B), "x2": rng.normal(size=2 * B), "y_true": _pm1_labels(rng, 2 * B)},
         lambda xp, **i: _margin_ranking(xp, **i), wrt=("x1", "x2")),
    Case("margin_ranking-margin-input", "margin_ranking(x1, x2, y_true, margin=m{opts})",
         lambda rng: {"x1": rng.normal(size=(B, 2)), "x2": rng.normal(size=(B, 2)),
                      "y_true": _pm1_labels(rng, 2 * B).reshape(B, 2), "m": np.array(0.4)},
         lambda xp, m, **i: _margin_ranking(xp, **i, margin=m), wrt=("x1", "x2", "m")),
    Case("cosine_embedding", "cosine_embedding(x1, x2, y_true{opts})", _pairs,
         lambda xp, **i: _cosine_embedding(xp, **i), wrt=("x1", "x2")),
    Case("cosine_embedding-margin", "cosine_embedding(x1, x2, y_true, margin=m{opts})",
         lambda rng: {**_pairs(rng), "m": np.array(-0.3)},
         lambda xp, m, **i: _cosine_embedding(xp, **i, margin=m), wrt=("x1", "x2", "m")),
    Case("cosine_embedding-axis-0", "cosine_embedding(x1, x2, y_true, margin=0.1, axis=0{opts})",
         lambda rng: {"x1": rng.normal(size=(D, B)), "x2": rng.normal(size=(D, B)), "y_true": _pm1_labels(rng)},
         lambda xp, **i: _cosine_embedding(xp, **i, margin=0.1, axis=0), wrt=("x1", "x2")),
    Case("cosine_embedding-other-labels", "cosine_embedding(x1, x2, y_true{opts})",  # a label 0 adds 0, as in torch
         lambda rng: {**_pairs(rng), "y_true": np.array([1.0, -1.0, 0.0, 1.0, 0.0, -1.0])},
         lambda xp, **i: _cosine_embedding(xp, **i), wrt=("x1", "x2")),
    Case("hinge_embedding", "hinge_embedding(y_true, y_pred{opts})", _distances,
         lambda xp, **i: _hinge_embedding(xp, **i)),
    Case("hinge_embedding-margin-input", "hinge_embedding(y_true, y_pred, margin=m{opts})",
         lambda rng: {**_distances(rng), "m": np.array(1.7)},
         lambda xp, m, **i: _hinge_embedding(xp, **i, margin=m), wrt=("y_pred", "m")),
]


# --- from optax and Keras (issue 16): NT-Xent and Circle loss ---------------------------------------

def _ntxent(xp, embeddings, labels, temperature=0.07):
    """Chen et al. 2020 (SimCLR): for each positive pair (i, j), -log(e^s_ij / (e^s_ij + sum over the
    negatives k of i of e^s_ik)), s = cosine/temperature, averaged over the positive pairs."""
    u = embeddings / xp.sqrt(xp.maximum(xp.sum(embeddings**2, axis=-1, keepdims=True), 2.220446049250313e-16))
    s = u @ u.T / temperature
    same = labels[:, None] == labels[None, :]
    positive = same & ~np.eye(len(labels), dtype=bool)
    negatives = xp.where(same, -np.inf, s)
    m = xp.max(xp.where(same, s, negatives), axis=1, keepdims=True)  # a finite shift: every row has itself
    denominator = xp.exp(s - m) + xp.sum(xp.exp(negatives - m), axis=1, keepdims=True)
    terms = xp.where(positive, xp.log(denominator) + m - s, 0.0)
    return xp.sum(terms) / np.sum(positive)


def _circle(xp, y_true, y_pred, gamma=80.0, margin=0.4):
    """Sun et al. 2020, the pair form: softplus(logsumexp_p(-gamma a_p (m - d_p)) + logsumexp_n(gamma a_n (1 - m - d_n)))
    with cosine distances d (every row of these samples has a positive and a negative)."""
    d = xp.maximum(1 - y_pred @ y_pred.T, 0.0)
    same = y_true[:, None] == y_true[None, :]
    positive = same & ~np.eye(len(y_true), dtype=bool)
    pull = -gamma * xp.maximum(margin + d, 0.0) * (margin - d)
    push = gamma * xp.maximum(1 + margin - d, 0.0) * (1 - margin - d)

    def logsumexp(x, mask):
        m = xp.max(xp.where(mask, x, -np.inf), axis=1, keepdims=True)
        return xp.log(xp.sum(xp.where(mask, xp.exp(x - m), 0.0), axis=1)) + m[:, 0]

    return xp.logaddexp(0.0, logsumexp(pull, positive) + logsumexp(push, ~same))


def _unit_rows(labels, scale=1.0):
    def make(rng):
        e = rng.normal(size=(len(labels), 3))
        return {"y_true": labels, "y_pred": e / np.linalg.norm(e, axis=-1, keepdims=True) * scale}
    return make


PAIRED = np.array([0, 1, 0, 2, 1, 0, 2, 1])  # every label at least twice: every row has a positive

CASES += [
    Case("ntxent", "ntxent(embeddings, labels)", _embeddings(), _ntxent, wrt=("embeddings",), reducible=False,
         rtol=1e-6, extra={"optax": lambda i: optax.losses.ntxent(i["embeddings"], i["labels"])}),
    Case("ntxent-temperature-input", "ntxent(embeddings, labels, temperature=t)",
         lambda rng: {**_embeddings(scale=2.0)(rng), "t": np.array(0.5)},
         lambda xp, t, **i: _ntxent(xp, **i, temperature=t), wrt=("embeddings", "t"), reducible=False),
    Case("ntxent-duplicates", "ntxent(embeddings, labels, temperature=0.3)", _duplicated,
         lambda xp, **i: _ntxent(xp, **i, temperature=0.3), wrt=("embeddings",), reducible=False),
    Case("circle", "circle(y_true, y_pred{opts})", _unit_rows(PAIRED), _circle, rtol=1e-6),
    Case("circle-inputs", "circle(y_true, y_pred, gamma=g, margin=m{opts})",
         lambda rng: {**_unit_rows(PAIRED)(rng), "g": np.array(20.0), "m": np.array(0.3)},
         lambda xp, g, m, **i: _circle(xp, **i, gamma=g, margin=m), wrt=("y_pred", "g", "m")),
    Case("circle-not-unit", "circle(y_true, y_pred, gamma=8.0, margin=0.25{opts})", _unit_rows(PAIRED, 1.3),
         lambda xp, **i: _circle(xp, **i, gamma=8.0, margin=0.25)),
]
