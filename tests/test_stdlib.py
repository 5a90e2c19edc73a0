"""The standard library, table-driven: every row of tests/stdlib_rows/ against its independent reference.

From each row the harness derives: the value for each reduction and with per-sample weights, in
both backends; the gradient with respect to each listed input against jax.grad of the reference
(written against jax.numpy) and against central finite differences in float64; and finiteness.

What is sampled (tests/sampling.py): the value check takes one (reduction, backend) pair per row and
the gradient check one backend per row, drawn per row, so that every pair is visited over the table
(``test_the_sample_covers_each_row_and_every_pair``; all of them under LOSSDSL_FULL_TABLES=1); both
keep every row. The weights check keeps a row of each loss and rank of its per-sample losses
(``WEIGHTED_ROWS``). A process computes a row's reference gradients once (``oracles.row_grads``,
shared with test_stability's extremes), and a row's tests share one xdist group, for one worker to
compile each of its sources once (``lossdsl.compile`` caches).
"""

import functools
import importlib
import itertools
import pkgutil

import jax
import numpy as np
import pytest
import stdlib_rows
from oracles import finite_differences, row_grads
from sampling import covering, gradient_backend, one_of

import lossdsl
from lossdsl.blocking import row_blocks

jax.config.update("jax_enable_x64", True)

CASES = [case for info in pkgutil.iter_modules(stdlib_rows.__path__)
         for case in importlib.import_module(f"stdlib_rows.{info.name}").CASES]
BY_ID = {case.id: case for case in CASES}
BACKENDS = ["numpy", "jax"]  # torch has its own table against torch.nn.functional (test_torch_backend.py)
REDUCTIONS = ["mean", "sum", "none"]


def _params(cases, *axes, check):
    """One pytest.param per row and per combination of ``axes`` that covering() keeps for it, in the
    row's xdist group."""
    return [pytest.param(c, *combo, id="-".join([c.id, *map(str, combo)]), marks=pytest.mark.xdist_group(c.id))
            for c in cases for combo in (covering(f"{c.id}/{check}", axes) if axes else [()])]


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


@functools.cache
def _reference_grads(case_id: str) -> dict[str, np.ndarray]:
    """jax.grad of the row's reference (its mean) with respect to each input in ``wrt``, at its sample."""
    case = BY_ID[case_id]
    return row_grads(case, case.sample())


def _weights_grad(case, inputs, w) -> np.ndarray:
    """The gradient of the weighted mean sum(w*l)/sum(w) in the weights, from its formula in float64:
    each sample's summed losses less the mean times its element count, over sum(w) (the weights
    broadcast along a sample's elements, as _reduce does)."""
    losses = np.asarray(case.reference(np, **inputs), dtype=np.float64)
    per_sample = losses.reshape(len(w), -1)
    total = np.sum(w) * per_sample.shape[1]
    mean = np.sum(w[:, None] * per_sample) / total
    return (per_sample.sum(axis=1) - mean * per_sample.shape[1]) / total


def _weights(case) -> np.ndarray:
    samples = np.shape(case.reference(np, **case.sample()))[0]
    return np.random.default_rng(1).uniform(0.5, 2.0, size=samples)


def test_every_row_names_a_library_loss():
    names = set(lossdsl.library.library())
    for case in CASES:
        assert case.call.split("(")[0] in names, case.id


def _drawn(cases, reductions, check):
    """One (reduction, backend) pair per row, drawn per row (all of them under LOSSDSL_FULL_TABLES=1):
    over the table every pair is visited; every reduction of every weighted loss is also checked in
    tests/test_weights.py (test_column_weights_under_every_reduction)."""
    return [pytest.param(c, r, b, id=f"{c.id}-{r}-{b}", marks=pytest.mark.xdist_group(c.id))
            for c in cases for r, b in one_of(f"{c.id}/{check}", list(itertools.product(reductions(c), BACKENDS)))]


VALUE_PARAMS = _drawn(CASES, lambda c: REDUCTIONS if c.reducible else ["mean"], "value")


def _per_sample_kinds(cases):
    """One row per loss and rank of its unreduced losses. Weights meet a loss's per-sample values the
    same way whatever its other options, except where an option changes their rank (a class axis
    moved, per-pixel losses); every weighted loss under every reduction, weight shape, backend and
    dtype is tests/test_weights.py's."""
    kinds = {}
    for c in cases:
        kinds.setdefault((c.call.split("(")[0], np.ndim(c.reference(np, **c.sample()))), c)
    return list(kinds.values())


# weights: the weighted mean and its gradient in the weights, for each loss and rank of its losses
WEIGHTED_ROWS = _per_sample_kinds([c for c in CASES if c.reducible])
WEIGHTS_PARAMS = _drawn(WEIGHTED_ROWS, lambda c: ["mean"], "weights")


# the gradient at the sample: one backend per row, drawn per row (both over the table); test_stability
# checks each row's gradient at its extremes on the same backend (sampling.gradient_backend), in a dtype
# drawn per row
GRADIENT_PARAMS = _drawn(CASES, lambda c: ["mean"], "gradient")


@pytest.mark.parametrize("params", [VALUE_PARAMS, WEIGHTS_PARAMS, GRADIENT_PARAMS],
                         ids=["value", "weights", "gradient"])
