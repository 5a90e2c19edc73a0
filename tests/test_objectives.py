"""Gradient-boosting objectives: boosting with the derived gradient and Hessian reproduces the built-in objectives."""

import copy
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lossdsl import LossDSLError, objectives

jax.config.update("jax_enable_x64", True)
xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

RNG = np.random.default_rng(0)
N = 200
X = RNG.normal(size=(N, 4))
F = X[:, 0] - 0.5 * X[:, 1] ** 2
WEIGHTS = RNG.uniform(0.5, 2.0, size=N)
LABELS = {
    "regression": F + 0.3 * RNG.normal(size=N),
    "binary": (F + RNG.normal(size=N) > 0).astype(float),
    "heavy_tailed": F + RNG.standard_t(2, size=N),
    "counts": RNG.poisson(np.exp(0.5 * F)).astype(float),
}

# (loss, labels, XGBoost built-in, its base_score giving margin 0, LightGBM built-in or None)
# LightGBM's "huber" takes a Hessian of 1, not pseudo-Huber's, so it has no counterpart.
ROWS = [
    ("0.5*(y_pred - y_true)^2", "regression", "reg:squarederror", 0.0, "regression"),
    ("bce(from_logits=true)", "binary", "binary:logistic", 0.5, "binary"),
    ("pseudo_huber(delta=1)", "heavy_tailed", "reg:pseudohubererror", 0.0, None),
    ("poisson_nll(log_input=true)", "counts", "count:poisson", 1.0, "poisson"),
]
ROUNDS = 10


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize(("source", "labels", "builtin", "base_score", "_"), ROWS, ids=[r[2] for r in ROWS])
def test_xgboost_matches_builtin(source, labels, builtin, base_score, _, weighted):
    data = xgb.DMatrix(X, label=LABELS[labels], weight=WEIGHTS if weighted else None)
    # max_delta_step 0: count:poisson otherwise inflates its Hessian by exp(0.7)
    params = {"max_depth": 3, "eta": 0.3, "tree_method": "exact", "max_delta_step": 0, "seed": 0, "nthread": 1}
    reference = xgb.train({**params, "objective": builtin, "base_score": base_score}, data, ROUNDS)
    ours = xgb.train({**params, "base_score": 0.0}, data, ROUNDS, obj=objectives.xgboost(source))
    expected = reference.predict(data, output_margin=True)
    np.testing.assert_allclose(ours.predict(data, output_margin=True), expected, rtol=0, atol=1e-5)
    assert np.ptp(expected) > 0.5  # the trees did learn something


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize(("source", "labels", "builtin"), [(r[0], r[1], r[4]) for r in ROWS if r[4]],
                         ids=[r[4] for r in ROWS if r[4]])
def test_lightgbm_matches_builtin(source, labels, builtin, weighted):
    # the built-ins start from margin 0 as a custom objective does; Poisson's Hessian is
    # exp(pred + poisson_max_delta_step), which must be > 0: a negligible one
    params = {"num_leaves": 7, "learning_rate": 0.3, "min_data_in_leaf": 5, "verbose": -1, "seed": 0,
              "num_threads": 1, "deterministic": True, "boost_from_average": False, "poisson_max_delta_step": 1e-12}

    def train(objective):
        data = lgb.Dataset(X, label=LABELS[labels], weight=WEIGHTS if weighted else None)
        return lgb.train({**params, "objective": objective}, data, ROUNDS).predict(X, raw_score=True)
    expected = train(builtin)
    np.testing.assert_allclose(train(objectives.lightgbm(source)), expected, rtol=0, atol=1e-5)
    assert np.ptp(expected) > 0.5


def test_lightgbm_training_again_decides_nothing_again(monkeypatch):
    """lightgbm.train deep-copies its params, the objective among them: the copy is the objective itself,
    so its first-batch decisions (sum or mean, the fused function) are made once for all trainings."""
    objective = objectives.lightgbm("bce(from_logits=true)")
    assert copy.deepcopy(objective) is objective and copy.copy(objective) is objective
    probes = []
    monkeypatch.setattr(objective, "_probe", lambda *args: probes.append(1) or objectives.Objective._probe(objective, *args))
    data = lgb.Dataset(X, label=LABELS["binary"])
    params = {"num_leaves": 7, "verbose": -1, "num_threads": 1, "objective": objective}
    first, second = (lgb.train(params, data, 3).predict(X, raw_score=True) for _ in range(2))
    assert len(probes) == 1
    np.testing.assert_array_equal(first, second)


