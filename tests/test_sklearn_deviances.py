"""The GLM deviances against scikit-learn itself (a test dependency through pytorch-metric-learning):
mean_tweedie_deviance, mean_poisson_deviance and mean_gamma_deviance, weighted and not, on every
backend, with zeros among the counts where the deviance allows them."""

import jax
import numpy as np
import pytest
import sklearn.metrics as skm

import lossdsl

jax.config.update("jax_enable_x64", True)

RNG = np.random.default_rng(22)
N = 40
MU = RNG.uniform(0.2, 4.0, N)
COUNTS = np.where(np.arange(N) % 5 == 0, 0.0, RNG.poisson(2.0, N) + RNG.uniform(0, 1, N))  # zeros included
POSITIVE = RNG.gamma(2.0, 1.5, N)
W = RNG.uniform(0.5, 2.0, N)

CASES = [  # source, sklearn function of (y, mu, w), y
    ("poisson_deviance(y_true, y_pred{w})", lambda y, m, w: skm.mean_poisson_deviance(y, m, sample_weight=w), COUNTS),
    ("gamma_deviance(y_true, y_pred{w})", lambda y, m, w: skm.mean_gamma_deviance(y, m, sample_weight=w), POSITIVE),
    *[(f"tweedie_deviance(y_true, y_pred, power={p}{{w}})",
       lambda y, m, w, p=p: skm.mean_tweedie_deviance(y, m, sample_weight=w, power=p), COUNTS if p < 2 else POSITIVE)
      for p in (1.0, 1.2, 1.5, 1.8, 2.0, 3.0)],
]


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("source, reference, y", CASES, ids=[c[0].split("{")[0] for c in CASES])
def test_against_scikit_learn(source, reference, y, weighted, backend):
    loss = lossdsl.compile(source.format(w=", weights=w" if weighted else ""), backend=backend)
    inputs = {"y_true": y, "y_pred": MU, **({"w": W} if weighted else {})}
    got = float(np.asarray(loss(**inputs)))
    assert got == pytest.approx(reference(y, MU, W if weighted else None), rel=1e-12)
