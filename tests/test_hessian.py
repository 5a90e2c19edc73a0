"""Second derivatives by symbolic reverse-over-reverse, against jax.hessian of jax.numpy references
written here from each loss's formula, in every backend (torch where installed)."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lossdsl

jax.config.update("jax_enable_x64", True)

BACKENDS = ("numpy", "jax") + (("torch",) if importlib.util.find_spec("torch") else ())
RNG = np.random.default_rng(7)
Y, P = RNG.normal(size=6), RNG.normal(size=6)
X, W = RNG.normal(size=(6, 3)), RNG.normal(size=3)
LOGITS, PROBS = RNG.normal(size=(3, 4)), RNG.dirichlet(np.ones(4), size=3)
LABELS = np.array([0, 3, 1])
SW = RNG.uniform(0.5, 2.0, size=6)


def _huber(r, d=1.0):
    a = jnp.abs(r)
    return jnp.where(a <= d, 0.5 * r**2, d * (a - 0.5 * d))


# (id, source, inputs, wrt, reference(**inputs) in jax.numpy, elementwise: H diagonal)
ROWS = [
    ("mse", "mse(y_true, y_pred)", {"y_true": Y, "y_pred": P}, "y_pred",
     lambda y_true, y_pred: jnp.mean((y_pred - y_true) ** 2), True),
    ("huber", "huber(y_true, y_pred, delta=0.7)", {"y_true": Y, "y_pred": P * 2}, "y_pred",
     lambda y_true, y_pred: jnp.mean(_huber(y_pred - y_true, 0.7)), True),
    ("log_cosh", "log_cosh(y_true, y_pred)", {"y_true": Y, "y_pred": P}, "y_pred",
     lambda y_true, y_pred: jnp.mean(jnp.log(jnp.cosh(y_pred - y_true))), True),
    ("bce-logits", "bce(y_true, y_pred, from_logits=true)", {"y_true": (Y > 0) * 1.0, "y_pred": P * 3},
     "y_pred", lambda y_true, y_pred: jnp.mean(jax.nn.softplus(y_pred) - y_true * y_pred), True),
    ("focal-logits", "focal(y_true, y_pred, from_logits=true)", {"y_true": (Y > 0) * 1.0, "y_pred": P},
     "y_pred", lambda y_true, y_pred: jnp.mean(
         jnp.where(y_true == 1, 0.25, 0.75)
         * (1 - jnp.where(y_true == 1, jax.nn.sigmoid(y_pred), 1 - jax.nn.sigmoid(y_pred))) ** 2
         * (jax.nn.softplus(y_pred) - y_true * y_pred)), True),
    ("poisson", "poisson_nll(y_true, y_pred)", {"y_true": np.abs(Y).round(), "y_pred": P}, "y_pred",
     lambda y_true, y_pred: jnp.mean(jnp.exp(y_pred) - y_true * y_pred), True),
    ("weighted-mse", "mse(y_true, y_pred, weights=sw)", {"y_true": Y, "y_pred": P, "sw": SW}, "sw",
     lambda y_true, y_pred, sw: jnp.sum(sw * (y_pred - y_true) ** 2) / jnp.sum(sw), False),
    ("cce-logits", "cce(y_true, y_pred, from_logits=true)", {"y_true": PROBS, "y_pred": LOGITS}, "y_pred",
     lambda y_true, y_pred: jnp.mean(-jnp.sum(y_true * jax.nn.log_softmax(y_pred), axis=-1)), False),
    ("sparse-cce-logits", "sparse_cce(y_true, y_pred, from_logits=true)", {"y_true": LABELS, "y_pred": LOGITS},
     "y_pred", lambda y_true, y_pred: jnp.mean(
         -jnp.take_along_axis(jax.nn.log_softmax(y_pred), y_true[:, None], axis=1)), False),
    ("linear-regression-w", "mse(y, X @ w)", {"y": Y, "X": X, "w": W}, "w",
     lambda y, X, w: jnp.mean((X @ w - y) ** 2), False),
    ("linear-regression-X", "mse(y, X @ w)", {"y": Y, "X": X, "w": W}, "X",
     lambda y, X, w: jnp.mean((X @ w - y) ** 2), False),
    ("row-sums-squared", "sum(sum(x, axis=1)^2) + sum(x^3)", {"x": LOGITS}, "x",
     lambda x: jnp.sum(jnp.sum(x, axis=1) ** 2) + jnp.sum(x**3), False),
    ("max", "max(x^2) + mean(x)^2", {"x": P}, "x", lambda x: jnp.max(x**2) + jnp.mean(x) ** 2, False),
    # a 0-d value broadcast over x's elements (a where folded to one branch, equal branches, x - x):
    # its cotangent counts each element, to first and second order
    ("folded-where", "sum(where(x > x, x, mean(x))^2)", {"x": P}, "x",
     lambda x: jnp.size(x) * jnp.mean(x) ** 2, False),
    ("equal-branches", "sum(where(x > 0, mean(x)^2, mean(x)^2) * x)", {"x": P}, "x",
     lambda x: jnp.mean(x) ** 2 * jnp.sum(x), False),
    ("cancelled", "sum(x - x + mean(x)^3)", {"x": P}, "x", lambda x: jnp.size(x) * jnp.mean(x) ** 3, False),
]
IDS = [row[0] for row in ROWS]


def _reference_hessian(ref, inputs, wrt):
    args = {k: jnp.asarray(v) for k, v in inputs.items()}
    return np.asarray(jax.hessian(lambda v: ref(**{**args, wrt: v}))(args[wrt]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_full_hessian(row, backend):
    _, source, inputs, wrt, ref, _ = row
    got = lossdsl.compile(source, backend=backend).hessian(wrt)(**inputs)
    np.testing.assert_allclose(got, _reference_hessian(ref, inputs, wrt), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_hessian_vector_product(row, backend):
    _, source, inputs, wrt, ref, _ = row
    v = RNG.normal(size=np.shape(inputs[wrt]))
    got = lossdsl.compile(source, backend=backend).hvp(wrt)(v, **inputs)
    h = _reference_hessian(ref, inputs, wrt)
    want = np.tensordot(h, v, axes=v.ndim)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", [r for r in ROWS if r[5]], ids=[r[0] for r in ROWS if r[5]])
def test_second_derivative_of_elementwise_losses_is_the_diagonal(row, backend):
    _, source, inputs, wrt, ref, _ = row
    got = lossdsl.compile(source, backend=backend).second_derivative(wrt)(**inputs)
    np.testing.assert_allclose(got, np.diag(_reference_hessian(ref, inputs, wrt)), rtol=1e-7, atol=1e-10)


def test_hessian_formulas_are_symbolic():
    import sympy as sp
    y_pred, y_true, n = sp.symbols("y_pred y_true n")
    assert lossdsl.compile("mse()").hessian_formula("y_pred") == 2 / n
    got = lossdsl.compile("bce(from_logits=true)").hessian_formula("y_pred")
    s = 1 / (1 + sp.exp(-y_pred))
    want = s * (1 - s) / n
    probe = {y_pred: sp.Rational(3, 7), y_true: sp.Rational(1, 3), n: 5}
    assert abs(float((got - want).subs(probe).rewrite(sp.exp).evalf())) < 1e-12


def test_newton_step_on_linear_regression_solves_it():
    # the reference document's Newton's method: one step from anywhere reaches the least-squares fit
    loss = lossdsl.compile("mse(y, X @ w)")
    w = np.zeros(3)
    g = loss.grad("w")(y=Y, X=X, w=w)
    h = loss.hessian("w")(y=Y, X=X, w=w)
    w = w - np.linalg.solve(h, g)
    np.testing.assert_allclose(w, np.linalg.lstsq(X, Y, rcond=None)[0], rtol=1e-10)
