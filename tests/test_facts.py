"""What the analysis claims, against numerical evidence.

Two tables. Every elementwise builtin's declared facts (curvature, monotonicity and range, on its
domain and on each of its pieces) are checked on samples of scipy's and NumPy's own functions. Every
library loss's report, for each of its float inputs, is checked on the loss itself: a claimed
"convex" (or "concave") must survive midpoint-convexity checks between random inputs in its
domain (the rows of tests/stdlib_rows, which sample each loss's domain); a claimed range must hold
the per-element values; a claimed bounded influence must show as a gradient that stays bounded as
the input runs off, and an unbounded one as a gradient that grows.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import re
import warnings
from functools import cache
from typing import Any

import numpy as np
import pytest
import scipy.special as sc
import stdlib_rows
from sampling import one_of

import lossdsl
from lossdsl.builtins import ELEMENTWISE, INF, PRIMITIVES
from lossdsl.errors import InputError

# --- the registry's declared facts -------------------------------------------------------------

# each elementwise builtin from NumPy or scipy (two-argument ones: as functions of both)
REFERENCES = {
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt, "abs": np.abs,
    "sign": np.sign, "tanh": np.tanh, "cosh": np.cosh, "sinh": np.sinh, "sigmoid": sc.expit,
    "softplus": lambda x: np.logaddexp(0.0, x), "maximum": np.maximum, "minimum": np.minimum,
    "heaviside": np.heaviside, "erf": sc.erf, "erfc": sc.erfc, "lgamma": sc.gammaln, "digamma": sc.digamma,
    "logaddexp": np.logaddexp, "xlogy": sc.xlogy, "stop_gradient": lambda x: x,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "arcsin": np.arcsin, "arccos": np.arccos, "arctan": np.arctan,
    "arctan2": np.arctan2, "hypot": np.hypot,
}


def test_every_elementwise_builtin_has_a_reference():
    assert sorted(REFERENCES) == sorted(e.name for e in ELEMENTWISE)


def _points(lo: float, hi: float, rng: np.random.Generator, n: int = 4000) -> np.ndarray:
    """Samples of [lo, hi]: uniform where it is finite, else spread over scales 1e-3 to 1e3 from
    its finite end (or 0), with the finite ends themselves."""
    spread = np.exp(rng.uniform(np.log(1e-3), np.log(1e3), n))
    if lo > -INF and hi < INF:
        x = rng.uniform(lo, hi, n)
    elif lo > -INF:
        x = lo + spread
    elif hi < INF:
        x = hi - spread
    else:
        x = rng.choice([-1.0, 1.0], n) * spread
    return np.concatenate([x, [v for v in (lo, hi) if abs(v) < INF]])


def _regions(entry) -> list[tuple[float, float, str, str]]:
    """(lo, hi, curvature, monotone of the first argument) as the entry declares them."""
    shape = entry.shape
    return [(*shape.domain, shape.curvature, shape.monotone[0]), *shape.pieces]


def _check_curvature(f, a: np.ndarray, b: np.ndarray, curvature: str, what: str) -> None:
    fa, fb, fm = f(a), f(b), f((a + b) / 2)
    ok = np.isfinite(fa) & np.isfinite(fb) & np.isfinite(fm)
    tol = 1e-9 * (1 + np.abs(fa) + np.abs(fb))
    gap = (fm - (fa + fb) / 2)[ok]  # <= 0 for convex
    if curvature in ("convex", "affine"):
        assert np.all(gap <= tol[ok]), f"{what}: midpoint above the chord"
    if curvature in ("concave", "affine"):
        assert np.all(gap >= -tol[ok]), f"{what}: midpoint below the chord"


@pytest.mark.parametrize("entry", [e for e in ELEMENTWISE if len(e.params) == 1], ids=lambda e: e.name)
def test_declared_facts_of_one_argument_builtins(entry):
    f = REFERENCES[entry.name]
    rng = np.random.default_rng(0)
    for lo, hi, curvature, monotone in _regions(entry):
        what = f"{entry.name} on [{lo}, {hi}]"
        x = np.sort(_points(lo, hi, rng))
        with np.errstate(all="ignore"):
            y = f(x)
            ok = np.isfinite(y)
            low, high = entry.shape.range
            assert np.all((y[ok] >= low) & (y[ok] <= high)), f"{what}: a value outside the declared range"
            steps = np.diff(y[ok])
            scale = 1e-12 * (1 + np.abs(y[ok][1:]))
            if monotone == "increasing":
                assert np.all(steps >= -scale), f"{what}: decreases"
            elif monotone == "decreasing":
                assert np.all(steps <= scale), f"{what}: increases"
            elif monotone == "sign":
                left, right = x[ok][1:] <= 0, x[ok][:-1] >= 0  # steps wholly on one side of 0
                assert np.all(steps[left] <= scale[left]) and np.all(steps[right] >= -scale[right]), what
            a, b = rng.permutation(x), rng.permutation(x)
            _check_curvature(f, a, b, curvature, what)
        assert ok.mean() > 0.4 or (lo, hi) == entry.shape.domain, f"{what}: mostly outside where it is defined"


@pytest.mark.parametrize("entry", [e for e in ELEMENTWISE if len(e.params) == 2], ids=lambda e: e.name)
def test_declared_facts_of_two_argument_builtins(entry):
    f = REFERENCES[entry.name]
    rng = np.random.default_rng(1)
    a, b = (rng.normal(size=(2, 4000)) * 3 for _ in range(2))
    _check_curvature(lambda p: f(p[0], p[1]), a, b, entry.shape.curvature, entry.name)
    for k, monotone in enumerate(entry.shape.monotone):
        if monotone in ("increasing", "decreasing"):
            step = np.zeros_like(a)
            step[k] = np.abs(rng.normal(size=a.shape[1]))
            rise = f(*(a + step)) - f(*a)
            assert np.all(rise >= 0 if monotone == "increasing" else rise <= 0), f"{entry.name}: argument {k}"


def test_facts_hold_only_on_a_declared_domain():
    # log|Gamma| crosses poles on x < 0: not convex there, so the analysis may not say so
    r = lossdsl.analyze("mean(lgamma(x))")["inputs"]["x"]
    assert r["convexity"]["verdict"] in ("nonconvex", "unknown")
    assert lossdsl.analyze("mean(lgamma(within(x, 0, none)))")["inputs"]["x"]["convexity"]["verdict"] == "convex"
    # the range is studied for x > 0: the minimum of lgamma, at digamma's root
    rng = r["range"]
    assert rng["domain"] == [0.0, None]
    assert abs(rng["minimum"] - sc.gammaln(1.4616321449683623)) < 1e-9 and abs(rng["argmin"] - 1.461632) < 1e-5
    assert lossdsl.analyze("mean(digamma(x))")["inputs"]["x"]["convexity"]["verdict"] != "concave"


@pytest.mark.parametrize("source, verdict", [
    ("mean(erf(within(x, none, 0)))", "convex"), ("mean(erf(within(x, 0, none)))", "concave"),
    ("mean(erfc(within(x, 0, none)))", "convex"), ("mean(erfc(within(x, none, 0)))", "concave"),
    ("mean(sigmoid(within(x, none, 0)))", "convex"), ("mean(tanh(within(x, 0, none)))", "concave"),
    ("mean(exp(erf(within(x, none, 0))))", "convex"), ("mean(-log(erfc(within(x, none, 0))))", "unknown"),
])
def test_erf_and_kin_compose_by_the_sign_of_their_argument(source, verdict):
    got = lossdsl.analyze(source)["inputs"]["x"]["convexity"]["verdict"]
    assert got == verdict or (verdict == "unknown" and got != "concave")


# --- the library's reports against the losses themselves -----------------------------------------

CASES = [case for info in pkgutil.iter_modules(stdlib_rows.__path__)
         for case in importlib.import_module(f"stdlib_rows.{info.name}").CASES]
# every library loss (its first row), as called there, and with one of the other reductions
FIRST = {c.call.split("(")[0]: c for c in reversed(CASES)}
SOURCES = {c.call.format(opts=""): c for c in FIRST.values()}
REDUCED = {c.call.format(opts=opts): c for name, c in FIRST.items() if c.reducible
           for opts in one_of(name, [', reduction="sum"', ', reduction="none"', ", weights=w"])}


@cache
def _report(source: str) -> dict[str, Any]:
    return lossdsl.analyze(source)


def _inputs(case, source: str, seed: int | None = None) -> dict[str, Any]:
    """The row's inputs (``seed``: another draw), with per-sample weights where the source takes them."""
    inputs = case.sample() if seed is None else case.inputs(np.random.default_rng(seed))
    if "weights=w" in source and "w" not in inputs:
        lead = np.shape(inputs.get("y_pred", next(iter(inputs.values()))))[:1]
        inputs["w"] = np.random.default_rng(seed).uniform(0.2, 2.0, size=lead)
    return inputs


