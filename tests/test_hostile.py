"""Hostile input: every limit with its own message and promptly, no code injection (checked on the
generated module's AST), clear call-time errors, and fuzzing (random token sequences and mutations
of stdlib programs) under which only LossDSLError escapes. Crashes the fuzzers found are rows of
REGRESSIONS.

"Promptly" is asserted as work, not seconds: what ``lossdsl.limits.tally()`` counts while a hostile
source compiles stays within the limits themselves (oracles.assert_within_limits), which a busy
machine cannot make fail. How many seconds a refusal takes is a benchmark (benchmarks/), not a test.
"""

import ast
import contextlib
import io
import sys
import tempfile
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import assert_within_limits

import lossdsl
from lossdsl import limits
from lossdsl.builtins import BUILTINS
from lossdsl.diagnose import KEYWORDS as GRAMMAR_WORDS
from lossdsl.errors import InputError, LimitError, LossDSLError, NameResolutionError, ParseError
from lossdsl.library import library
from lossdsl.printer import TAKEN


def _build(source: str, backend: str = "numpy") -> str:
    """Compile and generate the module (compile alone is lazy about the gradient and printing)."""
    return lossdsl.compile(source, backend=backend).source


def _chain(depth: int, step: str) -> str:
    return "a0 = x\n" + "\n".join(f"a{i} = {step.format(f'a{i - 1}')}" for i in range(1, depth + 1)) + \
        f"\nmean(a{depth})"


def _defs(levels: int, body: str) -> str:
    defs = ["def f0(a):\n    return exp(a)"]
    defs += [f"def f{i}(a):\n    return {body.format(f=f'f{i - 1}')}" for i in range(1, levels + 1)]
    return "\n".join(defs) + f"\nmean(f{levels}(x))"


