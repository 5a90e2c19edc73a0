"""Compile time against the size of the source: compile + first gradient of long products and sums,
the compile time of every stdlib loss, and the time each limit takes to refuse a source just over it.

    python benchmarks/compile_time.py [--quick] [--out docs/performance.md]

Each case runs in a fresh process (the standard library loaded and one small loss compiled first,
so that what is timed is the case itself) with a time limit. Prints the tables and writes them as
the section "Compile time" of ``--out``, between markers, leaving the rest of the file as it is.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from doc_sections import write_section  # noqa: E402

# compile + grad of all inputs, called once on small arrays, in a fresh process
_CASE = r"""
import json, sys, time
import numpy as np
import lossdsl
lossdsl.compile("mse(y, p)").source
src = sys.stdin.read()
t = time.perf_counter()
loss = lossdsl.compile(src)
loss.grad(list(loss.inputs))(**{name: np.full(3, 0.5) for name in loss.inputs})
print(json.dumps(time.perf_counter() - t))
"""

# stdlib losses (every one, or the first k read from stdin), warm: the library loaded, and every
# cache on the way from a source to its module cleared (compiled.clear_caches)
_STDLIB = r"""
import json, sys, time
import lossdsl
from lossdsl.compiled import clear_caches
lib = lossdsl.library.library()
calls = {name: f"{name}({', '.join('in_' + p.name for p in d.params if p.default is None)})"
         for name, d in lib.items() if name not in ("reduce", "clip", "softmax", "log_softmax")}
calls = dict(list(calls.items())[:json.loads(sys.stdin.read() or "null")])
for c in calls.values():
    lossdsl.compile(c).source
warm = {}
for name, c in calls.items():
    clear_caches()
    t = time.perf_counter()
    lossdsl.compile(c).source
    warm[name] = time.perf_counter() - t
print(json.dumps(warm))
"""

# the smallest size k at which a family of sources is refused, and the time that refusal takes
_LIMIT = r"""
import json, sys, time
sys.path.insert(0, "benchmarks")
import lossdsl
from lossdsl.errors import LimitError
from compile_time import FAMILIES
lossdsl.compile("mse(y, p)").source
family, lo, hi, fragment = json.loads(sys.stdin.read())
source = FAMILIES[family]

def refused(k):
    lossdsl.compiled._compile.cache_clear()
    t = time.perf_counter()
    try:
        loss = lossdsl.compile(source(k))
        loss.grad(list(loss.differentiable)) if loss.differentiable else loss.source
    except LimitError as e:
        if fragment not in e.message:
            raise AssertionError(f"k={k}: another limit: {e.message}") from None
        return time.perf_counter() - t, e.message
    return None

assert refused(hi) is not None, f"k={hi} is not refused"
while lo + 1 < hi:  # refused at hi, not at lo
    mid = (lo + hi) // 2
    if refused(mid) is None:
        lo = mid
    else:
        hi = mid
