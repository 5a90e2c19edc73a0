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


def test_compile_time_benchmark_writes_its_section(tmp_path):
    out = tmp_path / "performance.md"
    out.write_text("# Performance\n\nbench.py's tables\n")
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compile_time.py"), "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    assert text.startswith("# Performance\n\nbench.py's tables\n")
    for row in ("| product of N distinct tanh factors | 20 |", "| sum of N inputs | 40 |", "Fitted growth",
                "Stdlib, warm", "| limits.MAX_EXPR_DEPTH |", "| limits.MAX_EVALUATIONS |", "| ir.MAX_OPS |"):
        assert row in text


def test_marked_sections_are_replaced_not_repeated_and_kept_by_the_others(tmp_path):
    """Each benchmark's section of docs/performance.md is replaced where it stands; bench.py, which
    rewrites the head, keeps every marked section."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from doc_sections import sections, write_section

    out = tmp_path / "performance.md"
    out.write_text("# Performance\n\nbench.py's tables\n")
    write_section(out, "compile_time", "## Compile time\n\nfirst")
    write_section(out, "boosting", "## Gradient-boosting objectives\n\nboosted")
    write_section(out, "compile_time", "## Compile time\n\nsecond")
    text = out.read_text()
    assert text.startswith("# Performance\n\nbench.py's tables\n")
    assert text.count("## Compile time") == 1 and "second" in text and "first" not in text
    assert [s.splitlines()[1] for s in sections(text)] == ["## Compile time", "## Gradient-boosting objectives"]
    assert [s.splitlines()[1] for s in sections((ROOT / "docs" / "performance.md").read_text())] == [
        "## Compile time", "## Gradient-boosting objectives", "## PyTorch training step"]


def test_the_tracked_report_is_written_only_when_asked():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--help"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    text = " ".join(run.stdout.split())
    assert "default: " + str(ROOT / "build" / "performance.md") in text and "--write-docs" in text


def test_torch_step_benchmark_writes_its_table(tmp_path):
    """The torch training-step benchmark on a tiny batch: it checks each lossdsl loss against the
    hand-written one before timing, and writes its table (no timing assertions)."""
    out = tmp_path / "torch_step.md"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "torch_step.py"), "--batch", "64", "--steps", "2",
                          "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    for row in ("| mse |", "| huber |", "| bce_logits |", "| cce_logits |", "| focal_logits |"):
        assert row in text
