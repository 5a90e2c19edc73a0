"""User errors: the right class, line and column, a caret under the spot, and a "did you mean"."""

import time

import pytest

import lossdsl
from lossdsl.errors import InputError, LimitError, LossTypeError, NameResolutionError, ParseError

DEF_PROGRAM = 'def f(x, k=2):\n    """doc"""\n    y = x^k\n    return mean(y)\n'

# (source, error class, line, column, message fragment)
CASES = [
    ("mean((y_pred - y_true)^2", ParseError, 1, 25, "unexpected end of input"),
    ("x +* 3", ParseError, 1, 4, "unexpected '*'"),
    ("x $ y", ParseError, 1, 3, "unexpected character '$'"),
    ("mean(x,, y)", ParseError, 1, 8, "unexpected ','"),
    ("def f(x):\n    y = x\n", ParseError, 1, 5, "must end with 'return"),
    ("def f(x):\n    return x\n  f(a)", ParseError, 3, 1, ""),
    ("f(a=1, 2)", ParseError, 1, 8, "positional argument follows keyword"),
    ("def f(x, x):\n    return x\nf(a)", ParseError, 1, 10, "duplicate parameter"),
    ("hubr(delta=1)", NameResolutionError, 1, 1, "unknown function 'hubr' — did you mean 'huber'?"),
    ("1 +\\\n  hubr(delta=1)", NameResolutionError, 2, 3, "did you mean 'huber'"),
    ("huber(delt=1)", NameResolutionError, 1, 7, "has no parameter 'delt' — did you mean 'delta'?"),
    ("mse(a, b, c, d, e)", NameResolutionError, 1, 17, "at most 4 positional"),
    ("l1()", NameResolutionError, 1, 1, "missing its argument 'w'"),
    ("huber(a, b, delta=1, delta=2)", NameResolutionError, 1, 22, "two values for 'delta'"),
    ("log(\"mean\")", LossTypeError, 1, 5, "expected a tensor or a number"),
    ("sum(x, axis=k)", LossTypeError, 1, 8, "constant integer"),
    ("mean + 1", LossTypeError, 1, 1, "'mean' is a function"),
    (DEF_PROGRAM.replace("mean(y)", "mean(z)") + "f(a)", NameResolutionError, 4, 17, "'z' is not defined in 'f'"),
    (DEF_PROGRAM.replace("mean(y)", "mean(yy)") + "f(a)", NameResolutionError, 4, 17, "did you mean 'y'?"),
    ("def f(x):\n    return f(x)\nf(a)", LimitError, 2, 12, "recursive"),
    ("_x + 1", NameResolutionError, 1, 1, "cannot name an input"),
    ("np * 2", NameResolutionError, 1, 1, "cannot name an input"),
    ("mse(a, b)\nmae(a, b)", ParseError, 1, 1, "only the last statement"),
    ("lam = 0.1\n\nlam * sum(w) + (\n    mean(x) + foo(x))", NameResolutionError, 4, 15, "unknown function 'foo'"),
    ("x if 1 else y", LossTypeError, 1, 6, "needs a condition"),
    ("mse(reduction=\"avg\")", LossTypeError, 1, 1, "reduction must be"),
]


@pytest.mark.parametrize("source, error, line, column, fragment", CASES, ids=[c[0][:30] for c in CASES])
def test_error_position_and_message(source, error, line, column, fragment):
    with pytest.raises(error) as info:
        lossdsl.compile(source)
    err = info.value
    assert isinstance(err, lossdsl.LossDSLError)
    assert (err.line, err.column) == (line, column), str(err)
    assert fragment in str(err)
    text = str(err).splitlines()
    assert text[0].startswith(f"<string>:{line}:{column}: ")
    caret = next(i for i, t in enumerate(text) if t.strip() == "^")
    assert text[caret].index("^") - 4 == column - 1  # the caret sits under the column
    assert text[caret - 1][4:] == source.splitlines()[line - 1]


@pytest.mark.parametrize("source", ["-" * 400 + "x", "exp(" * 300 + "x" + ")" * 300, "x" * 300_000])
def test_limits_answer_promptly(source):
    start = time.perf_counter()
    with pytest.raises(LimitError):
        lossdsl.compile(source)
    assert time.perf_counter() - start < 5


def test_long_flat_sums_are_fine():
    text = " + ".join(f"x{i}^2" for i in range(500))
    assert len(lossdsl.compile(text).inputs) == 500


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
