"""Probabilistic losses: references written from each loss's published formula.

Where a reference masks a log with ``where`` (0*log 0 = 0, PyTorch's Stirling term for y > 1), the
masked operand is replaced first, so that jax.grad of the reference does not take 0*inf from the
untaken side.
"""

import math

import jax.numpy as jnp
import numpy as np
import optax

from . import Case

N, C, D = 6, 5, 3


def _distributions(shape=(N, C), axis=-1, zeros=False):
    def make(rng):
        out = {}
        for name in ("y_true", "y_pred"):
            z = rng.normal(size=shape) * 1.5
            e = np.exp(z - z.max(axis=axis, keepdims=True))
            if zeros and name == "y_true":
                e = e * (rng.uniform(size=shape) < 0.6)
                e[(slice(None),) * (axis % len(shape)) + (0,)] += 0.1  # no all-zero row
            out[name] = e / e.sum(axis=axis, keepdims=True)
        return out
    return make


def _kl(xp, y_true, y_pred, axis=-1):
    """sum(P*log(P/Q)) with 0*log(0) = 0: torch kl_div(log Q, P) summed over the axis."""
    positive = y_true > 0
    p, q = xp.where(positive, y_true, 1.0), xp.where(positive, y_pred, 1.0)
    return xp.sum(xp.where(positive, y_true * (xp.log(p) - xp.log(q)), 0.0), axis=axis)


def _optax_kl(i):
    return optax.losses.kl_divergence(jnp.log(jnp.asarray(i["y_pred"])), jnp.asarray(i["y_true"])).mean()


def _gaussian(var_shape=(N, D), low=0.2):
    def make(rng):
        mu = rng.normal(size=(N, D))
        return {"y_true": mu + rng.normal(size=(N, D)), "y_pred": mu, "var": rng.uniform(low, 2.0, size=var_shape)}
    return make


def _gaussian_nll(xp, y_true, y_pred, var, full=False, eps=1e-6):
    """torch.nn.functional.gaussian_nll_loss(y_pred, y_true, var, full, eps), unreduced."""
    v = xp.maximum(var, eps)
    loss = 0.5 * (xp.log(v) + (y_pred - y_true) ** 2 / v)
    return loss + 0.5 * math.log(2 * math.pi) if full else loss


def _counts(log_input=True, positive=False):
    """Counts with 0, 1, 2 and 7 among them (below, at and above the Stirling threshold); or, for
    finite differences with respect to the counts, positive non-integer ones away from 1."""
    def make(rng):
        rate = rng.uniform(0.3, 5.0, size=(N, D))
        y = rng.poisson(rate).astype(float)
        if positive:
            y = y + np.where(y > 1, 0.5, 0.3)
        else:
            y.flat[:4] = [0.0, 1.0, 2.0, 7.0]
        pred = rate * rng.uniform(0.7, 1.4, size=(N, D))
        return {"y_true": y, "y_pred": np.log(pred) if log_input else pred}
    return make


def _poisson_nll(xp, y_true, y_pred, log_input=True, full=False, eps=1e-8):
    """torch.nn.functional.poisson_nll_loss(y_pred, y_true, log_input, full, eps), unreduced."""
    loss = xp.exp(y_pred) - y_true * y_pred if log_input else y_pred - y_true * xp.log(y_pred + eps)
    if full:
        big = y_true > 1
        y = xp.where(big, y_true, 2.0)
        loss = loss + xp.where(big, y * xp.log(y) - y + 0.5 * xp.log(2 * math.pi * y), 0.0)
    return loss


