"""The losses taken from optax and Keras, against the peer itself, in value and gradient.

Each row calls a library loss as an optax or Keras user would, and compares it with that function
(optax.losses.*, keras.losses.* on the JAX backend): the value, and the gradient with respect to
every listed input against jax.grad of the peer. The peer runs in float64 (the truth); the library
runs in float32 and float64 on NumPy, JAX and torch (a covering of backend x dtype per row:
tests/sampling.py), with a tolerance relative to the float type.
Rows include the peers' own extreme cases: logits of +-1000, ties, zero targets, embeddings with an
anchor that has no positive or no negative.
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras is imported, by this module or another

from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402
from oracles import jax_grads  # noqa: E402
from sampling import covering  # noqa: E402

import lossdsl  # noqa: E402

jax.config.update("jax_enable_x64", True)
K = keras.losses

BACKENDS = ["numpy", "jax", "torch"]
RTOL = {np.float32: 2e-4, np.float64: 1e-10}
ATOL = {np.float32: 1e-5, np.float64: 1e-12}


@dataclass(frozen=True)
class Peer:
    """``call`` is lossdsl source over the keys of ``inputs(rng)``; ``peer(**inputs)`` the peer's value,
    written in jax.numpy terms, differentiable by jax.grad in each name of ``wrt``."""

    id: str
    call: str
    inputs: Callable[[np.random.Generator], dict[str, np.ndarray]]
    peer: Callable[..., Any]
    wrt: tuple[str, ...] = ("y_pred",)
    rtol: float = 1.0  # a factor on RTOL, for rows whose float32 value is a difference of large terms
    float64_rtol: float = RTOL[np.float64]  # Keras's ops.mean sums in float32 whatever the inputs' type
    dtypes: tuple[type, ...] = (np.float32, np.float64)


def _keras_mean(fn):
    """The mean of a Keras loss function's values (Keras's own mean over the last axis sums in float32:
    keras/src/backend/jax/numpy.py's mean, so rows using it compare to 1e-6 in float64)."""
    return lambda y_true, y_pred: jnp.mean(fn(y_true, y_pred))


def _keras64(cls, **options):
    """A Keras loss object computing in float64 (Keras's default float type is float32)."""
    loss = cls(dtype="float64", **options)
    return lambda y_true, y_pred: loss(y_true, y_pred)


# --- inputs ----------------------------------------------------------------------------------------

def _probabilities(rng, shape):
    z = rng.normal(size=shape) * 1.5
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _one_hot_logits(scale=2.0, n=6, c=5):
    return lambda rng: {"y_true": np.eye(c)[rng.integers(0, c, n)], "y_pred": rng.normal(size=(n, c)) * scale}


def _one_hot_extreme(rng):
    y = np.eye(4)[[0, 0, 1, 2, 3]]
    x = np.array([[1000.0, -1000.0, 0.0, 1.0], [-1000.0, 1000.0, -1000.0, 0.0],
                  [1000.0, 1000.0, -1000.0, -1000.0], [-1000.0] * 4, [500.0, -1000.0, 1000.0, 0.0]])
    return {"y_true": y, "y_pred": x}


def _labels_scores(scale=2.0, n=7, c=5):
    return lambda rng: {"y_true": rng.integers(0, c, n), "y_pred": rng.normal(size=(n, c)) * scale}


def _labels_scores_extreme(rng):
    x = np.array([[1000.0, -1000.0, 0.0, 1.0], [-1000.0, 1000.0, 999.5, 0.0], [3.0, 3.0, -1.0, 0.5],
                  [0.2, 0.2, 0.2, 0.2], [500.0, -1000.0, 1000.0, 0.0], [0.1, 0.7, 0.35, -0.4]])
    return {"y_true": np.array([0, 2, 1, 3, 2, 1]), "y_pred": x}


def _embeddings(labels, normalised=False, duplicate=False):
    def make(rng):
        e = rng.normal(size=(len(labels), 3))
        if duplicate:
            e[2] = e[0]  # a positive and a negative at distance 0 from row 0
            e[4] = e[0]
        if normalised:
            e = e / np.linalg.norm(e, axis=-1, keepdims=True)
        return {"labels": np.array(labels), "embeddings": e}
    return make


