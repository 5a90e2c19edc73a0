"""Module writing: the generated module's functions, assembled from the printed phases.

``ModuleWriter`` holds one loss's IR and its full gradient IR (both only read) and writes the source
of a standalone module for one backend: ``loss``, ``value_and_grad``, ``grad``, and for a wired
backend ``_vjp`` and the wiring that gives ``loss`` the symbolic gradient. ``load_module`` runs
such source (ours, never user text) as a module.
"""

from __future__ import annotations

import itertools
import linecache
import sys
import types
from collections.abc import Callable, Mapping, Sequence

import sympy as sp

from .backend import Backend
from .backends.copying import helpers_for, imports_for
from .blocking import RowBlocks, row_blocks
from .checks import checked_operands, checked_ops, stats_code
from .formula import Renderer, TextPrinter, render
from .gradient import gradients
from .ir import Apply, Graph
from .printer import FunctionPrinter, Signature

SEED = sp.Symbol("_ct", real=True)  # the output cotangent of _vjp
# a block of 1 MB of float32: its dozen temporaries stay in the caches, and the Python per block
# (tens of microseconds) is a small part of its time
ROW_BLOCK = 1 << 18
# float inputs up to which a torch module has a vjp for each alone (for the common backward where
# only the prediction requires grad); each costs a printing of its part of the gradient
SINGLE_VJPS = 8


def _kwargs(names: Sequence[str]) -> str:
    return ", ".join(f"{n}={n}" for n in names)