seconds, message = refused(hi)
print(json.dumps([hi, seconds, message]))
"""


def _chain(step: str, first: str = "x") -> Callable[[int], str]:
    """k bindings, each ``step`` applied to the one before ("@")."""
    return lambda k: f"a0 = {first}\n" + "\n".join(
        f"a{i} = " + step.replace("@", f"a{i - 1}") for i in range(1, k + 1)) + f"\nmean(a{k})"


def _definitions(body: str) -> Callable[[int], str]:
    """k definitions, each calling the one before ("@") in ``body``."""
    return lambda k: "def f0(a):\n    return exp(a)\n" + "\n".join(
        f"def f{i}(a):\n    return " + body.replace("@", f"f{i - 1}") for i in range(1, k + 1)) + f"\nmean(f{k}(x))"


FAMILIES: dict[str, Callable[[int], str]] = {
    "2^k calls": _definitions("@(a) + @(a)"),
    "k nested calls of 8 negations": _definitions("-(" * 8 + "@(a)" + ")" * 8),
    "k bindings a = a*a + a": _chain("@*@ + @"),
    "k bindings a = exp(a)": _chain("exp(@)"),
    "x^k": lambda k: f"mean(x^{k})",
    "k squarings of 1.0000001 x": _chain("@*@", "1.0000001 * x"),
    "k parentheses": lambda k: "mean(" + "(" * k + "x" + ")" * k + ")",
    "k characters": lambda k: "mean(x)" + " " * k,
    "sum of k inputs": lambda k: " + ".join(f"x{i}" for i in range(k)),
}

# (limit, its value, family, a k not refused, a k refused, a fragment of the limit's own message)
LIMITS = [
    ("limits.MAX_EVALUATIONS", "20,000", "2^k calls", 1, 30, "expands to more than"),
    ("limits.MAX_EVAL_DEPTH", "250", "k nested calls of 8 negations", 1, 60, "are inlined"),
    ("limits.MAX_EXPR_NODES", "20,000", "k bindings a = a*a + a", 1, 40, "larger than"),
    ("limits.MAX_EXPR_DEPTH", "80", "k bindings a = exp(a)", 1, 200, "names and definitions are substituted"),
    ("limits.MAX_EXPONENT", "1,000", "x^k", 1, 10**6, "exponent"),
    ("limits.MAX_NUMBER_BITS", "4,096", "k squarings of 1.0000001 x", 0, 40, "bits"),
    ("parser.MAX_DEPTH", "200", "k parentheses", 1, 10_000, "parentheses nested"),
    ("parser.MAX_SOURCE_CHARS", "200,000", "k characters", 1, 10**6, "longer than"),
    ("ir.MAX_OPS", "5,000", "sum of k inputs", 2000, 3000, "tensor operations"),
]


def _run(code: str, stdin: str, timeout: float) -> object | None:
    """The JSON that ``code`` prints in a fresh process, or None past ``timeout`` seconds."""
    try:
        out = subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True, text=True,
                             timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        return None
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


SHAPES: dict[str, Callable[[int], str]] = {
    "product of N distinct tanh factors": lambda n: " * ".join(f"tanh(x{i})" for i in range(1, n + 1)),
    "product of N inputs": lambda n: " * ".join(f"x{i}" for i in range(1, n + 1)),
    "sum of N inputs": lambda n: " + ".join(f"x{i}" for i in range(1, n + 1)),
}


def growth(sizes: list[tuple[int, float | None]]) -> float | None:
    """The exponent b of a least-squares fit t = a N^b over the measured sizes."""
    pts = [(math.log(n), math.log(t)) for n, t in sizes if t]
    if len(pts) < 2:
        return None
    mx, my = statistics.fmean(p[0] for p in pts), statistics.fmean(p[1] for p in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def _seconds(t: float | None, timeout: float) -> str:
    return f"> {timeout:g}" if t is None else f"{t:.2f}"


def report(quick: bool, timeout: float) -> str:
    products, sums = ((5, 10, 20), (20, 40)) if quick else ((25, 50, 100, 200), (250, 500, 1000, 2000))
    lines = ["## Compile time", "",
             f"Generated by `python benchmarks/compile_time.py{' --quick' if quick else ''}` on {datetime.date.today()}; "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}. "
             "Seconds for `lossdsl.compile(src)` and then `.grad(all inputs)` called once on arrays of 3 elements, "
             f"each in a fresh process with the library loaded; a case stopped after {timeout:g} s shows `> {timeout:g}`. "
             "Targets: each at most 2 s for 200 factors and for 2,000 terms.", "",
             "| source | N | seconds | source chars |", "|---|---|---|---|"]
    exponents = []
    for shape, sizes in (("product of N distinct tanh factors", products), ("product of N inputs", products),
                         ("sum of N inputs", sums)):
        times = []
        for n in sizes:
            src = SHAPES[shape](n)
            t = _run(_CASE, src, timeout)
            times.append((n, t))
            lines.append(f"| {shape} | {n} | {_seconds(t, timeout)} | {len(src)} |")
            print(lines[-1], flush=True)
        b = growth(times)
        exponents.append(f"{shape}: N^{b:.2f}" if b is not None else f"{shape}: –")
    lines += ["", "Fitted growth (t = a N^b over the sizes above): " + "; ".join(exponents) + ".", ""]

    warm = _run(_STDLIB, json.dumps(20 if quick else None), 20 * timeout) or {}  # quick: the first 20
    if warm:
        worst = max(warm, key=warm.get)
        lines += [f"Stdlib, warm (every cache from source to module cleared before each; parse to printed "
                  f"module): {len(warm)} losses, median {statistics.median(warm.values()) * 1e3:.0f} ms, slowest "
                  f"{worst} {warm[worst] * 1e3:.0f} ms.", ""]
    lines += ["| limit | value | smallest refused source | seconds to refuse | message |", "|---|---|---|---|---|"]
    for name, value, family, lo, hi, fragment in LIMITS:
        lo = hi - 1 if quick else lo  # quick: only that the largest is refused, and how fast
        found = _run(_LIMIT, json.dumps([family, lo, hi, fragment]), 10 * timeout)
        k, t, message = found if found else ("–", None, "–")
        lines.append(f"| {name} | {value} | {family}: {k} | {_seconds(t, 10 * timeout)} | {message.splitlines()[0]} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before a case is stopped")
    ap.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    args = ap.parse_args(argv)
    section = report(args.quick, args.timeout)
    print(section)
    write_section(Path(args.out), "compile_time", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
