"""Stability at extreme inputs: logits of +-1e3, residuals of 1e4..1e6, probabilities of 0 and 1.

Two tables. User-written expressions in their textbook (unstable) form, against references
computed in 50-digit arithmetic by mpmath (values from the formula, gradients by mpmath's own
differentiation), so the rewrite pass is what makes them finite. And every row of the standard
library's test table with its inputs pushed to extremes, against the row's float64 reference.
Both in float32 and float64, both backends: wherever the float64 mathematical value is finite, the
value and gradient must be finite and match. The user expressions run every backend x dtype pair;
each stdlib row runs one pair, drawn per row (every pair over the table: tests/sampling.py; all of
them under LOSSDSL_FULL_TABLES=1), its references computed once per dtype.
"""

import functools
import importlib
import itertools
import pkgutil

import jax
import mpmath as mp
import numpy as np
import pytest
import stdlib_rows
from oracles import row_grads
from sampling import gradient_backend, one_of

import lossdsl
from lossdsl.errors import InputError

jax.config.update("jax_enable_x64", True)
mp.mp.dps = 50

BACKENDS = ["numpy", "jax"]
DTYPES = [np.float32, np.float64]
TOL = {np.float32: 2e-5, np.float64: 1e-10}


def _logsumexp(row):
    return mp.log(mp.fsum(mp.exp(v) for v in row))


# (id, source, wrt, inputs, mpmath value from flat lists of mpf[, mpmath gradient])
Z = np.array([-1000.0, -1000.0, -30.0, 0.0, 30.0, 1000.0, 1000.0, 3.0])
Y = np.array([1.0, 0.0, 1.0, 0.3, 0.0, 1.0, 0.0, 1.0])
R = np.array([-1e6, -3e4, -1e4, -0.5, 0.25, 7.0, 1e4, 1e6])
ZZ = np.array([[1000.0, -1000.0, 0.0, 5.0], [-1000.0, -999.0, -1000.0, -1002.0], [0.0, 1.0, 2.0, 3.0]])
YY = np.array([[0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.25, 0.25], [0.0, 0.0, 0.0, 1.0]])
P = np.array([0.0, 1e-300, 1e-30, 0.25, 0.5, 1.0])
SMALL = np.array([-1e-12, 1e-15, 3e-9, -0.5, 2.0])


def _mean(xs):
    return mp.fsum(xs) / len(xs)


USER = [
    ("bce-on-sigmoid", "mean(-(y*log(sigmoid(z)) + (1-y)*log(1-sigmoid(z))))", "z", {"y": Y, "z": Z},
     # log(sigmoid(b)) = -log(1 + e^-b) and log(1 - sigmoid(b)) = -log(1 + e^b): no cancellation even in mpmath
     lambda y, z: _mean([a * mp.log(1 + mp.exp(-b)) + (1 - a) * mp.log(1 + mp.exp(b)) for a, b in zip(y, z)])),
    ("log-cosh", "mean(log(cosh(y_pred - y_true)))", "y_pred", {"y_true": np.zeros(8), "y_pred": R},
     lambda t, p: _mean([mp.log(mp.cosh(b - a)) for a, b in zip(t, p)])),
    ("cce-on-softmax", "-sum(y*log(softmax(z)))", "z", {"y": YY, "z": ZZ},
     lambda y, z: -mp.fsum(y[4 * i + j] * (z[4 * i + j] - _logsumexp(z[4 * i:4 * i + 4]))
                           for i in range(3) for j in range(4))),
    ("log-sum-exp", "log(sum(exp(z)))", "z", {"z": Z}, lambda z: _logsumexp(z)),
    ("log-sum-exp-axis", "sum(log(sum(exp(z), axis=1)))", "z", {"z": ZZ},
     lambda z: mp.fsum(_logsumexp(z[4 * i:4 * i + 4]) for i in range(3))),
    ("entropy", "-sum(p*log(p))", "p", {"p": P}, lambda p: -mp.fsum(v * mp.log(v) if v else 0 for v in p),
     lambda p: [-(mp.log(v) + 1) if v else mp.nan for v in p]),  # -inf at 0: no finite gradient there
    ("log1p", "sum(log(1 + x))", "x", {"x": SMALL}, lambda x: mp.fsum(mp.log(1 + v) for v in x)),
    ("expm1", "sum((exp(x) - 1)/3)", "x", {"x": SMALL}, lambda x: mp.fsum((mp.exp(v) - 1) / 3 for v in x)),
]


