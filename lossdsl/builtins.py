"""The builtin registry: one entry per builtin, holding every fact about it.

Two kinds of entry:

* ``Elementwise``: a SymPy function (SymPy's own, or one declared here with its derivative),
  its signature, and its printed name per backend. SymPy differentiates through it.
* ``Primitive``: an explicit IR op (reductions, matrix products, gathers, and the internal ops
  that gradients need), with its printed form per backend and its reverse-mode rule.

User-callable names (``BUILTINS``) map onto these. Adding a builtin means adding one entry here
and one row to ``tests/test_builtins.py``; the printers and the gradient pass need no change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mpmath
import sympy as sp

from . import arrays, axes, scans, windows
from .args import Args
from .backends.runtime import _bounds_text, _outside
from .ir import Apply, Graph, Rank, RankRule, Tensor
from .limits import MAX_AXIS, MAX_STATIC_SIZE

BACKENDS = ("numpy", "jax", "torch")
REQUIRED = object()


# --- SymPy functions that SymPy lacks, or whose SymPy form drags in complex parts ------------

def _function(name: str, nargs: int, derivative: Callable[..., tuple[sp.Expr, ...]],
              numeric: Callable[..., sp.Expr], latex: str) -> type[sp.Function]:
    """A real-valued SymPy function with a declared derivative and a value at numbers."""

    def fdiff(self, argindex=1):
        return derivative(*self.args)[argindex - 1]

    @classmethod
    def eval(cls, *args):
        if all(a.is_number and a.is_real for a in args):
            return numeric(*args)
        return None

    def _latex(self, printer):
        return latex.format(*(printer._print(a) for a in self.args))

    return type(name, (sp.Function,), {
        "nargs": nargs, "fdiff": fdiff, "eval": eval, "_latex": _latex,
        "elementary": staticmethod(numeric),  # the same function in SymPy's own terms (for limits)
        "_eval_is_extended_real": lambda self: True, "_eval_is_finite": lambda self: True,
    })


def _half_step(x: sp.Expr) -> sp.Expr:
    """The step in the derivatives of maximum, minimum and clip: 1/2 at 0 (each side of a tie gets
    half), NaN for NaN. Written (1 + sign(x))/2, not as an opaque heaviside, so that SymPy simplifies
    it with what surrounds it: the quantile loss's gradient tau - step(r) is -sign(r)/2 at tau = 1/2."""
    return (1 + sign(x)) / 2


heaviside = _function("heaviside", 2, lambda x, h: (sp.Integer(0), sp.Integer(0)),
                      lambda x, h: sp.Heaviside(x, h), r"\theta\left({0}\right)")
sign = _function("sign", 1, lambda x: (sp.Integer(0),), sp.sign, r"\operatorname{{sign}}\left({0}\right)")
abs_ = _function("abs", 1, lambda x: (sign(x),), sp.Abs, r"\left|{0}\right|")
sigmoid = _function("sigmoid", 1, lambda x: (sigmoid(x) * (1 - sigmoid(x)),),
                    lambda x: 1 / (1 + sp.exp(-x)), r"\sigma\left({0}\right)")
softplus = _function("softplus", 1, lambda x: (sigmoid(x),), lambda x: sp.log(1 + sp.exp(x)),
                     r"\operatorname{{softplus}}\left({0}\right)")
log1p = _function("log1p", 1, lambda x: (1 / (1 + x),), lambda x: sp.log(1 + x),
                  r"\log\left(1 + {0}\right)")
expm1 = _function("expm1", 1, lambda x: (sp.exp(x),), lambda x: sp.exp(x) - 1, r"\left(e^{{{0}}} - 1\right)")
# one step function per max/min, shared by both sides' derivatives (H(b - a) = 1 - H(a - b))
maximum = _function("maximum", 2, lambda a, b: (_half_step(a - b), 1 - _half_step(a - b)), sp.Max,
                    r"\max\left({0}, {1}\right)")
minimum = _function("minimum", 2, lambda a, b: (1 - _half_step(a - b), _half_step(a - b)), sp.Min,
                    r"\min\left({0}, {1}\right)")
# clip(x, lo, hi) is minimum(maximum(x, lo), hi) for numbers lo < hi, which the rewrite pass writes
# so (rewrite.py): one pass, where NumPy's maximum and minimum with a number take two slow ones, and
# one in-range mask as its derivative, rather than a product of two half-steps
inside = _function("inside", 3, lambda x, lo, hi: (sp.Integer(0),) * 3,
                   lambda x, lo, hi: _half_step(x - lo) * (1 - _half_step(x - hi)),
                   r"\mathbf{{1}}_{{[{1}, {2}]}}\left({0}\right)")
clip = _function("clip", 3, lambda x, lo, hi: (inside(x, lo, hi), 1 - _half_step(x - lo), _half_step(x - hi)),
                 lambda x, lo, hi: sp.Min(sp.Max(x, lo), hi), r"\operatorname{{clip}}\left({0}, {1}, {2}\right)")
def _gamma_family(itself: Callable[[], type[sp.Function]], mp_form: Callable[..., Any],
                  sympy_form: Callable[..., sp.Expr]) -> Callable[..., sp.Expr]:
    """The value of a function of the gamma family at numbers: by mpmath to 30 digits (SymPy's own
    computes loggamma(10**8) as log((10**8 - 1)!)), SymPy's at infinities and poles; at symbols, the
    function itself, so that a number substituted later is evaluated here too."""

    def value(*args: sp.Expr) -> sp.Expr:
        if not all(a.is_number for a in args):
            return itself()(*args, evaluate=False)
        x = args[-1]
        if not x.is_finite:
            return sympy_form(*args)
        if x <= 0 and (x.is_integer or (x.is_Float and float(x).is_integer())):  # a pole: 0, -1, ...
            return sympy_form(*args[:-1], sp.Integer(int(x)))
        with mpmath.workdps(30):
            try:
                return sp.Float(mp_form(*(mpmath.mpf(str(a.evalf(30))) for a in args)), 30)
            except (ValueError, ZeroDivisionError):  # a pole, 0, -1, ...: SymPy's value there
                return sympy_form(*args[:-1], sp.Integer(int(x)))
    return value


# special functions, declared here rather than taken from SymPy: SymPy rewrites erfc(-x) as 2 - erfc(x),
# which loses the tail, and its loggamma is complex for x < 0, where lgamma is log|Gamma(x)|
erf = _function("erf", 1, lambda x: (2 / sp.sqrt(sp.pi) * sp.exp(-x**2),), sp.erf, r"\operatorname{{erf}}\left({0}\right)")
erfc = _function("erfc", 1, lambda x: (-2 / sp.sqrt(sp.pi) * sp.exp(-x**2),), sp.erfc,
                 r"\operatorname{{erfc}}\left({0}\right)")
# the n-th derivative of digamma, for a whole number n: what derivatives of lgamma and digamma need
polygamma = _function("polygamma", 2, lambda n, x: (sp.Integer(0), polygamma(n + 1, x)),
                      _gamma_family(lambda: polygamma, lambda n, x: mpmath.polygamma(int(n), x), sp.polygamma),
                      r"\psi^{{({0})}}\left({1}\right)")
digamma = _function("digamma", 1, lambda x: (polygamma(1, x),),
                    _gamma_family(lambda: digamma, mpmath.digamma, lambda x: sp.polygamma(0, x)), r"\psi\left({0}\right)")
lgamma = _function("lgamma", 1, lambda x: (digamma(x),),
                   _gamma_family(lambda: lgamma, lambda x: mpmath.re(mpmath.loggamma(x)), sp.loggamma),
                   r"\log\left|\Gamma\left({0}\right)\right|")


# logaddexp's derivatives are sigmoids of the difference, so neither side overflows; xlogy's are
# jax.scipy's (log(b), and a/b, at a = 0 too); stop_gradient is x with derivative 0, at every order
logaddexp = _function("logaddexp", 2, lambda a, b: (sigmoid(a - b), sigmoid(b - a)),
                      lambda a, b: sp.log(sp.exp(a) + sp.exp(b)), r"\operatorname{{logaddexp}}\left({0}, {1}\right)")
xlogy = _function("xlogy", 2, lambda a, b: (sp.log(b), a / b),
                  lambda a, b: sp.Integer(0) if a == 0 else a * sp.log(b), r"{0} \log {1}")
stop_gradient = _function("stop_gradient", 1, lambda x: (sp.Integer(0),), lambda x: x,
                          r"\operatorname{{sg}}\left({0}\right)")

