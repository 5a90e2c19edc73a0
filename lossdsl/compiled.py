"""The compiled loss: generated modules for one backend, and the public callable around them."""

from __future__ import annotations

import linecache
import types
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp

from .backends.copying import helpers_for, imports_for
from .blocking import RowBlocks, row_blocks
from .errors import InputError, LossDSLError
from .formula import render
from .gradient import gradients
from .hessian import DIRECTION, hessian_rowsum, hessian_vector
from .ir import Apply, Graph, Input
from .printer import BACKEND_BY_NAME, Backend, FunctionPrinter, Signature

_SEED = sp.Symbol("_ct", real=True)
# a block of 1 MB of float32: its dozen temporaries stay in the caches, and the Python per block
# (tens of microseconds) is a small part of its time
ROW_BLOCK = 1 << 18
_CHECKED = {"within": 0, "take": 1, "one_hot": 0}  # op -> the operand whose values are checked


def _kwargs(names: Sequence[str]) -> str:
    return ", ".join(f"{n}={n}" for n in names)


class ModuleWriter:
    """Writes the source of a standalone module (loss, value_and_grad, grad) for one backend."""

    def __init__(self, graph: Graph, root: sp.Expr, backend: Backend, text: str):
        self.graph, self.root, self.b, self.text = graph, root, backend, text
        self.sig = Signature(tuple(graph.inputs), frozenset(graph.index_inputs))
        self.fp = FunctionPrinter(graph, backend)
        self._gradients: dict[tuple[str, ...], dict[str, sp.Expr]] = {}

    def gradients(self, wrt: Sequence[str]) -> dict[str, sp.Expr]:
        """d(root)/d(each input in ``wrt``), derived once per ``wrt`` (the module's docstring and its
        value_and_grad both need them; the graph keeps the ops the first derivation added)."""
        key = tuple(wrt)
        if key not in self._gradients:
            self._gradients[key] = gradients(self.graph, self.root, key)
        return self._gradients[key]

    @property
    def differentiable(self) -> tuple[str, ...]:
        return self.sig.float_inputs

    @cached_property
    def blocks(self) -> RowBlocks | None:
        """How the loss splits over blocks of rows, where the backend evaluates by blocks."""
        return row_blocks(self.graph, self.root) if self.b.row_blocks else None

    def _by_rows(self, name: str, doc: str, function: Callable[[str], str]) -> str:
        """``name`` computed by ``function(name)``, or, for a loss that splits over blocks of rows,
        by ``function("_" + name + "_rows")`` called on blocks of rows (see blocking.py)."""
        if self.blocks is None:
            return function(name)
        names = self.sig.inputs
        inputs = "{" + ", ".join(f"{n!r}: {n}" for n in names) + "}"
        labels = tuple(n for n in names if n in self.sig.index_inputs)
        b = self.blocks
        return f'''{function(f"_{name}_rows")}


def {name}(*, {", ".join(names)}):
    """{doc}"""
    return _by_rows(_{name}_rows, {inputs}, {labels!r}, {b.min_rank}, {b.reduction!r}, ROW_BLOCK)'''

    @staticmethod
    def _grad_codes(wrt: Sequence[str], codes: Sequence[str]) -> list[str]:
        return [f"_fit({c}, {w})" for w, c in zip(wrt, codes)]

    def value_function(self, name: str = "loss") -> str:
        doc = "The loss value: a 0-d array (or the unreduced array) of the inputs' float dtype."

        def function(name: str) -> str:
            lines, (v,) = self.fp.body(self.sig, [self.root])
            return self.fp.function(name, self.sig, lines, f"_out({v}, _dt)", doc=doc)
        return self._by_rows(name, doc, function)

    def value_and_grad_function(self, wrt: Sequence[str], name: str = "value_and_grad", checked: bool = False) -> str:
        """``value_and_grad``; ``checked``: it also returns the value ranges of ``_checks``, computed in
        the same jit (one dispatch, and XLA may share the passes over the inputs)."""
        grads = self.gradients(wrt)
        ops = self.checked_ops() if checked else []
        doc = f"The loss value and its gradient with respect to {', '.join(wrt) or 'nothing'}."

        def function(name: str) -> str:
            lines, codes = self.fp.body(self.sig, [self.root, *(grads[w] for w in wrt), *self._checked_operands(ops)])
            k = 1 + len(wrt)
            grad_dict = f"{{{', '.join(f'{w!r}: {c}' for w, c in zip(wrt, self._grad_codes(wrt, codes[1:k])))}}}"
            if self.b.name == "numpy":
                # mutable arrays, and _fit returns a fresh result as it is: no two outputs may share memory
                lines = [*lines, f"_value = _out({codes[0]}, _dt)"]
                returns = f"_value, _own(_value, {grad_dict})"
            else:
                returns = f"_out({codes[0]}, _dt), {grad_dict}"
            if checked:
                returns += ", " + self._ranges(ops, codes[k:])
            return self.fp.function(name, self.sig, lines, returns, doc=doc)
        return self._by_rows(name, doc, function)

    def vjp_function(self) -> str:
        wrt = self.differentiable
        grads = gradients(self.graph, self.root, wrt, seed=_SEED)
        lines, codes = self.fp.body(self.sig, [grads[w] for w in wrt])
        params = [*self.sig.inputs, "_ct"]
        returns = "(" + "".join(c + ", " for c in self._grad_codes(wrt, codes)) + ")"
        return self.fp.function("_vjp", self.sig, lines, returns, params=params,
                                doc="Cotangents of the inputs for an output cotangent _ct (for the backward pass).")

    def checked_ops(self) -> list[Apply]:
        """The ops whose call-time checks read values (ranges, labels) the loss depends on."""
        needed = set(self.graph.dependencies([self.root]))
        return [op for sym, op in self.graph if sym in needed and isinstance(op, Apply) and op.prim in _CHECKED]

    @staticmethod
    def _checked_operands(ops: Sequence[Apply]) -> list[sp.Expr]:
        # a gather's operand 0 is needed for its class count, a static shape
        return [o for op in ops for o in (op.operands[_CHECKED[op.prim]], op.operands[0])]

    @staticmethod
    def _ranges(ops: Sequence[Apply], codes: Sequence[str]) -> str:
        stats = []
        for op, code, whole in zip(ops, codes[::2], codes[1::2]):
            count = f"jnp.shape({whole})[{op.param('axis')}]" if op.prim == "take" else "0"
            stats.append(f"_value_range({code}) + ({count},)")
        return "(" + "".join(c + ", " for c in stats) + ")"

    def checks_function(self) -> str:
        """``_checks``: the (min, max) of each checked operand, and for labels the class count,
        computed under jit where the values are otherwise unknown (XLA drops everything else)."""
        ops = self.checked_ops()
        lines, codes = self.fp.body(self.sig, self._checked_operands(ops))
        return self.fp.function("_checks", self.sig, lines, self._ranges(ops, codes),
                                doc="Value ranges that call-time checks need (see CompiledLoss).")

    def _jax_wiring(self) -> str:
        names = self.sig.inputs
        if not names:  # a constant loss: nothing to differentiate
            return 'def loss():\n    """The loss value (a constant)."""\n    return _value()'
        args = ", ".join(names)
        diff = self.differentiable
        cot = ", ".join(f"_cotangent(grads[{diff.index(n)}], {n})" if n in diff else "None" for n in names)
        return f'''def _primal({args}):
    return _value({_kwargs(names)})


def _primal_fwd({args}):
    return _primal({args}), ({args}{"," if len(names) == 1 else ""})


def _primal_bwd(residuals, _ct):
    {args}{"," if len(names) == 1 else ""} = residuals
    grads = _vjp({args}, _ct)
    return ({cot}{"," if len(names) == 1 else ""})


_loss = jax.custom_vjp(_primal)
_loss.defvjp(_primal_fwd, _primal_bwd)


def loss(*, {args}):
    """The loss value; jax.grad, jit and vmap through it use the symbolic gradient."""
    return _loss({args})'''

    def _torch_wiring(self) -> str:
        names = self.sig.inputs
        if not names:
            return 'def loss():\n    """The loss value (a constant)."""\n    return _value()'
        args, diff = ", ".join(names), self.differentiable
        grads = ", ".join(f"grads[{diff.index(n)}]" if n in diff else "None" for n in names)
        # labels have no gradient: their place in what backward returns is None
        regroup = "" if diff == names else f"\n        grads = ({grads}{',' if len(names) == 1 else ''})"
        return f'''class _Loss(torch.autograd.Function):
    """The loss value, with the symbolic gradient as its backward."""

    @staticmethod
    def forward(ctx, {args}):
        ctx.inputs = ({args}{"," if len(names) == 1 else ""})  # inputs, not outputs: no reference cycle
        return _value({_kwargs(names)})

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, _ct):
        grads = _vjp(*ctx.inputs, _ct){regroup}
        return tuple(g if need else None for g, need in zip(grads, ctx.needs_input_grad))


def loss(*, {args}):
    """The loss value; backward() through it uses the symbolic gradient."""
    return _Loss.apply({args})'''

    def header(self) -> str:
        """The module docstring: the source loss, its formula and its gradients, readable."""
        grads = self.gradients(self.differentiable)
        lines = [f"Loss and gradient generated by lossdsl for {self.b.name}; regenerate it rather than edit it.",
                 "", "Source (also in SOURCE):", "", *_indented(self.text), "", "Loss:", "",
                 *_indented(_shown(render(self.graph, self.root)))]
        if grads:
            lines += ["", "Gradient, element by element (n: the element count of a mean):", ""]
            lines += [line for w in self.differentiable
                      for line in _indented(f"d/d{w} = {_shown(render(self.graph, grads[w]))}")]
        doc = "\n".join(line.rstrip() for line in lines)
        safe = "\\" not in doc and '"""' not in doc and all(line.isprintable() for line in lines)
        return f'"""{doc}\n"""' if safe else repr(doc + "\n")  # user text never escapes the string

    def module(self) -> str:
        names, diff = self.sig.inputs, self.differentiable
        wired = self.b.name in ("jax", "torch")  # loss() wraps _value with the symbolic gradient
        parts = [self.value_function("_value" if wired else "loss"), self.value_and_grad_function(diff)]
        if wired:
            wiring = self._jax_wiring() if self.b.name == "jax" else self._torch_wiring()
            parts += ([self.vjp_function()] if names else []) + [wiring]
        parts.append(f'''def grad({"*, " if names else ""}{", ".join(names)}):
    """The gradient with respect to each input in DIFFERENTIABLE."""
    return value_and_grad({_kwargs(names)})[1]''')
        return self._assemble(parts, header=True, blocked=self.blocks is not None)

    def _assemble(self, parts: list[str], header: bool, blocked: bool = False) -> str:
        """A module of ``parts``; ``blocked``: they call ``_by_rows`` (see ``_by_rows``), which reads ROW_BLOCK."""
        code = "\n\n\n".join(parts)
        helpers, imports = helpers_for(code, self.b), imports_for(code, self.b)
        consts = [f"SOURCE = {self.text!r}", f"INPUTS = {tuple(self.sig.inputs)!r}",
                  f"DIFFERENTIABLE = {tuple(self.differentiable)!r}"]
        sections = [self.header() + "\n\n" + imports, "\n".join(consts)] if header else [imports]
        if blocked:
            sections.append(f"ROW_BLOCK = {ROW_BLOCK}  # elements in a block of rows (see _by_rows)")
        return "\n\n".join(sections) + "\n\n\n" + helpers + "\n\n\n" + code + "\n"

    def derived_module(self, graph: Graph, expr: sp.Expr, like: str) -> str:
        """A module whose one function ``derived`` computes ``expr`` (over ``graph``, an extension
        of this loss's graph) shaped like the input ``like``."""
        sig = Signature(tuple(graph.inputs), frozenset(graph.index_inputs))
        fp = FunctionPrinter(graph, self.b)
        lines, (code,) = fp.body(sig, [expr])
        return self._assemble([fp.function("derived", sig, lines, f"_fit({code}, {like})")], header=False)

    def subset_module(self, wrt: Sequence[str], checked: bool = False) -> str:
        return self._assemble([self.value_and_grad_function(wrt, checked=checked)], header=False,
                              blocked=self.blocks is not None)


