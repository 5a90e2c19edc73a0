"""An empty batch follows NumPy's conventions, for every library loss, on every backend.

Each library loss (enumerated from ``lossdsl.library``; core helpers are not losses) is called on
its first row of the stdlib table with the batch axis of every input cut to length 0: the value must
be what the row's NumPy reference gives on the same empty arrays (a mean of nothing is NaN, a sum 0,
"none" an empty array), without NumPy's "Mean of empty slice" warning, and the gradient with respect
to every float input must have that input's (empty) shape; a 0-d parameter's gradient is jax.grad of
the reference (NaN through a mean of nothing, 0 through a sum). Where NumPy itself refuses (the
hardest positive of batch-hard triplets is a max over the batch, and a max of nothing has no value),
the loss raises an InputError naming the empty inputs.
"""

import functools
import importlib
import pkgutil
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import stdlib_rows
import torch
from oracles import jax_grads
from sampling import covering, one_of

import lossdsl
from lossdsl.errors import InputError

jax.config.update("jax_enable_x64", True)

CASES = [case for info in pkgutil.iter_modules(stdlib_rows.__path__)
         for case in importlib.import_module(f"stdlib_rows.{info.name}").CASES]
LOSSES = sorted(name for name, d in lossdsl.library.library().items() if d.family != "core")
BACKENDS = ["numpy", "jax", "jax-jit", "torch"]
# the batch axis of inputs whose shape does not say it (CTC's log-probabilities are (T, B, C))
BATCH_AXIS = {("ctc", "log_probs"): 1,
              # (B, H, W) masks and (B, C, H, W) maps whose rows' sample has H equal to B
              **{(loss, name): 0 for loss in ("generalized_dice", "lovasz_hinge", "lovasz_softmax")
                 for name in ("y_true", "y_pred")}}


@functools.cache
def _row(name):
    """The first row of the table that calls ``name`` with an array among its inputs (a batch to
    empty), preferring one that takes ``reduction=``."""
    rows = [c for c in CASES if c.call.split("(")[0] == name and any(np.ndim(v) for v in c.sample().values())]
    return next((c for c in rows if c.reducible), rows[0] if rows else None)


def test_every_library_loss_has_a_row():
    assert [n for n in LOSSES if _row(n) is None] == []


def _batch(case, inputs):
    """The batch size: the length of the per-sample losses, else of the first input's leading axis."""
    out = np.shape(case.reference(np, **inputs)) if case.reducible else ()
    return out[0] if out else next(np.shape(v)[0] for v in inputs.values() if np.ndim(v))


def _empty(name, case):
    """The row's sample with each input's batch axis (the one axis as long as the batch) cut to 0."""
    inputs = {k: np.asarray(v) for k, v in case.sample().items()}
    n = _batch(case, inputs)
    out = {}
    for k, v in inputs.items():
        axes = [i for i, d in enumerate(v.shape) if d == n]
        axis = BATCH_AXIS.get((name, k), axes[0] if len(axes) == 1 else None)
        assert len(axes) <= 1 or (name, k) in BATCH_AXIS, f"{name}: which axis of {k} {v.shape} is the batch?"
        out[k] = v if axis is None else np.take(v, np.arange(0), axis=axis)
    return out


def _reference(case, inputs, reduction):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's own "Mean of empty slice"
        value = case.reference(np, **inputs)
        if not case.reducible:
            return np.asarray(value)
        return np.asarray({"none": value, "sum": np.sum(value), "mean": np.mean(value)}[reduction])


def _source(case, reduction):
    return case.call.format(opts=f', reduction="{reduction}"' if case.reducible else "")


def _call(loss, backend, inputs, wrt):
    if backend == "torch":
        value, grads = loss.value_and_grad(wrt)(**{k: torch.as_tensor(v) for k, v in inputs.items()})
    elif backend == "jax-jit":
        value, grads = jax.jit(lambda kw: loss.value_and_grad(wrt)(**kw))(inputs)
    else:
        value, grads = loss.value_and_grad(wrt)(**inputs)
    return np.asarray(value), {k: np.asarray(g) for k, g in grads.items()}


def _params():
    """Every loss on every backend and under every reduction, a covering sample of the pairs per loss
    (tests/sampling.py: every pair over the table)."""
    return [pytest.param(name, backend, reduction, id=f"{name}-{backend}-{reduction}",
                         marks=pytest.mark.xdist_group(f"empty-{name}"))
            for name in LOSSES for backend, reduction in covering(
                f"{name}/empty", [BACKENDS, ["mean", "sum", "none"] if _row(name).reducible else ["-"]])]


@pytest.mark.parametrize("name, backend, reduction", _params())
def test_empty_batch(name, backend, reduction):
    case = _row(name)
    inputs = _empty(name, case)
    loss = lossdsl.compile(_source(case, reduction), backend=backend.removesuffix("-jit"))
    wrt = list(loss.differentiable)
    try:
        want = _reference(case, inputs, reduction)
    except ValueError as refused:  # NumPy has no value for it: neither have we
        empty = [k for k, v in inputs.items() if 0 in np.shape(v)]
        with pytest.raises(InputError, match="empty") as raised:
            _call(loss, backend, inputs, wrt)
        assert all(f"'{k}'" in str(raised.value) for k in empty), (str(raised.value), str(refused))
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Mean of empty slice", no division by zero
        value, grads = _call(loss, backend, inputs, wrt)
    assert value.shape == want.shape
    np.testing.assert_allclose(value, want, equal_nan=True, atol=1e-12)
    for k in wrt:
        assert grads[k].shape == np.shape(inputs[k]), k
    params = [k for k in wrt if np.ndim(inputs[k]) == 0]
    if params:
        ref = jax_grads(lambda **kw: jnp.asarray(_reduce_jnp(case, kw, reduction)), inputs, params)
        for k in params:
            np.testing.assert_allclose(grads[k], ref[k], equal_nan=True, atol=1e-12, err_msg=k)


def _reduce_jnp(case, inputs, reduction):
    value = case.reference(jnp, **inputs)
    if not case.reducible:
        return value
    return {"none": jnp.sum(value), "sum": jnp.sum(value), "mean": jnp.mean(value)}[reduction]


@pytest.mark.parametrize("name, backend", [pytest.param(n, b, id=f"{n}-{b}", marks=pytest.mark.xdist_group(f"empty-{n}"))
                                           for n in LOSSES for b in one_of(f"{n}/empty-hessian", ["numpy", "jax", "torch"])])
def test_empty_batch_second_derivative(name, backend):
    """``H @ 1`` on an empty batch has each input's (empty) shape, where the loss has a Hessian at
    all (CTC's dynamic programme has none) and NumPy a value (see above)."""
    case = _row(name)
    inputs = _empty(name, case)
    loss = lossdsl.compile(_source(case, "mean"), backend=backend)
    convert = (lambda kw: {k: torch.as_tensor(v) for k, v in kw.items()}) if backend == "torch" else (lambda kw: kw)
    for k in loss.differentiable:
        try:
            loss.second_derivative(k)(**convert(case.sample()))
        except lossdsl.LossDSLError as no_hessian:
            assert "no derivative rule" in str(no_hessian)
            continue
        try:
            _reference(case, inputs, "mean")
        except ValueError:  # no value; the Hessian may not need the max itself (only which entries attain it)
            try:
                h = np.asarray(loss.second_derivative(k)(**convert(inputs)))
            except InputError as e:
                assert "empty" in str(e)
            else:
                assert h.shape == np.shape(inputs[k]), k
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            h = np.asarray(loss.second_derivative(k)(**convert(inputs)))
        assert h.shape == np.shape(inputs[k]), k