def _focal_reference(y, x, gamma=2.0, alpha=0.25):
    """Per-sample gradient and Hessian of optax's sigmoid focal loss, by jax.grad."""
    one = lambda xi, yi: optax.losses.sigmoid_focal_loss(xi, yi, alpha=alpha, gamma=gamma)  # noqa: E731
    g = jax.vmap(jax.grad(one))(jnp.asarray(x), jnp.asarray(y))
    h = jax.vmap(jax.grad(jax.grad(one)))(jnp.asarray(x), jnp.asarray(y))
    return np.asarray(g), np.asarray(h)


def test_focal_objective_is_exact():
    y, x = LABELS["binary"], RNG.normal(scale=3, size=N)
    g, h = objectives.xgboost("focal(gamma=2, alpha=0.25, from_logits=true)")(x, xgb.DMatrix(X, label=y))
    g_ref, h_ref = _focal_reference(y, x)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, h_ref, rtol=1e-10, atol=1e-12)


def test_closed_forms_and_conventions():
    y, x = LABELS["binary"], RNG.normal(size=N)
    s = 1 / (1 + np.exp(-x))
    mean = objectives.lightgbm("bce(from_logits=true)")
    summed = objectives.lightgbm('bce(from_logits=true, reduction="sum")')
    for objective in (mean, summed):  # a mean is scaled back to per-sample derivatives
        g, h = objective(x, lgb.Dataset(X, label=y).construct())
        np.testing.assert_allclose(g, s - y, rtol=1e-12)
        np.testing.assert_allclose(h, s * (1 - s), rtol=1e-12)
    # the scikit-learn wrappers' order (y_true, y_pred, weight)
    g, h = mean(y, x, WEIGHTS)
    np.testing.assert_allclose(g, WEIGHTS * (s - y), rtol=1e-12)
    np.testing.assert_allclose(h, WEIGHTS * s * (1 - s), rtol=1e-12)
    # renamed inputs, and an input given a constant value
    g, h = objectives.xgboost("0.5*c*(score - target)^2", prediction="score", label="target", inputs={"c": 3.0})(y, x)
    np.testing.assert_allclose(g, 3 * (x - y), rtol=1e-12)
    np.testing.assert_allclose(h, np.full(N, 3.0), rtol=1e-12)


@pytest.mark.parametrize(("source", "message"), [
    ("mse(y_true, y_pred - mean(y_pred))", "not elementwise"),
    ("mse(y_true, y_pred) + 0.1*sum(y_pred)^2", "not elementwise"),
    ("mse(y_true, p)", "no input 'y_pred'"),
    ("mse(y_true, y_pred) + l2(w)", "missing w"),
    ("mse(y_true, y_pred) + sum(y_pred)", "sum or a mean"),
    ('mse(reduction="sum") + 0.5*mae()', "sum or a mean"),
])
def test_rejected(source, message):
    y, x = LABELS["regression"], RNG.normal(size=N)
    with pytest.raises(LossDSLError, match=message):
        objectives.xgboost(source)(y, x)


# --- the fused function (gradient and Hessian in one generated pass) --------------------------------

FUSED = [  # (loss, labels): elementwise losses of the library as objectives
    ("bce(from_logits=true)", "binary"), ("bce()", "binary"), ("focal(gamma=2, from_logits=true)", "binary"),
    ("focal(gamma=0.5, alpha=-1, from_logits=true)", "binary"), ("pseudo_huber(delta=1)", "heavy_tailed"),
    ("poisson_nll(log_input=true)", "counts"), ("quantile(tau=0.9)", "regression"), ("mse()", "regression"),
    ("mae()", "regression"), ("huber(delta=0.5)", "heavy_tailed"), ("log_cosh()", "heavy_tailed"),
    ("tukey()", "heavy_tailed"), ("hinge()", "binary"), ("squared_hinge()", "binary"),
    ("mse() + 0.5*mae()", "regression"),
]


def _margins(source, labels, dtype):
    x = RNG.normal(scale=2, size=N)
    if source == "bce()":
        x = 1 / (1 + np.exp(-x))  # probabilities
    y = LABELS[labels] * 2 - 1 if "hinge" in source else LABELS[labels]
    return y.astype(dtype), x.astype(dtype)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("source", "labels"), FUSED, ids=[r[0] for r in FUSED])
def test_the_fused_function_gives_the_general_derivatives(source, labels, dtype, weighted):
    """After the first batch, an objective calls one generated function for both derivatives, in the
    margins' dtype; it gives what the general functions (gradient, then H 1, in float64) give."""
    y, x = _margins(source, labels, dtype)
    w = WEIGHTS.astype(dtype) if weighted else None
    general = objectives.xgboost(source)(y.astype(np.float64), x.astype(np.float64), w)  # the first batch
    objective = objectives.xgboost(source)
    objective(y, x, w)
    assert objective._fast, "the fused function must agree with the general ones on the first batch"
    g, h = objective(y, x, w)
    assert g.dtype == h.dtype == dtype
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (3e-6, 1e-6)
    np.testing.assert_allclose(g, general[0], rtol=rtol, atol=atol * np.max(np.abs(general[0])))
    np.testing.assert_allclose(h, general[1], rtol=rtol, atol=atol * max(np.max(np.abs(general[1])), 1))


