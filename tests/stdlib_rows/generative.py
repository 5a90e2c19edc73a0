"""Generative-model losses: references written from each paper's formula."""

import numpy as np

from . import Case

N, D, H = 6, 4, 5


def _softplus(xp, x):
    return xp.logaddexp(x, 0.0)


def _gaussian_kl(xp, mu, log_var):
    """Kingma and Welling 2014, appendix B: -0.5*sum(1 + log s^2 - mu^2 - s^2)."""
    return -0.5 * xp.sum(1 + log_var - mu**2 - xp.exp(log_var), axis=-1)


def _latents(rng):
    return {"mu": rng.normal(size=(N, D)), "log_var": 0.5 * rng.normal(size=(N, D))}


def _beta_vae(xp, x, x_recon, mu, log_var, beta=1.0, likelihood="bernoulli"):
    if likelihood == "bernoulli":  # -(x*log(p) + (1 - x)*log(1 - p)), p = sigmoid(x_recon), from the logit
        nll = x * _softplus(xp, -x_recon) + (1 - x) * _softplus(xp, x_recon)
    else:
        nll = 0.5 * (x - x_recon) ** 2
    return xp.sum(nll, axis=-1) + beta * _gaussian_kl(xp, mu, log_var)


def _vae_inputs(rng):
    return {"x": rng.uniform(0, 1, size=(N, 7)), "x_recon": rng.normal(size=(N, 7)), **_latents(rng)}


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
    Case("gaussian_kl", "gaussian_kl(mu, log_var{opts})", _latents, lambda xp, **i: _gaussian_kl(xp, **i),
         wrt=("mu", "log_var")),
    Case("beta_vae", "beta_vae(x, x_recon, mu, log_var{opts})", _vae_inputs, lambda xp, **i: _beta_vae(xp, **i),
         wrt=("x_recon", "mu", "log_var")),
    Case("beta_vae-gaussian", 'beta_vae(x, x_recon, mu, log_var, beta=4.0, likelihood="gaussian"{opts})', _vae_inputs,
         lambda xp, **i: _beta_vae(xp, **i, beta=4.0, likelihood="gaussian"), wrt=("x", "x_recon", "mu", "log_var")),
    Case("beta_vae-beta-input", "beta_vae(x, x_recon, mu, log_var, beta=b{opts})",
         lambda rng: {**_vae_inputs(rng), "b": np.array(0.3)},
         lambda xp, b, **i: _beta_vae(xp, **i, beta=b), wrt=("x_recon", "b")),
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