# hypot's derivatives are a/hypot and b/hypot, finite at large values (no a^2 is formed), and 0 at
# (0, 0), as norm's gradient at the zero vector
hypot = _function("hypot", 2, lambda a, b: tuple(sp.Piecewise((v / hypot(a, b), sp.Ne(hypot(a, b), 0)),
                                                                (sp.Integer(0), True)) for v in (a, b)),
                  lambda a, b: sp.sqrt(a**2 + b**2), r"\operatorname{{hypot}}\left({0}, {1}\right)")


INF = float("inf")
# an increasing function convex left of 0 and concave right of it (sigmoid, tanh, erf)
_S_CURVE = ((-INF, 0.0, "convex", "increasing"), (0.0, INF, "concave", "increasing"))
# lgamma is least on x > 0 at digamma's root 1.46163214496836234..., where it is -0.12148629053584961...:
# bounds rounded outwards, so that each piece below holds on the whole of its interval
LGAMMA_ARGMIN = (1.4616321449683, 1.4616321449684)
LGAMMA_MIN = -0.1214862905358497
# pi/2 and pi rounded inwards (ends of domains and pieces) and outwards (ends of ranges)
HALF_PI_IN, HALF_PI_OUT, PI_OUT = 1.5707963267948966, 1.5707963267948968, 3.1415926535897936
_QUARTERS = ((-HALF_PI_IN, 0.0, "convex", "increasing"), (0.0, HALF_PI_IN, "concave", "increasing"))


@dataclass(frozen=True)
class Shape:
    """What the analysis (``analysis.py``) knows of a function, for composition rules.

    ``curvature`` holds on the whole domain: "convex", "concave", "affine", "constant",
    "multilinear" (affine in each operand while the others are constant, as a matrix product) or
    "unknown". ``monotone`` per argument: "increasing", "decreasing" (non-strictly), "sign"
    (decreasing for an argument <= 0, increasing for >= 0, as |x|), "static" (only its shape or
    integer labels matter), or "" (neither). ``range`` bounds the value, or ``range_of`` derives it
    from operand 0's: "operand" (within its range: a mean, a gather), "operands" (within all of theirs:
    concat) or "sign" (its sign: a sum).
    ``kink``: continuous but not differentiable where its argument is 0 (or its two arguments are
    equal; for a reduction, at ties); ``jump``: discontinuous there. ``domain``: the interval of
    its (one) argument on which all of this holds and which the analysis studies (lgamma: x > 0);
    ``pieces``: ``(lo, hi, curvature, monotone)``, what holds besides where the argument lies in
    ``[lo, hi]`` (erf: convex for x <= 0, concave for x >= 0); the first that contains it applies.
    """

    curvature: str = "unknown"
    monotone: tuple[str, ...] = ("",)
    range: tuple[float, float] = (-INF, INF)
    range_of: str = ""
    kink: bool = False
    jump: bool = False
    domain: tuple[float, float] = (-INF, INF)
    pieces: tuple[tuple[float, float, str, str], ...] = ()


@dataclass(frozen=True)
class Elementwise:
    """An elementwise builtin: ``func`` builds its SymPy form; ``printed`` names it per backend;
    ``shape`` declares its curvature, monotonicity, range and kinks."""

    name: str
    params: tuple[str, ...]
    func: Callable[..., sp.Expr]
    printed: dict[str, str]
    sympy_class: type | None = None  # the class that appears in expressions, if not ``func``
    doc: str = ""
    shape: Shape = Shape()


