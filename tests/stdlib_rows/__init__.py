"""Rows of the standard-library test table, one module per stdlib family (see tests/test_stdlib.py)."""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Case:
    """One way of calling one library loss, with an independent reference.

    ``call`` is lossdsl source with an ``{opts}`` placeholder where the harness puts
    ``, reduction="..."`` or ``, weights=w``. ``reference(xp, **inputs)`` computes the
    *unreduced* losses (one per element or per sample) from the published formula with
    ``xp`` = numpy or jax.numpy; for a loss without ``reduction`` it returns the final value.
    """

    id: str
    call: str
    inputs: Callable[[np.random.Generator], dict[str, Any]]
    reference: Callable[..., Any]
    wrt: tuple[str, ...] = ("y_pred",)
    reducible: bool = True
    finite_differences: bool = True  # off where inputs sit on kinks or at extremes
    rtol: float = 1e-7
    atol: float = 1e-9
    extra: dict[str, Any] = field(default_factory=dict)

    def sample(self) -> dict[str, Any]:
        """The row's inputs, the same in every process: seeded by a CRC of the id, since ``hash`` of a
        str is salted per process. ``LOSSDSL_TEST_SEED=k`` shifts every seed, to try other inputs."""
        seed = zlib.crc32(self.id.encode()) + int(os.environ.get("LOSSDSL_TEST_SEED", "0"))
        return self.inputs(np.random.default_rng(seed))


def normal(*shape: int, scale: float = 1.0) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.normal(size=shape) * scale


def uniform(*shape: int, low: float = 0.05, high: float = 0.95) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.uniform(low, high, size=shape)
