"""Generative-model losses: references written from each paper's formula."""

import numpy as np

from . import Case

N, D, H = 6, 4, 5


def _softplus(xp, x):
    return xp.logaddexp(x, 0.0)


def _discriminator(xp, d_real, d_fake, kind):
    if kind == "ns":  # binary cross-entropy from logits: -log(sigmoid(d_real)) - log(1 - sigmoid(d_fake))
        return _softplus(xp, -d_real) + _softplus(xp, d_fake)
    if kind == "hinge":
        return xp.maximum(0, 1 - d_real) + xp.maximum(0, 1 + d_fake)
    return d_fake - d_real


def _logits(*names, scale=2.0):
    return lambda rng: {n: scale * rng.normal(size=N) for n in names}


def _critic_gradient(xp, x, W, w2):
    """d sum(tanh(x @ W) @ w2) / dx, by hand: ((1 - tanh(x @ W)^2) * w2) @ W.T."""
    return ((1 - xp.tanh(x @ W) ** 2) * w2) @ W.T


CASES = [
    Case("gan_generator", "gan_generator(d_fake{opts})", _logits("d_fake"),
         lambda xp, d_fake: _softplus(xp, -d_fake), wrt=("d_fake",)),  # -log(sigmoid(d_fake))
    Case("gan_generator-hinge", 'gan_generator(d_fake, kind="hinge"{opts})', _logits("d_fake"),
         lambda xp, d_fake: -d_fake, wrt=("d_fake",)),
    Case("gan_generator-wasserstein", 'gan_generator(d_fake, kind="wasserstein"{opts})', _logits("d_fake"),
         lambda xp, d_fake: -d_fake, wrt=("d_fake",)),
    Case("gan_generator-logits-1000", "gan_generator(d_fake{opts})",
         lambda rng: {"d_fake": np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])},
         lambda xp, d_fake: _softplus(xp, -d_fake), wrt=("d_fake",), finite_differences=False),
    Case("gan_discriminator", "gan_discriminator(d_real, d_fake{opts})", _logits("d_real", "d_fake"),
         lambda xp, **i: _discriminator(xp, **i, kind="ns"), wrt=("d_real", "d_fake")),
    Case("gan_discriminator-hinge", 'gan_discriminator(d_real, d_fake, kind="hinge"{opts})',
         _logits("d_real", "d_fake"), lambda xp, **i: _discriminator(xp, **i, kind="hinge"), wrt=("d_real", "d_fake")),
    Case("gan_discriminator-wasserstein", 'gan_discriminator(d_real, d_fake, kind="wasserstein"{opts})',
         _logits("d_real", "d_fake"), lambda xp, **i: _discriminator(xp, **i, kind="wasserstein"),
         wrt=("d_real", "d_fake")),
    Case("gan_discriminator-logits-1000", "gan_discriminator(d_real, d_fake{opts})",
         lambda rng: {"d_real": np.array([-1000.0, 1000.0, 0.0]), "d_fake": np.array([1000.0, -1000.0, 3.0])},
         lambda xp, d_real, d_fake: _softplus(xp, -d_real) + _softplus(xp, d_fake), wrt=("d_real", "d_fake"),
         finite_differences=False),
    Case("gradient_penalty", "gradient_penalty(tanh(x @ W) @ w2, x{opts})",
         lambda rng: {"x": rng.normal(size=(N, 3)), "W": rng.normal(size=(3, H)), "w2": rng.normal(size=H)},
         lambda xp, x, W, w2: (xp.sqrt(xp.sum(_critic_gradient(xp, x, W, w2) ** 2, axis=-1)) - 1) ** 2,
         wrt=("x", "W", "w2")),
]
