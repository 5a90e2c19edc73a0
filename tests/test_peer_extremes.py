"""The peers' own extreme cases, on every backend and in both float types.

Each row is a library loss called as a PyTorch, optax or Keras user would, at the inputs those
libraries' test suites and users push hardest: logits of +-50 to +-1000, soft labels, per-sample
weights of shape (N, 1), scalar targets. The value and the gradient with respect to the prediction
are compared with the peer itself (torch.autograd of torch.nn.functional, jax.grad of optax), or for
Keras (not installed here) with a NumPy/jax.numpy transcription of its published formula, on NumPy,
JAX eagerly and under ``jax.jit``, and torch, in float32 and float64 (a covering of run x dtype per
row: tests/sampling.py).

Tolerances are relative to the float type: in float32 the peers themselves differ by a few ulp, and
at logits of 1000 a float32 softplus is exact to its last digit only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from sampling import covering

import lossdsl

jax.config.update("jax_enable_x64", True)
F = torch.nn.functional

BACKENDS = ["numpy", "jax", "jax-jit", "torch"]
RTOL = {np.float32: 2e-5, np.float64: 1e-12}


@dataclass(frozen=True)
class Peer:
    """``call`` is lossdsl source of inputs ``y`` (target) and ``x`` (prediction, differentiated) and
    maybe ``w`` (weights); ``value(inputs)`` the peer's value (a float) from float64 NumPy arrays,
    differentiable in ``x`` by ``grad(inputs)``."""

    id: str
    call: str
    inputs: Callable[[type], dict[str, np.ndarray]]
    value: Callable[[dict[str, np.ndarray]], float]
    grad: Callable[[dict[str, np.ndarray]], np.ndarray]
    dtypes: tuple[type, ...] = (np.float32, np.float64)  # where the library promises finite results


def _torch_peer(fn: Callable[..., torch.Tensor]):
    """value and d value / d x by torch.autograd, in float64."""
    def run(inputs):
        t = {k: torch.tensor(v, dtype=torch.float64 if v.dtype.kind == "f" else torch.int64) for k, v in inputs.items()}
        t["x"].requires_grad_(True)
        out = fn(**t)
        (g,) = torch.autograd.grad(out, t["x"])
        return float(out.detach()), g.numpy()
    return (lambda i: run(i)[0]), (lambda i: run(i)[1])


def _jax_peer(fn: Callable[..., jax.Array]):
    """value and d value / d x by jax.grad of a peer written in jax.numpy (optax), in float64."""
    def run(inputs):
        rest = {k: jnp.asarray(v) for k, v in inputs.items() if k != "x"}
        v, g = jax.value_and_grad(lambda x: fn(x=x, **rest))(jnp.asarray(inputs["x"]))
        return float(v), np.asarray(g)
    return (lambda i: run(i)[0]), (lambda i: run(i)[1])


def _logits(big: float, n: int = 4):
    """Logits of +-big and of small size against hard 1s, hard 0s and soft labels: every sign pair."""
    def make(dtype):
        x = np.array([[big, -big, big / 2, -0.3], [-big, big, 0.7, -big / 3]] * n, dtype=dtype)
        y = np.array([[1.0, 0.0, 0.9, 1.0], [1.0, 0.0, 0.25, 0.0]] * n, dtype=dtype)
        return {"y": y, "x": x}
    return make


def _class_logits(big: float, soft: bool):
    def make(dtype):
        x = np.array([[big, -big, 0.5, -big], [-big, big, big, 0.1], [0.2, -0.4, -big, big]], dtype=dtype)
        y = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0.3, 0.7]] if soft else
                     [[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 1.0, 0, 0]], dtype=dtype)
        return {"y": y, "x": x}
    return make


def _weighted(make, column: bool):
    """The same inputs with per-sample weights, (N,) or Keras's (N, 1)."""
    def with_w(dtype):
        inputs = make(dtype)
        n = len(inputs["x"])
        w = np.linspace(0.5, 2.0, n).astype(dtype)
        return {**inputs, "w": w[:, None] if column else w}
    return with_w