def _mp_reference(fn, inputs, wrt, grad_fn=None):
    """The value and the gradient with respect to ``wrt`` (nan where it is not finite), in mpmath:
    the gradient by ``grad_fn`` where given, else by mpmath's numerical differentiation."""
    names = list(inputs)
    flat = {n: [mp.mpf(float(v)) for v in np.ravel(inputs[n])] for n in names}
    value = fn(*(flat[n] for n in names))
    if grad_fn is not None:
        return float(value), np.reshape([float(g) for g in grad_fn(flat[wrt])], np.shape(inputs[wrt]))
    grad = []
    for i, x in enumerate(flat[wrt]):
        def along(t, i=i):
            return fn(*([*flat[n][:i], t, *flat[n][i + 1:]] if n == wrt else flat[n] for n in names))
        grad.append(float(mp.diff(along, x)))
    return float(value), np.reshape(grad, np.shape(inputs[wrt]))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", USER, ids=[u[0] for u in USER])
def test_user_expression_at_extremes(row, backend, dtype):
    _, source, wrt, inputs, *fns = row
    cast = {k: v.astype(dtype) for k, v in inputs.items()}
    want_value, want_grad = _mp_reference(*fns[:1], cast, wrt, *fns[1:])  # of the inputs as rounded
    value, grad = lossdsl.compile(source, backend=backend).value_and_grad(wrt)(**cast)
    value, grad = float(value), np.asarray(grad, dtype=np.float64)
    assert np.asarray(grad).shape == np.shape(inputs[wrt])
    assert np.isfinite(value)
    np.testing.assert_allclose(value, want_value, rtol=TOL[dtype], atol=TOL[dtype])
    finite = np.isfinite(want_grad)
    assert np.all(np.isfinite(grad[finite]))
    scale = np.max(np.abs(want_grad[finite]))
    np.testing.assert_allclose(grad[finite], want_grad[finite], rtol=TOL[dtype] * 10, atol=TOL[dtype] * scale)


# --- every stdlib row, pushed to extremes ---------------------------------------------------

CASES = [case for info in pkgutil.iter_modules(stdlib_rows.__path__)
         for case in importlib.import_module(f"stdlib_rows.{info.name}").CASES]
CASE_BY_ID = {case.id: case for case in CASES}
# gradients that are rounding noise, checked for finiteness only: all distances tie (which side of
# the kink each term takes depends on rounding), or the exact gradient is 0 (parallel vectors)
NOISE = {"triplet-all-equal", "cosine_similarity-parallel"}
SCALE = {"regression": 1e5}  # residuals of 1e4..1e6; elsewhere logits and scores of about +-1e3


def _extreme(case):
    """The row's inputs pushed outwards: values in [0, 1] rounded to exactly 0 or 1 (one-hot rows
    stay one-hot), other real arrays scaled up; integer data and 0-d parameters kept."""
    inputs = case.sample()
    family = next(info.name for info in pkgutil.iter_modules(stdlib_rows.__path__)
                  if case in importlib.import_module(f"stdlib_rows.{info.name}").CASES)
    out = {}
    for k, v in inputs.items():
        a = np.asarray(v)
        if a.ndim == 0 or not np.issubdtype(a.dtype, np.floating) or np.all(a == np.round(a)):
            out[k] = v
        elif a.min() >= 0 and a.max() <= 1:
            out[k] = np.round(a)
        else:
            out[k] = a * SCALE.get(family, 1e3)
    return out


