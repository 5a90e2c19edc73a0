"""Every example runs: scripts exit cleanly, and every .loss program compiles and differentiates."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import lossdsl

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_script_runs(script, tmp_path):
    text = script.read_text()
    assert ast.get_docstring(ast.parse(text)), f"{script.name} needs a title docstring"
    # figures go to the folder an example names under LOSSDSL_EXAMPLES_OUT, here a temporary one
    env = {**os.environ, "LOSSDSL_EXAMPLES_OUT": str(tmp_path / "out")}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    if "savefig" in text:
        figures = list((tmp_path / "out").glob("*/*.png"))
        assert figures and all(f.read_bytes().startswith(b"\x89PNG") for f in figures), figures


@pytest.mark.parametrize("program", sorted(EXAMPLES.glob("*.loss")), ids=lambda p: p.name)
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_loss_file_compiles(program, backend):
    loss = lossdsl.compile(str(program), backend=backend)
    assert loss.inputs and loss.differentiable
    assert "def value_and_grad" in loss.source
    for name in loss.differentiable:
        assert loss.gradient_formula(name).free_symbols
