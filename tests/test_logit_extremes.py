"""Every library loss that reads logits (or a log-rate), element by element at logits of +-50 to +-1000.

A table of (loss, labels, options) against references in 50-digit arithmetic (mpmath, from the
published formula; gradients by mpmath's differentiation of it), per element: the values with
reduction="none", the gradients with reduction="sum" (so each is one element's derivative). Relative
error within a few dozen ulp of the dtype, wherever the true value is well inside the dtype's normal
numbers (see _close). This is the class of issue 14's item 4: a form that
cancels for one sign of the logit (1 - sigmoid(x) for sigmoid(-x)) is exact for the mirrored one.

Logits: +-50, +-100, +-700, +-1000 in float64, +-80 in float32 (and the moderate +-3, +-30 in both).
The focal loss with gamma < 1 has an infinite derivative of miss^gamma where the probability of a miss
underflows to 0 (|logit| beyond about 745 in float64, 103 in float32): its rows stop at 700 and 80.
"""

import jax
import mpmath as mp
import numpy as np
import optax
import pytest
import torch

import lossdsl

jax.config.update("jax_enable_x64", True)
mp.mp.dps = 50

BACKENDS = ["numpy", "jax", "torch"]
LOGITS = {np.float64: [-1000.0, -700.0, -100.0, -50.0, -30.0, -3.0, 3.0, 30.0, 50.0, 100.0, 700.0, 1000.0],
          np.float32: [-80.0, -50.0, -30.0, -3.0, 3.0, 30.0, 50.0, 80.0]}
ULPS = 64  # several roundings of a handful of terms each


def _softplus(x):
    return mp.log1p(mp.exp(x)) if x < 0 else x + mp.log1p(mp.exp(-x))


def _sigmoid(x):
    return 1 / (1 + mp.exp(-x))


def _bce(y, x, pos_weight=1):
    return pos_weight * y * _softplus(-x) + (1 - y) * _softplus(x)


def _focal(gamma, alpha):
    def f(y, x):
        miss = y * _sigmoid(-x) + (1 - y) * _sigmoid(x)  # 1 - p_t, with no cancellation in 50 digits
        scale = 1 if alpha < 0 else alpha * y + (1 - alpha) * (1 - y)
        return scale * miss**gamma * _bce(y, x)
    return f


def _poisson(y, x):
    return mp.exp(x) - y * x


# (id, call, elementwise reference f(y, x), labels, the largest |logit| where the gradient is promised)
ELEMENTWISE = [
    ("bce", "bce(y_true, y_pred, from_logits=true{opts})", _bce, [0.0, 1.0, 0.3, 0.999], None),
    ("bce-pos_weight", "bce(y_true, y_pred, from_logits=true, pos_weight=3.0{opts})",
     lambda y, x: _bce(y, x, 3), [0.0, 1.0, 0.7], None),
    ("focal", "focal(y_true, y_pred, from_logits=true{opts})", _focal(2, 0.25), [0.0, 1.0, 0.3, 0.999], None),
    ("focal-gamma1-noalpha", "focal(y_true, y_pred, gamma=1.0, alpha=-1.0, from_logits=true{opts})",
     _focal(1, -1), [0.0, 1.0, 0.6], None),
    ("focal-gamma0.5", "focal(y_true, y_pred, gamma=0.5, from_logits=true{opts})", _focal(mp.mpf("0.5"), 0.25),
     [0.0, 1.0, 0.3], {np.float64: 700.0, np.float32: 80.0}),
    ("poisson_nll", "poisson_nll(y_true, y_pred{opts})", _poisson, [0.0, 1.0, 3.5], None),
]


def _close(got, want, dtype):
    """Relative error within ULPS ulp where the true value is at least tiny/eps (tiny: the smallest
    normal number), absolute within tiny/eps below that: a term there may be a product of factors
    whose own product is subnormal (sigmoid(-50)^2 in float32), and keeps only some of its digits."""
    finfo = np.finfo(dtype)
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    overflow = np.abs(want) > finfo.max
    assert np.all(np.isinf(got[overflow]) & (np.sign(got[overflow]) == np.sign(want[overflow]))), (got, want)
    ok = ~overflow
    np.testing.assert_allclose(got[ok], want[ok], rtol=ULPS * finfo.eps, atol=finfo.tiny / finfo.eps)


def _elementwise_reference(f, y, x):
    xs = [mp.mpf(float(v)) for v in x]
    value = [f(mp.mpf(float(y)), v) for v in xs]
    grad = [mp.diff(lambda t: f(mp.mpf(float(y)), t), v) for v in xs]
    return np.array([float(v) for v in value]), np.array([float(g) for g in grad])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: d.__name__)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", ELEMENTWISE, ids=[r[0] for r in ELEMENTWISE])
def test_elementwise_loss_from_logits(row, backend, dtype):
    _, call, f, labels, grad_limit = row
    x = np.array(LOGITS[dtype], dtype=dtype)
    if row[0] == "poisson_nll":  # exp(1000) overflows: the true value is beyond float64 too (checked as inf)
        x = x[np.abs(x) <= 700]
    values = lossdsl.compile(call.format(opts=', reduction="none"'), backend=backend)
    grads = lossdsl.compile(call.format(opts=', reduction="sum"'), backend=backend).grad("y_pred")
    for label in labels:
        y = np.full_like(x, label)
        want_value, want_grad = _elementwise_reference(f, y.astype(np.float64)[0], x)
        _close(np.asarray(values(y_true=y, y_pred=x)), want_value, dtype)
        promised = np.ones(x.shape, bool) if grad_limit is None else np.abs(x) <= grad_limit[dtype]
        _close(np.asarray(grads(y_true=y, y_pred=x))[promised], want_grad[promised], dtype)


