"""The rewrite pass: each rule fires where its pattern stands, and nowhere else."""

import numpy as np
import pytest
import sympy as sp
import torch

import lossdsl
from lossdsl.analysis.evaluate import numpy_function
from lossdsl.backend import BACKENDS
from lossdsl.builtins import NATIVE_FORMS, abs_, clip, expm1, log1p, maximum, minimum, sigmoid, sign, softplus
from lossdsl.printer import ExprPrinter
from lossdsl.rewrite import clamped_quadratics, share_logistic, stabilize

x, y = sp.symbols("x y", real=True)

REWRITTEN = [
    (sp.log(sigmoid(x)), -softplus(-x)),
    (sp.log(1 - sigmoid(x)), -softplus(x)),
    (sp.log(1 + sp.exp(x)), softplus(x)),
    (sp.log(x + 1), log1p(x)),
    (sp.log(1 + x + y), log1p(x + y)),
    (sp.exp(x) - 1, expm1(x)),
    (y * sp.log(1 - sigmoid(x)), -y * softplus(x)),
    (sp.Piecewise((sp.log(1 + x), x > 0), (0, True)), sp.Piecewise((log1p(x), x > 0), (0, True))),
    (sp.log(sp.cosh(x)), abs_(x) + softplus(-2 * abs_(x)) - sp.log(2)),
    (x * sp.log(x), x * sp.log(sp.Piecewise((1, sp.Eq(x, 0)), (x, True)))),
    (x**y * sp.log(x), x**y * sp.log(sp.Piecewise((1, sp.Eq(x, 0)), (x, True)))),
    (y * x * sp.log(x), y * x * sp.log(sp.Piecewise((1, sp.Eq(x, 0)), (x, True)))),
    # clip: one pass, and one mask as its derivative
    (minimum(maximum(x, sp.Rational(1, 10)), sp.Rational(9, 10)), clip(x, sp.Rational(1, 10), sp.Rational(9, 10))),
    (sp.log(minimum(maximum(x * y, -1), 3)), sp.log(clip(x * y, -1, 3))),
    # Huber's gradient for the other input, and smooth L1's (SymPy keeps |x|*sign(x) for x): c*clip
    (sp.Piecewise((-x, abs_(x) <= 2), (-2 * sign(x), True)), -clip(x, -2, 2)),
    (sp.Piecewise((4 * abs_(x) * sign(x), abs_(x) < sp.Rational(1, 4)), (sign(x), True)),
     4 * clip(x, -sp.Rational(1, 4), sp.Rational(1, 4))),
    # a number or a factor distributed over a sum where terms then cancel (the gradient pass builds
    # without SymPy's own distribution): the quantile loss's gradient at tau = 1/2
    (sp.Rational(1, 2) + sp.Mul(sp.Rational(-1, 2), 1 + sign(x), evaluate=False), -sign(x) / 2),
    (sp.exp(y * (x + 1) - x * y), sp.exp(y)),
]

UNTOUCHED = [sp.log(x), sp.log(x + 2), sp.log(2 * x), sp.exp(x) + 1, sp.log(x * y), sp.exp(x) - 2,
             x * sp.log(y), sp.log(2 * sp.cosh(x)), softplus(-x), sigmoid(-x) + sigmoid(y),
             minimum(maximum(x, 1), 1), minimum(maximum(x, 2), 1), minimum(maximum(x, y), 1),
             maximum(minimum(x, 1), 0), minimum(maximum(x, 0), y),
             # a select that is no clip: the sides do not meet, or the factor depends on x
             sp.Piecewise((x, abs_(x) <= 2), (sign(x), True)), sp.Piecewise((x * x, abs_(x) <= 1), (sign(x), True)),
             # distributing would add operations, or multiply two sums out ((x - y)(x + y) → x² - y²
             # cancels where the product does not)
             sp.Mul(2, x + y, evaluate=False), y * (x + 1) + x, (x - y) * (x + y) + y**2,
             # never reflected: softplus(-x) = softplus(x) - x and sigmoid(-x) = 1 - sigmoid(x) cancel
             # for large x (BCE and focal loss from logits with label 1); share_logistic shares exp(-|x|)
             y * softplus(-x) + (1 - y) * softplus(x), (1 - y) * sigmoid(x) - y * sigmoid(-x),
             sigmoid(-x) * y + sigmoid(x), softplus(x - y) * softplus(y - x), sigmoid(x) * sigmoid(y - x)]