def _sample_w(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(-1)


ROWS: list[Peer] = []
for big in (50.0, 100.0, 1000.0):
    ROWS.append(Peer(
        f"bce-logits-{big:g}", "bce(y, x, from_logits=true)", _logits(big),
        *_torch_peer(lambda y, x: F.binary_cross_entropy_with_logits(x, y))))
    ROWS.append(Peer(
        f"bce-logits-optax-{big:g}", "bce(y, x, from_logits=true, reduction=\"sum\")", _logits(big),
        *_jax_peer(lambda y, x: jnp.sum(optax.losses.sigmoid_binary_cross_entropy(x, y)))))
    ROWS.append(Peer(
        f"focal-logits-{big:g}-gamma2", "focal(y, x, gamma=2.0, alpha=0.25, from_logits=true, reduction=\"sum\")",
        _logits(big), *_jax_peer(lambda y, x: jnp.sum(optax.losses.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0)))))
# gamma < 1: (1 - p_t)^(gamma - 1) in the gradient overflows once 1 - p_t underflows, so focal's
# docstring promises finite results to |logit| 745 in float64 and 88 in float32 (optax goes further)
for big, dtypes in ((50.0, (np.float32, np.float64)), (80.0, (np.float32, np.float64)), (700.0, (np.float64,))):
    ROWS.append(Peer(
        f"focal-logits-{big:g}-gamma0.5", "focal(y, x, gamma=0.5, alpha=0.25, from_logits=true, reduction=\"sum\")",
        _logits(big), *_jax_peer(lambda y, x: jnp.sum(optax.losses.sigmoid_focal_loss(x, y, alpha=0.25, gamma=0.5))),
        dtypes))
    for soft in (False, True):
        ROWS.append(Peer(
            f"cce-logits-{big:g}-{'soft' if soft else 'hard'}", "cce(y, x, from_logits=true)",
            _class_logits(big, soft), *_torch_peer(lambda y, x: F.cross_entropy(x, y))))
        ROWS.append(Peer(
            f"cce-logits-optax-{big:g}-{'soft' if soft else 'hard'}", "cce(y, x, from_logits=true, reduction=\"sum\")",
            _class_logits(big, soft), *_jax_peer(lambda y, x: jnp.sum(optax.losses.softmax_cross_entropy(x, y)))))
ROWS.append(Peer(
    "sparse-cce-logits-1000", "sparse_cce(y, x, from_logits=true)",
    lambda dtype: {"y": np.array([0, 2, 3]), "x": _class_logits(1000.0, False)(dtype)["x"]},
    *_torch_peer(lambda y, x: F.cross_entropy(x, y))))

