"""Bounds on what one compile may build, so that hostile text cannot hang it or exhaust memory.

The parser bounds the text (``parser.MAX_SOURCE_CHARS``, ``parser.MAX_DEPTH``) and the graph bounds
its ops (``ir.MAX_OPS``). What a short text can still blow up, once definitions are inlined and SymPy
has folded its numbers, is bounded here, each with its own message: how many AST nodes are
evaluated, how deep evaluation nests, and the size, depth and exact numbers of each expression
(SymPy multiplies exact rationals, so ``a = sqrt(3)^1000 * x; b = a*a; c = b*b; ...`` squares a
number's bit length at every step; and it walks expressions recursively, so their depth must stay
well inside Python's recursion limit in every later phase).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import sympy as sp

from .errors import LimitError, LossTypeError, Span
from .ir import post_order
from .representable import HINT, UNDEFINED, Constants, shown

MAX_EVALUATIONS = 20_000  # expression nodes evaluated, counting each inlined call anew
MAX_EVAL_DEPTH = 250  # nesting of evaluation, across inlined definitions
MAX_EXPR_NODES = 20_000  # one expression's size, counted as a tree (shared parts counted each time)
MAX_EXPR_DEPTH = 80  # one expression's depth (SymPy and our printers recurse on it)
MAX_EXPONENT = 1_000  # a constant exponent's magnitude
MAX_NUMBER_BITS = 4_096  # an exact constant's numerator and denominator together
MAX_STATIC_SIZE = 1_000_000  # a length the source fixes: one_hot's num_classes
MAX_AXIS = 64  # an axis's magnitude: NumPy arrays have at most 64 axes


@dataclass
class Tally:
    """What the limits measured inside ``tally()``: a compile's work as the limits count it, which a
    test can bound where a clock would flake on a busy machine."""

    expressions: int = 0  # intermediate results checked (one per tensor-valued evaluation)
    nodes: int = 0  # distinct expression nodes measured among them


_tally: ContextVar[Tally | None] = ContextVar("lossdsl_limits_tally", default=None)


@contextmanager
def tally() -> Iterator[Tally]:
    """Counts, in this thread or task, what every ExprMeter checks inside the block."""
    counts = Tally()
    token = _tally.set(counts)
    try:
        yield counts
    finally:
        _tally.reset(token)


class ExprMeter:
    """Measures expressions once per distinct node (memoised on the shared DAG), so checking every
    intermediate result costs time proportional to what was built, not to its tree size."""

    def __init__(self, bounds: tuple[type, ...] = ()) -> None:
        """``bounds``: functions whose arguments may be a written +-inf (representable.Constants)."""
        self._seen: dict[sp.Basic, tuple[int, int, int]] = {}  # node -> (tree size, depth, bits)
        self._constants = Constants(bounds=bounds)

    def measure(self, expr: sp.Basic) -> tuple[int, int, int]:
        """(tree size, depth, largest exact number's bits) of ``expr``, without recursion."""
        seen = self._seen
        if expr in seen:
            return seen[expr]
        before = len(seen)
        for node in post_order(expr, seen):
            size, depth, bits = 1, 1, _bits(node)
            for a in node.args:
                s, d, b = seen[a]
                size, depth = size + s, max(depth, d + 1)
                bits = max(bits, b)
            seen[node] = (min(size, 1 << 62), depth, bits)
        counts = _tally.get()
        if counts is not None:
            counts.nodes += len(seen) - before
        return seen[expr]

    def check(self, expr: sp.Basic, span: Span | None) -> None:
        counts = _tally.get()
        if counts is not None:
            counts.expressions += 1
        size, depth, bits = self.measure(expr)
        if bits > MAX_NUMBER_BITS:
            raise LimitError(f"a constant in this expression needs more than {MAX_NUMBER_BITS} bits "
                             "(an exact number grew too large)", span)
        if depth > MAX_EXPR_DEPTH:
            raise LimitError(f"expression nested deeper than {MAX_EXPR_DEPTH} levels once names and "
                             "definitions are substituted", span)
        if size > MAX_EXPR_NODES:
            raise LimitError(f"expression larger than {MAX_EXPR_NODES} terms once names and definitions "
                             "are substituted", span)
        self.check_constants(expr, span)

    def check_constants(self, expr: sp.Basic, span: Span | None) -> None:
        """Refuse a number in ``expr`` that generated code cannot hold (see representable.py)."""
        found = self._constants.first(expr)
        if found is None:
            return
        number, why = found
        if why == UNDEFINED:
            raise LossTypeError("division by zero, or a constant with no value such as log(0), in this "
                                "expression", span)
        raise LossTypeError(f"this expression holds the constant {shown(number)}, which {why}", span,
                            None if number.is_extended_real is False else HINT)


def _bits(node: sp.Basic) -> int:
    """An exact number's size."""
    if isinstance(node, sp.Rational):
        return node.p.bit_length() + node.q.bit_length()
    return 0


def check_exponent(exponent: sp.Basic | int | float, span: Span | None) -> None:
    """Refuse a constant exponent beyond MAX_EXPONENT (SymPy would evaluate ``3^1000000000``)."""
    if isinstance(exponent, sp.Basic):
        if not exponent.is_Number or not exponent.is_finite:
            return
        exponent = float(exponent)
    if abs(exponent) > MAX_EXPONENT:  # repr: 1000.0000001 is not shown as 1000; 1001 not as 1001.0
        shown = int(exponent) if float(exponent).is_integer() and abs(exponent) < 1e15 else exponent
        raise LimitError(f"exponent {shown!r} is larger than the limit of {MAX_EXPONENT}", span)


def check_power(base: sp.Basic, exponent: sp.Basic, meter: ExprMeter, span: Span | None) -> None:
    """Before SymPy evaluates ``base^exponent``: the exponent's limit, and the size of the exact
    numbers the power would compute (``(c*x)^n`` is ``c^n * x^n``)."""
    check_exponent(exponent, span)
    if exponent.is_Number and exponent.is_finite:
        bits = meter.measure(base)[2]
        if bits * abs(float(exponent)) > MAX_NUMBER_BITS:
            raise LimitError(f"a constant in this expression needs more than {MAX_NUMBER_BITS} bits "
                             "(an exact number raised to a large power)", span)
