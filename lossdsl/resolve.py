"""Phase 2, resolve: AST → IR, by evaluating the program at compile time.

Constants (numbers, strings, booleans, ``none``) are folded here, so options such as
``from_logits=true`` or ``reduction="sum"`` choose a branch before any code is generated.
Calls to definitions are inlined; calls to builtins build IR through their registry entry.
Free names at the top level are the loss's inputs.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import sympy as sp

from . import syntax as A
from .args import Args, Value, describe, static_number
from .arrays import as_static
from .builtins import BUILTINS, RANK_RULES, REQUIRED, clip, maximum, minimum
from .diagnose import KEYWORDS
from .errors import (
    LimitError,
    LossDSLError,
    LossTypeError,
    NameResolutionError,
    ParameterError,
    Span,
    did_you_mean,
    keyword_suggestion,
)
from .grad_form import binding_leaf, splice_gradient
from .ir import Apply, Graph, Input, Tensor, as_number, to_sympy
from .limits import MAX_EVAL_DEPTH, MAX_EVALUATIONS, ExprMeter, check_exponent, check_power
from .representable import COMPLEX, HINT, OVERFLOW, UNDEFINED, UNDERFLOW
from .rewrite import fold_ops

MAX_CALL_DEPTH = 64
# ASCII only: no look-alikes reach generated code; and never a leading '_', which internal names have.
# A name the generated code reads itself (np, lambda, len, ...) is still an input: see printer.code_names
INPUT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
IMPLICIT = ("y_true", "y_pred")
#: names that are numbers unless bound (NumPy's e and nan stay inputs: analysis.report notes them)
CONSTANTS: dict[str, float] = {"pi": math.pi, "inf": math.inf}


@dataclass(frozen=True)
class Frame:
    """A definition being inlined, and the call that inlined it."""

    name: str
    span: Span
    from_user: bool  # called from the user's program rather than from the library


@dataclass
class Scope:
    """Names visible while evaluating: local bindings, then globals, then (top level) inputs."""

    where: str
    variables: dict[str, Value] = field(default_factory=dict)
    library_only: bool = False  # inside a stdlib definition, user definitions are invisible
    free_names_are_inputs: bool = False
    parameters: frozenset[str] = frozenset()  # a definition's parameters: values its caller computed


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
}
_LONG_CHAIN = 16  # operators in a row, from which a sum or product of tensors is built at once


def _plain(v: Value) -> bool:
    """A numeric tensor (not a condition, not a number known at compile time)."""
    return isinstance(v, Tensor) and not v.is_bool


_COMPARE_STATIC = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
                   ">": operator.gt, ">=": operator.ge}
_COMPARE_SYMBOLIC = {"==": sp.Eq, "!=": sp.Ne, "<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge}


class Resolver:
    """Evaluates a program against the library and the builtins, building one IR graph."""

    def __init__(self, program: A.Program, library: dict[str, A.FuncDef]):
        self.graph = Graph(RANK_RULES)
        self.library = library
        # the names the library's own definitions give their inputs (gaussian_nll's 'var'): an input
        # may take one of them though a function has it too, since calls and values never meet
        self.parameter_names = frozenset(p.name for d in library.values() for p in d.params)
        self.user = {d.name: d for d in program.defs}
        for d in program.defs:
            if d.name in BUILTINS:
                raise NameResolutionError(f"'{d.name}' is a builtin and cannot be redefined", d.span)
        self.program = program
        self.globals: dict[str, Value] = {}
        self.frames: list[Frame] = []  # definitions being inlined, innermost last
        self.meter = ExprMeter(bounds=(maximum, minimum, clip))
        self.evaluations = self.depth = 0

    # --- entry point ----------------------------------------------------------------------
    def resolve(self) -> sp.Expr:
        top = Scope("the loss", self.globals, free_names_are_inputs=True)
        for b in self.program.bindings:
            self._statement(b, top)
        if self.program.result is None:
            raise NameResolutionError("the program has no loss expression to compile; "
                                      "end it with the loss, e.g. mse(y_true, y_pred)", self.program.span)
        value = self.eval(self.program.result, top)
        self.graph.settle_ranks()  # the inputs that hold labels are all known now
        if isinstance(value, Tensor):
            return as_number(value.expr)
        if static_number(value) or isinstance(value, bool):
            return to_sympy(value)
        raise LossTypeError(f"the loss must be a number or a tensor, not {describe(value)}",
                            self.program.result.span)

    # --- names ----------------------------------------------------------------------------
    def _functions(self, scope: Scope) -> dict[str, Any]:
        return {**BUILTINS, **self.library, **({} if scope.library_only else self.user)}

    def _check_binding_name(self, name: str, span: Span) -> None:
        if name in BUILTINS or name in self.library or name in self.user:
            raise NameResolutionError(f"'{name}' is a function and cannot be rebound", span)

    def _name(self, node: A.Name, scope: Scope) -> Value:
        if node.id in scope.variables:
            return scope.variables[node.id]
        if node.id in self.globals and not scope.library_only:
            return self.globals[node.id]
        if node.id in self._functions(scope) and not (scope.free_names_are_inputs and node.id in self.parameter_names):
            raise LossTypeError(f"'{node.id}' is a function; call it as {node.id}(...)", node.span)
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if not scope.free_names_are_inputs:
            close = did_you_mean(node.id, [*scope.variables, *({} if scope.library_only else self.globals)])
            frame = self.frames[-1] if self.frames else None
            hint = None if frame is None or scope.library_only else (
                f"a definition reads its parameters and the names bound at the top level before the call; "
                f"pass '{node.id}' as a parameter: def {frame.name}(..., {node.id}), called as {frame.name}(..., {node.id})")
            raise NameResolutionError(f"name '{node.id}' is not defined in {scope.where}{close}", node.span, hint)
        return Tensor(self._input(node.id, node.span))

    def _input(self, name: str, span: Span) -> sp.Symbol:
        if not INPUT_NAME.fullmatch(name):
            raise NameResolutionError(f"'{name}' cannot name an input: it starts with '_'", span,
                                      "rename it; input names are ASCII letters, digits and '_'")
        return self.graph.input(name)

    # --- expressions ----------------------------------------------------------------------
    def eval(self, node: A.Expr, scope: Scope) -> Value:
        """Evaluate one node, within the limits on work, nesting and expression size."""
        self.evaluations += 1
        if self.evaluations > MAX_EVALUATIONS:
            raise LimitError(f"the loss expands to more than {MAX_EVALUATIONS} expression nodes once "
                             "definitions are inlined", node.span)
        if self.depth >= MAX_EVAL_DEPTH:
            raise LimitError(f"expression nested deeper than {MAX_EVAL_DEPTH} levels once definitions "
                             "are inlined", node.span)
        self.depth += 1
        try:
            value = self._eval(node, scope)
        finally:
            self.depth -= 1
        if isinstance(value, Tensor):
            self.meter.check(value.expr, node.span)
        return value

    def _eval(self, node: A.Expr, scope: Scope) -> Value:
        if isinstance(node, A.Number):
            return node.value
        if isinstance(node, A.String):
            return node.value
        if isinstance(node, A.Constant):
            return node.value
        if isinstance(node, A.Name):
            return self._name(node, scope)
        if isinstance(node, A.Call):
            return self._call(node, scope)
        if isinstance(node, A.BinOp):
            return self._binop(node, scope)
        if isinstance(node, A.UnaryOp):
            return self._unary(node, scope)
        if isinstance(node, A.IfExp):
            return self._ifexp(node, scope)
        if isinstance(node, A.Tuple):
            return tuple(self.eval(item, scope) for item in node.items)
        if isinstance(node, A.Index):
            return self._index(node, scope)
        raise AssertionError(f"no rule for {type(node).__name__}")  # the grammar makes no other node

    def _numeric(self, v: Value, span: Span, what: str) -> sp.Expr:
        if isinstance(v, Tensor):
            return as_number(v.expr)
        if static_number(v) or isinstance(v, bool):
            return to_sympy(v)
        raise LossTypeError(f"{what} needs numbers or tensors, not {describe(v)}", span)

    def _boolean(self, v: Value, span: Span, what: str) -> sp.Basic | bool:
        if isinstance(v, bool):
            return v
        if isinstance(v, Tensor) and v.is_bool:
            return v.expr
        op = self.graph.op_of.get(v.expr) if isinstance(v, Tensor) else None
        hint = did_you_mean(op.name, KEYWORDS).removeprefix(" — ") if isinstance(op, Input) else ""
        raise LossTypeError(f"{what} needs a condition such as 'a > b', not {describe(v)}", span, hint or None)

    def _binop(self, node: A.BinOp, scope: Scope) -> Value:
        if node.op in ("and", "or"):
            return self._logical(node, scope)
        spine = []  # a + b + c + ... is left-deep: walk it without recursion
        while isinstance(node, A.BinOp) and node.op not in ("and", "or"):
            spine.append(node)
            node = node.left
        value = self.eval(node, scope)
        # a long run of + and - (or of *) over tensors is built as one SymPy node: step by step,
        # each step re-sorts the whole sum so far, quadratic in its length
        ops = {b.op for b in spine}
        chain = len(spine) >= _LONG_CHAIN and (ops <= {"+", "-"} or ops == {"*"})
        join = sp.Mul if ops == {"*"} else sp.Add
        run: list[Tensor] = []
        for b in reversed(spine):
            right = self.eval(b.right, scope)
            if chain and _plain(value) and _plain(right):
                run = run or [value]
                run.append(Tensor(-right.expr) if b.op == "-" else right)
                continue
            value = self._joined(run, value, join)
            run = []
            value = self._keep_shape(self._apply(b, value, right), (value, right))
            if isinstance(value, Tensor):  # a constant out of range is refused at the step that makes it
                self.meter.check_constants(value.expr, b.span)
        return self._joined(run, value, join)

    def _joined(self, run: list[Tensor], value: Value, join: type[sp.Add] | type[sp.Mul]) -> Value:
        """The sum or product of ``run`` (``value`` where it is empty), its shape kept as each
        step's would be."""
        if not run:
            return value
        return self._keep_shape(Tensor(join(*(t.expr for t in run))), tuple(run))

    def _apply(self, node: A.BinOp, left: Value, right: Value) -> Value:
        op = node.op
        if op == "@":
            return Tensor(self.graph.apply("matmul", self._numeric(left, node.span, "'@'"),
                                           self._numeric(right, node.span, "'@'")))
        if op in _COMPARE_STATIC:
            return self._compare(op, left, right, node.span)
        if static_number(left) and static_number(right):
            return self._fold(op, left, right, node.span)
        a = self._numeric(left, node.span, f"'{op}'")
        b = self._numeric(right, node.span, f"'{op}'")
        if op == "^":
            check_power(a, b, self.meter, node.span)
            return Tensor(sp.Pow(a, b))
        return Tensor(_ARITH[op](a, b))

    def _fold(self, op: str, a: int | float, b: int | float, span: Span) -> int | float:
        nonzero = a != 0  # whether the exact result is nonzero (a power of a nonzero number is)
        try:
            if op == "^":
                check_exponent(b, span)
                result = float(a) ** float(b) if not (isinstance(a, int) and isinstance(b, int)
                                                      and 0 <= b <= 64 and abs(a) < 2**16) else a ** b
            elif isinstance(a, float) or isinstance(b, float) or op == "/":
                # exact in the decimals as written, rounded once: 0.9 - 1 is -0.1, which SymPy then
                # reads as -1/10, not -0.09999999999999998 (see ir.to_sympy)
                exact = _ARITH[op](Fraction(repr(a)), Fraction(repr(b)))
                result, nonzero = float(exact), exact != 0
            else:
                result = _ARITH[op](a, b)
                nonzero = result != 0
            if isinstance(result, int) and abs(result) >= 2**63:  # exact ints would grow without bound
                result = float(result)
        except ZeroDivisionError:
            raise LossTypeError("division by zero in a constant expression", span) from None
        except OverflowError:
            result = math.inf
        except ValueError:  # math domain error
            result = math.nan
        why = (COMPLEX if isinstance(result, complex) else UNDEFINED if result != result
               else OVERFLOW if math.isinf(result) else UNDERFLOW if result == 0 and nonzero else None)
        if why:
            shown = " ".join(f"({v!r})" if isinstance(v, (int, float)) and v < 0 else str(v) for v in (a, op, b))
            raise LossTypeError(f"the constant {shown} {why}", span, None if why == COMPLEX else HINT)
        return result

    def _compare(self, op: str, left: Value, right: Value, span: Span) -> Value:
        if left is None or right is None or isinstance(left, str) or isinstance(right, str):
            if op not in ("==", "!="):
                raise LossTypeError(f"'{op}' cannot compare {describe(left)} with {describe(right)}", span)
            if isinstance(left, Tensor) or isinstance(right, Tensor):
                other = right if isinstance(left, Tensor) else left
                if other is not None:
                    raise LossTypeError(f"cannot compare a tensor with {describe(other)}", span)
                return (op == "!=")  # a tensor is never none
            return _COMPARE_STATIC[op](left, right)
        if not isinstance(left, Tensor) and not isinstance(right, Tensor):
            return _COMPARE_STATIC[op](left, right)
        a, b = self._numeric(left, span, f"'{op}'"), self._numeric(right, span, f"'{op}'")
        result = _COMPARE_SYMBOLIC[op](a, b)
        if result not in (sp.true, sp.false):
            return Tensor(result)
        leaves = sorted(a.free_symbols | b.free_symbols, key=lambda s: s.name)
        if not leaves:
            return bool(result)
        # x > x is false everywhere, but still shaped like x
        zeros = self.graph.apply("broadcast", 0, sp.Add(*leaves))
        return Tensor(sp.Eq(zeros, 0) if result is sp.true else sp.Ne(zeros, 0))

    def _logical(self, node: A.BinOp, scope: Scope) -> Value:
        what = f"'{node.op}'"
        left = self._boolean(self.eval(node.left, scope), node.left.span, what)
        if isinstance(left, bool) and left == (node.op == "or"):
            return left  # short-circuit: the right side is not evaluated
        right = self._boolean(self.eval(node.right, scope), node.right.span, what)
        if isinstance(left, bool):
            return right if isinstance(right, bool) else Tensor(right)
        result = (sp.And if node.op == "and" else sp.Or)(left, right)
        return bool(result) if result in (sp.true, sp.false) else Tensor(result)

    def _unary(self, node: A.UnaryOp, scope: Scope) -> Value:
        v = self.eval(node.operand, scope)
        if node.op == "not":
            b = self._boolean(v, node.operand.span, "'not'")
            return (not b) if isinstance(b, bool) else Tensor(sp.Not(b))
        if static_number(v):
            return -v if node.op == "-" else v
        e = self._numeric(v, node.span, f"unary '{node.op}'")
        return Tensor(-e if node.op == "-" else e)  # negation keeps every leaf

    def _ifexp(self, node: A.IfExp, scope: Scope) -> Value:
        test = self._boolean(self.eval(node.test, scope), node.test.span, "'if'")
        if isinstance(test, bool):
            return self.eval(node.body if test else node.orelse, scope)
        body = self._numeric(self.eval(node.body, scope), node.body.span, "a tensor 'if'")
        orelse = self._numeric(self.eval(node.orelse, scope), node.orelse.span, "a tensor 'if'")
        return self._keep_shape(Tensor(sp.Piecewise((body, test), (orelse, True))),
                                (Tensor(test), Tensor(body), Tensor(orelse)))

    def _keep_shape(self, result: Value, operands: tuple[Value, ...]) -> Value:
        """Keep the broadcast shape that SymPy's simplification would drop from an elementwise
        result: ``x - x`` is 0, but ``sum(x - x + 1)`` must still count the elements of ``x``."""
        if not isinstance(result, Tensor) or result.is_bool:
            return result
        before = set().union(*(v.expr.free_symbols for v in operands if isinstance(v, Tensor)))
        after = result.expr.free_symbols
        # a number kept broadcast earlier whose shape the rest of the result now carries
        carried = {b: op.operands[0] for b in after if isinstance(op := self.graph.op_of.get(b), Apply)
                   and op.prim == "broadcast" and op.operands[0].is_Number
                   and all(s in after or self._shape_implied(s, after - {b}) for s in op.operands[1].free_symbols)}
        if carried:
            result = Tensor(result.expr.xreplace(carried))
            after = result.expr.free_symbols
        lost = {s for s in before - after - carried.keys() if not self._shape_implied(s, after)}
        if not lost or not after <= before:  # a new op (a reduction, a product) has its own shape
            return result
        carrier = sp.Add(*sorted(lost, key=lambda s: s.name))
        return Tensor(self.graph.apply("broadcast", result.expr, carrier))

    def _shape_implied(self, lost: sp.Symbol, kept: set[sp.Symbol]) -> bool:
        """Whether ``lost`` adds nothing to the shape broadcast from ``kept``: it is 0-d, or it
        drops the same axis, counted from the end, as a kept reduction or gather whose operand
        broadcasts everything its own does (cce's ``mean(x, -1)`` beside ``sum(y*x, -1)`` when
        label_smoothing is 0). Dropped, it is never computed."""
        if self.graph.rank(lost).scalar:
            return True
        dropped = self.graph.rank(lost).dropped
        if dropped is None or not (isinstance(dropped[0], int) and dropped[0] < 0):
            return False
        leaves = self.graph.op_of[lost].operands[0].free_symbols
        return any(self.graph.rank(k).dropped == dropped and leaves <= self.graph.op_of[k].operands[0].free_symbols
                   for k in kept)

    # --- indexing -------------------------------------------------------------------------
    def _index(self, node: A.Index, scope: Scope) -> Value:
        """``x[items]``: one ``index`` op whose spec holds the constant positions and whose operands
        after ``x`` are the run-time ones (each checked at call time by an ``index_check``)."""
        x = self.eval(node.value, scope)
        if not isinstance(x, Tensor) or x.is_bool or x.expr.is_number:
            raise LossTypeError(f"only a tensor can be indexed, not {describe(x)}", node.value.span)
        values: dict[str, Value] = {"x": x}
        spans = {"x": node.value.span}
        written = {"x": node.value.id} if isinstance(node.value, A.Name) else {}
        positions: list[tuple[str, A.Expr]] = []  # (name in values, node) of each run-time position
        spec: list[tuple[Any, ...]] = []
        if sum(isinstance(item, A.EllipsisItem) for item in node.items) > 1:
            raise LossTypeError("an index can hold only one '...'", node.span)
        for item in node.items:
            if isinstance(item, A.EllipsisItem):
                spec.append(("e",))
            elif isinstance(item, A.Slice):
                parts = [self._position(p, scope, values, spans, positions) for p in (item.start, item.stop, item.step)]
                if parts[2] == 0:
                    raise LossTypeError("a slice's step cannot be zero", item.step.span)
                spec.append(("s", *parts))
            else:
                spec.append(("i", self._position(item, scope, values, spans, positions)))
        frame = self.user_frame()
        a = Args(self.graph, frame and frame.name, "indexing", node.span, values, spans, set(values), written)
        label = a.describe_input("x")
        operands = [a.index(name) for name, _ in positions]
        dynamic = iter(zip(operands, (a.describe_input(name) for name, _ in positions)))
        # a run-time integer position is checked against its axis, counted from the end after a '...'
        named = [k for k, item in enumerate(spec) if item[0] != "e"]
        ellipsis = next((k for k, item in enumerate(spec) if item[0] == "e"), len(spec))
        for k, item in enumerate(spec):
            for part in item[1:]:
                if part != "d":
                    continue
                value, what = next(dynamic)
                if item[0] == "i":
                    axis = named.index(k) if k < ellipsis else -sum(1 for j in named if j >= k)
                    self.graph.check("index_check", value, x.expr, axis=axis, label=what, into=label)
        return Tensor(self.graph.apply("index", as_number(x.expr), *operands, spec=tuple(spec), label=label))

    def _position(self, node: A.Expr | None, scope: Scope, values: dict[str, Value], spans: dict[str, Span],
                  positions: list[tuple[str, A.Expr]]) -> int | str | None:
        """An index or slice bound: a constant integer, None (omitted), or "d" for a run-time number,
        which is added to ``values`` for the op's operands."""
        if node is None:
            return None
        v = self.eval(node, scope)
        if isinstance(v, Tensor) and not v.is_bool and v.expr.is_Integer:
            v = int(v.expr)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, Tensor) and not v.is_bool and not v.expr.is_number:
            static = as_static(self.graph, v.expr)  # from size(...): a Python int, known while jit traces
            v = v if static is None else Tensor(static)
            name = f"position {len(positions)}"
            values[name], spans[name] = v, node.span
            positions.append((name, node))
            return "d"
        raise LossTypeError(f"an index must be an integer, a slice 'start:stop:step' or '...', not {describe(v)}; "
                            "take(x, labels, axis=k) gathers one entry per integer label", node.span)

    # --- calls ----------------------------------------------------------------------------
    def _call(self, node: A.Call, scope: Scope) -> Value:
        functions = self._functions(scope)
        target = functions.get(node.func)
        if target is None:
            hint = did_you_mean(node.func, {**BUILTINS, **({} if scope.library_only else self.user)}, self.library)
            raise NameResolutionError(f"unknown function '{node.func}'{hint}", node.span)
        if target is BUILTINS["grad"]:
            return self._grad(node, scope)
        if isinstance(target, A.FuncDef):
            params = tuple((p.name, REQUIRED if p.default is None else p.default) for p in target.params)
        else:
            params = target.params
        names = [p for p, _ in params]
        implicit: dict[str, Value] = {}
        given_kw = {k.name for k in node.kwargs}
        if not node.args and names[:2] == list(IMPLICIT):
            for n in IMPLICIT:
                if n not in given_kw:
                    implicit[n] = Tensor(self._input(n, node.span))
        values = {**implicit}
        spans: dict[str, Span] = {}
        variadic = not isinstance(target, A.FuncDef) and target.variadic
        if variadic:  # concat(a, b, c, axis=1): every positional argument goes to the first parameter
            if node.args:
                values[names[0]] = tuple(self.eval(arg, scope) for arg in node.args)
                spans[names[0]] = node.args[0].span
        elif len(node.args) > len(params):
            extra = node.args[len(params)]
            raise NameResolutionError(f"{node.func}() takes at most {len(params)} positional arguments "
                                      f"({', '.join(names)})", extra.span)
        written: dict[str, str] = {}  # the arguments written as a bare name
        for (name, _), arg in zip(params, () if variadic else node.args):
            values[name] = self.eval(arg, scope)
            spans[name] = arg.span
            if isinstance(arg, A.Name):
                written[name] = arg.id
        for kw in node.kwargs:
            if kw.name not in names:
                hint = keyword_suggestion(kw.name, names)
                raise NameResolutionError(f"{node.func}() has no parameter '{kw.name}'{hint}", kw.span)
            if kw.name in values:
                raise NameResolutionError(f"{node.func}() got two values for '{kw.name}'", kw.span)
            values[kw.name] = self.eval(kw.value, scope)
            spans[kw.name] = kw.span
            if isinstance(kw.value, A.Name):
                written[kw.name] = kw.value.id
        given = set(values)
        for name, default in params:
            if name not in values:
                if default is REQUIRED:
                    raise NameResolutionError(f"{node.func}() is missing its argument '{name}'", node.span)
                values[name] = default
        if isinstance(target, A.FuncDef):
            return self._inline(target, values, node.span, spans, from_user=not scope.library_only)
        frame = self.user_frame()
        result = target.build(Args(self.graph, frame and frame.name, node.func, node.span, values, spans, given,
                                   written))
        if isinstance(result, Tensor):  # log(sum(exp(x))) -> logsumexp(x), as the IR is built
            result = Tensor(fold_ops(self.graph, result.expr))
        return self._keep_shape(result, tuple(values.values()))

    def _grad(self, node: A.Call, scope: Scope) -> Value:
        """``grad(expr, x)``: ``expr`` evaluated with ``x`` as a leaf, and its gradient by that leaf spliced
        in (grad_form.py). A binding is replaced, while ``expr`` is evaluated, by a stand-in leaf for its
        value, so that only what is built from the binding is differentiated."""
        given = self._unevaluated(node, ("expr", "x"))
        target = given["x"]
        if not isinstance(target, A.Name):
            raise LossTypeError("grad(expr, x): x must be the name of an input or a binding, not an expression",
                                target.span, "bind the expression to a name first: h = ..., then grad(expr, h)")
        holder = scope.variables if target.id in scope.variables else (
            self.globals if target.id in self.globals and not scope.library_only else None)
        if holder is None:  # an input (or an error: a function, an undefined name)
            return self._gradient_by(given["expr"], scope, self._name(target, scope).expr, node)
        bound = holder[target.id]
        if not _plain(bound) or bound.expr.is_Number:
            raise LossTypeError(f"grad(expr, {target.id}): '{target.id}' is {describe(bound)}, not a tensor "
                                "computed from the inputs; only those have gradients", target.span)
        if target.id in scope.parameters and holder is scope.variables:
            # a parameter's value, and the expressions the caller passed beside it, were built before the
            # call: differentiate by the leaf it holds (an input, or an op's output such as x @ W)
            if bound.expr not in self.graph.op_of:
                raise LossTypeError(f"grad(expr, {target.id}): the parameter '{target.id}' holds an expression "
                                    "its caller computed, not an input or an op's output, so expr cannot be "
                                    "differentiated by it", target.span,
                                    "pass an input (or x @ W, a binding the caller made of one op) as this argument")
            return self._gradient_by(given["expr"], scope, bound.expr, node)
        holder[target.id] = Tensor(binding_leaf(self.graph, bound.expr))
        try:
            return self._gradient_by(given["expr"], scope, holder[target.id].expr, node)
        finally:
            holder[target.id] = bound

    def _gradient_by(self, expr: A.Expr, scope: Scope, leaf: sp.Symbol, node: A.Call) -> Tensor:
        value = self._numeric(self.eval(expr, scope), expr.span, "grad()")
        x = node.args[1] if len(node.args) > 1 else next(k for k in node.kwargs if k.name == "x")
        op = self.graph.op_of.get(leaf)
        if isinstance(op, Input) and op.name in self.graph.index_inputs:
            raise LossTypeError(f"grad(expr, {op.name}): '{op.name}' holds integer labels, which have no gradient",
                                x.span)
        self.graph.settle_ranks()  # the inputs that hold labels, as far as they are known
        self.graph, gradient = splice_gradient(self.graph, value, leaf, node.span)
        return Tensor(gradient)

    def _unevaluated(self, node: A.Call, names: tuple[str, ...]) -> dict[str, A.Expr]:
        """The arguments of a call whose form reads them unevaluated, by parameter name."""
        if len(node.args) > len(names):
            raise NameResolutionError(f"{node.func}() takes at most {len(names)} positional arguments "
                                      f"({', '.join(names)})", node.args[len(names)].span)
        given = dict(zip(names, node.args))
        for kw in node.kwargs:
            if kw.name not in names:
                raise NameResolutionError(f"{node.func}() has no parameter '{kw.name}'"
                                          f"{keyword_suggestion(kw.name, names)}", kw.span)
            if kw.name in given:
                raise NameResolutionError(f"{node.func}() got two values for '{kw.name}'", kw.span)
            given[kw.name] = kw.value
        for name in names:
            if name not in given:
                raise NameResolutionError(f"{node.func}() is missing its argument '{name}'", node.span)
        return given

    def _inline(self, d: A.FuncDef, values: dict[str, Value], span: Span, spans: dict[str, Span],
                from_user: bool) -> Value:
        """``d``'s result for ``values``; ``span``: the call's, ``spans``: the arguments' given."""
        if len(self.frames) >= MAX_CALL_DEPTH:
            raise LimitError(f"calls nested deeper than {MAX_CALL_DEPTH} (is '{d.name}' recursive?)", span)
        library_only = d.family != "user"
        defaults = Scope(f"the defaults of '{d.name}'", library_only=library_only)
        scope = Scope(f"'{d.name}'", library_only=library_only, parameters=frozenset(p.name for p in d.params))
        self.frames.append(Frame(d.name, span, from_user))  # before the defaults: they may call d again
        try:
            for p in d.params:
                v = values[p.name]
                scope.variables[p.name] = self.eval(v, defaults) if isinstance(v, A.Node) else v
            for b in d.body:
                self._statement(b, scope)
            result = self.eval(d.result, scope)
            # a function's result may hold a pattern its parts could not (log_softmax's x - logsumexp(x))
            return Tensor(fold_ops(self.graph, result.expr)) if isinstance(result, Tensor) else result
        except LossDSLError as e:
            if not (library_only and from_user and e.span is not None and e.span.file.startswith("stdlib/")):
                raise
            if isinstance(e, ParameterError) and e.parameter in spans and e.parameter in (p.name for p in d.params):
                # an option's constant outside its declared values: point at the argument given
                raise ParameterError(f"{d.name}(): {e.message}", spans[e.parameter], parameter=e.parameter) from None
            # a mistake in the user's call that surfaced inside the library: point at the call
            where = f"{e.span.file}:{e.span.line}"
            raise type(e)(f"in {d.name}(): {e.message} (at {where})", span) from None
        finally:
            self.frames.pop()

    def user_frame(self) -> Frame | None:
        """The innermost definition the user's program called directly."""
        return next((f for f in reversed(self.frames) if f.from_user), None)

    def _statement(self, stmt: A.Assign | A.Assert, scope: Scope) -> None:
        if isinstance(stmt, A.Assign):
            if scope.free_names_are_inputs:
                self._check_binding_name(stmt.name, stmt.span)
            scope.variables[stmt.name] = self.eval(stmt.value, scope)
            return
        test = self.eval(stmt.test, scope)
        if not isinstance(test, bool):
            raise LossTypeError(f"assert needs a constant condition, not {describe(test)}", stmt.test.span)
        if test:
            return
        message = self.eval(stmt.message, scope) if stmt.message is not None else "assertion failed"
        frame = self.user_frame()
        text = message if isinstance(message, str) else f"assertion failed: {describe(message)}"
        if frame is not None and scope.library_only:
            raise LossTypeError(f"{frame.name}(): {text}", frame.span)
        raise LossTypeError(text, stmt.span)