def _indented(text: str) -> list[str]:
    return ["    " + line.expandtabs(4) if line.strip() else "" for line in text.split("\n")]


_FORMULA_CHARS = 2000


def _shown(e: sp.Expr) -> str:
    """A formula as one line of text, abridged past a length no reader follows."""
    text = sp.sstr(e)
    return text if len(text) <= _FORMULA_CHARS else text[:_FORMULA_CHARS] + " ... (abridged)"


_counter = 0


def load_module(source: str, label: str) -> types.ModuleType:
    """Load generated source (ours, never user text) as a module, with tracebacks that show it."""
    global _counter
    _counter += 1
    filename = f"<lossdsl:{label}:{_counter}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"lossdsl_generated_{_counter}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - generated code only
    return module


def check_ranges(ops: Sequence[Apply], stats: Sequence[tuple[Any, Any, Any]]) -> None:
    """Raise the NumPy backend's error for any checked operand whose (min, max) is out of range."""
    from .backends.runtime import _check_labels, _within
    for op, (lo, hi, size, count) in zip(ops, stats):
        if not size:
            continue
        values = np.array([lo, hi])
        if op.prim == "within":
            _within(values, op.param("lower"), op.param("upper"), False, op.param("label"))
        else:
            _check_labels(values, int(count) if op.prim == "take" else op.param("depth"), op.param("label"))