def test_bce_and_focal_agree_with_optax_where_optax_is_exact():
    """optax's sigmoid_binary_cross_entropy is log_sigmoid of +-x, exact for both labels; its focal
    loss computes 1 - p_t as 1 - p (cancelling for large logits), so it is compared where it is exact:
    hard labels on the side where p_t is not near 1."""
    x = np.array(LOGITS[np.float64])
    for label in (0.0, 1.0, 0.3):
        y = np.full_like(x, label)
        ours = lossdsl.compile('bce(y_true, y_pred, from_logits=true, reduction="none")')(y_true=y, y_pred=x)
        np.testing.assert_allclose(ours, optax.sigmoid_binary_cross_entropy(x, y), rtol=ULPS * 2.2e-16)
    wrong = np.array([-50.0, -30.0, -3.0, 3.0])  # label 1, logits where p_t = sigmoid(x) is far from 1
    y = np.ones_like(wrong)
    ours = lossdsl.compile('focal(y_true, y_pred, from_logits=true, reduction="none")')(y_true=y, y_pred=wrong)
    np.testing.assert_allclose(ours, optax.sigmoid_focal_loss(wrong, y, alpha=0.25, gamma=2.0), rtol=1e-13)


def test_bce_agrees_with_torch_where_torch_is_exact():
    """torch computes (1 - y)*x + max(-x, 0) + log1p(exp(-|x|)), whose first two terms cancel for
    y < 1 and x < 0 (label 0 at logit -50 gives 0, the true value 2e-22, which ours matches: see
    above); elsewhere (label 1, or x >= 0 with label 0) it is exact, and so must ours be."""
    x = torch.tensor(LOGITS[np.float64], dtype=torch.float64)
    ours = lossdsl.compile('bce(y_true, y_pred, from_logits=true, reduction="none")', backend="torch")
    for label, where in ((1.0, x == x), (0.0, x >= 0)):
        y = torch.full_like(x, label)
        want = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
        np.testing.assert_allclose(ours(y_true=y, y_pred=x)[where].numpy(), want[where].numpy(), rtol=ULPS * 2.2e-16)


# --- losses over a class axis: one row of extreme logits per sample ------------------------------

ROWS = {np.float64: [[1000.0, -1000.0, 0.0, 5.0], [-700.0, 700.0, 50.0, -50.0], [100.0, 99.0, -100.0, 3.0]],
        np.float32: [[80.0, -80.0, 0.0, 5.0], [-50.0, 50.0, 30.0, -30.0], [80.0, 79.0, -80.0, 3.0]]}
TARGETS = [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.0, 0.5]]


def _log_softmax(row):
    top = max(row)
    lse = top + mp.log(mp.fsum(mp.exp(v - top) for v in row))
    return [v - lse for v in row]


def _cce(t, z):
    return -mp.fsum(a * b for a, b in zip(t, _log_softmax(z)))


def _categorical_focal(t, z, gamma=2, alpha=0.25):
    logp = _log_softmax(z)
    return -mp.fsum(alpha * a * (1 - mp.exp(b))**gamma * b for a, b in zip(t, logp))


CATEGORICAL = [
    ("cce", "cce(y_true, y_pred, from_logits=true{opts})", _cce),
    ("categorical_focal", "categorical_focal(y_true, y_pred, from_logits=true{opts})", _categorical_focal),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: d.__name__)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", CATEGORICAL, ids=[r[0] for r in CATEGORICAL])
def test_class_axis_loss_from_logits(row, backend, dtype):
    _, call, f = row
    z, t = np.array(ROWS[dtype], dtype=dtype), np.array(TARGETS, dtype=dtype)
    mt = [[mp.mpf(float(v)) for v in r] for r in t]
    mz = [[mp.mpf(float(v)) for v in r] for r in z]
    want_value = np.array([float(f(a, b)) for a, b in zip(mt, mz)])
    want_grad = np.array([[float(mp.diff(lambda *v, a=a: f(a, list(v)), b, tuple(int(k == j) for k in range(len(b)))))
                           for j in range(len(b))] for a, b in zip(mt, mz)])
    values = lossdsl.compile(call.format(opts=', reduction="none"'), backend=backend)
    grads = lossdsl.compile(call.format(opts=', reduction="sum"'), backend=backend).grad("y_pred")
    _close(np.asarray(values(y_true=t, y_pred=z)), want_value, dtype)
    # a gradient entry is a difference of probabilities (softmax - target): ulps of 1, as in optax and
    # torch (softmax(z) - 1 is 0 where the true value is -3e-33, a row of logits 80, -80, 0, 5 in float32)
    got = np.asarray(grads(y_true=t, y_pred=z), dtype=np.float64)
    np.testing.assert_allclose(got, want_grad, rtol=ULPS * np.finfo(dtype).eps, atol=ULPS * np.finfo(dtype).eps)