ELEMENTWISE: tuple[Elementwise, ...] = (
    Elementwise("exp", ("x",), sp.exp, {"numpy": "np.exp", "jax": "jnp.exp", "torch": "torch.exp"}, doc="e^x",
                shape=Shape("convex", ("increasing",), (0, INF))),
    Elementwise("log", ("x",), sp.log, {"numpy": "np.log", "jax": "jnp.log", "torch": "torch.log"}, doc="natural logarithm",
                shape=Shape("concave", ("increasing",))),
    Elementwise("log1p", ("x",), log1p, {"numpy": "np.log1p", "jax": "jnp.log1p", "torch": "torch.log1p"}, doc="log(1 + x), exact near 0",
                shape=Shape("concave", ("increasing",))),
    Elementwise("expm1", ("x",), expm1, {"numpy": "np.expm1", "jax": "jnp.expm1", "torch": "torch.expm1"}, doc="e^x - 1, exact near 0",
                shape=Shape("convex", ("increasing",), (-1, INF))),
    Elementwise("sqrt", ("x",), sp.sqrt, {"numpy": "np.sqrt", "jax": "jnp.sqrt", "torch": "torch.sqrt"}, sympy_class=sp.Pow,
                doc="square root (printed from x^(1/2))", shape=Shape("concave", ("increasing",), (0, INF))),
    Elementwise("abs", ("x",), abs_, {"numpy": "np.abs", "jax": "jnp.abs", "torch": "torch.abs"}, doc="|x|; abs'(0) = 0",
                shape=Shape("convex", ("sign",), (0, INF), kink=True)),
    Elementwise("sign", ("x",), sign, {"numpy": "np.sign", "jax": "jnp.sign", "torch": "torch.sign"}, doc="-1, 0 or 1; gradient 0",
                shape=Shape("unknown", ("increasing",), (-1, 1), jump=True)),
    Elementwise("tanh", ("x",), sp.tanh, {"numpy": "np.tanh", "jax": "jnp.tanh", "torch": "torch.tanh"}, doc="hyperbolic tangent",
                shape=Shape("unknown", ("increasing",), (-1, 1), pieces=_S_CURVE)),
    Elementwise("cosh", ("x",), sp.cosh, {"numpy": "np.cosh", "jax": "jnp.cosh", "torch": "torch.cosh"}, doc="hyperbolic cosine",
                shape=Shape("convex", ("sign",), (1, INF))),
    Elementwise("sinh", ("x",), sp.sinh, {"numpy": "np.sinh", "jax": "jnp.sinh", "torch": "torch.sinh"}, doc="hyperbolic sine",
                shape=Shape("unknown", ("increasing",),
                            pieces=((-INF, 0, "concave", "increasing"), (0, INF, "convex", "increasing")))),
    Elementwise("sigmoid", ("x",), sigmoid, {"numpy": "_sigmoid", "jax": "_sigmoid", "torch": "torch.sigmoid"},
                doc="1 / (1 + e^-x), evaluated without overflow", shape=Shape("unknown", ("increasing",), (0, 1), pieces=_S_CURVE)),
    Elementwise("softplus", ("x",), softplus, dict.fromkeys(BACKENDS, "_softplus"),
                doc="log(1 + e^x), evaluated without overflow", shape=Shape("convex", ("increasing",), (0, INF))),
    Elementwise("maximum", ("x", "y"), maximum, {"numpy": "np.maximum", "jax": "jnp.maximum", "torch": "_maximum"},
                doc="elementwise maximum; at ties each side gets half the gradient",
                shape=Shape("convex", ("increasing", "increasing"), kink=True)),
    Elementwise("minimum", ("x", "y"), minimum, {"numpy": "np.minimum", "jax": "jnp.minimum", "torch": "_minimum"},
                doc="elementwise minimum; at ties each side gets half the gradient",
                shape=Shape("concave", ("increasing", "increasing"), kink=True)),
    Elementwise("heaviside", ("x", "h0"), heaviside, dict.fromkeys(BACKENDS, "_heaviside"),
                doc="0 for x < 0, h0 at 0, 1 for x > 0; gradient 0",
                shape=Shape("unknown", ("increasing", ""), (0, 1), jump=True)),
    # erf'' = -2x erf'(x)
    Elementwise("erf", ("x",), erf, {"numpy": "_erf", "jax": "jax.scipy.special.erf", "torch": "torch.special.erf"},
                doc="error function, 2/sqrt(pi) times the integral of e^(-t^2) from 0 to x",
                shape=Shape("unknown", ("increasing",), (-1, 1), pieces=_S_CURVE)),
    Elementwise("erfc", ("x",), erfc, {"numpy": "_erfc", "jax": "jax.scipy.special.erfc", "torch": "torch.special.erfc"},
                doc="1 - erf(x), accurate in the tail",
                shape=Shape("unknown", ("decreasing",), (0, 2),
                            pieces=((-INF, 0, "concave", "decreasing"), (0, INF, "convex", "decreasing")))),
    # studied for x > 0, as in the losses that use it (poles at 0, -1, -2, ...; log|Gamma| is
    # unbounded below as x -> -inf): lgamma'' = polygamma(1, x) > 0
    Elementwise("lgamma", ("x",), lgamma, {"numpy": "_lgamma", "jax": "jax.scipy.special.gammaln",
                                           "torch": "torch.lgamma"},
                doc="log|Gamma(x)|, as scipy.special.gammaln",
                shape=Shape("convex", ("",), (LGAMMA_MIN, INF), domain=(0, INF),
                            pieces=((0, LGAMMA_ARGMIN[0], "convex", "decreasing"), (LGAMMA_ARGMIN[1], INF, "convex", "increasing")))),
    # between poles digamma increases, and for x > 0 digamma'' = polygamma(2, x) < 0
    Elementwise("digamma", ("x",), digamma, {"numpy": "_digamma", "jax": "jax.scipy.special.digamma",
                                             "torch": "torch.special.digamma"},
                doc="d lgamma(x)/dx", shape=Shape("concave", ("increasing",), domain=(0, INF))),
    Elementwise("logaddexp", ("a", "b"), logaddexp, {"numpy": "np.logaddexp", "jax": "jnp.logaddexp", "torch": "_logaddexp"},
                doc="log(e^a + e^b), as max(a, b) + log1p(e^-|a - b|), without overflow",
                shape=Shape("convex", ("increasing", "increasing"))),
    # a*log(b) is concave in b for a >= 0 and linear in a, but not jointly convex or concave
    Elementwise("xlogy", ("a", "b"), xlogy, dict.fromkeys(BACKENDS, "_xlogy"),
                doc="a*log(b), 0 where a = 0, as scipy.special.xlogy; gradient log(b) and a/b",
                shape=Shape("unknown", ("", ""))),
    # angles: NumPy's names; SymPy's functions (real on their domains; a constant outside one is
    # complex, an error, as log(-1)); arcsin'/arccos' are NumPy's infinities at +-1
    Elementwise("sin", ("x",), sp.sin, {"numpy": "np.sin", "jax": "jnp.sin", "torch": "torch.sin"}, doc="sine",
                shape=Shape("unknown", ("",), (-1, 1), pieces=_QUARTERS)),
    Elementwise("cos", ("x",), sp.cos, {"numpy": "np.cos", "jax": "jnp.cos", "torch": "torch.cos"}, doc="cosine",
                shape=Shape("unknown", ("",), (-1, 1), pieces=(
                    (-HALF_PI_IN, 0.0, "concave", "increasing"), (0.0, HALF_PI_IN, "concave", "decreasing"),
                    (-HALF_PI_IN, HALF_PI_IN, "concave", "")))),
    Elementwise("tan", ("x",), sp.tan, {"numpy": "np.tan", "jax": "jnp.tan", "torch": "torch.tan"},
                doc="tangent; studied on (-pi/2, pi/2)",
                shape=Shape("unknown", ("increasing",), domain=(-HALF_PI_IN, HALF_PI_IN), pieces=(
                    (-HALF_PI_IN, 0.0, "concave", "increasing"), (0.0, HALF_PI_IN, "convex", "increasing")))),
    Elementwise("arcsin", ("x",), sp.asin, {"numpy": "np.arcsin", "jax": "jnp.arcsin", "torch": "torch.asin"},
                doc="inverse sine on [-1, 1]; gradient 1/sqrt(1 - x^2), infinite at +-1",
                shape=Shape("unknown", ("increasing",), (-HALF_PI_OUT, HALF_PI_OUT), domain=(-1, 1),
                            pieces=((-1, 0, "concave", "increasing"), (0, 1, "convex", "increasing")))),
    Elementwise("arccos", ("x",), sp.acos, {"numpy": "np.arccos", "jax": "jnp.arccos", "torch": "torch.acos"},
                doc="inverse cosine on [-1, 1]; gradient -1/sqrt(1 - x^2), infinite at +-1",
                shape=Shape("unknown", ("decreasing",), (0, PI_OUT), domain=(-1, 1),
                            pieces=((-1, 0, "convex", "decreasing"), (0, 1, "concave", "decreasing")))),
    Elementwise("arctan", ("x",), sp.atan, {"numpy": "np.arctan", "jax": "jnp.arctan", "torch": "torch.atan"},
                doc="inverse tangent", shape=Shape("unknown", ("increasing",), (-HALF_PI_OUT, HALF_PI_OUT), pieces=_S_CURVE)),
    Elementwise("arctan2", ("y", "x"), sp.atan2, {"numpy": "np.arctan2", "jax": "jnp.arctan2", "torch": "torch.atan2"},
                doc="the angle of the point (x, y), in [-pi, pi]; gradient (x, -y)/(x^2 + y^2), NaN at (0, 0) "
                "as jax.grad and torch.autograd", shape=Shape("unknown", ("", ""), (-PI_OUT, PI_OUT))),
    Elementwise("hypot", ("a", "b"), hypot, {"numpy": "np.hypot", "jax": "jnp.hypot", "torch": "torch.hypot"},
                doc="sqrt(a^2 + b^2) without overflow; gradient (a, b)/hypot(a, b), 0 at (0, 0) as norm's",
                shape=Shape("convex", ("sign", "sign"), (0, INF))),
    Elementwise("stop_gradient", ("x",), stop_gradient, dict.fromkeys(BACKENDS, "_stop_gradient"),
                doc="x itself, with gradient 0 (a constant to every derivative and to the analysis)",
                shape=Shape("constant", ("increasing",))),
)

#: SymPy function class -> printed name per backend: the builtins, and the functions only the
#: rewrite pass writes (the library's clip is written in the language, as minimum(maximum(...))).
FUNCTION_NAMES: dict[type, dict[str, str]] = {
    **{(e.sympy_class or e.func): e.printed for e in ELEMENTWISE if e.sympy_class is not sp.Pow},
    clip: {"numpy": "np.clip", "jax": "jnp.clip", "torch": "torch.clamp"},
    inside: dict.fromkeys(BACKENDS, "_inside"),
    polygamma: {"numpy": "_polygamma", "jax": "jax.scipy.special.polygamma", "torch": "torch.special.polygamma"},
}


def _native_forms() -> dict[type, type]:
    """SymPy's own classes that are a builtin's ``elementary`` form (Abs for abs, Max for maximum,
    ...): SymPy writes them as it evaluates (sqrt(x^2) is Abs(x)); the rewrite pass and the analysis
    read them as the builtin, which has a printed form and the library's derivative conventions."""
    out: dict[type, type] = {}
    for cls in FUNCTION_NAMES:
        elementary_form, arity = getattr(cls, "elementary", None), getattr(cls, "nargs", {None})
        if elementary_form is None or len(arity) != 1:
            continue
        args = sp.symbols(f"a:{next(iter(arity))}", real=True)
        native = elementary_form(*args)
        if native.args == args and type(native) not in FUNCTION_NAMES:
            out[type(native)] = cls
    return out


NATIVE_FORMS = _native_forms()


# --- Primitives: explicit IR ops with their printers and reverse-mode rules --------------------

VJP = Callable[[Graph, Apply, sp.Symbol, sp.Expr], tuple[sp.Expr | None, ...]]


@dataclass(frozen=True)
class Primitive:
    """An IR op. Templates use ``{0}``, ``{1}`` for operands, ``{shape0}`` for an operand's
    shape, ``{dtype}`` for the loss's float dtype, and ``{name}`` for a static parameter."""

    name: str
    printed: dict[str, str]
    vjp: VJP | None = None
    doc: str = ""
    formula: Callable[..., sp.Expr] | None = None  # how it reads as math; default: name(operands)
    shape: Shape = Shape()  # for the analysis; an op that only gradients create needs none
    rank: RankRule | None = None  # its output's rank from its operands' (None: not known at compile time)
    variadic: int = 0  # operands from this one on print together, as the tuple ``{rest}`` (0: none do)


#: primitives that reduce over an ``axis`` (None: all of them) with ``keepdims``
REDUCTIONS = frozenset({"sum", "mean", "max", "min", "logsumexp", "norm", "prod"})


def _fn(name: str) -> type[sp.Function]:
    return sp.Function(name)


def _transparent(x: sp.Expr, *_: sp.Expr) -> sp.Expr:
    return x


def _expand(g: Graph, op: Apply, ct: sp.Expr) -> sp.Expr:
    """A reduction's cotangent made broadcastable against the reduced operand."""
    axis, keepdims = op.param("axis"), op.param("keepdims")
    if axis is None or keepdims:
        return ct
    return g.apply("expand_dims", ct, g.leaf(op), axis=axis)


