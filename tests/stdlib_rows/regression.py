"""Regression losses: references written from each loss's published formula."""

import numpy as np
import optax

from . import Case

N = 7


def _pair(scale=1.0, offset=0.0):
    def make(rng):
        y = rng.normal(size=N)
        return {"y_true": y, "y_pred": y + offset + scale * rng.normal(size=N)}
    return make


def _huber(xp, y_true, y_pred, delta=1.0):
    r = xp.abs(y_true - y_pred)
    return xp.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta))


def _barron(xp, y_true, y_pred, alpha, scale):
    x2 = ((y_pred - y_true) / scale) ** 2
    b = xp.abs(alpha - 2)
    return b / alpha * ((x2 / b + 1) ** (alpha / 2) - 1)


def _tukey(xp, y_true, y_pred, c=4.685):
    r = y_pred - y_true
    return xp.where(xp.abs(r) <= c, c**2 / 6 * (1 - (1 - (r / c) ** 2) ** 3), c**2 / 6)


CASES = [
    Case("mse", "mse(y_true, y_pred{opts})", _pair(), lambda xp, y_true, y_pred: (y_true - y_pred) ** 2,
         wrt=("y_true", "y_pred"),
         extra={"optax": lambda i: optax.losses.squared_error(i["y_pred"], i["y_true"]).mean()}),
    Case("mse-2d", "mse(y_true, y_pred{opts})",
         lambda rng: {"y_true": rng.normal(size=(4, 3)), "y_pred": rng.normal(size=(4, 3))},
         lambda xp, y_true, y_pred: (y_true - y_pred) ** 2),
    Case("mae", "mae(y_true, y_pred{opts})", _pair(), lambda xp, y_true, y_pred: xp.abs(y_true - y_pred)),
    Case("huber", "huber(y_true, y_pred, delta=0.8{opts})", _pair(scale=2.0),
         lambda xp, y_true, y_pred: _huber(xp, y_true, y_pred, 0.8),
         extra={"optax": lambda i: optax.losses.huber_loss(i["y_pred"], i["y_true"], delta=0.8).mean()}),
    Case("huber-delta-input", "huber(y_true, y_pred, delta=d{opts})",
         lambda rng: {**_pair(scale=2.0)(rng), "d": np.array(0.7)},
         lambda xp, y_true, y_pred, d: _huber(xp, y_true, y_pred, d), wrt=("y_pred", "d")),
    Case("huber-residual-1e6", "huber(y_true, y_pred{opts})",
         lambda rng: {"y_true": np.zeros(N), "y_pred": np.linspace(-1e6, 1e6, N) + 0.5},
         lambda xp, y_true, y_pred: _huber(xp, y_true, y_pred), finite_differences=False),
    Case("smooth_l1", "smooth_l1(y_true, y_pred, beta=0.5{opts})", _pair(scale=1.5),
         lambda xp, y_true, y_pred: xp.where(xp.abs(y_pred - y_true) < 0.5, 0.5 * (y_pred - y_true) ** 2 / 0.5,
                                             xp.abs(y_pred - y_true) - 0.25)),
    Case("smooth_l1-beta0", "smooth_l1(y_true, y_pred, beta=0{opts})", _pair(),
         lambda xp, y_true, y_pred: xp.abs(y_pred - y_true)),
    Case("pseudo_huber", "pseudo_huber(y_true, y_pred, delta=1.5{opts})", _pair(scale=3.0),
         lambda xp, y_true, y_pred: 1.5**2 * (xp.sqrt(1 + ((y_pred - y_true) / 1.5) ** 2) - 1)),
    Case("quantile", "quantile(y_true, y_pred, tau=0.9{opts})", _pair(),
         lambda xp, y_true, y_pred: xp.maximum(0.9 * (y_true - y_pred), (0.9 - 1) * (y_true - y_pred))),
    Case("log_cosh", "log_cosh(y_true, y_pred{opts})", _pair(scale=2.0),
         lambda xp, y_true, y_pred: xp.log(xp.cosh(y_pred - y_true))),
    Case("log_cosh-1e4", "log_cosh(y_true, y_pred{opts})",
         lambda rng: {"y_true": np.zeros(4), "y_pred": np.array([-1e4, -20.0, 20.0, 1e4])},
         lambda xp, y_true, y_pred: xp.abs(y_pred - y_true) - np.log(2.0), finite_differences=False, rtol=1e-12),
    Case("tukey", "tukey(y_true, y_pred{opts})", _pair(scale=4.0),
         lambda xp, y_true, y_pred: _tukey(xp, y_true, y_pred)),
    Case("barron", "barron(y_true, y_pred, alpha=0.5, scale=1.3{opts})", _pair(scale=2.0),
         lambda xp, y_true, y_pred: _barron(xp, y_true, y_pred, 0.5, 1.3)),
    Case("barron-cauchy", "barron(y_true, y_pred, alpha=0{opts})", _pair(scale=2.0),
         lambda xp, y_true, y_pred: xp.log(0.5 * (y_pred - y_true) ** 2 + 1)),
    Case("barron-l2", "barron(y_true, y_pred, alpha=2, scale=0.5{opts})", _pair(),
         lambda xp, y_true, y_pred: 0.5 * ((y_pred - y_true) / 0.5) ** 2),
    Case("barron-inputs", "barron(y_true, y_pred, alpha=a, scale=c{opts})",
         lambda rng: {**_pair(scale=2.0)(rng), "a": np.array(-1.5), "c": np.array(0.8)},
         lambda xp, y_true, y_pred, a, c: _barron(xp, y_true, y_pred, a, c), wrt=("y_pred", "a", "c")),
]