def test_rules_are_idempotent():
    """The gradient pass and the printer both stabilize: a second pass must change nothing."""
    for before, _ in REWRITTEN:
        once = stabilize(before)
        assert stabilize(once) == once


def test_shifted_logsumexp_becomes_log_softmax():
    """x - logsumexp(x, keepdims=true), written in a function (log_softmax's own body in the library),
    is one log_softmax op: the shifted logits minus their logsumexp, so float32 logits of 1000 keep
    their low digits, and the gradient reads softmax as exp(log_softmax)."""
    loss = lossdsl.compile("def ls(z):\n    return z - logsumexp(z, axis=1, keepdims=true)\nmean(ls(z))")
    assert "_log_softmax(z, 1)" in loss.source and "_logsumexp(" not in loss.source
    z = np.array([[1000.0, 1000.0, -1000.0], [0.5, -0.25, 1000.0]], dtype=np.float32)
    want = np.mean([-np.log(2)] * 2 + [-2000 - np.log(2), -999.5, -1000.25, 0.0])
    np.testing.assert_allclose(loss(z=z), want, rtol=1e-6)
    grad = loss.grad("z")(z=z)  # softmax/6 minus 1/6 each row
    np.testing.assert_allclose(grad, (1 - 3 * np.array([[0.5, 0.5, 0], [0, 0, 1]])) / 6, rtol=1e-6, atol=1e-9)


def test_log_sum_exp_becomes_one_op():
    """log(sum(exp(z))) crosses an op, so it is folded as the IR is built, before the gradient."""
    loss = lossdsl.compile("mean(log(sum(exp(z), axis=1)))")
    assert "_logsumexp(z, axis=1" in loss.source and "np.exp(z)" not in loss.source.split("def loss")[1]


@pytest.mark.parametrize("call", ["bce(from_logits=true)", "focal(from_logits=true)"])
def test_numpy_softplus_and_sigmoid_share_one_exponential(call):
    """NumPy evaluates each helper on its own: softplus(x) in the value and sigmoid(x) in the gradient
    print through one exp(-|x|) (rewrite.share_logistic); JAX keeps its two calls, which XLA fuses."""
    body = lossdsl.compile(call, backend="numpy")._c.writer.subset_module(("y_pred",))
    body = body.split("def _value_and_grad_rows")[1].split("\ndef ")[0]
    assert body.count("np.exp") == 1 and "_softplus(" not in body and "_sigmoid(" not in body, body


@pytest.mark.parametrize("call, exps", [("bce(from_logits=true)", 1), ("focal(from_logits=true)", 0)])
def test_torch_softplus_pair_shares_one_tail(call, exps):
    """torch shares softplus(x) and softplus(-x) through one log1p(exp(-|x|)) (its logaddexp evaluates
    its own exponential and logarithm) and keeps torch.sigmoid, one vectorised kernel cheaper than an
    exp; beside the gradient's sigmoid(x) and sigmoid(-x), that tail is -log1p(-min(sigmoid(x),
    sigmoid(-x))), with no exponential at all (Backend.tail_from_sigmoids). The value alone: focal's
    has both sigmoids too; bce's has none, and takes its tail from one exp."""
    module = lossdsl.compile(call, backend="torch").source
    fused = module.split("def _value_and_grad_1(")[1].split("\ndef ")[0]
    assert "torch.exp(" not in fused and "_softplus(" not in fused and fused.count("torch.sigmoid(") == 2, fused
    assert fused.count("torch.log1p(-_minimum(") == 1, fused
    alone = module.split("def _value(")[1].split("\ndef ")[0]
    assert alone.count("torch.exp(") == exps and "_softplus(" not in alone, alone


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_softplus_tail_from_sigmoids_is_exact(dtype):
    """The tail through the two sigmoids, as torch's fused value and gradient compute it, against
    mpmath: softplus(x) and softplus(-x) within a few ulp wherever the true value is a normal number
    (below that, within the smallest normal), at logits where softplus(x) - x or 1 - sigmoid(x) would
    lose every digit; the gradient's sigmoids as well."""
    import mpmath as mp
    exprs = share_logistic([softplus(x), softplus(-x), sigmoid(x), sigmoid(-x)], ("softplus",), tail_from_sigmoids=True)
    assert not any(f.atoms(sp.exp) for f in exprs) and exprs[2:] == [sigmoid(x), sigmoid(-x)]
    loss = lossdsl.compile("sum(a*softplus(x) + b*softplus(-x))", backend="torch")
    assert "torch.exp(" not in loss.source.split("def _value_and_grad_1(")[1].split("\ndef ")[0]
    finfo = torch.finfo(dtype)
    for v in [-745.0, -700.0, -100.0, -80.0, -40.0, -1.0, -1e-9, 0.0, 1e-9, 1.0, 40.0, 80.0, 100.0, 700.0, 745.0]:
        for side, a, b in ((1, 1.0, 0.0), (-1, 0.0, 1.0)):
            point = torch.tensor([v], dtype=dtype, requires_grad=True)  # x alone requires grad: the fused function
            value = loss(torch.tensor([a], dtype=dtype), point, torch.tensor([b], dtype=dtype))
            (grad,) = torch.autograd.grad(value, point)
            t = side * mp.mpf(float(point))
            for got, want in ((value, mp.log1p(mp.exp(t))), (grad, side / (1 + mp.exp(-t)))):
                got, want = float(got), float(want)
                if abs(want) >= finfo.tiny:
                    assert abs(got - want) <= 8 * finfo.eps * abs(want), (v, side, got, want)
                else:
                    assert abs(got - want) <= finfo.tiny, (v, side, got, want)