def test_the_sample_covers_each_row_and_every_pair(params):
    """The sampled checks see every row, and over the table every (reduction, backend) pair (the
    weighted mean and the gradient on both backends)."""
    rows = {p.values[0].id for p in params}
    assert rows == {c.id for c in (WEIGHTED_ROWS if params is WEIGHTS_PARAMS else CASES)}
    reductions = REDUCTIONS if params is VALUE_PARAMS else ["mean"]
    assert {tuple(p.values[1:]) for p in params} == set(itertools.product(reductions, BACKENDS))


def test_the_extremes_share_the_gradient_checks_backend():
    """test_stability.py runs each row on gradient_backend(row): the backend drawn here."""
    assert all(p.values[2] == gradient_backend(p.values[0].id) for p in GRADIENT_PARAMS)


@pytest.mark.parametrize("case, reduction, backend", VALUE_PARAMS)
def test_value(case, reduction, backend):
    inputs = case.sample()
    # the mean is the default: the row's own text, which its other checks compile too
    opts = f', reduction="{reduction}"' if case.reducible and reduction != "mean" else ""
    got = np.asarray(_compile(case, backend, opts)(**inputs))
    want = np.asarray(_expected(np, case, inputs, reduction))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol)


@pytest.mark.parametrize("case, reduction, backend", WEIGHTS_PARAMS)
def test_weights(case, reduction, backend):
    """A row of each loss and rank of its losses (WEIGHTED_ROWS) under the weighted mean, and its
    gradient in the weights, on a backend drawn per row (both over the table; every reduction in
    tests/test_weights.py)."""
    inputs, w = case.sample(), _weights(case)
    loss = _compile(case, backend, f', reduction="{reduction}", weights=sample_w')
    got = np.asarray(loss(**inputs, sample_w=w))
    np.testing.assert_allclose(got, _expected(np, case, inputs, reduction, w), rtol=case.rtol, atol=case.atol)
    if reduction == "mean":
        grad = loss.grad("sample_w")(**inputs, sample_w=w)
        np.testing.assert_allclose(grad, _weights_grad(case, inputs, w), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("case, _, backend", GRADIENT_PARAMS)
def test_gradient_matches_jax_grad_of_reference(case, _, backend):
    inputs = case.sample()
    loss = _compile(case, backend)
    value, grads = loss.value_and_grad(list(case.wrt))(**inputs)
    np.testing.assert_allclose(value, _expected(np, case, inputs), rtol=case.rtol, atol=case.atol)
    want = _reference_grads(case.id)
    for name in case.wrt:
        got = np.asarray(grads[name])
        assert got.shape == np.shape(inputs[name]) and np.all(np.isfinite(got)), name
        np.testing.assert_allclose(got, want[name], rtol=1e-6, atol=case.atol, err_msg=name)


@pytest.mark.parametrize("case", _params(CASES, check="blocks"))
def test_numpy_by_row_blocks(case, monkeypatch):
    """NumPy evaluates a mean over rows a block of rows at a time (lossdsl/blocking.py), here blocks
    of 2 elements: the value and every gradient still match the reference."""
    inputs = case.sample()
    loss = _compile(case, "numpy")
    blocks = row_blocks(loss.graph, loss.root)
    module = loss.module  # shared with every later compile of this source: patched for this test only
    monkeypatch.setattr(module, "ROW_BLOCK", 2, raising=False)  # modules without row blocks ignore it
    calls = []
    if blocks is not None:
        whole = module._value_and_grad_rows
        monkeypatch.setattr(module, "_value_and_grad_rows", lambda **kw: calls.append(1) or whole(**kw))
    args = {loss.arguments.get(k, k): v for k, v in inputs.items()}  # the module's names (an input 'loss': loss_)
    value, grads = module.value_and_grad(**args)
    np.testing.assert_allclose(value, _expected(np, case, inputs), rtol=case.rtol, atol=case.atol)
    want = _reference_grads(case.id)
    for name in case.wrt:
        np.testing.assert_allclose(grads[name], want[name], rtol=1e-6, atol=case.atol, err_msg=name)
    if blocks is not None:
        arrays = {k: np.asarray(v) for k, v in args.items()}
        labels = tuple(loss.arguments.get(n, n) for n in loss.graph.index_inputs)
        _, rows = module._rows_per_block(arrays, labels, blocks.min_rank, 2)
        assert (len(calls) > 1) == bool(rows)
        np.testing.assert_allclose(module.loss(**args), value, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", _params([c for c in CASES if c.finite_differences], check="fd"))
def test_gradient_matches_finite_differences(case):
    inputs = case.sample()
    loss = _compile(case, "numpy")
    grads = loss.grad(list(case.wrt))(**inputs)
    for name in case.wrt:
        fd = finite_differences(loss, inputs, name)
        np.testing.assert_allclose(grads[name], fd, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("case", _params([c for c in CASES if "optax" in c.extra], check="optax"))
def test_agrees_with_optax(case):
    """The row's value is optax's (the definition: the backends' agreement with each other and with
    the reference is test_value's and test_gradient_...'s)."""
    inputs = case.sample()
    got = float(_compile(case, "numpy")(**inputs))
    np.testing.assert_allclose(got, float(case.extra["optax"](inputs)), rtol=1e-7)
