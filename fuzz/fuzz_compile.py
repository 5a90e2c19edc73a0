"""Fuzz ``lossdsl.compile`` (and the generation of its module) for minutes at a time.

    python fuzz/fuzz_compile.py --minutes 5 [--seed N]

Hypothesis draws random token sequences and random edits (insertions, deletions, replacements of
characters and tokens) of the standard library's programs, the same strategies as the quick
fuzz tests in ``tests/test_hostile.py``, many more times. Only ``LossDSLError`` may escape, and
every compile must finish within ``--seconds``. Each failure is printed and written to
``fuzz/crashes/``; fix it, then keep its source as a row of ``REGRESSIONS`` in tests/test_hostile.py.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lossdsl  # noqa: E402
from tests.test_hostile import EDITS, PROGRAMS, TOKENS, _mutate  # noqa: E402

CRASHES = Path(__file__).resolve().parent / "crashes"


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def run_one(source: str, seconds: float, found: list[str]) -> None:
    """Compile fully; record anything but a LossDSLError, and anything slower than ``seconds``."""
    lossdsl.pipeline._compile.cache_clear()  # a cached result would hide a slow compile
    signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.perf_counter()
    try:
        for backend in ("numpy", "jax"):
            assert lossdsl.compile(source, backend=backend).source
    except lossdsl.LossDSLError:
        pass
    except Hang:
        _record(source, f"took longer than {seconds} s", found)
    except Exception:  # noqa: BLE001 - this is what we are looking for
        _record(source, traceback.format_exc(), found)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if time.perf_counter() - start > seconds:
        _record(source, f"took {time.perf_counter() - start:.1f} s", found)


def _record(source: str, why: str, found: list[str]) -> None:
    CRASHES.mkdir(exist_ok=True)
    name = hashlib.sha256(source.encode()).hexdigest()[:12]
    (CRASHES / f"{name}.txt").write_text(f"{why}\n---- source (repr) ----\n{source!r}\n", encoding="utf-8")
    found.append(source)
    print(f"\n== crash {name}: {why.strip().splitlines()[-1]}\n{source!r}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--seconds", type=float, default=20.0, help="time bound for one compile (both backends)")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    signal.signal(signal.SIGALRM, _alarm)
    sys.setrecursionlimit(1000)  # Python's default: our limits must speak before it does
    deadline = time.monotonic() + 60 * args.minutes
    found: list[str] = []
    runs = 0
    strategies = [
        st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join),
        st.tuples(st.sampled_from(PROGRAMS), EDITS).map(lambda pe: _mutate(*pe)),
        st.lists(st.sampled_from(TOKENS) | st.text(max_size=3), max_size=60).map("".join),
    ]
    batch = settings(max_examples=200, deadline=None, database=None, derandomize=False,
                      suppress_health_check=list(HealthCheck))
    while time.monotonic() < deadline:
        for strategy in strategies:
            @batch
            @given(strategy)
            def fuzz(source: str) -> None:
                if time.monotonic() < deadline:
                    run_one(source, args.seconds, found)
            fuzz()
            runs += 1
        print(f"[{time.monotonic() - deadline + 60 * args.minutes:.0f} s] {200 * runs} programs, "
              f"{len(found)} crashes", flush=True)
    print(f"done: {len(found)} crashes" + (f", written to {CRASHES}" if found else ""))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
