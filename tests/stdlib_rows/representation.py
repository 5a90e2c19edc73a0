"""Representation-learning losses: references written from each paper's formula, in the form
pytorch-metric-learning (supcon, multi_similarity, arcface, cosface) or the paper's reference code
(vicreg, barlow_twins) computes it. tests/test_representation_losses.py checks these losses against
pml itself, in float32 and on the torch backend."""

import numpy as np

from . import Case

D, C = 3, 5
PAIRED = np.array([0, 1, 0, 2, 1, 0, 2, 1])  # every label at least twice: every anchor has a positive
SINGLETON = np.array([0, 1, 0, 2, 1, 0, 3, 1])  # labels 2 and 3 once: anchors without a positive


def _unit_rows(xp, x):
    """torch.nn.functional.normalize: x / max(||x||, 1e-12), row by row."""
    return x / xp.maximum(xp.sqrt(xp.sum(x**2, axis=-1, keepdims=True)), 1e-12)


def _masks(labels):
    same = labels[:, None] == labels[None, :]
    return same & ~np.eye(len(labels), dtype=bool), ~same


def _supcon_anchors(xp, embeddings, labels, temperature=0.1):
    """Khosla et al. 2020, equation 2 (L_out): -1/|P(i)| sum_p log(exp(s_ip) / sum_{a != i} exp(s_ia)),
    s the cosines over temperature; 0 for an anchor without positives."""
    positive, _ = _masks(labels)
    others = ~np.eye(len(labels), dtype=bool)
    u = _unit_rows(xp, embeddings)
    s = u @ u.T / temperature
    m = xp.max(xp.where(others, s, -np.inf), axis=1, keepdims=True)
    log_denominator = xp.log(xp.sum(xp.where(others, xp.exp(s - m), 0.0), axis=1, keepdims=True)) + m
    return -xp.sum(xp.where(positive, s - log_denominator, 0.0), axis=1) / np.maximum(positive.sum(axis=1), 1)


def _supcon(xp, embeddings, labels, temperature=0.1):
    """pml's SupConLoss: 0 without a positive or a negative pair in the batch, else the mean over the
    anchors whose loss is above 0 (AvgNonZeroReducer)."""
    positive, negative = _masks(labels)
    if not (positive.any() and negative.any()):
        return 0.0 * xp.sum(embeddings)
    losses = _supcon_anchors(xp, embeddings, labels, temperature)
    kept = losses > 0
    return xp.sum(xp.where(kept, losses, 0.0)) / xp.maximum(xp.sum(kept), 1)


def _multi_similarity(xp, embeddings, labels, alpha=2.0, beta=50.0, base=0.5):
    """Wang et al. 2019, equation 14 over every pair (no mining): (1/alpha) log(1 + sum_p e^(-alpha (s_ip - base)))
    + (1/beta) log(1 + sum_n e^(beta (s_in - base))), s the cosines."""
    positive, negative = _masks(labels)
    u = _unit_rows(xp, embeddings)
    s = u @ u.T
    pull = xp.log1p(xp.sum(xp.where(positive, xp.exp(-alpha * (s - base)), 0.0), axis=1)) / alpha
    push = xp.log1p(xp.sum(xp.where(negative, xp.exp(beta * (s - base)), 0.0), axis=1)) / beta
    return pull + push


def _cross_entropy(xp, logits, labels):
    m = xp.max(logits, axis=1, keepdims=True)
    log_z = xp.log(xp.sum(xp.exp(logits - m), axis=1)) + m[:, 0]
    return log_z - xp.sum(xp.where(np.eye(logits.shape[1], dtype=bool)[labels], logits, 0.0), axis=1)


def _cosines(xp, embeddings, W):
    """pml's CosineSimilarity(embeddings, W.T): rows of the embeddings against columns of W."""
    return _unit_rows(xp, embeddings) @ _unit_rows(xp, W.T).T