# --- from Keras (issue 16): percentage and squared logarithmic errors -------------------------------

def _mape(xp, y_true, y_pred):
    return 100 * xp.abs(y_true - y_pred) / xp.maximum(xp.abs(y_true), 1e-7)


def _msle(xp, y_true, y_pred):
    return (xp.log(xp.maximum(y_pred, 1e-7) + 1) - xp.log(xp.maximum(y_true, 1e-7) + 1)) ** 2


def _positive(scale=1.0):
    def make(rng):
        y = rng.uniform(0.5, 3.0, size=(N, 3)) * scale
        return {"y_true": y, "y_pred": y * np.exp(rng.normal(size=y.shape) * 0.4)}
    return make


def _below_epsilon(rng):
    """Targets of 0 and of both signs, predictions below Keras's epsilon."""
    d = _positive()(rng)
    d["y_true"][0] = [0.0, -1.5, 2.0]
    d["y_pred"][1] = [-0.5, 0.0, 1.0]
    return d


CASES += [
    Case("mape", "mape(y_true, y_pred{opts})", _positive(), _mape, wrt=("y_true", "y_pred")),
    Case("mape-signs", "mape(y_true, y_pred{opts})", _pair(scale=2.0), _mape, wrt=("y_true", "y_pred")),
    Case("mape-zero-targets", "mape(y_true, y_pred{opts})", _below_epsilon, _mape, wrt=("y_pred",),
         finite_differences=False, rtol=1e-12),  # a target of 0 divides by 1e-7: steps of 1e-6 cross it
    Case("msle", "msle(y_true, y_pred{opts})", _positive(scale=30.0), _msle, wrt=("y_true", "y_pred")),
    Case("msle-below-epsilon", "msle(y_true, y_pred{opts})", _below_epsilon, _msle, wrt=("y_true", "y_pred"),
         finite_differences=False),  # values of 0 sit 1e-7 below the kink of max(y, 1e-7)
]


def _wing(xp, y_true, y_pred, w=10.0, epsilon=2.0):
    a = xp.abs(y_pred - y_true)
    return xp.where(a < w, w * xp.log(1 + a / epsilon), a - (w - w * xp.log(1 + w / epsilon)))


ROBUST = [
    Case("charbonnier", "charbonnier(y_true, y_pred{opts})", _pair(),
         lambda xp, y_true, y_pred: xp.sqrt((y_pred - y_true) ** 2 + 1e-6), wrt=("y_true", "y_pred")),
    Case("charbonnier-eps-input", "charbonnier(y_true, y_pred, eps=e{opts})",
         lambda rng: {**_pair()(rng), "e": np.array(0.3)},
         lambda xp, y_true, y_pred, e: xp.sqrt((y_pred - y_true) ** 2 + e**2), wrt=("y_pred", "e")),
    Case("geman_mcclure", "geman_mcclure(y_true, y_pred, c=0.7{opts})", _pair(scale=2.0),
         lambda xp, y_true, y_pred: 2 * ((y_pred - y_true) / 0.7) ** 2 / (((y_pred - y_true) / 0.7) ** 2 + 4)),
    Case("geman_mcclure-as-barron", "geman_mcclure(y_true, y_pred, c=c{opts})",  # Barron's alpha = -2
         lambda rng: {**_pair(scale=2.0)(rng), "c": np.array(1.3)},
         lambda xp, y_true, y_pred, c: _barron(xp, y_true, y_pred, -2.0, c), wrt=("y_pred", "c")),
    Case("welsch", "welsch(y_true, y_pred, c=1.5{opts})", _pair(scale=2.0),
         lambda xp, y_true, y_pred: 1 - xp.exp(-0.5 * ((y_pred - y_true) / 1.5) ** 2), wrt=("y_true", "y_pred")),
    Case("welsch-c-input", "welsch(y_true, y_pred, c=c{opts})",
         lambda rng: {**_pair(scale=2.0)(rng), "c": np.array(0.8)},
         lambda xp, y_true, y_pred, c: 1 - xp.exp(-0.5 * ((y_pred - y_true) / c) ** 2), wrt=("y_pred", "c")),
    Case("cauchy", "cauchy(y_true, y_pred{opts})", _pair(scale=3.0),
         lambda xp, y_true, y_pred: xp.log(1 + 0.5 * (y_pred - y_true) ** 2)),
    Case("cauchy-c-input", "cauchy(y_true, y_pred, c=c{opts})",
         lambda rng: {**_pair(scale=3.0)(rng), "c": np.array(0.6)},
         lambda xp, y_true, y_pred, c: xp.log(1 + 0.5 * ((y_pred - y_true) / c) ** 2), wrt=("y_pred", "c")),
    Case("wing", "wing(y_true, y_pred{opts})",  # residuals on both sides of w = 10
         lambda rng: {"y_true": rng.normal(size=N), "y_pred": rng.normal(size=N) + np.array([-25, -12, -3, 0.5, 4, 11, 30])},
         lambda xp, y_true, y_pred: _wing(xp, y_true, y_pred), wrt=("y_true", "y_pred")),
    Case("wing-inputs", "wing(y_true, y_pred, w=w, epsilon=e{opts})",
         lambda rng: {"y_true": np.zeros(N), "y_pred": np.array([-6.0, -2.5, -0.7, 0.3, 1.9, 3.5, 8.0]),
                      "w": np.array(3.0), "e": np.array(1.5)},
         lambda xp, y_true, y_pred, w, e: _wing(xp, y_true, y_pred, w, e), wrt=("y_pred", "w", "e")),
]
CASES += ROBUST