@pytest.mark.parametrize("weights, out", [((1 - y, y), True), ((sp.Rational(3, 10), sp.Rational(7, 10)), True),
                                          ((1 - y, 3 * y), False), ((y, y), False)], ids=str)
def test_shared_tail_is_added_once_where_the_weights_sum_to_a_number(weights, out):
    """share_logistic's softplus pair weighted by (1 - y, y) (BCE's) has its shared tail added once, not
    once per term; where the weights do not add up to a number (pos_weight's 3y) the sum stays as it
    was. Either way, the same numbers as the helpers' sum (NumPy's printing, mpmath's reference)."""
    import mpmath as mp
    c, d = weights
    (shared,) = share_logistic([c * softplus(x) + d * softplus(-x)])
    tail = log1p(sp.exp(-abs_(x)))
    assert (shared.count(tail) == 1) is out, shared
    xs = np.array([-745.0, -40.0, -1.0, 0.0, 0.5, 40.0, 745.0])
    ys = np.array([0.0, 1.0, 0.25, 0.999, 1.0, 0.0, 0.3])
    got = numpy_function(shared, (x, y))(xs, ys)
    want = [float(mp.mpf(c.subs(y, b)) * mp.log1p(mp.exp(mp.mpf(a))) + mp.mpf(d.subs(y, b)) * mp.log1p(mp.exp(-mp.mpf(a))))
            for a, b in zip(xs, ys)]
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)


def test_share_logistic_keeps_each_form_where_it_is_alone():
    exprs = [softplus(x) + sigmoid(y), sigmoid(x * y)]
    assert share_logistic(exprs) == exprs
    (both,) = share_logistic([softplus(x) * sigmoid(x)])
    assert len(both.atoms(sp.exp)) == 1 and not both.atoms(softplus, sigmoid)


@pytest.mark.parametrize("calls", [(softplus(x), softplus(-x)), (sigmoid(-x), sigmoid(x)), (softplus(-x), sigmoid(-x)),
                                   (softplus(x), softplus(-x), sigmoid(x), sigmoid(-x))], ids=str)
def test_share_logistic_shares_reflected_calls_exactly(calls):
    """f(x) and f(-x) share one exp(-|x|), each side computed without cancellation: compared with
    mpmath at logits where softplus(x) - x or 1 - sigmoid(x) would lose every digit."""
    import mpmath as mp
    exprs = share_logistic(list(calls))
    assert len({e for f in exprs for e in f.atoms(sp.exp)}) == 1 and not any(f.atoms(softplus, sigmoid) for f in exprs)
    points = np.array([-745.0, -60.0, -40.0, -1.0, 0.0, 1.0, 40.0, 60.0, 745.0])
    for call, shared in zip(calls, exprs):
        got = numpy_function(shared, (x,))(points)  # printed by the NumPy backend
        f = (lambda v: mp.log1p(mp.exp(v))) if isinstance(call, softplus) else (lambda v: 1 / (1 + mp.exp(-v)))
        sign = -1 if call.args[0] == -x else 1
        want = [float(f(sign * mp.mpf(v))) for v in points]
        np.testing.assert_allclose(got, want, rtol=4e-16, atol=0, err_msg=str(shared))


