"""The lossdsl command: grad, compile, list; user errors exit 2 with the message, never a traceback.

Most tests run ``lossdsl.cli.main`` in-process; a few run ``python -m lossdsl`` in a subprocess.
"""

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import lossdsl
from lossdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
MSE = "mean((y_pred - y_true)^2)"
CARD = "0.5*huber(delta=1) + l1(w, 0.1)"
PROGRAM = '''# a small program: a definition, a binding, and the loss
def sq_err(a, b, scale=2):
    """Scaled squared error."""
    d = a - b
    return scale * mean(d^2)

lam = 0.5
sq_err(t, p) + l2(p, lam)
'''

y_pred, y_true, n, t, p = sp.symbols("y_pred y_true n t p")


def _run(*argv):
    return subprocess.run([sys.executable, "-m", "lossdsl", *argv], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


def _load(path):
    spec = importlib.util.spec_from_file_location(f"generated_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _imported_roots(source):
    """The top-level packages a module imports, anywhere in it (also inside functions)."""
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0] if node.level == 0 else ".")
    return roots


def _equal(printed, expected):
    """SymPy equality of our own printed formula (sympify is fine here: a test, on our output)."""
    return sp.simplify(sp.sympify(printed.strip()) - expected) == 0


# --- grad ------------------------------------------------------------------------------------

def test_grad_prints_the_formula(capsys):
    assert main(["grad", MSE, "--wrt", "y_pred"]) == 0
    out, err = capsys.readouterr()
    assert err == "n: the element count of the mean\n"  # what n is, apart from the formulas
    assert _equal(out, 2 * (y_pred - y_true) / n)


def test_grad_in_a_subprocess():
    done = _run("grad", MSE, "--wrt", "y_pred")
    assert done.returncode == 0, done.stderr
    assert _equal(done.stdout, 2 * (y_pred - y_true) / n)
    assert "Traceback" not in done.stderr


