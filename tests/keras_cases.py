"""lossdsl.keras.Loss under one Keras backend, against Keras's own losses and losses written with keras.ops.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so ``tests/test_keras.py`` runs this file
in a fresh process for each backend (JAX, torch); pytest does not collect it by itself.
"""

import os
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pytest

import lossdsl
from lossdsl.errors import InputError
from lossdsl.keras import Loss

BACKEND = os.environ["KERAS_BACKEND"]
N, FEATURES, OUT = 32, 4, 3


@dataclass(frozen=True)
class Row:
    source: str
    reference: Any  # () -> the Keras loss it equals, given reduction=
    labels: str  # "real", "binary" or "onehot"
    rtol: float = 1e-5


ROWS = [
    Row("mse()", lambda **kw: keras.losses.MeanSquaredError(**kw), "real"),
    Row("huber(delta=1.5)", lambda **kw: keras.losses.Huber(delta=1.5, **kw), "real"),
    Row("bce(from_logits=true)", lambda **kw: keras.losses.BinaryCrossentropy(from_logits=True, **kw), "binary"),
    Row("cce(from_logits=true)", lambda **kw: keras.losses.CategoricalCrossentropy(from_logits=True, **kw), "onehot"),
    Row("focal(gamma=2, from_logits=true)", lambda **kw: keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=True, **kw), "binary"),
    # a constant given to an input of the loss
    Row("focal(gamma=g, alpha=-1, from_logits=true)", lambda **kw: keras.losses.BinaryFocalCrossentropy(
        gamma=3.0, from_logits=True, **kw), "binary"),
    # a user expression, per element: averaged over the last axis as Keras's own losses are
    Row("log(cosh(y_pred - y_true))", lambda **kw: keras.losses.LogCosh(**kw), "real", rtol=1e-4),
]
CONSTANTS = {"focal(gamma=g, alpha=-1, from_logits=true)": {"g": 3.0}}


def _loss(row: Row, **kw: Any) -> Loss:
    return Loss(row.source, **kw, **CONSTANTS.get(row.source, {}))


def _labels(kind: str, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    if kind == "real":
        return rng.normal(size=shape).astype("float32")
    if kind == "binary":
        return (rng.random(shape) < 0.4).astype("float32")
    return np.eye(shape[-1], dtype="float32")[rng.integers(0, shape[-1], shape[:-1])]


def _data(row: Row, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = _labels(row.labels, rng, (N, OUT))
    y_pred = (2 * rng.normal(size=(N, OUT))).astype("float32")
    return y_true, y_pred, rng.uniform(0.1, 2.0, N).astype("float32")


def _close(got: Any, want: Any, rtol: float) -> None:
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want), rtol=rtol,
                               atol=1e-6)


def test_backend():
    assert keras.backend.backend() == BACKEND
    assert Loss("mse()").loss.backend == BACKEND


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "none", "mean_with_sample_weight"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.source)
def test_value_matches_keras(row, weighted, reduction):
    y_true, y_pred, w = _data(row)
    weights = w if weighted else None
    got = _loss(row, reduction=reduction)(y_true, y_pred, sample_weight=weights)
    want = row.reference(reduction=reduction)(y_true, y_pred, sample_weight=weights)
    assert tuple(got.shape) == tuple(want.shape)
    _close(got, want, row.rtol)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.source)
