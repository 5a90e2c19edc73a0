"""The analysis recognises the heavy-tailed and GLM likelihoods, with the shape parameter each loss
fixes: the expected shapes come from the losses' arguments and the laws' definitions (Student-t's
df*scale^2, the NB2 dispersion, Tweedie's power), not from the analysis."""

import math

import pytest

import lossdsl

# (source, prediction, distribution, parameter, shape name, expected shape value or None)
ROWS = [
    ("student_t_nll(y_true, mu, 0.5, 5)", "mu", "Student-t", "location", "df*scale^2", 5 * math.exp(2 * 0.5)),
    ("student_t_nll(y_true, mu, -1.0, 30)", "mu", "Student-t", "location", "df*scale^2", 30 * math.exp(-2.0)),
    ("cauchy(c=1.5)", "y_pred", "Student-t", "location", "df*scale^2", 2 * 1.5**2),  # df = 1, scale = sqrt(2)*c
    ("negative_binomial_nll(y_true, mu, 0.5)", "mu", "negative binomial", "mean", "dispersion", 0.5),
    ("negative_binomial_nll(y_true, mu, 2.0)", "mu", "negative binomial", "mean", "dispersion", 2.0),
    ("tweedie_deviance()", "y_pred", "Tweedie", "mean", "power", 1.5),
    ("tweedie_deviance(power=3)", "y_pred", "Tweedie", "mean", "power", 3.0),
    ("tweedie_deviance(power=2)", "y_pred", "Gamma", "mean", None, None),
    ("gamma_deviance()", "y_pred", "Gamma", "mean", None, None),
    ("poisson_deviance()", "y_pred", "Poisson", "rate", None, None),
    ("tweedie_deviance(power=1)", "y_pred", "Poisson", "rate", None, None),
    ("mse()", "y_pred", "Gaussian", "mean", None, None),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_the_likelihood_and_its_shape(row):
    source, x, distribution, parameter, shape, value = row
    lik = lossdsl.analyze(source)["inputs"][x]["likelihood"]
    assert (lik["distribution"], lik["parameter"]) == (distribution, parameter)
    if shape is None:
        assert "shape" not in lik
    else:
        assert lik["shape"][shape] == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("source", ["welsch()", "geman_mcclure()", "charbonnier()", "huber()", "log_cosh()",
                                    "crps_gaussian(y_true, mu, 1)"])
def test_losses_that_are_no_likelihood_of_these_families(source):
    """Bounded or non-logarithmic influence: no shape of Student-t, NB or Tweedie fits all samples."""
    result = lossdsl.analyze(source)["inputs"]
    assert result["mu" if "mu" in result else "y_pred"]["likelihood"] is None