def _loss(source: str, inputs: dict[str, Any]) -> float:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(np.sum(lossdsl.compile(source)(**inputs)))


def _midpoint_checks(source: str, case, x: str, curvature: str) -> None:
    """f((a+b)/2) against (f(a)+f(b))/2 for a, b drawn by the row's sampler (others from the first
    draw), and between a draw and a scaled copy: the segment between two points in the domain."""
    base = _inputs(case, source)
    rng = np.random.default_rng(7)
    draws = [np.asarray(_inputs(case, source, s)[x], float) for s in range(8)]
    pairs = [(draws[i], draws[j]) for i in range(len(draws)) for j in range(i + 1, len(draws))]
    pairs += [(d, d * rng.uniform(0.0, 3.0)) for d in draws]
    for a, b in pairs:
        try:
            fa, fb, fm = (_loss(source, {**base, x: v}) for v in (a, b, (a + b) / 2))
        except InputError:  # a scaled copy outside the checked range: nothing is claimed there
            continue
        if not all(map(math.isfinite, (fa, fb, fm))):
            continue
        tol = 1e-7 * (1 + abs(fa) + abs(fb))
        if curvature in ("convex", "affine"):
            assert fm <= (fa + fb) / 2 + tol, (source, x, "claimed convex", fa, fb, fm)
        if curvature in ("concave", "affine"):
            assert fm >= (fa + fb) / 2 - tol, (source, x, "claimed concave", fa, fb, fm)


