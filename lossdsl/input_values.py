"""Which values a compiled loss takes as inputs: numbers and arrays of numbers, of its own library.

Array libraries convert what they are given quietly: NumPy reads a string array as numbers and
drops a complex array's imaginary part, ``np.asarray(None)`` is an object array whose mean is NaN,
and a torch tensor reaches NumPy only through ``.numpy()``. So every call checks its inputs first
(``CompiledLoss`` does, on every backend and entry point) and refuses, naming the input, what no
loss can mean: ``None``, strings and bytes, complex numbers, Python objects, dates, masked arrays
(whose masks NumPy's arithmetic would drop), and the arrays
of a library the backend does not take (``Backend.foreign``). Only dtypes are read, never values,
so the check also runs on JAX tracers under a caller's ``jit``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import sympy as sp

from .errors import InputError
from .ir import Apply, Graph, Input

# NumPy dtype kinds that hold no real numbers -> how a message names them ("V": structured records)
_REFUSED_KINDS = {"c": "complex numbers", "O": "Python objects", "U": "strings", "S": "bytes",
                  "M": "dates", "m": "time spans", "V": "structured records"}


def check_values(values: Mapping[str, Any], backend: str, foreign: tuple[str, ...], cached: bool = True) -> None:
    """An InputError naming the first of ``values`` that no loss compiled for ``backend`` can take;
    ``foreign``: the array libraries whose arrays that backend refuses; ``cached``: answers may come
    from, and go into, ``_ACCEPTED`` (not while a compiler traces: torch.compile warns of a cache it
    reads through)."""
    accepted = _ACCEPTED.setdefault((backend, foreign), set()) if cached else set()
    for name, value in values.items():
        kind = (type(value), getattr(value, "dtype", None))
        try:
            if kind in accepted:
                continue
        except TypeError:  # an unhashable dtype: asked in full
            kind = (None, None)
        problem = _problem(value, backend, foreign)
        if problem is not None:
            raise InputError(f"input '{name}' {problem}")
        if kind[0] is not None and (kind[1] is not None or kind[0] in _NUMBERS) and not isinstance(value, np.ma.MaskedArray):
            accepted.add(kind)


# (backend, foreign) -> the (type, dtype) pairs of inputs found acceptable: an answer that depends on
# those alone (arrays, Python numbers; not lists, not masked arrays, whose contents decide), kept
# because a call of a small loss in a training step should not pay for the whole question each time
_ACCEPTED: dict[tuple[str, tuple[str, ...]], set[tuple[type, Any]]] = {}
_NUMBERS = (bool, int, float)


def _problem(value: Any, backend: str, foreign: tuple[str, ...]) -> str | None:
    """Why ``value`` is not an input, or None where it may be one (the array library then converts
    it, and its own errors, about ragged lists for instance, are reported as they come)."""
    if value is None:
        return "is None: give a number or an array of numbers"
    dtype = getattr(value, "dtype", None)
    if (isinstance(dtype, np.dtype) or type(dtype).__module__ == "torch") and not isinstance(value, (str, bytes, np.ma.MaskedArray)):
        return _type_problem(type(value), backend, foreign) or _dtype_problem(dtype)  # NumPy's, JAX's, torch's arrays
    problem = _type_problem(type(value), backend, foreign)
    if problem is not None:
        return problem
    if isinstance(value, (str, bytes)):
        return f"is {'a string' if isinstance(value, str) else 'bytes'} ({value!r:.40}), not a number"
    if isinstance(value, (bool, int, float)):
        return None
    if isinstance(value, np.ma.MaskedArray) and np.ma.is_masked(value):
        return ("is a masked array, whose mask a loss would ignore: give the unmasked values with "
                "weights= of 0 where masked, or value.filled(...)")
    if dtype is None:
        try:
            dtype = np.asarray(value).dtype  # a list, a tuple, a complex number
        except (ValueError, TypeError):
            return None
    return _dtype_problem(dtype)


def _type_problem(cls: type, backend: str, foreign: tuple[str, ...]) -> str | None:
    """Why no value of type ``cls`` is an input of a loss compiled for ``backend``, or None."""
    library = cls.__module__.partition(".")[0]
    if library == "jax" and backend != "jax" and any(c.__name__ == "Tracer" for c in cls.__mro__):
        return (f"is being traced by JAX (jax.grad, jit, vmap, ...), which a loss compiled for the {backend} "
                'backend cannot be: compile it with backend="jax"')
    if library in foreign:
        return (f"is a {library} {cls.__name__}, which the {backend} backend does not take: compile the "
                f"loss for that library's backend, or convert the value (for torch, tensor.detach().cpu().numpy())")
    return None


def _dtype_problem(dtype: Any) -> str | None:
    """Why values of ``dtype`` are no real numbers, or None."""
    if type(dtype).__module__ == "torch":  # torch's, which NumPy does not know (asking it fails torch.compile's trace)
        kind, record = ("c" if dtype.is_complex else "f"), False  # its only kind that is no real number is complex
    else:
        try:
            kind, record = np.dtype(dtype).kind, np.dtype(dtype).type is np.void
        except TypeError:  # another dtype NumPy does not know
            kind, record = ("c" if getattr(dtype, "is_complex", False) else "f"), False
    if kind in _REFUSED_KINDS and (kind != "V" or record):  # ml_dtypes' bfloat16 is kind "V" too
        return f"holds {_REFUSED_KINDS[kind]} (dtype {dtype}), not real numbers"
    return None


def elementwise_groups(graph: Graph, root: sp.Basic) -> tuple[tuple[str, ...], ...]:
    """The sets of two or more float inputs that meet elementwise: the leaves of one expression (an
    op's operand, or the loss itself), except per-sample weights (``per_sample`` matches them to the rows)."""
    floats = {sym: op.name for sym, op in graph if isinstance(op, Input) and op.name not in graph.index_inputs}
    exprs = [root, *(o for _, op in graph if isinstance(op, Apply) for o in
                     (op.operands[1:] if op.prim == "per_sample" else op.operands))]
    groups = {tuple(sorted({floats[s] for s in e.free_symbols if s in floats}, key=graph.inputs.index)) for e in exprs}
    return tuple(sorted(g for g in groups if len(g) > 1))


def _shape(value: Any) -> Any:
    """An array's shape as it has it (asking NumPy costs more); NumPy's for anything else."""
    shape = getattr(value, "shape", None)
    return np.shape(value) if shape is None else shape


def warn_stretched(values: Mapping[str, Any], groups: Iterable[tuple[str, ...]]) -> None:
    """A UserWarning, as PyTorch's elementwise losses give, where inputs that meet elementwise differ
    in rank and broadcast to a shape that none of them has: (N, 1) against (N,) is silently an N x N loss."""
    for group in groups:
        ranks = {getattr(values.get(n), "ndim", None) for n in group}
        if len(ranks) == 1 and None not in ranks:  # arrays of one rank: none stretched (asked cheaply first)
            continue
        shapes = {n: tuple(_shape(values[n])) for n in group if n in values}  # check_names reports the others
        if len({len(s) for s in shapes.values()}) < 2:
            continue
        try:
            both = np.broadcast_shapes(*shapes.values())
        except ValueError:
            continue  # the array library reports shapes that do not broadcast
        if both not in shapes.values():
            (a, sa), (b, sb) = sorted(shapes.items(), key=lambda item: -len(item[1]))[:2]
            warnings.warn(f"input '{a}' has shape {sa} and input '{b}' has shape {sb}: they broadcast to "
                          f"{both}, which is likely not what you want: reshape one of them to the other's shape",
                          UserWarning, stacklevel=4)
            return
