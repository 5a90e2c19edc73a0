"""User errors, table-driven: the error class, the 1-based line and column (counted by hand from the
source text), a fragment of the message, and ``str(err)`` with ``file:line:col:``, the source line and a
caret under the column. Then the limits (depth, size, recursion), each refusing within the work the
limits allow (oracles.assert_within_limits, not a clock), and errors at call time."""

import numpy as np
import pytest
import scipy.special
from oracles import assert_within_limits

import lossdsl
from lossdsl import limits, parser
from lossdsl.errors import (
    InputError,
    LimitError,
    LossDSLError,
    LossTypeError,
    NameResolutionError,
    ParseError,
)

# (source, error class, line, column, message fragments)
CASES = [
    # malformed programs
    ("mean((y_pred - y_true)^2", ParseError, 1, 25, ("end of input",)),  # unclosed paren: at the end
    ("lam = 0.1\nw2 = lam * 2\nmean((p - t)^2 * w2", ParseError, 3, 20, ("end of input",)),
    ("x +* 3", ParseError, 1, 4, ("'*'",)),
    ("x = 1\ny = 2\nz = x +* y\nz", ParseError, 3, 8, ("'*'",)),
    ("x\t+* 3", ParseError, 1, 4, ("'*'",)),  # a tab is one column
    ("x $ y", ParseError, 1, 3, ("'$'",)),
    ("a = 1\nb = 2\nmean(x) $ a", ParseError, 3, 9, ("'$'",)),
    ("f(a=1, 2)", ParseError, 1, 8, ("positional",)),
    ("return x", ParseError, 1, 1, ("return",)),
    # bad indentation in a def: an indent where none may start (at the over-indented statement), and a
    # dedent to a level that matches no enclosing block (the line, column 1)
    ("def f(x):\n    y = x\n        return y\nf(a)", ParseError, 3, 9, ("indent",)),
    ("def f(x):\n    y = x\n  return y\nf(a)", ParseError, 3, 1, ("indentation",)),
    # definitions
    ("def f(x):\n    y = x\nf(a)", ParseError, 1, 5, ("return",)),  # a def without return
    ("# helpers\n\ndef sq(x):\n    y = x^2\n\nsq(a)", ParseError, 3, 5, ("'sq'", "return")),
    ("def f(x, x):\n    return x\nf(a)", ParseError, 1, 10, ("duplicate",)),
    ("def exp(x):\n    return x\nexp(a)", NameResolutionError, 1, 5, ("exp", "builtin")),
    # unknown names, with did-you-mean
    ("hubr(delta=1)", NameResolutionError, 1, 1, ("hubr", "did you mean 'huber'")),
    ("0.5 * hubr(delta=1)", NameResolutionError, 1, 7, ("did you mean 'huber'",)),
    ("lam = 0.1\n\nlam * sum(w) + (\n    mean(x) + foo(x))", NameResolutionError, 4, 15, ("'foo'",)),
    ("huber(delt=1)", NameResolutionError, 1, 7, ("delt", "did you mean 'delta'")),
    ("w = 1\n\nhuber(y_true=t,\n      y_pred=p, delt=w)", NameResolutionError, 4, 17, ("did you mean 'delta'",)),
    ("def f(a):\n    b = a\n    return huber(a, b, delt=1)\nf(x)", NameResolutionError, 3, 24,
     ("did you mean 'delta'",)),
    # arity
    ("exp(x, y)", NameResolutionError, 1, 8, ("exp",)),  # too many positional: at the first extra one
    ("mse(a, b, c, d, e)", NameResolutionError, 1, 17, ("mse",)),
    ("l1()", NameResolutionError, 1, 1, ("missing", "'w'")),
    ("maximum(x)", NameResolutionError, 1, 1, ("missing", "'y'")),
    ("a = 1\n\n2 * maximum(a)", NameResolutionError, 3, 5, ("missing", "'y'")),
    # kinds of values
    ('log("mean")', LossTypeError, 1, 5, ("'mean'",)),  # a string where a tensor is needed
    ('def g(v, k=2):\n    """Doc."""\n    return sum(v^k)\n\ng(x) + log("abc")', LossTypeError, 5, 12, ("'abc'",)),
    ("sum(x, axis=k)", LossTypeError, 1, 8, ("axis", "constant")),  # a tensor where a constant is needed
    ("mean + 1", LossTypeError, 1, 1, ("'mean'", "function")),  # a function used as a variable
    ("a = 2\nb = a * x\nb * huber", LossTypeError, 3, 5, ("'huber'", "function")),
    ("mean = 1\nmean", NameResolutionError, 1, 1, ("'mean'",)),
    ('mse(reduction="avg")', LossTypeError, 1, 1, ("reduction",)),
    # an undefined name inside a user def
    ("def f(a):\n    b = a + 1\n    return mean(c * b)\nf(x)", NameResolutionError, 3, 17, ("'c'", "not defined")),
    ("def f(a):\n    total = a + 1\n    return mean(totl)\nf(x)", NameResolutionError, 3, 17,
     ("did you mean 'total'",)),
    # suggestions prefer builtins and the user's own definitions; a library name must be clearly closer
    ("mie(x)", NameResolutionError, 1, 1, ("did you mean 'min'",)),  # not the library's 'mse'
    ("tuke(x)", NameResolutionError, 1, 1, ("did you mean 'tukey'",)),  # not the builtin 'take'
    ("def mse_w(a):\n    return a\nmse_v(x)", NameResolutionError, 3, 1, ("did you mean 'mse_w'",)),
    # other libraries' keyword spellings
    ("mean(x, dim=1)", NameResolutionError, 1, 9, ("'dim'", "did you mean 'axis'")),
    ("sum(x, keepdim=true)", NameResolutionError, 1, 8, ("did you mean 'keepdims'",)),
    ('mse(reduce="sum")', NameResolutionError, 1, 5, ("did you mean 'reduction'",)),
    ("mse(size_average=true)", NameResolutionError, 1, 5, ("did you mean 'reduction'",)),
    # a continued line keeps its own line and column
    ("mse(y_true, y_pred)  # data\n  + 0.1 * foo(w)", NameResolutionError, 2, 11, ("'foo'",)),
    # recursion
    ("def f(x):\n    return f(x)\nf(a)", LimitError, 2, 12, ("recursive",)),
    # reserved input names
    ("_x + 1", NameResolutionError, 1, 1, ("'_x'",)),
    ("_np * 2", NameResolutionError, 1, 1, ("'_np'", "starts with '_'")),
    ("mean(_lambda)", NameResolutionError, 1, 6, ("'_lambda'",)),
    ("a = 1\nb = a + 1\nmean(b * _jnp)", NameResolutionError, 3, 10, ("'_jnp'",)),
]


