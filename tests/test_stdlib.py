"""The standard library, table-driven: every row of tests/stdlib_rows/ against its independent reference.

From each row the harness derives: the value for each reduction and with per-sample weights, in
both backends; the gradient with respect to each listed input against jax.grad of the reference
(written against jax.numpy) and against central finite differences in float64; and finiteness.
"""

import importlib
import pkgutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import stdlib_rows
from oracles import finite_differences

import lossdsl
from lossdsl.blocking import row_blocks

jax.config.update("jax_enable_x64", True)

CASES = [case for info in pkgutil.iter_modules(stdlib_rows.__path__)
         for case in importlib.import_module(f"stdlib_rows.{info.name}").CASES]
BACKENDS = ["numpy", "jax"]  # torch has its own table against torch.nn.functional (test_torch_backend.py)


def _reduce(xp, losses, reduction="mean", weights=None):
    if weights is not None:
        w = xp.broadcast_to(xp.reshape(weights, weights.shape + (1,) * (losses.ndim - weights.ndim)), losses.shape)
        return {"none": w * losses, "sum": xp.sum(w * losses), "mean": xp.sum(w * losses) / xp.sum(w)}[reduction]
    return {"none": losses, "sum": xp.sum(losses), "mean": xp.mean(losses)}[reduction]


def _expected(xp, case, inputs, reduction="mean", weights=None):
    value = case.reference(xp, **inputs)
    return _reduce(xp, value, reduction, weights) if case.reducible else value


def _compile(case, backend, opts=""):
    return lossdsl.compile(case.call.format(opts=opts), backend=backend)


VALUE_PARAMS = [pytest.param(c, r, id=f"{c.id}-{r}") for c in CASES
                for r in (("mean", "sum", "none") if c.reducible else ("mean",))]


def test_every_row_names_a_library_loss():
    names = set(lossdsl.library.library())
    for case in CASES:
        assert case.call.split("(")[0] in names, case.id


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case, reduction", VALUE_PARAMS)
def test_value(case, reduction, backend):
    inputs = case.sample()
    opts = f', reduction="{reduction}"' if case.reducible else ""
    got = np.asarray(_compile(case, backend, opts)(**inputs))
    want = np.asarray(_expected(np, case, inputs, reduction))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", [c for c in CASES if c.reducible], ids=lambda c: c.id)
def test_weights(case, reduction, backend):
    inputs = case.sample()
    samples = np.shape(case.reference(np, **inputs))[0]
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=samples)
    loss = _compile(case, backend, f', reduction="{reduction}", weights=sample_w')
    got = np.asarray(loss(**inputs, sample_w=w))
    np.testing.assert_allclose(got, _expected(np, case, inputs, reduction, w), rtol=case.rtol, atol=case.atol)
    if reduction == "mean":
        grad = loss.grad("sample_w")(**inputs, sample_w=w)
        ref = jax.grad(lambda v: _expected(jnp, case, inputs, "mean", v))(jnp.asarray(w))
        np.testing.assert_allclose(grad, ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_gradient_matches_jax_grad_of_reference(case, backend):
    inputs = case.sample()
    loss = _compile(case, backend)
    value, grads = loss.value_and_grad(list(case.wrt))(**inputs)
    assert np.isfinite(value)
    for name in case.wrt:
        def ref(v, name=name):
            return _expected(jnp, case, {**inputs, name: v})
        want = jax.grad(ref)(jnp.asarray(inputs[name], dtype=jnp.float64))
        got = np.asarray(grads[name])
        assert got.shape == np.shape(inputs[name]) and np.all(np.isfinite(got)), name
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=case.atol, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_numpy_by_row_blocks(case):
    """NumPy evaluates a mean over rows a block of rows at a time (lossdsl/blocking.py), here blocks
    of 2 elements: the value and every gradient still match the reference."""
    inputs = case.sample()
    loss = _compile(case, "numpy")
    blocks = row_blocks(loss.graph, loss.root)
    module = loss.module
    module.ROW_BLOCK = 2
    calls = []
    if blocks is not None:
        whole = module._value_and_grad_rows
        module._value_and_grad_rows = lambda **kw: calls.append(1) or whole(**kw)
    value, grads = module.value_and_grad(**inputs)
    np.testing.assert_allclose(value, _expected(np, case, inputs), rtol=case.rtol, atol=case.atol)
    for name in case.wrt:
        want = jax.grad(lambda v, name=name: _expected(jnp, case, {**inputs, name: v}))(
            jnp.asarray(inputs[name], dtype=jnp.float64))
        np.testing.assert_allclose(grads[name], want, rtol=1e-6, atol=case.atol, err_msg=name)
    if blocks is not None:
        arrays = {k: np.asarray(v) for k, v in inputs.items()}
        _, rows = module._rows_per_block(arrays, tuple(loss.graph.index_inputs), blocks.min_rank, 2)
        assert (len(calls) > 1) == bool(rows)
        np.testing.assert_allclose(module.loss(**inputs), value, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", [c for c in CASES if c.finite_differences], ids=lambda c: c.id)
def test_gradient_matches_finite_differences(case):
    inputs = case.sample()
    loss = _compile(case, "numpy")
    grads = loss.grad(list(case.wrt))(**inputs)
    for name in case.wrt:
        fd = finite_differences(loss, inputs, name)
        np.testing.assert_allclose(grads[name], fd, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("case", [c for c in CASES if "optax" in c.extra], ids=lambda c: c.id)
def test_agrees_with_optax(case):
    inputs = case.sample()
    got = float(_compile(case, "jax")(**inputs))
    np.testing.assert_allclose(got, float(case.extra["optax"](inputs)), rtol=1e-7)
