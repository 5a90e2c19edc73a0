"""The fast NumPy runtime helpers against the NumPy functions they stand in for, bit for bit where
they select, at ordinary and extreme values (signed zeros, infinities, NaN), in every float dtype; and
the runtimes as generated modules copy them: every helper of every backend, copied, defines every name
it uses (by ruff, and by importing it), and the check in backends/copying.py refuses one that would not."""

import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

import lossdsl
from lossdsl.backends import copying, runtime
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


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_every_helper_copied_with_what_it_needs_is_a_module_ruff_passes_and_python_imports(backend, tmp_path):
    """Every helper the backend can copy, in one module with the imports they declare: ruff (not our
    own analysis) finds no undefined or twice-defined name and no misplaced import, and it imports."""
    pytest.importorskip(backend if backend != "numpy" else "numpy")
    b = lossdsl.backend.BACKENDS[backend]
    names = copying.check(b)
    assert "_ctc_grad" in names and "_sum_to" in names
    calls = " ".join(f"{n}()" for n in names)
    source = (f"{copying.imports_for(calls, b)}\n\n\n{copying.helpers_for(calls, b)}\n\n\n"
              f"EVERY = ({', '.join(names)},)\n")
    path = tmp_path / f"every_{backend}.py"
    path.write_text(source)
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"
    config = Path(__file__).parents[1] / "pyproject.toml"
    run = subprocess.run([ruff, "check", "--no-cache", "--config", str(config), str(path)], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    module = types.ModuleType(f"every_{backend}")
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - our own helpers
    assert [f.__name__ for f in module.EVERY] == list(names)


@pytest.fixture
def fake_backend(tmp_path, monkeypatch):
    """A backend whose runtime module is ``source`` (a file that copying reads, as it reads ours),
    beside the shared runtime; each test's names are its own (the copying tables are cached by name)."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(name, source, alias="np", imports="import numpy as np"):
        name = f"{name}_{tmp_path.name}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return types.SimpleNamespace(alias=alias, imports=imports, runtime_module=name)
    return make


def test_a_helper_brings_the_standard_library_modules_its_file_imports(fake_backend):
    b = fake_backend("circle_runtime", """
        import math

        import numpy as np


        def _circle(r):
            return math.pi * np.square(r)
        """)
    code = "def area(r):\n    return _circle(r)\n"
    assert copying.imports_for(code, b) == "import math\n\nimport numpy as np"
    assert copying.imports_for("def f(x):\n    return _sum_to(x, ())\n", b) == "import numpy as np"
    module = types.ModuleType("circle")
    exec(copying.imports_for(code, b) + "\n\n\n" + copying.helpers_for(code, b) + "\n\n\n" + code,
         module.__dict__)  # noqa: S102 - our own test module
    assert module.area(2.0) == 4 * np.pi


@pytest.mark.parametrize("source, error, message", [
    ("import numpy as np\n_EPS = 1e-7\n\n\ndef _nudge(x):\n    return x + _EPS\n", NameError, "_nudge.*'_EPS'"),
    ("import numpy as np\nimport sympy\n\n\ndef _gamma(x):\n    return sympy.gamma(x)\n", NameError, "_gamma.*'sympy'"),
    ("import numpy as np\n\n\ndef _f(x):\n    return np.no_such_function(x)\n", AttributeError,
     "_f .*np.no_such_function"),
    ("import numpy as np\n\n\ndef _g(x):\n    return _no_such_helper(x)\n", NameError, "'_no_such_helper'"),
], ids=["module-constant", "not-standard-library", "missing-array-function", "missing-helper"])
def test_a_helper_that_needs_what_its_copy_lacks_fails_the_check(fake_backend, source, error, message):
    b = fake_backend("bad_runtime", source)
    with pytest.raises(error, match=message):
        copying.check(b)


def test_the_shared_runtime_needs_torchs_stand_ins(fake_backend):
    """Without NUMPY_NAMES, the shared helpers printed for torch call NumPy functions torch lacks."""
    pytest.importorskip("torch")
    b = fake_backend("bare_torch_runtime", "import torch\n", alias="torch", imports="import torch")
    with pytest.raises(AttributeError, match=r"calls torch\.\w+, which torch lacks"):
        copying.check(b)


TORCH_FLOATS = ["float16", "bfloat16", "float32", "float64"]


@pytest.mark.parametrize("dtype", TORCH_FLOATS)
def test_torch_where_selects_bits_as_torch_where(dtype):
    """torch's _where (a bit select outside autograd on the CPU) against torch.where, bit for bit,
    at the special values, broadcasting each operand; recording autograd, it is torch.where itself."""
    torch = pytest.importorskip("torch")
    from lossdsl.backends.torch_runtime import _where as torch_where
    dt = getattr(torch, dtype)
    x = torch.tensor(_values(np.float64)).to(dt)
    y = -x.flip(0)
    c = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) < 0.5
    cases = [(c, x, y), (c, x, y[:1].reshape(())), (c[:5, None], x, y[:5, None]), (c[:1], x, y),
             (torch.rand((3, x.numel()), generator=torch.Generator().manual_seed(2)) < 0.5, x, y)]
    bits = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
            torch.float64: torch.int64}[dt]
    with torch.no_grad():
        for cond, a, b in cases:
            ours, want = torch_where(cond, a, b), torch.where(cond, a, b)
            assert ours.dtype == want.dtype and ours.shape == want.shape
            assert torch.equal(ours.view(bits), want.view(bits))  # NaN payloads and signed zeros too
    a = x.clone().requires_grad_()
    out = torch_where(c, a, y)
    assert out.grad_fn is not None and torch.equal(torch.autograd.grad(out.sum(), a)[0], c.to(dt))


@pytest.mark.parametrize("dtype", ["int64", "float32", "float64"])
def test_torch_maximum_and_minimum_with_a_number_are_torchs(dtype):
    """One-sided clamps stand in for maximum and minimum of a float tensor and a number: the same
    values (NaN propagates) and dtype as torch.maximum of the number as a float64 0-d tensor, which
    promotes an integer tensor (the CTC loss divides by maximum(lengths, 1))."""
    torch = pytest.importorskip("torch")
    from lossdsl.backends.torch_runtime import _maximum, _minimum
    x = torch.tensor([-2, 0, 3, 7]).to(getattr(torch, dtype))
    if x.is_floating_point():
        x = torch.cat([x, torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=x.dtype)])
    n = torch.tensor(1.5, dtype=torch.float64)
    with torch.no_grad():
        for ours, want in [(_maximum(x, 1.5), torch.maximum(x, n)), (_maximum(1.5, x), torch.maximum(n, x)),
                           (_minimum(x, 1.5), torch.minimum(x, n)), (_minimum(1.5, x), torch.minimum(n, x))]:
            assert ours.dtype == want.dtype
            torch.testing.assert_close(ours, want, equal_nan=True, rtol=0, atol=0)