def _vjp_sum(g, op, out, ct):
    return (_expand(g, op, ct),)


def _vjp_mean(g, op, out, ct):
    return (_expand(g, op, ct) / g.apply("count", op.operands[0], axis=op.param("axis")),)


def _vjp_extremum(g, op, out, ct):
    # the indicator of the extremal entries, shared among ties, is computed in one op from one
    # copy of the operand: comparing a recomputed operand with ``out`` could miss every entry
    share = g.apply("extremum_share", op.operands[0], axis=op.param("axis"), kind=op.prim)
    return (_expand(g, op, ct) * share,)


def _vjp_prod(g, op, out, ct):
    # the product of the other entries, by exclusive cumulative products: prod/x would be 0/0 at a zero
    return (_expand(g, op, ct) * g.apply("prod_others", op.operands[0], axis=op.param("axis")),)


def _vjp_prod_others(g, op, out, ct):
    return (g.apply("prod_others_vjp", ct, op.operands[0], axis=op.param("axis")),)


def _vjp_logsumexp(g, op, out, ct):
    # softmax as exp(log_softmax): exp(x - logsumexp(x)) would subtract two large numbers
    return (_expand(g, op, ct) * sp.exp(g.apply("log_softmax", op.operands[0], axis=op.param("axis"))),)


def _full(g: Graph, ct: sp.Expr, out: sp.Expr) -> sp.Expr:
    """``ct`` broadcast to the shape of ``out`` where its rank may be lower (a constant seed, the
    mean's 1/n): an op that sums its cotangent, or passes it to an operand smaller than its output,
    must count every element of the output. A cotangent summed to a leaf has the leaf's shape or is 0-d."""
    r, full = g.rank(ct), g.rank(out)
    if (r.deficit, r.fixed) != (full.deficit, full.fixed) or r.deficit is r.fixed is None:
        return g.apply("broadcast", ct, out)
    return ct


def _vjp_log_softmax(g, op, out, ct):
    ct = _full(g, ct, out)
    return (ct - sp.exp(out) * g.apply("sum", ct, axis=op.param("axis"), keepdims=True),)


def _vjp_norm(g, op, out, ct):
    n = _expand(g, op, out)
    return (_expand(g, op, ct) * sp.Piecewise((op.operands[0] / n, n > 0), (0, True)),)


def _vjp_matmul(g, op, out, ct):
    a, b = op.operands
    return (g.apply("matmul_vjp_a", ct, a, b, out), g.apply("matmul_vjp_b", ct, a, b, out))


def _vjp_take(g, op, out, ct):
    x, index = op.operands
    return (g.apply("take_vjp", ct, index, x, axis=op.param("axis")), None)


def _vjp_expand_dims(g, op, out, ct):
    return (g.apply("sum", _full(g, ct, out), axis=op.param("axis"), keepdims=False), None)


def _vjp_broadcast(g, op, out, ct):  # pushed to the smaller operand 0, summed down from out's shape
    return (_full(g, ct, out), None)


def _vjp_transpose(g, op, out, ct):
    return (g.apply("transpose", ct, out), None)


def _vjp_sum_to(g, op, out, ct):
    # operand 0 may be smaller than the shape it was broadcast to, and ct (operand 1's shape) smaller
    # than that shape at the same rank (size-1 axes): broadcast always, not by rank as _full decides
    return (g.apply("broadcast", ct, op.operands[1] + op.operands[2]), None, None)


def _vjp_within(g, op, out, ct):
    return (ct,)


def _vjp_per_sample(g, op, out, ct):
    w, like = op.operands
    return (g.apply("per_sample_vjp", ct, w, like), None)


def _vjp_constant(g, op, out, ct):
    """Piecewise constant in its operands (a count, an indicator): zero derivative almost everywhere."""
    return (None,) * len(op.operands)


def _vjp_per_sample_vjp(g, op, out, ct):
    _, w, like = op.operands
    return (g.apply("per_sample", ct, like, label="a cotangent"), None, None)


def _vjp_matmul_vjp_a(g, op, out, ct):  # out = g_out @ b^T, linear in g_out and in b
    g_out, a, b, product = op.operands
    return (g.apply("matmul", ct, b), None, g.apply("matmul_vjp_b", g_out, ct, b, product), None)


def _vjp_matmul_vjp_b(g, op, out, ct):  # out = a^T @ g_out, linear in a and in g_out
    g_out, a, b, product = op.operands
    return (g.apply("matmul", a, ct), g.apply("matmul_vjp_a", g_out, a, ct, product), None, None)


def _vjp_take_vjp(g, op, out, ct):  # scatters g_out into the label positions: its adjoint gathers
    g_out, labels, x = op.operands
    return (g.apply("take", ct, labels, axis=op.param("axis"), label="the labels"), None, None)


def _vjp_index(g, op, out, ct):  # scatters the cotangent into zeros of the operand's shape
    x, *positions = op.operands
    return (g.apply("index_vjp", ct, x, out, *positions, spec=op.param("spec")), *(None,) * len(positions))


def _vjp_index_vjp(g, op, out, ct):  # linear in the scattered cotangent: its adjoint indexes again
    _, x, _, *positions = op.operands
    return (g.apply("index", ct, *positions, spec=op.param("spec"), label="a cotangent"), *(None,) * (2 + len(positions)))


def _vjp_ctc(g, op, out, ct):
    log_probs, targets, input_lengths, target_lengths = op.operands
    params = dict(op.params)
    return (g.apply("ctc_vjp", ct, log_probs, targets, input_lengths, target_lengths, **params), None, None, None)



def _vjp_logcumsumexp(g, op, out, ct):
    # d/dx_j = exp(x_j - out_j)*r_j with r_j = ct_j + exp(out_j - out_(j+1))*r_(j+1), a reverse scan
    # (scans.py); each factor is sigmoid(out_j - x_(j+1)), as out_(j+1) = logaddexp(out_j, x_(j+1)):
    # in (0, 1), and exp(x - out) <= 1, so nothing overflows at logits of 1000
    (x,) = op.operands
    axis, reverse = op.param("axis"), op.param("reverse")
    factor = sigmoid(out - g.apply("scan_shift", x, x, axis=axis, by=scans.next_shift(reverse), fill=0))
    return (sp.exp(x - out) * g.apply("linear_scan", factor, ct, axis=axis, reverse=not reverse),)


# --- Rank rules: an op's output rank from its operands' ranks (see ir.Rank) ------------------

def _reduced(op: Apply, rank: Callable[[sp.Basic], Rank]) -> Rank:
    return rank(op.operands[0]).removing(op.param("axis"), op.param("keepdims"))


def _shaped_like(k: int) -> RankRule:
    """An op whose output has the shape of operand ``k``."""
    def rule(op: Apply, rank: Callable[[sp.Basic], Rank]) -> Rank:
        r = rank(op.operands[k])
        return Rank(r.deficit, r.fixed)
    return rule


def _same(op: Apply, rank: Callable[[sp.Basic], Rank]) -> Rank:
    return rank(op.operands[0])


def _taken(op: Apply, rank: Callable[[sp.Basic], Rank]) -> Rank:
    """A gather removes its axis: one value per row of labels."""
    r = rank(op.operands[0])
    return Rank(None if r.deficit is None else r.deficit + 1, None if r.fixed is None else r.fixed - 1,
                (op.param("axis"), False))


def _indexed(op: Apply, rank: Callable[[sp.Basic], Rank]) -> Rank:
    """Each integer position removes its axis (from the left or the right: the count is what a
    deficit holds, and row blocking refuses an index); slices and ``...`` keep theirs."""
    r, n = rank(op.operands[0]), sum(item[0] == "i" for item in op.param("spec"))
    return Rank(None if r.deficit is None else r.deficit + n,
                None if r.fixed is None or r.fixed < n else r.fixed - n)


def _expanded(op: Apply, rank: Callable[[sp.Basic], Rank]) -> Rank:
    r = rank(op.operands[0])
    return Rank(None if r.deficit is None else r.deficit - 1, None if r.fixed is None else r.fixed + 1,
                small=r.small)


def _zero_d(op: Apply, rank: Callable[[sp.Basic], Rank]) -> Rank:
    return Rank(fixed=0, small=True)


_CTC_ARGS = "{blank}, {zero_infinity}, {labels}"


