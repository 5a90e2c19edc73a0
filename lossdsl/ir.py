"""Phase 3, the IR: elementwise parts are SymPy expressions; everything else is an explicit op.

A *value* in the IR is a SymPy expression over leaf symbols. Each leaf stands for a tensor
that is materialised at run time: a loss input, or the output of an op (a reduction, a matrix
product, a gather, a primitive). Ops take SymPy expressions as operands, so elementwise
arithmetic between two ops is fused into one expression and differentiated by SymPy.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sympy as sp

MAX_OPS = 5_000


@dataclass(frozen=True)
class Input:
    """A loss input: an array given at call time, by keyword."""

    name: str


@dataclass(frozen=True)
class Apply:
    """A primitive applied to operand expressions, with static parameters (axis, keepdims, ...).

    ``prim`` names an entry of ``lossdsl.builtins.PRIMITIVES``; that entry holds its printers
    and its gradient rule.
    """

    prim: str
    operands: tuple[sp.Expr, ...]
    params: tuple[tuple[str, Any], ...] = ()

    def param(self, name: str) -> Any:
        return dict(self.params)[name]


Op = Input | Apply


@dataclass(frozen=True)
class Tensor:
    """A tensor value during resolution: a SymPy expression, numeric or boolean."""

    expr: sp.Basic

    @property
    def is_bool(self) -> bool:
        return is_boolean(self.expr)


def is_boolean(e: sp.Basic) -> bool:
    """A condition (a comparison, and/or/not, true/false); SymPy symbols are Boolean too, so
    "not an Expr" is what tells them apart."""
    return isinstance(e, sp.logic.boolalg.Boolean) and not isinstance(e, sp.Expr)


def to_sympy(value: int | float | bool) -> sp.Expr:
    """A Python constant as an exact SymPy number (0.1 is 1/10, as the user wrote it)."""
    if isinstance(value, bool):
        return sp.Integer(int(value))
    if isinstance(value, int):
        return sp.Integer(value)
    if value != value or value in (float("inf"), float("-inf")):
        return {True: sp.oo, False: -sp.oo}[value > 0] if value == value else sp.nan
    frac = Fraction(repr(value))
    return sp.Rational(frac.numerator, frac.denominator)


def post_order(expr: sp.Basic, seen: Container[sp.Basic]) -> Iterator[sp.Basic]:
    """The nodes of ``expr`` (a DAG: SymPy shares subexpressions) not in ``seen``, each after its
    arguments, without recursion; the caller puts each node in ``seen`` before taking the next."""
    stack = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        if node in seen:
            continue
        if ready:
            yield node
            continue
        stack.append((node, True))
        stack.extend((a, False) for a in node.args if a not in seen)


def as_number(b: sp.Basic) -> sp.Expr:
    """A boolean expression used as a number is 1 where true and 0 where false."""
    if b is sp.true:
        return sp.Integer(1)
    if b is sp.false:
        return sp.Integer(0)
    if is_boolean(b):
        return sp.Piecewise((sp.Integer(1), b), (sp.Integer(0), True))
    return b


@dataclass(frozen=True)
class Rank:
    """What compile time knows of a value's axes. Input ranks are known only at call time, so a rank
    is a ``deficit`` against the float inputs' common rank r (the value has r - deficit axes;
    reductions remove axes from the right), or ``fixed``: that many axes whatever r is (0 for a full
    reduction). ``dropped`` is a reduction's or gather's (axis, keepdims), ``small`` whether the value
    has fewer elements than the arrays it was computed from (a product multiplies such factors
    together before it meets a whole array)."""

    deficit: int | None = None
    fixed: int | None = None
    dropped: tuple[Any, bool] | None = None
    small: bool = False

    @property
    def scalar(self) -> bool:
        return self.fixed == 0

    def removing(self, axis: int | tuple[int, ...] | None, keepdims: bool) -> Rank:
        """The rank of this value reduced over ``axis`` (None: all axes)."""
        if keepdims:
            return Rank(self.deficit, self.fixed, (axis, keepdims), small=True)
        if axis is None:
            return Rank(fixed=0, dropped=(axis, keepdims), small=True)
        n = len(axis) if isinstance(axis, tuple) else 1
        return Rank(None if self.deficit is None else self.deficit + n,
                    None if self.fixed is None else self.fixed - n, (axis, keepdims), small=True)


FLOAT_INPUT, UNKNOWN = Rank(deficit=0), Rank()
#: how a primitive's output rank follows from its op and its operands' ranks (one rule per registry entry)
RankRule = Callable[["Apply", Callable[[sp.Basic], Rank]], Rank]


class Graph:
    """The ops of one loss, deduplicated, in creation order (a topological order)."""

    def __init__(self, rank_rules: Mapping[str, RankRule]) -> None:
        self._symbol_of: dict[Op, sp.Symbol] = {}
        self.op_of: dict[sp.Symbol, Op] = {}
        self._rank_rules = rank_rules
        self._rank_of: dict[sp.Symbol, Rank] = {}  # each op's rank, set once as the op is created
        self._position: dict[sp.Symbol, int] = {}  # each op's place in graph order: leaves() sorts by it
        self.inputs: list[str] = []
        self.index_inputs: set[str] = set()
        self.checks: list[sp.Symbol] = []  # call-time checks (see check), in creation order

    def copy(self) -> Graph:
        """An independent graph with the same ops, to extend without changing this one."""
        other = Graph(self._rank_rules)
        other._symbol_of, other.op_of, other._rank_of = dict(self._symbol_of), dict(self.op_of), dict(self._rank_of)
        other._position = dict(self._position)
        other.inputs, other.index_inputs = list(self.inputs), set(self.index_inputs)
        other.checks = list(self.checks)
        return other

    def rank(self, e: sp.Basic) -> Rank:
        """The rank of a leaf, or of an elementwise expression: its leaves' common rank, 0-d leaves
        broadcasting (fixed 0 for a constant); unknown where leaves of different ranks meet."""
        if e in self._rank_of:
            return self._rank_of[e]
        if isinstance(e, sp.Symbol):
            return UNKNOWN  # not an op of this graph: a cotangent seed, say
        ranks = {self.rank(s) for s in e.free_symbols}
        arrays = {(r.deficit, r.fixed) for r in ranks if not r.scalar}
        if not arrays:
            return Rank(fixed=0)
        if len(arrays) > 1:
            return UNKNOWN
        ((deficit, fixed),) = arrays
        return Rank(deficit, fixed, small=all(r.small for r in ranks))

    def leaf(self, op: Op) -> sp.Symbol:
        """The symbol standing for ``op``'s output, creating the op if it is new."""
        sym = self._symbol_of.get(op)
        if sym is None:
            if len(self.op_of) >= MAX_OPS:
                from .errors import LimitError
                raise LimitError(f"loss needs more than {MAX_OPS} tensor operations")
            name = op.name if isinstance(op, Input) else f"_t{len(self.op_of)}"
            sym = sp.Symbol(name, real=True)
            self._symbol_of[op] = sym
            self.op_of[sym] = op
            self._rank_of[sym] = self._op_rank(op)
            self._position[sym] = len(self._position)
            if isinstance(op, Input):
                self.inputs.append(op.name)
        return sym

    def _op_rank(self, op: Op) -> Rank:
        if isinstance(op, Input):
            return UNKNOWN if op.name in self.index_inputs else FLOAT_INPUT  # labels have ranks of their own
        rule = self._rank_rules.get(op.prim)
        return UNKNOWN if rule is None else rule(op, self.rank)

    def settle_ranks(self) -> None:
        """Work every op's rank out again, once the inputs that hold labels are all known (the
        resolver learns that as it goes); called by the graph's builder before anyone else reads it."""
        self._rank_of = {}
        for sym, op in self.op_of.items():
            self._rank_of[sym] = self._op_rank(op)

    def input(self, name: str) -> sp.Symbol:
        return self.leaf(Input(name))

    def apply(self, prim: str, *operands: sp.Expr, **params: Any) -> sp.Symbol:
        exprs = tuple(o if isinstance(o, sp.Basic) else to_sympy(o) for o in operands)
        return self.leaf(Apply(prim, exprs, tuple(sorted(params.items()))))

    def check(self, prim: str, operand: sp.Expr, *shaped: sp.Expr, **params: Any) -> sp.Expr:
        """``operand`` itself, with a call-time check of its values (``prim``, such as ``within``)
        recorded beside the expressions rather than inside them: a check never stands between the
        parts of a rule (``log(softmax(z))``) or a derivative, so rewriting and differentiation see
        the expression as if unchecked. The check runs with every output computed from the leaves
        its operand reads (``checks_for``); ``shaped``: operands it reads the shape of."""
        sym = self.apply(prim, operand, *shaped, **params)
        if sym not in self.checks:
            self.checks.append(sym)
        return operand

    def checks_for(self, exprs: list[sp.Basic]) -> list[sp.Symbol]:
        """The checks whose operand reads only leaves that ``exprs`` need (so computing the check
        costs no op that the outputs do not), in graph order."""
        need = set(self.dependencies(exprs))
        return [c for c in self.checks
                if all(s in need for s in self.op_of[c].operands[0].free_symbols if s in self.op_of)]

    def leaves(self, expr: sp.Basic) -> list[sp.Symbol]:
        """The leaf symbols of ``expr``, in graph order."""
        position = self._position
        return sorted((s for s in expr.free_symbols if s in position), key=position.__getitem__)

    def dependencies(self, exprs: list[sp.Basic]) -> list[sp.Symbol]:
        """Every leaf that ``exprs`` need, transitively, in graph (topological) order."""
        need: set[sp.Symbol] = set()
        seen: set[sp.Basic] = set()  # operands already read: ops often share one (a long sum's shape)
        stack = [s for e in exprs for s in e.free_symbols if s in self.op_of]
        while stack:
            s = stack.pop()
            if s in need:
                continue
            need.add(s)
            op = self.op_of[s]
            if isinstance(op, Apply):
                fresh = [o for o in op.operands if o not in seen]
                seen.update(fresh)
                stack.extend(t for o in fresh for t in o.free_symbols if t in self.op_of)
        return sorted(need, key=self._position.__getitem__)

    def __iter__(self) -> Iterator[tuple[sp.Symbol, Op]]:
        return iter(self.op_of.items())
