"""Angles, var/std/prod and the power rule at a zero base, across dtypes and backends.

Each expression's value and gradient against jax.numpy's (jax.grad of the same expression written in
jnp) in float64 and float32, on NumPy, JAX (eager and under the caller's jax.jit) and torch
(through torch.autograd); second derivatives against jax.hessian. The power at a zero base against
torch.autograd (what PyTorch's pow backward gives) and the limits written out by hand.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import lossdsl

jax.config.update("jax_enable_x64", True)

RNG = np.random.default_rng(21)
X = RNG.uniform(-0.9, 0.9, (3, 4))
Y = RNG.choice([-1.0, 1.0], (3, 4)) * RNG.uniform(0.3, 2.0, (3, 4))
WITH_ZERO = np.where(np.arange(12).reshape(3, 4) == 6, 0.0, RNG.uniform(0.5, 1.5, (3, 4)))

# source, jnp reference of (x, y), and x's value
CASES = {
    "sum(sin(x) * cos(y) + tan(x) + arctan(y))":
        (lambda x, y: jnp.sum(jnp.sin(x) * jnp.cos(y) + jnp.tan(x) + jnp.arctan(y)), X),
    "sum(arcsin(x) * arccos(x / 2)) + sum(y * arccos(x))":
        (lambda x, y: jnp.sum(jnp.arcsin(x) * jnp.arccos(x / 2)) + jnp.sum(y * jnp.arccos(x)), X),
    "sum(arctan2(y, x) * hypot(x, y))": (lambda x, y: jnp.sum(jnp.arctan2(y, x) * jnp.hypot(x, y)), X),
    "sum(var(x, axis=1, ddof=1) * var(y, axis=1)) + std(x) + sum(y * std(x, axis=(0, 1), keepdims=true))":
        (lambda x, y: jnp.sum(jnp.var(x, axis=1, ddof=1) * jnp.var(y, axis=1)) + jnp.std(x)
         + jnp.sum(y * jnp.std(x, axis=(0, 1), keepdims=True)), X),
    "prod(x) + sum(y * prod(x, axis=0, keepdims=true)) + sum(prod(x * y, axis=(0, 1)))":
        (lambda x, y: jnp.prod(x) + jnp.sum(y * jnp.prod(x, axis=0, keepdims=True)) + jnp.sum(jnp.prod(x * y, axis=(0, 1))),
         WITH_ZERO),
}
CASE_IDS = [f"case{i}" for i in range(len(CASES))]


def _run(loss, backend, x, y, jit):
    """(value, {x: grad, y: grad}) as NumPy arrays, through each backend's own calling convention."""
    if backend == "torch":
        tx, ty = (torch.tensor(v, requires_grad=True) for v in (x, y))
        value = loss(x=tx, y=ty)
        value.backward()
        return value.detach().numpy(), {"x": tx.grad.numpy(), "y": ty.grad.numpy()}
    if backend == "jax":
        step = jax.value_and_grad(lambda a, b: loss(x=a, y=b), argnums=(0, 1))
        value, (gx, gy) = (jax.jit(step) if jit else step)(jnp.asarray(x), jnp.asarray(y))
        return np.asarray(value), {"x": np.asarray(gx), "y": np.asarray(gy)}
    value, grads = loss.value_and_grad()(x=x, y=y)
    return np.asarray(value), {k: np.asarray(v) for k, v in grads.items()}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("backend", "jit"), [("numpy", False), ("jax", False), ("jax", True), ("torch", False)])
@pytest.mark.parametrize("source", list(CASES), ids=CASE_IDS)
def test_value_and_gradient_against_jax(source, backend, jit, dtype):
    ref, x = CASES[source]
    x, y = x.astype(dtype), Y.astype(dtype)
    value, grads = _run(lossdsl.compile(source, backend=backend), backend, x, y, jit)
    want_grads = jax.grad(ref, argnums=(0, 1))(x.astype(np.float64), y.astype(np.float64))
    rtol = 1e-10 if dtype == np.float64 else 2e-4
    assert value.dtype == dtype and grads["x"].dtype == dtype
    np.testing.assert_allclose(value, float(ref(x.astype(np.float64), y.astype(np.float64))), rtol=rtol)
    for name, want in zip("xy", want_grads, strict=True):
        np.testing.assert_allclose(grads[name], np.asarray(want), rtol=rtol, atol=rtol * 1e-2, err_msg=name)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("source", list(CASES), ids=CASE_IDS)
