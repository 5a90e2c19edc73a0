"""The backends: everything that differs between NumPy, JAX and PyTorch, one class each.

A backend says how its generated code prints (the array module's alias, names it lacks, what its
arrays allow), how ``loss()`` is wired to the symbolic gradient (JAX's ``custom_vjp``, a
``torch.autograd.Function``), how a function is compiled (``jax.jit``) and where its runtime
helpers live. Adding a backend is one class here plus its runtime in ``backends/``; the phases
and the compiled loss ask these objects and never test a backend's name.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import LossDSLError


def _kwargs(names: Sequence[str]) -> str:
    return ", ".join(f"{n}={n}" for n in names)


def _tuple(names: Sequence[str]) -> str:
    """``names`` as the inside of a Python tuple display (a trailing comma for one)."""
    return ", ".join(names) + ("," if len(names) == 1 else "")


@dataclass(frozen=True)
class Backend:
    name: str
    alias: str  # the array module's name in generated code
    imports: str
    runtime_module: str  # imported on first use, so that `import lossdsl` does not import jax
    guard: str | None = None  # a context manager wrapped around function bodies
    renamed: tuple[tuple[str, str], ...] = ()  # NumPy names the array module lacks -> printed helper
    # arrays are mutable and evaluated eagerly: a function of a temporary may write over it
    # (_into, _where's scratch), saving a fresh full-size array
    scratch: bool = False
    # evaluated eagerly, one op over whole arrays at a time: a loss that is a mean over rows runs
    # a block of rows at a time (blocking.py)
    row_blocks: bool = False
    # maximum and minimum with a number print as a one-sided clip: NumPy has no SIMD loop for
    # np.maximum(x, 0) with a number, and np.clip(x, 0, np.inf) is three times faster
    one_sided_clip: bool = False
    # which of softplus(±a) and sigmoid(±a), two or more together, print through one exp(-|a|)
    # (rewrite.share_logistic): each helper call evaluates its own exponential
    shared_logistic: tuple[str, ...] = ()
    # where a softplus pair's value is computed beside the gradient's sigmoid(a) and sigmoid(-a), its
    # log1p(exp(-|a|)) is -log1p(-min(sigmoid(a), sigmoid(-a))) (rewrite.share_logistic): three ops for
    # four, and no exponential (torch's exp costs 2.7 of its sigmoids on the CPU)
    tail_from_sigmoids: bool = False
    # where an nn.Module-like wrapper of a compiled loss lives ("module:attribute"), if anywhere
    module_class: str | None = None
    # loss() wraps _value with the symbolic gradient (the module then has _vjp and ``wiring``)
    wired: bool = False
    # call-time checks read value ranges that the generated code returns (it runs under jit, where
    # values are unknown as it runs) rather than checking as it goes
    fused_checks: bool = False
    # _vjp runs with autograd as the caller has it (not under ``guard``): torch differentiates it again
    # for double backward
    differentiable_vjp: bool = False
    # the wiring's forward already runs as ``guard`` would (autograd runs a Function's forward without
    # grad, under torch.func and torch.compile too), so what only it calls (_value, the fused
    # _value_and_grad_<k>) prints without: entering no_grad costs a microsecond a call
    forward_guarded: bool = False
    # the helper that shapes and types each cotangent _vjp returns like its input
    vjp_fit: str = "_fit"
    # array libraries whose arrays it refuses as inputs (input_values.py): a torch tensor reaches
    # NumPy or JAX only through .numpy(), which fails for one that requires grad or lives on a GPU
    foreign: tuple[str, ...] = ()

    @property
    def package(self) -> str:
        """The installed package its generated code imports first (numpy, jax, torch)."""
        return self.imports.split()[1].split(".")[0]

    def fn(self, name: str) -> str:
        """How the array module's ``name`` (NumPy's name for it) prints on this backend."""
        return dict(self.renamed).get(name, f"{self.alias}.{name}")

    @property
    def names(self) -> frozenset[str]:
        """The module-level names its generated code binds (imports), which no input may take."""
        return frozenset(line.split()[-1] for line in self.imports.splitlines())

    # --- wiring the generated module ------------------------------------------------------
    def wiring(self, names: Sequence[str], differentiable: Sequence[str], scalar: bool,
               single: Sequence[str] = (), fused: Mapping[int, str] | None = None) -> str:
        """Source defining ``loss`` from ``_value`` and ``_vjp``, for a backend that is ``wired``;
        ``scalar``: the loss is one number (not an unreduced array); for a backend with
        ``differentiable_vjp``, ``single``: the inputs that have a ``_vjp_<position>`` of their own,
        and ``fused``: by input position, the function giving the value and that input's gradient."""
        raise NotImplementedError

    def returns(self, value: str, grads: str) -> tuple[list[str], str]:
        """Lines and the return expression of ``value_and_grad`` for a value code and a dict display."""
        return [], f"_out({value}, _dt), {grads}"

    # --- calling it -----------------------------------------------------------------------
    def jit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return fn

    def traced(self, tree: Any) -> bool:
        """Whether the inputs are abstract (being traced by someone's jit): no values to check."""
        return False

    def compiling(self) -> bool:
        """Whether a compiler is tracing the call (torch.compile), which warns of caches it reads through."""
        return False


