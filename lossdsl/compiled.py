"""The public API: ``compile()`` and the compiled loss it returns.

A ``CompiledLoss`` is made from a finished ``pipeline.Compilation`` and never changes after
``compile()`` returns: every attribute is set once, and the functions it builds on request
(gradient subsets, Hessians) are derived from IR it only reads and are memoised under a lock. So one
object may be shared by any number of threads (``compile()`` is cached, so they do share it); it
pickles and deep-copies by its source and backend.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from .backend import module_class
from .checks import check_names, check_stats, reporting_input_errors
from .codegen import load_module
from .errors import InputError, LossDSLError, did_you_mean
from .formula import render
from .hessian import DIRECTION, gradient_and_rowsum, hessian_rowsum, hessian_vector
from .input_values import check_values, elementwise_groups, warn_stretched
from .ir import Graph
from .pipeline import Compilation, build, front, read_source
from .printer import _common_subexpressions
from .rewrite import clear_memo


def _restore(text: str, file: str, backend: str, checks: bool = True) -> CompiledLoss:
    """The compiled loss for a pickled one: compiled again (or found in the cache)."""
    return _compile(text, file, backend, checks)


class CompiledLoss:
    """A loss compiled for one backend: call it with its inputs by keyword, or positionally in the order
    of ``inputs`` (``y_true`` before ``y_pred``); ask it for gradients and formulas."""

    # _inputs and _arguments: what every call reads, kept rather than derived each time (a call of a
    # small loss in a training step is mostly Python)
    __slots__ = ("_c", "_value_fn", "_checks_fn", "_groups", "_memo", "_lock", "_inputs", "_arguments")

    def __init__(self, compilation: Compilation):
        c = compilation
        fused = c.backend.fused_checks and bool(c.writer.checked)
        checks = load_module(c.writer.checks_module(), f"{c.backend.name}:checks")._checks if fused else None
        for name, value in (("_c", c), ("_value_fn", c.backend.jit(c.module.loss)),
                            ("_checks_fn", None if checks is None else c.backend.jit(checks)),
                            ("_groups", elementwise_groups(c.graph, c.root)),
                            ("_memo", {}), ("_lock", threading.Lock()),
                            ("_inputs", tuple(c.graph.inputs)), ("_arguments", c.writer.sig.code)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a CompiledLoss cannot be changed (setting {name!r}); compile another")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a CompiledLoss cannot be changed (deleting {name!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore, (self.text, self._c.file, self.backend, self.checks)

    # --- what it is -----------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self._c.text

    @property
    def backend(self) -> str:
        return self._c.backend.name

    @property
    def checks(self) -> bool:
        """Whether calls check values (ranges, labels, lengths): ``compile(..., checks=False)`` leaves
        them out of the generated code (input names and kinds are checked all the same)."""
        return self._c.writer.checks

    @property
    def graph(self) -> Graph:
        """The loss's IR (read it; a graph is never changed once built)."""
        return self._c.graph

    @property
    def root(self) -> sp.Expr:
        return self._c.root

    @property
    def inputs(self) -> tuple[str, ...]:
        """The inputs, in order of first appearance."""
        return self._inputs

    @property
    def arguments(self) -> Mapping[str, str]:
        """The inputs whose Python names in the generated functions differ from theirs (``lambda`` is
        ``lambda_``), as the module's ``ARGUMENTS``; empty for most losses."""
        return self._arguments

    @property
    def differentiable(self) -> tuple[str, ...]:
        """The float inputs (not integer labels), which gradients may be taken with respect to."""
        return self._c.writer.differentiable

    @property
    def source(self) -> str:
        """The generated module: standalone Python that imports only its array library; the same
        bytes for the same source, whatever was asked of this loss before."""
        return self._c.source

    @property
    def module(self) -> Any:
        return self._c.module

    def as_module(self, order: str = "inputs") -> Any:
        """This loss as a ``torch.nn.Module`` (backend "torch"): see ``lossdsl.torch.LossModule``, whose
        ``order`` ("torch": called as ``(input, target)``) this passes on."""
        return module_class(self._c.backend)(self, order=order)

    def __repr__(self) -> str:
        checks = "" if self.checks else ", checks=False"
        return f"CompiledLoss({self.text!r}, backend={self.backend!r}{checks}, inputs={self.inputs!r})"

    # --- calling it -----------------------------------------------------------------------
    def _memoised(self, key: tuple[str, ...], make: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
        """The function for ``key``, made once: derived from IR this object only reads."""
        fn = self._memo.get(key)
        if fn is None:
            with self._lock:
                fn = self._memo.get(key)
                if fn is None:
                    fn = self._memo[key] = make()
        return fn

    def _check(self, kwargs: dict[str, Any], fused: bool = False) -> None:
        """Input names and kinds; JAX: the checks' statistics from ``_checks`` (unless the function
        about to run returns them itself: ``fused``)."""
        self._check_inputs(kwargs)
        if self._checks_fn is not None and not fused:
            self._check_stats(reporting_input_errors(self._checks_fn, kwargs, self.arguments))

    def _check_inputs(self, kwargs: dict[str, Any]) -> None:
        """Input names, and values that are numbers or arrays of numbers of a library the backend takes."""
        check_names(self._inputs, kwargs)
        check_values(kwargs, self._c.backend.name, self._c.backend.foreign, not self._c.backend.compiling())
        if self._groups:
            warn_stretched(kwargs, self._groups)

    def _check_stats(self, stats: Any) -> None:
        # under someone's jit the values are unknown: the generated code returns NaN if a check fails
        if not self._c.backend.traced(stats):
            reporting_input_errors(lambda: check_stats(self._c.writer.checked, stats), {})

    def _named(self, args: tuple[Any, ...], inputs: dict[str, Any],
               order: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Positional arguments as the inputs they stand for, in the order of ``inputs`` (or ``order``,
        the same names in another order), then the keywords."""
        order = self._inputs if order is None else order
        if not args:
            return inputs
        if len(args) == len(order) and not inputs:  # the common call: every input, in order
            return dict(zip(order, args))
        if len(args) > len(order):
            raise InputError(f"this loss takes {len(order)} inputs ({', '.join(order)}); "
                             f"got {len(args)} positional arguments")
        named = dict(zip(order, args))
        twice = [n for n in named if n in inputs]
        if twice:
            raise InputError(f"input '{twice[0]}' given both positionally and by keyword")
        return {**named, **inputs}

    def __call__(self, /, *args: Any, **inputs: Any) -> Any:  # positional-only: an input may be called 'self'
        """The loss value: inputs by keyword, or positionally in the order of ``inputs``."""
        if args:
            inputs = self._named(args, inputs)
        if self._checks_fn is not None:
            if not self._c.backend.traced(inputs):
                return self.value_and_grad(())(**inputs)[0]  # checks in the same jit
            self._check(inputs)  # traced: loss() keeps its custom_vjp for the caller's jax.grad
        else:
            self._check_inputs(inputs)
        return reporting_input_errors(self._value_fn, inputs, self._arguments)

    def _wrt(self, wrt: str | Sequence[str] | None) -> tuple[str, ...]:
        names = self.differentiable if wrt is None else (wrt,) if isinstance(wrt, str) else tuple(wrt)
        for n in names:
            if n not in self.inputs:
                raise InputError(f"'{n}' is not an input of this loss{did_you_mean(n, self.inputs)}")
            if n not in self.differentiable:
                raise InputError(f"'{n}' holds integer labels and has no gradient")
        return names

    def _subset(self, names: tuple[str, ...]) -> Callable[..., Any]:
        def make() -> Callable[..., Any]:
            if names == self.differentiable and self._checks_fn is None:  # the module's own, already printed
                return self._c.backend.jit(self.module.value_and_grad)
            source = self._c.writer.subset_module(names, checked=self._checks_fn is not None)
            return self._c.backend.jit(load_module(source, f"{self.backend}:grad").value_and_grad)
        return self._memoised(("grad", *names), make)

    def value_and_grad(self, wrt: str | Sequence[str] | None = None) -> Callable[..., Any]:
        """A function of the inputs returning (value, gradient): an array for one name, else a dict
        (with respect to every float input when ``wrt`` is None)."""
        names = self._wrt(wrt)
        fn = self._subset(names)
        fused = self._checks_fn is not None

        def value_and_grad(*args: Any, **inputs: Any) -> Any:
            inputs = self._named(args, inputs)
            self._check(inputs, fused=fused)
            value, grads, *stats = reporting_input_errors(fn, inputs, self.arguments)
            if stats:
                self._check_stats(stats[0])
            return (value, grads[names[0]]) if isinstance(wrt, str) else (value, grads)
        return value_and_grad

    def grad(self, wrt: str | Sequence[str] | None = None) -> Callable[..., Any]:
        """A function of the inputs returning the gradient: an array for one name, else a dict
        (with respect to every float input when ``wrt`` is None)."""
        vg = self.value_and_grad(wrt)
        return lambda *args, **inputs: vg(*args, **inputs)[1]

    # --- second derivatives ---------------------------------------------------------------
    def _derived(self, kind: str, name: str,
                 derive: Callable[[Graph, sp.Expr, str], tuple[Graph, sp.Expr | list[sp.Expr]]]) -> Callable[..., Any]:
        def make() -> Callable[..., Any]:
            graph, exprs = derive(self.graph, self.root, name)
            exprs = exprs if isinstance(exprs, list) else [exprs]
            module = load_module(self._c.writer.derived_module(graph, exprs, name), f"{self.backend}:{kind}")
            return self._c.backend.jit(module.derived)
        return self._memoised((kind, name), make)

    def _calling(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **inputs: Any) -> Any:
            inputs = self._named(args, inputs)
            self._check(inputs)
            return reporting_input_errors(fn, inputs, self.arguments)
        return call

    def hvp(self, wrt: str) -> Callable[..., Any]:
        """A function ``(direction, **inputs) -> H @ direction``: the Hessian with respect to
        ``wrt`` times a direction shaped like ``wrt``, by symbolic reverse-over-reverse."""
        (name,) = self._wrt(wrt)
        fn = self._derived("hvp", name, hessian_vector)

        def hvp(direction: Any, /, *args: Any, **inputs: Any) -> Any:  # an input may be called 'direction'
            inputs = self._named(args, inputs)
            self._check(inputs)
            check_values({"direction": direction}, self.backend, self._c.backend.foreign)
            return reporting_input_errors(fn, {**inputs, DIRECTION: direction}, self.arguments)
        return hvp

    def second_derivative(self, wrt: str) -> Callable[..., Any]:
        """A function of the inputs giving ``H @ 1`` for ``wrt``: the per-element second
        derivative of a loss that sums or averages one term per element (then ``H`` is diagonal)."""
        (name,) = self._wrt(wrt)
        return self._calling(self._derived("rowsum", name, hessian_rowsum))

    def grad_and_second_derivative(self, wrt: str) -> Callable[..., Any]:
        """A function of the inputs giving ``(gradient, H @ 1)`` for ``wrt`` from one generated
        function, which computes every subexpression the two share once (for BCE from logits: one
        sigmoid, then ``p - y`` and ``p*(1 - p)``): what a gradient-boosting objective needs."""
        (name,) = self._wrt(wrt)
        return self._calling(self._derived("grad_rowsum", name, gradient_and_rowsum))

    def hessian(self, wrt: str) -> Callable[..., Any]:
        """A function of the inputs giving the full Hessian for ``wrt``, shaped ``x.shape * 2``:
        one Hessian-vector product per element, so meant for small parameter vectors."""
        hvp = self.hvp(wrt)

        def hessian(*args: Any, **inputs: Any) -> Any:
            inputs = self._named(args, inputs)
            self._check_inputs(inputs)  # before NumPy reads the input
            x = np.asarray(inputs[wrt])
            rows = [np.asarray(hvp(np.eye(1, x.size, k, dtype=x.dtype).reshape(x.shape), **inputs))
                    for k in range(x.size)]
            return np.stack(rows).reshape(x.shape + x.shape) if rows else np.zeros(x.shape * 2, x.dtype)
        return hessian

    def hessian_formula(self, wrt: str) -> sp.Expr:
        """The per-element second derivative (``H @ 1``) with respect to ``wrt``, as SymPy."""
        (name,) = self._wrt(wrt)
        return render(*hessian_rowsum(self.graph, self.root, name))

    # --- formulas -------------------------------------------------------------------------
    def formula(self) -> sp.Expr:
        """The loss as a SymPy expression over its inputs."""
        return render(self.graph, self.root)

    def latex(self) -> str:
        """The loss as LaTeX."""
        return sp.latex(self.formula())

    def gradient_latex(self, wrt: str) -> str:
        """The gradient with respect to ``wrt``, element by element, as LaTeX."""
        return sp.latex(self.gradient_formula(wrt))

    def _repr_latex_(self) -> str:  # Jupyter shows the formula
        return f"$\\displaystyle {self.latex()}$"

    def gradient_formula(self, wrt: str) -> sp.Expr:
        """The gradient with respect to ``wrt``, element by element, as a SymPy expression.

        Element counts of means appear as ``n``; other reductions as applied functions.
        """
        (name,) = self._wrt(wrt)
        return render(self._c.writer.grad_graph, self._c.writer.grads[name])


def module_source(source: str | Path, backend: str = "numpy", checks: bool = True) -> str:
    """The standalone module ``compile(source, backend, checks).source`` would hold, printed without importing
    the backend's array library: a JAX or torch module can be written where JAX or torch is not installed."""
    text, file = read_source(_checked_source(source, backend, checks))
    return build(text, file, backend, load=False, checks=checks).source


@lru_cache(maxsize=256)
def _compile(text: str, file: str, backend: str, checks: bool = True) -> CompiledLoss:
    return CompiledLoss(build(text, file, backend, checks=checks))


def clear_caches() -> None:
    """Forget every compile's cached work: compiled losses, each source's front (``pipeline.front``),
    the CSE and rewrite memos; for timing a compile from scratch. Losses already compiled stay valid."""
    _compile.cache_clear()
    front.cache_clear()
    _common_subexpressions.cache_clear()
    clear_memo()


def compile(source: str | Path, backend: str = "numpy", checks: bool = True) -> CompiledLoss:  # noqa: A001 - public name
    """Compile a loss (an expression, a program, or a path to a ``.loss`` file) for a backend.

    Every phase runs now: a loss that cannot be differentiated or printed fails here. Results are
    cached by source text, backend and ``checks`` (the same object for the same text: it is immutable).
    ``checks=False``: calls do not check values (``within`` ranges, labels, run-time index positions,
    CTC's targets and lengths), so that compiled code (``torch.compile``) needs no host sync; input
    names and kinds are still checked (they read dtypes only). See the README's "Checks".
    """
    text, file = read_source(_checked_source(source, backend, checks))
    return _compile(text, file, backend, checks)


def _checked_source(source: Any, backend: Any, checks: Any = True) -> str | Path:
    if not isinstance(source, str | Path):
        raise LossDSLError(f"source must be a string or a path, not {type(source).__name__}")
    if not isinstance(backend, str):
        raise LossDSLError(f"backend must be a string, not {type(backend).__name__}")
    if not isinstance(checks, bool):
        raise LossDSLError(f"checks must be True or False, not {checks!r}")
    return source
