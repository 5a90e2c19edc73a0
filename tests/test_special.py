"""erf, erfc, lgamma and digamma beyond their rows in test_builtins.py: the NumPy runtime's own forms
against scipy.special (and mpmath, where scipy itself loses digits), their second derivatives
(polygamma), the analysis, the standalone modules and the XGBoost objective.

Measured (float64, this file's grids): against mpmath at 40 digits, erf and erfc within 2.5 and 5.2
ulp on the whole line (erfc to its underflow at 26.5); lgamma, digamma, trigamma and polygamma(2, .)
within 1.7, 2.8, 3.9 and 3.6 ulp for x > 0, lgamma and digamma also next to their zeros (1, 2 and
1.4616...), where scipy's gammaln is off by up to 1e6 ulp. Against scipy on log-spaced grids from
1e-300 to 1e300: the bounds in ``FUNCTIONS`` (erf 4 ulp; erfc 32 for |x| <= 6, scipy's own error
reaching 28 there; lgamma 4 outside (0.5, 3); digamma 4; trigamma 8; polygamma(2, .) 6). For x < 0
both reflect, and the relative error grows near the zeros there: within 8 ulp of the reflection's
terms (mpmath, |x| <= 1e3).
"""

import importlib.util

import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import mpmath
import numpy as np
import pytest
import scipy.special as sc

import lossdsl
from lossdsl.backends import numpy_runtime as rt

jax.config.update("jax_enable_x64", True)

BACKENDS = ("numpy", "jax") + (("torch",) if importlib.util.find_spec("torch") else ())


def _trigamma(x):
    return rt._polygamma(1, x)


def _tetragamma(x):
    return rt._polygamma(2, x)


# name: (ours, scipy's, mpmath's, max ulp against scipy for x > 0 (both signs for erf, erfc))
FUNCTIONS = {
    "erf": (rt._erf, sc.erf, mpmath.erf, 4),
    "erfc": (rt._erfc, sc.erfc, mpmath.erfc, 32),
    "lgamma": (rt._lgamma, sc.gammaln, lambda x: mpmath.log(abs(mpmath.gamma(x))), 4),
    "digamma": (rt._digamma, sc.psi, mpmath.digamma, 4),
    "trigamma": (_trigamma, lambda x: sc.polygamma(1, x), lambda x: mpmath.polygamma(1, x), 8),
    "polygamma2": (_tetragamma, lambda x: sc.polygamma(2, x), lambda x: mpmath.polygamma(2, x), 6),
}
# max ulp against mpmath (x > 0 for the gamma family)
EXACT_ULPS = {"erf": 3, "erfc": 6, "lgamma": 2.5, "digamma": 3, "trigamma": 4.5, "polygamma2": 4.5}


def _ulps(got, want):
    """|got - want| in units of the last place of ``want`` (0 where both are the same inf or NaN)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore"):
        return np.where(same, 0.0, np.abs(got - want) / np.spacing(np.abs(want)))


def _positive_grid():
    """Log-spaced from 1e-300 to 1e300, and dense where the functions change most."""
    return np.concatenate([np.geomspace(1e-300, 1e300, 60001), np.linspace(1e-3, 30, 60001)])


# --- accuracy ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FUNCTIONS)
def test_against_scipy_on_wide_grids(name):
    ours, scipys, _, bound = FUNCTIONS[name]
    x = _positive_grid()
    if name in ("erf", "erfc"):
        x = np.concatenate([x, -x])
    if name == "lgamma":  # scipy's gammaln loses up to 1e6 ulp on (0.5, 3), its zeros 1 and 2 inside: mpmath checks it
        x = x[(x < 0.5) | (x > 3)]
    if name == "erfc":  # scipy's erfc is off by up to 28 ulp for |x| < 6, by hundreds beyond: mpmath checks it
        x = x[np.abs(x) <= 6]
    with np.errstate(all="ignore"):
        got, want = ours(x), scipys(x)
    normal = ~(np.abs(want) < np.finfo(np.float64).tiny)  # subnormal tails: by mpmath below
    assert _ulps(got, want)[normal].max() <= bound


@pytest.mark.parametrize("name", FUNCTIONS)
def test_against_mpmath(name):
    ours, _, exact, _ = FUNCTIONS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    if name in ("erf", "erfc"):
        hi = 26.5 if name == "erfc" else 30
        x = np.concatenate([np.geomspace(1e-300, hi, 400), -np.geomspace(1e-300, 30, 200), rng.uniform(-6, hi, 400)])
    else:
        roots = [1.0, 2.0, 1.4616321449683622]
        x = np.concatenate([np.geomspace(1e-300, 1e300, 400), rng.uniform(0.5, 12, 400),
                            *(r + rng.uniform(-1e-3, 1e-3, 50) for r in roots)])
    with mpmath.workdps(40):
        want = [exact(mpmath.mpf(float(v))) for v in x]
        with np.errstate(all="ignore"):
            got = ours(x)
        # where the value is a normal float64 (trigamma at 1e-300 is 1e600: it must be inf)
        errors = [float(abs(mpmath.mpf(float(g)) - w) / np.spacing(abs(float(w)))) for g, w in zip(got, want)
                  if np.finfo(np.float64).tiny <= abs(float(w)) < np.inf]
        assert all(g == np.inf for g, w in zip(got, want) if float(w) == np.inf)
        # where the value is subnormal (erfc's far tail), within a few of the smallest steps
        tail = [float(abs(mpmath.mpf(float(g)) - w)) for g, w in zip(got, want) if abs(float(w)) < 2.3e-308]
    assert max(errors) <= EXACT_ULPS[name]
    assert max(tail, default=0) <= 4 * 5e-324


@pytest.mark.parametrize("name", ["lgamma", "digamma", "trigamma", "polygamma2"])
def test_negative_arguments_against_mpmath(name):
    """x < 0, by reflection: lgamma(x) = log(pi/|sin(pi x)|) - lgamma(1 - x), digamma(x) = digamma(1 - x)
    - pi cot(pi x), and the derivatives of the latter. The relative error grows near the zeros there (as
    scipy's does; next to the poles scipy's, which reduces x to (-1, 0], is the worse): the bound is in
    ulp of the reflection's terms, |f(1 - x)| + |f(x)|."""
    ours, _, exact, _ = FUNCTIONS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    x = -np.concatenate([np.geomspace(1e-6, 1e3, 300), rng.uniform(0, 30, 300)])
    x = x[x != np.round(x)]
    with np.errstate(all="ignore"):
        got = ours(x)
    with mpmath.workdps(40):
        want = [exact(mpmath.mpf(float(v))) for v in x]
        scale = [abs(exact(1 - mpmath.mpf(float(v)))) + abs(w) for v, w in zip(x, want)]
        errors = [float(abs(mpmath.mpf(float(g)) - w) / np.spacing(float(s))) for g, w, s in zip(got, want, scale)
                  if abs(float(w)) < np.inf]
    assert max(errors) <= 8