class ModuleWriter:
    """Writes module source for one loss and one backend from its IR and its gradient IR; it
    derives nothing into the graphs it is given (the vjp's seeded derivation makes its own)."""

    def __init__(self, text: str, backend: Backend, graph: Graph, root: sp.Expr,
                 gradient: tuple[Graph, Mapping[str, sp.Expr]], formulas: Sequence[str], checks: bool = True):
        """``formulas``: the docstring's lines for the loss and its gradients (``formula_lines``);
        ``checks``: whether the generated functions check values at call time (see checks.py)."""
        self.text, self.b, self.graph, self.root, self.checks = text, backend, graph, root, checks
        self.formulas = formulas
        self.grad_graph, self.grads = gradient
        self.sig = Signature.of(graph)
        self.checked: tuple[Apply, ...] = checked_ops(graph, root) if checks else ()
        # how the loss splits over blocks of rows, where the backend evaluates by blocks
        self.blocks: RowBlocks | None = row_blocks(graph, root) if backend.row_blocks else None

    @property
    def differentiable(self) -> tuple[str, ...]:
        return self.sig.float_inputs

    def _by_rows(self, name: str, doc: str, function: Callable[[str], str]) -> str:
        """``name`` computed by ``function(name)``, or, for a loss that splits over blocks of rows,
        by ``function("_" + name + "_rows")`` called on blocks of rows (see blocking.py)."""
        if self.blocks is None:
            return function(name)
        names = self.sig.names(self.sig.inputs)
        inputs = "{" + ", ".join(f"{n!r}: {n}" for n in names) + "}"
        labels = self.sig.names([n for n in self.sig.inputs if n in self.sig.index_inputs])
        b = self.blocks
        return f'''{function(f"_{name}_rows")}


def {name}(*, {", ".join(names)}):
    """{doc}"""
    return _by_rows(_{name}_rows, {inputs}, {labels!r}, {b.min_rank}, {b.reduction!r}, ROW_BLOCK)'''

    def _grad_codes(self, wrt: Sequence[str], codes: Sequence[str], poison: Callable[[str], str],
                    fit: str = "_fit") -> list[str]:
        return [poison(f"{fit}({c}, {self.sig.name(w)})") for w, c in zip(wrt, codes)]

    @property
    def guarded(self) -> tuple[Apply, ...]:
        """The checked ops that the generated functions test themselves: on a backend whose code
        runs traced (JAX), where a failed check cannot raise (see checks.py)."""
        return self.checked if self.b.fused_checks else ()

    def _guard(self, codes: Sequence[str]) -> tuple[list[str], Callable[[str], str]]:
        """Lines that compute ``_stats`` and ``_ok`` (checks.stats_code) from ``codes``, the printed
        ``checked_operands(self.guarded)``, and what makes an output NaN unless ``_ok``."""
        if not self.guarded:
            return [], lambda out: out
        stats, passes = stats_code(self.guarded, codes, self.b.fn("shape"))
        return [f"_stats = {stats}", f"_ok = {passes}"], lambda out: f"_nan_unless(_ok, {out})"

    def value_function(self, name: str = "loss", guarded: bool = True) -> str:
        """``guarded``: the body runs under the backend's guard (see ``Backend.forward_guarded``)."""
        doc = "The loss value: a 0-d array (or the unreduced array) of the inputs' float dtype."

        def function(name: str) -> str:
            fp = self._printer(self.graph)
            lines, (v, *checks) = fp.body([self.root, *checked_operands(self.guarded)])
            guard, poison = self._guard(checks)
            return fp.function(name, [*lines, *guard], poison(f"_out({v}, _dt)"), doc=doc, guarded=guarded)
        return self._by_rows(name, doc, function)

    def value_and_grad_function(self, wrt: Sequence[str], name: str = "value_and_grad", checked: bool = False,
                                fit: str = "_fit", guarded: bool = True) -> str:
        """``value_and_grad`` for the inputs ``wrt``, their entries of the full gradient IR;
        ``checked``: it also returns the statistics of ``_checks``, computed in the same jit (one
        dispatch, and XLA shares the passes over the inputs); ``fit``: the helper that shapes each
        gradient like its input (``_fit``, a fresh array, for what callers receive); ``guarded``: as for
        ``value_function``."""
        doc = f"The loss value and its gradient with respect to {', '.join(wrt) or 'nothing'}."

        def function(name: str) -> str:
            fp = self._printer(self.grad_graph)
            lines, codes = fp.body([self.root, *(self.grads[w] for w in wrt), *checked_operands(self.guarded)])
            k = 1 + len(wrt)
            guard, poison = self._guard(codes[k:])
            grads = self._grad_codes(wrt, codes[1:k], poison, fit)
            grad_dict = f"{{{', '.join(f'{w!r}: {c}' for w, c in zip(wrt, grads))}}}"
            extra, returns = self.b.returns(poison(codes[0]), grad_dict)
            if checked:
                returns += ", _stats"
            return fp.function(name, [*lines, *guard, *extra], returns, doc=doc, guarded=guarded)
        return self._by_rows(name, doc, function)

    def _printer(self, graph: Graph) -> FunctionPrinter:
        return FunctionPrinter(graph, self.b, self.sig, self.checks)

    def vjp_function(self, seeded: tuple[Graph, Mapping[str, sp.Expr]], wrt: Sequence[str] | None = None,
                     name: str = "_vjp") -> str:
        """``name``: the cotangents of the inputs ``wrt`` (every float input without) for an output
        cotangent, printed from ``seeded``, the gradient derived from the seed ``SEED``."""
        wrt = self.differentiable if wrt is None else wrt
        graph, grads = seeded
        fp = self._printer(graph)
        lines, codes = fp.body([*(grads[w] for w in wrt), *checked_operands(self.guarded)])
        guard, poison = self._guard(codes[len(wrt):])
        params = [*self.sig.names(self.sig.inputs), "_ct"]
        fitted = self._grad_codes(wrt, codes[:len(wrt)], poison, self.b.vjp_fit)
        returns = fitted[0] if name != "_vjp" else "(" + "".join(c + ", " for c in fitted) + ")"
        doc = (f"The cotangent of {wrt[0]} alone" if name != "_vjp" else "Cotangents of the inputs")
        return fp.function(name, [*lines, *guard], returns, params=params, guarded=not self.b.differentiable_vjp,
                           doc=doc + " for an output cotangent _ct (for the backward pass).")

    def vjp_functions(self) -> tuple[list[str], list[str], dict[int, str]]:
        """``_vjp``, and for a backend whose backward picks by the inputs that need gradients
        (``differentiable_vjp``: torch), where there are at most ``SINGLE_VJPS`` float inputs, one
        ``_vjp_<position>`` for each and, for a loss that is one number, one ``_value_and_grad_<position>``
        (the module's ``value_and_grad`` where it is the only one); with the Python names of the inputs that
        have a vjp of their own, and the function giving the value and each input's gradient by position."""
        wrt = self.differentiable
        seeded = gradients(self.graph, self.root, wrt, seed=SEED)
        parts = [self.vjp_function(seeded)]
        if not self.b.differentiable_vjp or len(wrt) > SINGLE_VJPS:
            return parts, [], {}
        inputs = list(self.sig.inputs)
        single = list(wrt) if len(wrt) > 1 else []
        parts += [self.vjp_function(seeded, [w], f"_vjp_{inputs.index(w)}") for w in single]
        fused: dict[int, str] = {}
        if self.graph.rank(self.root).scalar:
            fused = {inputs.index(w): f"_value_and_grad_{inputs.index(w)}" if single else "value_and_grad" for w in wrt}
            # internal to backward (which scales the gradient by the cotangent): shaped as a cotangent, no copy
            parts += [self.value_and_grad_function([w], fused[inputs.index(w)], fit=self.b.vjp_fit,
                                                   guarded=not self.b.forward_guarded) for w in single]
        return parts, self.sig.names(single), fused

    def checks_function(self) -> str:
        """``_checks``: the statistics each check reads (checks.stats_code), computed under jit
        where the values are otherwise unknown (XLA drops everything else)."""
        fp = self._printer(self.graph)
        lines, codes = fp.body(checked_operands(self.checked))
        return fp.function("_checks", lines, stats_code(self.checked, codes, self.b.fn("shape"))[0],
                           doc="Value ranges that call-time checks need (see CompiledLoss).")

    def header(self) -> str:
        """The module docstring: the source loss, its formula and its gradients, readable."""
        lines = [f"{GENERATED_BY} {self.b.name}; regenerate it rather than edit it.",
                 "", "Source (also in SOURCE):", "", *_indented(self.text), "", *self.formulas]
        doc = "\n".join(line.rstrip() for line in lines)
        safe = "\\" not in doc and '"""' not in doc and all(line.isprintable() for line in lines)
        return f'"""{doc}\n"""' if safe else repr(doc + "\n")  # user text never escapes the string

    def module(self) -> str:
        names, wired = self.sig.names(self.sig.inputs), self.b.wired  # wired: loss() wraps _value with the symbolic gradient
        value = self.value_function("_value", guarded=not self.b.forward_guarded) if wired else self.value_function()
        parts = [value, self.value_and_grad_function(self.differentiable)]
        if wired:
            if names:
                vjps, single, fused = self.vjp_functions()
                parts += [*vjps, self.b.wiring(names, self.sig.names(self.differentiable),
                                               self.graph.rank(self.root).scalar, single, fused)]
            else:  # a constant loss: nothing to differentiate
                parts.append('def loss():\n    """The loss value (a constant)."""\n    return _value()')
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
        if self.sig.code:
            consts.append(f"ARGUMENTS = {dict(self.sig.code)!r}  # inputs whose Python names differ from theirs")
        sections = [self.header() + "\n\n" + imports, "\n".join(consts)] if header else [imports]
        if blocked:
            sections.append(f"ROW_BLOCK = {ROW_BLOCK}  # elements in a block of rows (see _by_rows)")
        return "\n\n".join(sections) + "\n\n\n" + helpers + "\n\n\n" + code + "\n"

    def checks_module(self) -> str:
        return self._assemble([self.checks_function()], header=False)

    def derived_module(self, graph: Graph, exprs: Sequence[sp.Expr], like: str) -> str:
        """A module whose one function ``derived`` computes ``exprs`` (over ``graph``, an extension
        of this loss's graph), each shaped like the input ``like``: one array for one expression, else
        a tuple, the expressions sharing every common subexpression (a gradient and its Hessian)."""
        sig = Signature.of(graph)
        fp = FunctionPrinter(graph, self.b, sig, self.checks)
        lines, codes = fp.body([*exprs, *checked_operands(self.guarded)])
        guard, poison = self._guard(codes[len(exprs):])
        fitted = [poison(f"_fit({code}, {sig.name(like)})") for code in codes[:len(exprs)]]
        returns = fitted[0] if len(fitted) == 1 else ", ".join(fitted)
        return self._assemble([fp.function("derived", [*lines, *guard], returns)], header=False)

    def subset_module(self, wrt: Sequence[str], checked: bool = False) -> str:
        return self._assemble([self.value_and_grad_function(wrt, checked=checked)], header=False,
                              blocked=self.blocks is not None)


