"""Language semantics: constants fold, options pick branches, definitions inline, names resolve."""

import numpy as np
import pytest
import sympy as sp

import lossdsl
from lossdsl import syntax as A
from lossdsl.errors import LossTypeError, NameResolutionError

RNG = np.random.default_rng(7)
Y, P = RNG.normal(size=6), RNG.normal(size=6)


def value(text, **inputs):
    return float(lossdsl.compile(text)(**inputs))


def test_parse_gives_a_program_with_spans():
    program = lossdsl.parse("def f(x, k=2):\n    \"\"\"doc\"\"\"\n    y = x^k\n    return y\nf(a)")
    (d,) = program.defs
    assert d.name == "f" and d.doc == "doc" and [p.name for p in d.params] == ["x", "k"]
    assert isinstance(d.body[0], A.Assign) and d.body[0].span.line == 3
    assert isinstance(program.result, A.Call) and program.result.span.line == 5


@pytest.mark.parametrize("text, expected", [
    ("2 + 3 * 4", 14), ("2^10", 1024), ("2**3**2", 512), ("-2^2", -4), ("(1 + 2) / 4", 0.75),
    ("1e-3 * 1000", 1.0), ("1 if 2 > 1 else 0", 1), ("1 if not (1 == 1) else 5", 5),
    ("3 if \"mean\" == \"mean\" and true else 4", 3), ("1 if false or none == none else 2", 1),
])
def test_constants_fold(text, expected):
    assert value(text) == pytest.approx(expected)


@pytest.mark.parametrize("text, exact", [
    ("mean(x*(0.9 - 1))", sp.Rational(-1, 10)), ("mean(x*(0.1 + 0.2))", sp.Rational(3, 10)),
    ("mean(x*(1 - 1e-7))", sp.Rational(9999999, 10**7)), ("mean(x*(0.7/0.1))", sp.Integer(7)),
])
def test_constants_fold_exactly_in_the_decimals_written(text, exact):
    """Decimal constants combine as the decimals they are, then round once: 0.9 - 1 is -1/10 in the
    formula, not -0.09999999999999998 (as floats would give, and every pass over the array would carry)."""
    loss = lossdsl.compile(text)
    assert loss.formula() == exact * sp.Function("mean")(sp.Symbol("x"))


def test_inputs_in_order_of_first_appearance():
    assert lossdsl.compile("0.5*huber(delta=1) + l1(w, 0.1)").inputs == ("y_true", "y_pred", "w")
    assert lossdsl.compile("mse(b, a) + mean(c)").inputs == ("b", "a", "c")


def test_library_loss_binds_y_true_and_y_pred_when_left_out():
    implicit = value("huber(delta=0.5)", y_true=Y, y_pred=P)
    explicit = value("huber(y_true, y_pred, delta=0.5)", y_true=Y, y_pred=P)
    r = np.abs(P - Y)
    assert implicit == explicit == pytest.approx(np.mean(np.where(r <= 0.5, 0.5 * r**2, 0.5 * (r - 0.25))))


def test_static_option_picks_a_branch_without_evaluating_the_other():
    text = '''
def pick(x, mode="a"):
    return mean(x) if mode == "a" else undefined_function(x)
pick(v)
'''
    assert value(text, v=Y) == pytest.approx(Y.mean())


def test_tensor_condition_becomes_elementwise_where():
    assert value("sum(1 if x > 0 else -1)", x=Y) == pytest.approx(np.sum(np.where(Y > 0, 1, -1)))


def test_boolean_used_as_number():
    assert value("mean(x > 0)", x=Y) == pytest.approx(np.mean(Y > 0))
    assert value("sum((x > 0) and (x < 1))", x=Y) == pytest.approx(np.sum((Y > 0) & (Y < 1)))


def test_user_program_with_definitions_bindings_and_comments():
    text = '''
# a scaled squared error
def scaled(y_true, y_pred, scale=2.0):
    """Squared error times scale."""
    r = y_pred - y_true   # residual
    return scale * mean(r^2)

lam = 0.25
scaled(y, p, scale=3) + lam * (
    sum(w^2))
'''
    w = np.arange(3.0)
    assert value(text, y=Y, p=P, w=w) == pytest.approx(3 * np.mean((P - Y) ** 2) + 0.25 * np.sum(w**2))


