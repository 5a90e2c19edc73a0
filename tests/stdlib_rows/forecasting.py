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


def _student(xp, y_true, mu, log_scale, df):
    """Minus the Student-t log-density, log(1 + z^2/df) as logaddexp(0, log(z^2/df)) so that scales of
    e^-400 do not overflow z^2 (its agreement with scipy.stats.t.logpdf: test_stdlib_references.py)."""
    special = scipy.special if xp is np else jspecial
    r = y_true - mu
    log_z2 = 2 * xp.log(xp.abs(xp.where(r == 0, 1.0, r))) - 2 * log_scale - xp.log(df)
    tail = xp.where(r == 0, 0.0, xp.logaddexp(0.0, log_z2))
    return (special.gammaln(df / 2) - special.gammaln((df + 1) / 2) + 0.5 * xp.log(df * math.pi) + log_scale
            + (df + 1) / 2 * tail)


def student_t_scipy(y_true, mu, log_scale, df):
    return -scipy.stats.t.logpdf(y_true, df, loc=mu, scale=np.exp(log_scale))


def _student_inputs(rng):
    mu = rng.normal(size=(N, D))
    return {"y_true": mu + rng.standard_t(3.0, size=(N, D)), "mu": mu, "log_scale": 0.4 * rng.normal(size=(N, D)),
            "df": rng.uniform(1.0, 12.0, size=(N, D))}


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


def _pinball(xp, y_true, y_pred, taus):
    e = y_true[:, None] - y_pred
    return xp.maximum(taus * e, (taus - 1) * e)


CASES = [
    Case("student_t_nll", "student_t_nll(y_true, mu, log_scale, df{opts})", _student_inputs,
         lambda xp, **i: _student(xp, **i), wrt=("y_true", "mu", "log_scale", "df")),
    Case("student_t_nll-scalar-df", "student_t_nll(y_true, mu, log_scale, df=4{opts})",
         lambda rng: {k: v for k, v in _student_inputs(rng).items() if k != "df"},
         lambda xp, **i: _student(xp, **i, df=4.0), wrt=("mu", "log_scale")),
    Case("student_t_nll-large-df", "student_t_nll(y_true, mu, log_scale, df{opts})",  # near the Gaussian
         lambda rng: {**_student_inputs(rng), "df": np.array(300.0)},
         lambda xp, **i: _student(xp, **i), wrt=("mu", "log_scale"), rtol=1e-6),
    Case("crps_gaussian", "crps_gaussian(y_true, mu, sigma{opts})", _crps_inputs,
         lambda xp, **i: crps_gaussian_reference(xp, **i), wrt=("y_true", "mu", "sigma")),
    Case("crps_gaussian-far-tails", "crps_gaussian(y_true, mu, sigma{opts})",  # about |y - mu|
         lambda rng: {"y_true": np.array([-40.0, -9.0, 0.0, 9.0, 40.0]), "mu": np.zeros(5),
                      "sigma": np.array([1.0, 0.5, 1e-3, 2.0, 0.7])},
         lambda xp, **i: crps_gaussian_reference(xp, **i), wrt=("mu", "sigma"), finite_differences=False),
    Case("pinball_multi", "pinball_multi(y_true, y_pred, taus{opts})",
         lambda rng: {"y_true": rng.normal(size=N), "y_pred": rng.normal(size=(N, Q)) + np.array([-1.3, 0.0, 1.3]),
                      "taus": TAUS},
         lambda xp, **i: _pinball(xp, **i), wrt=("y_true", "y_pred")),
]