# (name, source, fragment of the message): each limit says which one it is
LIMITS = [
    ("exponent", "x^1000000000", "exponent"),
    ("exponent of a constant", "x * 2^100000", "exponent"),
    ("exponent of an exact number", "x * sqrt(3)^200000000", "exponent"),
    ("parentheses", "(" * 10_000 + "x" + ")" * 10_000, "parentheses nested"),
    ("nested calls", "exp(" * 1_000 + "x" + ")" * 1_000, "nested deeper"),
    ("sum of 100,000 terms", " + ".join(["x"] * 100_000), "longer than"),
    ("100,000 distinct terms by definitions", _defs(15, "{f}(a) + {f}(2*a)"), "expands to more than"),
    ("2^30 repeated calls", _defs(30, "{f}(a) + {f}(a)"), "expands to more than"),
    ("tree of shared bindings", _chain(25, "{0}*{0} + {0}"), "larger than"),
    ("deep bindings", _chain(300, "exp({})"), "nested deeper"),
    ("deep bindings, several levels each", _chain(300, "tanh({}) * y + 1"), "nested deeper"),
    ("nested definitions", "\n".join(
        [f"def f{i}(a):\n    return " + "exp(" * 60 + (f"f{i - 1}(a)" if i else "a") + ")" * 60 for i in range(10)])
     + "\nmean(f9(x))", "nested deeper"),
    ("recursion", "def f(x):\n    return f(x)\nf(a)", "recursive"),
    ("mutual recursion", "def f(x):\n    return g(x)\ndef g(x):\n    return f(x) + 1\nf(a)", "recursive"),
    ("number literal", "1e400 * x", "number out of range"),
    ("integer literal", "123456789012345678901234567890 * x", "too long"),
    ("10 MB source", "x + " * (10 * 2**20 // 4) + "x", "longer than"),
    ("squared exact numbers", "a0 = 1.0000001 * x\n" + "\n".join(f"a{i} = a{i - 1}*a{i - 1}" for i in range(1, 40))
     + "\nmean(a39)", "bits"),
]


@pytest.mark.parametrize("source, fragment", [c[1:] for c in LIMITS], ids=[c[0] for c in LIMITS])
def test_each_limit_has_its_own_message_and_is_prompt(source, fragment):
    with limits.tally() as spent, pytest.raises(LimitError) as info:
        _build(source)
    assert_within_limits(spent)
    assert fragment in info.value.message, str(info.value)
    assert info.value.line is not None and info.value.column is not None


def test_constant_integers_do_not_grow_without_bound():
    # 2^62 squared seven times is a 2^7935 integer: folded as floats, it overflows
    source = "a = 2^62\n" + "\n".join(f"{c} = {p}*{p}" for p, c in zip("abcdefg", "bcdefgh")) + "\nx * h"
    with limits.tally() as spent, pytest.raises(LossDSLError, match="overflows"):
        _build(source)
    assert_within_limits(spent)


def _deep_stack(frames: int, fn):
    return fn() if frames == 0 else _deep_stack(frames - 1, fn)


INSIDE = _chain(limits.MAX_EXPR_DEPTH // 2 - 2, "{} * y + 1")  # two levels a step: just inside


@pytest.mark.parametrize("source", [
    INSIDE,
    _chain(limits.MAX_EXPR_DEPTH + 5, "tanh({}) * y + 1"),
    _chain(limits.MAX_EXPR_DEPTH // 2 + 5, "exp({}) * y"),
    "-" * 199 + "x",
])
def test_python_recursion_limit_is_never_what_stops_it(source):
    """With 1000 frames (Python's default) and 150 of them already used by a caller, either the loss
    compiles or a limit of ours speaks first; never a RecursionError."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        for backend in ("numpy", "jax"):
            try:
                _deep_stack(150, lambda b=backend: _build(source, b))
            except LimitError:
                assert source != INSIDE
    finally:
        sys.setrecursionlimit(old)


def test_just_inside_the_depth_limit_computes_the_right_value():
    x, y = np.array([0.3, -0.2]), np.array([0.5, -0.7])
    expected = x
    for _ in range(limits.MAX_EXPR_DEPTH // 2 - 2):
        expected = expected * y + 1
    loss = lossdsl.compile(INSIDE)
    np.testing.assert_allclose(loss(x=x, y=y), expected.mean(), rtol=1e-12)


@pytest.mark.parametrize("source", ["mean((x + y)^50)", "mean((x + y + 1)^1000)", "sum((x - 2*y)^7 * (x + y)^9)"])
def test_large_powers_of_sums_are_not_expanded(source):
    """Not expanded by any phase: the module is within 1,000 characters of a square's (the value of
    (x + y)^50 expanded alone is 51 terms with coefficients of up to 15 digits)."""
    loss = lossdsl.compile(source)
    assert len(loss.source) < len(lossdsl.compile("mean((x + y)^2)").source) + 1_000
    x, y = np.array([0.01, 0.02]), np.array([-0.01, 0.005])
    expected = eval(source.replace("^", "**").replace("mean", "np.mean").replace("sum", "np.sum"))  # noqa: S307
    np.testing.assert_allclose(loss(x=x, y=y), expected, rtol=1e-9)


# --- plain-words syntax errors, suggestions ---------------------------------------------------
# (source, error class, line, column, fragments of the message, fragment of the hint or None)
MESSAGES = [
    ("x +", ParseError, 1, 4, ("expected an expression after '+'",), None),
    ("x = 2 *\n", ParseError, 1, 8, ("expected an expression after '*'",), None),
    ("mean(x", ParseError, 1, 7, ("'(' at line 1, column 5 is never closed",), "')'"),
    ("mean(exp(x)", ParseError, 1, 12, ("'(' at line 1, column 5 is never closed",), "')'"),
    ("mean(x))", ParseError, 1, 8, ("no '(' for it to close",), None),
    ("def f(x):\n    retrun x\nf(a)", ParseError, 2, 12, ("unexpected 'x'",), "did you mean 'return'"),
    ("deff f(x):\n    return x\nf(a)", ParseError, 1, 6, ("unexpected 'f'",), "did you mean 'def'"),
    ("x if c esle y", ParseError, 1, 8, ("'esle'",), "did you mean 'else'"),
    ("x if Ture else y", lossdsl.errors.LossTypeError, 1, 6, ("condition",), "did you mean 'True'"),
    ("m\u0435an(x)", ParseError, 1, 2, ("unexpected character",), "CYRILLIC SMALL LETTER IE"),
    ("x \u00d7 y", ParseError, 1, 3, ("unexpected character",), "looks like '*'"),
    ('log("abc)', ParseError, 1, 5, ("unexpected character",), "not closed"),
    ("x[[0]]", ParseError, 1, 3, ("unexpected '['",), "take"),
    ("x{0}", ParseError, 1, 2, ("unexpected character '{'",), "take"),
    ("y = 3 3", ParseError, 1, 7, ("expected an operator",), None),
    ("a = 1\nx / (a - 1)", lossdsl.errors.LossTypeError, 2, 3, ("division by zero",), None),
    ("mean(x * log(0))", lossdsl.errors.LossTypeError, 1, 10, ("no value such as log(0)",), None),
    ("_value * 2", NameResolutionError, 1, 1, ("cannot name an input", "starts with"), "rename"),
]


@pytest.mark.parametrize("source, error, line, column, fragments, hint", MESSAGES,
                         ids=[repr(m[0])[:30] for m in MESSAGES])
def test_syntax_errors_in_plain_words(source, error, line, column, fragments, hint):
    with pytest.raises(error) as info:
        lossdsl.compile(source)
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    for fragment in fragments:
        assert fragment in err.message, str(err)
    if hint is None:
        assert err.hint is None or "did you mean" not in err.hint, str(err)
    else:
        assert err.hint is not None and hint in err.hint, str(err)
        assert f"hint: {err.hint}" in str(err)
    for token_name in ("NAME", "ADD_OP", "LPAR", "_NEWLINE", "$END"):
        assert token_name not in str(err)


def test_an_error_in_a_definition_from_a_file_names_the_file(tmp_path):
    path = tmp_path / "mine.loss"
    path.write_text('def f(a):\n    """Doc."""\n    return mean(a * undefined_thing)\n\nf(x)\n')
    with pytest.raises(NameResolutionError) as info:
        lossdsl.compile(str(path))
    assert str(info.value).startswith(f"{path}:3:21: ")


# --- no code injection -----------------------------------------------------------------------

def _functions(tree: ast.AST):
    """Each function of a module, with the names it binds itself (parameters, assignments, inner
    functions and their parameters)."""
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.Lambda)):
            continue
        nodes = list(ast.walk(fn))
        bound = set()
        for f in nodes:
            if isinstance(f, (ast.FunctionDef, ast.Lambda)):
                a = f.args
                bound |= {p.arg for p in a.posonlyargs + a.args + a.kwonlyargs + [x for x in (a.vararg, a.kwarg) if x]}
                if f is not fn and isinstance(f, ast.FunctionDef):
                    bound.add(f.name)
        bound |= {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        yield fn, nodes, bound


def _global_reads(source: str) -> set[str]:
    """Names the module's functions read without binding them: globals and builtins."""
    return {n.id for fn, nodes, bound in _functions(ast.parse(source)) for n in nodes
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in bound}


SAMPLE = [
    "mse(y_true, y_pred)", "mean(take(z, labels))", "mean(within(x, 0, 1))", "huber(y_true, y_pred)",
    "sum(one_hot(labels, 3) * z)", "mean(x @ w)", "mean(where(x > 0, x, 2*x))", "mean(clip(x, 0, 1))",
    "softmax_cross_entropy(logits, labels)" if "softmax_cross_entropy" in library() else "mean(log_softmax(z))",
    "2.5",
]


def _generated_functions(source: str):
    """The functions the printer writes (loss, value_and_grad, ...), not the runtime helpers copied
    in: only their bodies see the parameters that inputs become."""
    printed = {"loss", "value_and_grad", "grad", "derived", "_value", "_vjp", "_checks", "_primal", "_primal_fwd",
               "_primal_bwd", "_loss_rows", "_value_and_grad_rows", "forward", "backward"}
    return [f for f in ast.walk(ast.parse(source)) if isinstance(f, ast.FunctionDef) and f.name in printed]


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_every_name_generated_code_reads_is_taken(backend):
    """An input named like a global of the generated code would shadow it inside the functions
    that take it: each name those functions read is one that inputs are renamed away from."""
    for source in SAMPLE:
        loss = lossdsl.compile(source, backend=backend)
        for fn in _generated_functions(loss.source):
            params = {a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs}
            names = [n for n in ast.walk(fn) if isinstance(n, ast.Name)]
            bound = params | {n.id for n in names if isinstance(n.ctx, ast.Store)}
            reads = {n.id for n in names if isinstance(n.ctx, ast.Load)} - bound
            assert {n for n in reads if not n.startswith("_")} <= TAKEN, (source, fn.name)


# every name Python or the generated code holds, that the language leaves free to be an input: its
# keywords and builtins, the array modules, the module's own names, the wrappers' parameters
FREE_TAKEN = sorted(n for n in TAKEN | {"self", "direction", "ctx", "inputs", "grads", "need"}
                    if not n.startswith("_") and n not in GRAMMAR_WORDS and n not in BUILTINS and n not in library())


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_any_name_the_code_holds_is_an_input_all_the_same(backend, tmp_path):
    """User inputs take safe Python names by construction (``lambda`` is ``lambda_``): one loss whose
    inputs are all such names, its value and gradient against NumPy's, its Hessian, and its module."""
    names = FREE_TAKEN + ["lambda_"]  # and a name that a renamed one would otherwise take
    source = " + ".join(f"{k + 1}*mean(({n} - y)^2)" for k, n in enumerate(names))
    loss = lossdsl.compile(source, backend=backend)
    assert set(loss.inputs) == {*names, "y"}
    rng = np.random.default_rng(1)
    values = {n: rng.normal(size=3) for n in [*names, "y"]}
    as_backend = {n: (torch.tensor(v) if backend == "torch" else v) for n, v in values.items()}
    value, grads = loss.value_and_grad()(**as_backend)
    want = sum((k + 1) * np.mean((values[n] - values["y"]) ** 2) for k, n in enumerate(names))
    rtol, atol = (1e-5, 1e-3) if np.asarray(value).dtype == np.float32 else (1e-12, 0)  # JAX without x64
    np.testing.assert_allclose(float(value), want, rtol=rtol)
    for k, n in enumerate(names):
        np.testing.assert_allclose(np.asarray(grads[n]), (k + 1) * 2 * (values[n] - values["y"]) / 3,
                                   rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.asarray(loss.hessian("lambda")(**as_backend)),
                               (names.index("lambda") + 1) * 2 / 3 * np.eye(3), rtol=rtol)
    module = loss.module
    arguments = getattr(module, "ARGUMENTS", {})
    assert arguments["lambda"] == "lambda__" and set(arguments.values()).isdisjoint(TAKEN | set(names))
    direct = module.loss(**{arguments.get(n, n): v for n, v in as_backend.items()})
    np.testing.assert_allclose(float(direct), want, rtol=rtol)


def test_an_input_may_not_start_with_an_underscore():
    with pytest.raises(NameResolutionError, match="'_ctx' cannot name an input: it starts with '_'"):
        lossdsl.compile("mean(_ctx * 2)")


INJECTIONS = [
    # through identifiers (the grammar's ASCII names; Python's own names are refused)
    "mean(__import__)", "mean(os.system)", "mean(exec)", "mean(import_ * 2)", "mean(x) # ); import os",
    "mean(__builtins__)", "mean(_dt * x)", "mean(np)", "mean(lambda)", "mean(import)",
    # through strings and docstrings: only ever repr'd into SOURCE
    'def f(a, note="\\"); import os; (\\""):\n    """""" + __import__("os").system("echo hi") # """\n'
    '    return mean(a)\nf(x)',
    "def f(a):\n    '''\\n''' ; import os\n    return a\nmean(f(x))",
    'mse(y_true, y_pred, reduction="mean\\"); import os; (\\"")',
    # comments and line breaks
    "mean(x)  # \nimport os", "mean(x)\r\nimport os", "mean(x)\u2028import os", "mean(x)\x0cimport os",
    "mean(x) \\\n + 1", '"""\nimport os\n"""\nmean(x)',
    # Unicode look-alikes of allowed names
    "me\u0430n(x)", "mean(\u0445)", "mean(x\u200b)", "\ufeffmean(x)", "mean(\uff58)",
]


def _check_module_shape(loss) -> None:
    """Imports only of the array libraries; top-level statements only our constants and function
    definitions (and, for JAX, the custom_vjp wiring); every call is of an allowed name or attribute."""
    tree = ast.parse(loss.source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert {a.name for a in node.names} <= {"numpy", "jax", "jax.numpy"}, ast.dump(node)
        assert not isinstance(node, ast.ImportFrom), ast.dump(node)
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets = {t.id for t in stmt.targets if isinstance(t, ast.Name)}
            assert targets <= {"SOURCE", "INPUTS", "ARGUMENTS", "DIFFERENTIABLE", "ROW_BLOCK", "_loss"}, ast.dump(stmt)
            if targets & {"SOURCE", "INPUTS", "ARGUMENTS", "DIFFERENTIABLE"}:
                assert isinstance(stmt.value, (ast.Constant, ast.Tuple, ast.Dict)), ast.dump(stmt)
                assert all(isinstance(n, (ast.Constant, ast.Tuple, ast.Dict, ast.Load)) for n in ast.walk(stmt.value))
        else:
            assert isinstance(stmt, (ast.Import, ast.FunctionDef, ast.Expr)), ast.dump(stmt)
            if isinstance(stmt, ast.Expr):  # the docstring, and _loss.defvjp(...)
                ok = isinstance(stmt.value, ast.Constant) or ast.unparse(stmt).startswith("_loss.defvjp(")
                assert ok, ast.unparse(stmt)
    assert ast.literal_eval(next(s.value for s in tree.body if isinstance(s, ast.Assign)
                                 and s.targets[0].id == "SOURCE")) == loss.text
    module_level = {f.name for f in tree.body if isinstance(f, ast.FunctionDef)} | {"_loss"}
    for _fn, nodes, bound in _functions(tree):  # every call reaches a local, ours, or the array library
        for node in nodes:
            if isinstance(node, ast.Call):
                root = node.func
                while isinstance(root, (ast.Attribute, ast.Subscript, ast.Call)):
                    root = root.value if not isinstance(root, ast.Call) else root.func
                if isinstance(root, ast.Name) and root.id not in bound:
                    assert root.id in TAKEN | module_level, ast.unparse(node)
    for name in loss.inputs:
        assert name.isascii() and name.isidentifier() and not name.startswith("_")


@pytest.mark.parametrize("source", INJECTIONS, ids=[repr(s)[:30] for s in INJECTIONS])
def test_no_code_injection(source, capfd):
    for backend in ("numpy", "jax"):
        try:
            loss = lossdsl.compile(source, backend=backend)
        except LossDSLError:
            continue
        _check_module_shape(loss)
        assert loss.module.SOURCE == source  # loading it runs nothing of the user's
    out, err = capfd.readouterr()
    assert "hi" not in out


# --- call-time errors --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_call_errors_name_the_inputs(backend):
    mse = lossdsl.compile("mse(y_true, y_pred)", backend=backend)
    with pytest.raises(InputError) as info:
        mse(y_true=np.zeros(4), y_pred=np.zeros(5))
    message = str(info.value)
    assert "'y_true' (shape (4,))" in message and "'y_pred' (shape (5,))" in message, message
    with pytest.raises(InputError, match="missing 'y_pred'"):
        mse(y_true=np.zeros(4))
    with pytest.raises(InputError, match="unexpected 'y_prd'"):
        mse(y_true=np.zeros(4), y_pred=np.zeros(4), y_prd=np.zeros(4))
    gather = lossdsl.compile("mean(take(z, labels))", backend=backend)
    z = np.zeros((2, 3))
    with pytest.raises(InputError, match=r"input 'labels' must hold class indices in \[0, 3\)"):
        gather(z=z, labels=np.array([0, 3]))
    with pytest.raises(InputError, match="input 'labels' holds integer labels"):
        gather(z=z, labels=np.array([0.0, 1.0]))
    with pytest.raises(InputError) as info:
        gather(z=z, labels=np.array([0, 1, 2]))
    assert "'labels' (shape (3,))" in str(info.value) and "'z' (shape (2, 3))" in str(info.value)


# --- fuzzing ----------------------------------------------------------------------------------

def _compile_fully(source: str) -> None:
    """Only LossDSLError may escape, and the compile's work stays within the limits."""
    with limits.tally() as spent:
        try:
            _build(source)
        except LossDSLError:
            pass
    assert_within_limits(spent)


TOKENS = ["x", "y_true", "y_pred", "mean", "sum", "exp", "log", "huber", "take", "def", "return", "assert", "if",
          "else", "and", "or", "not", "true", "none", "(", ")", ",", "=", ":", "+", "-", "*", "/", "@", "^", "**",
          "<", "==", "0", "1", "2.5", "1e400", '"s"', "\n", "\n    ", " ", "axis", "reduction", "#c", "\\\n"]
# the stdlib's files, each followed by a call of its first definition, and the sample losses
PROGRAMS = sorted({d.span.source + f"\n{d.name}(y_true, y_pred)\n" for d in library().values()
                   if d.span.source and d.span.source.find(f"def {d.name}(") == d.span.source.find("def ")}) + SAMPLE


def _mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    for where, kind, what in edits:
        i = where % (len(text) + 1)
        if kind == 0:
            text = text[:i] + what + text[i:]
        elif kind == 1:
            text = text[:i] + text[i + len(what) + 1:]
        else:
            text = text[:i] + what + text[i + 1:]
    return text


EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 2), st.sampled_from(TOKENS) | st.text(max_size=2)),
                 min_size=1, max_size=4)
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=30))
def test_fuzz_random_token_sequences(tokens):
    _compile_fully(" ".join(tokens))