def _per_element(source: str, case, report: dict[str, Any], x: str, t: float) -> float:
    """l(t): the loss with every element of ``x`` equal to ``t`` and the other float inputs held
    where the report holds them, summed (``reduction="sum"``: each element adds l(t)) and divided
    by the number of elements. A loss without ``reduction`` gives l(t) up to a positive factor."""
    summed = source.replace('reduction="none"', 'reduction="sum"')
    if case.reducible and "reduction=" not in summed:
        summed = summed[:-1] + ', reduction="sum")'
    inputs = _inputs(case, source)
    floats = lossdsl.compile(source).differentiable
    held = {n: np.full_like(np.asarray(v, float), report["range"]["held"][n]) for n, v in inputs.items()
            if n in floats and n != x and n in report["range"]["held"]}
    filled = np.full_like(np.asarray(inputs[x], float), t)
    return _loss(summed, {**inputs, **held, x: filled}) / filled.size


def _range_checks(source: str, case, report: dict[str, Any], x: str) -> None:
    claim = report["range"]
    lo = -INF if claim["minimum"] is None else claim["minimum"]
    hi = INF if claim["maximum"] is None else claim["maximum"]
    if not case.reducible:  # l(t) up to a positive factor: only its sign is claimed
        lo, hi = (-INF if lo < 0 else 0.0), (INF if hi > 0 else 0.0)
    draws = np.concatenate([np.ravel(_inputs(case, source, s)[x]) for s in range(3)])
    for t in draws[:24]:
        v = _per_element(source, case, report, x, float(t))
        if math.isfinite(v):
            tol = 1e-7 * (1 + abs(v))
            assert lo - tol <= v <= hi + tol, (source, x, "per-element value outside the claimed range", t, v, lo, hi)
    if claim["nonnegative_proved"]:
        for s in range(4):
            assert _loss(source, {**_inputs(case, source), x: _inputs(case, source, 100 + s)[x]}) >= -1e-12


