"""A non-editable install works: the wheel ships grammar/ and stdlib/ inside the package, and an
install of it runs from a directory that is not the repository."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_grammar_and_stdlib_and_runs_outside_the_repo(tmp_path):
    dist, target, elsewhere = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(dist), str(ROOT)], check=True, timeout=300, capture_output=True)
    (wheel,) = dist.glob("lossdsl-*.whl")

    with zipfile.ZipFile(wheel) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert "lossdsl/grammar/lossdsl.lark" in names
        assert zf.read("lossdsl/grammar/lossdsl.lark") == (ROOT / "grammar" / "lossdsl.lark").read_bytes()
        shipped = {n.rsplit("/", 1)[-1] for n in names if n.startswith("lossdsl/stdlib/") and n.endswith(".loss")}
        assert {"core.loss", "regression.loss", "regularization.loss"} <= shipped
        assert shipped == {q.name for q in (ROOT / "stdlib").glob("*.loss")}
        assert "lossdsl/__init__.py" in names and "lossdsl/cli.py" in names

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, timeout=300, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}

    code = (
        "import pathlib, sys\n"
        "import numpy as np\n"
        "import lossdsl\n"
        f"target = pathlib.Path({str(target)!r}).resolve()\n"
        "assert pathlib.Path(lossdsl.__file__).resolve().is_relative_to(target), lossdsl.__file__\n"
        "loss = lossdsl.compile('0.5*huber(delta=1) + l1(w, 0.1)')\n"
        "assert set(loss.inputs) == {'y_true', 'y_pred', 'w'}, loss.inputs\n"
        "value = float(loss(y_true=np.zeros(4), y_pred=np.array([0.5, -0.5, 3.0, -2.0]), w=np.array([1.0, -2.0])))\n"
        "print(repr(value))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    # Huber(delta=1) of residuals 0.5, -0.5, 3, -2: 0.125, 0.125, 2.5, 1.5; mean 1.0625.
    # 0.5 * 1.0625 + 0.1 * (|1| + |-2|) = 0.53125 + 0.3
    assert abs(float(done.stdout) - (0.5 * 1.0625 + 0.3)) < 1e-12

    listed = subprocess.run([sys.executable, "-m", "lossdsl", "list"], cwd=elsewhere, env=env, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    for name in ("where", "logsumexp", "huber", "mse", "l1"):
        assert name in listed.stdout

    # the installed package, not the checkout, is what ran
    which = subprocess.run([sys.executable, "-c", "import lossdsl.cli, sys; print(lossdsl.cli.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert Path(which.stdout.strip()).resolve().is_relative_to(target.resolve())