def _arcface(xp, embeddings, labels, W, margin=0.5, scale=64.0, cone_points=False):
    """Deng et al. 2019, equation 3, as pml's ArcFaceLoss: the target logit cos(theta + m), theta =
    arccos(clip(c, -1, 1)), or cos(theta) - m sin(m) beyond theta = pi - m; scaled, cross-entropy.

    cone_points=True writes cos(theta + m) as c cos m - sin(theta) sin m with sin(theta) =
    sqrt(1 - c^2) and gradient 0 where c = +-1 (the angle is not differentiable in the embedding
    there), for jax.grad to have a value at cosines of exactly +-1."""
    c = _cosines(xp, embeddings, W)
    onehot = np.eye(W.shape[1], dtype=bool)[labels]
    ct = xp.sum(xp.where(onehot, c, 0.0), axis=1)
    if cone_points:
        q = 1 - ct**2
        sin_theta = xp.where(q > 0, xp.sqrt(xp.where(q > 0, q, 1.0)), 0.0)
        widened = ct * xp.cos(margin) - sin_theta * xp.sin(margin)
        theta_ok = ct >= -xp.cos(margin)
    else:
        theta = xp.arccos(xp.clip(ct, -1, 1))
        widened = xp.cos(theta + margin)
        theta_ok = theta <= np.pi - margin
    target = xp.where(theta_ok, widened, ct - margin * xp.sin(margin))
    return _cross_entropy(xp, scale * xp.where(onehot, target[:, None], c), labels)


def _cosface(xp, embeddings, labels, W, margin=0.35, scale=64.0):
    """Wang et al. 2018, equation 4, as pml's CosFaceLoss: the target cosine lowered by m, scaled, cross-entropy."""
    c = _cosines(xp, embeddings, W)
    return _cross_entropy(xp, scale * (c - margin * np.eye(W.shape[1])[labels]), labels)


def _off_diagonal_squares(xp, m):
    return xp.sum(m**2) - xp.sum(xp.diagonal(m) ** 2)