def test_hessian_against_jax_hessian(source, backend):
    ref, x = CASES[source]
    got = lossdsl.compile(source, backend=backend).hessian("x")(x=x, y=Y)
    want = jax.hessian(ref)(x, Y)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-8, atol=1e-10)


def test_prod_gradient_with_two_zeros_is_the_product_of_the_others():
    x = np.array([0.0, 2.0, 0.0, 3.0])
    # each entry's gradient is the product of the other three: with two zeros, every one holds a zero
    np.testing.assert_array_equal(lossdsl.compile("prod(x)").grad("x")(x=x), [0.0, 0.0, 0.0, 0.0])
    x = np.array([0.0, 2.0, 5.0, 3.0])
    np.testing.assert_array_equal(lossdsl.compile("prod(x)").grad("x")(x=x), [30.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_prod_hessian_with_two_zeros_against_jax_hessian(backend):
    x = np.array([[0.0, 2.0, 0.0, 3.0], [1.5, 0.0, -2.0, 0.5]])
    got = lossdsl.compile("prod(x) + sum(prod(x, axis=1))", backend=backend).hessian("x")(x=x)
    want = jax.hessian(lambda v: jnp.prod(v) + jnp.sum(jnp.prod(v, axis=1)))(x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=0)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_std_gradient_at_zero_variance_is_nan_as_jax(backend):
    x = np.full(4, 1.5)
    got = np.asarray(lossdsl.compile("std(x)", backend=backend).grad("x")(x=x))
    assert np.all(np.isnan(got)) and np.all(np.isnan(np.asarray(jax.grad(jnp.std)(x))))



@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_an_input_may_take_a_library_parameter_name_that_var_also_names(backend):
    # gaussian_nll's input 'var' and the function var(...) in one loss: a call is the function,
    # a bare name the input; other function names stay refused as inputs
    loss = lossdsl.compile("gaussian_nll(y_true, y_pred, var) + sum(var(y_pred, axis=0, ddof=1))", backend=backend)
    assert loss.inputs == ("y_true", "y_pred", "var")
    t, p, v = X, Y, np.abs(Y) + 0.5

    def reference(t, p, v):
        return jnp.mean(0.5 * (jnp.log(v) + (p - t) ** 2 / v)) + jnp.sum(jnp.var(p, axis=0, ddof=1))

    np.testing.assert_allclose(np.asarray(loss(y_true=t, y_pred=p, var=v)), reference(t, p, v), rtol=1e-12)
    got = loss.grad(["y_pred", "var"])(y_true=t, y_pred=p, var=v)
    want = jax.grad(reference, argnums=(1, 2))(t, p, v)
    for name, w in zip(["y_pred", "var"], want):
        np.testing.assert_allclose(np.asarray(got[name]), w, rtol=1e-10)
    with pytest.raises(lossdsl.LossDSLError, match="'std' is a function"):
        lossdsl.compile("mean(std)", backend=backend)

# --- the power rule at a zero base -------------------------------------------------------------

# source, the same power in torch of (x, g, y), and the inputs: zero bases with exponents 0, 1, 2, 1/2, 3
G = np.array([0.0, 1.0, 2.0, 0.5, 3.0])
POWERS = {
    "sum(x^g)": (lambda x, g, y: torch.sum(x ** g), {"x": np.zeros(5), "g": G, "y": np.ones(5)}),
    # timm's asymmetric loss at a saturated logit: (1 - p)^(g*y + 2*(1 - y)) with p = 1
    "sum((1 - x)^(g*y + 2*(1 - y)))": (lambda x, g, y: torch.sum((1 - x) ** (g * y + 2 * (1 - y))),
                                       {"x": np.ones(5), "g": G, "y": np.array([1.0, 1.0, 1.0, 1.0, 0.0])}),
    "sum(0^g * y)": (lambda x, g, y: torch.sum(torch.pow(0.0, g) * y), {"x": np.zeros(5), "g": G, "y": np.ones(5)}),
    "sum(x^2 + x^1 + x^0.5 + x^3 + y*x^g)": (lambda x, g, y: torch.sum(x**2 + x + x**0.5 + x**3 + y * x**g),
                                             {"x": np.zeros(5), "g": G, "y": np.ones(5)}),
}
# the limits written out, d/dx x^g at x = 0 for g = 0, 1, 2, 1/2, 3 (and d/dg x^g = 0^g*log(0)
# read as 0 where g >= 0, as PyTorch masks it), and d^2/dx^2 x^g there
SLOPE_AT_ZERO = np.array([0.0, 1.0, 0.0, np.inf, 0.0])
CURVATURE_AT_ZERO = np.array([0.0, 0.0, 2.0, -np.inf, 0.0])


def _torch_grads(fn, inputs):
    t = {k: torch.tensor(v, requires_grad=True) for k, v in inputs.items()}
    value = fn(t["x"], t["g"], t["y"])
    value.backward()
    return float(value.detach()), {k: np.zeros_like(inputs[k]) if v.grad is None else v.grad.numpy() for k, v in t.items()}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("backend", "jit"), [("numpy", False), ("jax", False), ("jax", True), ("torch", False)])
@pytest.mark.parametrize("source", list(POWERS))
def test_power_at_zero_base_against_torch_autograd(source, backend, jit, dtype):
    fn, inputs = POWERS[source]
    ours = {n: v.astype(dtype) for n, v in inputs.items()}  # zero bases and these exponents are exact in float32
    loss = lossdsl.compile(source, backend=backend)
    names = [n for n in "xgy" if n in loss.inputs]
    if backend == "jax":
        step = jax.value_and_grad(lambda *a: loss(**dict(zip(names, a, strict=True))), argnums=tuple(range(len(names))))
        value, grads = (jax.jit(step) if jit else step)(*(jnp.asarray(ours[n]) for n in names))
        grads = dict(zip(names, grads, strict=True))
    else:
        value, grads = loss.value_and_grad(names)(**{n: ours[n] for n in names})
    want_value, want = _torch_grads(fn, inputs)
    np.testing.assert_allclose(float(value), want_value)
    assert all(np.asarray(grads[n]).dtype == dtype for n in names)
    for n in names:
        np.testing.assert_allclose(np.asarray(grads[n], dtype=np.float64), want[n], err_msg=n)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_power_at_zero_base_against_the_limits(backend):
    loss = lossdsl.compile("sum(x^g)", backend=backend)
    x = np.zeros(5)
    with np.errstate(all="ignore"):
        grads = loss.value_and_grad(["x", "g"])(x=x, g=G)[1]
        second = loss.second_derivative("x")(x=x, g=G)
    np.testing.assert_array_equal(np.asarray(grads["x"]), SLOPE_AT_ZERO)
    np.testing.assert_array_equal(np.asarray(grads["g"]), np.zeros(5))
    np.testing.assert_array_equal(np.asarray(second), CURVATURE_AT_ZERO)


# --- the angles at the ends of their domains ---------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_arcsin_and_arccos_gradients_at_the_ends_are_numpys_infinities(backend):
    x = np.array([-1.0, 1.0])
    with np.errstate(divide="ignore"):
        want = 1 / np.sqrt((1 - x) * (1 + x))  # the published derivative, inf at both ends
        got_sin = np.asarray(lossdsl.compile("sum(arcsin(x))", backend=backend).grad("x")(x=x))
        got_cos = np.asarray(lossdsl.compile("sum(arccos(x))", backend=backend).grad("x")(x=x))
    np.testing.assert_array_equal(got_sin, want)
    np.testing.assert_array_equal(got_cos, -want)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_arccos_of_a_clipped_cosine_has_a_finite_gradient(backend):
    c = np.array([-1.0, -0.5, 0.999, 1.0, 1.2])
    source = "sum(arccos(clip(c, -1 + 1e-6, 1 - 1e-6)))"
    got = np.asarray(lossdsl.compile(source, backend=backend).grad("c")(c=c))
    want = np.asarray(jax.grad(lambda v: jnp.sum(jnp.arccos(jnp.clip(v, -1 + 1e-6, 1 - 1e-6))))(c))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_hypot_and_arctan2_at_the_origin_and_far_out(backend):
    a, b = np.array([0.0, 1e300, -3e300]), np.array([0.0, 1e300, 4e300])
    grads = lossdsl.compile("sum(hypot(a, b))", backend=backend).grad()(a=a, b=b)
    # a/hypot(a, b) written out: 0 at the origin (as norm's gradient at the zero vector), finite far out
    np.testing.assert_allclose(np.asarray(grads["a"]), [0.0, 2**-0.5, -0.6], rtol=1e-15)
    np.testing.assert_allclose(np.asarray(grads["b"]), [0.0, 2**-0.5, 0.8], rtol=1e-15)
    with np.errstate(all="ignore"):
        angle = lossdsl.compile("sum(arctan2(a, b))", backend=backend).grad()(a=np.zeros(1), b=np.zeros(1))
    # x/(x^2 + y^2) is 0/0 at the origin: NaN, as jax.grad and torch.autograd give
    assert np.isnan(np.asarray(angle["a"])).all() and np.isnan(np.asarray(jax.grad(jnp.arctan2)(0.0, 0.0)))