def _circle_inputs(labels, **kw):
    make = _embeddings(labels, normalised=True, **kw)
    return lambda rng: {"y_true": (d := make(rng))["labels"], "y_pred": d["embeddings"]}


def _positive_pair(scale=1.0, zeros=False, negatives=False):
    def make(rng):
        y = rng.uniform(0.5, 3.0, size=(5, 3)) * scale
        p = y * np.exp(rng.normal(size=y.shape) * 0.3)
        if zeros:
            y[0, 0], y[1, :] = 0.0, 0.0  # targets of 0: Keras divides by its epsilon, 1e-7
        if negatives:
            p[2, 1], y[3, 2] = -0.5, -2.0  # below epsilon: counted as 1e-7
        return {"y_true": y, "y_pred": p}
    return make


def _divergence(zeros=False):
    def make(rng):
        p = rng.uniform(0.1, 2.0, size=(5, 4))  # unnormalised: the generalised divergence
        if zeros:
            p[0, 1], p[2, :2] = 0.0, 0.0
        return {"y_true": p, "y_pred": rng.normal(size=(5, 4))}
    return make


def _relevance(extreme=False):
    def make(rng):
        y = rng.integers(0, 4, size=(5, 6)).astype(float)
        y[0] = 0.0  # a list with no relevant item
        s = rng.normal(size=(5, 6)) * (1000.0 if extreme else 2.0)
        return {"y_true": y, "y_pred": s}
    return make


def _class_probabilities(extreme=False):
    def make(rng):
        p = _probabilities(rng, (6, 4))
        if extreme:
            p[0] = [1.0, 0.0, 0.0, 0.0]  # certain and right: loss 0
            p[1] = [1e-6, 1 - 1e-6, 0.0, 0.0]  # nearly certain and wrong
        return {"y_true": np.array([0, 0, 1, 2, 3, 1]), "y_pred": p}
    return make


