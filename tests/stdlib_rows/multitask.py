"""Multi-task weighting: references written from the published formula (no reduction)."""

import numpy as np

from . import Case


def _kendall(xp, loss, log_var):
    """Kendall et al. 2018, regression form: 1/(2 sigma^2) L + log sigma, with log_var = log sigma^2."""
    return xp.sum(0.5 * xp.exp(-log_var) * loss + 0.5 * log_var)


CASES = [
    Case("uncertainty_weighted", "uncertainty_weighted(loss, log_var)",
         lambda rng: {"loss": np.array(1.3), "log_var": np.array(0.4)}, _kendall,
         wrt=("loss", "log_var"), reducible=False),
    Case("uncertainty_weighted-tasks", "uncertainty_weighted(loss, log_var)",
         lambda rng: {"loss": rng.uniform(0.1, 3.0, size=3), "log_var": rng.normal(size=3)}, _kendall,
         wrt=("loss", "log_var"), reducible=False),
    Case("uncertainty_weighted-shared-log_var", "uncertainty_weighted(loss, log_var)",
         lambda rng: {"loss": rng.uniform(0.1, 3.0, size=3), "log_var": np.array(-0.7)}, _kendall,
         wrt=("loss", "log_var"), reducible=False),
    Case("uncertainty_weighted-of-mse", "uncertainty_weighted(mse(y_true, y_pred), s)",
         lambda rng: {"y_true": rng.normal(size=5), "y_pred": rng.normal(size=5), "s": np.array(0.25)},
         lambda xp, y_true, y_pred, s: _kendall(xp, xp.mean((y_pred - y_true) ** 2), s),
         wrt=("y_pred", "s"), reducible=False),
    Case("uncertainty_weighted-extremes", "uncertainty_weighted(loss, log_var)",
         lambda rng: {"loss": np.array([0.0, 1e6, 1e-6, 2.0]), "log_var": np.array([-30.0, 30.0, 0.0, -700.0])},
         _kendall, wrt=("loss", "log_var"), reducible=False, finite_differences=False),
]