def test_series_coefficients_against_mpmath():
    """The Taylor coefficients the NumPy runtime carries, recomputed from their formulas."""
    a, b = rt._gamma_series()
    with mpmath.workdps(40):
        x0 = mpmath.findroot(mpmath.digamma, 1.46)
        want_a = [0, 1 - mpmath.euler] + [(-1) ** k * (mpmath.zeta(k) - 1) / k for k in range(2, len(a))]
        want_b = [0] + [mpmath.polygamma(k, x0) / mpmath.factorial(k) for k in range(1, len(b))]
    np.testing.assert_allclose(a, [float(v) for v in want_a], rtol=2e-16)
    np.testing.assert_allclose(b, [float(v) for v in want_b], rtol=2e-16)


# (not subnormals: scipy's erfc(27) is 0 and its gammaln(1e-320) inf, where ours are 5e-319 and 736.8)
SPECIAL_POINTS = np.array([0.0, -0.0, -1.0, -2.0, np.inf, -np.inf, np.nan, 1e308, -1e308])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_infinities_poles_and_nan_as_scipy(name):
    ours, scipys, _, _ = FUNCTIONS[name]
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(ours(SPECIAL_POINTS), scipys(SPECIAL_POINTS))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_float32_keeps_its_dtype_and_rounds_right(name):
    ours, scipys, _, _ = FUNCTIONS[name]
    x = np.concatenate([np.geomspace(1e-30, 1e30, 2001), np.linspace(-8.7, 9.3, 2001)]).astype(np.float32)
    with np.errstate(all="ignore"):
        got, want = ours(x), scipys(x.astype(np.float64)).astype(np.float32)
    assert got.dtype == np.float32
    assert _ulps(got, want).max() <= 1  # float64 values rounded to float32: at most one step apart


# --- second derivatives: lgamma'' = polygamma(1, x), digamma'' = polygamma(2, x) ---------------------

SECOND = [
    ("erf", "sum(erf(x))", lambda x: -4 * x / np.sqrt(np.pi) * np.exp(-x * x)),
    ("erfc", "sum(erfc(2*x - 1))", lambda x: 16 * (2 * x - 1) / np.sqrt(np.pi) * np.exp(-(2 * x - 1) ** 2)),
    ("lgamma", "sum(lgamma(x))", lambda x: sc.polygamma(1, x)),
    ("digamma", "sum(digamma(x))", lambda x: sc.polygamma(2, x)),
    ("digamma'", "sum(digamma(x)^2)", lambda x: 2 * sc.polygamma(1, x) ** 2 + 2 * sc.psi(x) * sc.polygamma(2, x)),
]
X = np.array([0.07, 0.6, 1.3, 2.9, 7.5, 41.0])