@FUZZ
@given(st.sampled_from(PROGRAMS), EDITS)
def test_fuzz_mutated_programs(program, edits):
    _compile_fully(_mutate(program, edits))


def _cli_argv(verb: str, source: str, options: list[str], folder: str) -> list[str]:
    """A command line for ``lossdsl`` from drawn parts; outputs go under ``folder``."""
    argv = [verb] + ([] if verb == "list" else [source[:200] if verb == "show" else source])
    for option in options:
        argv += [option.replace("{dir}", folder)] if "{dir}" in option or option.startswith("-") else [option]
    return argv


CLI_VERBS = st.sampled_from(["compile", "grad", "explain", "show", "list"])
CLI_OPTIONS = st.lists(st.sampled_from([
    "--backend", "jax", "torch", "numpy", "nope", "-o", "{dir}/m.py", "{dir}", "", "{dir}/a/b.py", "--force",
    "--wrt", "x", "y_pred", "zz", "--latex", "--json", "--debugx", "-", "--", "--version"]), max_size=5)
CLI_SOURCES = st.sampled_from(PROGRAMS) | st.lists(st.sampled_from(TOKENS), max_size=12).map(" ".join) | st.sampled_from(
    ["my_losses/foo", "x.loss", "./loss", "/dev/null", ".", "", " ", "\x1b[2J", "mse(y_true, y_pred)"])


