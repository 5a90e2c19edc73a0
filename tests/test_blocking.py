"""Row blocks (lossdsl/blocking.py): which losses split over blocks of rows, and the NumPy wrapper
that evaluates them so. The stdlib table checks every library loss by blocks against its reference
(tests/test_stdlib.py::test_numpy_by_row_blocks); these rows check the analysis and the wrapper's
edges against a plain NumPy reference."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_properties import ELEMENTWISE, to_text, used_names

import lossdsl
from lossdsl.blocking import RowBlocks, row_blocks

SPLITS = [  # source -> how it splits
    ("mean((y_pred - y_true)^2)", RowBlocks("mean", 1)),
    ("3*sum(abs(x))", RowBlocks("sum", 1)),
    ("mean(sum(x^2, axis=-1))", RowBlocks("mean", 2)),
    ("mean(sum(sum(x, axis=-1), axis=-1))", RowBlocks("mean", 3)),
    ("mean(x/sum(x, axis=-1, keepdims=true))", RowBlocks("mean", 2)),
    ("mse(y_true, y_pred)", RowBlocks("mean", 1)),
    ("cce(y_true, y_pred, from_logits=true)", RowBlocks("mean", 2)),
    ("mean(-take(log_softmax(z), labels))", RowBlocks("mean", 2)),
]

WHOLE = [  # losses that combine rows: evaluated on whole arrays
    "mean(x - mean(x))",  # a reduction over all rows inside the terms
    "sum(w*x)/sum(w)",  # a weighted mean
    "mean(x)*mean(y)",
    "mean(x) + 1",  # the constant would count once per block
    "mean(sum(x, axis=0))",  # over the rows themselves
    "mean(sum(x, axis=-1)*x)",  # a per-row sum broadcast against the last axis, not the rows
    "mse(y_true, y_pred, weights=w)",
    "mean(x, axis=-1)",  # not reduced to a number
    "lam*sum(abs(x))",  # an input's coefficient
]


@pytest.mark.parametrize("source, want", SPLITS, ids=[s for s, _ in SPLITS])
def test_splits(source, want):
    loss = lossdsl.compile(source, backend="numpy")
    assert row_blocks(loss.graph, loss.root) == want


@pytest.mark.parametrize("source", WHOLE)
def test_whole(source):
    loss = lossdsl.compile(source, backend="numpy")
    assert row_blocks(loss.graph, loss.root) is None
    assert "_by_rows" not in loss.source


def _mse_reference(y_true, y_pred):
    d = np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)
    return np.mean(d**2), 2 * d / d.size


def _blocked(source, block):
    loss = lossdsl.compile(source, backend="numpy")
    module = loss.module
    module.ROW_BLOCK = block
    calls = []
    whole = module._value_and_grad_rows
    module._value_and_grad_rows = lambda **kw: calls.append(kw) or whole(**kw)
    return module, calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [16, 17, 31])  # blocks that divide the rows and blocks that do not
def test_wrapper_matches_reference(n, dtype):
    module, calls = _blocked("mse(y_true, y_pred)", 4)
    rng = np.random.default_rng(n)
    y, p = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
    value, grads = module.value_and_grad(y_true=y, y_pred=p)
    want_value, want_grad = _mse_reference(y, p)
    assert len(calls) == -(-n // 4) and value.dtype == dtype and grads["y_pred"].dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(value, want_value, rtol=tol)
    np.testing.assert_allclose(grads["y_pred"], want_grad, rtol=tol)
    np.testing.assert_allclose(grads["y_true"], -want_grad, rtol=tol)
    np.testing.assert_allclose(module.loss(y_true=y, y_pred=p), want_value, rtol=tol)


@pytest.mark.parametrize("y_true, y_pred", [
    (np.zeros(64), np.zeros((64, 1))),  # ranks differ: (64,) broadcast along the last axis
    (np.zeros((1, 64)), np.zeros((64, 64))),  # rows differ
    (np.zeros(()), np.zeros(64)),
    (np.zeros(3), np.zeros(3)),  # too small to split
    (np.zeros((1, 64)), np.zeros((1, 64))),  # one row
])
def test_wrapper_keeps_whole_arrays(y_true, y_pred):
    module, calls = _blocked("mse(y_true, y_pred)", 2)
    value, grads = module.value_and_grad(y_true=y_true, y_pred=y_pred)
    assert len(calls) == 1 and calls[0]["y_pred"] is y_pred
    want_value, _ = _mse_reference(*np.broadcast_arrays(y_true, y_pred))
    np.testing.assert_allclose(value, want_value)
    assert grads["y_pred"].shape == np.shape(y_pred)


def test_wrapper_reports_errors_of_the_whole_arrays():
    """An input out of range raises the error the whole arrays raise: their range, not a block's."""
    module, _ = _blocked("bce(y_true, y_pred)", 2)
    y_pred = np.full(64, 0.5)
    y_pred[[3, 40]] = -0.25, 1.5
    with pytest.raises(ValueError, match=r"from -0.25 to 1.5"):
        module.value_and_grad(y_true=np.zeros(64), y_pred=y_pred)


# --- random losses: by blocks of rows or on whole arrays, the same value and gradients ----------

OUTER = [  # how a random elementwise body is reduced; some split over rows, some must not
    "mean({0})", "sum({0})", "2.5*mean({0})", "mean(sum({0}, axis=-1))", "sum(logsumexp({0}, axis=-1))",
    "mean({0} - mean({0}, axis=-1, keepdims=true))", "mean(norm({0}, axis=-1)^2)", "mean(sum({0}, axis=0))",
    "max({0})", "mean({0})*mean(x)", "mean({0}/sum(abs({0}) + 1))",
]
SHAPES = [(8,), (6, 3), (4, 2, 3)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ELEMENTWISE, st.sampled_from(OUTER), st.sampled_from(SHAPES), st.integers(0, 2**32 - 1))
def test_random_losses_by_row_blocks(tree, outer, shape, seed):
    """Whatever the analysis decides, blocks of two rows give the whole arrays' value and gradients."""
    text = outer.format(to_text(tree))
    names = sorted(used_names(tree) | ({"x"} if "mean(x)" in outer else set()))
    assume(names)
    rng = np.random.default_rng(seed)
    inputs = {n: rng.normal(scale=1.5, size=shape) for n in names}
    module = lossdsl.compile(text, backend="numpy").module
    try:
        whole_value, whole_grads = module.value_and_grad(**inputs)
    except np.exceptions.AxisError:  # a tree that is one number (a mean at its top) has no axis -1 to reduce
        assume(False)
    assume(np.isfinite(whole_value) and all(np.all(np.isfinite(g)) for g in whole_grads.values()))
    module.ROW_BLOCK = 2
    value, grads = module.value_and_grad(**inputs)
    scale = max(1.0, abs(float(whole_value)))
    np.testing.assert_allclose(value, whole_value, rtol=1e-9, atol=1e-9 * scale, err_msg=text)
    for n in names:
        gscale = max(1.0, float(np.max(np.abs(whole_grads[n]))))
        np.testing.assert_allclose(grads[n], whole_grads[n], rtol=1e-9, atol=1e-9 * gscale, err_msg=f"d/d{n} {text}")