def _reporting_input_errors(fn: Callable[..., Any], inputs: dict[str, Any]) -> Any:
    """Call generated code; its checks raise ValueError/TypeError, reported as InputError."""
    try:
        return fn(**inputs)
    except InputError:
        raise
    except (ValueError, TypeError, IndexError) as e:
        raise InputError(_explain(str(e), inputs)) from e
    except RuntimeError as e:  # PyTorch's error for shapes (and for much else: only shapes are ours)
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


def _explain(message: str, inputs: dict[str, Any]) -> str:
    """A message that names the inputs: ours already do; an array library's error about shapes,
    raised deep inside the generated code, is prefixed with the inputs' shapes."""
    if "input '" in message:
        return message
    shapes = _shapes(inputs)
    conflict = _shape_conflict(message, shapes)
    if conflict is not None:
        return conflict
    listed = ", ".join(f"'{n}' {'(not an array)' if s is None else f'(shape {s})'}" for n, s in shapes.items())
    return f"the inputs do not fit this loss: {listed} ({message})"


def _traced(tree: Any) -> bool:
    """Whether any leaf is a JAX tracer (the loss is being called inside someone's jit)."""
    import jax
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(tree))


class CompiledLoss:
    """A loss compiled for one backend: call it by keyword; ask it for gradients and formulas."""

    def __init__(self, text: str, graph: Graph, root: sp.Expr, backend: str):
        if backend not in BACKEND_BY_NAME:
            raise LossDSLError(f"unknown backend '{backend}'; choose one of {', '.join(BACKEND_BY_NAME)}")
        self.text, self.graph, self.root, self.backend = text, graph, root, backend
        self._pristine = graph.copy()  # gradients add ops to a graph: the module starts from this one
        self._writer = ModuleWriter(graph, root, BACKEND_BY_NAME[backend], text)
        self._subsets: dict[tuple[str, ...], Callable[..., Any]] = {}

    # --- what it is -----------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[str, ...]:
        """The inputs, in order of first appearance."""
        return tuple(self.graph.inputs)

    @property
    def differentiable(self) -> tuple[str, ...]:
        """The float inputs (not integer labels), which gradients may be taken with respect to."""
        return self._writer.differentiable

    @cached_property
    def source(self) -> str:
        """The generated module: standalone Python that imports only its array library; the same
        bytes for the same source, whatever was asked of this loss before."""
        return ModuleWriter(self._pristine.copy(), self.root, self._writer.b, self.text).module()

    @cached_property
    def module(self) -> types.ModuleType:
        return load_module(self.source, self.backend)

    def as_module(self) -> Any:
        """This loss as a ``torch.nn.Module`` (backend "torch"): see ``lossdsl.torch.LossModule``."""
        from .torch import LossModule
        return LossModule(self)

    def __repr__(self) -> str:
        return f"CompiledLoss({self.text!r}, backend={self.backend!r}, inputs={self.inputs!r})"

    # --- calling it -----------------------------------------------------------------------
    def _jit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        if self.backend == "jax":
            import jax
            return jax.jit(fn)
        return fn

    @cached_property
    def _value_fn(self) -> Callable[..., Any]:
        return self._jit(self.module.loss)

    @cached_property
    def _checks_fn(self) -> Callable[..., Any] | None:
        """For JAX, where the generated code runs under jit: a jitted function of the value
        ranges that the NumPy backend checks as it goes."""
        if self.backend != "jax" or not self._writer.checked_ops():
            return None
        module = load_module(self._writer._assemble([self._writer.checks_function()], header=False), "jax:checks")
        return self._jit(module._checks)

    @cached_property
    def _fused_checks(self) -> bool:
        """Whether value_and_grad computes the value ranges its checks need in its own jit (JAX)."""
        return self.backend == "jax" and bool(self._writer.checked_ops())

    def _check(self, kwargs: dict[str, Any], fused: bool = False) -> None:
        """Input names; JAX: value ranges from ``_checks`` (unless the function about to run returns
        them itself: ``fused``) and CTC's targets and lengths."""
        missing = [n for n in self.inputs if n not in kwargs]
        extra = [n for n in kwargs if n not in self.inputs]
        if missing or extra:
            parts = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + (
                [f"unexpected {', '.join(map(repr, extra))}"] if extra else [])
            raise InputError(f"this loss takes inputs {', '.join(self.inputs)}: {'; '.join(parts)}")
        if self._checks_fn is not None and not fused:
            self._check_ranges(_reporting_input_errors(self._checks_fn, kwargs))
        if self.backend == "jax" and self._ctc_inputs and not _traced(kwargs):
            _reporting_input_errors(lambda: self._check_ctc(kwargs), {})

    def _check_ranges(self, stats: Any) -> None:
        if not _traced(stats):  # under someone's jit the values are unknown
            _reporting_input_errors(lambda: check_ranges(self._writer.checked_ops(), stats), {})

    @cached_property
    def _ctc_inputs(self) -> list[tuple[Apply, list[str], list[str]]]:
        """Each CTC op whose targets and lengths are inputs: the op, their input names, and the
        inputs its log-probabilities are computed from."""
        needed = set(self.graph.dependencies([self.root]))
        out = []
        for sym, op in self.graph:
            if sym not in needed or not isinstance(op, Apply) or op.prim != "ctc":
                continue
            names = [self._input_name(o) for o in op.operands[1:]]
            sources = [self._input_name(s) for s in op.operands[0].free_symbols]
            if None not in names and None not in sources:  # computed operands: checked inside, where concrete
                out.append((op, names, sources))
        return out

    def _check_ctc(self, kwargs: dict[str, Any]) -> None:
        """CTC's targets and lengths, checked as the NumPy backend does, where they are inputs
        (the JAX dynamic program runs under jit, where it can only return NaN)."""
        from .backends.runtime import _ctc_lengths
        for op, names, sources in self._ctc_inputs:
            shape = np.broadcast_shapes(*(np.shape(kwargs[n]) for n in sources))
            _ctc_lengths(np.broadcast_to(np.float32(0), shape), *(np.asarray(kwargs[n]) for n in names),
                         op.param("blank"), op.param("labels"))

    def _input_name(self, e: sp.Expr) -> str | None:
        op = self.graph.op_of.get(e)
        return op.name if isinstance(op, Input) else None

    def __call__(self, **inputs: Any) -> Any:
        if self._fused_checks and not _traced(inputs):
            return self.value_and_grad(())(**inputs)[0]  # checks in the same jit
        self._check(inputs)  # traced: loss() keeps its custom_vjp for the caller's jax.grad
        return _reporting_input_errors(self._value_fn, inputs)

    def _wrt(self, wrt: str | Sequence[str]) -> tuple[str, ...]:
        names = (wrt,) if isinstance(wrt, str) else tuple(wrt)
        for n in names:
            if n not in self.inputs:
                from .errors import did_you_mean
                raise InputError(f"'{n}' is not an input of this loss{did_you_mean(n, self.inputs)}")
            if n not in self.differentiable:
                raise InputError(f"'{n}' holds integer labels and has no gradient")
        return names

    def _subset(self, names: tuple[str, ...]) -> Callable[..., Any]:
        fn = self._subsets.get(names)
        if fn is None:
            module = load_module(self._writer.subset_module(names, checked=self._fused_checks), f"{self.backend}:grad")
            fn = self._subsets[names] = self._jit(module.value_and_grad)
        return fn

    def value_and_grad(self, wrt: str | Sequence[str]) -> Callable[..., Any]:
        """A function of the inputs returning (value, gradient): an array for one name, else a dict."""
        names = self._wrt(wrt)
        fn = self._subset(names)

        def value_and_grad(**inputs: Any) -> Any:
            self._check(inputs, fused=self._fused_checks)
            value, grads, *ranges = _reporting_input_errors(fn, inputs)
            if ranges:
                self._check_ranges(ranges[0])
            return (value, grads[names[0]]) if isinstance(wrt, str) else (value, grads)
        return value_and_grad

    def grad(self, wrt: str | Sequence[str]) -> Callable[..., Any]:
        """A function of the inputs returning the gradient: an array for one name, else a dict."""
        vg = self.value_and_grad(wrt)
        return lambda **inputs: vg(**inputs)[1]

    # --- second derivatives ---------------------------------------------------------------
    def _derived(self, key: tuple[str, str], build: Callable[[], tuple[Graph, sp.Expr]]) -> Callable[..., Any]:
        fn = self._subsets.get(key)
        if fn is None:
            graph, expr = build()
            module = load_module(self._writer.derived_module(graph, expr, key[1]), f"{self.backend}:{key[0]}")
            fn = self._subsets[key] = self._jit(module.derived)
        return fn

    def hvp(self, wrt: str) -> Callable[..., Any]:
        """A function ``(direction, **inputs) -> H @ direction``: the Hessian with respect to
        ``wrt`` times a direction shaped like ``wrt``, by symbolic reverse-over-reverse."""
        (name,) = self._wrt(wrt)
        fn = self._derived(("hvp", name), lambda: hessian_vector(self.graph, self.root, name))

        def hvp(direction: Any, **inputs: Any) -> Any:
            self._check(inputs)
            return _reporting_input_errors(fn, {**inputs, DIRECTION: direction})
        return hvp

    def second_derivative(self, wrt: str) -> Callable[..., Any]:
        """A function of the inputs giving ``H @ 1`` for ``wrt``: the per-element second
        derivative of a loss that sums or averages one term per element (then ``H`` is diagonal)."""
        (name,) = self._wrt(wrt)
        fn = self._derived(("rowsum", name), lambda: hessian_rowsum(self.graph, self.root, name))

        def second_derivative(**inputs: Any) -> Any:
            self._check(inputs)
            return _reporting_input_errors(fn, inputs)
        return second_derivative

    def hessian(self, wrt: str) -> Callable[..., Any]:
        """A function of the inputs giving the full Hessian for ``wrt``, shaped ``x.shape * 2``:
        one Hessian-vector product per element, so meant for small parameter vectors."""
        hvp = self.hvp(wrt)

        def hessian(**inputs: Any) -> Any:
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
        return render(self.graph, gradients(self.graph, self.root, [name])[name])
