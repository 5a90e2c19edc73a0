"""Differences and windows (diff, roll, pad, correlate): each row a loss and the same expression in
jax.numpy (jnp.diff, jnp.roll, jnp.pad, jnp.correlate per line by vmap). From each row: the value and
gradient against jax.grad of the reference on NumPy, JAX (eager, and under a caller's jax.jit), and
torch, in float32 and float64; central finite differences in float64; second derivatives against
jax.hessian. Then NumPy's own functions at the modes' edges (widths beyond the axis, even kernels),
scipy.ndimage for a separable Gaussian filter, standalone modules, the errors, and the analysis."""

import importlib.util
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
from oracles import (
    BACKENDS,
    HAS_TORCH,
    RUNS,
    assert_finite_differences,
    assert_hessian_matches_jax,
    assert_value_and_grads_match_jax,
    finite_differences,
)
from sampling import sampled

import lossdsl
from lossdsl.errors import InputError, LimitError, LossDSLError

jax.config.update("jax_enable_x64", True)

RNG = np.random.default_rng(21)
X, Y = RNG.normal(size=(4, 6)), RNG.normal(size=(4, 6))
V = RNG.normal(size=(4, 3))  # a 3rd difference of X along its last axis
W = RNG.normal(size=(4, 12))  # pad(X, (4, 2)) along the last axis
K3, K4 = RNG.normal(size=3), RNG.normal(size=4)
A, B = RNG.normal(size=(6, 7)), RNG.normal(size=(6, 7))  # for a kernel of 5 along either axis

GAUSS = "g = exp(-(arange(5) - 2)^2 / 2)\nk = g / sum(g)\n"


def jnp_correlate(x, k, axis=-1, mode="valid"):
    """numpy.correlate's meaning per line: each line along ``axis`` correlated with ``k``, by vmap."""
    x = jnp.moveaxis(x, axis, -1)
    out = jax.vmap(lambda line: jnp.correlate(line, k, mode))(x.reshape(-1, x.shape[-1]))
    return jnp.moveaxis(out.reshape(x.shape[:-1] + out.shape[-1:]), -1, axis)


def np_correlate(x, k, axis=-1, mode="valid"):
    x = np.moveaxis(x, axis, -1)
    out = np.stack([np.correlate(line, k, mode) for line in x.reshape(-1, x.shape[-1])])
    return np.moveaxis(out.reshape(x.shape[:-1] + out.shape[-1:]), -1, axis)


def jnp_gauss(n=5):
    g = jnp.exp(-((jnp.arange(n) - (n - 1) / 2) ** 2) / 2)
    return g / jnp.sum(g)


