"""Time of ``lossdsl.analyze``: products of 20 distinct elementwise factors (several shapes) and
every stdlib loss in the selection guide, each analysed once, from its source text.

    python benchmarks/analysis_time.py

Prints wall-clock and CPU seconds per case (CPU time is the steadier figure on a shared machine).
The target (issue 13) is at most 2 s for a 20-factor product on the 2-core development machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sympy as sp  # noqa: E402

import lossdsl  # noqa: E402
from lossdsl.analysis import GUIDE_LOSSES  # noqa: E402

N = 20
_FNS = ("tanh", "sigmoid", "softplus", "exp", "abs", "log1p")
PRODUCTS = {
    "tanh(x_i), 20 inputs": "mean(" + "*".join(f"tanh(x{i})" for i in range(N)) + ")",
    "mixed f_i(x_i), 20 inputs": "mean(" + "*".join(f"{_FNS[i % len(_FNS)]}(x{i})" for i in range(N)) + ")",
    "(y_pred - x_i), 21 inputs": "mean(" + "*".join(f"(y_pred - x{i})" for i in range(N)) + ")",
    "tanh(y_pred*x_i), 21 inputs": "mean(" + "*".join(f"tanh(y_pred*x{i})" for i in range(N)) + ")",
    "tanh(y_pred + i), 1 input": "mean(" + "*".join(f"tanh(y_pred + {i})" for i in range(N)) + ")",
}


def analyze_cases(cases: dict[str, str] | None = None) -> list[tuple[str, float, float]]:
    """``(label, wall seconds, CPU seconds)`` of one cold ``analyze`` per case (each source is new
    to the caches; SymPy's own cache is cleared before each), printed as they finish."""
    if cases is None:
        cases = {**{f"product: {k}": v for k, v in PRODUCTS.items()},
                 **{s: s for sources in GUIDE_LOSSES.values() for s in sources}}
    lossdsl.analyze("mean(x)")  # imports and the stdlib's first load, outside the timings
    out = []
    for label, source in cases.items():
        sp.core.cache.clear_cache()
        wall, cpu = time.perf_counter(), time.process_time()
        lossdsl.analyze(source)
        out.append((label, time.perf_counter() - wall, time.process_time() - cpu))
        print(f"{label:<40} {out[-1][1]:8.2f} s {out[-1][2]:8.2f} s CPU", flush=True)
    return out


if __name__ == "__main__":
    results = analyze_cases()
    guide = [r for r in results if not r[0].startswith("product")]
    print(f"{'selection guide, all ' + str(len(guide)):<40} {sum(r[1] for r in guide):8.2f} s "
          f"{sum(r[2] for r in guide):8.2f} s CPU")
