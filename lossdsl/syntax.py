"""The abstract syntax tree: frozen dataclasses, one per grammar alias, each with its span."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Span


@dataclass(frozen=True)
class Node:
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Number(Node):
    value: int | float = 0
    text: str = "0"


@dataclass(frozen=True)
class String(Node):
    value: str = ""


@dataclass(frozen=True)
class Constant(Node):
    """``true``, ``false`` or ``none``."""

    value: bool | None = None


@dataclass(frozen=True)
class Name(Node):
    id: str = ""


@dataclass(frozen=True)
class Keyword(Node):
    name: str = ""
    value: Expr | None = None


@dataclass(frozen=True)
class Call(Node):
    func: str = ""
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Keyword, ...] = ()


@dataclass(frozen=True)
class BinOp(Node):
    """Arithmetic (``+ - * / ^ @``), comparison (``== != < <= > >=``) or ``and``/``or``."""

    op: str = "+"
    left: Expr | None = None
    right: Expr | None = None


@dataclass(frozen=True)
class UnaryOp(Node):
    """``-x``, ``+x`` or ``not x``."""

    op: str = "-"
    operand: Expr | None = None


@dataclass(frozen=True)
class IfExp(Node):
    """``body if test else orelse``: chosen at compile time when ``test`` is a constant."""

    test: Expr | None = None
    body: Expr | None = None
    orelse: Expr | None = None


@dataclass(frozen=True)
class Tuple(Node):
    """``(a, b)`` or ``(a,)``: a tuple of constants, such as the axes of a reduction."""

    items: tuple[Expr, ...] = ()


@dataclass(frozen=True)
class Slice(Node):
    """``start:stop:step`` inside brackets, each part optional."""

    start: Expr | None = None
    stop: Expr | None = None
    step: Expr | None = None


@dataclass(frozen=True)
class EllipsisItem(Node):
    """``...`` inside brackets: as many ``:`` as the array's other axes need."""


@dataclass(frozen=True)
class Index(Node):
    """``value[items]``: NumPy's basic indexing by integers, slices and ``...``."""

    value: Expr | None = None
    items: tuple[Expr | Slice | EllipsisItem, ...] = ()


Expr = Number | String | Constant | Name | Call | BinOp | UnaryOp | IfExp | Tuple | Index


@dataclass(frozen=True)
class Param(Node):
    name: str = ""
    default: Expr | None = None


@dataclass(frozen=True)
class Assign(Node):
    name: str = ""
    value: Expr | None = None


@dataclass(frozen=True)
class Assert(Node):
    """``assert test, "message"``: checked at compile time; ``test`` must be a constant."""

    test: Expr | None = None
    message: Expr | None = None


@dataclass(frozen=True)
class Return(Node):
    value: Expr | None = None


@dataclass(frozen=True)
class ExprStmt(Node):
    value: Expr | None = None


@dataclass(frozen=True)
class FuncDef(Node):
    """``def name(params):`` with a docstring, local bindings and a ``return``."""

    name: str = ""
    params: tuple[Param, ...] = ()
    doc: str = ""
    body: tuple[Assign | Assert, ...] = ()
    result: Expr | None = None
    family: str = "user"


@dataclass(frozen=True)
class Program(Node):
    """Definitions and top-level bindings, ending (for a loss) with the expression to compile."""

    defs: tuple[FuncDef, ...] = ()
    bindings: tuple[Assign | Assert, ...] = ()
    result: Expr | None = None