# (id, source, inputs, reference in jax.numpy)
ROWS = [
    ("diff", "sum(diff(x)^2) + sum(abs(diff(x, n=2, axis=0))) + mean(diff(x, axis=0)) + sum(diff(x, n=3) * v)",
     {"x": X, "v": V},
     lambda x, v: jnp.sum(jnp.diff(x) ** 2) + jnp.sum(jnp.abs(jnp.diff(x, n=2, axis=0))) + jnp.mean(jnp.diff(x, axis=0))
     + jnp.sum(jnp.diff(x, n=3) * v)),
    ("diff-total-variation", "mean(abs(diff(x, axis=-1))) + mean(abs(diff(x, axis=-2))) + mean(diff(x, n=0)^2)",
     {"x": X},
     lambda x: jnp.mean(jnp.abs(jnp.diff(x, axis=-1))) + jnp.mean(jnp.abs(jnp.diff(x, axis=-2))) + jnp.mean(x**2)),
    ("roll", "sum(roll(x, 2, axis=1) * y) + sum(roll(x, -1, axis=0)^3) + mean(roll(x, 7, axis=-1)) * sum(x)",
     {"x": X, "y": Y},
     lambda x, y: jnp.sum(jnp.roll(x, 2, axis=1) * y) + jnp.sum(jnp.roll(x, -1, axis=0) ** 3)
     + jnp.mean(jnp.roll(x, 7, axis=-1)) * jnp.sum(x)),
    ("pad-constant", "sum(pad(x, 2)^2 * arange(10)) + mean(pad(x, (1, 0), axis=0, value=1.5)^3)", {"x": X},
     lambda x: jnp.sum(jnp.pad(x, ((0, 0), (2, 2))) ** 2 * jnp.arange(10))
     + jnp.mean(jnp.pad(x, ((1, 0), (0, 0)), constant_values=1.5) ** 3)),
    ("pad-reflect", "sum(pad(x, (1, 3), axis=0, mode=\"reflect\")^3) + mean(pad(x, 2, mode=\"reflect\") * 0.5)",
     {"x": X},
     lambda x: jnp.sum(jnp.pad(x, ((1, 3), (0, 0)), mode="reflect") ** 3)
     + jnp.mean(jnp.pad(x, ((0, 0), (2, 2)), mode="reflect") * 0.5)),
    ("pad-edge", "sum(pad(x, (4, 2), mode=\"edge\") * w) + sum(pad(x, 1, axis=0, mode=\"edge\")^2)",
     {"x": X, "w": W},
     lambda x, w: jnp.sum(jnp.pad(x, ((0, 0), (4, 2)), mode="edge") * w)
     + jnp.sum(jnp.pad(x, ((1, 1), (0, 0)), mode="edge") ** 2)),
    ("correlate-input-kernel", "sum(correlate(x, k)^2) + sum(correlate(x, k, axis=0, mode=\"same\") * y) "
     "+ mean(correlate(x, j, mode=\"same\"))", {"x": X, "y": Y, "k": K3, "j": K4},
     lambda x, y, k, j: jnp.sum(jnp_correlate(x, k) ** 2) + jnp.sum(jnp_correlate(x, k, axis=0, mode="same") * y)
     + jnp.mean(jnp_correlate(x, j, mode="same"))),
    ("correlate-text-kernel", GAUSS + "mean((correlate(correlate(x, k, mode=\"same\"), k, axis=0, mode=\"same\") - y)^2)",
     {"x": A, "y": B},
     lambda x, y: jnp.mean((jnp_correlate(jnp_correlate(x, jnp_gauss(), mode="same"), jnp_gauss(), axis=0, mode="same")
                            - y) ** 2)),
    ("correlate-grad-in-kernel", "sum(grad(sum(correlate(x, k, mode=\"same\")^2), k)^2)", {"x": X, "k": K3},
     lambda x, k: jnp.sum(jax.grad(lambda kk: jnp.sum(jnp_correlate(x, kk, mode="same") ** 2))(k) ** 2)),
]
IDS = [r[0] for r in ROWS]


@pytest.mark.parametrize("row, run, dtype", sampled(ROWS, IDS, [RUNS, [np.float64, np.float32]], "windows"))
def test_value_and_gradient_against_jax_grad(row, run, dtype):
    _, source, inputs, ref = row
    tol = 1e-10 if dtype == np.float64 else 2e-4
    assert_value_and_grads_match_jax(source, inputs, run, dtype, ref, tol)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_gradient_against_finite_differences(row):
    _, source, inputs, _ = row
    assert_finite_differences(lossdsl.compile(source), inputs)


# --- second derivatives: every adjoint (pad_vjp, correlate in the adjoint modes, the kernel's) again

