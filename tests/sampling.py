"""Sampling of the big tables' cross products, with the same coverage per loss.

A table row (a library loss, say) is checked along several axes at once: backend, reduction, dtype.
The full product of those axes, for every row, is most of the suite's time, and most of it repeats
work: a loss that is right in float32 on NumPy and in float64 on JAX is rarely wrong only in float32
on JAX. So each row gets a *covering* subset of the product: every value of every axis at least
once for that row (every backend, every reduction, every dtype; every check keeps all its rows),
and which combinations fill it is a seeded shuffle per row, so that over the table every
combination of values is visited too. The (row, run, dtype) tables of the language's constructs
(``sampled``) go further: each row sees every dtype and two runs, and every run and (run, dtype)
pair is visited over the table. The choice is deterministic (xdist's workers must collect the
same tests); ``LOSSDSL_TEST_ROTATION=k`` rotates it to other combinations, and
``LOSSDSL_FULL_TABLES=1`` runs the whole product.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Sequence
from typing import Any


def _full() -> bool:
    return os.environ.get("LOSSDSL_FULL_TABLES", "") not in ("", "0")


def _rng(row_id: str) -> random.Random:
    # a str seed is hashed with SHA-512, the same in every process (hash() of a str is salted)
    return random.Random(f"{row_id}/{os.environ.get('LOSSDSL_TEST_ROTATION', '0')}")


def one_of(row_id: str, values: Sequence[Any]) -> list[Any]:
    """One of ``values`` for the row ``row_id``, by a seeded draw (all of them under
    LOSSDSL_FULL_TABLES): for a check whose every value another check of the row already covers."""
    return list(values) if _full() else [_rng(row_id).choice(list(values))]


def gradient_backend(row_id: str) -> str:
    """The backend test_stdlib.py's gradient check draws for a stdlib row, which test_stability.py's
    extremes share (a row's sources compiled once)."""
    return one_of(f"{row_id}/gradient", [("mean", "numpy"), ("mean", "jax")])[0][1]


def covering(row_id: str, axes: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Combinations of ``axes``' values for the row ``row_id``: all of them under LOSSDSL_FULL_TABLES,
    else a greedy cover of every value of every axis, drawn from a seeded shuffle of the product
    (max(len(axis)) combinations for two axes, instead of their product)."""
    combos = list(itertools.product(*axes))
    if _full():
        return combos
    _rng(row_id).shuffle(combos)
    missing = {(k, v) for k, axis in enumerate(axes) for v in axis}
    chosen = []
    while missing:  # greedy cover: the first combination (in shuffled order) that covers most of what is missing
        combo = max(combos, key=lambda c: len(set(enumerate(c)) & missing))
        chosen.append(combo)
        missing -= set(enumerate(combo))
    return chosen


def sampled(rows: Sequence[Any], ids: Sequence[str], axes: Sequence[Sequence[Any]], check: str) -> list[Any]:
    """``pytest.param(row, *combo)`` for a table test over (row, run, dtype), two axes: each row gets
    one combination per value of the shorter axis (every dtype), the longer axis's values (the runs)
    handed out in turn over the table from a seeded order, so that a row sees every dtype and as many
    runs, and every combination is visited over the table (checked here, once the rows suffice). All
    of them under LOSSDSL_FULL_TABLES=1. A row's tests share an xdist group, for one worker to
    compute its reference once."""
    import pytest

    short = min(range(2), key=lambda k: len(axes[k]))
    pool = list(axes[1 - short])
    _rng(check).shuffle(pool)
    combos: list[list[tuple[Any, ...]]] = []
    for r in range(len(rows)):
        base = r * len(axes[short])
        picks = [pool[(base + j + base // len(pool)) % len(pool)] for j in range(len(axes[short]))]
        combos.append([(p, v) if short == 1 else (v, p) for p, v in zip(picks, axes[short])])
    if _full():
        combos = [list(itertools.product(*axes))] * len(rows)
    visited = {c for row in combos for c in row}
    assert len(rows) < len(pool) or visited == set(itertools.product(*axes)), f"{check}: {sorted(map(str, visited))}"
    return [pytest.param(row, *combo, id="-".join([i, *(getattr(v, "__name__", str(v)) for v in combo)]),
                         marks=pytest.mark.xdist_group(f"{check}-{i}"))
            for row, i, row_combos in zip(rows, ids, combos) for combo in row_combos]
