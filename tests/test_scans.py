"""Order statistics and scans: sort, topk, cumsum, cumprod and logcumsumexp, across dtypes and backends.

Each expression's value and gradient against jax.grad of the same expression written in jax.numpy
(jnp.sort, jax.lax.top_k, jnp.cumsum, jnp.cumprod, jax.lax.cumlogsumexp), in float64 and float32, on
NumPy, JAX (eager and under the caller's jax.jit) and torch; second derivatives against jax.hessian, and
through torch.autograd's double backward; central finite differences in float64 at tie-free inputs.
Ties follow NumPy's stable argsort; cumprod's gradient with zeros and logcumsumexp at +-1000 against
the formulas written out in NumPy. Constant arguments are checked at compile time, k against the axis at
call time, the analysis's facts against midpoint checks; the generated modules run without lossdsl, and
torch.compile(fullgraph=True) traces them.
"""

import functools
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from oracles import finite_differences, run_value_and_grads
from sampling import sampled

import lossdsl
from lossdsl.errors import InputError, LossDSLError

jax.config.update("jax_enable_x64", True)

RNG = np.random.default_rng(2121)
# tie-free entries at least 0.1 apart, and weights
X = (RNG.permutation(20).reshape(4, 5) - 10) * 0.17 + 0.01 * RNG.normal(size=(4, 5))
Y = RNG.normal(size=(4, 5))
WITH_ZEROS = np.where(np.isin(np.arange(20).reshape(4, 5), (3, 7, 9)), 0.0, RNG.uniform(-1.5, 1.5, (4, 5)))


def _top(x, k, axis=-1):
    """jax.lax.top_k along any axis (it works along the last)."""
    return jnp.moveaxis(jax.lax.top_k(jnp.moveaxis(x, axis, -1), k)[0], -1, axis)


# source, its jax.numpy twin of (x, y), and x's value
CASES = {
    "sum(sort(x) * y) + sum(sort(x, axis=0, descending=true)^2 * y)":
        (lambda x, y: jnp.sum(jnp.sort(x) * y) + jnp.sum(jnp.sort(x, axis=0, descending=True) ** 2 * y), X),
    "mean(topk(x * y, 3)) + sum(topk(x, size(x, axis=0) - 1, axis=0) * y[:3, :]^2)":
        (lambda x, y: jnp.mean(_top(x * y, 3)) + jnp.sum(_top(x, 3, axis=0) * y[:3, :] ** 2), X),
    "sum(cumsum(x) * y) + sum(cumsum(x * y, axis=0, reverse=true)^2)":
        (lambda x, y: jnp.sum(jnp.cumsum(x, -1) * y) + jnp.sum(jnp.cumsum((x * y)[::-1], 0)[::-1] ** 2), X),
    "sum(cumprod(x) * y) + sum(cumprod(x, axis=0, reverse=true) * y^2)":
        (lambda x, y: jnp.sum(jnp.cumprod(x, -1) * y) + jnp.sum(jnp.cumprod(x[::-1], 0)[::-1] * y**2), WITH_ZEROS),
    "sum(logcumsumexp(x) * y) + sum(logcumsumexp(x * y, axis=0, reverse=true)^2)":
        (lambda x, y: jnp.sum(jax.lax.cumlogsumexp(x, 1) * y) + jnp.sum(jax.lax.cumlogsumexp(x * y, 0, reverse=True) ** 2),
         X),
    # the Cox partial likelihood: each event's risk set, the times sorted descending, is a prefix
    "-sum(y * (x - logcumsumexp(x)))": (lambda x, y: -jnp.sum(y * (x - jax.lax.cumlogsumexp(x, 1))), X),
}
CASE_IDS = ["sort", "topk", "cumsum", "cumprod", "logcumsumexp", "cox"]
RUNS = ["numpy", "jax", "jax-jit", "torch"]


@pytest.mark.parametrize("source, run, dtype", sampled(list(CASES), CASE_IDS, [RUNS, [np.float64, np.float32]], "scans"))
def test_value_and_gradient_against_jax(source, run, dtype):
    value, grads = run_value_and_grads(source, {"x": CASES[source][1], "y": Y}, run, dtype)
    want_value, want_grads = _reference(source)
    rtol = 1e-10 if dtype == np.float64 else 2e-4
    assert value.dtype == dtype and grads["x"].dtype == dtype
    np.testing.assert_allclose(value, want_value, rtol=rtol)
    for name, want in zip("xy", want_grads, strict=True):
        np.testing.assert_allclose(grads[name], want, rtol=rtol, atol=rtol, err_msg=name)