def test_value_per_sample_written_with_ops(row):
    """The per-sample values ``call`` returns, against the formula written with keras.ops."""
    y_true, y_pred, _ = _data(row)
    ops = keras.ops
    t, z = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
    r = z - t
    p = ops.sigmoid(z)
    bce = ops.softplus(z) - t * z
    gamma = 3.0 if "gamma=g" in row.source else 2.0
    focal = (t * (1 - p) ** gamma + (1 - t) * p ** gamma) * bce
    by_source = {
        "mse()": r ** 2,
        "huber(delta=1.5)": ops.where(ops.abs(r) <= 1.5, 0.5 * r ** 2, 1.5 * ops.abs(r) - 0.5 * 1.5 ** 2),
        "bce(from_logits=true)": bce,
        "cce(from_logits=true)": -ops.sum(t * ops.log_softmax(z, axis=-1), axis=-1, keepdims=True),
        "focal(gamma=2, from_logits=true)": (0.25 * t + 0.75 * (1 - t)) * focal,
        "focal(gamma=g, alpha=-1, from_logits=true)": focal,
        "log(cosh(y_pred - y_true))": ops.log(ops.cosh(r)),
    }
    want = ops.mean(by_source[row.source], axis=-1)
    _close(_loss(row).call(y_true, y_pred), want, row.rtol)


def _model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(8, activation="tanh"),
                             keras.layers.Dense(OUT)])


def _trained(loss: Any, weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, w: np.ndarray | None):
    model = _model(0)
    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss=loss)
    history = model.fit(x, y, sample_weight=w, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return model, history.history["loss"]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.source)
def test_fit_follows_keras(row, weighted):
    """A few SGD steps through a small model: the gradients lossdsl derived move the weights as Keras's
    own loss does, with and without sample_weight, and evaluate() agrees."""
    y, _, w = _data(row, seed=1)
    x = np.random.default_rng(2).normal(size=(N, FEATURES)).astype("float32")
    w = w if weighted else None
    start = _model(0).get_weights()
    ours, ours_history = _trained(_loss(row), start, x, y, w)
    theirs, their_history = _trained(row.reference(), start, x, y, w)
    assert not all(np.array_equal(a, b) for a, b in zip(ours.get_weights(), start))  # it did train
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours_history, their_history, rtol=1e-4)
    np.testing.assert_allclose(ours.evaluate(x, y, sample_weight=w, verbose=0),
                               theirs.evaluate(x, y, sample_weight=w, verbose=0), rtol=1e-4)


@pytest.mark.parametrize("checks", [False, True], ids=["checks=False", "checks"])
def test_jit_compiled_fit_follows_keras(checks):
    """model.compile(jit_compile=True): on the torch backend Keras runs its train step through
    torch.compile (the generated module importable by name; with checks, graph breaks at their reads
    of values; without, none), on JAX through jax.jit. The weights move as with Keras's own loss, jit-compiled too."""
    row = ROWS[2]  # bce from logits
    y, _, w = _data(row, seed=1)
    x = np.random.default_rng(2).normal(size=(N, FEATURES)).astype("float32")
    start = _model(0).get_weights()
    trained = []
    for loss in (_loss(row, checks=checks), row.reference()):
        model = _model(0)
        model.set_weights(start)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss=loss, jit_compile=True)
        history = model.fit(x, y, sample_weight=w, batch_size=8, epochs=1, shuffle=False, verbose=0)
        trained.append((model.get_weights(), history.history["loss"]))
    (ours, ours_history), (theirs, their_history) = trained
    assert not all(np.array_equal(a, b) for a, b in zip(ours, start))  # it did train
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours_history, their_history, rtol=1e-4)


def test_checks_off():
    """checks=False compiles the loss without value checks (what Keras's jit_compile=True needs on the
    torch backend: torch.compile breaks its graph at a check's host read; torch.compile(fullgraph=True)
    of checks=False losses is tests/test_scans.py's and test_axes.py's), and survives get_config."""
    row = ROWS[2]
    y_true, y_pred, w = _data(row)
    loss = _loss(row, checks=False)
    assert loss.loss.checks is False and _loss(row).loss.checks is True and "checks=False" in repr(loss)
    assert Loss.from_config(loss.get_config()).loss.checks is False
    _close(loss(y_true, y_pred, sample_weight=w), row.reference()(y_true, y_pred, sample_weight=w), row.rtol)
    bad = y_true.copy()
    bad[0, 0] = 2.0  # outside bce's [0, 1]: checked by default, computed with as it is without checks
    with pytest.raises(InputError):
        _loss(row)(bad, y_pred)
    assert np.isfinite(keras.ops.convert_to_numpy(loss(bad, y_pred)))


