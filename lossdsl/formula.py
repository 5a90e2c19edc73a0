"""Formulas for people: IR expressions rendered as plain SymPy, element by element.

Inputs become plain symbols (no assumptions, so they compare equal to ``sympy.Symbol(name)``),
element counts become ``n`` (then ``n_2``, ...), and other ops read as each primitive's
``formula`` says: shape bookkeeping disappears, the rest are applied functions such as
``logsumexp(z)`` or ``matmul(transpose(X), g)``.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.printing.str import StrPrinter

from .builtins import ELEMENTWISE, PRIMITIVES
from .ir import Graph, Input, post_order

#: SymPy's functions that the language names otherwise, as undefined functions of the language's names
_NAMED: dict[type, type] = {e.func: sp.Function(e.name) for e in ELEMENTWISE
                            if isinstance(e.func, type) and e.func.__name__ != e.name and e.sympy_class is None}


class Renderer:
    """Renders expressions over one graph; the leaves' forms (and the names of counts: ``n``,
    ``n_2``, ...) are worked out once and shared by every expression it renders."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self._memo: dict[sp.Symbol, sp.Expr] = {}
        self._counts: list[sp.Symbol] = []
        self._taken = set(graph.inputs)

    def _count_symbol(self) -> sp.Symbol:
        k = len(self._counts)
        name = "n" if k == 0 else f"n_{k + 1}"
        while name in self._taken:
            name += "_"
        self._counts.append(sp.Symbol(name, positive=True))
        return self._counts[-1]

    def _leaf(self, sym: sp.Symbol) -> sp.Expr:
        if sym not in self._memo:
            op = self.graph.op_of[sym]
            if isinstance(op, Input):
                self._memo[sym] = sym  # the IR's own (real) symbol: renamed once, at the end
            elif op.prim == "count":
                self._memo[sym] = self._count_symbol()
            elif op.prim == "index":
                x, *positions = (self._sub(o) for o in op.operands)
                self._memo[sym] = At(x, sp.Symbol(_spec_text(op.param("spec"))), *positions)
            else:
                shown = PRIMITIVES[op.prim].formula or sp.Function(op.prim)
                self._memo[sym] = shown(*(self._sub(o) for o in op.operands))
        return self._memo[sym]

    def _sub(self, e: sp.Expr) -> sp.Expr:
        # inputs render as themselves: replacing them anyway would rebuild (and re-evaluate) every node
        # in graph order, not a set's: counts are named n, n_2, ... alike in every process
        changed = {s: shown for s in self.graph.leaves(e) if (shown := self._leaf(s)) is not s}
        return _replaced(e, changed, {}) if changed else e

    def __call__(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every leaf replaced by its readable form."""
        # Work with real symbols, as the IR does, and rename them to plain ones at the end without
        # re-evaluating: SymPy re-deriving assumptions of plain symbols through nested functions
        # (tanh(tanh(...))) takes exponential time.
        shown = self._sub(expr)
        # each distinct node once (free_symbols walks the tree: a gradient repeats its subtrees so often
        # that the walk took most of a render)
        nodes: set[sp.Basic] = set()
        for node in post_order(shown, nodes):
            nodes.add(node)
        with sp.evaluate(False):
            shown = _replaced(shown, {s: sp.Symbol(s.name) for s in nodes if isinstance(s, sp.Symbol)}, {})
            if not any(type(n) in _NAMED for n in nodes):
                return shown
            # SymPy's atan2, asin, ... under the names the language gives them (arctan2, arcsin, ...)
            return shown.xreplace({f: _NAMED[type(f)](*f.args) for f in shown.atoms(sp.Function) if type(f) in _NAMED})


class TextPrinter(StrPrinter):
    """``doprint(e)`` is ``sympy.sstr(e)``, printing each distinct subexpression once, across every
    expression one printer prints (a loss and its gradients share theirs). The text StrPrinter gives
    an expression does not depend on where it stands (a parent adds its parentheses around it), and a
    gradient's formula repeats its subtrees many times."""

    def __init__(self) -> None:
        super().__init__()
        self._printed: dict[sp.Basic, str] = {}

    def _print(self, expr: Any, **kwargs: Any) -> str:
        if kwargs or not isinstance(expr, sp.Basic):
            return super()._print(expr, **kwargs)
        text = self._printed.get(expr)
        if text is None:
            text = self._printed[expr] = super()._print(expr)
        return text


class At(sp.Function):
    """``x[...]`` in a formula: an index op's operand, its spec (``{}`` where a position is computed)
    and the computed positions, printed as NumPy writes the indexing."""

    def _sympystr(self, printer: Any) -> str:
        x, spec, *positions = self.args
        base = printer._print(x)
        base = base if x.is_Atom or isinstance(x, sp.Function) else f"({base})"
        return f"{base}[{spec.name.format(*(printer._print(p) for p in positions))}]"

    def _latex(self, printer: Any) -> str:
        x, spec, *positions = self.args
        return rf"{printer._print(x)}\left[{spec.name.format(*(printer._print(p) for p in positions))}\right]"


def _replaced(e: sp.Basic, rule: dict[sp.Basic, sp.Basic], memo: dict[sp.Basic, sp.Basic]) -> sp.Basic:
    """``e.xreplace(rule)``, but a where (Piecewise) is rebuilt as it stands: SymPy's Piecewise re-decides
    its conditions when rebuilt (piecewise_fold, simplify_logic), seconds for a batch of masks (supcon),
    for a formula that only prints."""
    if e in rule:
        return rule[e]
    if not e.args:
        return e
    if e not in memo:
        args = tuple(_replaced(a, rule, memo) for a in e.args)
        memo[e] = e if args == e.args else (
            sp.Basic.__new__(type(e), *args) if isinstance(e, sp.Piecewise | ExprCondPair) else e.func(*args))
    return memo[e]


def _spec_text(spec: tuple[tuple[Any, ...], ...]) -> str:
    """An index spec as NumPy's text: ``(('s', 1, None, None), ('i', -1))`` is ``1:, -1``."""
    def part(item: tuple[Any, ...]) -> str:
        if item[0] == "e":
            return "..."
        if item[0] == "i":
            return "{}" if item[1] == "d" else str(item[1])
        start, stop, step = ("{}" if v == "d" else "" if v is None else str(v) for v in item[1:])
        return f"{start}:{stop}" + (f":{step}" if step else "")
    return ", ".join(part(item) for item in spec)


def render(graph: Graph, expr: sp.Expr) -> sp.Expr:
    """``expr`` with every leaf replaced by its readable form."""
    return Renderer(graph)(expr)


def text(e: sp.Basic) -> str:
    """``sympy.sstr(e)``, each distinct subexpression printed once (TextPrinter)."""
    return TextPrinter().doprint(e)
