"""Differences and windows: ``diff``, ``roll``, ``pad`` and ``correlate``.

The registry (``builtins.py``) holds one entry per op; this module holds what those entries call:
how each builtin builds its IR and its reverse-mode rule. All four are linear in ``x`` (``pad`` in
constant mode affine), so each adjoint is another window op of the cotangent, broadcast first to the
op's output shape (a cotangent may stay smaller than its tensor, and a window reads positions along
an axis that a broadcast axis does not have):

* ``diff(x, n)``: ``(-1)^n diff(pad(ct, (n, n)), n)``, the zero-padded cotangent differenced again;
* ``roll(x, s)``: ``roll(ct, -s)``;
* ``pad(x, w)``: ``pad_vjp``, the middle slice of ``ct`` plus, for reflect and edge, the padded
  entries folded back onto the positions they copy; its own adjoint is ``pad`` again (value 0);
* ``correlate(x, k)``: in ``x``, the cotangent correlated with the flipped kernel in the adjoint mode
  (valid <-> full, same <-> same_t: the transposed zero padding); in ``k``, ``correlate_kernel_vjp``,
  the padded ``x`` correlated with the cotangent, summed over every line.

Modes and flips are op parameters, so the adjoint of an adjoint is the op itself and Hessians pass
through. A length that depends on a shape (a kernel longer than its axis) is checked by the runtime
helpers (``backends/runtime.py``), under ``jit`` too, shapes being static.
"""

from __future__ import annotations

import math

import sympy as sp

from .args import Args
from .ir import Apply, Graph, Tensor

MAX_ORDER = 256  # diff's n, and pad's widths: each is a loop of slices the runtime (or XLA) unrolls
MODES = ("constant", "reflect", "edge")
CORRELATE_MODES = ("valid", "same")
# each correlate mode's adjoint (internal modes: full, and same_t, same's padding transposed)
ADJOINT = {"valid": "full", "full": "valid", "same": "same_t", "same_t": "same"}


def _array(a: Args, what: str) -> sp.Expr:
    x = a.tensor("x")
    if x.is_number:
        raise a.error("x", f"{a.func}() {what} along an axis; a number has none")
    return x


def _full_cotangent(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> sp.Expr:
    """``ct`` broadcast to the op's output shape: a window moves values along an axis that a
    broadcastable cotangent (a mean's 1/n, a lower-rank factor) may lack."""
    return g.apply("broadcast", ct, out)


# --- diff and roll -------------------------------------------------------------------------------

def build_diff(a: Args) -> Tensor:
    x = _array(a, "takes differences")
    n = a.static_int("n", minimum=0, limit=MAX_ORDER)
    axis = a.single_axis("axis")
    return Tensor(x if n == 0 else a.graph.apply("diff", x, n=n, axis=axis))


def vjp_diff(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    n, axis = op.param("n"), op.param("axis")
    padded = g.apply("pad", _full_cotangent(g, op, out, ct), width=(n, n), axis=axis, mode="constant", value=0.0)
    return ((-1) ** n * g.apply("diff", padded, n=n, axis=axis),)


def build_roll(a: Args) -> Tensor:
    x = _array(a, "rolls entries")
    shift, axis = a.static_int("shift"), a.single_axis("axis")
    return Tensor(a.graph.apply("roll", x, shift=shift, axis=axis))


def vjp_roll(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    return (g.apply("roll", _full_cotangent(g, op, out, ct), shift=-op.param("shift"), axis=op.param("axis")),)


# --- pad -------------------------------------------------------------------------------------------

def build_pad(a: Args) -> Tensor:
    x = _array(a, "pads")
    width = a.static_pair("width", minimum=0, limit=MAX_ORDER)
    axis = a.single_axis("axis")
    mode = a.choice("mode", MODES)
    value = a.number_or_none("value")
    if mode != "constant" and a.given("value"):
        raise a.error("value", f"only mode=\"constant\" pads with a value; mode={mode!r} copies entries of x")
    if value is None or not math.isfinite(value):
        raise a.error("value", f"expected a finite constant number, got {value!r}")
    if width == (0, 0):
        return Tensor(x)
    return Tensor(a.graph.apply("pad", x, width=width, axis=axis, mode=mode, value=float(value) if mode == "constant" else 0.0))


def vjp_pad(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    params = {k: op.param(k) for k in ("width", "axis", "mode")}
    return (g.apply("pad_vjp", _full_cotangent(g, op, out, ct), op.operands[0], **params),)


def vjp_pad_vjp(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    """``pad_vjp`` is linear in its cotangent: its adjoint pads again (with zeros: the value is
    pad's constant part, which no derivative sees)."""
    params = {k: op.param(k) for k in ("width", "axis", "mode")}
    return (g.apply("pad", _full_cotangent(g, op, out, ct), value=0.0, **params), None)


# --- correlate ---------------------------------------------------------------------------------------

def build_correlate(a: Args) -> Tensor:
    x = _array(a, "slides a kernel")
    kernel = a.tensor("kernel")
    if kernel.is_number:
        raise a.error("kernel", "expected a 1-D array of weights, got a number (x times a number needs no correlate)")
    axis, mode = a.single_axis("axis"), a.choice("mode", CORRELATE_MODES)
    return Tensor(a.graph.apply("correlate", x, kernel, axis=axis, mode=mode, flip=False))


def vjp_correlate(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    x, kernel = op.operands
    axis, mode, flip = op.param("axis"), op.param("mode"), op.param("flip")
    ct = _full_cotangent(g, op, out, ct)
    return (g.apply("correlate", ct, kernel, axis=axis, mode=ADJOINT[mode], flip=not flip),
            g.apply("correlate_kernel_vjp", ct, x, kernel, axis=axis, mode=mode, flip=flip))


def vjp_correlate_kernel_vjp(g: Graph, op: Apply, out: sp.Symbol, ct: sp.Expr) -> tuple[sp.Expr | None, ...]:
    """Bilinear in the cotangent and ``x`` (the kernel operand gives only its length): the pairing
    <h, kernel_vjp(c, x)> is <c, correlate(x, h)>, so each side's adjoint is a correlate with ``h``."""
    c, x, _ = op.operands
    axis, mode, flip = op.param("axis"), op.param("mode"), op.param("flip")
    h = g.apply("broadcast", ct, out)
    return (g.apply("correlate", x, h, axis=axis, mode=mode, flip=flip),
            g.apply("correlate", c, h, axis=axis, mode=ADJOINT[mode], flip=not flip), None)