def _everywhere(template: str) -> dict[str, str]:
    """A printed form that is the same on every backend: a call of a runtime helper."""
    return dict.fromkeys(BACKENDS, template)


_JOINED = ("increasing",) * arrays.MAX_JOINED  # the joined value is each operand, somewhere
_REDUCE = "{0}, axis={axis}, keepdims={keepdims}"
_TORCH_REDUCE = "{0}, dim={axis}, keepdim={keepdims}"

PRIMITIVES: dict[str, Primitive] = {p.name: p for p in (
    Primitive("sum", {"numpy": "np.sum(" + _REDUCE + ")", "jax": "jnp.sum(" + _REDUCE + ")",
                       "torch": "torch.sum(" + _TORCH_REDUCE + ")"}, _vjp_sum,
              shape=Shape("affine", ("increasing",), range_of="sign"), rank=_reduced),
    Primitive("mean", {"numpy": "_mean(" + _REDUCE + ")", "jax": "jnp.mean(" + _REDUCE + ")",
                        "torch": "torch.mean(" + _TORCH_REDUCE + ")"}, _vjp_mean,
              shape=Shape("affine", ("increasing",), range_of="operand"), rank=_reduced),
    Primitive("max", {"numpy": "np.max(" + _REDUCE + ")", "jax": "jnp.max(" + _REDUCE + ")",
                       "torch": "torch.amax(" + _TORCH_REDUCE + ")"}, _vjp_extremum,
              shape=Shape("convex", ("increasing",), range_of="operand", kink=True), rank=_reduced),
    Primitive("min", {"numpy": "np.min(" + _REDUCE + ")", "jax": "jnp.min(" + _REDUCE + ")",
                       "torch": "torch.amin(" + _TORCH_REDUCE + ")"}, _vjp_extremum,
              shape=Shape("concave", ("increasing",), range_of="operand", kink=True), rank=_reduced),
    Primitive("prod", _everywhere("_prod(" + _REDUCE + ")"), _vjp_prod, rank=_reduced),
    Primitive("logsumexp", _everywhere("_logsumexp(" + _REDUCE + ")"), _vjp_logsumexp,
              shape=Shape("convex", ("increasing",)), rank=_reduced),
    Primitive("log_softmax", _everywhere("_log_softmax({0}, {axis})"), _vjp_log_softmax,
              doc="x - logsumexp(x) along the axis (None: all), computed as (x - max) - log(sum(exp(x - max)))",
              shape=Shape("concave", ("",), (-INF, 0)), rank=_same),
    Primitive("norm", {"numpy": "np.sqrt(np.sum(np.square({0}), axis={axis}, keepdims={keepdims}))",
                       "jax": "jnp.sqrt(jnp.sum(jnp.square({0}), axis={axis}, keepdims={keepdims}))",
                       "torch": "torch.sqrt(torch.sum(torch.square({0}), dim={axis}, keepdim={keepdims}))"},
              _vjp_norm, shape=Shape("convex", ("sign",), (0, INF)), rank=_reduced),
    Primitive("matmul", {"numpy": "np.matmul({0}, {1})", "jax": "jnp.matmul({0}, {1})",
                         "torch": "_matmul({0}, {1})"}, _vjp_matmul,
              shape=Shape("multilinear", ("", ""))),
    Primitive("take", _everywhere("_take({0}, {1}, {axis}, {label})"), _vjp_take,
              shape=Shape("affine", ("increasing", "static"), range_of="operand"), rank=_taken),
    Primitive("one_hot", _everywhere("_one_hot({0}, {depth}, {dtype}, {label})"), _vjp_constant,
              shape=Shape("constant", ("static",), (0, 1))),
    Primitive("within", _everywhere("_within({0}, {lower}, {upper}, {strict}, {integer}, {label}, {hint})"), _vjp_within,
              doc="operand 0 unchanged, after a call-time check of its range", formula=_transparent,
              shape=Shape("affine", ("increasing",), range_of="operand"), rank=_same),
    Primitive("per_sample", _everywhere("_per_sample({0}, {shape1}, {label})"),
              _vjp_per_sample, doc="per-sample values (leading axis) broadcast against operand 1",
              formula=_transparent, shape=Shape("affine", ("increasing", "static"), range_of="operand"), rank=_shaped_like(1)),
    Primitive("per_sample_vjp", _everywhere("_per_sample_vjp({0}, {shape1}, {shape2})"), _vjp_per_sample_vjp,
              formula=lambda g, w, like: _fn("sum")(g), rank=_shaped_like(1)),
    Primitive("index", _everywhere("_index({0}, {spec}, {rest}, {label})"), _vjp_index,
              doc="operand 0 indexed by spec (NumPy's basic indexing: integers, slices, ...), "
              "its run-time positions operands 1, 2, ...",
              shape=Shape("affine", ("increasing",), range_of="operand"), rank=_indexed, variadic=1),
    Primitive("index_check", _everywhere("_index_check({0}, {shape1}, {axis}, {label}, {into})"), _vjp_constant,
              doc="a run-time index (operand 0), checked to lie within an axis of operand 1"),
    # shapes and constant arrays (arrays.py): lengths, constructors, diag, concat and stack
    Primitive("size", _everywhere("_size({shape0}, {axis}, {dtype}, {label})"), _vjp_constant,
              doc="the element count of operand 0 (or the length of its axis), in the loss's dtype",
              shape=Shape("constant", ("static",), (0, INF)), rank=arrays.fixed(0, small=True)),
    Primitive("dim", _everywhere("_dim({shape0}, {axis}, {label})"), _vjp_constant,
              doc="size(), as the Python int that sizes a constructor (static under jit)",
              shape=Shape("constant", ("static",), (0, INF)), rank=arrays.fixed(0, small=True)),
    Primitive("eye", _everywhere("_eye({0}, {dtype}, {what})"), _vjp_constant,
              shape=Shape("constant", ("static",), (0, 1)), rank=arrays.fixed(2)),
    Primitive("arange", _everywhere("_arange({0}, {dtype}, {what})"), _vjp_constant,
              shape=Shape("constant", ("static",), (0, INF)), rank=arrays.fixed(1)),
    Primitive("full", _everywhere("_full({0}, {value}, {dtype}, {what})"), _vjp_constant,
              shape=Shape("constant", ("static",)), rank=arrays.fixed(1)),
    Primitive("diag", _everywhere("_diag({0})"), arrays.vjp_diag,
              shape=Shape("affine", ("increasing",), range_of="operand"), rank=arrays.rank_diag),
    Primitive("diag_vjp", _everywhere("_diag_vjp({0}, {shape1}, {dtype})"), arrays.vjp_diag_vjp,
              doc="zeros shaped like operand 1 with operand 0 on the diagonal of the last two axes",
              rank=_shaped_like(1)),
    Primitive("concat", _everywhere("_join(({operands},), {axis}, False, {dtype})"), arrays.vjp_join,
              shape=Shape("affine", _JOINED, range_of="operands"), rank=arrays.rank_concat),
    Primitive("stack", _everywhere("_join(({operands},), {axis}, True, {dtype})"), arrays.vjp_join,
              shape=Shape("affine", _JOINED, range_of="operands"), rank=arrays.rank_stack),
    Primitive("part", _everywhere("_part({0}, {shapes}[1:], {index}, {axis}, {stacked}, {dtype})"), arrays.vjp_part,
              doc="the slice (or entry) of a cotangent of concat (or stack) of operands 1... that operand 1 + index filled",
              rank=arrays.rank_part),
    Primitive("part_vjp", _everywhere("_part_vjp({0}, {shapes}[1:], {index}, {axis}, {stacked}, {dtype})"),
              arrays.vjp_part_vjp, doc="zeros of the joined shape of operands 1..., with operand 0 in part index",
              rank=arrays.rank_part_vjp),
    # axes and shapes (axes.py): moves of values, linear, each adjoint the inverse move
    Primitive("moveaxis", _everywhere("_moveaxis({0}, {shape1}, {source}, {destination}, {ndim}, {label}, {dtype})"),
              axes.vjp_moveaxis, doc="operand 0, broadcast to the shape of operand 1, with axes source moved to "
              "destination (numpy.moveaxis); ndim: the axes it must have (transpose with axes)",
              formula=lambda x, like: _fn("moveaxis")(x),
              shape=Shape("affine", ("increasing", "static"), range_of="operand"), rank=_shaped_like(1)),
    Primitive("reshape", _everywhere("_reshape({0}, {spec}, {rest}, {label})"), axes.vjp_reshaped,
              doc="operand 0 reshaped to spec, whose 'd' entries are operands 1, 2, ... (lengths from sizes)",
              formula=lambda x, *lengths: _fn("reshape")(x),
              shape=Shape("affine", ("increasing",) + ("static",) * MAX_AXIS, range_of="operand"),
              rank=axes.rank_reshape, variadic=1),
    Primitive("flatten", _everywhere("_flatten({0}, {start}, {label})"), axes.vjp_reshaped,
              doc="operand 0 with its axes from start on merged into one (torch.flatten)",
              shape=Shape("affine", ("increasing",), range_of="operand"), rank=axes.rank_flatten),
    Primitive("reshape_like", _everywhere("_reshape_like({0}, {shape1}, {shape2}, {dtype})"), axes.vjp_reshape_like,
              doc="operand 0, broadcast to the shape of operand 1, reshaped to the shape of operand 2",
              formula=_transparent, rank=_shaped_like(2)),
    # order statistics and scans (scans.py): sort and topk gather by the stable argsort; scans'
    # gradients are scans the other way
    Primitive("sort", _everywhere("_sort({0}, {axis}, {descending})"), scans.vjp_sort,
              doc="operand 0 sorted along the axis (ties in their original order)",
              shape=Shape("unknown", ("increasing",), range_of="operand", kink=True), rank=_same),
    Primitive("topk", _everywhere("_topk({0}, {1}, {axis}, {label})"), scans.vjp_topk,
              doc="the operand-1 largest entries of operand 0 along the axis, largest first",
              shape=Shape("unknown", ("increasing", "static"), range_of="operand", kink=True), rank=_shaped_like(0)),
    Primitive("order_gather", _everywhere("_order_gather({0}, {1}, {2}, {axis}, {descending}, {dtype})"),
              scans.vjp_order_gather, doc="operand 0 at the first operand-2 positions of operand 1's stable order",
              rank=_shaped_like(1)),
    Primitive("order_scatter", _everywhere("_order_scatter({0}, {1}, {2}, {axis}, {descending}, {dtype})"),
              scans.vjp_order_scatter, doc="zeros shaped like operand 1 with operand 0 written at the first "
              "operand-2 positions of its stable order", rank=_shaped_like(1)),
    Primitive("cumsum", _everywhere("_cumsum({0}, {shape1}, {axis}, {reverse}, {dtype})"), scans.vjp_cumsum,
              doc="the cumulative sum of operand 0, broadcast to the shape of operand 1",
              shape=Shape("affine", ("increasing", "static"), range_of="sign"), rank=_shaped_like(1)),
    Primitive("cumprod", _everywhere("_cumprod({0}, {axis}, {reverse})"), scans.vjp_cumprod, rank=_same),
    Primitive("logcumsumexp", _everywhere("_logcumsumexp({0}, {axis}, {reverse})"), _vjp_logcumsumexp,
              shape=Shape("convex", ("increasing",)), rank=_same),
    Primitive("linear_scan", _everywhere("_linear_scan({0}, {1}, {axis}, {reverse}, {dtype})"), scans.vjp_linear_scan,
              doc="h_0 = b_0, h_i = a_i*h_(i-1) + b_i along the axis (a: operand 0, b: operand 1)",
              rank=_shaped_like(0)),
    Primitive("scan_shift", _everywhere("_scan_shift({0}, {shape1}, {axis}, {by}, {fill}, {dtype})"), scans.vjp_scan_shift,
              doc="operand 0, broadcast to the shape of operand 1, moved one step along the axis, fill "
              "in the entry left empty", rank=_shaped_like(1)),
    # differences and windows (windows.py): each linear in x, its adjoint another window op
    Primitive("diff", _everywhere("_diff({0}, {n}, {axis})"), windows.vjp_diff,
              doc="the n-th differences of operand 0 along the axis, as numpy.diff",
              shape=Shape("affine", ("",)), rank=_shaped_like(0)),
    Primitive("roll", _everywhere("_roll({0}, {shift}, {axis})"), windows.vjp_roll,
              doc="operand 0 rolled by shift along the axis, as numpy.roll",
              shape=Shape("affine", ("increasing",), range_of="operand"), rank=_shaped_like(0)),
    Primitive("pad", _everywhere("_pad({0}, {width}, {axis}, {mode}, {value})"), windows.vjp_pad,
              doc="operand 0 padded by width (before, after) along the axis, as numpy.pad's constant, reflect and edge",
              shape=Shape("affine", ("increasing",)), rank=_shaped_like(0)),
    Primitive("pad_vjp", _everywhere("_pad_vjp({0}, {shape1}, {width}, {axis}, {mode}, {dtype})"), windows.vjp_pad_vjp,
              doc="a cotangent of pad (operand 0) back on operand 1's shape: the middle slice, with the "
              "entries reflect and edge copied folded back onto their sources", rank=_shaped_like(1)),
    Primitive("correlate", _everywhere("_correlate({0}, {1}, {axis}, {mode}, {flip})"), windows.vjp_correlate,
              doc="the 1-D kernel (operand 1, reversed if flip) slid along the axis of operand 0, as numpy.correlate "
              "per line (modes valid, same; full and same_t for adjoints)",
              shape=Shape("multilinear", ("", "")), rank=_shaped_like(0)),
    Primitive("correlate_kernel_vjp", _everywhere("_correlate_kernel_vjp({0}, {1}, {shape2}, {axis}, {mode}, {flip})"),
              windows.vjp_correlate_kernel_vjp,
              doc="the gradient of correlate in its kernel (shaped like operand 2): operand 1, padded as the mode "
              "pads it, correlated with the cotangent (operand 0), summed over every line", rank=arrays.fixed(1)),
    # internal ops that only gradients create
    Primitive("index_vjp", _everywhere("_index_vjp({0}, {shape1}, {shape2}, {spec}, {rest}, {dtype})"),
              _vjp_index_vjp, doc="operand 0 (broadcast to the shape of operand 2, an index's output) "
              "written at spec into zeros shaped like operand 1", rank=_shaped_like(1), variadic=3),
    Primitive("extremum_share", _everywhere("_extremum_share({0}, {axis}, {kind})"), _vjp_constant,
              doc="1/k at the k entries where operand 0 attains its max (or min) over the axis, else 0",
              formula=lambda x: _fn("extremum_share")(x), rank=_shaped_like(0)),
    Primitive("prod_others", _everywhere("_prod_others({0}, {axis})"), _vjp_prod_others,
              doc="each entry's product of the other entries of operand 0 along the axis (None: all), without dividing",
              rank=_shaped_like(0)),
    # third derivatives of prod are not available (no rule): Hessians need only this adjoint
    Primitive("prod_others_vjp", _everywhere("_prod_others_vjp({0}, {1}, {axis})"),
              doc="operand 0 times the Jacobian of prod_others at operand 1, by scans from either end",
              rank=_shaped_like(1)),
    Primitive("count", _everywhere("_count({shape0}, {axis})"), _vjp_constant,
              shape=Shape("constant", ("static",), (1, INF)), rank=_zero_d),
    Primitive("expand_dims", _everywhere("_expand_dims({0}, {shape1}, {axis}, {dtype})"), _vjp_expand_dims,
              doc="a cotangent broadcast to a reduction's output shape (operand 1), with the axis restored",
              formula=_transparent, shape=Shape("affine", ("increasing", "static"), range_of="operand"), rank=_expanded),
    Primitive("broadcast", _everywhere("_broadcast({0}, {shape1}, {dtype})"),
              _vjp_broadcast, doc="operand 0 broadcast against the shape of operand 1 (a shape that "
              "symbolic simplification cancelled, as in x - x)", formula=_transparent,
              shape=Shape("affine", ("increasing", "static"), range_of="operand"), rank=_shaped_like(1)),
    Primitive("transpose", {"numpy": "np.transpose(np.broadcast_to({0}, {shape1}))",
                            "jax": "jnp.transpose(jnp.broadcast_to({0}, {shape1}))",
                            "torch": "_transpose({0}, {shape1})"}, _vjp_transpose,
              doc="operand 0, broadcast to the shape of operand 1, with its axes reversed",
              shape=Shape("affine", ("increasing", "static"), range_of="operand"), rank=_shaped_like(1)),
    Primitive("sum_to", _everywhere("_sum_to({0}, {shape1}, {shape2}, {dtype})"),
              _vjp_sum_to, doc="operand 0, broadcast against the shapes of operands 1 and 2, summed down "
              "to the shape of operand 1 (undoes broadcasting)",
              formula=lambda x, like, full: x if full == 1 or isinstance(like, sp.Symbol) else _fn("sum")(x), rank=_shaped_like(1)),
    Primitive("matmul_vjp_a", _everywhere("_matmul_vjp_a({0}, {1}, {2}, {shape3})"), _vjp_matmul_vjp_a,
              formula=lambda g, a, b, out: _fn("matmul")(g, _fn("transpose")(b)), rank=_shaped_like(1)),
    Primitive("matmul_vjp_b", _everywhere("_matmul_vjp_b({0}, {1}, {2}, {shape3})"), _vjp_matmul_vjp_b,
              formula=lambda g, a, b, out: _fn("matmul")(_fn("transpose")(a), g), rank=_shaped_like(2)),
    Primitive("take_vjp", _everywhere("_take_vjp({0}, {1}, {shape2}, {axis})"), _vjp_take_vjp,
              formula=lambda g, labels, x: g * _fn("one_hot")(labels), rank=_shaped_like(2)),
    # connectionist temporal classification: a dynamic program with its own gradient rule
    Primitive("ctc", _everywhere("_ctc_nll({0}, {1}, {2}, {3}, " + _CTC_ARGS + ")"), _vjp_ctc,
              doc="per-sample CTC negative log-likelihood of padded targets (B, S) under log_probs (T, B, C)"),
    Primitive("ctc_vjp", _everywhere("_ctc_grad({0}, {1}, {2}, {3}, {4}, " + _CTC_ARGS + ")"),
              doc="the per-sample cotangent (operand 0) times d ctc / d log_probs, by forward-backward",
              formula=lambda g, lp, targets, il, tl: g * _fn("ctc_grad")(lp, targets, il, tl), rank=_shaped_like(1)),
)}