PEERS = [
    # --- optax ---------------------------------------------------------------------------------------
    Peer("poly1", "poly1(y_true, y_pred)", _one_hot_logits(),
         lambda y_true, y_pred: optax.losses.poly_loss_cross_entropy(y_pred, y_true, epsilon=1.0).mean()),
    Peer("poly1-epsilon-input", "poly1(y_true, y_pred, epsilon=eps)",
         lambda rng: {**_one_hot_logits()(rng), "eps": np.array(2.0)},
         lambda y_true, y_pred, eps: optax.losses.poly_loss_cross_entropy(y_pred, y_true, epsilon=eps).mean(),
         wrt=("y_pred", "eps")),
    Peer("poly1-soft", "poly1(y_true, y_pred, epsilon=-1.0)",
         lambda rng: {"y_true": _probabilities(rng, (6, 5)), "y_pred": rng.normal(size=(6, 5)) * 3},
         lambda y_true, y_pred: optax.losses.poly_loss_cross_entropy(y_pred, y_true, epsilon=-1.0).mean()),
    Peer("poly1-logits-1000", "poly1(y_true, y_pred, epsilon=2.0)", _one_hot_extreme,
         lambda y_true, y_pred: optax.losses.poly_loss_cross_entropy(y_pred, y_true, epsilon=2.0).mean()),
    Peer("sparsemax_loss", "sparsemax_loss(y_true, y_pred)", _labels_scores(),
         lambda y_true, y_pred: optax.losses.multiclass_sparsemax_loss(y_pred, y_true).mean()),
    Peer("sparsemax_loss-small-scores", "sparsemax_loss(y_true, y_pred)", _labels_scores(scale=0.2),
         lambda y_true, y_pred: optax.losses.multiclass_sparsemax_loss(y_pred, y_true).mean()),
    Peer("sparsemax_loss-extreme", "sparsemax_loss(y_true, y_pred)", _labels_scores_extreme,
         lambda y_true, y_pred: optax.losses.multiclass_sparsemax_loss(y_pred, y_true).mean()),
    Peer("perceptron", "perceptron(y_true, y_pred)", _labels_scores(),
         lambda y_true, y_pred: optax.losses.multiclass_perceptron_loss(y_pred, y_true).mean()),
    Peer("perceptron-extreme", "perceptron(y_true, y_pred, reduction=\"sum\")", _labels_scores_extreme,
         lambda y_true, y_pred: optax.losses.multiclass_perceptron_loss(y_pred, y_true).sum()),
    # optax.losses.convex_kl_divergence is generalized_kl_divergence, under a deprecated name
    Peer("convex_kl", "convex_kl(y_true, y_pred)", _divergence(),
         lambda y_true, y_pred: optax.losses.generalized_kl_divergence(y_pred, y_true).mean(), wrt=("y_true", "y_pred")),
    Peer("convex_kl-zero-targets", "convex_kl(y_true, y_pred)", _divergence(zeros=True),
         lambda y_true, y_pred: optax.losses.generalized_kl_divergence(y_pred, y_true).mean()),
    Peer("ntxent", "ntxent(embeddings, labels)", _embeddings([0, 1, 0, 2, 1, 0, 2, 1]),
         lambda embeddings, labels: optax.losses.ntxent(embeddings, labels), wrt=("embeddings",), rtol=5.0),
    Peer("ntxent-temperature-input", "ntxent(embeddings, labels, temperature=t)",
         lambda rng: {**_embeddings([0, 0, 1, 1, 2, 2])(rng), "t": np.array(0.5)},
         lambda embeddings, labels, t: optax.losses.ntxent(embeddings, labels, temperature=t),
         wrt=("embeddings", "t")),
    Peer("ntxent-duplicates-singletons", "ntxent(embeddings, labels, temperature=0.2)",
         _embeddings([0, 1, 0, 2, 1, 0, 3, 4], duplicate=True),
         lambda embeddings, labels: optax.losses.ntxent(embeddings, labels, temperature=0.2), wrt=("embeddings",)),
    Peer("ranking_softmax", "ranking_softmax(y_true, y_pred)", _relevance(),
         lambda y_true, y_pred: optax.losses.ranking_softmax_loss(y_pred, y_true)),
    Peer("ranking_softmax-scores-1000", "ranking_softmax(y_true, y_pred, reduction=\"sum\")", _relevance(extreme=True),
         lambda y_true, y_pred: optax.losses.ranking_softmax_loss(y_pred, y_true, reduce_fn=jnp.sum)),
    # --- Keras ---------------------------------------------------------------------------------------
    Peer("mape", "mape(y_true, y_pred)", _positive_pair(), _keras_mean(K.mean_absolute_percentage_error),
         wrt=("y_true", "y_pred"), float64_rtol=1e-6),
    Peer("mape-zero-targets", "mape(y_true, y_pred)", _positive_pair(zeros=True),
         _keras_mean(K.mean_absolute_percentage_error), wrt=("y_true", "y_pred"), float64_rtol=1e-6),
    Peer("msle", "msle(y_true, y_pred)", _positive_pair(scale=10.0), _keras_mean(K.mean_squared_logarithmic_error),
         wrt=("y_true", "y_pred"), float64_rtol=1e-6),
    Peer("msle-below-epsilon", "msle(y_true, y_pred)", _positive_pair(negatives=True),
         _keras_mean(K.mean_squared_logarithmic_error), wrt=("y_true", "y_pred"), float64_rtol=1e-6),
    Peer("circle", "circle(y_true, y_pred)", _circle_inputs([0, 1, 0, 2, 1, 0, 2, 1]), _keras64(K.Circle),
         rtol=20.0),
    Peer("circle-options", "circle(y_true, y_pred, gamma=16.0, margin=0.25)",
         _circle_inputs([0, 1, 0, 2, 1, 0, 2, 1]), _keras64(K.Circle, gamma=16.0, margin=0.25)),
    Peer("circle-singletons-duplicates", "circle(y_true, y_pred, gamma=g, margin=m)",
         lambda rng: {**_circle_inputs([0, 1, 0, 2, 1, 0, 3, 2], duplicate=True)(rng),
                      "g": np.array(30.0), "m": np.array(0.3)},
         lambda y_true, y_pred, g, m: K.circle(y_true, y_pred, gamma=g, margin=m).sum() / 7,  # rows with loss > 0
         # coincident unit rows sit on the kink of max(1 - cos, 0): float32 rounds 1 - cos to either side
         wrt=("y_pred", "g", "m"), rtol=20.0, dtypes=(np.float64,)),
    Peer("generalized_cce", "generalized_cce(y_true, y_pred)", _class_probabilities(),
         _keras64(K.CategoricalGeneralizedCrossEntropy)),
    Peer("generalized_cce-q-input", "generalized_cce(y_true, y_pred, q=q)",
         lambda rng: {**_class_probabilities()(rng), "q": np.array(0.7)},
         lambda y_true, y_pred, q: K.categorical_generalized_cross_entropy(y_true, y_pred, q).mean(),
         wrt=("y_pred", "q")),
    Peer("generalized_cce-certain", "generalized_cce(y_true, y_pred, q=0.3)", _class_probabilities(extreme=True),
         _keras64(K.CategoricalGeneralizedCrossEntropy, q=0.3)),
]