def test_grad_with_respect_to_two_inputs(capsys):
    assert main(["grad", MSE, "--wrt", "y_pred", "--wrt", "y_true"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    got = dict(line.split(":", 1) for line in lines)
    assert set(got) == {"d/dy_pred", "d/dy_true"}
    assert _equal(got["d/dy_pred"], 2 * (y_pred - y_true) / n)
    assert _equal(got["d/dy_true"], -2 * (y_pred - y_true) / n)


def test_grad_latex(capsys):
    assert main(["grad", MSE, "--wrt", "y_pred", "--latex"]) == 0
    out = capsys.readouterr().out.strip()
    assert re.search(r"\\[A-Za-z]+", out), out  # a LaTeX command such as \frac or \left
    assert "y_{pred}" in out and "y_{true}" in out  # SymPy's LaTeX for the names
    assert "**" not in out


def test_grad_of_every_float_input_by_default(capsys):
    assert main(["grad", CARD]) == 0
    heads = [line.split(":")[0] for line in capsys.readouterr().out.strip().splitlines()]
    assert sorted(heads) == ["d/dw", "d/dy_pred", "d/dy_true"]


# --- compile ---------------------------------------------------------------------------------

def _card_reference(y_true, y_pred, w):
    """0.5 * mean Huber(delta=1) + 0.1 * sum|w|, written out independently."""
    r = y_pred - y_true
    huber = np.where(np.abs(r) <= 1, 0.5 * r**2, np.abs(r) - 0.5)
    return 0.5 * np.mean(huber) + 0.1 * np.sum(np.abs(w))


@pytest.mark.parametrize("backend, allowed", [("numpy", {"numpy"}), ("jax", {"jax"})])
def test_compile_writes_a_standalone_module(tmp_path, capsys, backend, allowed):
    out = tmp_path / "tmp" / "loss.py"
    assert main(["compile", CARD, "--backend", backend, "-o", str(out)]) == 0
    capsys.readouterr()
    source = out.read_text(encoding="utf-8")
    assert _imported_roots(source) == allowed  # only its array library: no lossdsl, no sympy
    assert "lossdsl" not in {line.split()[1].split(".")[0] for line in source.splitlines()
                             if line.startswith(("import ", "from "))}
    module = _load(out)
    rng = np.random.default_rng(0)
    inputs = {"y_true": rng.normal(size=6), "y_pred": rng.normal(size=6) * 2, "w": rng.normal(size=3)}
    reference = lossdsl.compile(CARD, backend=backend)
    assert tuple(module.INPUTS) == tuple(reference.inputs)
    value = float(module.loss(**inputs))
    np.testing.assert_allclose(value, float(reference(**inputs)), rtol=1e-6)
    np.testing.assert_allclose(value, _card_reference(**inputs), rtol=1e-5)
    grads = module.grad(**inputs)
    want = reference.grad(list(reference.differentiable))(**inputs)
    assert set(grads) == set(want) == {"y_true", "y_pred", "w"}
    for name in want:
        np.testing.assert_allclose(np.asarray(grads[name]), np.asarray(want[name]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(grads["w"]), 0.1 * np.sign(inputs["w"]), rtol=1e-5)


def test_compile_to_stdout(capsys):
    assert main(["compile", CARD]) == 0
    out = capsys.readouterr().out
    ast.parse(out)  # valid Python
    assert "def loss(" in out and "def grad(" in out



@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_compile_no_checks_prints_what_compile_checks_false_holds(capsys, backend):
    source = "bce(y_true, y_pred) + sum(take(p, labels))"
    assert main(["compile", source, "--backend", backend, "--no-checks"]) == 0
    out = capsys.readouterr().out
    assert out == lossdsl.module_source(source, backend, checks=False)
    assert out != lossdsl.module_source(source, backend)  # the checks are what differs

# --- a .loss file as the source --------------------------------------------------------------

def test_loss_file_source_for_grad(tmp_path, capsys):
    path = tmp_path / "mine.loss"
    path.write_text(PROGRAM, encoding="utf-8")
    assert main(["grad", str(path), "--wrt", "p"]) == 0
    # d/dp [2*mean((t - p)^2) + 0.5*sum(p^2)] = 4*(p - t)/n + p
    assert _equal(capsys.readouterr().out, 4 * (p - t) / n + p)


def test_loss_file_source_for_compile(tmp_path, capsys):
    path = tmp_path / "mine.loss"
    path.write_text(PROGRAM, encoding="utf-8")
    out = tmp_path / "gen" / "mine.py"
    assert main(["compile", str(path), "-o", str(out)]) == 0
    capsys.readouterr()
    module = _load(out)
    tv, pv = np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.0, 5.0])
    want = 2 * np.mean((tv - pv) ** 2) + 0.5 * np.sum(pv**2)
    np.testing.assert_allclose(float(module.loss(t=tv, p=pv)), want, rtol=1e-12)
    np.testing.assert_allclose(module.grad(t=tv, p=pv)["p"], 4 * (pv - tv) / 3 + pv, rtol=1e-12)


def test_loss_file_source_in_a_subprocess(tmp_path):
    path = tmp_path / "mine.loss"
    path.write_text(PROGRAM, encoding="utf-8")
    done = _run("grad", str(path), "--wrt", "t")
    assert done.returncode == 0, done.stderr
    assert _equal(done.stdout, -4 * (p - t) / n)


# --- list ------------------------------------------------------------------------------------

def test_list_prints_builtins_and_the_library(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", out))
    builtins = {"exp", "log", "log1p", "expm1", "sqrt", "abs", "sign", "tanh", "cosh", "sigmoid", "softplus",
                "maximum", "minimum", "where", "sum", "mean", "max", "min", "logsumexp", "norm", "matmul", "take",
                "one_hot"}
    library = {"mse", "mae", "huber", "smooth_l1", "quantile", "log_cosh", "l1", "l2", "elastic_net",
               "softmax", "log_softmax", "clip"}
    assert builtins <= words, builtins - words
    assert library <= words, library - words


# --- user errors -----------------------------------------------------------------------------

def test_user_error_in_process(capsys):
    assert main(["grad", "hubr(delta=1)"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "did you mean 'huber'" in err
    assert "<string>:1:1:" in err
    lines = err.splitlines()
    caret = next(i for i, line in enumerate(lines) if line.strip() == "^")
    assert lines[caret - 1].strip() == "hubr(delta=1)"
    assert lines[caret].index("^") == lines[caret - 1].index("hubr")
    assert "Traceback" not in err


def test_user_error_in_a_subprocess():
    done = _run("grad", "hubr(delta=1)")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "did you mean 'huber'" in done.stderr
    lines = done.stderr.splitlines()
    caret = next(i for i, line in enumerate(lines) if line.strip() == "^")
    assert lines[caret].index("^") == lines[caret - 1].index("hubr")
    assert "Traceback" not in done.stderr


def test_error_in_a_loss_file_names_the_file(tmp_path, capsys):
    path = tmp_path / "bad.loss"
    path.write_text("# my loss\nlam = 0.1\nmse(a, b) + l1(w, lam, 3, 4)\n", encoding="utf-8")
    assert main(["compile", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3:24:" in err  # the first extra positional argument
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["compile", "grad"])
def test_nonexistent_loss_file_exits_2(tmp_path, capsys, command):
    missing = tmp_path / "nowhere" / "missing.loss"
    assert main([command, str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip() and "Traceback" not in err
    assert "missing.loss" in err


def test_nonexistent_loss_file_in_a_subprocess():
    done = _run("compile", "does_not_exist.loss")
    assert done.returncode == 2
    assert "does_not_exist.loss" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("argv", [
    ["grad", MSE, "--wrt", "x"],  # not an input
    ["grad", "mean(x", "--wrt", "x"],  # syntax error
    ["compile", "x +* 3"],
    ["compile", MSE, "--backend", "tensorflow"],  # not a backend (argparse)
    ["frobnicate"],  # not a command (argparse)
])
def test_other_user_errors_exit_2(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors exit by themselves
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.strip() and "Traceback" not in err


def test_every_name_in_a_library_gradient_is_explained(capsys):
    """Each function a library loss's gradient formula uses is a builtin, a library definition, or
    one of the names `lossdsl list` explains under "in formulas"."""
    import importlib
    import pkgutil

    import stdlib_rows

    from lossdsl.builtins import BUILTINS
    from lossdsl.cli import IN_FORMULAS
    from lossdsl.formula import At
    cases = [c for i in pkgutil.iter_modules(stdlib_rows.__path__)
             for c in importlib.import_module(f"stdlib_rows.{i.name}").CASES]
    known = set(BUILTINS) | set(lossdsl.library.library()) | {name.split("(")[0] for name, _ in IN_FORMULAS}
    for case in {c.call.split("(")[0]: c for c in cases}.values():
        loss = lossdsl.compile(case.call.format(opts=""))
        for wrt in loss.differentiable:
            # indexing prints as x[...] (At), which `lossdsl list` explains under "syntax"
            used = {type(f).__name__ for f in loss.gradient_formula(wrt).atoms(sp.Function) if not isinstance(f, At)}
            assert used <= known, (case.call, used - known)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name, _ in IN_FORMULAS)


def test_formulas_show_indexing_as_numpy_writes_it(capsys):
    """Positions stay in the formula: x[:, 0] and y[1:, -1], a computed position in place."""
    source = "sum(x[:, 0] * y[1:, -1]) + sum(x[..., 2:5:2]) + sum((x + y)[0])"
    assert main(["grad", source, "--wrt", "y"]) == 0
    out = capsys.readouterr().out
    assert "x[:, 0]" in out and "y[1:, -1]" in out and "(x + y)[0]" in out
    formula = str(lossdsl.compile("sum(x[:, size(x, axis=1) - 1])").gradient_formula("x"))
    assert "x[:, dim(x) - 1]" in formula
    assert r"x\left[:, 0\right]" in sp.latex(lossdsl.compile("sum(x[:, 0]^2)").gradient_formula("x"))