def _check_rendering(err, source, line, column):
    """``file:line:col: message``, then the source line, then a caret under the column."""
    assert type(err.line) is int and type(err.column) is int, (err.line, err.column)
    text = str(err).splitlines()
    assert text[0].startswith(f"<string>:{line}:{column}: "), text[0]
    caret = next(i for i, t in enumerate(text) if t.strip() == "^")
    quoted = source.splitlines()[line - 1].expandtabs(1)
    assert quoted in text[caret - 1], "\n".join(text)
    assert text[caret].index("^") == text[caret - 1].index(quoted) + column - 1, "\n".join(text)


@pytest.mark.parametrize("source, error, line, column, fragments", CASES,
                         ids=[f"{i}:{c[0][:28]!r}" for i, c in enumerate(CASES)])
def test_error_class_position_and_message(source, error, line, column, fragments):
    with pytest.raises(LossDSLError) as info:
        lossdsl.compile(source)
    err = info.value
    assert isinstance(err, error), f"{type(err).__name__}: {err}"
    assert (err.line, err.column) == (line, column), str(err)
    for fragment in fragments:
        assert fragment in err.message, str(err)
    _check_rendering(err, source, line, column)


def test_parse_alone_reports_syntax_errors():
    with pytest.raises(ParseError) as info:
        lossdsl.parse("a = 1\n\nmean(a +)")
    assert (info.value.line, info.value.column) == (3, 9)
    _check_rendering(info.value, "a = 1\n\nmean(a +)", 3, 9)