def test_clip_has_one_mask_as_its_derivative():
    """bce from probabilities clips them: its gradient holds one in-range mask, not two half-steps."""
    loss = lossdsl.compile("bce(y_true, y_pred)", backend="numpy")
    body = loss._c.writer.subset_module(("y_pred",)).split("def _value_and_grad_rows")[1]
    assert body.count("np.clip(") == 1 and body.count("_inside(") == 1 and "_heaviside(" not in body
    assert "inside(y_pred" in str(loss.gradient_formula("y_pred"))


@pytest.mark.parametrize("call, once", [("bce(from_logits=true)", ("softplus(", "sigmoid(")),
                                        ("cce(from_logits=true)", ("log_softmax(", "exp(")),
                                        ("sparse_cce(from_logits=true)", ("log_softmax(", "exp("))])
def test_lean_value_and_gradient(call, once):
    """Each transcendental is evaluated once for the value and gradient together, softplus and sigmoid
    once per sign of their argument (JAX: XLA fuses them; softplus(-x) = softplus(x) - x would cancel);
    cce without label smoothing computes no mean of log-probabilities just for its shape."""
    body = lossdsl.compile(call, backend="jax")._c.writer.subset_module(("y_pred",)).split("def value_and_grad")[1]
    body = body.split("\ndef ")[0]
    for name in once:
        assert body.count(name) == (2 if name in ("softplus(", "sigmoid(") else 1), (name, body)
    assert "_broadcast(" not in body  # no term kept for its shape alone


@pytest.mark.parametrize("before, after", REWRITTEN, ids=str)
def test_rule_fires(before, after):
    assert stabilize(before) == after


@pytest.mark.parametrize("expr", UNTOUCHED, ids=str)
def test_rule_does_not_fire(expr):
    assert stabilize(expr) == expr


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_user_written_bce_on_logits_is_stable(backend):
    """The textbook BCE on sigmoid(z) stays finite at logits of +-1000 once rewritten."""
    loss = lossdsl.compile("mean(-(y*log(sigmoid(z)) + (1 - y)*log(1 - sigmoid(z))))", backend=backend)
    z = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    t = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    value, grad = loss.value_and_grad("z")(y=t, z=z)
    # reference: softplus form of BCE with logits, and its gradient (sigmoid(z) - y)/n
    ref = np.mean(np.logaddexp(0, z) - t * z)
    sig = lambda v: 1 / (1 + np.exp(-np.clip(v, -700, 700)))  # noqa: E731
    ref_grad = ((1 - t) * sig(z) - t * sig(-z)) / z.size
    dtype = np.asarray(value).dtype  # JAX runs float32 unless x64 is on
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(float(value), ref, rtol=rtol)
    # softplus(-z) and sigmoid(-z) share softplus(z) and sigmoid(z) (one evaluation, not two), so the
    # gradient is sigmoid(z) - y, as optax and PyTorch compute it: exact to the rounding of its scale
    # 1/n, not relatively where it is smaller (1 - sigmoid(30) = 9e-14 in float64)
    atol = 4 * np.finfo(dtype).eps / z.size
    np.testing.assert_allclose(np.asarray(grad, dtype=np.float64), ref_grad, rtol=rtol * 1e3, atol=atol)


