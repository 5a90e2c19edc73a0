"""Axes and shapes: transpose (with and without axes), swapaxes, moveaxis, reshape, flatten and
one_hot's class axis. Each row a loss and the same expression in jax.numpy; from each row: the value
and gradient against jax.grad of the reference on NumPy, JAX (eager, and under a caller's jax.jit)
and torch, in float32 and float64; central finite differences in float64; Hessians against
jax.hessian (the adjoints, moveaxis and reshape_like, differentiate again); the standalone modules;
the analysis's facts; errors at compile time and at call time."""

import importlib.util
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from oracles import (
    BACKENDS,
    HAS_TORCH,
    RUNS,
    assert_finite_differences,
    assert_hessian_matches_jax,
    assert_value_and_grads_match_jax,
    jax_value_and_grads,
)
from sampling import sampled

import lossdsl
from lossdsl.blocking import row_blocks
from lossdsl.errors import InputError, LossDSLError

jax.config.update("jax_enable_x64", True)

RNG = np.random.default_rng(21)
X3 = RNG.normal(size=(2, 3, 4))
Y3 = RNG.normal(size=(2, 4, 3))
M = RNG.normal(size=(3, 4))
W = RNG.normal(size=(4, 3))
LOGITS = RNG.normal(size=(2, 3, 4, 5))  # (B, C, H, W)
LABELS = RNG.integers(0, 3, size=(2, 4, 5))  # (B, H, W)

# (id, source, inputs, reference in jax.numpy)
ROWS = [
    ("transpose-reversed", "sum(transpose(m) * w) + sum(transpose(m)^2 @ m)", {"m": M, "w": W},
     lambda m, w: jnp.sum(m.T * w) + jnp.sum((m.T**2) @ m)),
    ("transpose-axes", "sum(transpose(x, axes=(0, 2, 1)) * y^2) + sum(transpose(x, (2, 0, 1))^3)", {"x": X3, "y": Y3},
     lambda x, y: jnp.sum(jnp.transpose(x, (0, 2, 1)) * y**2) + jnp.sum(jnp.transpose(x, (2, 0, 1)) ** 3)),
    ("transpose-negative-axes", "sum(logsumexp(transpose(x, axes=(-1, 0, 1)), axis=0) * y[:, 0, :])",
     {"x": X3, "y": Y3},
     lambda x, y: jnp.sum(jax.scipy.special.logsumexp(jnp.transpose(x, (2, 0, 1)), axis=0) * y[:, 0, :])),
    ("swapaxes", "sum(swapaxes(x, 1, 2) * y) + sum(swapaxes(x, -1, 0)^2 * v) + sum(swapaxes(x, 1, -2)^2)",
     {"x": X3, "y": Y3, "v": RNG.normal(size=(3, 2))},
     lambda x, y, v: jnp.sum(jnp.swapaxes(x, 1, 2) * y) + jnp.sum(jnp.swapaxes(x, -1, 0) ** 2 * v) + jnp.sum(x**2)),
    ("moveaxis", "sum(moveaxis(x, 0, -1) * exp(moveaxis(x, 0, 2))) + sum(moveaxis(x, -1, 1) * y)",
     {"x": X3, "y": Y3},
     lambda x, y: jnp.sum(jnp.moveaxis(x, 0, -1) * jnp.exp(jnp.moveaxis(x, 0, 2))) + jnp.sum(jnp.moveaxis(x, -1, 1) * y)),
    ("reshape", "sum((reshape(x, (size(x, axis=0), -1)) @ reshape(y, (12, size(y, axis=0))))^2) "
     "+ sum(reshape(x^2, (4, 3, 2)) * reshape(y, (4, -1, 2)))",
     {"x": X3, "y": Y3},
     lambda x, y: jnp.sum((x.reshape(2, -1) @ y.reshape(12, 2)) ** 2) + jnp.sum(x.reshape(4, 3, 2) ** 2 * y.reshape(4, 3, 2))),
    ("reshape-sizes", "sum(log_softmax(reshape(x, (size(x, axis=0) * size(x, axis=1), size(x, axis=2))), axis=-1) * m)",
     {"x": X3, "m": np.abs(RNG.normal(size=(6, 4)))},
     lambda x, m: jnp.sum(jax.nn.log_softmax(x.reshape(6, 4), axis=-1) * m)),
    ("flatten", "sum(flatten(x) * flatten(moveaxis(y, 1, 2))) + sum(flatten(x, start=0)^3) + sum(flatten(x, -2)^2)",
     {"x": X3, "y": Y3},
     lambda x, y: jnp.sum(x.reshape(2, -1) * jnp.moveaxis(y, 1, 2).reshape(2, -1)) + jnp.sum(x.reshape(-1) ** 3)
     + jnp.sum(x.reshape(2, -1) ** 2)),
    ("one-hot-class-axis", "mean(sum(-one_hot(labels, 3, axis=1) * log_softmax(logits, axis=1), axis=1))",
     {"logits": LOGITS, "labels": LABELS},
     lambda logits, labels: jnp.mean(jnp.sum(-jnp.moveaxis(jax.nn.one_hot(labels, 3), -1, 1)
                                             * jax.nn.log_softmax(logits, axis=1), axis=1))),
    ("one-hot-constant-label", "sum(one_hot(2, 3) * transpose(m)) + sum(one_hot(1, 3, axis=0) * m[:, 0])",
     {"m": M},
     lambda m: jnp.sum(jax.nn.one_hot(2, 3) * m.T) + jnp.sum(jax.nn.one_hot(1, 3) * m[:, 0])),
]
IDS = [r[0] for r in ROWS]


