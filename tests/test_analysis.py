"""Derived properties of losses against textbook answers; LaTeX; the selection guide; plots.

Expected values are the known facts about each loss (convexity, smoothness class, growth, the
distribution it is the negative log-likelihood of), not our own output; counterexamples to
convexity are re-checked with NumPy references written here.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.special
import sympy as sp

import lossdsl
from lossdsl.analysis import numpy_function, selection_guide
from lossdsl.builtins import ELEMENTWISE
from lossdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent

# (source, input, convexity, smoothness class, growth, influence bounded, likelihood distribution)
ROWS = [
    ("mse()", "y_pred", "convex", "inf", "quadratic", False, "Gaussian"),
    ("mae()", "y_pred", "convex", 0, "linear", True, "Laplace"),
    ("huber(delta=1)", "y_pred", "convex", 1, "linear", True, None),
    ("pseudo_huber(delta=1)", "y_pred", "convex", "inf", "linear", True, None),
    ("quantile(tau=0.9)", "y_pred", "convex", 0, "linear", True, None),
    ("log_cosh()", "y_pred", "convex", "inf", "linear", True, None),
    ("tukey()", "y_pred", "nonconvex", 2, "bounded", True, None),
    ("barron(alpha=0)", "y_pred", "nonconvex", "inf", "logarithmic", True, "Student-t"),  # Cauchy: df = 1
    ("bce(from_logits=true)", "y_pred", "convex", "inf", "linear", True, "Bernoulli"),
    ("cce(from_logits=true)", "y_pred", "convex", "inf", None, None, "categorical"),
    ("hinge()", "y_pred", "convex", 0, "linear", True, None),
    ("focal(from_logits=true)", "y_pred", "nonconvex", "inf", "linear", True, None),
    ("kl_div()", "y_pred", "convex", "inf", None, None, "categorical"),
    ("poisson_nll()", "y_pred", "convex", "inf", "exponential", False, "Poisson"),
    ("l1(w)", "w", "convex", 0, "linear", True, "Laplace"),
    ("l2(w)", "w", "convex", "inf", "quadratic", False, "Gaussian"),
    ("elastic_net(w)", "w", "convex", 0, "quadratic", False, None),
    ("mse() + l2(w)", "w", "convex", "inf", "quadratic", False, None),
    ("0.5*huber(delta=1) + l1(w, 0.1)", "y_pred", "convex", 1, "linear", True, None),
    ("mae() + elastic_net(w)", "w", "convex", 0, "quadratic", False, None),
    ("mse(y, X @ w)", "w", "convex", "inf", None, None, None),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_properties_match_the_known_answers(row):
    source, x, convexity, smooth, growth, bounded, distribution = row
    result = lossdsl.analyze(source)
    json.dumps(result)  # serialisable
    assert list(result["inputs"])[0] == x or x != "y_pred", "the prediction comes first"
    r = result["inputs"][x]
    assert r["convexity"]["verdict"] == convexity, r["convexity"]
    assert r["smoothness"]["class"] == smooth
    if growth is not None:
        assert r["robustness"]["growth"] == growth
        assert r["robustness"]["influence_bounded"] is bounded
    assert (r["likelihood"] or {}).get("distribution") == distribution


REFERENCES = {  # per-element NumPy references, written from the published formulas
    "tukey()": lambda y, p, c=4.685: np.where(np.abs(p - y) <= c, c**2 / 6 * (1 - (1 - ((p - y) / c) ** 2) ** 3),
                                              c**2 / 6),
    "barron(alpha=0)": lambda y, p: np.log(0.5 * (p - y) ** 2 + 1),
    "focal(from_logits=true)": lambda y, p: (
        (0.25 * y + 0.75 * (1 - y)) * (1 - (y / (1 + np.exp(-p)) + (1 - y) / (1 + np.exp(p)))) ** 2
        * (y * np.log1p(np.exp(-p)) + (1 - y) * np.log1p(np.exp(p)))),
}


@pytest.mark.parametrize("source", list(REFERENCES))
def test_counterexamples_violate_midpoint_convexity(source):
    ce = lossdsl.analyze(source)["inputs"]["y_pred"]["convexity"]["counterexample"]
    y = np.asarray(ce["inputs"]["y_true"])
    a, b = (np.asarray(v) for v in ce["y_pred"])
    f = REFERENCES[source]
    assert np.mean(f(y, (a + b) / 2)) > (np.mean(f(y, a)) + np.mean(f(y, b))) / 2


def test_unknown_gives_the_subexpression_that_breaks_the_rule():
    r = lossdsl.analyze("focal(from_logits=true, alpha=-1)")["inputs"]["y_true"]["convexity"]
    assert r["verdict"] == "unknown" and "product" in r["reason"] and "y_true" in r["reason"]


def test_never_convex_for_concave_or_sign_dependent_compositions():
    assert lossdsl.analyze("mean(sqrt(x))")["inputs"]["x"]["convexity"]["verdict"] in ("nonconvex", "unknown")
    assert lossdsl.analyze("mean(log(x))")["inputs"]["x"]["convexity"]["verdict"] == "concave"
    assert lossdsl.analyze("mean(exp(x^2))")["inputs"]["x"]["convexity"]["verdict"] == "convex"
    assert lossdsl.analyze("mean(exp(-x^2))")["inputs"]["x"]["convexity"]["verdict"] in ("nonconvex", "unknown")
    assert lossdsl.analyze("mean((x^2 - 1)^2)")["inputs"]["x"]["convexity"]["verdict"] == "nonconvex"
    assert lossdsl.analyze("mean(y * x^2)")["inputs"]["x"]["convexity"]["verdict"] == "nonconvex"


def test_ranges_and_minima():
    r = lossdsl.analyze("mse()")["inputs"]["y_pred"]["range"]
    assert r["nonnegative"] and r["bounded_below"] and r["minimum"] == 0 and r["argmin"] == r["held"]["y_true"]
    r = lossdsl.analyze("bce(from_logits=true)")["inputs"]["y_pred"]["range"]  # y_true = 1: -log sigmoid(x)
    assert r["minimum"] == 0 and not r["attained"] and r["argmin"] == "+inf"
    r = lossdsl.analyze("poisson_nll()")["inputs"]["y_pred"]["range"]  # e^x - x: minimum 1 at 0
    assert abs(r["minimum"] - 1) < 1e-9 and abs(r["argmin"]) < 1e-5
    assert lossdsl.analyze("mean(y_pred - y_true)")["inputs"]["y_pred"]["range"]["bounded_below"] is False


def test_kinks_are_located():
    pts = lossdsl.analyze("huber(delta=1)")["inputs"]["y_pred"]["smoothness"]["points"]  # y_true held at 1
    assert sorted(p["at"] for p in pts) == [0.0, 2.0] and all(p["continuous_derivatives"] == 1 for p in pts)
    pts = lossdsl.analyze("mean(sign(x - 2))")["inputs"]["x"]["smoothness"]
    assert pts["class"] == -1 and pts["points"][0]["at"] == 2.0


def test_hessian_is_reported_symbolically():
    n = sp.Symbol("n")
    h = lossdsl.analyze("mse()")["inputs"]["y_pred"]["hessian"]
    assert sp.sympify(h["per_element"]) == 2 / n and h["diagonal"]
    assert not lossdsl.analyze("mse(y, X @ w)")["inputs"]["w"]["hessian"]["diagonal"]


# --- the evaluator: our own NumPy printer, with the runtime helpers ---------------------------

_BUILTIN = {e.name: e.func for e in ELEMENTWISE}
# builtins NumPy lacks (printed as runtime helpers), each with a domain and a reference written from
# its formula or taken from scipy; a builtin added to the registry later joins here by its row
EVALUATED = [
    ("softplus", (-400, 400), lambda x: np.logaddexp(0, x)),
    ("sigmoid", (-400, 400), scipy.special.expit),
    ("heaviside", (-3, 3), lambda x: np.heaviside(x, 0.5)),
    ("erf", (-6, 6), scipy.special.erf),
    ("erfc", (-6, 27), scipy.special.erfc),
    ("lgamma", (1e-3, 200), scipy.special.gammaln),
    ("digamma", (1e-3, 200), scipy.special.digamma),
]


@pytest.mark.parametrize("row", [r for r in EVALUATED if r[0] in _BUILTIN], ids=lambda r: r[0])
def test_evaluator_runs_builtins_numpy_lacks(row):
    name, (lo, hi), reference = row
    t = sp.Symbol("t", real=True)
    args = (t, sp.Rational(1, 2)) if name == "heaviside" else (t,)
    x = np.concatenate([np.linspace(lo, hi, 2001), [lo, hi, 0.0] if lo < 0 else [lo, hi]])
    got = numpy_function(_BUILTIN[name](*args), (t,))(x)
    np.testing.assert_allclose(got, reference(x), rtol=1e-12, atol=1e-300)


def test_evaluator_on_a_composite_matches_numpy():
    t, y = sp.symbols("t y", real=True)
    softplus, sigmoid, abs_ = _BUILTIN["softplus"], _BUILTIN["sigmoid"], _BUILTIN["abs"]
    # SymPy's own Abs too: SymPy writes it where it evaluates (sqrt(t^2) is Abs(t))
    expr = y * softplus(-t) * sigmoid(2 * t) + sp.Piecewise((t**2 / 2, abs_(t - y) <= 1), (sp.sqrt(t**2) - 1, True))
    x = np.linspace(-50, 50, 1001)
    got = numpy_function(expr, (t, y))(x, 0.3)
    want = (0.3 * np.logaddexp(0, -x) * scipy.special.expit(2 * x)
            + np.where(np.abs(x - 0.3) <= 1, x**2 / 2, np.abs(x) - 1))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_evaluator_takes_no_free_names():
    t, other = sp.symbols("t other", real=True)
    with pytest.raises(ValueError, match="other"):
        numpy_function(t + other, (t,))
    analysis = ROOT / "lossdsl" / "analysis"
    assert not [p.name for p in analysis.glob("*.py") if "lambdify" in p.read_text(encoding="utf-8")]


def test_analysis_benchmark_runs(capsys):
    """benchmarks/analysis_time.py times each case it is given (the seconds are not checked)."""
    spec = importlib.util.spec_from_file_location("analysis_time", ROOT / "benchmarks" / "analysis_time.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert len(bench.PRODUCTS) >= 3 and all(s.count("*") >= bench.N - 1 for s in bench.PRODUCTS.values())
    rows = bench.analyze_cases({"huber": "huber(delta=1)"})
    assert [r[0] for r in rows] == ["huber"] and "huber" in capsys.readouterr().out


# --- LaTeX ------------------------------------------------------------------------------------

def test_latex_of_loss_and_gradient():
    loss = lossdsl.compile("mean((y_pred - y_true)^2)")
    assert loss.latex() == sp.latex(sp.Function("mean")((sp.Symbol("y_pred") - sp.Symbol("y_true")) ** 2))
    g = loss.gradient_latex("y_pred")
    assert g.startswith(r"\frac{2 \left(y_{pred} - y_{true}\right)}{n}") or g == r"\frac{2 \left(y_{pred} - y_{true}\right)}{n}"
    assert loss._repr_latex_() == f"$\\displaystyle {loss.latex()}$"
    assert r"\sigma\left(y_{pred}\right)" in lossdsl.compile("bce(from_logits=true)").gradient_latex("y_pred")
    assert r"\left|y_{pred} - y_{true}\right|" in lossdsl.compile("mae()").latex()


def test_grad_latex_cli(capsys):
    assert main(["grad", "huber(delta=1)", "--wrt", "y_pred", "--latex"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == lossdsl.compile("huber(delta=1)").gradient_latex("y_pred") and r"\frac" in out


# --- CLI, guide, plot -------------------------------------------------------------------------

def test_explain_prints_a_table_and_json(capsys):
    assert main(["explain", "mae()"]) == 0
    out = capsys.readouterr().out
    assert "convexity   convex" in out and "Laplace" in out and "kink at y_pred = 1" in out
    assert main(["explain", "mae()", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inputs"]["y_pred"]["likelihood"]["distribution"] == "Laplace"
    assert main(["explain", "hubr()"]) == 2


def test_selection_guide_is_current():
    current = (ROOT / "docs" / "selection-guide.md").read_text(encoding="utf-8")
    assert current == selection_guide(), "stale: run `lossdsl docs --guide -o docs/selection-guide.md`"


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "fig.png"
    assert main(["plot", "mse()", "huber(delta=1)", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", "bce()", "focal()", "-o", str(tmp_path / "p.png")]) == 0  # probabilities
    assert main(["plot", "mse(y, X @ w)", "-o", str(tmp_path / "bad.png")]) == 2


def test_plot_without_matplotlib_says_how_to_install(tmp_path, capsys, monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", fake)
    assert main(["plot", "mse()", "-o", str(tmp_path / "fig.png")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'lossdsl[plot]'" in err and "Traceback" not in err
