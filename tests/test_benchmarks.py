"""The benchmark script runs end to end on tiny sizes and writes its table (no timing assertions)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_writes_table(tmp_path):
    out = tmp_path / "performance.md"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--repeat", "1",
                          "--only", "mse,cce_logits,bce_prob", "--out", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    for row in ("| mse |", "| cce_logits |", "| bce_prob |"):
        assert row in text
    assert "jaxpr eqns ours / jax.grad" in text and "geometric-mean speed-up" in text
    assert "whole library cold" in text and "`import lossdsl`" in text
    assert "## Targets in this run" in text and "met by" in text
