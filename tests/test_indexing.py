"""Indexing and slicing (``x[i]``, ``x[:, 0]``, ``x[..., 1:3]``, ``x[::2]``, ...) and tuple axes for the
reductions and norm: values and gradients against jax.numpy references of the same expressions
(jax.grad) and central finite differences, on every backend (JAX eagerly and under jax.jit), in
float32 and float64; second derivatives through indexing; the standalone module; the errors."""

import importlib.util
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.scipy.special import logsumexp
from oracles import HAS_TORCH, RUNS
from sampling import sampled

import lossdsl
from lossdsl.errors import InputError, LossTypeError, ParseError
from tests.oracles import finite_differences, jax_grads

jax.config.update("jax_enable_x64", True)

DTYPES = [np.float32, np.float64]
RNG = np.random.default_rng(15)
X = RNG.normal(size=(3, 4, 5))
W = RNG.normal(size=(4, 5))


class Row(NamedTuple):
    id: str
    source: str
    reference: object  # the same loss in jax.numpy, of the same inputs
    inputs: dict


def _row(source, reference, **inputs):
    return Row(source, source, reference, inputs or {"x": X})


ROWS = [
    # each indexing form of the contract
    _row("sum(x[1]^2)", lambda x: jnp.sum(x[1] ** 2)),
    _row("sum(x[:, 0]^3)", lambda x: jnp.sum(x[:, 0] ** 3)),
    _row("sum(exp(x[..., 1:3]))", lambda x: jnp.sum(jnp.exp(x[..., 1:3]))),
    _row("sum(x[:, -1] * x[:, 0])", lambda x: jnp.sum(x[:, -1] * x[:, 0])),
    _row("sum(x[::2]^2)", lambda x: jnp.sum(x[::2] ** 2)),
    _row("sum(tanh(x[1:, :-1]))", lambda x: jnp.sum(jnp.tanh(x[1:, :-1]))),
    # combinations: chains, negative steps, a call's result, binding tighter than ^ and unary minus
    _row("sum(x[0][1]^2)", lambda x: jnp.sum(x[0][1] ** 2)),
    _row("sum(x[::-1, 1, 3:0:-2]^3)", lambda x: jnp.sum(x[::-1, 1, 3:0:-2] ** 3)),
    _row("sum(-x[..., 0]^2)", lambda x: jnp.sum(-(x[..., 0] ** 2))),
    _row("sum(log_softmax(x, axis=-1)[:, :, 2])", lambda x: jnp.sum(jax.nn.log_softmax(x, axis=-1)[:, :, 2])),
    _row("sum((x * 2)[1, 1:, -2:])", lambda x: jnp.sum((x * 2)[1, 1:, -2:])),
    _row("mean(sum(x, axis=-1)[:, 2] * x[0, 0, 0])", lambda x: jnp.mean(jnp.sum(x, axis=-1)[:, 2] * x[0, 0, 0])),
    _row("sum(x[-1, ..., 1]) + sum(x[1:100])", lambda x: jnp.sum(x[-1, ..., 1]) + jnp.sum(x[1:100])),
    _row("sum((x[:, 1:] - x[:, :-1])^2)", lambda x: jnp.sum((x[:, 1:] - x[:, :-1]) ** 2)),
    _row("mean((x[0] @ transpose(w))[1:3])", lambda x, w: jnp.mean((x[0] @ w.T)[1:3]), x=X, w=W),
    # tuple axes: every reduction and norm, gradients broadcast back
    _row("sum(sum(x, axis=(1, 2))^2)", lambda x: jnp.sum(jnp.sum(x, axis=(1, 2)) ** 2)),
    _row("sum(mean(x, axis=(-2, -1), keepdims=true) * x)",
         lambda x: jnp.sum(jnp.mean(x, axis=(-2, -1), keepdims=True) * x)),
    _row("sum(logsumexp(x, axis=(0, 2))^2)", lambda x: jnp.sum(logsumexp(x, axis=(0, 2)) ** 2)),
    _row("sum(max(x, axis=(0, 2)) * min(x, axis=(2, 0), keepdims=true)[0, :, 0])",
         lambda x: jnp.sum(jnp.max(x, axis=(0, 2)) * jnp.min(x, axis=(2, 0), keepdims=True)[0, :, 0])),
    _row("sum(norm(x, axis=(0, 1))) + mean(norm(x, axis=(1, 2), keepdims=true) * x)",
         lambda x: jnp.sum(jnp.linalg.norm(x, axis=(0, 1))) + jnp.mean(jnp.linalg.norm(x, axis=(1, 2), keepdims=True) * x)),
    _row("sum(x, axis=(1,))[1, 3] + sum(x, axis=(0, 1, 2))", lambda x: jnp.sum(x, axis=1)[1, 3] + jnp.sum(x)),
]


