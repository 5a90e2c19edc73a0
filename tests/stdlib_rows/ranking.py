"""Ranking losses: references written from each loss's published formula."""

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