def _cast(case, dtype):
    """The row's extreme inputs, its floats rounded to ``dtype``."""
    return {k: (np.asarray(v).astype(dtype) if np.issubdtype(np.asarray(v).dtype, np.floating) else v)
            for k, v in _extreme(case).items()}


@functools.cache
def _reference(case_id: str, dtype: type) -> tuple[dict, float, dict, int]:
    """The inputs as rounded to ``dtype``, in float64; the reference's value (a mean where reducible),
    jax.grad of it with respect to each input in ``wrt``, and the number of terms in the mean. Cached:
    each backend checks the same references."""
    case = CASE_BY_ID[case_id]
    inputs = {k: (v.astype(np.float64) if np.issubdtype(np.asarray(v).dtype, np.floating) else v)
              for k, v in _cast(case, dtype).items()}
    with np.errstate(all="ignore"):
        xp_value = case.reference(np, **inputs)
        value = float(np.mean(xp_value)) if case.reducible else float(xp_value)
        n = max(np.size(xp_value), 1) if case.reducible else 1
    return inputs, value, row_grads(case, inputs), n


# every row at its extremes in one dtype, drawn per row (tests/sampling.py), on the backend that
# test_stdlib.py's gradient check draws for it (test_stdlib.gradient_backend: its compiled loss, and
# in float64 its compiled function, serve both); over the table every (backend, dtype) pair is
# visited (test_every_pair_is_visited_at_extremes). A row's tests share the xdist group of its tests
# in test_stdlib.py
EXTREMES = [pytest.param(c, gradient_backend(c.id), d, id=f"{c.id}-{gradient_backend(c.id)}-{d.__name__}",
                         marks=pytest.mark.xdist_group(c.id))
            for c in CASES for d in one_of(f"{c.id}/extremes", DTYPES)]


def test_every_pair_is_visited_at_extremes():
    assert {(p.values[1], p.values[2]) for p in EXTREMES} == set(itertools.product(BACKENDS, DTYPES))


@pytest.mark.parametrize("case, backend, dtype", EXTREMES)
def test_stdlib_at_extremes(case, backend, dtype):
    cast = _cast(case, dtype)
    # the reference sees the inputs as rounded to dtype, in float64
    inputs, want_value, want_grads, n = _reference(case.id, dtype)
    loss = lossdsl.compile(case.call.format(opts=""), backend=backend)
    try:
        value, grads = loss.value_and_grad(list(case.wrt))(**cast)
    except InputError:
        # the extremes left the loss's domain (a probability row of zeros, say): the loss says so
        with pytest.raises(InputError):
            lossdsl.compile(case.call.format(opts=""), backend="numpy")(**inputs)
        return
    # float32: 1% — constants such as the clip 1 - 1e-7 are not representable in float32
    tol = 1e-2 if dtype == np.float32 else 1e-7
    # a float64 value beyond float32's range cannot be finite in float32; nor can a mean whose terms
    # (a gradient before its division by n, the sum before the mean) are beyond it
    big = np.finfo(dtype).max / n
    if np.isfinite(want_value) and abs(want_value) < big:
        assert np.isfinite(float(value))
        np.testing.assert_allclose(float(value), want_value, rtol=tol, atol=tol)
    # gradients are compared in units of (|value| + 1)/|input|, so that rounding residues where the
    # exact gradient cancels to 0 (parallel vectors, tied distances) count as 0
    for name in case.wrt:
        got, want = np.asarray(grads[name], dtype=np.float64), want_grads[name]
        ok = np.isfinite(want) & (np.abs(want) < big)
        assert np.all(np.isfinite(got[ok])), name
        if ok.any() and case.id not in NOISE:
            value_unit = (abs(want_value) + 1) / max(np.max(np.abs(inputs[name])), 1.0) if np.isfinite(want_value) else 0
            unit = max(np.max(np.abs(want[ok])), value_unit)
            # a gradient below the dtype's smallest normal number may flush to 0
            atol = max(tol * unit, np.finfo(dtype).tiny)
            np.testing.assert_allclose(got[ok], want[ok], rtol=tol * 10, atol=atol, err_msg=name)
