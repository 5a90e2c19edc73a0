"""Call-time input checks: which ops read checked values, and the errors that name the inputs.

The NumPy backend checks values as it goes (``within``, labels in range). Under JAX's jit the
values are unknown while the code runs, so the generated module also returns the (min, max) of
each checked operand and these functions raise the NumPy backend's error from them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp

from .errors import InputError
from .ir import Apply, Graph, Input

CHECKED = {"within": 0, "take": 1, "one_hot": 0}  # op -> the operand whose values are checked


def checked_ops(graph: Graph, root: sp.Expr) -> tuple[Apply, ...]:
    """The ops whose call-time checks read values (ranges, labels) that ``root`` depends on; a
    constant was checked at compile time."""
    needed = set(graph.dependencies([root]))
    return tuple(op for sym, op in graph if sym in needed and isinstance(op, Apply) and op.prim in CHECKED
                 and not op.operands[CHECKED[op.prim]].is_number)


def checked_operands(ops: Sequence[Apply]) -> list[sp.Expr]:
    """For each checked op, the operand checked and its operand 0 (a gather's class count, a static shape)."""
    return [o for op in ops for o in (op.operands[CHECKED[op.prim]], op.operands[0])]


def ranges_code(ops: Sequence[Apply], codes: Sequence[str], shape: str) -> str:
    """A tuple display of ``_value_range(operand) + (class count,)`` for each checked op; ``shape``:
    how the backend prints NumPy's ``shape``."""
    stats = []
    for op, code, whole in zip(ops, codes[::2], codes[1::2]):
        count = f"{shape}({whole})[{op.param('axis')}]" if op.prim == "take" else "0"
        stats.append(f"_value_range({code}) + ({count},)")
    return "(" + "".join(c + ", " for c in stats) + ")"


def check_ranges(ops: Sequence[Apply], stats: Sequence[tuple[Any, Any, Any, Any]]) -> None:
    """Raise the NumPy backend's error for any checked operand whose (min, max) is out of range."""
    from .backends.runtime import _check_labels, _within
    for op, (lo, hi, size, count) in zip(ops, stats):
        if not size:
            continue
        values = np.array([lo, hi])
        if op.prim == "within":
            _within(values, op.param("lower"), op.param("upper"), op.param("strict"), False, op.param("label"))
        else:
            _check_labels(values, int(count) if op.prim == "take" else op.param("depth"), op.param("label"))


def ctc_inputs(graph: Graph, root: sp.Expr) -> tuple[tuple[Apply, tuple[str | int, ...], tuple[str, ...]], ...]:
    """Each CTC op whose targets and lengths are inputs (or constant lengths): the op, their input names
    (or constants), and the inputs its log-probabilities are computed from (computed operands are
    checked inside, where concrete)."""
    def name(e: sp.Expr) -> str | int | None:
        if e.is_Integer:
            return int(e)
        op = graph.op_of.get(e)
        return op.name if isinstance(op, Input) else None

    needed = set(graph.dependencies([root]))
    out = []
    for sym, op in graph:
        if sym not in needed or not isinstance(op, Apply) or op.prim != "ctc":
            continue
        names = tuple(name(o) for o in op.operands[1:])
        sources = tuple(name(s) for s in op.operands[0].free_symbols)
        if None not in names and None not in sources:
            out.append((op, names, sources))
    return tuple(out)


def check_ctc(ctc: Sequence[tuple[Apply, tuple[str | int, ...], tuple[str, ...]]], kwargs: dict[str, Any]) -> None:
    """CTC's targets and lengths, checked as the NumPy backend does, where they are inputs (the JAX
    dynamic program runs under jit, where it can only return NaN)."""
    from .backends.runtime import _ctc_lengths
    for op, names, sources in ctc:
        shape = np.broadcast_shapes(*(np.shape(kwargs[n]) for n in sources))
        values = (np.asarray(kwargs[n]) if isinstance(n, str) else n for n in names)  # a constant length as is
        _ctc_lengths(np.broadcast_to(np.float32(0), shape), *values, op.param("blank"), op.param("labels"))


def check_names(inputs: Sequence[str], kwargs: dict[str, Any]) -> None:
    """An InputError unless ``kwargs`` names exactly the loss's inputs."""
    missing = [n for n in inputs if n not in kwargs]
    extra = [n for n in kwargs if n not in inputs]
    if missing or extra:
        parts = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + (
            [f"unexpected {', '.join(map(repr, extra))}"] if extra else [])
        raise InputError(f"this loss takes inputs {', '.join(inputs)}: {'; '.join(parts)}")


def reporting_input_errors(fn: Callable[..., Any], inputs: dict[str, Any]) -> Any:
    """Call generated code; its checks raise ValueError/TypeError, reported as InputError."""
    try:
        return fn(**inputs)
    except InputError:
        raise
    except (ValueError, TypeError, IndexError) as e:
        raise InputError(_explain(str(e), inputs)) from e
    except RuntimeError as e:  # PyTorch's error for shapes (and for much else: only shapes are ours)
        conflict = _shape_conflict(str(e), _shapes(inputs))
        if conflict is None:
            raise
        raise InputError(conflict) from e


def _shapes(inputs: dict[str, Any]) -> dict[str, tuple[int, ...] | None]:
    shapes = {}
    for name, value in inputs.items():
        try:
            shapes[name] = tuple(np.shape(value))
        except Exception:  # noqa: BLE001 - a value NumPy cannot even size: say so
            shapes[name] = None
    return shapes


def _shape_conflict(message: str, shapes: dict[str, tuple[int, ...] | None]) -> str | None:
    """The first two inputs whose shapes do not broadcast together, as a message, or None."""
    names = [n for n in shapes if shapes[n] is not None]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            try:
                np.broadcast_shapes(shapes[a], shapes[b])
            except ValueError:
                return (f"inputs '{a}' (shape {shapes[a]}) and '{b}' (shape {shapes[b]}) do not broadcast "
                        f"together ({message})")
    return None


def _explain(message: str, inputs: dict[str, Any]) -> str:
    """A message that names the inputs: ours already do; an array library's error about shapes,
    raised deep inside the generated code, is prefixed with the inputs' shapes."""
    if "input '" in message or message.startswith("argument '"):  # ours, naming what it checks
        return message
    shapes = _shapes(inputs)
    conflict = _shape_conflict(message, shapes)
    if conflict is not None:
        return conflict
    listed = ", ".join(f"'{n}' {'(not an array)' if s is None else f'(shape {s})'}" for n, s in shapes.items())
    return f"the inputs do not fit this loss: {listed} ({message})"