def _cast(inputs: dict[str, np.ndarray], dtype) -> dict[str, np.ndarray]:
    return {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in inputs.items()}


PEER_BY_ID = {c.id: c for c in PEERS}


@functools.cache
def _peer(case_id: str) -> tuple[dict[str, np.ndarray], float, dict[str, np.ndarray]]:
    """A row's inputs, and the peer's value and gradients there: once per row and process (a row's
    backends and dtypes share one xdist group)."""
    case = PEER_BY_ID[case_id]
    inputs = case.inputs(np.random.default_rng(16))
    value = float(case.peer(**{k: jnp.asarray(v) for k, v in inputs.items()}))
    return inputs, value, jax_grads(case.peer, inputs, list(case.wrt))


@pytest.mark.parametrize("case, backend, dtype", [
    pytest.param(c, b, d, id=f"{c.id}-{b}-{d.__name__}", marks=pytest.mark.xdist_group(f"peer-{c.id}"))
    for c in PEERS for b, d in covering(f"{c.id}/peer", [BACKENDS, c.dtypes])])
def test_agrees_with_peer(case, backend, dtype):
    inputs, want_value, want_grads = _peer(case.id)
    loss = lossdsl.compile(case.call, backend=backend)
    value, grads = loss.value_and_grad(list(case.wrt))(**_cast(inputs, dtype))
    rtol = case.float64_rtol if dtype is np.float64 else RTOL[dtype] * case.rtol
    atol = ATOL[dtype]
    got = np.asarray(value.detach() if hasattr(value, "detach") else value)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want_value, rtol=rtol, atol=atol)
    for name in case.wrt:
        g = grads[name]
        g = np.asarray(g.detach() if hasattr(g, "detach") else g)
        assert g.dtype == dtype and g.shape == np.shape(inputs[name]), name
        scale = np.max(np.abs(want_grads[name]))  # gradients are compared relative to their largest entry
        np.testing.assert_allclose(g, want_grads[name], rtol=rtol, atol=atol + rtol * scale, err_msg=name)


def test_circle_mean_is_keras_masked_mean():
    """Keras's Circle averages over the rows with loss > 0 only: a label seen once leaves its row out."""
    inputs = _circle_inputs([0, 1, 0, 2, 1, 0, 3, 2])(np.random.default_rng(3))
    per_row = np.asarray(K.circle(inputs["y_true"], inputs["y_pred"]))
    assert per_row[6] == 0 and np.all(np.delete(per_row, 6) > 0)
    got = lossdsl.compile("circle(y_true, y_pred)", backend="numpy")(**inputs)
    np.testing.assert_allclose(got, _keras64(K.Circle)(**inputs), rtol=1e-10)
    np.testing.assert_allclose(got, per_row.sum() / 7, rtol=1e-10)