def test_save_and_load(tmp_path):
    row = ROWS[5]  # with a constant
    y, _, w = _data(row, seed=1)
    x = np.random.default_rng(2).normal(size=(N, FEATURES)).astype("float32")
    model = _model(0)
    model.compile(optimizer="sgd", loss=_loss(row, name="ours", reduction="sum"))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.loss, Loss)
    assert (loaded.loss.source, loaded.loss.constants, loaded.loss.name, loaded.loss.reduction) == \
        (row.source, {"g": 3.0}, "ours", "sum")
    assert loaded.loss.get_config() == model.loss.get_config()
    np.testing.assert_allclose(loaded.evaluate(x, y, sample_weight=w, verbose=0),
                               row.reference(reduction="sum")(y, model.predict(x, verbose=0), sample_weight=w),
                               rtol=1e-5)


def test_loss_from_a_file_saves_its_text(tmp_path):
    path = tmp_path / "mine.loss"
    path.write_text('def mine(y_true, y_pred, reduction="mean"):\n    return reduce((y_pred - y_true)^2, reduction)\n'
                    "mine()\n")
    loss = Loss(path)
    config = loss.get_config()
    assert config["source"] == path.read_text()
    again = Loss.from_config(config)
    y_true, y_pred, w = _data(ROWS[0])
    # a user definition with reduction= is unreduced as the library's are
    _close(again(y_true, y_pred, sample_weight=w), keras.losses.MeanSquaredError()(y_true, y_pred, sample_weight=w),
           1e-5)


@pytest.mark.parametrize(("true_shape", "pred_shape"), [((N,), (N, 1)), ((N, 1), (N,)), ((N, 1), (N, 1)), ((N,), (N,))])
@pytest.mark.parametrize("row", [ROWS[0], ROWS[2]], ids=lambda r: r.source)
def test_rank_matching(row, true_shape, pred_shape):
    y_true, y_pred, w = _data(row)
    y_true, y_pred = y_true[:, 0].reshape(true_shape), y_pred[:, 0].reshape(pred_shape)
    for weights in (None, w):
        got = _loss(row)(y_true, y_pred, sample_weight=weights)
        # Keras's own loss averages a 1-d batch to one number before it weighs it; per sample, as ours, is
        # what it does with (N, 1)
        want = row.reference()(y_true.reshape(N, 1), y_pred.reshape(N, 1), sample_weight=weights)
        _close(got, want, 1e-5)


@pytest.mark.parametrize("label_shape", [(N,), (N, 1)])
def test_integer_labels(label_shape):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, OUT, N).reshape(label_shape)
    logits, w = rng.normal(size=(N, OUT)).astype("float32"), rng.random(N).astype("float32")
    got = Loss("sparse_cce(from_logits=true)")(labels, logits, sample_weight=w)
    want = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits, sample_weight=w)
    _close(got, want, 1e-5)


def test_batch_reduced_loss():
    """A loss that is one number for the batch: its value as written, and no sample_weight."""
    y_true, y_pred, w = _data(ROWS[0])
    loss = Loss("mean((y_pred - y_true)^2) + 0.5*max(abs(y_pred))")
    ops = keras.ops
    want = ops.mean((y_pred - y_true) ** 2) + 0.5 * ops.max(ops.abs(y_pred))
    _close(loss(y_true, y_pred), want, 1e-5)
    with pytest.raises(lossdsl.LossDSLError, match="cannot weigh its samples"):
        loss(y_true, y_pred, sample_weight=w)


