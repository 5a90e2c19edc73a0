"""``analyze``: every property of a loss with respect to each float input, as one JSON-serialisable
report (convexity with its proof, counterexample or reason; smoothness; robustness; range;
likelihood; Hessian)."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import sympy as sp

from ..builtins import PRIMITIVES, stop_gradient
from ..errors import LossDSLError
from ..formula import text
from ..ir import Apply
from .counterexample import counterexample
from .curvature import Analysis
from .element import element, robustness, smoothness, value_range
from .intervals import NONSMOOTH, Bounds, input_ranges
from .likelihood import likelihood

if TYPE_CHECKING:
    from ..compiled import CompiledLoss


def _order(loss: CompiledLoss) -> list[str]:
    names = list(loss.differentiable)
    return sorted(names, key=lambda n: n != "y_pred")


def analyze_input(loss: CompiledLoss, x: str, bounds: Bounds | None = None) -> dict[str, Any]:
    """The report for one input; ``bounds``, shared by the inputs of one loss, memoises ranges."""
    bounds = bounds or Bounds(loss.graph, input_ranges(loss.graph))
    ranges = bounds.ranges
    an = Analysis(loss.graph, x, bounds)
    curvature = an.of(loss.root)
    report: dict[str, Any] = {"input": x}
    if curvature in ("convex", "concave", "affine"):
        report["convexity"] = {"verdict": curvature, "proof": "composition rules"}
    elif curvature == "constant":
        report["convexity"] = {"verdict": "affine", "proof": "the loss does not depend on it"}
    else:
        found = counterexample(loss, x, ranges)
        if found is not None:
            report["convexity"] = {"verdict": "nonconvex", "counterexample": found}
        else:
            report["convexity"] = {"verdict": "unknown", "reason": an.reason() or
                                   "the composition rules do not apply"}
    el = element(an, loss)
    if el is None:
        kinks = [a for a in sp.preorder_traversal(loss.root) if isinstance(a, (*NONSMOOTH, sp.Piecewise))]
        # and a kink in x inside an operand of an op the loss reads (mean(abs(diff(x))))
        kinks += [k for s in loss.graph.dependencies([loss.root]) if s in an.depends
                  for op in (loss.graph.op_of[s],) if isinstance(op, Apply) for o in op.operands for k in _kinks(an, o)]
        smooth = {"class": "inf", "points": []} if not kinks and not any(
            isinstance(op, Apply) and PRIMITIVES.get(op.prim, None) is not None and PRIMITIVES[op.prim].shape.kink
            for s, op in loss.graph.op_of.items() if s in an.depends) else {"class": "unknown", "points": []}
        report.update(smoothness=smooth, robustness=None, range=None)
    else:
        report.update(per_element=text(el.symbolic), smoothness=smoothness(el), robustness=robustness(el),
                      range=value_range(el, an, loss.root))
    report["likelihood"] = likelihood(loss, x, ranges)
    try:
        per_element = text(loss.hessian_formula(x))
    except LossDSLError:  # an op with no second derivative rule (CTC's gradient)
        per_element = None
    report["hessian"] = {"per_element": per_element, "diagonal": el is not None,
                         "full": f"CompiledLoss.hessian({x!r})"}
    return report


def _kinks(an: Analysis, e: sp.Basic) -> list[sp.Basic]:
    """The kinks of ``e`` in the input: nonsmooth functions of it, and pieces whose conditions read
    it; none under a stop_gradient, which the derivatives do not see."""
    if not an.dep(e) or isinstance(e, stop_gradient):
        return []
    here = isinstance(e, NONSMOOTH) or (isinstance(e, sp.Piecewise) and any(an.dep(c) for _, c in e.args))
    return [e] * here + [k for a in e.args for k in _kinks(an, a)]


def analyze(source: str) -> dict[str, Any]:
    """Properties of a loss with respect to each float input (the prediction first): a
    JSON-serialisable dict (see the package docstring)."""
    return copy.deepcopy(_analyze(source))


@lru_cache(maxsize=128)
def _analyze(source: str) -> dict[str, Any]:
    from ..compiled import compile as compile_loss
    loss = compile_loss(source)
    bounds = Bounds(loss.graph, input_ranges(loss.graph))
    return {"source": loss.text, "formula": text(loss.formula()),
            "notes": [NUMPY_CONSTANTS[n] for n in loss.inputs if n in NUMPY_CONSTANTS],
            "inputs": {x: analyze_input(loss, x, bounds) for x in _order(loss)}}


#: inputs named as a NumPy constant that the language leaves an input (pi and inf are constants)
NUMPY_CONSTANTS = {
    "e": "'e' is an input here, not Euler's number; write exp(1) for that",
    "nan": "'nan' is an input here, not a NaN constant",
}