CASES = [
    # kl_div: KL(P || Q), one value per sample
    Case("kl_div", "kl_div(y_true, y_pred{opts})", _distributions(), lambda xp, **i: _kl(xp, **i),
         wrt=("y_true", "y_pred"), extra={"optax": _optax_kl}),
    Case("kl_div-zeros-in-target", "kl_div(y_true, y_pred{opts})", _distributions(zeros=True),
         lambda xp, **i: _kl(xp, **i), extra={"optax": _optax_kl}),
    Case("kl_div-zeros-in-target-grad-target", "kl_div(y_true, y_pred{opts})", _distributions(zeros=True),
         lambda xp, **i: _kl(xp, **i), wrt=("y_true", "y_pred"), finite_differences=False),  # P - h < 0
    Case("kl_div-zeros-in-both", "kl_div(y_true, y_pred{opts})",  # Q = 0 where P = 0: a 0 term
         lambda rng: {"y_true": np.array([[0.5, 0.5, 0.0], [0.2, 0.0, 0.8], [1.0, 0.0, 0.0]]),
                      "y_pred": np.array([[0.3, 0.7, 0.0], [0.25, 0.0, 0.75], [0.6, 0.4, 0.0]])},
         lambda xp, **i: _kl(xp, **i), wrt=("y_true", "y_pred"), finite_differences=False),
    Case("kl_div-axis-1", "kl_div(y_true, y_pred, axis=1{opts})", _distributions(shape=(N, C, 2), axis=1),
         lambda xp, **i: _kl(xp, **i, axis=1), wrt=("y_true", "y_pred")),
    Case("kl_div-equal", "kl_div(y_true, y_pred{opts})",  # KL(P || P) = 0, gradient w.r.t. Q is -1
         lambda rng: dict.fromkeys(("y_true", "y_pred"), _distributions()(rng)["y_true"]),
         lambda xp, **i: _kl(xp, **i)),

    # gaussian_nll
    Case("gaussian_nll", "gaussian_nll(y_true, y_pred, var{opts})", _gaussian(), lambda xp, **i: _gaussian_nll(xp, **i),
         wrt=("y_true", "y_pred", "var")),
    Case("gaussian_nll-full", "gaussian_nll(y_true, y_pred, var, full=true{opts})", _gaussian(),
         lambda xp, **i: _gaussian_nll(xp, **i, full=True), wrt=("y_pred", "var")),
    Case("gaussian_nll-per-sample-var", "gaussian_nll(y_true, y_pred, var{opts})", _gaussian(var_shape=(N, 1)),
         lambda xp, **i: _gaussian_nll(xp, **i), wrt=("y_pred", "var")),
    Case("gaussian_nll-eps", "gaussian_nll(y_true, y_pred, var, eps=0.3{opts})", _gaussian(low=0.01),
         lambda xp, **i: _gaussian_nll(xp, **i, eps=0.3), wrt=("y_pred", "var")),  # some var below eps
    Case("gaussian_nll-var-0", "gaussian_nll(y_true, y_pred, var{opts})",  # var = 0 floored at eps
         lambda rng: {**_gaussian()(rng), "var": np.array([0.0, 1e-9, 0.5] * N).reshape(N, D)},
         lambda xp, **i: _gaussian_nll(xp, **i), wrt=("y_pred", "var"), finite_differences=False),

    # poisson_nll
    Case("poisson_nll", "poisson_nll(y_true, y_pred{opts})", _counts(), lambda xp, **i: _poisson_nll(xp, **i)),
    Case("poisson_nll-grad-counts", "poisson_nll(y_true, y_pred{opts})", _counts(positive=True),
         lambda xp, **i: _poisson_nll(xp, **i), wrt=("y_true", "y_pred")),
    Case("poisson_nll-rate", "poisson_nll(y_true, y_pred, log_input=false{opts})", _counts(log_input=False),
         lambda xp, **i: _poisson_nll(xp, **i, log_input=False)),
    Case("poisson_nll-rate-grad-counts", "poisson_nll(y_true, y_pred, log_input=false{opts})",
         _counts(log_input=False, positive=True), lambda xp, **i: _poisson_nll(xp, **i, log_input=False),
         wrt=("y_true", "y_pred")),
    Case("poisson_nll-full", "poisson_nll(y_true, y_pred, full=true{opts})", _counts(),
         lambda xp, **i: _poisson_nll(xp, **i, full=True)),
    Case("poisson_nll-rate-full", "poisson_nll(y_true, y_pred, log_input=false, full=true{opts})",
         _counts(log_input=False), lambda xp, **i: _poisson_nll(xp, **i, log_input=False, full=True)),
    Case("poisson_nll-full-grad-counts", "poisson_nll(y_true, y_pred, full=true{opts})",  # Stirling's y-derivative
         _counts(positive=True), lambda xp, **i: _poisson_nll(xp, **i, full=True), wrt=("y_true", "y_pred")),
    Case("poisson_nll-full-grad-counts-0-and-1", "poisson_nll(y_true, y_pred, full=true{opts})",
         _counts(), lambda xp, **i: _poisson_nll(xp, **i, full=True), wrt=("y_true", "y_pred"),
         finite_differences=False),  # a count of 0 is the edge of the range; 1 is the Stirling switch
    Case("poisson_nll-rate-eps", "poisson_nll(y_true, y_pred, log_input=false, eps=0.5{opts})",
         _counts(log_input=False), lambda xp, **i: _poisson_nll(xp, **i, log_input=False, eps=0.5)),
    Case("poisson_nll-rate-0", "poisson_nll(y_true, y_pred, log_input=false{opts})",  # finite through eps
         lambda rng: {"y_true": np.array([0.0, 1.0, 3.0, 0.0]), "y_pred": np.array([0.0, 0.0, 0.0, 2.0])},
         lambda xp, **i: _poisson_nll(xp, **i, log_input=False), finite_differences=False, rtol=1e-12),
    Case("poisson_nll-log-rate-large", "poisson_nll(y_true, y_pred{opts})",
         lambda rng: {"y_true": np.array([0.0, 5.0, 100.0, 1e4]), "y_pred": np.array([-50.0, 1.5, 4.6, 9.2])},
         lambda xp, **i: _poisson_nll(xp, **i), finite_differences=False),
]


# --- from optax (issue 16): the generalised KL divergence of unnormalised measures ------------------

def _convex_kl(xp, y_true, y_pred):
    """sum(P log(P/Q) - P + Q), Q = exp(y_pred), with 0 log 0 = 0."""
    p = y_true
    plogp = xp.where(p > 0, p * xp.log(xp.where(p > 0, p, 1.0)), 0.0)
    return xp.sum(plogp - p * y_pred + xp.exp(y_pred) - p, axis=-1)


def _measures(zeros=False):
    def make(rng):
        p = rng.uniform(0.1, 2.0, size=(6, 4))
        if zeros:
            p[0, 1], p[2, :2] = 0.0, 0.0
        return {"y_true": p, "y_pred": rng.normal(size=(6, 4))}
    return make


CASES += [
    Case("convex_kl", "convex_kl(y_true, y_pred{opts})", _measures(), _convex_kl, wrt=("y_true", "y_pred"),
         extra={"optax": lambda i: optax.losses.generalized_kl_divergence(i["y_pred"], i["y_true"]).mean()}),
    Case("convex_kl-zero-targets", "convex_kl(y_true, y_pred{opts})", _measures(zeros=True), _convex_kl),
]