#: how each primitive's rank follows from its operands' (a graph works out every op's rank with them)
RANK_RULES: dict[str, RankRule] = {p.name: p.rank for p in PRIMITIVES.values() if p.rank is not None}


# --- The user-callable names ---------------------------------------------------------------

@dataclass(frozen=True)
class Builtin:
    """A name a program may call: its signature, how it builds IR, and its one-line doc."""

    name: str
    params: tuple[tuple[str, Any], ...]
    build: Callable[[Args], Any]
    doc: str = ""
    family: str = field(default="builtin")
    variadic: bool = False  # the first parameter takes every positional argument (concat(a, b, c))


def _elementwise_builtin(e: Elementwise) -> Builtin:
    def build(a: Args) -> Tensor:
        return Tensor(e.func(*(a.tensor(p) for p in e.params)))
    return Builtin(e.name, tuple((p, REQUIRED) for p in e.params), build, e.doc)


def _reduction(kind: str, doc: str) -> Builtin:
    def build(a: Args) -> Tensor:
        x, factor = a.tensor("x"), sp.Integer(1)
        if kind in ("sum", "mean") and not x.is_Number:
            # a number factor, or a minus sign, comes out of a linear reduction: one pass fewer
            # in NumPy, and no constant inside XLA:CPU's reduction fusion
            factor, x = x.as_coeff_Mul()
            if x.could_extract_minus_sign():
                factor, x = -factor, -x
        axis = a.axes("axis")
        x = scans.unpermuted(a.graph, x, axis)
        return Tensor(factor * a.graph.apply(kind, x, axis=axis, keepdims=a.flag("keepdims")))
    return Builtin(kind, (("x", REQUIRED), ("axis", None), ("keepdims", False)), build, doc)