@pytest.mark.parametrize("native", sorted(NATIVE_FORMS, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_sympys_own_forms_of_builtins_read_as_the_builtin(native):
    """SymPy writes Abs, Max, sign, ... as it evaluates (sqrt(x^2) is Abs(x)); each becomes the builtin
    whose elementary form it is, which prints on every backend (the native has no printed form)."""
    builtin = NATIVE_FORMS[native]
    args = sp.symbols(f"a:{next(iter(builtin.nargs))}", real=True)
    expr = native(*args)
    assert type(expr) is native and type(stabilize(expr)) is builtin
    for b in BACKENDS.values():
        assert ExprPrinter(b)(stabilize(expr)).endswith(")")


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_sqrt_of_a_square_is_abs_with_its_subgradient(backend):
    x = np.array([-2.0, 0.0, 3.0])
    loss = lossdsl.compile("mean(sqrt(y_pred^2))", backend=backend)
    arg = x
    if backend == "torch":
        import torch
        arg = torch.as_tensor(x)
    np.testing.assert_allclose(np.asarray(loss(y_pred=arg)), np.mean(np.abs(x)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(loss.grad("y_pred")(y_pred=arg)), np.sign(x) / 3, rtol=1e-6)


_HUBER_SHAPED = [  # (select, c, k): c*x^2/2 where |x| <= k, c*(k|x| - k^2/2) beyond
    (sp.Piecewise((x**2 / 2, abs_(x) <= sp.Float(1.5)), (sp.Float(1.5) * (abs_(x) - sp.Float(0.75)), True)), 1, 1.5),
    (sp.Piecewise((abs_(x)**2, abs_(x) < sp.Float(0.5)), (abs_(x) - sp.Float(0.25), True)), 2, 0.5),  # smooth L1
    (sp.Piecewise((3 * x**2, sp.Float(2.0) >= abs_(x)), (6 * (2 * abs_(x) - 2), True)), 6, 2.0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("select, c, k", _HUBER_SHAPED, ids=["huber", "smooth_l1", "scaled"])
def test_huber_shaped_selects_print_through_a_clip(select, c, k, dtype):
    """c*(m*x - m^2/2) with m = clip(x, -k, k), evaluated by NumPy as the printer writes it, against
    the select from its formula: bit for bit inside (c = 1 or 2, where scaling is exact, for squares
    that are normal numbers: halving a subnormal rounds), within four ulp beyond, infinite at infinity and NaN at NaN; no comparison is left."""
    rewritten = clamped_quadratics(select)
    assert not rewritten.atoms(sp.Piecewise) and rewritten.atoms(clip), rewritten
    r = np.array([0.0, -0.0, 1e-15, -1e-12, 0.3, -0.49, k, -k, k * 1.0001, 7.0, -1e3, 3e30, np.inf, -np.inf, np.nan],
                 dtype=dtype)
    got = numpy_function(rewritten, (x,))(r).astype(dtype)
    half = dtype(0.5)
    with np.errstate(over="ignore"):  # the select's formula computes both sides everywhere
        want = np.where(np.abs(r) <= k, dtype(c) * (r * r * half),
                        dtype(c) * (dtype(k) * np.abs(r) - dtype(k * k / 2)))
    inside = np.abs(r) < k
    if c in (1, 2):
        np.testing.assert_array_equal(got[inside], want[inside])
    np.testing.assert_allclose(got[~inside], want[~inside], rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("select", [
    sp.Piecewise((x**2 / 2, abs_(x) <= y), (y * (abs_(x) - y / 2), True)),  # k unknown: it might be negative
    sp.Piecewise((x**2 / 2, abs_(x) <= 1), (abs_(x) - 1, True)),  # the pieces do not meet
    sp.Piecewise((x**2 / 2, abs_(x) <= -1), (-abs_(x) - sp.Rational(1, 2), True)),  # k < 0
    sp.Piecewise((x**2 * y, abs_(x) <= 1), (y * (abs_(x) - sp.Rational(1, 2)), True)),  # c depends on y: kept
    sp.Piecewise((x**2 / 2, x <= 1), (x - sp.Rational(1, 2), True)),  # one-sided
], ids=["symbolic-k", "no-join", "negative-k", "c-of-y", "one-sided"])
def test_other_selects_keep_their_form(select):
    assert clamped_quadratics(select) == select


@pytest.mark.parametrize("call", ["huber(delta=1.5)", "smooth_l1(beta=0.5)"])
@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_huber_value_shares_its_gradients_clip(backend, call):
    """Huber's and smooth L1's value and both gradients print one clip and no comparison or select."""
    source = lossdsl.compile(call, backend=backend).source
    name = "def _value_and_grad_rows(" if "def _value_and_grad_rows(" in source else "def value_and_grad("  # NumPy's blocks
    body = source.split(name)[1].split("\ndef ")[0]
    assert body.count("clip(") + body.count("clamp(") == 1 and "where" not in body and "<=" not in body, body
