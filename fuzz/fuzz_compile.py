"""Fuzz ``lossdsl.compile`` (and the generation of its module) for minutes at a time.

    python fuzz/fuzz_compile.py --minutes 5 [--mode text|sizes|threads|cli] [--seed N]

``text`` (the default): Hypothesis draws random token sequences and random edits (insertions,
deletions, replacements of characters and tokens) of the standard library's programs, the same
strategies as the quick fuzz tests in ``tests/test_hostile.py``, many more times. ``sizes``: programs
of large but legal size, each just inside or just outside one limit (terms, nesting, definitions
inlined, inputs, bindings, exponents), which must compile or raise a ``LimitError``. ``threads``:
threads compile, call and differentiate random library losses at once, with Python switching threads
every microsecond and the compile cache cleared between rounds; every result must equal a
single-threaded run's, bit for bit. ``cli``: random command lines of ``lossdsl`` (verbs, drawn or
mutated sources, options and output paths), which must exit 0 or 2 and never report an internal error.

Only ``LossDSLError`` may escape, and every compile must finish within ``--seconds``. Each failure is
printed and written to ``fuzz/crashes/``; fix it, then keep its source as a row of ``REGRESSIONS`` in
tests/test_hostile.py.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import pkgutil
import random
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # test_hostile's own imports (oracles, stdlib_rows)

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lossdsl  # noqa: E402
from lossdsl import limits  # noqa: E402
from lossdsl.compiled import _compile  # noqa: E402
from lossdsl.parser import MAX_DEPTH, MAX_SOURCE_CHARS  # noqa: E402
from lossdsl.resolve import MAX_CALL_DEPTH  # noqa: E402
from tests.test_hostile import (  # noqa: E402
    CLI_OPTIONS,
    CLI_SOURCES,
    CLI_VERBS,
    EDITS,
    PROGRAMS,
    TOKENS,
    _cli_argv,
    _mutate,
    run_cli,
)

CRASHES = Path(__file__).resolve().parent / "crashes"


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def run_one(source: str, seconds: float, found: list[str]) -> None:
    """Compile fully; record anything but a LossDSLError, and anything slower than ``seconds``."""
    _compile.cache_clear()  # a cached result would hide a slow compile
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
    shown = repr(source) if len(source) <= 300 else repr(source[:300]) + f" ... ({len(source)} characters)"
    print(f"\n== crash {name}: {why.strip().splitlines()[-1]}\n{shown}", flush=True)


# --- sizes: programs at the edges of the limits ---------------------------------------------------

def _sized(rng: random.Random) -> str:
    """A program of one shape, sized at a random point near its limit (inside or just beyond)."""
    def near(limit: int) -> int:
        return max(1, int(limit * rng.uniform(0.5, 1.1)))
    shape = rng.choice(["terms", "nesting", "calls", "inputs", "bindings", "exponent", "defs", "source"])
    if shape == "terms":  # a sum of many distinct terms
        return " + ".join(f"{rng.choice(['exp', 'tanh', 'abs'])}(x*{k})" for k in range(near(limits.MAX_EXPR_NODES // 6)))
    if shape == "nesting":
        d = near(MAX_DEPTH)
        return "(" * d + "x" + ")" * d
    if shape == "calls":  # functions calling one another, one level each
        n = near(MAX_CALL_DEPTH)
        defs = ["def f0(a):\n    return a^2"] + [f"def f{i}(a):\n    return f{i - 1}(a) + 1" for i in range(1, n)]
        return "\n".join(defs) + f"\nmean(f{n - 1}(x))"
    if shape == "inputs":
        return "mean(" + " + ".join(f"x{k}" for k in range(near(600))) + ")"
    if shape == "bindings":
        n = near(limits.MAX_EXPR_DEPTH)
        return "a0 = x\n" + "\n".join(f"a{i} = tanh(a{i - 1})" for i in range(1, n)) + f"\nmean(a{n - 1})"
    if shape == "exponent":
        return f"mean(x^{near(limits.MAX_EXPONENT)})"
    if shape == "defs":  # a definition used many times over
        return "def f(a):\n    return a*log1p(a^2)\n" + "mean(" + " + ".join(f"f(x*{k})" for k in range(near(400))) + ")"
    return "mean(x" + " + x" * near(MAX_SOURCE_CHARS // 4) + ")"


def run_sized(rng: random.Random, seconds: float, found: list[str]) -> None:
    source = _sized(rng)
    _compile.cache_clear()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        assert lossdsl.compile(source).source
    except lossdsl.LossDSLError as e:
        if not isinstance(e, lossdsl.errors.LimitError):
            _record(source, f"{type(e).__name__} where a LimitError or a module was expected: {e}", found)
    except Hang:
        _record(source, f"took longer than {seconds} s", found)
    except Exception:  # noqa: BLE001
        _record(source, traceback.format_exc(), found)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


# --- threads: shared compiled losses under interleaving ---------------------------------------------

def _cases() -> list:
    rows = importlib.import_module("stdlib_rows")
    return [c for info in pkgutil.iter_modules(rows.__path__)
            for c in importlib.import_module(f"stdlib_rows.{info.name}").CASES]


def _work(case, backend: str) -> tuple:
    loss = lossdsl.compile(case.call.format(opts=""), backend=backend)
    inputs = case.sample()
    value, grads = loss.value_and_grad(list(case.wrt))(**inputs)
    return (np.asarray(value).tobytes(), *(np.asarray(grads[n]).tobytes() for n in case.wrt))


def run_threads(rng: random.Random, cases: list, baseline: dict, found: list[str], threads: int = 8) -> None:
    """One round: ``threads`` threads each run a random list of (case, backend) items at once, from
    an empty compile cache; any result unlike the baseline, or any exception, is a failure."""
    _compile.cache_clear()
    plans = [[(rng.choice(cases), rng.choice(["numpy", "jax"])) for _ in range(6)] for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def worker(plan):
        barrier.wait()
        for case, backend in plan:
            try:
                got = _work(case, backend)
            except Exception:  # noqa: BLE001
                _record(f"{case.call} [{backend}, threads]", traceback.format_exc(), found)
                continue
            if got != baseline.setdefault((case.id, backend), got):
                _record(f"{case.call} [{backend}, threads]", "differs from the single-threaded result", found)

    pool = [threading.Thread(target=worker, args=(plan,)) for plan in plans]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def run_cli_mode(deadline: float) -> int:
    """Command lines until ``deadline``: anything but exit status 0 or 2 without "internal error" is a crash."""
    found: list[str] = []
    runs = 0
    batch = settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    while time.monotonic() < deadline:
        @batch
        @given(CLI_VERBS, CLI_SOURCES | st.tuples(st.sampled_from(PROGRAMS), EDITS).map(lambda pe: _mutate(*pe)),
               CLI_OPTIONS)
        def fuzz(verb: str, source: str, options: list[str]) -> None:
            if time.monotonic() >= deadline:
                return
            with tempfile.TemporaryDirectory() as folder:
                argv = _cli_argv(verb, source, options, folder)
                status, err = run_cli(argv, folder)
            if status not in (0, 2) or "internal error" in err or "Traceback" in err:
                _record(repr(argv), f"exit status {status}: {err.strip()}", found)
        fuzz()
        runs += 100
        print(f"{runs} command lines, {len(found)} crashes", flush=True)
    print(f"done: {len(found)} crashes" + (f", written to {CRASHES}" if found else ""))
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--mode", choices=("text", "sizes", "threads", "cli"), default="text")
    p.add_argument("--seconds", type=float, default=20.0, help="time bound for one compile (both backends)")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    signal.signal(signal.SIGALRM, _alarm)
    sys.setrecursionlimit(1000)  # Python's default: our limits must speak before it does
    deadline = time.monotonic() + 60 * args.minutes
    found: list[str] = []
    rng = random.Random(args.seed)
    if args.mode == "sizes":
        runs = 0
        while time.monotonic() < deadline:
            run_sized(rng, args.seconds, found)
            runs += 1
        print(f"done: {runs} programs, {len(found)} crashes")
        return 1 if found else 0
    if args.mode == "threads":
        cases, baseline, rounds = _cases(), {}, 0
        for case in cases:  # the single-threaded results, computed first
            for backend in ("numpy", "jax"):
                baseline[(case.id, backend)] = _work(case, backend)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            while time.monotonic() < deadline:
                run_threads(rng, cases, baseline, found)
                rounds += 1
        finally:
            sys.setswitchinterval(switch)
        print(f"done: {rounds} rounds of 8 threads, {len(found)} failures")
        return 1 if found else 0
    if args.mode == "cli":
        return run_cli_mode(deadline)
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
