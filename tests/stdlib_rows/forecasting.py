"""Probabilistic forecasting losses: references from the Student-t log-density (checked against
scipy.stats.t.logpdf), Gneiting and Raftery's CRPS closed form (checked against quadrature in test_stdlib_references.py)
and the pinball loss's formula."""

import math

import jax.scipy.special as jspecial
import numpy as np
import scipy.special
import scipy.stats

from . import Case

N, D, Q = 6, 3, 3


def crps_gaussian_reference(xp, y_true, mu, sigma):
    """Gneiting and Raftery 2007, eq. (21): sigma*(z*(2*Phi(z) - 1) + 2*phi(z) - 1/sqrt(pi))."""
    special = scipy.special if xp is np else jspecial
    z = (y_true - mu) / sigma
    cdf = 0.5 * special.erfc(-z / math.sqrt(2))
    pdf = xp.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return sigma * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def _crps_inputs(rng):
    mu = rng.normal(size=(N, D))
    sigma = rng.uniform(0.3, 2.0, size=(N, D))
    return {"y_true": mu + sigma * rng.normal(size=(N, D)) * 2, "mu": mu, "sigma": sigma}


TAUS = np.array([0.1, 0.5, 0.9])


CASES = [
    Case("crps_gaussian", "crps_gaussian(y_true, mu, sigma{opts})", _crps_inputs,
         lambda xp, **i: crps_gaussian_reference(xp, **i), wrt=("y_true", "mu", "sigma")),
    Case("crps_gaussian-far-tails", "crps_gaussian(y_true, mu, sigma{opts})",  # about |y - mu|
         lambda rng: {"y_true": np.array([-40.0, -9.0, 0.0, 9.0, 40.0]), "mu": np.zeros(5),
                      "sigma": np.array([1.0, 0.5, 1e-3, 2.0, 0.7])},
         lambda xp, **i: crps_gaussian_reference(xp, **i), wrt=("mu", "sigma"), finite_differences=False),
]
