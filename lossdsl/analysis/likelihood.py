"""Which known negative log-likelihood a loss is: its gradient matched against each NLL's gradient
up to a constant positive factor (so the loss is ``a * nll + b(target)``), on random inputs.

A family with a shape parameter (Student-t's degrees of freedom, the negative binomial's dispersion,
Tweedie's power) has it fitted from the loss's own gradient first, by least squares on a form that is
linear in it, and then checked like the others: a loss matches only if one value fits every sample."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .intervals import Interval

if TYPE_CHECKING:
    from ..compiled import CompiledLoss


@dataclass(frozen=True)
class NLL:
    """A negative log-likelihood of a target y under a prediction x, up to terms in y alone."""

    distribution: str
    parameter: str
    target: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
    prediction: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
    gradient: Callable[..., np.ndarray]  # d nll / d x, of (y, x) and the fitted shape if any
    simplex: bool = False  # x and y are distributions along the last axis
    shape: str = ""  # the shape parameter the gradient identifies, fitted by ``fit``
    fit: Callable[[np.ndarray, np.ndarray, np.ndarray], float | None] | None = None  # (y, x, loss gradient)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _dirichlet(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])


def _normal(rng, shape):
    return rng.normal(0, 2, shape)


def _positive(rng, shape):
    return rng.uniform(0.5, 5, shape)


def _least_squares(columns: list[np.ndarray], target: np.ndarray) -> np.ndarray | None:
    """Coefficients of ``target`` on ``columns`` (flattened), None where the fit is not finite."""
    a = np.stack([c.ravel() for c in columns], axis=1)
    b = target.ravel()
    keep = np.all(np.isfinite(a), axis=1) & np.isfinite(b)
    if keep.sum() < 2 * a.shape[1]:
        return None
    coef = np.linalg.lstsq(a[keep], b[keep], rcond=None)[0]
    return coef if np.all(np.isfinite(coef)) else None


def _fit_student(y, x, g):
    """g = k*r/(c + r^2), r = x - y, c = df*scale^2: r/g = (c + r^2)/k, linear in r^2."""
    r = x - y
    coef = _least_squares([np.ones_like(r), r**2], r / g)
    return None if coef is None or coef[1] <= 0 or coef[0] <= 0 else float(coef[0] / coef[1])


def _fit_negative_binomial(y, x, g):
    """g = k*(x - y)/(x*(1 + a*x)): (x - y)/g = (x + a*x^2)/k, linear in x and x^2."""
    coef = _least_squares([x, x**2], (x - y) / g)
    return None if coef is None or coef[0] <= 0 or coef[1] <= 0 else float(coef[1] / coef[0])


def _fit_tweedie(y, x, g):
    """g = k*x^(-p)*(x - y): log((x - y)/g) = p*log(x) - log(k), linear in log(x)."""
    with np.errstate(all="ignore"):
        coef = _least_squares([np.log(x), np.ones_like(x)], np.log((x - y) / g))
    return None if coef is None else float(coef[0])


LIKELIHOODS = (
    NLL("Gaussian", "mean", _normal, _normal, lambda y, x: x - y),  # (x - y)^2 / (2 s^2)
    NLL("Laplace", "location", _normal, _normal, lambda y, x: np.sign(x - y)),  # |x - y| / b
    NLL("Bernoulli", "logit", lambda r, s: r.uniform(0, 1, s), _normal,
        lambda y, x: 1 / (1 + np.exp(-x)) - y),  # -y log sigmoid(x) - (1 - y) log sigmoid(-x)
    NLL("Bernoulli", "probability", lambda r, s: r.uniform(0, 1, s), lambda r, s: r.uniform(0.05, 0.95, s),
        lambda y, x: (x - y) / (x * (1 - x))),  # -y log x - (1 - y) log(1 - x)
    NLL("Poisson", "log-rate", lambda r, s: r.poisson(3, s).astype(float), lambda r, s: r.normal(0, 1, s),
        lambda y, x: np.exp(x) - y),  # e^x - y x + log y!
    NLL("Poisson", "rate", lambda r, s: r.poisson(3, s).astype(float), lambda r, s: r.uniform(0.5, 5, s),
        lambda y, x: 1 - y / x),  # x - y log x + log y!
    NLL("categorical", "logits", _dirichlet, _normal, lambda y, x: _softmax(x) * y.sum(-1, keepdims=True) - y),
    NLL("categorical", "probabilities", _dirichlet, _dirichlet, lambda y, x: -y / x, simplex=True),
    NLL("Gamma", "mean", lambda r, s: r.gamma(2, 1.5, s), _positive, lambda y, x: (x - y) / x**2),  # y/x + log x
    # log(1 + r^2/c)*(df + 1)/2, c = df*scale^2 (Cauchy: df = 1)
    NLL("Student-t", "location", _normal, _normal, lambda y, x, c: (x - y) / (c + (x - y) ** 2),
        shape="df*scale^2", fit=_fit_student),
    # (y + 1/a)*log(1 + a*x) - y*log(x) + terms in y and a (NB2: variance x + a*x^2)
    NLL("negative binomial", "mean", lambda r, s: r.poisson(3, s).astype(float), _positive,
        lambda y, x, a: (x - y) / (x * (1 + a * x)), shape="dispersion", fit=_fit_negative_binomial),
    # the unit deviance's x-derivative: 2*x^(-p)*(x - y)
    NLL("Tweedie", "mean", lambda r, s: r.gamma(2, 1.5, s), _positive, lambda y, x, p: x ** (-p) * (x - y),
        shape="power", fit=_fit_tweedie),
)


def likelihood(loss: CompiledLoss, x: str, ranges: dict[str, Interval]) -> dict[str, Any] | None:
    """The known NLL whose gradient the loss's gradient is a constant positive multiple of."""
    others = [n for n in loss.inputs if n != x]
    if len(others) > 1:
        return None
    rng = np.random.default_rng(2)
    for form in LIKELIHOODS:
        if not others and form.distribution not in ("Gaussian", "Laplace"):
            continue  # a penalty of x alone: a prior centred at 0
        for shape in ((8,), (4, 5)) if not form.simplex and form.distribution != "categorical" else ((4, 5),):
            ratios, fitted = [], ()
            try:
                for _ in range(4):
                    y = form.target(rng, shape) if others else np.zeros(shape)
                    xv = form.prediction(rng, shape)
                    inputs = {x: xv, **({others[0]: y} if others else {})}
                    with np.errstate(all="ignore"):
                        got = np.asarray(loss.grad(x)(**inputs), dtype=float)
                        if form.fit is not None and not fitted:  # from the first sample, checked on all
                            value = form.fit(y, xv, got)
                            if value is None or not np.isfinite(value):
                                break
                            fitted = (value,)
                        want = form.gradient(y, xv, *fitted)
                    if form.simplex:  # along the simplex only: a constant per row does not count
                        got = got - got.mean(-1, keepdims=True)
                        want = want - want.mean(-1, keepdims=True)
                    keep = np.abs(want) > 1e-6
                    ratios.append(got[keep] / want[keep])
            except Exception:  # noqa: BLE001 - inputs this form's samples do not fit
                continue
            r = np.concatenate(ratios) if ratios else np.zeros(0)
            if r.size and np.all(np.isfinite(r)) and r.min() > 0 and np.ptp(r) <= 1e-7 * abs(r.mean()):
                found = {"distribution": form.distribution, "parameter": form.parameter,
                         "target": others[0] if others else None, "scale": float(r.mean())}
                return {**found, "shape": {form.shape: fitted[0]}} if fitted else found
    return None
