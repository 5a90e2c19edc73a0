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
    """Each value's rank deficit (from the IR: ``Graph.rank``), checked to keep the rows apart,
    and the least common rank r of the float inputs for which no reduction or gather touches axis 0."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.min_rank = 1
        self._checked: set[sp.Symbol] = set()

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
        if s not in self._checked:
            self._check(self.graph.op_of[s])
            self._checked.add(s)
        deficit = self.graph.rank(s).deficit
        if deficit is None:
            raise _Unblockable
        return deficit

    def _check(self, op: Input | Apply) -> None:
        """Raise _Unblockable unless ``op`` keeps rows apart; note the rank it needs for that."""
        if isinstance(op, Input):
            if op.name in self.graph.index_inputs:
                raise _Unblockable  # labels have their own rank: only a gather may read them
            return
        if op.prim == "within":
            self._operand(op.operands[0])
        elif op.prim in REDUCTIONS or op.prim == "log_softmax":  # it reads along its axis only
            d = self._operand(op.operands[0])
            axes = op.param("axis")
            axes = (axes,) if isinstance(axes, int) else axes
            if axes is None or not all(isinstance(a, int) and a < 0 for a in axes):
                raise _Unblockable
            self.need(d - min(axes) + 1)  # the deepest axis reduced is not the rows
        elif op.prim == "take":
            x, labels = op.operands
            axis = op.param("axis")
            if not (isinstance(labels, sp.Symbol) and isinstance(self.graph.op_of.get(labels), Input)
                    and isinstance(axis, int) and axis < 0):
                raise _Unblockable
            self.need(self._operand(x) - axis + 1)  # labels have the gathered axis removed: the same rows
        else:
            raise _Unblockable

    def _operand(self, e: sp.Expr) -> int:
        d = self.of(e)
        if d is None:
            raise _Unblockable
        return d
