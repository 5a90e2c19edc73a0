"""The arguments of one builtin call, as the registry's ``build`` functions read them.

The resolver binds a call's arguments to the builtin's parameters and hands them over as ``Args``;
each coercion (a tensor, a constant integer, a flag) points its error at the argument.
"""

from __future__ import annotations

import sympy as sp

from .errors import LimitError, LossTypeError, ParameterError, Span
from .ir import Apply, Graph, Input, Tensor, as_number, to_sympy
from .limits import MAX_AXIS

Value = Tensor | int | float | bool | str | None | tuple  # a tuple: of axes, as (1, 2), or a variadic parameter's arguments


def describe(v: Value) -> str:
    if isinstance(v, Tensor):
        return "a boolean tensor" if v.is_bool else "a tensor"
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, str):
        return f"the string {v!r}"
    if isinstance(v, tuple):
        return f"a tuple of {len(v)}"
    return f"the number {v!r}"


class Args:
    """The bound arguments of one builtin call, with coercions that point at the argument."""

    def __init__(self, graph: Graph, caller: str | None, func: str, span: Span, values: dict[str, Value],
                 spans: dict[str, Span], given: set[str], names: dict[str, str] | None = None):
        """``caller``: the user's definition that made this call, if any (runtime errors name it);
        ``names``: the arguments written as a bare name, and that name."""
        self.graph, self._caller, self.func, self.span = graph, caller, func, span
        self._values, self._spans, self._given, self._names = values, spans, given, names or {}

    def error(self, name: str, message: str) -> LossTypeError:
        return LossTypeError(f"argument '{name}' of {self.func}(): {message}", self._spans.get(name, self.span))

    def parameter_error(self, name: str, message: str) -> LossTypeError:
        """An error about an argument's constant value, naming the variable it was written as (a
        definition's parameter, as in ``delta = within(delta, above=0)``), for the caller to place."""
        written = self._names.get(name)
        if written is None:
            return self.error(name, message)
        return ParameterError(f"'{written}' {message}", self._spans.get(name, self.span), parameter=written)

    def given(self, name: str) -> bool:
        return name in self._given

    def value(self, name: str) -> Value:
        """An argument as the resolver evaluated it (a tuple stays a tuple of its items)."""
        return self._values[name]

    def forbid(self, *names: str, why: str) -> None:
        for n in names:
            if n in self._given:
                raise self.error(n, f"not allowed here: {why}")

    def tensor(self, name: str) -> sp.Expr:
        v = self._values[name]
        if isinstance(v, Tensor):
            return as_number(v.expr)
        if isinstance(v, (bool, int, float)):
            return to_sympy(v)
        raise self.error(name, f"expected a tensor or a number, got {describe(v)}")

    def tensors(self, name: str) -> list[sp.Expr]:
        """A variadic parameter's arguments (``concat(a, b, c)``), each a tensor or a number."""
        values = self._values[name]
        if not isinstance(values, tuple) or not values:
            raise self.error(name, f"{self.func}() needs at least one array")
        out = []
        for v in values:
            if isinstance(v, Tensor):
                out.append(as_number(v.expr))
            elif static_number(v) or isinstance(v, bool):
                out.append(to_sympy(v))
            else:
                raise self.error(name, f"expected tensors or numbers, got {describe(v)}")
        return out

    def condition(self, name: str) -> sp.Basic:
        v = self._values[name]
        if isinstance(v, bool):
            return sp.true if v else sp.false
        if isinstance(v, Tensor) and v.is_bool:
            return v.expr
        raise self.error(name, f"expected a condition such as 'a > b', got {describe(v)}")

    def static_int(self, name: str, minimum: int | None = None, limit: int | None = None) -> int:
        """A constant integer argument, at least ``minimum``; beyond ``limit`` in size a LimitError."""
        v = self._values[name]
        if isinstance(v, Tensor) and v.expr.is_Integer:
            v = int(v.expr)
        if isinstance(v, bool) or not isinstance(v, int) or (minimum is not None and v < minimum):
            need = "a constant integer" + (f" >= {minimum}" if minimum is not None else "")
            raise self.error(name, f"expected {need}, got {describe(v)}")
        self._within_limit(name, v, limit)
        return v

    def _within_limit(self, name: str, v: int, limit: int | None) -> None:
        if limit is not None and abs(v) > limit:
            raise LimitError(f"argument '{name}' of {self.func}(): {v} is beyond the limit of {limit}",
                             self._spans.get(name, self.span))

    def axis(self, name: str) -> int | None:
        """An axis (None: all of them), within the 64 axes an array can have."""
        return None if self._values[name] is None else self.single_axis(name)

    def single_axis(self, name: str) -> int:
        """One constant axis; a tuple is refused by name."""
        if isinstance(self._values[name], tuple):
            raise self.error(name, f"expected a single axis, got {describe(self._values[name])}; only the "
                             "reductions (sum, mean, logsumexp, max, min) and norm take a tuple of axes")
        return self.static_int(name, limit=MAX_AXIS)

    def axes(self, name: str) -> int | tuple[int, ...] | None:
        """An axis, a tuple of distinct axes (``(1,)`` is the axis 1), or None: all of them."""
        v = self._values[name]
        if not isinstance(v, tuple):
            return self.axis(name)
        if not v:
            raise self.error(name, "expected a non-empty tuple of axes")
        axes = []
        for item in v:
            if isinstance(item, bool) or not isinstance(item, int):
                raise self.error(name, f"expected a tuple of constant integers, got {describe(item)} in it")
            self._within_limit(name, item, MAX_AXIS)
            axes.append(item)
        if len(set(axes)) < len(axes):
            raise self.error(name, f"axis {next(x for x in axes if axes.count(x) > 1)} appears twice")
        return axes[0] if len(axes) == 1 else tuple(axes)

    def flag(self, name: str) -> bool:
        v = self._values[name]
        if not isinstance(v, bool):
            raise self.error(name, f"expected true or false, got {describe(v)}")
        return v

    def text_or_none(self, name: str) -> str | None:
        v = self._values[name]
        if v is None or isinstance(v, str):
            return v
        raise self.error(name, f"expected a string or none, got {describe(v)}")

    def number_or_none(self, name: str) -> float | None:
        v = self._values[name]
        if v is None or (static_number(v)):
            return v
        raise self.error(name, f"expected a constant number or none, got {describe(v)}")

    def static_pair(self, name: str, minimum: int | None = None, limit: int | None = None) -> tuple[int, int]:
        """A constant integer ``w`` (as ``(w, w)``) or a tuple ``(before, after)`` of two: pad's widths."""
        v = self._values[name]
        if not isinstance(v, tuple):
            w = self.static_int(name, minimum, limit)
            return (w, w)
        if len(v) != 2:
            raise self.error(name, f"expected one constant integer or a tuple (before, after) of two, got {describe(v)}")
        pair = []
        for item in v:
            if isinstance(item, bool) or not isinstance(item, int) or (minimum is not None and item < minimum):
                need = "constant integers" + (f" >= {minimum}" if minimum is not None else "")
                raise self.error(name, f"expected a tuple of {need}, got {describe(item)} in it")
            self._within_limit(name, item, limit)
            pair.append(item)
        return (pair[0], pair[1])

    def choice(self, name: str, options: tuple[str, ...]) -> str:
        """A string argument, one of ``options``."""
        v = self._values[name]
        if not isinstance(v, str) or v not in options:
            raise self.error(name, f"expected one of {', '.join(map(repr, options))}, got {describe(v)}")
        return v

    def describe_input(self, name: str) -> str:
        """How a runtime error names this argument: the input it is, and the loss it went to."""
        v = self._values[name]
        read = set(self._inputs_read(v.expr)) if isinstance(v, Tensor) else set()
        inputs = [n for n in self.graph.inputs if n in read]  # in a fixed order: labels are printed
        if len(inputs) == 1:
            what = f"input '{inputs[0]}'"
        else:  # not this builtin's own parameter name, which the caller's reader never wrote
            what = f"the expression of inputs {', '.join(map(repr, inputs))}" if inputs else f"argument '{name}'"
        written = self._names.get(name)
        if self._caller and len(inputs) == 1 and written not in (None, inputs[0]):
            return f"{what} (as '{written}' of {self._caller}())"  # the name the definition gives it
        return what + (f" of {self._caller}()" if self._caller else "")

    def _inputs_read(self, expr: sp.Basic) -> list[str]:
        """The inputs whose values ``expr`` reads, looking through ops that only move values."""
        names, stack = [], list(expr.free_symbols)
        while stack:
            op = self.graph.op_of.get(stack.pop())
            if isinstance(op, Input):
                names.append(op.name)
            elif isinstance(op, Apply) and op.prim in VALUE_MOVERS:
                stack.extend(op.operands[0].free_symbols)
        return sorted(set(names))

    def index(self, name: str) -> sp.Expr:
        """An integer-label operand; the inputs it reads become non-differentiable index inputs."""
        expr = self.tensor(name)
        self.graph.index_inputs.update(self._inputs_read(expr))
        return expr


VALUE_MOVERS = {"expand_dims", "transpose", "broadcast", "within", "per_sample", "index", "moveaxis", "reshape",
                "flatten"}


def static_number(v: Value) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