@functools.cache
def _reference(source):
    """The row's reference value and jax.grad of it in x and y: once per row and process."""
    ref, x = CASES[source]
    return float(ref(x, Y)), [np.asarray(g) for g in jax.grad(ref, argnums=(0, 1))(x, Y)]


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("source", list(CASES), ids=CASE_IDS)
def test_hessian_against_jax_hessian(source, backend):
    ref, x = CASES[source]
    loss = lossdsl.compile(source, backend=backend)
    for name, k in (("x", 0), ("y", 1)):
        got = loss.hessian(name)(x=x, y=Y)
        want = jax.hessian(ref, argnums=k)(x, Y)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("source", list(CASES), ids=CASE_IDS)
def test_torch_double_backward_against_jax_hessian(source):
    """torch.autograd through the loss's backward (create_graph): a Hessian-vector product."""
    ref, x = CASES[source]
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(Y)
    v = RNG.normal(size=x.shape)
    (gx,) = torch.autograd.grad(lossdsl.compile(source, backend="torch")(x=tx, y=ty), tx, create_graph=True)
    # a gradient that depends on x only through the order (topk's here) is constant: torch records no graph
    hv = torch.autograd.grad(gx, tx, torch.tensor(v))[0] if gx.requires_grad else torch.zeros_like(tx)
    want = np.tensordot(np.asarray(jax.hessian(ref)(x, Y)), v, axes=2)
    np.testing.assert_allclose(hv.numpy(), want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("source", list(CASES), ids=CASE_IDS)
def test_gradient_against_finite_differences(source, backend):
    _, x = CASES[source]
    loss = lossdsl.compile(source, backend=backend)
    grads = loss.grad(["x", "y"])(x=x, y=Y)
    for name in "xy":
        np.testing.assert_allclose(np.asarray(grads[name]), finite_differences(loss, {"x": x, "y": Y}, name),
                                   rtol=1e-6, atol=1e-7, err_msg=name)


# --- ties, zeros and extremes ----------------------------------------------------------------------

TIED = np.array([[2.0, 1.0, 2.0, 1.0, 3.0, 1.0], [0.5, 0.5, 0.5, -1.0, 0.5, -1.0]])
W = np.arange(1.0, 7.0) * np.array([[1.0], [-0.5]])


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_routes_tied_gradients_as_numpys_stable_sort(backend, descending):
    flag = "true" if descending else "false"
    grad = np.asarray(lossdsl.compile(f"sum(sort(x, descending={flag}) * w)", backend=backend).grad("x")(x=TIED, w=W))
    # entry j of x lands at position i of the sorted row where order[i] = j, so it receives w[i]
    order = np.argsort(-TIED if descending else TIED, axis=-1, kind="stable")
    want = np.zeros_like(TIED)
    np.put_along_axis(want, order, W, axis=-1)
    np.testing.assert_array_equal(grad, want)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_topk_takes_the_first_of_tied_values_and_routes_gradients_back(backend):
    loss = lossdsl.compile("sum(topk(x, 3) * w[:, :3])", backend=backend)
    order = np.argsort(-TIED, axis=-1, kind="stable")[:, :3]
    want = np.zeros_like(TIED)
    np.put_along_axis(want, order, W[:, :3], axis=-1)
    np.testing.assert_array_equal(np.asarray(loss.grad("x")(x=TIED, w=W)), want)
    np.testing.assert_array_equal(float(loss(x=TIED, w=W)), np.sum(np.take_along_axis(TIED, order, -1) * W[:, :3]))


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_cumprod_gradient_with_zeros_is_the_products_of_the_others(backend):
    x = np.array([[0.0, 2.0, 0.0, 3.0, -1.5], [1.5, 0.0, -2.0, 0.5, 4.0]])
    w = np.array([[1.0, -2.0, 0.5, 3.0, 1.0], [0.25, 1.0, -1.0, 2.0, -3.0]])
    got = np.asarray(lossdsl.compile("sum(cumprod(x) * w)", backend=backend).grad("x")(x=x, w=w))
    # d/dx_j sum_i w_i prod_{m <= i} x_m = sum_{i >= j} w_i prod_{m <= i, m != j} x_m, written out
    want = np.array([[sum(w[r, i] * np.prod(np.delete(x[r, :i + 1], j)) for i in range(j, 5)) for j in range(5)]
                     for r in range(2)])
    np.testing.assert_array_equal(got, want)


EXTREMES = np.array([[-1e3, 0.0, 1e3, 1e3, -1e3], [1e3, 1e3, 1e3, -1e3, 300.0], [-1e3, -1e3, -1e3, -1e3, -1e3]])


def _np_logcumsumexp(x):
    """log(sum(exp(x[:i + 1]))) along the last axis, each prefix shifted by its own max."""
    out = np.empty_like(x)
    for i in range(x.shape[-1]):
        m = np.max(x[..., :i + 1], axis=-1, keepdims=True)
        out[..., i] = (m + np.log(np.sum(np.exp(x[..., :i + 1] - m), axis=-1, keepdims=True)))[..., 0]
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("reverse", [False, True])
def test_logcumsumexp_at_a_thousand_is_finite_and_right(run, reverse, dtype):
    flag = "true" if reverse else "false"
    w = np.linspace(-1.0, 2.0, 15).reshape(3, 5)
    value, grads = run_value_and_grads(f"sum(logcumsumexp(x, reverse={flag}) * w)", {"x": EXTREMES, "w": w}, run, dtype)
    x, ww = (EXTREMES[:, ::-1], w[:, ::-1]) if reverse else (EXTREMES, w)
    out = _np_logcumsumexp(x)
    # d/dx_j = sum_{i >= j} w_i exp(x_j - out_i): each exponent <= 0
    want = np.array([[sum(ww[r, i] * np.exp(x[r, j] - out[r, i]) for i in range(j, 5)) for j in range(5)] for r in range(3)])
    want = want[:, ::-1] if reverse else want
    # float32 holds 1000 to within 6e-5, and out - x there (a difference of numbers near 1000) no better
    rtol = 1e-12 if dtype == np.float64 else 2e-4
    assert np.isfinite(value) and np.all(np.isfinite(grads["x"]))
    np.testing.assert_allclose(value, np.sum(out * ww), rtol=rtol)
    np.testing.assert_allclose(grads["x"], want, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_logcumsumexp_second_derivative_at_a_thousand_is_finite(backend):
    got = np.asarray(lossdsl.compile("sum(logcumsumexp(x) * w)", backend=backend).hessian("x")(x=EXTREMES[0], w=W[0, :5]))
    # the Hessian of sum_i w_i logsumexp(x[:i + 1]), from softmax p of each prefix: w_i (diag(p) - p p^T)
    want = np.zeros((5, 5))
    for i in range(5):
        p = np.exp(EXTREMES[0, :i + 1] - _np_logcumsumexp(EXTREMES[:1])[0, i])
        want[:i + 1, :i + 1] += W[0, i] * (np.diag(p) - np.outer(p, p))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


# --- compile-time and call-time checks -------------------------------------------------------------

@pytest.mark.parametrize(("source", "column", "words"), [
    ("mean(topk(x, -1))", 14, "constant integer >= 0"),
    ("mean(topk(x, 2.5))", 14, "constant integer >= 0"),
    ("mean(topk(x, sum(x)))", 14, "size(...)"),
    ("sum(sort(x, axis=(0, 1)))", 13, "single axis"),
    ("sum(cumsum(x, reverse=1))", 15, "true or false"),
    ("sum(sort(x, descending=none))", 13, "true or false"),
    ("sum(logcumsumexp(2))", 18, "single number"),
    ("sum(cumprod(sum(x)))", 13, "single number"),
])
def test_constant_arguments_are_checked_at_compile_time(source, column, words):
    with pytest.raises(LossDSLError) as raised:
        lossdsl.compile(source)
    assert raised.value.column == column and words in str(raised.value) and "^" in str(raised.value)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
@pytest.mark.parametrize(("source", "fits"), [("mean(topk(x, 6))", 6), ("mean(topk(x, size(x, axis=-1) + 1))", None),
                                              ("mean(topk(x, size(x, axis=-1) / 2))", 5)])
def test_k_that_does_not_fit_the_axis_is_an_input_error(backend, source, fits):
    loss = lossdsl.compile(source, backend=backend)
    with pytest.raises(InputError, match="topk"):
        loss(x=X)  # an axis of 5: k is 6, 6 and 2.5
    if fits is not None:  # an axis of 10: k is 6 and 5, the mean of the k largest of 0, 1, ..., 9
        assert float(loss(x=np.arange(20.0).reshape(2, 10) % 10)) == np.mean(np.arange(10 - fits, 10))


# --- what the analysis claims ----------------------------------------------------------------------

@pytest.mark.parametrize(("source", "verdict"), [
    ("sum(sort(x))", "affine"),  # a permutation changes no sum
    ("sum(max(sort(x, axis=0), axis=0))", "convex"),
    ("sum(cumsum(x, reverse=true)^2)", "convex"),
    ("mean(logcumsumexp(x))", "convex"),
    ("-sum(y * (x - logcumsumexp(x)))", None),  # Cox, with y of either sign: no claim for y's sake
])
def test_claimed_curvature_survives_midpoint_checks(source, verdict):
    report = lossdsl.analyze(source)["inputs"]["x"]["convexity"]["verdict"]
    if verdict is not None:
        assert report == verdict
    loss = lossdsl.compile(source)
    rng = np.random.default_rng(5)
    for _ in range(200):
        a, b, y = rng.normal(scale=3, size=(3, 4, 5))
        kw = {"y": y} if "y" in loss.inputs else {}
        mid, chord = float(loss(x=(a + b) / 2, **kw)), (float(loss(x=a, **kw)) + float(loss(x=b, **kw))) / 2
        if report == "convex":
            assert mid <= chord + 1e-9
        elif report == "affine":
            assert mid == pytest.approx(chord, abs=1e-9)
    assert report != "concave"


@pytest.mark.parametrize("source", ["sum(sort(x) * y)", "mean(topk(x, 2))", "sum(cumprod(x))"])
def test_no_curvature_is_claimed_where_none_holds(source):
    assert lossdsl.analyze(source)["inputs"]["x"]["convexity"]["verdict"] in ("unknown", "nonconvex")


# --- standalone modules ----------------------------------------------------------------------------

STANDALONE = "mean(topk(x, 2)) + sum(sort(x, axis=0) * cumsum(x)) + sum(cumprod(x, reverse=true)) + sum(logcumsumexp(x))"
# in the child: lossdsl and SymPy cannot be imported, so the module must hold every helper it calls
BLOCKED = ("import sys, importlib.abc\n"
           "class Blocked(importlib.abc.MetaPathFinder):\n"
           "    def find_spec(self, name, path=None, target=None):\n"
           "        if name.split('.')[0] in ('lossdsl', 'sympy'):\n"
           "            raise ImportError(name)\n"
           "sys.meta_path.insert(0, Blocked())\n")


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_standalone_module_runs_without_lossdsl(backend, tmp_path):
    loss = lossdsl.compile(STANDALONE, backend=backend)
    (tmp_path / "scan_loss.py").write_text(loss.source)
    np.save(tmp_path / "x.npy", WITH_ZEROS)
    array = {"numpy": "np.load('x.npy')", "jax": "jnp.asarray(np.load('x.npy'))",
             "torch": "torch.as_tensor(np.load('x.npy'))"}[backend]
    script = BLOCKED + ("import json, numpy as np\n"
                        + ("import jax; jax.config.update('jax_enable_x64', True); import jax.numpy as jnp\n"
                           if backend == "jax" else "import torch\n" if backend == "torch" else "")
                        + f"import scan_loss as m\nv, g = m.value_and_grad(x={array})\n"
                        "print(json.dumps({'value': float(v), 'x': np.asarray(g['x']).tolist()}))\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    value, grad = jax.value_and_grad(standalone_reference)(WITH_ZEROS)
    np.testing.assert_allclose(got["value"], float(value), rtol=1e-12)
    np.testing.assert_allclose(got["x"], np.asarray(grad), rtol=1e-12, atol=1e-14)


def standalone_reference(x):
    return (jnp.mean(jax.lax.top_k(x, 2)[0]) + jnp.sum(jnp.sort(x, axis=0) * jnp.cumsum(x, -1))
            + jnp.sum(jnp.cumprod(x[:, ::-1], -1)[:, ::-1]) + jnp.sum(jax.lax.cumlogsumexp(x, 1)))


def test_torch_compile_fullgraph_against_jax():
    """torch.compile(fullgraph=True): no graph breaks in the helpers (the scan's loop unrolls over the
    axis), and the value and gradient (our backward, traced) are jax.numpy's."""
    torch._dynamo.reset()
    loss = lossdsl.compile(STANDALONE, backend="torch", checks=False)
    compiled = torch.compile(lambda x: 2 * loss(x=x), fullgraph=True, backend="aot_eager")
    x = torch.tensor(WITH_ZEROS, requires_grad=True)
    value = compiled(x)
    value.backward()
    want_value, want_grad = jax.value_and_grad(standalone_reference)(WITH_ZEROS)
    np.testing.assert_allclose(value.item(), 2 * float(want_value), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.asarray(want_grad), rtol=1e-12, atol=1e-14)
