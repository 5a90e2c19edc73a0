"""Per-sample weights, matched to the losses they weigh as Keras matches ``sample_weight``.

Every library loss that takes ``weights=`` (enumerated from ``lossdsl.library``, so a new one joins
the table) is called with weights of shape (N,), (N, 1) and a single number, under every reduction,
on NumPy, JAX (eagerly and under the caller's ``jax.jit``) and torch, in float32 and float64, and
compared with a NumPy reference of Keras's rule written here from its documentation: weights with
one axis more than the per-sample losses and a trailing axis of length 1 have it squeezed; the
weights then take the losses' leading axes. "mean" is sum(w*l)/sum(w) (the library's
definition, ``stdlib/core.loss``), "sum" is sum(w*l), "none" is w*l with the losses' own shape,
never the (N, N) outer product that (N, 1) weights broadcast against (N,) losses would give.
Weights that cannot match are an InputError naming the input and saying it holds weights.
"""

import functools
import importlib
import pkgutil

import jax
import numpy as np
import pytest
import stdlib_rows
import torch
from sampling import covering
from stdlib_rows import Case

import lossdsl
from lossdsl.errors import InputError

jax.config.update("jax_enable_x64", True)

# the table's rows, and one for core's reduce() itself, of per-sample losses (a row sum)
CASES = [case for info in pkgutil.iter_modules(stdlib_rows.__path__)
         for case in importlib.import_module(f"stdlib_rows.{info.name}").CASES] + [
    Case("reduce-rows", "reduce(sum(x^2, axis=-1){opts})", lambda rng: {"x": rng.normal(size=(5, 3))},
         lambda xp, x: xp.sum(x**2, axis=-1))]
WEIGHTED = sorted(name for name, d in lossdsl.library.library().items() if any(p.name == "weights" for p in d.params))
SHAPES = ["(N,)", "(N, 1)", "scalar"]
REDUCTIONS = ["mean", "sum", "none"]
BACKENDS = ["numpy", "jax", "jax-jit", "torch"]
DTYPES = ["float32", "float64"]


def _source(case, reduction):
    return case.call.format(opts=f', reduction="{reduction}", weights=sample_w')


@functools.cache
def _row(name):
    """The first reducible row of the stdlib table that calls ``name`` and compiles with weights
    (dice and tversky take them only with an axis)."""
    for case in CASES:
        if case.call.split("(")[0] == name and case.reducible:
            try:
                lossdsl.compile(_source(case, "mean"))
            except lossdsl.LossDSLError:
                continue
            return case
    return None


def test_every_weighted_loss_has_a_row():
    assert WEIGHTED and all(_row(name) is not None for name in WEIGHTED), [n for n in WEIGHTED if _row(n) is None]


def _inputs(case, dtype):
    """The row's sample, its floats in ``dtype`` (integer labels as they are)."""
    return {k: (v.astype(dtype) if np.issubdtype(np.asarray(v).dtype, np.floating) else v)
            for k, v in ((k, np.asarray(v)) for k, v in case.sample().items())}


def _weights(losses, shape, dtype):
    n = losses.shape[0]
    w = np.random.default_rng(7).uniform(0.5, 2.0, size=n).astype(dtype)
    return {"(N,)": w, "(N, 1)": w[:, None], "scalar": np.asarray(w[0])}[shape]


def _keras_reference(losses, w, reduction):
    """Keras's ``squeeze_or_expand_to_same_rank`` for sample weights, then the library's reductions."""
    w = np.asarray(w, np.float64)
    if w.ndim == losses.ndim + 1 and w.shape[-1] == 1:
        w = w[..., 0]
    w = np.broadcast_to(w.reshape(w.shape + (1,) * (losses.ndim - w.ndim)), losses.shape)
    return {"none": w * losses, "sum": np.sum(w * losses), "mean": np.sum(w * losses) / np.sum(w)}[reduction]


def _call(loss, backend, inputs):
    if backend == "torch":
        return loss(**{k: torch.as_tensor(v) for k, v in inputs.items()}).numpy()
    if backend == "jax-jit":
        return np.asarray(jax.jit(lambda kw: loss(**kw))(inputs))
    return np.asarray(loss(**inputs))


def _compiled(case, reduction, backend):
    return lossdsl.compile(_source(case, reduction), backend=backend.removesuffix("-jit"))


def _params():
    return [pytest.param(name, *combo, id="-".join([name, *combo]), marks=pytest.mark.xdist_group(f"w-{name}"))
            for name in WEIGHTED for combo in covering(f"weights/{name}", [SHAPES, REDUCTIONS, BACKENDS, DTYPES])]


@pytest.mark.parametrize("name, shape, reduction, backend, dtype", _params())
def test_weighted_value_matches_keras_rule(name, shape, reduction, backend, dtype):
    case = _row(name)
    inputs = _inputs(case, dtype)
    losses = np.asarray(case.reference(np, **{k: np.asarray(v, np.float64) if v.dtype.kind == "f" else v
                                              for k, v in inputs.items()}))
    w = _weights(losses, shape, dtype)
    got = _call(_compiled(case, reduction, backend), backend, {**inputs, "sample_w": w})
    want = _keras_reference(losses, w, reduction)
    assert got.shape == want.shape
    assert got.dtype == np.dtype(dtype)
    tol = max(case.rtol, 1e-4 if dtype == "float32" else 0)
    np.testing.assert_allclose(got, want, rtol=tol, atol=max(case.atol, tol))


@pytest.mark.parametrize("name", WEIGHTED)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_column_weights_under_every_reduction(name, backend):
    """The reported class itself: (N, 1) weights on every weighted loss, every reduction, the value
    and (for "mean") the gradient with respect to the weights, shaped (N, 1), against central
    differences of the reference."""
    case = _row(name)
    inputs = _inputs(case, "float64")
    losses = np.asarray(case.reference(np, **inputs))
    w = _weights(losses, "(N, 1)", "float64")
    for reduction in REDUCTIONS:
        loss = _compiled(case, reduction, backend)
        got = _call(loss, backend, {**inputs, "sample_w": w})
        np.testing.assert_allclose(got, _keras_reference(losses, w, reduction), rtol=case.rtol, atol=case.atol,
                                   err_msg=reduction)
    loss = _compiled(case, "mean", backend)
    args = {k: torch.as_tensor(v) for k, v in inputs.items()} if backend == "torch" else inputs
    grad = np.asarray(loss.grad("sample_w")(**args, sample_w=torch.as_tensor(w) if backend == "torch" else w))
    step = 1e-6
    fd = np.array([(_keras_reference(losses, w + step * e, "mean") - _keras_reference(losses, w - step * e, "mean"))
                   / (2 * step) for e in np.eye(w.size).reshape((w.size,) + w.shape)]).reshape(w.shape)
    assert grad.shape == w.shape
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", WEIGHTED)
@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_that_cannot_match_are_an_input_error(name, backend):
    """(N, 2), (N + 1,) and (1, N) weights: an InputError naming the input, never an outer product."""
    case = _row(name)
    inputs = _inputs(case, "float64")
    n = np.shape(case.reference(np, **inputs))[0]
    loss = _compiled(case, "none", backend)
    for w in (np.ones((n, 2)), np.ones(n + 1), np.ones((1, n))):
        with pytest.raises(InputError, match=r"input 'sample_w'.* holds weights of shape"):
            _call(loss, backend, {**inputs, "sample_w": w})