def _extremum(kind: str, pairwise: Callable[..., sp.Expr]) -> Builtin:
    def build(a: Args) -> Tensor:
        if a.given("y"):
            a.forbid("axis", "keepdims", why=f"{kind}(a, b) with two arguments is elementwise")
            return Tensor(pairwise(a.tensor("x"), a.tensor("y")))
        axis = a.axes("axis")
        x = scans.unpermuted(a.graph, a.tensor("x"), axis)
        return Tensor(a.graph.apply(kind, x, axis=axis, keepdims=a.flag("keepdims")))
    doc = f"{kind}(x, axis=None): reduction (axis: one or a tuple); {kind}(a, b): elementwise {kind}imum"
    return Builtin(kind, (("x", REQUIRED), ("y", None), ("axis", None), ("keepdims", False)), build, doc)


def _where(a: Args) -> Tensor:
    return Tensor(sp.Piecewise((a.tensor("x"), a.condition("condition")), (a.tensor("y"), True)))


def _matmul(a: Args) -> Tensor:
    return Tensor(a.graph.apply("matmul", a.tensor("a"), a.tensor("b")))


def _take(a: Args) -> Tensor:
    return Tensor(a.graph.apply("take", a.tensor("x"), _labels(a, "labels"), axis=a.single_axis("axis"),
                                label=a.describe_input("labels")))


def _labels(a: Args, name: str, classes: int | None = None, what: str = "a class index") -> sp.Expr:
    """An integer-label operand; a constant is checked now (in [0, classes), or >= 0 where the bound
    is a shape, which the runtime checks): an error here if it fails, and no check generated."""
    labels = a.index(name)
    if labels.is_number and not (labels.is_Integer and 0 <= labels and (classes is None or labels < classes)):
        bounds = f"in [0, {classes})" if classes is not None else ">= 0"
        raise a.parameter_error(name, f"must be {what}, an integer {bounds}; got the constant {_shown(labels)}")
    return labels


def _expand_dims(a: Args) -> Tensor:
    x = a.tensor("x")
    return Tensor(a.graph.apply("expand_dims", x, x, axis=a.single_axis("axis")))


def _shown(number: sp.Expr) -> int | float | complex:
    """A constant as a message shows it: 0.5, not SymPy's exact 1/2."""
    return int(number) if number.is_Integer else (float(number) if number.is_real else complex(number))


def within_bounds(lower: float | None, upper: float | None, above: float | None,
                  below: float | None) -> tuple[float | None, float | None, tuple[bool, bool]]:
    """``within``'s bounds as (lower, upper, strict): ``above``/``below`` are strict bounds, which
    replace ``lower``/``upper``; None where the argument pair gives both."""
    if (lower is not None and above is not None) or (upper is not None and below is not None):
        raise ValueError("lower and above (or upper and below) both bound one side")
    return (lower if above is None else above, upper if below is None else below, (above is not None, below is not None))


def _within(a: Args) -> Tensor:
    try:
        lower, upper, strict = within_bounds(*(a.number_or_none(n) for n in ("lower", "upper", "above", "below")))
    except ValueError as e:
        raise a.error("above" if a.given("above") and a.given("lower") else "below", str(e)) from None
    integer = a.flag("integer")
    x = a.tensor("x")
    if x.is_number:  # a constant is checked now: an error here if it fails, no op if it holds
        value = complex(x)
        if value.imag or (integer and not x.is_Integer) or _outside(value.real, value.real, lower, upper, strict):
            kind = "an integer" if integer else "a number"
            bounds = "" if lower is None and upper is None else " " + _bounds_text(lower, upper, strict)
            raise a.parameter_error("x", f"must be {kind}{bounds}; got the constant {_shown(x)}")
        return Tensor(x)
    return Tensor(a.graph.check("within", x, lower=lower, upper=upper, strict=strict, integer=integer,
                                label=a.describe_input("x"), hint=a.text_or_none("hint")))


def _per_sample(a: Args) -> Tensor:
    return Tensor(a.graph.apply("per_sample", a.tensor("w"), a.tensor("like"), label=a.describe_input("w")))


def _one_hot(a: Args) -> Tensor:
    depth = a.static_int("num_classes", minimum=1, limit=MAX_STATIC_SIZE)
    labels = _labels(a, "labels", depth)
    encoded = a.graph.apply("one_hot", labels, depth=depth, label=a.describe_input("labels"))
    return Tensor(axes.moved_class_axis(a, labels, encoded))


def _ctc_nll(a: Args) -> Tensor:
    names = ("log_probs", "targets", "input_lengths", "target_lengths")
    if a.tensor("targets").is_number:
        raise a.error("targets", "expected padded targets shaped (B, S), got a number")
    operands = (a.tensor("log_probs"), a.index("targets"), *(_labels(a, n, what="a length") for n in names[2:]))
    labels = tuple(a.describe_input(n) for n in names)
    return Tensor(a.graph.apply("ctc", *operands, blank=a.static_int("blank", minimum=0),
                                zero_infinity=a.flag("zero_infinity"), labels=labels))