HESSIANS = [
    ("diff", "sum(diff(x)^3) + sum(exp(diff(x, n=2, axis=0)))", {"x": X}, "x",
     lambda x: jnp.sum(jnp.diff(x) ** 3) + jnp.sum(jnp.exp(jnp.diff(x, n=2, axis=0)))),
    ("roll", "sum(roll(x, 1, axis=1)^2 * x) + mean(roll(x, -3, axis=0)^3)", {"x": X}, "x",
     lambda x: jnp.sum(jnp.roll(x, 1, axis=1) ** 2 * x) + jnp.mean(jnp.roll(x, -3, axis=0) ** 3)),
    ("pad", "sum(pad(x, (1, 2), mode=\"reflect\")^3) + sum(pad(x, 2, axis=0, mode=\"edge\")^3) "
     "+ sum(pad(x, 1, value=0.5)^3)", {"x": X}, "x",
     lambda x: jnp.sum(jnp.pad(x, ((0, 0), (1, 2)), mode="reflect") ** 3)
     + jnp.sum(jnp.pad(x, ((2, 2), (0, 0)), mode="edge") ** 3) + jnp.sum(jnp.pad(x, ((0, 0), (1, 1)), constant_values=0.5) ** 3)),
    ("correlate-in-x", "sum(correlate(x, k, mode=\"same\")^3) + sum(correlate(x, j, axis=0)^3)",
     {"x": X, "k": K3, "j": K3}, "x",
     lambda x, k, j: jnp.sum(jnp_correlate(x, k, mode="same") ** 3) + jnp.sum(jnp_correlate(x, j, axis=0) ** 3)),
    ("correlate-in-kernel", "sum(correlate(x, k)^3) + sum(correlate(x, k, axis=0, mode=\"same\")^3)",
     {"x": X, "k": K3}, "k",
     lambda x, k: jnp.sum(jnp_correlate(x, k) ** 3) + jnp.sum(jnp_correlate(x, k, axis=0, mode="same") ** 3)),
    ("correlate-even-kernel", "sum(correlate(x^2, k, mode=\"same\")^2)", {"x": X, "k": K4}, "x",
     lambda x, k: jnp.sum(jnp_correlate(x**2, k, mode="same") ** 2)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", HESSIANS, ids=[h[0] for h in HESSIANS])
def test_hessian_against_jax_hessian(row, backend):
    _, source, inputs, wrt, ref = row
    assert_hessian_matches_jax(source, inputs, wrt, ref, backend)


# --- NumPy's own functions, at the edges of the modes --------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("length", [1, 2, 3, 6])
@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_pad_copies_as_numpy_at_any_width(mode, length, backend):
    x = RNG.normal(size=(3, length))
    w = RNG.normal(size=(3, length + 12))
    loss = lossdsl.compile(f"sum(pad(x, (5, 7), mode=\"{mode}\") * w)", backend=backend)
    value, grad = loss.value_and_grad("x")(x=x, w=w)
    np.testing.assert_allclose(float(value), np.sum(np.pad(x, ((0, 0), (5, 7)), mode=mode) * w), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad), finite_differences(loss, {"x": x, "w": w}, "x"), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n, m", [(7, 1), (7, 2), (7, 3), (8, 4), (8, 5), (6, 6)])
@pytest.mark.parametrize("mode", ["valid", "same"])
def test_correlate_as_numpy_correlate_per_line(mode, n, m, backend):
    x, k = RNG.normal(size=(2, 3, n)), RNG.normal(size=m)
    want = np_correlate(x, k, -1, mode)
    c = RNG.normal(size=want.shape)
    loss = lossdsl.compile(f"sum(correlate(x, k, mode=\"{mode}\") * c)", backend=backend)
    value, grads = loss.value_and_grad(["x", "k"])(x=x, k=k, c=c)
    np.testing.assert_allclose(float(value), np.sum(want * c), rtol=1e-12)
    for name in ("x", "k"):
        np.testing.assert_allclose(np.asarray(grads[name]), finite_differences(loss, {"x": x, "k": k, "c": c}, name),
                                   rtol=1e-6, atol=1e-8, err_msg=name)


def test_diff_and_roll_as_numpy():
    x = RNG.normal(size=(3, 5, 4))
    for source, want in [("diff(x, n=2, axis=1)", np.diff(x, n=2, axis=1)), ("diff(x, n=4)", np.diff(x, n=4)),
                         ("roll(x, -7, axis=1)", np.roll(x, -7, axis=1)), ("roll(x, 3, axis=-3)", np.roll(x, 3, axis=0))]:
        for backend in BACKENDS:
            got = lossdsl.compile(source, backend=backend)(x=x)
            np.testing.assert_array_equal(np.asarray(got), want, err_msg=f"{source} on {backend}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_gaussian_filter_matches_scipy_ndimage(backend):
    """Two correlate calls with a Gaussian kernel built in the text: scipy.ndimage.correlate1d along
    each axis, zeros beyond the edges."""
    source = ("g = exp(-(arange(11) - 5)^2 / 4.5)\nk = g / sum(g)\n"
              "correlate(correlate(x, k, axis=-1, mode=\"same\"), k, axis=-2, mode=\"same\")")
    g = np.exp(-((np.arange(11) - 5) ** 2) / 4.5)
    k = g / g.sum()
    x = RNG.normal(size=(2, 14, 16))
    want = ndi.correlate1d(ndi.correlate1d(x, k, axis=-1, mode="constant"), k, axis=-2, mode="constant")
    tol = 1e-12  # arange is in the loss's dtype on every backend: torch's window is float64 too
    np.testing.assert_allclose(np.asarray(lossdsl.compile(source, backend=backend)(x=x)), want, rtol=tol, atol=tol * 1e-2)


# --- standalone modules -----------------------------------------------------------------------------

WINDOWED = ("mean(abs(diff(x))) + sum(roll(x, 1, axis=0) * x) + mean(pad(x, 2, mode=\"reflect\")^2) "
            "+ mean(correlate(x, k, mode=\"same\")^2)")


def _windowed_reference(x, k):
    return (jnp.mean(jnp.abs(jnp.diff(x))) + jnp.sum(jnp.roll(x, 1, axis=0) * x)
            + jnp.mean(jnp.pad(x, ((0, 0), (2, 2)), mode="reflect") ** 2) + jnp.mean(jnp_correlate(x, k, mode="same") ** 2))


def _standalone(source, backend, tmp_path, name):
    path = tmp_path / f"{name}.py"
    path.write_text(lossdsl.compile(source, backend=backend).source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_standalone_jax_module_runs_jitted(tmp_path):
    module = _standalone(WINDOWED, "jax", tmp_path, "windows_jax_loss")
    value, grads = jax.jit(lambda x, k: module.value_and_grad(x=x, k=k))(jnp.asarray(X), jnp.asarray(K3))
    want_value, want = jax.value_and_grad(_windowed_reference, argnums=(0, 1))(jnp.asarray(X), jnp.asarray(K3))
    np.testing.assert_allclose(float(value), float(want_value), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grads["x"]), np.asarray(want[0]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(grads["k"]), np.asarray(want[1]), rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_standalone_torch_module_and_autograd(tmp_path):
    import torch
    module = _standalone(WINDOWED, "torch", tmp_path, "windows_torch_loss")
    x, k = torch.tensor(X, requires_grad=True), torch.tensor(K3, requires_grad=True)
    module.loss(x=x, k=k).backward()
    want = jax.grad(_windowed_reference, argnums=(0, 1))(jnp.asarray(X), jnp.asarray(K3))
    np.testing.assert_allclose(x.grad.numpy(), np.asarray(want[0]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(k.grad.numpy(), np.asarray(want[1]), rtol=1e-10, atol=1e-12)


# --- errors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("source, error, message", [
    ("sum(diff(x, n=-1))", LossDSLError, "expected a constant integer >= 0"),
    ("sum(diff(x, n=1000))", LimitError, "beyond the limit"),
    ("sum(diff(x, axis=(0, 1)))", LossDSLError, "expected a single axis"),
    ("sum(diff(x, n=y))", LossDSLError, "expected a constant integer"),
    ("sum(diff(2))", LossDSLError, "a number has none"),
    ("sum(roll(x, 1.5, axis=0))", LossDSLError, "expected a constant integer"),
    ("sum(roll(x, 1))", LossDSLError, "missing its argument .axis."),
    ("sum(pad(x, (1, 2, 3)))", LossDSLError, "a tuple \\(before, after\\) of two"),
    ("sum(pad(x, -1))", LossDSLError, "expected a constant integer >= 0"),
    ("sum(pad(x, (1, -2)))", LossDSLError, "constant integers >= 0"),
    ("sum(pad(x, 1, mode=\"wrap\"))", LossDSLError, "expected one of 'constant', 'reflect', 'edge'"),
    ("sum(pad(x, 1, mode=\"edge\", value=2))", LossDSLError, "only mode=\"constant\" pads with a value"),
    ("sum(pad(x, 1, value=y))", LossDSLError, "expected a constant number"),
    ("sum(correlate(x, 2))", LossDSLError, "got a number"),
    ("sum(correlate(x, k, mode=\"full\"))", LossDSLError, "expected one of 'valid', 'same'"),
])
def test_compile_time_errors(source, error, message):
    with pytest.raises(error, match=message) as raised:
        lossdsl.compile(source)
    assert "^" in str(raised.value)  # the caret under the argument


@pytest.mark.parametrize("backend", RUNS)
@pytest.mark.parametrize("source, inputs, message", [
    ("sum(correlate(x, k))", {"x": np.ones((2, 3)), "k": np.ones(4)}, "more than the 3 along the axis"),
    ("sum(correlate(x, k, mode=\"same\"))", {"x": np.ones((2, 3)), "k": np.ones(4)}, "more than the 3"),
    ("sum(correlate(x, k))", {"x": np.ones((2, 5)), "k": np.ones((2, 2))}, "1-D array"),
    ("sum(diff(x, axis=2))", {"x": np.ones((2, 5))}, "axis 2 is out of range"),
    ("sum(pad(x, 1, mode=\"reflect\"))", {"x": np.ones((2, 0))}, "the axis has none"),
])
def test_call_time_errors(source, inputs, message, backend):
    loss = lossdsl.compile(source, backend="jax" if backend == "jax-jit" else backend)
    if backend == "torch":
        import torch
        inputs = {k: torch.as_tensor(v) for k, v in inputs.items()}
    with pytest.raises(InputError, match=message):
        loss(**inputs)


# --- the analysis: all four are linear in x, never a wrong "convex" -------------------------------------

@pytest.mark.parametrize("source, wrt, verdict", [
    ("mean(abs(diff(x)))", "x", "convex"),
    ("mean(diff(x, n=2)^2) + mean(roll(x, 1, axis=0)^2)", "x", "convex"),
    ("mean(pad(x, 2, mode=\"reflect\")^2) + mean(exp(pad(x, 1, value=3)))", "x", "convex"),
    ("-mean(exp(pad(x, 1, mode=\"edge\")))", "x", "concave"),
    ("mean((correlate(x, k, mode=\"same\") - y)^2)", "x", "convex"),
    ("mean((correlate(x, k, mode=\"same\") - y)^2)", "k", "convex"),
    ("mean(diff(x^2))", "x", "not convex"),
    ("mean(correlate(x^2, k))", "x", "not convex"),
    ("sum(roll(x, 1, axis=0) * x)", "x", "not convex"),
])
def test_curvature(source, wrt, verdict):
    got = lossdsl.analyze(source)["inputs"][wrt]["convexity"]["verdict"]
    if verdict == "not convex":  # truly not: "unknown", or "nonconvex" where a counterexample is found
        assert got in ("unknown", "nonconvex")
    else:
        assert got == verdict


def test_convex_claims_survive_midpoint_checks():
    """Each "convex" claim above, against midpoint convexity between random inputs."""
    for source in ["mean(abs(diff(x)))", "mean(pad(x, 2, mode=\"reflect\")^2) + mean(exp(pad(x, 1, value=3)))",
                   "mean((correlate(x, k, mode=\"same\") - y)^2)"]:
        loss = lossdsl.compile(source)
        fixed = {"k": K3, "y": Y}
        held = {n: v for n, v in fixed.items() if n in loss.inputs}
        for _ in range(20):
            a, b = RNG.normal(size=X.shape), RNG.normal(size=X.shape)
            mid = float(loss(x=(a + b) / 2, **held))
            assert mid <= (float(loss(x=a, **held)) + float(loss(x=b, **held))) / 2 + 1e-12, source


@pytest.mark.parametrize("source, smooth", [
    ("mean(abs(diff(x)))", False), ("mean(abs(roll(x, 1, axis=0) - x))", False),
    ("mean(diff(x)^2)", True), ("mean(correlate(x, k, mode=\"same\")^2)", True)])
def test_smoothness_sees_kinks_inside_the_window_ops(source, smooth):
    """Total variation has kinks where neighbours tie: never claimed C^inf."""
    got = lossdsl.analyze(source)["inputs"]["x"]["smoothness"]["class"]
    assert (got == "inf") == smooth
