"""Refuting convexity: two values of an input, the others held, whose midpoint lies above the
chord, searched for on random samples that respect the inputs' checked ranges."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..builtins import INF
from .intervals import FULL, Interval

if TYPE_CHECKING:
    from ..compiled import CompiledLoss


def _sample(loss: CompiledLoss, ranges: dict[str, Interval], shape: tuple[int, ...], rng: np.random.Generator,
            scale: float = 1.0) -> dict[str, np.ndarray]:
    out = {}
    for name in loss.inputs:
        if name not in loss.differentiable:
            out[name] = rng.integers(0, shape[-1], size=shape[:-1] if len(shape) > 1 else shape)
            continue
        lo, hi = ranges.get(name, FULL)
        if lo > -INF and hi < INF:
            out[name] = rng.uniform(lo, hi, size=shape)
        elif lo > -INF:
            out[name] = lo + rng.exponential(scale, size=shape)
        elif hi < INF:
            out[name] = hi - rng.exponential(scale, size=shape)
        else:
            out[name] = rng.normal(0, scale, size=shape)
    return out


_SHAPES_TRIED = ((1,), (2, 3), (4, 3))


def _working_shapes(loss: CompiledLoss, ranges: dict[str, Interval]) -> Iterator[tuple[int, ...]]:
    rng = np.random.default_rng(0)
    for shape in _SHAPES_TRIED:
        try:
            v = loss(**_sample(loss, ranges, shape, rng))
        except Exception:  # noqa: BLE001 - a shape the loss does not accept
            continue
        if np.ndim(v) == 0:
            yield shape


def counterexample(loss: CompiledLoss, x: str, ranges: dict[str, Interval], trials: int = 300) -> dict | None:
    """Two values of ``x`` (other inputs fixed) whose midpoint lies above the chord, if found."""
    rng = np.random.default_rng(1)
    for shape in _working_shapes(loss, ranges):
        for k in range(trials):
            scale = (0.5, 2.0, 10.0)[k % 3]
            base = _sample(loss, ranges, shape, rng, scale)
            a, b = base[x], _sample(loss, ranges, shape, rng, scale)[x]
            with np.errstate(all="ignore"):
                fa, fb = float(loss(**{**base, x: a})), float(loss(**{**base, x: b}))
                fm = float(loss(**{**base, x: (a + b) / 2}))
            if all(map(math.isfinite, (fa, fb, fm))) and fm > (fa + fb) / 2 + 1e-7 * (1 + abs(fa) + abs(fb)):
                others = {n: v.tolist() for n, v in base.items() if n != x}
                return {"inputs": others, x: [a.tolist(), b.tolist()], "loss": [fa, fb],
                        "loss_at_midpoint": fm, "chord_midpoint": (fa + fb) / 2}
    return None
