"""Row blocks: which losses NumPy may evaluate a block of rows at a time.

NumPy evaluates one operation at a time over whole arrays, so a loss over 4M elements writes and
rereads a dozen full-size temporaries, each in fresh memory the kernel must zero. A loss that is
the mean (or the sum) of terms each computed from one row of its inputs (the leading axis) is,
with ``w`` the share of the rows in a block (or 1 for a sum),

    L(x) = sum over blocks b of w_b * L(x_b),    dL/dx_b = w_b * (dL/dx)(x_b),

so the generated module calls its straight-line code on blocks of rows that stay in cache and
reuse the same memory. Whether a loss is such a mean is decided here, from the IR; the generated
wrapper checks at call time that the inputs share their leading axis and have the ranks it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .builtins import REDUCTIONS
from .ir import Apply, Graph, Input


@dataclass(frozen=True)
class RowBlocks:
    """How a loss combines over blocks of rows."""

    reduction: str  # "mean": blocks weigh by their share of the rows; "sum": they add
    min_rank: int  # the float inputs need this many axes, so that no op reaches across rows


class _Unblockable(Exception):
    """Some op combines rows, or the shapes cannot be followed."""


def row_blocks(graph: Graph, root: sp.Expr) -> RowBlocks | None:
    """How ``root`` splits over blocks of rows, or None where it does not (a weighted mean
    divided by the sum of its weights, a matrix product, a CTC table, a reduction over all axes
    inside the loss, ...)."""
    coeff, rest = root.as_coeff_Mul()
    op = graph.op_of.get(rest) if isinstance(rest, sp.Symbol) else None
    if not (coeff.is_Number and coeff.is_finite and isinstance(op, Apply) and op.prim in ("sum", "mean")
            and op.param("axis") is None and not op.param("keepdims")):
        return None
    ranks = _Ranks(graph)
    try:
        deficit = ranks.of(op.operands[0])
    except _Unblockable:
        return None
    if deficit is None:  # a constant
        return None
    ranks.need(deficit + 1)  # the terms keep the leading axis
    return RowBlocks(op.prim, ranks.min_rank)


class _Ranks:
    """Each value's rank as a deficit against the float inputs' common rank r (an op's output
    has r - deficit axes; reductions remove axes from the right), and the least r for which no
    reduction or gather touches axis 0."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.min_rank = 1
        self._deficits: dict[sp.Symbol, int] = {}

    def need(self, rank: int) -> None:
        self.min_rank = max(self.min_rank, rank)

    def of(self, e: sp.Basic) -> int | None:
        """The deficit of an elementwise expression (None for a constant). Its leaves must all have
        the same rank: NumPy aligns a lower-rank operand with the trailing axes, not the rows."""
        deficits = {self._leaf(s) for s in e.free_symbols if s in self.graph.op_of}
        if len(deficits) > 1:
            raise _Unblockable
        return deficits.pop() if deficits else None

    def _leaf(self, s: sp.Symbol) -> int:
        if s not in self._deficits:
            self._deficits[s] = self._op(self.graph.op_of[s])
        return self._deficits[s]

    def _op(self, op: Input | Apply) -> int:
        if isinstance(op, Input):
            if op.name in self.graph.index_inputs:
                raise _Unblockable  # labels have their own rank: only a gather may read them
            return 0
        if op.prim == "within":
            return self._operand(op.operands[0])
        if op.prim in REDUCTIONS:
            d = self._operand(op.operands[0])
            axes = op.param("axis")
            axes = (axes,) if isinstance(axes, int) else axes
            if axes is None or not all(isinstance(a, int) and a < 0 for a in axes):
                raise _Unblockable
            self.need(d - min(axes) + 1)  # the deepest axis reduced is not the rows
            return d + (0 if op.param("keepdims") else len(axes))
        if op.prim == "take":
            x, labels = op.operands
            axis = op.param("axis")
            if not (isinstance(labels, sp.Symbol) and isinstance(self.graph.op_of.get(labels), Input)
                    and isinstance(axis, int) and axis < 0):
                raise _Unblockable
            d = self._operand(x)
            self.need(d - axis + 1)
            return d + 1  # labels have the gathered axis removed: their rows are the same rows
        raise _Unblockable

    def _operand(self, e: sp.Expr) -> int:
        d = self.of(e)
        if d is None:
            raise _Unblockable
        return d