class NumpyBackend(Backend):
    def returns(self, value: str, grads: str) -> tuple[list[str], str]:
        # mutable arrays, and _fit returns a fresh result as it is: no two outputs may share memory
        return [f"_value = _out({value}, _dt)"], f"_value, _own(_value, {grads})"


class JaxBackend(Backend):
    def wiring(self, names: Sequence[str], differentiable: Sequence[str], scalar: bool,
               single: Sequence[str] = (), fused: Mapping[int, str] | None = None) -> str:
        return self._jvp_wiring(names, differentiable) if scalar else self._vjp_wiring(names, differentiable)

    @staticmethod
    def _jvp_wiring(names: Sequence[str], differentiable: Sequence[str]) -> str:
        """A one-number loss as a ``custom_jvp`` whose tangent is the symbolic gradient dotted with the
        tangents: JAX transposes that for reverse mode (jax.grad), and forward mode (jvp, jacfwd,
        hessian) works too; value and gradient come from one function, sharing their subexpressions."""
        args = ", ".join(names)
        pairs = ", ".join(f"(grads[{n!r}], {n}_dot)" for n in differentiable)
        return f'''def _primal({args}):
    return _value({_kwargs(names)})


_loss = jax.custom_jvp(_primal)


@_loss.defjvp
def _primal_jvp(primals, tangents):
    {_tuple(names)} = primals
    {_tuple([n + "_dot" for n in names])} = tangents
    value, grads = value_and_grad({_kwargs(names)})
    return value, _dotted(value, ({pairs}{"," if len(differentiable) == 1 else ""}))


def loss(*, {args}):
    """The loss value; jax.grad, jvp, jacfwd, hessian, jit and vmap through it use the symbolic gradient."""
    return _loss({args})'''

    @staticmethod
    def _vjp_wiring(names: Sequence[str], differentiable: Sequence[str]) -> str:
        args = ", ".join(names)
        cot = ", ".join(f"_cotangent(grads[{differentiable.index(n)}], {n})" if n in differentiable else "None"
                        for n in names)
        return f'''def _primal({args}):
    return _value({_kwargs(names)})


def _primal_fwd({args}):
    return _primal({args}), ({_tuple(names)})


def _primal_bwd(residuals, _ct):
    {_tuple(names)} = residuals
    grads = _vjp({args}, _ct)
    return ({cot}{"," if len(names) == 1 else ""})


_loss = jax.custom_vjp(_primal)
_loss.defvjp(_primal_fwd, _primal_bwd)


def loss(*, {args}):
    """The loss value; jax.grad, jit and vmap through it use the symbolic gradient."""
    return _loss({args})'''

    def jit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        import jax
        return jax.jit(fn)

    def traced(self, tree: Any) -> bool:
        import jax
        return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(tree))