def _special_form(a: Args) -> Tensor:
    raise AssertionError(f"{a.func}() reads its arguments unevaluated: the resolver builds it")


BUILTINS: dict[str, Builtin] = {b.name: b for b in (
    *(_elementwise_builtin(e) for e in ELEMENTWISE),
    Builtin("where", (("condition", REQUIRED), ("x", REQUIRED), ("y", REQUIRED)), _where,
            "x where condition holds, else y; the untaken side never leaks NaN"),
    _reduction("sum", "sum over all elements or an axis (or a tuple of axes)"),
    _reduction("mean", "mean over all elements or an axis (or a tuple of axes)"),
    _reduction("logsumexp", "log(sum(exp(x))) over all elements or an axis (or a tuple of axes), without overflow"),
    _reduction("prod", "product over all elements or an axis (or a tuple of axes); its gradient, the product "
               "of the other entries, holds with zeros present"),
    _reduction("norm", "Euclidean norm over all elements or an axis (or a tuple of axes); gradient 0 at the zero vector"),
    _extremum("max", maximum),
    _extremum("min", minimum),
    Builtin("matmul", (("a", REQUIRED), ("b", REQUIRED)), _matmul, "matrix product, also written a @ b"),
    Builtin("take", (("x", REQUIRED), ("labels", REQUIRED), ("axis", -1)), _take,
            "the entry of x at each integer label along axis (x[..., label])"),
    Builtin("expand_dims", (("x", REQUIRED), ("axis", REQUIRED)), _expand_dims,
            "x with a new axis of length 1 at axis, as numpy.expand_dims (for pairwise broadcasting)"),
    Builtin("within", (("x", REQUIRED), ("lower", None), ("upper", None), ("integer", False), ("above", None),
                       ("below", None), ("hint", None)), _within,
            "x itself, checked to lie in [lower, upper] (strictly above/below the bounds given so; a "
            "constant now, an input at call time where its values are concrete; under a caller's jax.jit: "
            "NaN if not); hint: a phrase the call-time message adds, e.g. what to pass instead"),
    Builtin("per_sample", (("w", REQUIRED), ("like", REQUIRED)), _per_sample,
            "one value per sample (leading axis) broadcast against like, e.g. sample weights"),
    Builtin("size", (("x", REQUIRED), ("axis", None)), arrays.build_size,
            "the number of elements of x (or the length of its axis), a number at run time; not differentiable"),
    Builtin("eye", (("n", REQUIRED),), arrays.build_eye,
            "the n-by-n identity matrix; n a constant or computed from size(...)"),
    Builtin("arange", (("n", REQUIRED),), arrays.build_arange, "the integers 0, 1, ..., n - 1, as numpy.arange(n)"),
    Builtin("ones", (("n", REQUIRED),), arrays.build_full(1), "a vector of n ones"),
    Builtin("zeros", (("n", REQUIRED),), arrays.build_full(0), "a vector of n zeros"),
    Builtin("ones_like", (("x", REQUIRED),), arrays.build_full_like(1), "ones shaped like x"),
    Builtin("zeros_like", (("x", REQUIRED),), arrays.build_full_like(0), "zeros shaped like x"),
    Builtin("diag", (("x", REQUIRED),), arrays.build_diag,
            "the diagonal of the last two axes, as numpy.diagonal(x, axis1=-2, axis2=-1)"),
    Builtin("concat", (("arrays", REQUIRED), ("axis", 0)), arrays.build_join(False),
            "concat(a, b, ..., axis=0): the arrays joined along an existing axis, as numpy.concatenate", variadic=True),
    Builtin("stack", (("arrays", REQUIRED), ("axis", 0)), arrays.build_join(True),
            "stack(a, b, ..., axis=0): the arrays joined along a new axis, as numpy.stack", variadic=True),
    # axes and shapes (axes.py)
    Builtin("transpose", (("x", REQUIRED), ("axes", None)), axes.build_transpose,
            "x with its axes reversed, or permuted: axis i of the result is axis axes[i] of x (numpy.transpose)"),
    Builtin("swapaxes", (("x", REQUIRED), ("a", REQUIRED), ("b", REQUIRED)), axes.build_swapaxes,
            "x with two axes exchanged, as numpy.swapaxes(x, a, b)"),
    Builtin("moveaxis", (("x", REQUIRED), ("source", REQUIRED), ("destination", REQUIRED)), axes.build_moveaxis,
            "x with axis source moved to position destination, the others in order, as numpy.moveaxis"),
    Builtin("reshape", (("x", REQUIRED), ("shape", REQUIRED)), axes.build_reshape,
            "x with the shape given as a tuple of constants and size(...) expressions, one of them -1 "
            "(what the others leave), as numpy.reshape"),
    Builtin("flatten", (("x", REQUIRED), ("start", 1)), axes.build_flatten,
            "x with its axes from start on merged into one, as torch.flatten(x, start)"),
    Builtin("one_hot", (("labels", REQUIRED), ("num_classes", REQUIRED), ("axis", -1)), _one_hot,
            "integer labels one-hot encoded along a new axis of length num_classes (axis=1: (B, H, W) labels "
            "give (B, C, H, W))"),
    # order statistics and scans (scans.py)
    Builtin("sort", (("x", REQUIRED), ("axis", -1), ("descending", False)), scans.build_sort,
            "x sorted along axis (ties in their original order, as NumPy's stable sort); the gradient "
            "goes back to where each value came from"),
    Builtin("topk", (("x", REQUIRED), ("k", REQUIRED), ("axis", -1)), scans.build_topk,
            "the k largest entries of x along axis, largest first, as torch.topk(...).values; k a "
            "constant or computed from size(...)"),
    Builtin("cumsum", (("x", REQUIRED), ("axis", -1), ("reverse", False)), scans.build_cumsum,
            "the cumulative sum along axis (from its end with reverse=true)"),
    Builtin("cumprod", (("x", REQUIRED), ("axis", -1), ("reverse", False)), scans.build_scan("cumprod"),
            "the cumulative product along axis (from its end with reverse=true); its gradient holds with zeros present"),
    Builtin("logcumsumexp", (("x", REQUIRED), ("axis", -1), ("reverse", False)), scans.build_scan("logcumsumexp"),
            "log(cumsum(exp(x))) along axis without overflow, as jax.lax.cumlogsumexp (from its end with reverse=true)"),
    # differences and windows (windows.py)
    Builtin("diff", (("x", REQUIRED), ("n", 1), ("axis", -1)), windows.build_diff,
            "the n-th differences along axis, as numpy.diff (total variation: sum(abs(diff(x))))"),
    Builtin("roll", (("x", REQUIRED), ("shift", REQUIRED), ("axis", REQUIRED)), windows.build_roll,
            "x rolled by shift entries along axis, as numpy.roll (entries that leave one end come back at the other)"),
    Builtin("pad", (("x", REQUIRED), ("width", REQUIRED), ("axis", -1), ("mode", "constant"), ("value", 0.0)),
            windows.build_pad, "x padded along axis by width (an int, or a tuple (before, after)), as numpy.pad: "
            "mode \"constant\" (with value), \"reflect\" or \"edge\""),
    Builtin("correlate", (("x", REQUIRED), ("kernel", REQUIRED), ("axis", -1), ("mode", "valid")),
            windows.build_correlate, "a 1-D kernel slid along axis of x, each line as numpy.correlate (mode "
            "\"valid\" or \"same\"); differentiable in x and the kernel (a separable 2-D filter is two calls)"),
    Builtin("grad", (("expr", REQUIRED), ("x", REQUIRED)), _special_form,
            "the gradient of sum(expr) with respect to x, an input or a binding ('h = ...'), shaped like x and "
            "differentiable again (gradient penalties: WGAN-GP, R1, double backpropagation)"),
    Builtin("ctc_nll", (("log_probs", REQUIRED), ("targets", REQUIRED), ("input_lengths", REQUIRED),
                        ("target_lengths", REQUIRED), ("blank", 0), ("zero_infinity", False)), _ctc_nll,
            "per-sample CTC negative log-likelihood: log_probs (T, B, C), padded integer targets (B, S), "
            "lengths (B,); see the library's ctc()"),
)}


def _check_registry() -> None:
    """Every primitive and elementwise function prints on every backend."""
    for table in (*(p.printed for p in PRIMITIVES.values()), *FUNCTION_NAMES.values()):
        missing = set(BACKENDS) - set(table)
        assert not missing, f"builtin lacks a printed form for {missing}"


_check_registry()
