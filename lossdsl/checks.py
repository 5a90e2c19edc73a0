"""Call-time input checks: which ops read checked values, and the errors that name the inputs.

The NumPy and torch backends check values as they go (``within``, labels in range, CTC's targets
and lengths). Under JAX's jit the values are unknown while the code runs, so there the generated
functions compute statistics of each checked operand (its (min, max), CTC's targets and lengths):
``CompiledLoss`` raises the NumPy backend's error from them before it returns (``check_stats``),
and under a caller's own jit, where nothing can raise, each function returns NaN for its value and
every gradient unless all checks pass (``stats_code``). The operands are whatever expressions the
ops read, inputs or not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from .errors import InputError
from .ir import Apply, Graph

# op -> the operands its check reads: the values checked, then those whose shape gives a bound
CHECKED = {"within": (0,), "take": (1, 0), "one_hot": (0,), "ctc": (1, 2, 3, 0), "index_check": (0, 1)}
SHAPE_ONLY = {"take": 1, "ctc": 1, "index_check": 1}  # how many of those last are read for their shape alone
# ops whose runtime helper checks values as it computes -> the parameter that, printed as None in a loss
# compiled with checks=False, tells it not to (it still checks shapes); within and index_check stand
# beside the expressions, and such a loss prints them not at all
UNCHECKED = {"take": "label", "one_hot": "label", "ctc": "labels", "ctc_vjp": "labels"}


def _all_constant(op: Apply) -> bool:
    """Whether every value ``op``'s check reads is a number (decided at compile time, then)."""
    read = CHECKED[op.prim]
    return all(op.operands[i].is_number for i in read[:len(read) - SHAPE_ONLY.get(op.prim, 0)])


def checked_ops(graph: Graph, root: sp.Expr) -> tuple[Apply, ...]:
    """The ops whose call-time checks read values (ranges, labels, lengths) that ``root`` depends on;
    a check of constants only was decided at compile time."""
    needed = set(graph.dependencies([root, *graph.checks_for([root])]))
    return tuple(op for sym, op in graph if sym in needed and isinstance(op, Apply) and op.prim in CHECKED
                 and not _all_constant(op))


def checked_operands(ops: Sequence[Apply]) -> list[sp.Expr]:
    """The operands each checked op's check reads (``CHECKED``), op after op."""
    return [op.operands[k] for op in ops for k in CHECKED[op.prim]]


def _split(ops: Sequence[Apply], codes: Sequence[str]) -> list[list[str]]:
    """``codes`` (printed ``checked_operands``) grouped by op."""
    groups, k = [], 0
    for op in ops:
        n = len(CHECKED[op.prim])
        groups.append(list(codes[k:k + n]))
        k += n
    return groups


def stats_code(ops: Sequence[Apply], codes: Sequence[str], shape: str) -> tuple[str, str]:
    """Printed from ``codes`` (the printed ``checked_operands``): a tuple display of each checked op's
    statistics, ``_value_range(values)`` (min, max, size), for ``take`` with the class count, for
    ``ctc`` its targets and lengths and the shape of its log-probabilities; and a boolean expression,
    for traced code, of whether every check passes, reading that tuple as ``_stats``. ``shape``: how
    the backend prints NumPy's ``shape``."""
    stats, tests = [], []
    for k, (op, group) in enumerate(zip(ops, _split(ops, codes))):
        s = f"_stats[{k}]"
        if op.prim == "ctc":
            stats.append(f"({group[0]}, {group[1]}, {group[2]}, {shape}({group[3]}))")
            tests.append(f"_ctc_passes({group[3]}, *{s}[:3], {op.param('blank')}, {op.param('labels')!r})")
        elif op.prim in ("take", "index_check"):  # labels, or a position, within an axis of operand 1
            stats.append(f"_value_range({group[0]}) + ({shape}({group[1]})[{op.param('axis')}],)")
            lowest = "0" if op.prim == "take" else f"-{s}[3]"  # a position may count from the end
            tests.append(f"_in_range({s}[:3], {lowest}, {s}[3] - 1)")
        elif op.prim == "one_hot":
            stats.append(f"_value_range({group[0]})")
            tests.append(f"_in_range({s}, 0, {op.param('depth') - 1})")
        else:
            stats.append(f"_value_range({group[0]})")
            tests.append(f"_in_range({s}, {op.param('lower')!r}, {op.param('upper')!r}, {op.param('strict')!r})")
    return "(" + "".join(c + ", " for c in stats) + ")", " & ".join(tests)