def _cast(inputs, run, dtype):
    if run == "torch":
        import torch
        return {k: torch.as_tensor(v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v)
                for k, v in inputs.items()}
    cast = {k: v.astype(dtype) if np.issubdtype(np.asarray(v).dtype, np.floating) else v for k, v in inputs.items()}
    return {k: jnp.asarray(v) for k, v in cast.items()} if run.startswith("jax") else cast


def _value_and_grad(source, inputs, run, dtype, wrt):
    loss = lossdsl.compile(source, backend="jax" if run.startswith("jax") else run)
    f = loss.value_and_grad(wrt)
    args = _cast(inputs, run, dtype)
    value, grads = jax.jit(lambda kw: f(**kw))(args) if run == "jax-jit" else f(**args)
    return np.asarray(value), {k: np.asarray(g) for k, g in grads.items()}


@pytest.mark.parametrize("row, run, dtype", sampled(ROWS, [r.id for r in ROWS], [RUNS, DTYPES], "indexing"))
def test_value_and_gradient_match_jax_grad(row, run, dtype):
    wrt = sorted(row.inputs)
    value, grads = _value_and_grad(row.source, row.inputs, run, dtype, wrt)
    want_value = np.asarray(row.reference(**{k: jnp.asarray(v) for k, v in row.inputs.items()}))
    want_grads = jax_grads(row.reference, row.inputs, wrt)
    rtol, atol = (2e-5, 2e-5) if dtype == np.float32 else (1e-12, 1e-12)
    assert value.dtype == dtype
    np.testing.assert_allclose(value, want_value, rtol=rtol, atol=atol)
    for name in wrt:
        assert grads[name].shape == row.inputs[name].shape and grads[name].dtype == dtype, name
        np.testing.assert_allclose(grads[name], want_grads[name], rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_gradient_matches_finite_differences(row):
    loss = lossdsl.compile(row.source, backend="numpy")
    grads = loss.grad(sorted(row.inputs))(**row.inputs)
    for name in row.inputs:
        np.testing.assert_allclose(grads[name], finite_differences(loss, row.inputs, name), rtol=1e-6, atol=1e-8)


# --- run-time positions: a 0-d integer input stands where size(x) will


POSITION = np.int64(2)
RUNTIME_ROWS = [
    Row("x[:, i]", "sum(x[:, i]^3)", lambda x, i: jnp.sum(x[:, i] ** 3), {"x": X, "i": POSITION}),
    Row("x[i - 3, ..., i]", "sum(exp(x[i - 3, ..., i]))", lambda x, i: jnp.sum(jnp.exp(x[i - 3, ..., i])),
        {"x": X, "i": POSITION}),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("row", RUNTIME_ROWS, ids=[r.id for r in RUNTIME_ROWS])
def test_a_run_time_position(row, run, dtype):
    value, grads = _value_and_grad(row.source, row.inputs, run, dtype, ["x"])
    reference = lambda x: row.reference(x, row.inputs["i"])  # noqa: E731
    want = jax_grads(reference, {"x": X}, ["x"])["x"]
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(value, np.asarray(reference(jnp.asarray(X))), rtol=rtol)
    np.testing.assert_allclose(grads["x"], want, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("run", ["numpy", "torch"] if HAS_TORCH else ["numpy"])
def test_run_time_slice_bounds_on_eager_backends(run):
    # JAX needs slice bounds it knows while tracing (shapes, as size(x) gives), not an input's value
    source, inputs = "sum(x[1:i, :, i:]^2)", {"x": X, "i": POSITION}
    value, grads = _value_and_grad(source, inputs, run, np.float64, ["x"])
    want = jax_grads(lambda x: jnp.sum(x[1:2, :, 2:] ** 2), {"x": X}, ["x"])["x"]
    np.testing.assert_allclose(value, np.sum(X[1:2, :, 2:] ** 2), rtol=1e-12)
    np.testing.assert_allclose(grads["x"], want, rtol=1e-12)


def test_a_run_time_slice_bound_under_jit_says_what_jax_needs():
    with pytest.raises(InputError, match="a slice of input 'x' needs bounds known while tracing under jax.jit"):
        lossdsl.compile("sum(x[1:i])", backend="jax").value_and_grad()(x=X, i=POSITION)


@pytest.mark.parametrize("run", ["numpy", "jax"] + (["torch"] if HAS_TORCH else []))
def test_a_run_time_position_out_of_range_is_an_input_error_naming_the_input(run):
    loss = lossdsl.compile("sum(x[:, i]^3)", backend=run)
    for i in (4, -5):
        with pytest.raises(InputError, match=rf"input 'i' is out of range: an index into axis 1 of input 'x' must lie in \[-4, 4\); got {i}"):
            loss.value_and_grad()(**_cast({"x": X, "i": np.int64(i)}, run, np.float64))
    with pytest.raises(InputError, match="single integer.*take"):
        loss.value_and_grad()(**_cast({"x": X, "i": np.array([0, 1])}, run, np.float64))


def test_a_run_time_position_out_of_range_under_a_callers_jit_is_nan():
    f = jax.jit(lossdsl.compile("sum(x[:, i]^3)", backend="jax").value_and_grad())
    value, grads = f(x=X, i=np.int64(4))
    assert np.isnan(value) and np.isnan(grads["x"]).all()
    value, grads = f(x=X, i=np.int64(-4))  # in range: the same traced function
    np.testing.assert_allclose(value, np.sum(X[:, -4] ** 3), rtol=1e-12)


@pytest.mark.parametrize("run", RUNS)
def test_a_constant_position_out_of_range_is_an_input_error_naming_the_input(run):
    # shapes are known only at call time: under jit too, so this is raised while tracing
    loss = lossdsl.compile("sum(x[:, :, 5])", backend="jax" if run.startswith("jax") else run)
    f = loss.value_and_grad()
    args = _cast({"x": X}, run, np.float64)
    call = (lambda: jax.jit(lambda kw: f(**kw))(args)) if run == "jax-jit" else (lambda: f(**args))
    with pytest.raises((InputError, ValueError), match="index 5 is out of range for axis 2 of input 'x', of length 5"):
        call()
    with pytest.raises(InputError, match="input 'x' has 3 axes, but the index names 4"):
        lossdsl.compile("sum(x[0, 0, 0, 0])", backend="numpy").value_and_grad()(x=X)


def test_slices_out_of_range_clip_as_numpy_does():
    loss = lossdsl.compile("sum(x[2:10, -10:2]^2) + sum(x[5:])", backend="numpy")
    value, grads = loss.value_and_grad()(x=X)
    np.testing.assert_allclose(value, np.sum(X[2:10, -10:2] ** 2) + np.sum(X[5:]), rtol=1e-12)
    np.testing.assert_allclose(grads["x"], finite_differences(loss, {"x": X}, "x"), rtol=1e-6, atol=1e-8)


# --- second derivatives through indexing and its scatter


HESSIAN_ROWS = [ROWS[1], ROWS[7], ROWS[10], ROWS[13], ROWS[16], ROWS[18], ROWS[19]]


@pytest.mark.parametrize("run", ["numpy", "jax"] + (["torch"] if HAS_TORCH else []))
@pytest.mark.parametrize("row", HESSIAN_ROWS, ids=[r.id for r in HESSIAN_ROWS])
def test_hessian_vector_products_through_indexing(row, run):
    v = RNG.normal(size=X.shape)
    loss = lossdsl.compile(row.source, backend=run)
    got = np.asarray(loss.hvp("x")(*_cast({"v": v}, run, np.float64).values(), **_cast({"x": X}, run, np.float64)))
    _, want = jax.jvp(jax.grad(row.reference), (jnp.asarray(X),), (jnp.asarray(v),))
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-9, atol=1e-10)


def test_the_full_hessian_through_a_slice():
    x = RNG.normal(size=(4, 3))
    source = "sum(x[1:, ::2]^3) + sum(x[0])^2"
    got = np.asarray(lossdsl.compile(source, backend="numpy").hessian("x")(x=x))
    want = jax.hessian(lambda x: jnp.sum(x[1:, ::2] ** 3) + jnp.sum(x[0]) ** 2)(jnp.asarray(x))
    np.testing.assert_allclose(got.reshape(want.shape), np.asarray(want), rtol=1e-12, atol=1e-12)


# --- the written module, imported as a user imports it


@pytest.mark.parametrize("run", ["numpy", "jax"] + (["torch"] if HAS_TORCH else []))
def test_the_standalone_module(run, tmp_path):
    source = "sum(x[:, i]^3) + mean(x[::-1, 1:, -1]) + sum(mean(x, axis=(0, 2))^2)"
    path = tmp_path / f"indexing_{run}.py"
    path.write_text(lossdsl.compile(source, backend=run).source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = _cast({"x": X, "i": POSITION}, run, np.float64)
    value, grads = module.value_and_grad(**args)

    def reference(x):
        return jnp.sum(x[:, 2] ** 3) + jnp.mean(x[::-1, 1:, -1]) + jnp.sum(jnp.mean(x, axis=(0, 2)) ** 2)
    np.testing.assert_allclose(np.asarray(value), np.asarray(reference(jnp.asarray(X))), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grads["x"]), jax_grads(reference, {"x": X}, ["x"])["x"], rtol=1e-12)


# --- errors at compile time


ERRORS = [
    ("take(x, 0, axis=(0, 1))", LossTypeError, "argument 'axis' of take\\(\\): expected a single axis, got a tuple of 2; "
     "only the reductions", 12),
    ("expand_dims(x, (1,))", LossTypeError, "expected a single axis, got a tuple of 1", 16),
    ("sum(x, axis=(1, 1))", LossTypeError, "axis 1 appears twice", 8),
    ("sum(x, axis=(1, 0.5))", LossTypeError, "tuple of constant integers, got the number 0.5", 8),
    ("x[(1, 2)]", LossTypeError, "an index must be an integer.*take\\(x, labels, axis=k\\)", 3),
    ("x[0.5]", LossTypeError, "an index must be an integer", 3),
    ("x[..., 0, ...]", LossTypeError, "only one '...'", 1),
    ("x[::0]", LossTypeError, "step cannot be zero", 5),
    ("2[0]", LossTypeError, "only a tensor can be indexed", 1),
    ("x[[1, 2]]", ParseError, "unexpected '\\['", 3),
    ("x[1:2:3:4]", ParseError, "unexpected ':'", 8),
    ("sum(x[0)", ParseError, "unexpected '\\)'", 8),
]


@pytest.mark.parametrize(("source", "error", "message", "column"), ERRORS, ids=[e[0] for e in ERRORS])
def test_compile_time_errors_point_at_the_cause(source, error, message, column):
    with pytest.raises(error, match=message) as raised:
        lossdsl.compile(source)
    assert raised.value.column == column
    assert "^" in str(raised.value)


def test_integer_array_indexing_points_to_take():
    with pytest.raises(ParseError) as raised:
        lossdsl.compile("x[[1, 2]]")
    assert "take(x, labels, axis=k)" in str(raised.value)


def test_a_row_index_is_not_blocked_by_rows():
    from lossdsl.blocking import row_blocks
    for source in ("mean(x[1:]^2)", "mean(x[:, 0]^2)", "mean(x[::2])"):
        loss = lossdsl.compile(source, backend="numpy")
        assert row_blocks(loss.graph, loss.root) is None, source


SIZED = [  # positions and bounds from size(...): Python ints, so static under jax.jit as well
    ("mean(x[1:size(x, axis=0)])", lambda x: jnp.mean(x[1:x.shape[0]])),
    ("sum(x[size(x, axis=0) - 1]^2)", lambda x: jnp.sum(x[x.shape[0] - 1] ** 2)),
    ("sum(x[:, size(x, axis=1) - 1] * x[:, 0])", lambda x: jnp.sum(x[:, x.shape[1] - 1] * x[:, 0])),
    ("mean(x[1:size(x, axis=0) - 1, ::2]^2)", lambda x: jnp.mean(x[1:x.shape[0] - 1, ::2] ** 2)),
]


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("source, reference", SIZED, ids=[s for s, _ in SIZED])
def test_positions_from_sizes(source, reference, backend):
    x = np.random.default_rng(3).normal(size=(5, 4))
    loss = lossdsl.compile(source, backend=backend)
    arg = torch.from_numpy(x) if backend == "torch" else x
    value, grad = loss.value_and_grad("x")(x=arg)
    want_value, want_grad = jax.value_and_grad(reference)(jnp.asarray(x))
    np.testing.assert_allclose(float(value), float(want_value), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(want_grad), rtol=1e-12, atol=1e-15)
    if backend == "jax":  # under the caller's jit: the bounds are the shape's, known while tracing
        jitted = jax.jit(lambda x: loss.module.loss(x=x))(jnp.asarray(x))
        np.testing.assert_allclose(float(jitted), float(want_value), rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_a_position_from_a_size_out_of_range_names_the_input(backend):
    loss = lossdsl.compile("sum(x[size(x, axis=0)])", backend=backend)
    x = np.zeros((4, 3))
    with pytest.raises(InputError, match=r"out of range: an index into axis 0 of input 'x' must lie in \[-4, 4\)"):
        loss(x=torch.from_numpy(x) if backend == "torch" else x)
