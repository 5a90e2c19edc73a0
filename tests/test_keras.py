"""lossdsl.keras on each Keras backend it supports, each in a fresh process (Keras reads KERAS_BACKEND once).

The cases themselves are in ``tests/keras_cases.py``: values against Keras's own losses with and without
sample_weight, training trajectories, save and load, rank matching and errors.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(code_or_args: list[str], backend: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend}
    return subprocess.run([sys.executable, *code_or_args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_backend(backend):
    done = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
                 "tests/keras_cases.py"], backend)
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-4000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]


def test_import_lossdsl_does_not_import_keras():
    done = _run(["-c", "import sys, lossdsl; lossdsl.compile('mse()'); print('keras' in sys.modules)"], "jax")
    assert done.stdout.strip() == "False", done.stderr


def test_tensorflow_backend_is_refused_clearly():
    """Keras's default backend, TensorFlow, is not one lossdsl compiles for (and is not installed here)."""
    code = ("from lossdsl.errors import LossDSLError\n"
            "try:\n"
            "    from lossdsl.keras import Loss\n"
            "    Loss('mse()')\n"
            "except (ImportError, LossDSLError) as e:\n"
            "    print(type(e).__name__, e)\n")
    done = _run(["-c", code], "tensorflow")
    assert done.returncode == 0, done.stderr
    assert "JAX and torch backends" in done.stdout and "KERAS_BACKEND=jax" in done.stdout, done.stdout