def _robustness_checks(source: str, case, report: dict[str, Any], x: str) -> None:
    """|l'(t)| by central differences at t = +-1e2, 1e4, 1e6."""
    for side, claim in report["robustness"].get("directions", {}).items():
        sign = 1.0 if side == "+" else -1.0
        slopes = []
        for k in (2, 4, 6):
            t, h = sign * 10.0**k, 10.0 ** (k - 4)
            slopes.append(abs(_per_element(source, case, report, x, t + h)
                              - _per_element(source, case, report, x, t - h)) / (2 * h))
        if not all(map(math.isfinite, slopes)):
            continue
        if claim["influence_bounded"]:
            assert slopes[2] <= 2 * slopes[0] + 1e-6, (source, x, side, "claimed bounded influence", slopes)
        else:
            # still growing over four decades: linear slopes grow 10^4-fold, log-like ones (log P) 3-fold
            assert slopes[2] > 2 * slopes[0], (source, x, side, "claimed unbounded influence", slopes)


ALL = {**SOURCES, **REDUCED}
# a per-element loss that holds a reduction of other inputs (contrastive's distance) holds it at 1,
# not at its value for the held inputs: its range is not reproduced by holding the inputs
OPAQUE = re.compile(r"\b(?:" + "|".join(sorted(PRIMITIVES)) + r")\(")


@pytest.mark.parametrize("source", list(ALL))
def test_reported_facts_hold_on_the_loss(source):
    case = ALL[source]
    report = _report(source)
    for x, r in report["inputs"].items():
        if x not in _inputs(case, source):
            continue
        verdict = r["convexity"]["verdict"]
        if verdict in ("convex", "concave", "affine"):
            _midpoint_checks(source, case, x, verdict)
        if r["range"] is not None and not OPAQUE.search(r["per_element"]):
            _range_checks(source, case, r, x)
        if r["robustness"] is not None:
            _robustness_checks(source, case, r, x)


# --- facts that the rules once left unknown ---------------------------------------------------------

def test_kl_divergence_is_convex_in_its_target():
    """sum(P log P - P log Q) is convex in P: P log P is (its second derivative is 1/P), and
    -P log Q is linear; the 0 log 0 = 0 piece, taken only at P = 0, is the limit there."""
    r = lossdsl.analyze("kl_div()")["inputs"]["y_true"]
    assert r["convexity"] == {"verdict": "convex", "proof": "composition rules"}
    # and still not claimed where the limit would not hold: h above g's limit
    p = "within(x, 0, 1)"
    for face, convex in (("0", True), ("1", True), ("-1", False)):  # the limit of p log p at 0 is 0
        got = lossdsl.analyze(f"mean(where({p} > 0, {p}*log({p}), {face}))")["inputs"]["x"]["convexity"]
        assert (got["verdict"] == "convex") is convex, (face, got)
    # the piece that is never taken is ignored: x >= -1 holds wherever within(x, 0, 1) does
    assert lossdsl.analyze(f"mean(where({p} >= 0, {p}^2, -{p}^2))")["inputs"]["x"]["convexity"]["verdict"] == "convex"


@pytest.mark.parametrize("options", ["", ', reduction="sum"', ', reduction="none"', ", weights=w",
                                     ', weights=w, reduction="sum"', ', weights=w, reduction="none"'])