def test_user_definition_shadows_library_loss():
    text = "def mse(y_true, y_pred):\n    return sum(abs(y_pred - y_true))\nmse(a, b)"
    assert value(text, a=Y, b=P) == pytest.approx(np.abs(P - Y).sum())


def test_library_does_not_see_user_definitions():
    """huber calls `where`, `abs`, `reduce`: a user's definitions never change what they mean."""
    text = "def reduce(x):\n    return 0 * sum(x)\nhuber(y, p)"
    r = np.abs(P - Y)
    assert value(text, y=Y, p=P) == pytest.approx(np.mean(np.where(r <= 1, 0.5 * r**2, r - 0.5)))


def test_assert_in_definition_reports_at_the_users_call():
    text = ('def f(x, mode="a"):\n    assert mode == "a" or mode == "b", "mode must be a or b"\n'
            '    return mean(x)\nf(v, mode="c")')
    with pytest.raises(LossTypeError, match="mode must be a or b") as err:
        lossdsl.compile(text)
    assert (err.value.line, err.value.column) == (2, 5)


def test_library_error_points_at_the_call():
    with pytest.raises(LossTypeError) as err:
        lossdsl.compile("1 + huber(delta=\"big\")")
    assert (err.value.line, err.value.column) == (1, 5)
    assert "huber" in str(err.value)


@pytest.mark.parametrize("text, error, fragment", [
    ("def exp(x):\n    return x\nexp(a)", NameResolutionError, "builtin"),
    ("huber = 3\nhuber", NameResolutionError, "function"),
    ("mean(x, y, z, w, v)", NameResolutionError, "at most"),
    ("max(x, y, axis=0)", LossTypeError, "elementwise"),
    ("sum(x, keepdims=1)", LossTypeError, "true or false"),
    ("one_hot(l, 0)", LossTypeError, ">= 1"),
    ("\"text\"", LossTypeError, "number or a tensor"),
    ("def f(x):\n    return y\nf(a)", NameResolutionError, "not defined"),
])
def test_resolution_errors(text, error, fragment):
    with pytest.raises(error, match=fragment):
        lossdsl.compile(text)


def test_within_checks_values_at_call_time():
    loss = lossdsl.compile("mean(-log(within(p, 0, 1)))")
    assert float(loss(p=np.array([0.5, 0.25]))) == pytest.approx(-np.mean(np.log([0.5, 0.25])))
    with pytest.raises(lossdsl.LossDSLError, match="input 'p'"):
        loss(p=np.array([0.5, 1.5]))


def test_labels_checked_and_not_differentiable():
    loss = lossdsl.compile("mean(take(z, labels))")
    z = RNG.normal(size=(3, 4))
    assert loss.differentiable == ("z",)
    with pytest.raises(lossdsl.LossDSLError, match=r"\[0, 4\)"):
        loss(z=z, labels=np.array([0, 1, 4]))
    with pytest.raises(lossdsl.LossDSLError, match="integer"):
        loss(z=z, labels=np.array([0.0, 1.0, 2.0]))
    with pytest.raises(lossdsl.LossDSLError, match="integer labels"):
        loss.grad("labels")


def test_per_sample_weights_broadcast_along_the_leading_axis():
    loss = lossdsl.compile("sum(per_sample(w, x) * x)")
    w, x = np.array([1.0, 2.0]), RNG.normal(size=(2, 3))
    grads = loss.grad(["w", "x"])(w=w, x=x)
    np.testing.assert_allclose(grads["w"], x.sum(axis=1))
    np.testing.assert_allclose(grads["x"], np.broadcast_to(w[:, None], (2, 3)))


def test_nonscalar_loss_gradient_is_gradient_of_its_sum():
    loss = lossdsl.compile("(y_pred - y_true)^2")
    np.testing.assert_allclose(loss(y_true=Y, y_pred=P), (P - Y) ** 2)
    np.testing.assert_allclose(loss.grad("y_pred")(y_true=Y, y_pred=P), 2 * (P - Y))


def test_gradient_is_a_fresh_array_not_an_input():
    loss = lossdsl.compile("sum(a * b)")
    a, b = np.ones(3), np.arange(3.0)
    g = loss.grad("a")(a=a, b=b)
    g[:] = -1
    np.testing.assert_array_equal(b, np.arange(3.0))


