"""The fast NumPy runtime helpers against the NumPy functions they stand in for, bit for bit where
they select, at ordinary and extreme values (signed zeros, infinities, NaN), in every float dtype."""

import numpy as np
import pytest

import lossdsl
from lossdsl.backends import runtime
from lossdsl.backends.numpy_runtime import _inside, _into, _sigmoid, _softplus, _where
from lossdsl.backends.runtime import _heaviside

DTYPES = [np.float16, np.float32, np.float64]
SPECIAL = [0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 30.0, -30.0, 1e3, -1e3, np.inf, -np.inf, np.nan]


def _values(dtype):
    rng = np.random.default_rng(7)
    return np.concatenate([np.array(SPECIAL), rng.normal(size=200) * 10]).astype(dtype)


def _same(a, b):
    """Equal, NaN where NaN, and the same sign of zero."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.signbit(a[~np.isnan(a)]), np.signbit(b[~np.isnan(b)]))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_where_selects_bits(dtype):
    x = _values(dtype)
    y = -x[::-1]
    c = np.random.default_rng(1).random(x.shape) < 0.5
    _same(_where(c, x, y), np.where(c, x, y))
    _same(_where(c, x, 0.5), np.where(c, x, 0.5))  # a Python number is weak: the array's dtype
    _same(_where(c[:5, None], x, y[:5, None]), np.where(c[:5, None], x, y[:5, None]))  # broadcasting
    wide = np.random.default_rng(2).random((3, x.size)) < 0.5  # the condition alone has the full shape
    _same(_where(wide, x, y), np.where(wide, x, y))
    _same(_where(True, x, y), np.where(True, x, y))


@pytest.mark.parametrize("bounds", [(-0.5, 0.5), (0.0, 30.0), (1e-30, 1e3), (-1e3, -30.0)])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_inside_is_the_product_of_two_half_steps(dtype, bounds):
    """clip's derivative, one mask, against the product of the half-steps of maximum and minimum
    that d/dx minimum(maximum(x, lo), hi) is: 1/2 at either bound, NaN for NaN; NumPy's helper
    and the shared one (JAX, PyTorch) alike."""
    whole = np.concatenate([_values(dtype), np.array(bounds, dtype)])
    lo, hi = bounds
    # with NaN, without (where the min and max tell which bound a value can tie), one side clipped,
    # and empty
    for x in (whole, whole[~np.isnan(whole)], whole[whole >= dtype(lo)], whole[whole <= dtype(hi)], whole[:0]):
        want = (np.heaviside(x - dtype(lo), dtype(0.5)) * (1 - np.heaviside(np.maximum(x, dtype(lo)) - dtype(hi),
                                                                             dtype(0.5)))).astype(dtype)
        _same(_inside(x, lo, hi), want)
        _same(runtime._inside(x, lo, hi), want)
    x = whole
    inner = x[(x > lo) & (x < hi)]  # nothing clipped: a 0-d 1 of the dtype, which broadcasts
    _same(np.broadcast_to(_inside(inner, lo, hi), inner.shape), np.ones_like(inner))


@pytest.mark.parametrize("scratch", ["x", "y"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_where_writing_over_a_temporary_selects_the_same_bits(dtype, scratch):
    x = _values(dtype)
    y = -x[::-1]
    c = np.random.default_rng(3).random(x.shape) < 0.5
    want = np.where(c, x, y)
    _same(_where(c, x.copy(), y.copy(), scratch), want)
    # a temporary that cannot hold the result (too small, or read-only) is left alone
    small, wide = x[:1].copy(), np.random.default_rng(4).random((2, x.size)) < 0.5
    args = (small, y) if scratch == "x" else (y, small)
    _same(_where(wide, *args, scratch), np.where(wide, *args))
    assert small[0] == x[0] or np.isnan(x[0])
    frozen = x.copy()
    frozen.flags.writeable = False
    _same(_where(c, *((frozen, y) if scratch == "x" else (y, frozen)), scratch),
          np.where(c, *((frozen, y) if scratch == "x" else (y, frozen))))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_into_writes_over_its_first_argument_only_when_it_fits(dtype):
    x = _values(dtype)
    with np.errstate(all="ignore"):
        t = x.copy()
        out = _into(np.exp, t)
        assert out is t and np.array_equal(out, np.exp(x), equal_nan=True)
        t = x.copy()
        assert _into(np.maximum, t, 0.5) is t  # a weak scalar keeps the dtype
        wide = np.zeros((2, x.size), dtype)
        t = x.copy()
        out = _into(np.maximum, t, wide)  # the result is larger than t: a fresh array
        assert out is not t and out.shape == (2, x.size) and np.array_equal(t, x, equal_nan=True)
        if dtype != np.float64:
            t = x.copy()
            out = _into(np.maximum, t, x.astype(np.float64))  # promotes: a fresh float64 array
            assert out is not t and out.dtype == np.float64
    ints = np.arange(4)
    assert _into(np.abs, -ints) is not None and _into(np.exp, ints).dtype == np.float64  # ints: never in place
    assert _into(np.exp, 0.5) == np.exp(0.5)


def test_where_of_integers_and_mixed_dtypes_is_numpys():
    c = np.array([True, False, True])
    _same(_where(c, np.array([1, 2, 3]), 0), np.where(c, np.array([1, 2, 3]), 0))
    _same(_where(c, np.float32(2), np.array([1.0, 2.0, 3.0])), np.where(c, np.float32(2), np.array([1.0, 2.0, 3.0])))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_half_step_is_heaviside(dtype):
    x = _values(dtype)
    np.testing.assert_array_equal(_heaviside(x, 0.5), np.heaviside(x, dtype(0.5)))
    assert _heaviside(x, 0.5).dtype == dtype
    np.testing.assert_array_equal(_heaviside(x, 0.0), np.heaviside(x, 0.0))
    h0 = np.linspace(0, 1, x.size).astype(dtype)
    np.testing.assert_array_equal(_heaviside(x, h0), np.heaviside(x, h0))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_sigmoid_and_softplus_match_float64_references(dtype):
    x = _values(dtype)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        sigmoid = np.where(x64 >= 0, 1 / (1 + np.exp(-x64)), np.exp(x64) / (1 + np.exp(x64)))
        softplus = np.logaddexp(0, x64)
    tol = {np.float16: 2e-3, np.float32: 1e-6, np.float64: 1e-15}[dtype]
    tiny = np.finfo(dtype).tiny
    for got, want in ((_sigmoid(x), sigmoid), (_softplus(x), softplus)):
        assert got.dtype == dtype
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=tol * 4, atol=tiny)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
def test_jax_softplus_matches_float64_reference(dtype):
    """The JAX module's softplus, max(x, 0) + log1p(exp(-|x|)), against np.logaddexp(0, x) in float64."""
    jax = pytest.importorskip("jax")
    from lossdsl.backends.jax_runtime import _softplus as jax_softplus
    jax.config.update("jax_enable_x64", True)  # as the other JAX tests: float32 stays float32
    x = _values(dtype)
    got = np.asarray(jax_softplus(jax.numpy.asarray(x)))
    assert got.dtype == dtype
    want = np.logaddexp(0, x.astype(np.float64))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    tol = {np.float32: 1e-6, np.float64: 1e-15}[dtype]
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=tol * 4, atol=np.finfo(dtype).tiny)


@pytest.mark.parametrize("source", ["exp(x)", "x", "x*y", "x + y", "sum(x*y)", "mean(x) + 0*y", "sum(exp(x) + exp(x))",
                                    "mse(x, y)", "where(x > 0, y, x)"])
def test_numpy_outputs_own_their_memory(source):
    """NumPy arrays are mutable: no gradient shares memory with an input, the value or another
    gradient (a fresh temporary is returned without a copy, so this is checked at run time)."""
    x, y = np.array([1.0, -2.0, 3.0]), np.array([0.5, 4.0, -1.0])
    loss = lossdsl.compile(source)
    inputs = {n: {"x": x, "y": y}[n] for n in loss.inputs}
    value, grads = loss.value_and_grad(list(loss.inputs))(**inputs)
    outputs = [np.asarray(value), *grads.values()]
    for i, g in enumerate(grads.values()):
        assert g.flags.writeable and not any(np.shares_memory(g, a) for a in inputs.values())
        assert not any(np.shares_memory(g, o) for o in outputs[:i + 1]), source
