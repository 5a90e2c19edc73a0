"""Ranking and preference losses: references written from each loss's published formula (the pairs
of a list as a boolean matrix)."""

import numpy as np
import optax

from . import Case

LISTS, ITEMS = 5, 6


def _ranking_softmax(xp, y_true, y_pred):
    """-sum_i y_i log(e^s_i / sum_j e^s_j), graded relevance y used as given (optax's definition)."""
    m = xp.max(y_pred, axis=-1, keepdims=True)
    log_softmax = y_pred - m - xp.log(xp.sum(xp.exp(y_pred - m), axis=-1, keepdims=True))
    return -xp.sum(y_true * log_softmax, axis=-1)


def _graded(scale=2.0):
    def make(rng):
        y = rng.integers(0, 4, size=(LISTS, ITEMS)).astype(float)
        y[0] = 0.0  # a list with no relevant item: loss 0
        return {"y_true": y, "y_pred": rng.normal(size=(LISTS, ITEMS)) * scale}
    return make


CASES = [
    Case("ranking_softmax", "ranking_softmax(y_true, y_pred{opts})", _graded(), _ranking_softmax,
         extra={"optax": lambda i: optax.losses.ranking_softmax_loss(i["y_pred"], i["y_true"])}),
    Case("ranking_softmax-scores-1000", "ranking_softmax(y_true, y_pred{opts})", _graded(scale=1000.0),
         _ranking_softmax, finite_differences=False),
    Case("ranking_softmax-relevance-input", "ranking_softmax(y_true, y_pred{opts})",
         lambda rng: {**_graded()(rng), "y_true": rng.uniform(0.0, 3.0, size=(LISTS, ITEMS))},
         _ranking_softmax, wrt=("y_true", "y_pred")),
]

N, L = 5, 6


def _ranknet(xp, y_true, y_pred):
    """Burges et al. 2005: log(1 + exp(-(s_i - s_j))) over each list's pairs with y_i > y_j, averaged."""
    ordered = y_true[..., :, None] > y_true[..., None, :]
    cost = xp.logaddexp(0.0, -(y_pred[..., :, None] - y_pred[..., None, :]))
    pairs = xp.sum(ordered, axis=(-2, -1))
    return xp.sum(xp.where(ordered, cost, 0.0), axis=(-2, -1)) / xp.maximum(pairs, 1)


def _tied_lists(rng):
    y = rng.integers(0, 3, size=(N, L)).astype(float)
    y[-1] = 1.0  # a list whose targets all tie: no pairs
    return {"y_true": y, "y_pred": rng.normal(size=(N, L))}


def _listnet(xp, y_true, y_pred):
    p = xp.exp(y_true) / xp.sum(xp.exp(y_true), axis=-1, keepdims=True)
    q = xp.exp(y_pred) / xp.sum(xp.exp(y_pred), axis=-1, keepdims=True)
    return -xp.sum(p * xp.log(q), axis=-1)


def _dpo(xp, logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta=0.1):
    """Rafailov et al. 2023, eq. (7): -log sigmoid(beta*(log pi/ref (chosen) - log pi/ref (rejected)))."""
    margin = beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))
    return -xp.log(1 / (1 + xp.exp(-margin)))


def _preferences(rng, n=8, scale=20.0):
    return {k: -scale * rng.uniform(0.5, 1.5, size=n)
            for k in ("logp_chosen", "logp_rejected", "ref_chosen", "ref_rejected")}


CASES += [
    Case("ranknet", "ranknet(y_true, y_pred{opts})", _tied_lists, lambda xp, **i: _ranknet(xp, **i)),
    Case("ranknet-large-scores", "ranknet(y_true, y_pred{opts})",  # ordered pairs 1000 apart, both ways
         lambda rng: {"y_true": np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]]),
                      "y_pred": np.array([[1000.0, 0.0, -1000.0], [1000.0, 0.0, -1000.0]])},
         lambda xp, **i: _ranknet(xp, **i), finite_differences=False),
    Case("listnet", "listnet(y_true, y_pred{opts})", _tied_lists, lambda xp, **i: _listnet(xp, **i),
         wrt=("y_true", "y_pred")),
    Case("dpo", "dpo(logp_chosen, logp_rejected, ref_chosen, ref_rejected{opts})", _preferences,
         lambda xp, **i: _dpo(xp, **i), wrt=("logp_chosen", "logp_rejected", "ref_chosen", "ref_rejected")),
    Case("dpo-beta-input", "dpo(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta=b{opts})",
         lambda rng: {**_preferences(rng), "b": np.array(0.5)},
         lambda xp, b, **i: _dpo(xp, **i, beta=b), wrt=("logp_chosen", "b")),
]