def test_compile_is_cached():
    assert lossdsl.compile("mean(x^2)") is lossdsl.compile("mean(x^2)")


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("text, expected", [
    ("sum(x - x + 1)", 6.0), ("logsumexp(x - x)", np.log(6.0)), ("sum(x^0)", 6.0),
    ("sum(where(x > 0, 1, 1))", 6.0), ("mean(maximum(x, x))", np.mean(Y)),
])
def test_cancellation_keeps_the_broadcast_shape(text, expected, backend):
    """SymPy folds x - x to 0; the element count of x must survive."""
    assert float(lossdsl.compile(text, backend=backend)(x=Y)) == pytest.approx(expected)


# --- definitions read top-level names; lines continue around binary operators ------------------------

def test_a_definition_reads_top_level_bindings_and_definitions():
    x, v = RNG.normal(size=5), RNG.normal(size=5)
    source = ("def square_of(a):\n    return a^2\n"
              "def penalty(a):\n    return scale * sum(square_of(a - shift))\n"
              "scale = 0.5\nshift = 2 * v\npenalty(x)")
    assert value(source, x=x, v=v) == pytest.approx(0.5 * np.sum((x - 2 * v) ** 2), rel=1e-12)
    # bound after the definition, before the call: as in Python, what counts is the call
    loss = lossdsl.compile(source)
    grads = loss.grad(["x", "v"])(x=x, v=v)
    np.testing.assert_allclose(grads["x"], x - 2 * v, rtol=1e-12)
    np.testing.assert_allclose(grads["v"], -2 * (x - 2 * v), rtol=1e-12)


def test_a_name_bound_only_after_the_call_is_not_defined():
    with pytest.raises(NameResolutionError, match="'scale' is not defined") as info:
        lossdsl.compile("def f(a):\n    return scale * sum(a)\nloss = f(x)\nscale = 2\nloss")
    assert "parameter" in info.value.hint


CONTINUED = [
    # (source, reference over x and w)
    ("mse(y_true, y_pred)        # data term\n  + 0.1 * l2(w)            # weight decay\n",
     lambda y_true, y_pred, w: np.mean((y_pred - y_true) ** 2) + 0.1 * 0.01 * np.sum(w**2)),
    ("mse(y_true, y_pred) +   # data term\n    # weight decay, below\n\n  0.1 * sum(w^2)",
     lambda y_true, y_pred, w: np.mean((y_pred - y_true) ** 2) + 0.1 * np.sum(w**2)),
    ("a = sum(w)\n    * 2\n    - mean(y_pred)\n    ** 2\na + mean(y_true)",
     lambda y_true, y_pred, w: 2 * np.sum(w) - np.mean(y_pred) ** 2 + np.mean(y_true)),
    ("a = w\n  @ w\nb = sum(w) *\n2\nb * mean(y_pred) / 4\n  ^ 1 + a",
     lambda y_true, y_pred, w: 2 * np.sum(w) * np.mean(y_pred) / 4 + w @ w + 0 * np.sum(y_true)),
    ("def f(a):\n    b = a\n        + 1\n    return sum(b)\n        * 3\nf(w) + mean(y_true - y_pred)",
     lambda y_true, y_pred, w: 3 * np.sum(w + 1) + np.mean(y_true - y_pred)),
    # a line at the left margin starting with '-' is a statement of its own
    ("a = sum(w)\n- mean(y_true) + mean(y_pred)",
     lambda y_true, y_pred, w: -np.mean(y_true) + np.mean(y_pred) + 0 * np.sum(w)),
]


@pytest.mark.parametrize("source, reference", CONTINUED, ids=range(len(CONTINUED)))
def test_an_expression_continues_around_a_binary_operator(source, reference):
    inputs = {"y_true": Y, "y_pred": P, "w": RNG.normal(size=3)}
    loss = lossdsl.compile(source)
    used = {k: v for k, v in inputs.items() if k in loss.inputs}
    assert float(loss(**used)) == pytest.approx(reference(**inputs), rel=1e-12, abs=1e-14)


def test_an_unindented_operator_line_is_a_new_statement():
    with pytest.raises(lossdsl.LossDSLError, match="only the last statement"):
        lossdsl.compile("mean(x)\n- sum(x)")
