"""The stdlib table's references that are written in a stable form, checked against an independent
computation: the Gaussian CRPS closed form (Gneiting and Raftery 2007) against numerical integration of
its definition, and the Student-t negative log-density against scipy.stats.t.logpdf."""

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
from stdlib_rows import forecasting


@pytest.mark.parametrize("y, mu, sigma", [(0.3, -0.2, 1.1), (4.0, 0.0, 0.5), (-2.5, 1.0, 2.0), (1.0, 1.0, 0.3)])
def test_crps_closed_form_against_the_integral(y, mu, sigma):
    """CRPS(F, y) = integral of (F(x) - [x >= y])^2 dx, F the N(mu, sigma^2) CDF."""
    cdf = scipy.stats.norm(mu, sigma).cdf
    below = scipy.integrate.quad(lambda x: cdf(x) ** 2, -np.inf, y, epsabs=1e-13, epsrel=1e-12)[0]
    above = scipy.integrate.quad(lambda x: (1 - cdf(x)) ** 2, y, np.inf, epsabs=1e-13, epsrel=1e-12)[0]
    closed = forecasting.crps_gaussian_reference(np, np.array(y), np.array(mu), np.array(sigma))
    np.testing.assert_allclose(closed, below + above, rtol=1e-9)


def test_student_t_reference_against_scipy():
    inputs = forecasting.CASES[0].sample()
    np.testing.assert_allclose(forecasting._student(np, **inputs), forecasting.student_t_scipy(**inputs), rtol=1e-12)