# torch's own trigamma (torch.special.polygamma(1, x)) is good to about 5e-9 in float64
RTOL = {"numpy": 1e-10, "jax": 1e-10, "torch": 1e-8}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "source", "reference"), SECOND, ids=[s[0] for s in SECOND])
def test_second_derivative_against_scipy(name, source, reference, backend):
    loss = lossdsl.compile(source, backend=backend)
    rtol = RTOL[backend]
    np.testing.assert_allclose(np.asarray(loss.second_derivative("x")(x=X)), reference(X), rtol=rtol)
    np.testing.assert_allclose(np.asarray(loss.hessian("x")(x=X)), np.diag(reference(X)), rtol=rtol, atol=1e-300)


def test_third_derivative_by_finite_differences_of_the_hessian():
    """polygamma(n) prints for any n: d/dx of digamma's second derivative (polygamma(3, x))."""
    loss = lossdsl.compile("sum(digamma(x))")
    second = loss.second_derivative("x")
    h = 1e-5 * X
    third = (np.asarray(second(x=X + h)) - np.asarray(second(x=X - h))) / (2 * h)
    np.testing.assert_allclose(third, sc.polygamma(3, X), rtol=1e-6)
    np.testing.assert_allclose(rt._polygamma(3, X), sc.polygamma(3, X), rtol=1e-14)


def test_hessian_formula_names_polygamma():
    formula = lossdsl.compile("sum(lgamma(x))").hessian_formula("x")
    assert "polygamma(1, x)" in str(formula)


# --- the analysis ----------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "verdicts"), [
    # convex (concave) on x > 0, but not across the poles at 0, -1, -2, ...
    ("mean(lgamma(within(y_pred, 0, none)))", ("convex",)),
    ("mean(digamma(within(y_pred, 0, none)))", ("concave",)),
    ("mean(lgamma(y_pred))", ("nonconvex", "unknown")),
    ("mean(digamma(y_pred))", ("nonconvex", "unknown")),
    ("mean(exp(y_pred) - y_true*y_pred + lgamma(y_true + 1))", ("convex",)),  # Poisson deviance, log link
    # erf is convex for x <= 0 and concave for x >= 0; erfc the other way round
    ("mean(erf(y_pred - y_true))", ("nonconvex", "unknown")),
    ("mean(erfc(y_pred - y_true))", ("nonconvex", "unknown")),
])
def test_analyze(source, verdicts):
    report = lossdsl.analyze(source)["inputs"]["y_pred"]
    assert report["convexity"]["verdict"] in verdicts
    assert "polygamma" in report["hessian"]["per_element"] or "erf" in source or "exp" in source


# --- standalone modules ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_standalone_module_in_a_fresh_namespace(backend):
    """The module source alone (its imports and copied helpers) evaluates the four and their gradients."""
    source = "sum(erf(x) + 2*erfc(x - 1) + lgamma(x + 3) * digamma(x + 3))"
    namespace: dict = {}
    exec(compile(lossdsl.compile(source, backend=backend).source, "<module>", "exec"), namespace)
    x = np.linspace(-2.0, 4.0, 7)
    arg = x if backend != "torch" else __import__("torch").tensor(x)
    value, grads = namespace["value_and_grad"](x=arg)
    want = np.sum(sc.erf(x) + 2 * sc.erfc(x - 1) + sc.gammaln(x + 3) * sc.psi(x + 3))
    want_grad = jax.grad(lambda t: jnp.sum(jss.erf(t) + 2 * jss.erfc(t - 1) + jss.gammaln(t + 3) * jss.digamma(t + 3)))(x)
    np.testing.assert_allclose(float(value), want, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grads["x"]), np.asarray(want_grad), rtol=RTOL[backend])


# --- the XGBoost objective ---------------------------------------------------------------------

def test_xgboost_objective_with_erfc_and_lgamma():
    """Gradient and Hessian per sample, against central differences of a scipy reference."""
    xgb = pytest.importorskip("xgboost")
    from lossdsl import objectives

    rng = np.random.default_rng(3)
    # labels a DMatrix holds exactly (it stores float32)
    y, p = rng.uniform(0.5, 4.0, 50).astype(np.float32).astype(np.float64), rng.uniform(0.5, 4.0, 50)
    # a Poisson-like deviance in log|Gamma| of the rate, and a smooth tail penalty
    source = "sum(lgamma(y_pred + 1) - y_true*log(y_pred) + erfc(y_pred - y_true))"
    g, h = objectives.xgboost(source)(p, xgb.DMatrix(np.zeros((50, 1)), label=y))

    def per_sample(q):
        return sc.gammaln(q + 1) - y * np.log(q) + sc.erfc(q - y)

    step = 1e-4
    np.testing.assert_allclose(g, (per_sample(p + step) - per_sample(p - step)) / (2 * step), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(h, (per_sample(p + step) - 2 * per_sample(p) + per_sample(p - step)) / step**2,
                               rtol=1e-5, atol=1e-6)