def _vicreg(xp, z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    """Bardes et al. 2022, equations 1-6, as main_vicreg.py: unbiased variance and covariance, eps 1e-4."""
    d = z1.shape[1]

    def variance(z):
        return xp.mean(xp.maximum(1 - xp.sqrt(xp.var(z, axis=0, ddof=1) + 1e-4), 0.0))

    def covariance(z):
        return _off_diagonal_squares(xp, xp.cov(z, rowvar=False)) / d

    return (sim_coeff * xp.mean((z1 - z2) ** 2) + std_coeff * (variance(z1) + variance(z2)) / 2
            + cov_coeff * (covariance(z1) + covariance(z2)))


def _barlow_twins(xp, z1, z2, lambd=0.0051):
    """Zbontar et al. 2021, equation 1, as main.py: BatchNorm1d(affine=False) in training mode (biased
    variance, eps 1e-5) on each view, C = bn(z1).T @ bn(z2) / N."""
    def bn(z):
        return (z - xp.mean(z, axis=0)) / xp.sqrt(xp.var(z, axis=0) + 1e-5)

    c = bn(z1).T @ bn(z2) / z1.shape[0]
    return xp.sum((1 - xp.diagonal(c)) ** 2) + lambd * _off_diagonal_squares(xp, c)


def _embeddings(labels, scale=1.0):
    return lambda rng: {"embeddings": rng.normal(size=(len(labels), D)) * scale, "labels": labels}


def _duplicated(rng):
    e = rng.normal(size=(len(PAIRED), D))
    e[2] = e[0]  # same label as row 0: cosine 1
    e[4] = -e[0]  # another label: cosine -1
    return {"embeddings": e, "labels": PAIRED}


def _centres(labels, scale=1.0):
    def make(rng):
        return {"embeddings": rng.normal(size=(len(labels), D)) * scale, "labels": labels,
                "W": rng.normal(size=(D, C))}
    return make


CLASSES = np.array([0, 1, 2, 1, 0, 3, 2, 0])  # class 4 absent from the batch


def _cone_points(rng):
    """Embeddings along their class centre (cosine exactly 1) and opposite it (exactly -1), exactly:
    the centres are scaled basis vectors, the embeddings scaled basis vectors too."""
    W = np.zeros((D, C))
    W[0, 0], W[1, 1], W[2, 2], W[0, 3], W[1, 4] = 2.0, 0.5, 1.0, -3.0, 1.5
    e = rng.normal(size=(6, D))
    e[0] = [3.0, 0.0, 0.0]  # label 0: along its centre
    e[1] = [0.0, -2.0, 0.0]  # label 1: opposite its centre
    e[2] = [0.0, 0.0, 0.25]  # label 2: along
    e[3] = [4.0, 0.0, 0.0]  # label 3: opposite
    return {"embeddings": e, "labels": np.array([0, 1, 2, 3, 4, 1]), "W": W}


def _beyond(rng):
    """Targets at angles beyond pi - margin (cosines below -cos(0.5) = -0.878): pml's fallback."""
    make = _centres(CLASSES)(rng)
    W, e = make["W"], make["embeddings"]
    for i, y in enumerate(CLASSES[:4]):
        e[i] = -W[:, y] + 0.2 * rng.normal(size=D)
    return make


def _views(n=10, d=4, scale=1.0):
    def make(rng):
        z1 = rng.normal(size=(n, d)) * scale
        return {"z1": z1, "z2": z1 + 0.5 * rng.normal(size=(n, d)) * scale}
    return make


def _constant_feature(rng):
    views = _views()(rng)
    views["z1"][:, 1] = 0.7  # variance 0: only the eps keeps the square roots' gradients finite
    return views


def _centre_rows(name, reference, margin, at_cone_points):
    """A class-centre loss's rows: defaults, margin and scale as inputs, and cosines of exactly +-1
    (``at_cone_points``, the reference at scale 16 there)."""
    wrt = ("embeddings", "W")
    return [
        Case(name, f"{name}(embeddings, labels, W{{opts}})", _centres(CLASSES), reference, wrt=wrt, rtol=1e-6),
        Case(f"{name}-inputs", f"{name}(embeddings, labels, W, margin=m, scale=s{{opts}})",
             lambda rng: {**_centres(CLASSES)(rng), "m": np.array(margin), "s": np.array(8.0)},
             lambda xp, m, s, **i: reference(xp, **i, margin=m, scale=s), wrt=(*wrt, "m", "s")),
        Case(f"{name}-cosines-at-1-and-minus-1", f"{name}(embeddings, labels, W, scale=16.0{{opts}})", _cone_points,
             at_cone_points, wrt=wrt),
    ]


CASES = [
    # supervised contrastive (every anchor has a positive and a negative: pml's mean is the plain mean)
    Case("supcon", "supcon(embeddings, labels{opts})", _embeddings(PAIRED), _supcon_anchors,
         wrt=("embeddings",)),
    Case("supcon-temperature-input", "supcon(embeddings, labels, temperature=t{opts})",
         lambda rng: {**_embeddings(PAIRED)(rng), "t": np.array(0.5)},
         lambda xp, t, **i: _supcon_anchors(xp, **i, temperature=t), wrt=("embeddings", "t")),
    Case("supcon-duplicates", "supcon(embeddings, labels, temperature=0.3{opts})", _duplicated,
         lambda xp, **i: _supcon_anchors(xp, **i, temperature=0.3), wrt=("embeddings",)),
    # (a temperature at which no anchor's loss rounds to 0 in float32, which pml leaves out of the mean)
    Case("supcon-scaled", "supcon(embeddings, labels, temperature=0.5{opts})", _embeddings(PAIRED, 1e3),
         lambda xp, **i: _supcon_anchors(xp, **i, temperature=0.5), wrt=("embeddings",)),
    # the peer's hard cases: anchors without a positive are left out of the mean; all one class is 0
    Case("supcon-singleton-class", "supcon(embeddings, labels)", _embeddings(SINGLETON), _supcon,
         wrt=("embeddings",), reducible=False),
    Case("supcon-one-class", "supcon(embeddings, labels)", _embeddings(np.zeros(5, dtype=int)), _supcon,
         wrt=("embeddings",), reducible=False),
    Case("supcon-all-distinct", "supcon(embeddings, labels)", _embeddings(np.arange(5)), _supcon,
         wrt=("embeddings",), reducible=False),

    # multi-similarity
    Case("multi_similarity", "multi_similarity(embeddings, labels{opts})", _embeddings(PAIRED),
         _multi_similarity, wrt=("embeddings",)),
    Case("multi_similarity-inputs", "multi_similarity(embeddings, labels, alpha=a, beta=b, base=m{opts})",
         lambda rng: {**_embeddings(PAIRED)(rng), "a": np.array(1.5), "b": np.array(10.0), "m": np.array(0.2)},
         lambda xp, a, b, m, **i: _multi_similarity(xp, **i, alpha=a, beta=b, base=m),
         wrt=("embeddings", "a", "b", "m")),
    Case("multi_similarity-singleton-class", "multi_similarity(embeddings, labels{opts})",
         _embeddings(SINGLETON), _multi_similarity, wrt=("embeddings",)),
    Case("multi_similarity-one-class", "multi_similarity(embeddings, labels{opts})",
         _embeddings(np.zeros(5, dtype=int)), _multi_similarity, wrt=("embeddings",)),
    Case("multi_similarity-duplicates", "multi_similarity(embeddings, labels{opts})", _duplicated,
         _multi_similarity, wrt=("embeddings",)),

    # ArcFace and CosFace (their inputs' rows: margins 0.3 and 0.2)
    *_centre_rows("arcface", _arcface, 0.3, lambda xp, **i: _arcface(xp, **i, scale=16.0, cone_points=True)),
    Case("arcface-beyond-pi-minus-margin", "arcface(embeddings, labels, W, scale=16.0{opts})", _beyond,
         lambda xp, **i: _arcface(xp, **i, scale=16.0), wrt=("embeddings", "W")),
    *_centre_rows("cosface", _cosface, 0.2, lambda xp, **i: _cosface(xp, **i, scale=16.0)),

    # VICReg: feature spreads below 1 (scale 0.3) and above it (scale 2)
    Case("vicreg", "vicreg(z1, z2)", _views(scale=0.3), _vicreg, wrt=("z1", "z2"), reducible=False),
    Case("vicreg-spread", "vicreg(z1, z2)", _views(scale=2.0), _vicreg, wrt=("z1", "z2"), reducible=False),
    Case("vicreg-inputs", "vicreg(z1, z2, sim_coeff=a, std_coeff=b, cov_coeff=c)",
         lambda rng: {**_views(scale=0.5)(rng), "a": np.array(5.0), "b": np.array(3.0), "c": np.array(0.5)},
         lambda xp, a, b, c, **i: _vicreg(xp, **i, sim_coeff=a, std_coeff=b, cov_coeff=c),
         wrt=("z1", "z2", "a", "b", "c"), reducible=False),
    Case("vicreg-constant-feature", "vicreg(z1, z2)", _constant_feature, _vicreg, wrt=("z1", "z2"),
         reducible=False),

    # Barlow Twins
    Case("barlow_twins", "barlow_twins(z1, z2)", _views(n=12, d=5), _barlow_twins, wrt=("z1", "z2"),
         reducible=False),
    Case("barlow_twins-lambd-input", "barlow_twins(z1, z2, lambd=lam)",
         lambda rng: {**_views(scale=3.0)(rng), "lam": np.array(0.2)},
         lambda xp, lam, **i: _barlow_twins(xp, **i, lambd=lam), wrt=("z1", "z2", "lam"), reducible=False),
    Case("barlow_twins-constant-feature", "barlow_twins(z1, z2)", _constant_feature, _barlow_twins,
         wrt=("z1", "z2"), reducible=False),
]