def test_the_caret_sits_under_the_column():
    source = "a = 1\nb = 2\nloss = a * mean(x) + hubr(b)\nloss"
    with pytest.raises(NameResolutionError) as info:
        lossdsl.compile(source)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("<string>:3:22: ")
    code, caret = lines[-2], lines[-1]
    assert code.endswith("loss = a * mean(x) + hubr(b)")
    assert caret.strip() == "^"
    # the caret is under the 'h' of hubr, whatever the indentation of the quoted line
    assert code[caret.index("^"):].startswith("hubr(b)")


def test_mutual_recursion_is_a_limit_error():
    source = "def f(x):\n    return g(x)\ndef g(x):\n    return f(x) + 1\nf(a)"
    with limits.tally() as spent, pytest.raises(LimitError) as info:
        lossdsl.compile(source)
    assert_within_limits(spent)
    assert "recursive" in info.value.message
    assert info.value.line in (2, 4) and info.value.column == 12


DEEP = {
    "parentheses": "(" * 300 + "x" + ")" * 300,
    "calls": "exp(" * 300 + "x" + ")" * 300,
    "unary minus": "-" * 400 + "x",
    "powers": "x^" * 300 + "x",
    "on line 3": "a = 1\nb = 2\n" + "sum(" + "tanh(" * 300 + "a * b" + ")" * 301,
}


@pytest.mark.parametrize("kind", list(DEEP))
def test_too_deep_expressions_are_refused_promptly(kind):
    source = DEEP[kind]
    with limits.tally() as spent, pytest.raises(LimitError) as info:
        lossdsl.compile(source)
    assert_within_limits(spent)
    err = info.value
    assert "nested" in err.message or "deep" in err.message
    assert type(err.line) is int and type(err.column) is int
    assert err.line == (3 if kind == "on line 3" else 1)
    assert str(err).startswith(f"<string>:{err.line}:{err.column}: ")


def test_long_flat_chains_are_not_too_deep():
    """A chain of additions longer than the parser's depth limit is one level deep, not that many."""
    n = parser.MAX_DEPTH + 50
    text = " + ".join(f"x{i}^2" for i in range(n))
    loss = lossdsl.compile(text)
    assert len(loss.inputs) == n
    values = {f"x{i}": np.array(float(i)) for i in range(n)}
    assert float(loss(**values)) == sum(i * i for i in range(n))


def test_oversized_source_is_refused_promptly():
    source = " + ".join(["x"] * 70_000)  # about 280,000 characters
    with limits.tally() as spent, pytest.raises(LimitError) as info:
        lossdsl.compile(source)
    assert_within_limits(spent)
    err = info.value
    assert "longer" in err.message or "large" in err.message or "long" in err.message
    # every user error has a position, and renders it
    assert type(err.line) is int and type(err.column) is int, (err.line, err.column)
    assert str(err).startswith(f"<string>:{err.line}:{err.column}: ")


# --- call-time errors ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_missing_and_extra_inputs(backend):
    loss = lossdsl.compile("mean((p - t)^2)", backend=backend)
    p, t = np.array([1.0, 2.0]), np.array([0.0, 0.0])
    assert float(loss(p=p, t=t)) == pytest.approx(2.5)
    with pytest.raises(InputError) as info:
        loss(p=p)
    assert isinstance(info.value, LossDSLError) and "'t'" in str(info.value)
    with pytest.raises(InputError) as info:
        loss(p=p, t=t, q=t)
    assert isinstance(info.value, LossDSLError) and "'q'" in str(info.value)
    with pytest.raises(LossDSLError):
        loss.grad("p")(p=p)
    with pytest.raises(LossDSLError):
        loss.value_and_grad(["p", "t"])(p=p, t=t, extra=1.0)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_no_gradient_for_integer_labels(backend):
    loss = lossdsl.compile("mean(take(z, labels))", backend=backend)
    assert "labels" in loss.inputs and "labels" not in loss.differentiable
    z, labels = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1, 0])
    assert float(loss(z=z, labels=labels)) == pytest.approx(2.5)
    with pytest.raises(LossDSLError):
        loss.grad("labels")(z=z, labels=labels)
    with pytest.raises(LossDSLError):
        loss.value_and_grad(["z", "labels"])(z=z, labels=labels)
    with pytest.raises(LossDSLError):
        loss.gradient_formula("labels")
    np.testing.assert_allclose(loss.grad("z")(z=z, labels=labels), [[0.0, 0.5], [0.5, 0.0]])