class TorchBackend(Backend):
    def compiling(self) -> bool:
        import torch
        return torch.compiler.is_compiling()

    def wiring(self, names: Sequence[str], differentiable: Sequence[str], scalar: bool,
               single: Sequence[str] = (), fused: Mapping[int, str] | None = None) -> str:
        """A ``torch.autograd.Function`` in the ``setup_context`` style (so torch.func's grad, vmap and
        jacrev transform it), whose backward runs ``_vjp`` with grad mode as the caller has it: under
        ``create_graph=True`` autograd differentiates the symbolic gradient's own code (double
        backward). ``single``: the inputs that have a ``_vjp_<k>`` of their own (k: their position
        in ``names``), which backward runs when only that input needs a gradient. ``fused``: where one
        input alone requires grad, ``loss`` computes its gradient with the value (one pass, sharing
        their subexpressions), and backward scales it by the cotangent, or, recording a second
        derivative, runs the vjp."""
        args = ", ".join(names)
        grads = ", ".join(f"grads[{differentiable.index(n)}]" if n in differentiable else "None" for n in names)
        # labels have no gradient: their place in what backward returns is None
        regroup = "" if tuple(differentiable) == tuple(names) else f"\n    grads = ({grads}{',' if len(names) == 1 else ''})"
        alone = ", ".join(f"{names.index(n)}: _vjp_{names.index(n)}" for n in single)
        fused = fused or {}
        together = ", ".join(f"{k}: {f}" for k, f in fused.items())
        return f'''_ALONE = {{{alone}}}  # input position -> the vjp of that input alone
_FUSED = {{{together}}}  # input position -> the value and that input's gradient, from one function


def _backward(inputs, need, _ct):
    if sum(need) == 1 and need.index(True) in _ALONE:  # one input needs a gradient: its own vjp
        k = need.index(True)
        return tuple(_ALONE[k](*inputs, _ct) if i == k else None for i in range(len(need)))
    grads = _vjp(*inputs, _ct){regroup}
    return tuple(g if n else None for g, n in zip(grads, need))


class _Loss(torch.autograd.Function):
    """The loss value, with the symbolic gradient as its backward."""

    generate_vmap_rule = True  # torch.func.vmap runs forward and backward per sample

    @staticmethod
    def forward({args}):
        return _fresh((_value({_kwargs(names)}),), ({_tuple(names)}))[0]

    @staticmethod
    def setup_context(_ctx, _inputs, _output):
        _keep(_ctx, _inputs)

    @staticmethod
    def backward(_ctx, _ct):
        return _backward(_kept(_ctx), _ctx.needs_input_grad, _ct)


def _fused_backward(_ctx, _ct):
    """What backward returns for _k and the inputs: the kept gradient scaled by the cotangent, or,
    recording a second derivative, the vjp (a gradient autograd can differentiate again)."""
    need = _ctx.needs_input_grad[1:]
    if _ct is None:  # no cotangent for the value (not materialized as zeros): no gradients
        return (None,) * (1 + len(need))
    if torch.is_grad_enabled():  # create_graph=True
        return None, *_backward(_kept(_ctx)[:-1], need, _ct)
    gradient = _ctx.saved_tensors[-1]  # kept last, a tensor
    return None, *[_ct*gradient if n else None for n in need]


class _Fused(torch.autograd.Function):
    """The loss value and the gradient of input _k, the one that requires grad, from one function."""

    generate_vmap_rule = True

    @staticmethod
    def forward(_k, {args}):
        value, grads = _FUSED[_k]({_kwargs(names)})
        return _fresh((value, *grads.values()), ({_tuple(names)}))

    @staticmethod
    def setup_context(_ctx, _inputs, _output):
        _keep(_ctx, (*_inputs[1:], _output[1]))
        _ctx.mark_non_differentiable(_output[1])
        _ctx.set_materialize_grads(False)  # no zeros made for the gradient output, which has no cotangent

    @staticmethod
    def backward(_ctx, _ct, _):
        return _fused_backward(_ctx, _ct)


class _FusedPlain(torch.autograd.Function):
    """_Fused in autograd's plain style (no setup_context, one output), tens of microseconds a training
    step cheaper: where no torch.func transform is active and no compiler traces (see _plain)."""

    @staticmethod
    def forward(_ctx, _k, {args}):
        value, grads = _FUSED[_k]({_kwargs(names)})
        _keep(_ctx, ({args}, *grads.values()))
        return value

    @staticmethod
    def backward(_ctx, _ct):
        return _fused_backward(_ctx, _ct)


_signed(_Loss, _Fused)


def loss(*, {args}):
    """The loss value; backward() through it uses the symbolic gradient (twice, with create_graph=True)."""
    _k = _requiring_grad(({_tuple(names)}))
    if _k not in _FUSED:
        return _Loss.apply({args})
    return _FusedPlain.apply(_k, {args}) if _plain() else _Fused.apply(_k, {args})[0]'''


NUMPY = NumpyBackend("numpy", "np", "import numpy as np", "lossdsl.backends.numpy_runtime", 'np.errstate(all="ignore")',
                     (("where", "_where"),),  # np.where branches per element: a branch-free select
                     scratch=True, row_blocks=True, one_sided_clip=True, shared_logistic=("softplus", "sigmoid"), foreign=("torch",))
JAX = JaxBackend("jax", "jnp", "import jax\nimport jax.numpy as jnp", "lossdsl.backends.jax_runtime",
                 wired=True, fused_checks=True, foreign=("torch",))
# torch has no shape() for numbers, where() of two numbers gives float32, and broadcast_shapes is
# written in Python at some 50 us a call: helpers stand in
TORCH = TorchBackend("torch", "torch", "import torch", "lossdsl.backends.torch_runtime", "torch.no_grad()",
                     (("shape", "_shape"), ("where", "_where"), ("broadcast_shapes", "_broadcast_shapes")), module_class="lossdsl.torch:LossModule", wired=True,
                     differentiable_vjp=True, forward_guarded=True, vjp_fit="_fit_ct", shared_logistic=("softplus",),
                     tail_from_sigmoids=True)
BACKENDS: dict[str, Backend] = {b.name: b for b in (NUMPY, JAX, TORCH)}


def backend(name: str, installed: bool = True) -> Backend:
    """The backend called ``name``, or a clear error; ``installed``: its array library must be (to
    run the code, rather than only print it)."""
    found = BACKENDS.get(name) if isinstance(name, str) else None
    if found is None:
        raise LossDSLError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if installed and importlib.util.find_spec(found.package) is None:
        raise LossDSLError(f"the {name} backend needs {found.package}, which is not installed here: "
                           f'pip install "lossdsl[{name}]"')
    return found


def module_class(b: Backend) -> type:
    """The nn.Module-like class that wraps a loss compiled for ``b`` (imported on demand)."""
    if b.module_class is None:
        raise LossDSLError(f"backend '{b.name}' has no module wrapper; compile for 'torch' for a torch.nn.Module")
    module, attribute = b.module_class.split(":")
    return getattr(importlib.import_module(module), attribute)
