"""Generated modules as files a user keeps: they run where lossdsl is not installed, come out the same
bytes for the same source (whatever the hash seed or what was computed before), pass ruff, and open
with a docstring that shows the loss and its gradient."""

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

import lossdsl

LOSSES = ["0.5*huber(delta=1) + l1(w, 0.1)", "sparse_cce(from_logits=true, label_smoothing=0.1)",
          "triplet_batch_hard(embeddings, labels, margin=0.3)", "gaussian_nll(y_true, y_pred, var, full=true)",
          "ctc(log_softmax(logits), targets, input_lengths, target_lengths)", "dice(axis=1) + bce(from_logits=true)"]
BACKENDS = ["numpy", "jax", "torch"]


@pytest.fixture(scope="module")
def numpy_only_python(tmp_path_factory):
    """A fresh virtual environment with NumPy (linked in from this one) and nothing else: no lossdsl."""
    root = tmp_path_factory.mktemp("fresh")
    venv.create(root / "venv", with_pip=False)
    python = root / "venv" / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    only = root / "only_numpy"
    only.mkdir()
    numpy_dir = Path(np.__file__).parent
    for name in (numpy_dir.name, numpy_dir.name + ".libs"):
        if (numpy_dir.parent / name).exists():
            (only / name).symlink_to(numpy_dir.parent / name)
    Path(site, "numpy_only.pth").write_text(str(only) + "\n")
    probe = subprocess.run([python, "-c", "import numpy, importlib.util as u; print(u.find_spec('lossdsl'), "
                            "u.find_spec('sympy'))"], capture_output=True, text=True, cwd=root, check=True)
    assert probe.stdout.split() == ["None", "None"]  # the environment really lacks lossdsl (and SymPy)
    return python, root


def _example_inputs(loss, rng):
    shapes = {"w": (3,), "var": (6, 1), "embeddings": (8, 4), "labels": (8,), "logits": (7, 2, 4),
              "targets": (2, 3), "input_lengths": (2,), "target_lengths": (2,)}
    values = {"labels": rng.integers(0, 3, 8), "targets": rng.integers(1, 4, (2, 3)),
              "input_lengths": np.array([7, 5]), "target_lengths": np.array([3, 2])}
    out = {}
    for name in loss.inputs:
        if name in values:
            out[name] = values[name]
        elif name == "y_true" and "sparse_cce" in loss.text:
            out[name] = rng.integers(0, 4, 6)
        elif name in ("y_true", "var"):
            out[name] = rng.uniform(0.1, 0.9, shapes.get(name, (6, 4)))
        else:
            out[name] = rng.normal(size=shapes.get(name, (6, 4)))
    return out


def test_numpy_module_runs_without_lossdsl(numpy_only_python, tmp_path):
    python, root = numpy_only_python
    rng = np.random.default_rng(0)
    for k, text in enumerate(LOSSES):
        loss = lossdsl.compile(text, backend="numpy")
        path = root / f"loss_{k}.py"
        path.write_text(loss.source)
        inputs = _example_inputs(loss, rng)
        np.savez(root / f"inputs_{k}.npz", **inputs)
        script = (f"import json, numpy as np, loss_{k} as m\n"
                  f"x = dict(np.load('inputs_{k}.npz'))\n"
                  "v, g = m.value_and_grad(**x)\n"
                  "assert set(g) == set(m.DIFFERENTIABLE) and set(m.grad(**x)) == set(g)\n"
                  "print(json.dumps({'loss': float(m.loss(**x)), 'value': float(v), "
                  "**{k: np.asarray(a).tolist() for k, a in g.items()}}))\n")
        run = subprocess.run([python, "-E", "-s", "-c", script], capture_output=True, text=True, cwd=root)
        assert run.returncode == 0, run.stderr
        got = json.loads(run.stdout)
        value, grads = loss.value_and_grad(list(loss.differentiable))(**inputs)
        np.testing.assert_allclose([got["loss"], got["value"]], float(value), rtol=1e-12, err_msg=text)
        for name in loss.differentiable:
            np.testing.assert_allclose(got[name], grads[name], rtol=1e-12, atol=1e-15, err_msg=f"{text}: {name}")


def _source_in_fresh_process(text, backend, seed):
    code = ("import sys, lossdsl; l = lossdsl.compile(sys.argv[1], backend=sys.argv[2]); "
            "sys.stdout.write(l.source)")
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    return subprocess.run([sys.executable, "-c", code, text, backend], capture_output=True, text=True, env=env,
                          check=True).stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_source_same_bytes(backend):
    text = LOSSES[0] + " + " + LOSSES[3].replace("y_true, y_pred", "t, p")
    here = lossdsl.compile(text, backend=backend)
    here.grad("w")  # gradients add ops to the loss's graph: the module must not change
    here.hessian_formula("p")
    assert _source_in_fresh_process(text, backend, 1) == _source_in_fresh_process(text, backend, 2) == here.source


def test_generated_modules_are_ruff_clean(tmp_path):
    for backend in BACKENDS:
        for k, text in enumerate(LOSSES):
            (tmp_path / f"{backend}_{k}.py").write_text(lossdsl.compile(text, backend=backend).source)
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"  # a dev dependency
    config = Path(__file__).parents[1] / "pyproject.toml"
    run = subprocess.run([ruff, "check", "--no-cache", "--config", str(config), str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_header_shows_source_and_formulas():
    loss = lossdsl.compile("mean((y_pred - y_true)^2)")
    doc = loss.module.__doc__
    assert "    mean((y_pred - y_true)^2)" in doc
    assert "d/dy_pred = 2*(y_pred - y_true)/n" in doc.replace("(-y_true + y_pred)", "(y_pred - y_true)")
    tricky = lossdsl.compile('mse()  # a comment with """ quotes and \\ a backslash')
    assert tricky.module.__doc__.startswith("Loss and gradient generated by lossdsl")
    assert tricky.module.SOURCE == tricky.text