# (N, 1) weights on losses with one value per sample: Keras's sample_weight=[[1.2], [3.4]] cases.
# lossdsl's weighted mean is sum(w*l)/sum(w); its "sum" is sum(w*l), which is Keras's SUM reduction.
for column in (False, True):
    shape = "n1" if column else "n"
    ROWS.append(Peer(
        f"cce-weights-{shape}", "cce(y, x, from_logits=true, reduction=\"sum\", weights=w)",
        _weighted(_class_logits(50.0, True), column),
        *_torch_peer(lambda y, x, w: torch.sum(_sample_w(w) * F.cross_entropy(x, y, reduction="none")))))
    ROWS.append(Peer(
        f"sparse-cce-weights-{shape}", "sparse_cce(y, x, from_logits=true, reduction=\"sum\", weights=w)",
        _weighted(lambda dtype: {"y": np.array([0, 2, 3]), "x": _class_logits(50.0, False)(dtype)["x"]}, column),
        *_torch_peer(lambda y, x, w: torch.sum(_sample_w(w) * F.cross_entropy(x, y, reduction="none")))))
    ROWS.append(Peer(
        f"kl-div-weights-{shape}", "kl_div(y, x, reduction=\"sum\", weights=w)",
        _weighted(lambda dtype: {"y": np.array([[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]], dtype=dtype),
                                 "x": np.array([[0.1, 0.6, 0.3], [1e-30, 0.5, 0.5]], dtype=dtype)}, column),
        *_torch_peer(lambda y, x, w: torch.sum(
            _sample_w(w) * F.kl_div(torch.log(x), y, reduction="none").sum(-1)))))
    ROWS.append(Peer(
        f"mse-weights-{shape}", "mse(y, x, reduction=\"sum\", weights=w)",
        _weighted(lambda dtype: {"y": np.array([[1.0, 9.0, 2.0], [-5.0, -2.0, 6.0]], dtype=dtype),
                                 "x": np.array([[4.0, 8.0, 12.0], [8.0, 1.0, 3.0]], dtype=dtype)}, column),
        *_torch_peer(lambda y, x, w: torch.sum(w.reshape(-1, 1) * (x - y) ** 2))))

# Scalar targets (the GAN generator's bce(1, d)): a 0-d array input broadcast against the logits.
for target in (0.0, 1.0, 0.9):
    ROWS.append(Peer(
        f"bce-scalar-target-{target:g}", "bce(y, x, from_logits=true)",
        lambda dtype, t=target: {"y": np.array(t, dtype=dtype),
                                 "x": np.array([-1000.0, -60.0, -0.5, 0.0, 2.0, 60.0, 1000.0], dtype=dtype)},
        *_torch_peer(lambda y, x: F.binary_cross_entropy_with_logits(x, y.expand_as(x)))))


def _evaluate(peer: Peer, backend: str, inputs: dict[str, np.ndarray]) -> tuple[Any, Any]:
    loss = lossdsl.compile(peer.call, backend="jax" if backend == "jax-jit" else backend)
    fn = loss.value_and_grad("x")
    if backend == "torch":
        return fn(**{k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()})
    if backend == "jax-jit":
        return jax.jit(lambda kw: fn(**kw))({k: jnp.asarray(v) for k, v in inputs.items()})
    return fn(**inputs)


@pytest.mark.parametrize("peer, backend, dtype", [
    pytest.param(p, b, d, id=f"{p.id}-{b}-{d.__name__}") for p in ROWS
    for b, d in covering(f"{p.id}/peer-extremes", [BACKENDS, p.dtypes])])
def test_agrees_with_peer(peer, backend, dtype):
    inputs = peer.inputs(dtype)
    value, grad = _evaluate(peer, backend, inputs)
    value, grad = np.asarray(value), np.asarray(grad)
    exact = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in inputs.items()}
    want_value, want_grad = peer.value(exact), peer.grad(exact)
    assert value.dtype == dtype and grad.dtype == dtype, (value.dtype, grad.dtype)
    assert grad.shape == inputs["x"].shape
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    rtol = RTOL[dtype]
    np.testing.assert_allclose(value, want_value, rtol=rtol, atol=rtol * 1e-3 * (1 + abs(want_value)))
    scale = np.max(np.abs(want_grad))
    # Elementwise relative accuracy where the gradient is not negligible against its largest entry;
    # the tiny entries (optax's -4e-33 at logit 50) must still be right to a few ulp where the float
    # type holds them with full precision through the products that make them (above tiny/eps).
    np.testing.assert_allclose(grad, want_grad, rtol=rtol, atol=rtol * 1e-3 * scale)
    info = np.finfo(dtype)
    tiny = (np.abs(want_grad) < 1e-6 * scale) & (np.abs(want_grad) > info.tiny / info.eps)
    np.testing.assert_allclose(grad[tiny], want_grad[tiny], rtol=max(rtol, 1e-6) * 10)