def test_the_fused_focal_objective_is_exact():
    """optax's focal loss by jax.grad, through the fused function (the second call)."""
    y, x = LABELS["binary"], RNG.normal(scale=3, size=N)
    objective = objectives.xgboost("focal(gamma=2, alpha=0.25, from_logits=true)")
    objective(y, x)
    g, h = objective(y, x)
    g_ref, h_ref = _focal_reference(y, x)
    np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h, h_ref, rtol=1e-9, atol=1e-12)



@pytest.mark.parametrize("delta", [1.0, 0.3])
def test_the_fused_pseudo_huber_objective_takes_one_square_root(delta):
    """r/sqrt(s) and s^(-3/2), s = 1 + (r/delta)^2, share one root; the values the closed forms'."""
    source = f"pseudo_huber(delta={delta})"
    objective = objectives.xgboost(source)
    loss = objective.loss
    module = loss._c.writer.derived_module(*objectives.per_term(True, False)(loss.graph, loss.root, "y_pred"), "y_pred")
    assert module[module.index("def derived"):].count("sqrt(") == 1
    y, x = RNG.normal(size=N), RNG.normal(scale=3, size=N)
    objective(y, x)
    g, h = objective(y, x)
    s = 1 + ((x - y) / delta) ** 2
    np.testing.assert_allclose(g, (x - y) / np.sqrt(s), rtol=1e-12)
    np.testing.assert_allclose(h, s ** -1.5, rtol=1e-12)

def test_labels_out_of_range_are_still_refused_by_the_fused_function():
    objective = objectives.xgboost("bce(from_logits=true)")
    y, x = LABELS["binary"], RNG.normal(size=N)
    objective(y, x)
    for bad in (2.0, -0.5, np.nan):
        with pytest.raises(LossDSLError, match="y_true"):
            objective(np.where(np.arange(N) == 3, bad, y), x)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_grad_and_second_derivative_in_one_function(backend):
    import lossdsl
    loss = lossdsl.compile("focal(gamma=2, from_logits=true) + 0.1*log_cosh()", backend=backend)
    y, x = LABELS["binary"], RNG.normal(scale=3, size=N)
    inputs = {"y_true": y, "y_pred": x}
    if backend == "torch":
        import torch
        inputs = {k: torch.from_numpy(v) for k, v in inputs.items()}
    g, h = loss.grad_and_second_derivative("y_pred")(**inputs)
    np.testing.assert_allclose(np.asarray(g), np.asarray(loss.grad("y_pred")(**inputs)), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(h), np.asarray(loss.second_derivative("y_pred")(**inputs)), rtol=1e-12)


@pytest.mark.parametrize("make", [objectives.xgboost, objectives.lightgbm], ids=["xgboost", "lightgbm"])
def test_an_objective_pickles_with_what_holds_it(make):
    """An objective pickles by its source, names and constants (the scikit-learn wrappers are pickled with
    their objective, and GridSearchCV's workers receive them pickled): the copy gives the same gradient
    and Hessian, and a regressor holding it, pickled after fitting, predicts as before."""
    objective = make("focal(y, z, gamma=g, from_logits=true)", prediction="z", label="y", inputs={"g": 1.5})
    again = pickle.loads(pickle.dumps(objective))
    assert type(again) is type(objective)
    assert (again.loss.text, again.prediction, again.label, again.fixed) == (objective.loss.text, "z", "y", {"g": 1.5})
    y, p = LABELS["binary"], np.linspace(-3.0, 3.0, N)
    for a, b in zip(again(y, p), objective(y, p)):
        np.testing.assert_array_equal(a, b)
    regressor = (xgb.XGBRegressor(n_estimators=3, max_depth=2, objective=objective, base_score=0.0)
                 if make is objectives.xgboost else
                 lgb.LGBMRegressor(n_estimators=3, num_leaves=4, objective=objective, verbose=-1))
    regressor.fit(X, y)
    restored = pickle.loads(pickle.dumps(regressor))
    np.testing.assert_array_equal(restored.predict(X), regressor.predict(X))
    from sklearn.base import clone  # scikit-learn's clone of the parameters, as its searches make
    assert clone(regressor).get_params()["objective"] is objective
