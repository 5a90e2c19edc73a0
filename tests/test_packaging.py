"""A non-editable install works: grammar/ and stdlib/ ship inside the wheel and load from there."""

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
                    "-w", str(dist), str(ROOT)], check=True, timeout=300)
    (wheel,) = dist.glob("lossdsl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lossdsl/grammar/lossdsl.lark" in names
    shipped = {n.split("/")[-1] for n in names if n.startswith("lossdsl/stdlib/")}
    assert shipped == {p.name for p in (ROOT / "stdlib").glob("*.loss")}
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = (
        "import lossdsl, pathlib, numpy as np\n"
        f"assert pathlib.Path(lossdsl.__file__).is_relative_to({str(target)!r}), lossdsl.__file__\n"
        "from lossdsl.resources import data_dir\n"
        f"assert str(data_dir('stdlib')).startswith({str(target)!r})\n"
        "loss = lossdsl.compile('0.5*huber(delta=1) + l1(w, 0.1)')\n"
        "print(float(loss(y_true=np.zeros(3), y_pred=np.ones(3), w=np.ones(2))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == 0.5 * 0.5 + 0.1 * 2
    listed = subprocess.run([sys.executable, "-m", "lossdsl", "list"], cwd=elsewhere, env=env, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0 and "huber" in listed.stdout