def run_cli(argv: list[str], folder: str) -> tuple[int, str]:
    """``lossdsl argv``, in process, run in ``folder`` (a bare output name such as ``-o jax`` lands
    there, not in the checkout): its exit status and what it wrote to stderr (argparse's exits count
    as status 2, as from the shell)."""
    from lossdsl.cli import main
    err = io.StringIO()
    with contextlib.chdir(folder), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else 2
    return status, err.getvalue()


@FUZZ
@given(CLI_VERBS, CLI_SOURCES, CLI_OPTIONS)
def test_fuzz_the_command_line_never_reports_an_internal_error(verb, source, options):
    with tempfile.TemporaryDirectory() as folder:
        status, err = run_cli(_cli_argv(verb, source, options, folder), folder)
    assert status in (0, 2) and "internal error" not in err and "Traceback" not in err, (status, err)


# Crashes the fuzzers found (fuzz/fuzz_compile.py and the tests above), and the hangs and recursion
# errors that the limits above were added for: each stays fixed.
REGRESSIONS = [
    "\rx $ y",  # IndexError: Lark counts lines by \n alone, str.splitlines also by \r
    "a = 1\u2028b $ c",  # ... and by \u2028
    "x\x0c + $",  # ... and by a form feed
    "\r# c\ndef f(a):\n    return a\nf(x) $",
    "xreturnreturn1/0",  # printer: no numpy form for complex infinity (x/0 is now an error)
    "mean(0^x)",  # its gradient holds log(0), complex infinity: printed as nan
    "x * sqrt(3)^200000000",  # hung in SymPy computing 3^100000000
    "a0 = x*y + x\n" + "\n".join(f"a{i} = a{i - 1}*a{i - 1} + a{i - 1}" for i in range(1, 21)) + "\nmean(a20)",  # hung
    _chain(100, "tanh({}) * y + 1"),  # RecursionError in SymPy's diff
    _chain(30, "tanh({})"),  # the module header's formulas: SymPy re-deriving assumptions, exponential time
    "\n".join(f"def f{i}(a):\n    return " + "exp(" * 90 + (f"f{i - 1}(a)" if i else "a") + ")" * 90
              for i in range(3)) + "\nmean(f2(x))",  # RecursionError in the resolver
]