@pytest.mark.parametrize("loss, growth, bounded, minimum", [
    ("mse", "quadratic", False, 0.0), ("mae", "linear", True, 0.0), ("huber", "linear", True, 0.0),
    ("tukey", "bounded", True, 0.0), ("log_cosh", "linear", True, 0.0),
])
def test_robustness_and_range_carry_through_reductions_and_weights(loss, growth, bounded, minimum, options):
    r = lossdsl.analyze(f"{loss}(y_true, y_pred{options})")["inputs"]["y_pred"]
    assert r["robustness"]["growth"] == growth and r["robustness"]["influence_bounded"] is bounded
    assert r["range"]["minimum"] == minimum and r["range"]["bounded_below"]
    assert (r["range"]["maximum"] is None) is (growth != "bounded")


def test_range_through_a_range_check_and_per_sample_sums():
    # kl_div's per-element loss with P held at 1 is -log Q on [0, 1]: least 0 at Q = 1, unbounded above
    r = lossdsl.analyze("kl_div()")["inputs"]["y_pred"]["range"]
    assert r["minimum"] == 0.0 and r["argmin"] == 1.0 and r["maximum"] is None
    # bce on probabilities, y_true held at 1: -log(clip(p, 1e-7, 1 - 1e-7))
    r = lossdsl.analyze("bce()")["inputs"]["y_pred"]["range"]
    assert abs(r["minimum"] + math.log1p(-1e-7)) < 1e-12 and abs(r["maximum"] + math.log(1e-7)) < 1e-6


def test_a_number_factor_taken_out_of_a_reduction_stays_in_the_per_element_loss():
    """mean(2*exp(-x^2)) is built as 2*mean(exp(-x^2)): each element's value still reaches 2 = 2*e^0,
    and Geman-McClure's 2*z/(z + 4) tends to 2 as the residual runs off."""
    r = lossdsl.analyze("mean(2*exp(-x^2))")["inputs"]["x"]["range"]
    assert r["maximum"] == pytest.approx(2.0) and r["minimum"] == 0.0
    r = lossdsl.analyze("geman_mcclure(y_true, y_pred, c=0.7)")["inputs"]["y_pred"]["range"]
    assert r["maximum"] == pytest.approx(2.0, rel=1e-9) and r["minimum"] == 0.0


def test_inputs_are_held_inside_an_open_interval():
    """within(q, above=0, below=1) excludes 1: q is held at a value the loss accepts."""
    source = "mean(within(q, above=0, below=1)*abs(x))"
    held = lossdsl.analyze(source)["inputs"]["x"]["range"]["held"]["q"]
    assert 0 < held < 1
    assert float(lossdsl.compile(source)(q=np.array([held]), x=np.array([2.0]))) == pytest.approx(2 * held)


def test_terms_without_the_input_leave_its_per_element_values_unknown():
    """mean(x^2) + mean(z): each element of x carries l(t) = t^2 plus a share of mean(z) that depends
    on the sizes of x and z, so no minimum value is claimed; its place (0) and bound below hold."""
    r = lossdsl.analyze("mean(x^2) + mean(z)")["inputs"]["x"]["range"]
    assert r["minimum"] is None and r["maximum"] is None and r["bounded_below"] and r["argmin"] == 0.0
    assert "offset" in r and "offset" not in lossdsl.analyze("mean(x^2)")["inputs"]["x"]["range"]


@pytest.mark.parametrize("source, below_zero_at", [
    ("mean(log(within(x, below=1)))", 0.5),          # log on (0, 1): negative
    ("mean(log1p(within(x, below=0)))", -0.5),       # log1p on (-1, 0): negative
    ("mean(log(within(x, below=1)) * 2)", 0.25),
])
def test_a_function_is_bounded_by_its_real_values_only(source, below_zero_at):
    """An interval reaching -inf meets log where it is not real: SymPy's log(-oo) is oo (log|x|),
    which must not bound the loss below; here the loss is negative at a valid input."""
    r = lossdsl.analyze(source)["inputs"]["x"]["range"]
    assert not r["nonnegative_proved"] and not r["nonnegative"]
    assert float(lossdsl.compile(source)(x=np.array([below_zero_at]))) < 0