def _indented(text: str) -> list[str]:
    return ["    " + line.expandtabs(4) if line.strip() else "" for line in text.split("\n")]


_FORMULA_CHARS = 2000
_DOC_CHARS = 20_000  # past this, the docstring names the gradients it leaves out


def formula_lines(graph: Graph, root: sp.Expr, gradient: tuple[Graph, Mapping[str, sp.Expr]],
                  source_chars: int) -> tuple[str, ...]:
    """The docstring's lines for a loss and its gradients, element by element, after a source of
    ``source_chars``; the same for every backend (rendered once per source: pipeline.front)."""
    grad_graph, grads = gradient
    differentiable = Signature.of(graph).float_inputs
    printer = TextPrinter()

    def shown(e: sp.Expr) -> str:
        """A formula as one line of text, abridged past a length no reader follows."""
        text = printer.doprint(e)
        return text if len(text) <= _FORMULA_CHARS else text[:_FORMULA_CHARS] + " ... (abridged)"

    lines = ["Loss:", "", *_indented(shown(render(graph, root)))]
    if differentiable:
        lines += ["", "Gradient, element by element (n: the element count of a mean):", ""]
        rendered = Renderer(grad_graph)
        for k, w in enumerate(differentiable):
            if source_chars + sum(map(len, lines)) > _DOC_CHARS:  # no reader follows more; each takes a render
                lines.append(f"    ... and {len(differentiable) - k} more: CompiledLoss.gradient_formula")
                break
            lines += _indented(f"d/d{w} = {shown(rendered(grads[w]))}")
    return tuple(lines)


#: how every generated module's docstring begins (the CLI writes over no other file)
GENERATED_BY = "Loss and gradient generated by lossdsl for"

_module_numbers = itertools.count(1)  # next() on a count is atomic: no two modules share a name


def load_module(source: str, label: str) -> types.ModuleType:
    """Load generated source (ours, never user text) as a module, with tracebacks that show it,
    importable by its unique name (``sys.modules``): torch.compile and pickle look its functions up there."""
    number = next(_module_numbers)
    filename = f"<lossdsl:{label}:{number}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"lossdsl_generated_{number}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - generated code only
    sys.modules[module.__name__] = module
    return module