class _Sum(keras.losses.Loss):
    """Keras's own losses, weighted and summed per sample; Keras weighs and reduces the sum."""

    def __init__(self, parts: list, **kw: Any):
        super().__init__(**kw)
        self.parts = parts

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return sum(c * loss.call(y_true, y_pred) for c, loss in self.parts)


SUMS = [  # a multi-task source, its labels, and its terms as Keras's losses
    Row("mse() + 0.5*mae()", lambda **kw: _Sum([(1.0, keras.losses.MeanSquaredError()),
                                                 (0.5, keras.losses.MeanAbsoluteError())], **kw), "real"),
    Row("(cce(from_logits=true) - mse()/4)*2", lambda **kw: _Sum(
        [(2.0, keras.losses.CategoricalCrossentropy(from_logits=True)), (-0.5, keras.losses.MeanSquaredError())],
        **kw), "onehot"),
]


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "none"])
@pytest.mark.parametrize("row", SUMS, ids=lambda r: r.source)
def test_weighted_sums_weigh_each_term_per_sample(row, reduction):
    """A weighted sum of library losses: each term per sample as it would be alone (cce's per sample,
    mse's per element averaged over the last axis), then summed, so sample_weight applies as to
    Keras's own losses summed; and a few SGD steps follow them."""
    y_true, y_pred, w = _data(row)
    for weights in (None, w):
        got = Loss(row.source, reduction=reduction)(y_true, y_pred, sample_weight=weights)
        _close(got, row.reference(reduction=reduction)(y_true, y_pred, sample_weight=weights), 1e-5)
    y, _, w = _data(row, seed=1)
    x = np.random.default_rng(2).normal(size=(N, FEATURES)).astype("float32")
    start = _model(0).get_weights()
    ours, _ = _trained(Loss(row.source), start, x, y, w)
    theirs, _ = _trained(row.reference(), start, x, y, w)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("source", "constants", "message"), [
    ("mean(x^2)", {}, "name the prediction y_pred"),
    ("mean(y_true^2)", {}, "name the prediction y_pred"),
    ("mse() + l2(w, 0.1)", {}, "missing w"),
    ("mse()", {"w": 1.0}, "not inputs of the loss: w"),
    ("mse()", {"y_true": 1.0}, "given by Keras: y_true"),
    ('mse(reduction="sum")', {}, "Keras reduces the loss"),
    ('mse() + 0.5*mae(reduction="sum")', {}, "Keras reduces the loss"),
    ('huber(y_true, y_pred, 1.0, "mean")', {}, "Keras reduces the loss"),
    ("mse(", {}, "unexpected|expected"),
])
def test_errors(source, constants, message):
    with pytest.raises(lossdsl.LossDSLError, match=message):
        Loss(source, **constants)


def test_integer_constant():
    """A constant for an input that holds integer labels (here every sample's class) stays integer."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, OUT, N)
    logits, w = rng.normal(size=(N, OUT)).astype("float32"), rng.random(N).astype("float32")
    loss = Loss("-take(log_softmax(y_pred, axis=-1), k, axis=-1)", k=labels)
    want = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits, sample_weight=w)
    _close(loss(np.zeros_like(logits), logits, sample_weight=w), want, 1e-5)


def test_source_by_keyword():
    """Loss(source=...) as Loss(...): the contract's first parameter by name too; with none, a clear error.
    An input called 'source' takes its constant by keyword once the text comes first."""
    y_true, y_pred, _ = _data(ROWS[0])
    _close(Loss(source="mse()")(y_true, y_pred), Loss("mse()")(y_true, y_pred), 1e-7)
    assert Loss(source="mse()", name="m").name == "m"
    with pytest.raises(lossdsl.LossDSLError, match="needs the loss's source text"):
        Loss()
    weighted = Loss("mean(source*(y_pred - y_true)^2, axis=-1)", source=2.0)
    _close(weighted(y_true, y_pred), 2 * Loss("mse()")(y_true, y_pred), 1e-6)
