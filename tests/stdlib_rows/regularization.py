"""Regularisers: references written from each penalty's published formula (one number, no reduction)."""

import numpy as np
import optax

from . import Case, normal


def _abs(xp, w):
    """|w| with lossdsl's subgradient abs'(0) = 0 (jnp.abs has 1 at 0); the same value."""
    return xp.sign(w) * w


def _with_zeros(rng):
    w = rng.normal(size=(5, 3))
    w[0, :] = 0.0
    w[2, 1] = 0.0
    return {"w": w}


def _l1(xp, w, lam=0.01):
    return lam * xp.sum(_abs(xp, w))


def _l2(xp, w, lam=0.01):
    return lam * xp.sum(w**2)


def _elastic_net(xp, w, alpha=0.1, l1_ratio=0.5):
    return alpha * l1_ratio * xp.sum(_abs(xp, w)) + alpha * (1 - l1_ratio) * xp.sum(w**2)


W = normal(5, 3)

CASES = [
    Case("l1", "l1(w, 0.1)", lambda rng: {"w": W(rng)}, lambda xp, w: _l1(xp, w, 0.1), wrt=("w",), reducible=False),
    Case("l1-defaults", "l1(w)", lambda rng: {"w": W(rng)}, _l1, wrt=("w",), reducible=False),
    Case("l1-lam-input", "l1(w, lam=lam)", lambda rng: {"w": W(rng), "lam": np.array(0.3)},
         lambda xp, w, lam: _l1(xp, w, lam), wrt=("w", "lam"), reducible=False),
    Case("l1-zeros", "l1(w, lam=0.5)", _with_zeros, lambda xp, w: _l1(xp, w, 0.5), wrt=("w",), reducible=False,
         finite_differences=False),
    Case("l1-1e150", "l1(w, lam=0.5)", lambda rng: {"w": W(rng) * 1e150}, lambda xp, w: _l1(xp, w, 0.5),
         wrt=("w",), reducible=False, finite_differences=False),

    Case("l2", "l2(w, 0.1)", lambda rng: {"w": W(rng)}, lambda xp, w: _l2(xp, w, 0.1), wrt=("w",), reducible=False,
         extra={"optax": lambda i: 2 * 0.1 * optax.losses.l2_loss(i["w"]).sum()}),
    Case("l2-defaults", "l2(w)", lambda rng: {"w": W(rng)}, _l2, wrt=("w",), reducible=False),
    Case("l2-lam-input", "l2(w, lam=lam)", lambda rng: {"w": W(rng), "lam": np.array(0.3)},
         lambda xp, w, lam: _l2(xp, w, lam), wrt=("w", "lam"), reducible=False),
    Case("l2-zeros", "l2(w, lam=0.5)", _with_zeros, lambda xp, w: _l2(xp, w, 0.5), wrt=("w",), reducible=False,
         finite_differences=False),
    Case("l2-1e150", "l2(w, lam=0.5)", lambda rng: {"w": W(rng) * 1e150}, lambda xp, w: _l2(xp, w, 0.5),
         wrt=("w",), reducible=False, finite_differences=False),

    Case("elastic_net", "elastic_net(w)", lambda rng: {"w": W(rng)}, _elastic_net, wrt=("w",), reducible=False),
    Case("elastic_net-options", "elastic_net(w, alpha=0.3, l1_ratio=0.7)", lambda rng: {"w": W(rng)},
         lambda xp, w: _elastic_net(xp, w, 0.3, 0.7), wrt=("w",), reducible=False),
    Case("elastic_net-inputs", "elastic_net(w, alpha=a, l1_ratio=r)",
         lambda rng: {"w": W(rng), "a": np.array(0.2), "r": np.array(0.35)},
         lambda xp, w, a, r: _elastic_net(xp, w, a, r), wrt=("w", "a", "r"), reducible=False),
    Case("elastic_net-l1_ratio-1-is-l1", "elastic_net(w, alpha=0.2, l1_ratio=1)", lambda rng: {"w": W(rng)},
         lambda xp, w: _l1(xp, w, 0.2), wrt=("w",), reducible=False),
    Case("elastic_net-l1_ratio-0-is-l2", "elastic_net(w, alpha=0.2, l1_ratio=0)", lambda rng: {"w": W(rng)},
         lambda xp, w: _l2(xp, w, 0.2), wrt=("w",), reducible=False,
         extra={"optax": lambda i: 2 * 0.2 * optax.losses.l2_loss(i["w"]).sum()}),
    Case("elastic_net-zeros", "elastic_net(w, alpha=0.3, l1_ratio=0.7)", _with_zeros,
         lambda xp, w: _elastic_net(xp, w, 0.3, 0.7), wrt=("w",), reducible=False, finite_differences=False),
]
