"""GLM deviances and the negative binomial likelihood: references written from scikit-learn's published
formulas (sklearn.metrics._regression's unit deviances) and scipy.stats.nbinom (jax.scipy.stats under jnp)."""

import jax.scipy.stats as jstats
import numpy as np
import scipy.stats

from . import Case

N, D = 6, 3


def _counts(zeros=True):
    """Counts with zeros among them (or positive non-integers, for gradients with respect to them) and a
    positive predicted mean near them."""
    def make(rng):
        mean = rng.uniform(0.5, 6.0, size=(N, D))
        y = rng.poisson(mean).astype(float)
        y = y if zeros else y + rng.uniform(0.2, 0.8, size=(N, D))
        if zeros:
            y.flat[:2] = 0.0
        return {"y_true": y, "y_pred": mean * rng.uniform(0.6, 1.5, size=(N, D))}
    return make


def _positive(rng):
    mean = rng.uniform(0.5, 4.0, size=(N, D))
    return {"y_true": mean * rng.gamma(4.0, 0.25, size=(N, D)), "y_pred": mean}


def _tweedie(xp, y_true, y_pred, power):
    """sklearn's _mean_tweedie_deviance, unreduced, for power >= 1."""
    if power == 1:
        y = xp.where(y_true > 0, y_true, 1.0)
        return 2 * (xp.where(y_true > 0, y_true * xp.log(y / y_pred), 0.0) - y_true + y_pred)
    if power == 2:
        return 2 * (xp.log(y_pred / y_true) + y_true / y_pred - 1)
    p = power
    return 2 * (y_true ** (2 - p) / ((1 - p) * (2 - p)) - y_true * y_pred ** (1 - p) / (1 - p)
                + y_pred ** (2 - p) / (2 - p))


def _nbinom_nll(xp, y_true, mu, alpha):
    stats = scipy.stats if xp is np else jstats
    n = 1 / alpha
    return -stats.nbinom.logpmf(y_true, n, n / (n + mu))


def _nb(rng):
    mu = rng.uniform(0.3, 8.0, size=(N, D))
    alpha = rng.uniform(0.1, 2.0, size=(N, D))
    n = 1 / alpha
    y = rng.negative_binomial(n, n / (n + mu)).astype(float)
    y.flat[0] = 0.0
    return {"y_true": y, "mu": mu, "alpha": alpha}


CASES = [
    Case("poisson_deviance", "poisson_deviance(y_true, y_pred{opts})", _counts(),
         lambda xp, **i: _tweedie(xp, **i, power=1)),
    Case("poisson_deviance-grad-target", "poisson_deviance(y_true, y_pred{opts})", _counts(zeros=False),
         lambda xp, **i: _tweedie(xp, **i, power=1), wrt=("y_true", "y_pred")),
    Case("gamma_deviance", "gamma_deviance(y_true, y_pred{opts})", _positive,
         lambda xp, **i: _tweedie(xp, **i, power=2), wrt=("y_true", "y_pred")),
    Case("tweedie_deviance", "tweedie_deviance(y_true, y_pred{opts})", _counts(),  # zeros: the point mass
         lambda xp, **i: _tweedie(xp, **i, power=1.5)),
    Case("tweedie_deviance-grad-target", "tweedie_deviance(y_true, y_pred, power=1.2{opts})", _positive,
         lambda xp, **i: _tweedie(xp, **i, power=1.2), wrt=("y_true", "y_pred")),
    Case("tweedie_deviance-inverse-gaussian", "tweedie_deviance(y_true, y_pred, power=3{opts})", _positive,
         lambda xp, **i: _tweedie(xp, **i, power=3), wrt=("y_true", "y_pred")),
    Case("tweedie_deviance-power-1", "tweedie_deviance(y_true, y_pred, power=1{opts})", _counts(),
         lambda xp, **i: _tweedie(xp, **i, power=1)),
    Case("tweedie_deviance-power-2", "tweedie_deviance(y_true, y_pred, power=2{opts})", _positive,
         lambda xp, **i: _tweedie(xp, **i, power=2)),
    Case("tweedie_deviance-power-input", "tweedie_deviance(y_true, y_pred, power=p{opts})",
         lambda rng: {**_positive(rng), "p": np.array(1.3)},
         lambda xp, p, **i: _tweedie(xp, **i, power=p), wrt=("y_pred", "p")),
    Case("negative_binomial_nll", "negative_binomial_nll(y_true, mu, alpha{opts})", _nb,
         lambda xp, **i: _nbinom_nll(xp, **i), wrt=("mu", "alpha")),
    Case("negative_binomial_nll-scalar-alpha", "negative_binomial_nll(y_true, mu, alpha{opts})",
         lambda rng: {**_nb(rng), "alpha": np.array(0.05)},  # near the Poisson limit
         lambda xp, **i: _nbinom_nll(xp, **i), wrt=("mu", "alpha")),
]
