"""Which values a compiled loss takes as inputs: numbers and arrays of numbers, of its own library.

Array libraries convert what they are given quietly: NumPy reads a string array as numbers and
drops a complex array's imaginary part, ``np.asarray(None)`` is an object array whose mean is NaN,
and a torch tensor reaches NumPy only through ``.numpy()``. So every call checks its inputs first
(``CompiledLoss`` does, on every backend and entry point) and refuses, naming the input, what no
loss can mean: ``None``, strings and bytes, complex numbers, Python objects, dates, and the arrays
of a library the backend does not take (``Backend.foreign``). Only dtypes are read, never values,
so the check also runs on JAX tracers under a caller's ``jit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InputError

# NumPy dtype kinds that hold no real numbers -> how a message names them ("V": structured records)
_REFUSED_KINDS = {"c": "complex numbers", "O": "Python objects", "U": "strings", "S": "bytes",
                  "M": "dates", "m": "time spans", "V": "structured records"}


def check_values(values: Mapping[str, Any], backend: str, foreign: tuple[str, ...]) -> None:
    """An InputError naming the first of ``values`` that no loss compiled for ``backend`` can take;
    ``foreign``: the array libraries whose arrays that backend refuses."""
    for name, value in values.items():
        problem = _problem(value, backend, foreign)
        if problem is not None:
            raise InputError(f"input '{name}' {problem}")


def _problem(value: Any, backend: str, foreign: tuple[str, ...]) -> str | None:
    """Why ``value`` is not an input, or None where it may be one (the array library then converts
    it, and its own errors, about ragged lists for instance, are reported as they come)."""
    if value is None:
        return "is None: give a number or an array of numbers"
    library = type(value).__module__.partition(".")[0]
    if library in foreign:
        return (f"is a {library} {type(value).__name__}, which the {backend} backend does not take: compile the "
                f"loss for that library's backend, or convert the value (for torch, tensor.detach().cpu().numpy())")
    if isinstance(value, (str, bytes)):
        return f"is {'a string' if isinstance(value, str) else 'bytes'} ({value!r:.40}), not a number"
    if isinstance(value, (bool, int, float)):
        return None
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        try:
            dtype = np.asarray(value).dtype  # a list, a tuple, a complex number
        except (ValueError, TypeError):
            return None
    try:
        kind, record = np.dtype(dtype).kind, np.dtype(dtype).type is np.void
    except TypeError:  # a dtype NumPy does not know: torch's, whose only kind that is no real number is complex
        kind, record = ("c" if getattr(dtype, "is_complex", False) else "f"), False
    if kind in _REFUSED_KINDS and (kind != "V" or record):  # ml_dtypes' bfloat16 is kind "V" too
        return f"holds {_REFUSED_KINDS[kind]} (dtype {dtype}), not real numbers"
    return None
