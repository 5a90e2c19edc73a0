"""The lossdsl command: compile, grad, list; user errors exit 2 with the message, never a traceback."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import lossdsl
from lossdsl.cli import main

CARD = "0.5*huber(delta=1) + l1(w, 0.1)"


def _load(path):
    spec = importlib.util.spec_from_file_location(f"generated_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grad_prints_the_formula(capsys):
    assert main(["grad", "mean((y_pred - y_true)^2)", "--wrt", "y_pred"]) == 0
    printed = capsys.readouterr().out.strip()
    y_pred, y_true, n = sp.symbols("y_pred y_true n")
    assert sp.simplify(sp.sympify(printed) - 2 * (y_pred - y_true) / n) == 0  # our own output, in a test


def test_grad_latex(capsys):
    assert main(["grad", "examples/multitask.loss", "--wrt", "w", "--latex"]) == 0
    out = capsys.readouterr().out
    assert "\\operatorname{matmul}" in out and "\\frac" in out


def test_grad_of_every_input(capsys):
    assert main(["grad", CARD]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines()] == ["d/dy_true", "d/dy_pred", "d/dw"]


@pytest.mark.parametrize("backend, imports", [("numpy", {"import numpy as np"}),
                                              ("jax", {"import jax", "import jax.numpy as jnp"})])
def test_compile_writes_a_standalone_module(tmp_path, backend, imports, capsys):
    out = tmp_path / "pkg" / f"loss_{backend}.py"
    assert main(["compile", CARD, "--backend", backend, "-o", str(out)]) == 0
    source = out.read_text()
    assert {line for line in source.splitlines() if line.startswith(("import", "from"))} == imports
    module = _load(out)
    rng = np.random.default_rng(0)
    inputs = {"y_true": rng.normal(size=5), "y_pred": rng.normal(size=5), "w": rng.normal(size=3)}
    reference = lossdsl.compile(CARD, backend=backend)
    assert module.INPUTS == reference.inputs
    np.testing.assert_allclose(module.loss(**inputs), reference(**inputs), rtol=1e-6)
    grads = module.grad(**inputs)
    want = reference.grad(list(reference.differentiable))(**inputs)
    for name in want:
        np.testing.assert_allclose(grads[name], want[name], rtol=1e-6)


def test_compile_to_stdout_is_deterministic(capsys):
    assert main(["compile", CARD]) == 0
    first = capsys.readouterr().out
    assert main(["compile", CARD]) == 0
    assert capsys.readouterr().out == first and first.startswith('"""')


def test_loss_file_source(tmp_path, capsys):
    path = tmp_path / "mine.loss"
    path.write_text("def sq(a, b):\n    \"\"\"Squared error.\"\"\"\n    return mean((a - b)^2)\n\nsq(t, p) + l2(p)\n")
    assert main(["grad", str(path), "--wrt", "p"]) == 0
    assert "n" in capsys.readouterr().out


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("where", "logsumexp", "huber", "mse", "l1", "softmax"):
        assert name in out


@pytest.mark.parametrize("argv, fragment", [
    (["grad", "hubr(delta=1)"], "did you mean 'huber'"),
    (["compile", "missing_file.loss"], "no such file"),
    (["grad", "mean(x", "--wrt", "x"], "unexpected end of input"),
    (["grad", "mean(x)", "--wrt", "y"], "not an input"),
    (["compile", "x", "--backend", "torch"], "invalid choice"),
])
def test_user_errors_exit_2_without_traceback(argv, fragment):
    done = subprocess.run([sys.executable, "-m", "lossdsl", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert fragment in done.stderr and "Traceback" not in done.stderr