def check_stats(ops: Sequence[Apply], stats: Sequence[Any]) -> None:
    """Raise the NumPy backend's error for any check that ``stats_code``'s statistics fail."""
    from .backends.runtime import _check_labels, _check_position, _ctc_lengths, _within
    for op, s in zip(ops, stats):
        if op.prim == "ctc":
            targets, input_lengths, target_lengths, shape = (np.asarray(x) for x in s)
            _ctc_lengths(np.broadcast_to(np.float32(0), tuple(shape)), targets, input_lengths, target_lengths,
                         op.param("blank"), op.param("labels"))
            continue
        lo, hi, size, *count = s
        if not size:
            continue
        values = np.array([lo, hi])
        if op.prim == "index_check":
            _check_position(values, int(count[0]), op.param("axis"), op.param("label"), op.param("into"))
        elif op.prim == "within":
            _within(values, op.param("lower"), op.param("upper"), op.param("strict"), False, op.param("label"),
                    op.param("hint"))
        else:
            _check_labels(values, int(count[0]) if op.prim == "take" else op.param("depth"), op.param("label"))


def check_names(inputs: Sequence[str], kwargs: dict[str, Any]) -> None:
    """An InputError unless ``kwargs`` names exactly the loss's inputs."""
    if len(kwargs) == len(inputs) and all(n in kwargs for n in inputs):
        return
    missing = [n for n in inputs if n not in kwargs]
    extra = [n for n in kwargs if n not in inputs]
    if missing or extra:
        parts = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + (
            [f"unexpected {', '.join(map(repr, extra))}"] if extra else [])
        raise InputError(f"this loss takes inputs {', '.join(inputs)}: {'; '.join(parts)}")


def reporting_input_errors(fn: Callable[..., Any], inputs: dict[str, Any], names: Mapping[str, str] | None = None) -> Any:
    """Call generated code with ``inputs`` under their Python ``names`` (``Signature.code``); its checks
    raise ValueError/TypeError, reported as InputError."""
    try:
        return fn(**({names.get(k, k): v for k, v in inputs.items()} if names else inputs))
    except InputError:
        raise
    except (ValueError, TypeError, IndexError) as e:
        raise InputError(_explain(str(e), inputs)) from e
    except RuntimeError as e:  # PyTorch's error for shapes (and for much else: only shapes are ours)
        if "data-dependent control flow" in str(e) or "calling .item()" in str(e):  # vmap met a check of values
            raise InputError("under torch.func.vmap a loss cannot check its inputs' values (ranges, labels, "
                             "lengths): compile it with checks=False") from e
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


# how NumPy, JAX and torch say that a max or min met an empty axis (the inputs may well broadcast)
_EMPTY_REDUCTION = ("zero-size array to reduction operation", "to have non-zero size")


def _explain(message: str, inputs: dict[str, Any]) -> str:
    """A message that names the inputs: ours already do; an array library's error about shapes,
    raised deep inside the generated code, is prefixed with the inputs' shapes."""
    if "input '" in message or "inputs '" in message or message.startswith("argument '"):  # ours
        return message
    if "forward-mode autodiff" in message:  # JAX's, for a custom_vjp
        return ("forward mode (jax.jvp, jacfwd, hessian) needs a loss that compile time knows is one number, and "
                "this one may be an array (reduction=\"none\", or a term whose shape only the inputs decide, "
                "such as a parameter g in g^2: write sum(g^2)); reverse mode (jax.grad, vjp, jacrev) works")
    shapes = _shapes(inputs)
    if any(m in message for m in _EMPTY_REDUCTION):
        empty = ", ".join(f"'{n}' (shape {s})" for n, s in shapes.items() if s is not None and 0 in s)
        return (f"the loss takes a max or min over an axis that the empty inputs {empty} leave empty: "
                f"a max of nothing has no value, in NumPy either ({message})")
    conflict = _shape_conflict(message, shapes)
    if conflict is not None:
        return conflict
    listed = ", ".join(f"'{n}' {'(not an array)' if s is None else f'(shape {s})'}" for n, s in shapes.items())
    return f"the inputs do not fit this loss: {listed} ({message})"