@pytest.mark.parametrize("row, run, dtype", sampled(ROWS, IDS, [RUNS, [np.float64, np.float32]], "axes"))
def test_value_and_gradient_against_jax_grad(row, run, dtype):
    assert_value_and_grads_match_jax(row[1], row[2], run, dtype, row[3])


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_gradient_against_finite_differences(row):
    _, source, inputs, _ = row
    assert_finite_differences(lossdsl.compile(source), inputs)


# --- second derivatives: the adjoints (moveaxis back, reshape_like) differentiate again -------------

HESSIANS = [
    ("transpose-axes", "sum(transpose(x, axes=(1, 2, 0))^3 * y[0, 0, 0])", {"x": X3, "y": Y3}, "x",
     lambda x, y: jnp.sum(jnp.transpose(x, (1, 2, 0)) ** 3 * y[0, 0, 0])),
    ("swapaxes", "sum(logsumexp(swapaxes(x, 0, 2), axis=-1) * transpose(x)[:, :, 0])", {"x": X3}, "x",
     lambda x: jnp.sum(jax.scipy.special.logsumexp(jnp.swapaxes(x, 0, 2), axis=-1) * x.T[:, :, 0])),
    ("moveaxis", "sum(moveaxis(x, 2, 0)^2 * moveaxis(x, 2, 0)[0])", {"x": X3}, "x",
     lambda x: jnp.sum(jnp.moveaxis(x, 2, 0) ** 2 * jnp.moveaxis(x, 2, 0)[0])),
    ("reshape", "sum((reshape(x, (size(x, axis=0), -1)) @ reshape(x, (12, -1)))^2)", {"x": X3}, "x",
     lambda x: jnp.sum((x.reshape(2, -1) @ x.reshape(12, -1)) ** 2)),
    ("flatten", "sum(log_softmax(flatten(x), axis=-1) * flatten(x))", {"x": X3}, "x",
     lambda x: jnp.sum(jax.nn.log_softmax(x.reshape(2, -1), axis=-1) * x.reshape(2, -1))),
    ("one-hot-class-axis", "sum(one_hot(labels, 3, axis=1) * logits^3)", {"logits": LOGITS, "labels": LABELS}, "logits",
     lambda logits, labels: jnp.sum(jnp.moveaxis(jax.nn.one_hot(labels, 3), -1, 1) * logits**3)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", HESSIANS, ids=[h[0] for h in HESSIANS])
def test_hessian_against_jax_hessian(row, backend):
    _, source, inputs, wrt, ref = row
    assert_hessian_matches_jax(source, inputs, wrt, ref, backend)


# --- standalone modules ----------------------------------------------------------------------------------

def _standalone(loss, tmp_path, name):
    path = tmp_path / f"{name}.py"
    path.write_text(loss.source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", [ROWS[1], ROWS[5], ROWS[7], ROWS[8]], ids=lambda r: r[0])
def test_standalone_module(row, backend, tmp_path):
    name, source, inputs, ref = row
    want_value, want_grads = jax_value_and_grads(ref, inputs)
    module = _standalone(lossdsl.compile(source, backend=backend), tmp_path, f"axes_{name.replace('-', '_')}_{backend}")
    if backend == "torch":
        import torch
        args = {k: torch.as_tensor(v) for k, v in inputs.items()}
    else:
        args = {k: (jnp if backend == "jax" else np).asarray(v) for k, v in inputs.items()}
    run = jax.jit(lambda kw: module.value_and_grad(**kw)) if backend == "jax" else (lambda kw: module.value_and_grad(**kw))
    value, grads = run(args)
    np.testing.assert_allclose(float(value), want_value, rtol=1e-12)
    for k, want in want_grads.items():
        np.testing.assert_allclose(np.asarray(grads[k]), want, rtol=1e-10, atol=1e-12)


# --- the analysis: moves of values are affine and increasing; never a wrong "convex" ----------------------

@pytest.mark.parametrize("source, verdict", [
    ("mean(transpose(x, axes=(1, 0))^2)", "convex"), ("mean(swapaxes(x, 0, 1) * y)", "affine"),
    ("mean(log(moveaxis(x, 0, -1)))", "concave"), ("mean(reshape(x, (-1,))^2) + mean(flatten(x) - y)", "convex"),
    ("mean(exp(flatten(x, 0)))", "convex"), ("mean(sin(reshape(x, (-1, 2))))", "unknown"),
    ("mean(logsumexp(transpose(x, (1, 0)), axis=0))", "convex")])
def test_curvature_through_moves(source, verdict):
    got = lossdsl.analyze(source)["inputs"]["x"]["convexity"]["verdict"]
    assert got == verdict or (verdict == "unknown" and got in ("unknown", "nonconvex"))


def test_moves_are_not_row_blocked():
    # a move or reshape mixes rows: the loss must run on whole arrays, and agree with NumPy
    for source, ref in [("mean(transpose(x) @ x)", lambda x: np.mean(x.T @ x)),
                        ("mean(reshape(x, (2, -1))^2 * arange(size(x)/2))",
                         lambda x: np.mean(x.reshape(2, -1) ** 2 * np.arange(x.size / 2))),
                        ("mean(flatten(x, start=0) * arange(size(x)))", lambda x: np.mean(x.reshape(-1) * np.arange(x.size)))]:
        loss = lossdsl.compile(source)
        assert row_blocks(loss.graph, loss.root) is None, source
        x = RNG.normal(size=(300_000, 2))
        np.testing.assert_allclose(float(loss(x=x)), ref(x), rtol=1e-9)


# --- one_hot's class axis and constant labels on every backend -------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_one_hot_axis_matches_torch_layout(backend):
    loss = lossdsl.compile("sum(one_hot(labels, 3, axis=1) * logits)", backend=backend)
    want = np.sum(np.moveaxis(np.eye(3)[LABELS], -1, 1) * LOGITS)  # (B, H, W, C) -> (B, C, H, W)
    logits = LOGITS
    if backend == "torch":
        import torch
        logits, labels = torch.as_tensor(LOGITS), torch.as_tensor(LABELS)
    else:
        labels = LABELS
    np.testing.assert_allclose(float(loss(logits=logits, labels=labels)), want, rtol=1e-12)


def test_constant_label_out_of_range_is_a_compile_time_error():
    with pytest.raises(LossDSLError, match="in \\[0, 3\\)") as e:
        lossdsl.compile("sum(one_hot(3, 3, axis=0) * x)")
    assert "^" in str(e.value)


# --- errors ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source, message", [
    ("sum(transpose(x, axes=(0, 0, 1)))", "axis 0 appears twice"),
    ("sum(transpose(x, axes=(0, -3, 1)))", "permutation of 0..2"),
    ("sum(transpose(x, axes=(0, 3, 1)))", "axis 3 is out of range for an array of 3 axes"),
    ("sum(transpose(sum(x, axis=0), axes=(1, 0)))", ""),  # a rank the IR does not fix: checked at call time
    ("sum(transpose(eye(3), axes=(1, 0, 2)))", "names 3 axes, but x has 2"),
    ("sum(swapaxes(eye(3), 0, 2))", "axis 2 is out of range for an array of 2 axes"),
    ("sum(moveaxis(eye(3), -3, 0))", "axis -3 is out of range"),
    ("sum(moveaxis(2, 0, 1))", "a number has none"),
    ("sum(reshape(x, (-1, -1)))", "at most one length may be -1"),
    ("sum(reshape(x, (2, -2)))", "whole number >= 0, or -1"),
    ("sum(reshape(x, (2, x)))", "array values cannot shape an array"),
    ("sum(reshape(x, (2, 0.5)))", "expected lengths"),
    ("sum(flatten(eye(3), start=2))", "axis 2 is out of range for an array of 2 axes"),
    ("sum(one_hot(1, 3, axis=1) * x)", "axis 1 is out of range for an array of 1 axes"),
])
def test_compile_time_errors_point_at_the_argument(source, message):
    if not message:
        lossdsl.compile(source)  # compiles: the rank is checked when the input arrives
        return
    with pytest.raises(LossDSLError, match=message) as e:
        lossdsl.compile(source)
    assert "^" in str(e.value)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("source, x, message", [
    ("sum(reshape(x, (5, -1)))", np.ones((2, 3, 4)), "input 'x' has shape \\(2, 3, 4\\) \\(24 elements\\), which does not fit"),
    ("sum(reshape(x, (size(x, axis=0), 5)))", np.ones((2, 3, 4)), "input 'x'.*does not fit the shape \\(2, 5\\)"),
    ("sum(transpose(x, axes=(1, 0)))", np.ones((2, 3, 4)), "input 'x' has 3 axes, but axes= names 2"),
    ("sum(swapaxes(x, 0, 3))", np.ones((2, 3, 4)), "axis 3 is out of range for input 'x', which has 3 axes"),
    ("sum(moveaxis(x, 0, -4))", np.ones((2, 3, 4)), "axis -4 is out of range for input 'x'"),
    ("sum(flatten(x, start=3))", np.ones((2, 3, 4)), "axis 3 is out of range for input 'x'"),
    ("sum(one_hot(x, 3, axis=3))", np.ones((2, 3), dtype=np.int64), "axis 3 is out of range for one_hot\\(\\) of input 'x', which has 3 axes"),
])
def test_call_time_errors_name_the_input(source, x, message, backend):
    if backend == "torch":
        import torch
        x = torch.as_tensor(x)
    with pytest.raises(InputError, match=message):
        lossdsl.compile(source, backend=backend)(x=x)


def test_swapaxes_of_an_axis_with_itself_is_the_identity():
    for source in ("sum(swapaxes(x, 1, 1) * y)", "sum(swapaxes(x, 1, -2) * y)", "sum(moveaxis(x, 2, -1) * y)"):
        loss = lossdsl.compile(source)
        value, grads = loss.value_and_grad(["x", "y"])(x=X3, y=2 * X3)
        np.testing.assert_allclose(float(value), np.sum(2 * X3**2), rtol=1e-12)
        np.testing.assert_allclose(grads["x"], 2 * X3, rtol=1e-12)


# --- torch.compile: the moves trace without graph breaks ------------------------------------------------

@pytest.mark.skipif(not HAS_TORCH, reason="torch is an optional backend")
def test_torch_compile_fullgraph_matches_cross_entropy():
    """Cross-entropy of (B, C, H, W) logits against (B, H, W) labels with the class axis moved and
    flattened, under torch.compile(fullgraph=True): value and gradient as torch's own cross_entropy."""
    import torch

    torch._dynamo.reset()
    source = ("mean(sum(-one_hot(labels, 3, axis=1) * log_softmax(logits, axis=1), axis=1)) "
              "+ mean(flatten(swapaxes(logits, 1, -1), start=1)^2) "
              "+ mean(reshape(moveaxis(logits, 1, 3), (-1, size(logits, axis=1)))^2)")
    loss = lossdsl.compile(source, backend="torch", checks=False)
    labels = torch.as_tensor(LABELS)

    def hand(z):
        return torch.nn.functional.cross_entropy(z, labels) + 2 * torch.mean(z**2)

    compiled = torch.compile(lambda z: loss(logits=z, labels=labels), fullgraph=True, backend="aot_eager")
    outs = []
    for fn in (compiled, lambda z: loss(logits=z, labels=labels), hand):
        z = torch.as_tensor(LOGITS).clone().requires_grad_()
        value = fn(z)
        value.backward()
        outs.append((value.detach(), z.grad))
    for value, gradient in outs[1:]:
        torch.testing.assert_close(outs[0][0], value, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(outs[0][1], gradient, rtol=1e-12, atol=1e-12)