def test_gradient_with_respect_to_a_non_input():
    loss = lossdsl.compile("mean((p - t)^2)")
    with pytest.raises(LossDSLError):
        loss.grad("q")


def test_call_time_errors_name_the_input():
    loss = lossdsl.compile("mean(take(z, labels))")
    with pytest.raises(InputError, match="missing 'labels'"):
        loss(z=[[1.0]])
    with pytest.raises(InputError, match="unexpected 'zz'"):
        loss(z=[[1.0]], labels=[0], zz=1)
    with pytest.raises(InputError, match="'zz' is not an input"):
        loss.grad("zz")
    with pytest.raises(InputError, match="integer labels"):
        loss.grad("labels")
    assert isinstance(InputError("x"), ValueError)


def test_error_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "bad.loss"
    path.write_text("# my loss\nmse(a, b) +\n")
    with pytest.raises(ParseError) as info:
        lossdsl.compile(str(path))
    assert str(info.value).startswith(f"{path}:2:12: ")


@pytest.mark.parametrize("source, meant", [("rellu(x)", "relu"), ("sqare(x)", "square"), ("mie(x)", "min")])
def test_no_far_fetched_library_suggestion(source, meant):
    """'relu' once suggested the library's 'reduce', and 'square' its 'squared_hinge' (both are
    functions now): a misspelt function suggests the function, not a library loss that looks alike."""
    with pytest.raises(NameResolutionError) as info:
        lossdsl.compile(source)
    assert f"did you mean '{meant}'" in str(info.value), str(info.value)
    assert "reduce" not in info.value.message and "squared_hinge" not in info.value.message


def test_an_undefined_name_in_a_definition_hints_to_pass_it():
    with pytest.raises(NameResolutionError) as info:
        lossdsl.compile("def penalty(a):\n    return mean(a * w)\npenalty(x) + sum(w)")
    err = info.value
    assert (err.line, err.column) == (2, 21) and "'w' is not defined in 'penalty'" in err.message
    assert "pass 'w' as a parameter" in err.hint and "penalty(..., w)" in err.hint


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_sparse_cce_on_channels_first_logits_says_where_classes_go(backend):
    rng = np.random.default_rng(3)
    labels, logits = rng.integers(0, 3, (2, 4, 5)), rng.normal(size=(2, 3, 4, 5))  # NCHW, classes on axis 1
    loss = lossdsl.compile("sparse_cce(from_logits=true)", backend=backend)
    as_array = (lambda a: __import__("torch").from_numpy(a)) if backend == "torch" else (lambda a: a)
    with pytest.raises(InputError) as info:
        loss(y_true=as_array(labels), y_pred=as_array(logits))
    message = str(info.value)
    assert "'y_true'" in message and "classes are on the last axis" in message
    assert "transpose the logits" in message and "moveaxis(logits, 1, -1)" in message and "axis=1" in message
    # as the message says: classes last, and the loss is the mean cross-entropy (scipy's log_softmax)
    moved = np.moveaxis(logits, 1, -1)
    want = -np.mean(np.take_along_axis(scipy.special.log_softmax(moved, axis=-1), labels[..., None], -1))
    got = float(loss(y_true=as_array(labels), y_pred=as_array(moved)))
    np.testing.assert_allclose(got, want, rtol=1e-6 if backend == "jax" else 1e-12)  # JAX without x64: float32
    # or, as it also says, the logits as they were with axis=1
    got = float(lossdsl.compile("sparse_cce(from_logits=true, axis=1)", backend=backend)(
        y_true=as_array(labels), y_pred=as_array(logits)))
    np.testing.assert_allclose(got, want, rtol=1e-6 if backend == "jax" else 1e-12)
