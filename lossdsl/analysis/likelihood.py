"""Which known negative log-likelihood a loss is: its gradient matched against each NLL's gradient
up to a constant positive factor (so the loss is ``a * nll + b(target)``), on random inputs."""

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
    gradient: Callable[[np.ndarray, np.ndarray], np.ndarray]  # d nll / d x
    simplex: bool = False  # x and y are distributions along the last axis


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _dirichlet(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])


def _normal(rng, shape):
    return rng.normal(0, 2, shape)


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
            ratios = []
            try:
                for _ in range(4):
                    y = form.target(rng, shape) if others else np.zeros(shape)
                    xv = form.prediction(rng, shape)
                    inputs = {x: xv, **({others[0]: y} if others else {})}
                    with np.errstate(all="ignore"):
                        got = np.asarray(loss.grad(x)(**inputs), dtype=float)
                        want = form.gradient(y, xv)
                    if form.simplex:  # along the simplex only: a constant per row does not count
                        got = got - got.mean(-1, keepdims=True)
                        want = want - want.mean(-1, keepdims=True)
                    keep = np.abs(want) > 1e-6
                    ratios.append(got[keep] / want[keep])
            except Exception:  # noqa: BLE001 - inputs this form's samples do not fit
                continue
            r = np.concatenate(ratios)
            if r.size and np.all(np.isfinite(r)) and r.min() > 0 and np.ptp(r) <= 1e-7 * abs(r.mean()):
                return {"distribution": form.distribution, "parameter": form.parameter,
                        "target": others[0] if others else None, "scale": float(r.mean())}
    return None