@pytest.mark.parametrize("source", REGRESSIONS, ids=[repr(s)[:24] for s in REGRESSIONS])
def test_fuzz_regressions(source):
    _compile_fully(source)


# --- shapes that broadcast by accident --------------------------------------------------------------

STRETCHED = ["mse(y_true, y_pred)", "mae(y_true, y_pred)", "huber(y_true, y_pred)", "bce(y_true, y_pred)",
             "poisson_nll(y_true, y_pred)", "mean((y_true - y_pred)^2) + 0.1*sum(w^2)"]


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("source", STRETCHED)
def test_a_column_against_a_vector_warns_naming_both(source, backend):
    """(N, 1) against (N,) silently makes an N x N loss: a UserWarning names both inputs, as PyTorch's
    elementwise losses warn; the same shapes, or weights matched to the rows, do not warn."""
    loss = lossdsl.compile(source, backend=backend)
    rng = np.random.default_rng(0)
    column, vector = rng.uniform(0.1, 0.9, size=(5, 1)), rng.uniform(0.1, 0.9, size=5)
    extra = {"w": np.ones(3)} if "w" in loss.inputs else {}
    with pytest.warns(UserWarning, match=r"input 'y_true' has shape \(5, 1\) and input 'y_pred' has shape \(5,\)"):
        loss(y_true=column, y_pred=vector, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss(y_true=vector, y_pred=vector, **extra)
        loss(y_true=column, y_pred=column, **extra)


def test_weights_of_shape_n_1_do_not_warn():
    loss = lossdsl.compile("mse(y_true, y_pred, weights=w)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(loss(y_true=np.zeros(4), y_pred=np.ones(4), w=np.ones((4, 1)))) == 1.0
