"""Custom objectives for gradient boosting: a loss written once, its per-sample gradient and Hessian derived.

XGBoost and LightGBM fit each tree to the first and second derivatives of the loss with respect to the
raw prediction (the margin), one pair per sample. ``xgboost(source)`` and ``lightgbm(source)`` compile
the loss (NumPy backend) and return the callable each library takes as its custom objective; the
derivatives come from the symbolic gradient and ``H @ 1`` (``CompiledLoss.second_derivative``).

Conventions, matching the libraries' built-in objectives (``reg:squarederror`` returns
``(pred - label, 1)``):

* The derivatives are those of the loss *summed* over samples. A loss whose value is a mean of one
  term per element (every stdlib loss by default) is scaled back by the element count, so
  ``mse`` and ``0.5*(y_pred - y_true)^2`` give the same objective up to mse's factor 2. Whether the
  loss sums or averages is measured once, on the first batch, by evaluating it on that batch
  doubled (a sum's derivatives keep their size, a mean's halve).
* The loss must be elementwise in the prediction: each sample's term depends on its own prediction
  only, so the Hessian is diagonal. This too is checked on the first batch (``H v`` against
  ``(H 1) * v`` for a random ``v``); a loss that couples samples raises ``LossDSLError``.
* Sample weights (``DMatrix``/``Dataset`` weights, or the scikit-learn wrappers' ``sample_weight``)
  multiply each sample's gradient and Hessian, as the built-in objectives do. Do not put weights in
  the loss itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import sympy as sp

from .checks import reporting_input_errors
from .compiled import CompiledLoss
from .compiled import compile as compile_loss
from .errors import LossDSLError
from .hessian import gradient_and_rowsum
from .ir import Apply, Graph
from .rewrite import reflect_logistic

_TOLERANCE = 1e-6  # relative, for the sum/mean and diagonality probes (computed in float64)


class Objective:
    """Per-sample gradient and Hessian of a loss with respect to its prediction input."""

    def __init__(self, source: str, prediction: str = "y_pred", label: str = "y_true",
                 inputs: Mapping[str, float] | None = None):
        self.loss: CompiledLoss = compile_loss(source, backend="numpy")
        self.prediction, self.label = prediction, label
        self.fixed = dict(inputs or {})
        known = self.loss.inputs
        for role, name in (("prediction", prediction), ("label", label)):
            if name not in known:
                raise LossDSLError(f"the loss has no input '{name}' for the {role}; its inputs are "
                                   f"{', '.join(known)} (name it with {role}=...)")
        if prediction not in self.loss.differentiable:
            raise LossDSLError(f"the prediction '{prediction}' holds integer labels and has no gradient")
        missing = [n for n in known if n not in (prediction, label, *self.fixed)]
        unknown = [n for n in self.fixed if n not in known]
        if missing or unknown:
            raise LossDSLError("every input other than the prediction and the label needs a constant value in "
                               f"inputs={{...}}: missing {', '.join(missing) or 'none'}; "
                               f"not inputs of the loss: {', '.join(unknown) or 'none'}")
        self._grad = self.loss.grad(prediction)
        self._hess = self.loss.second_derivative(prediction)
        self._hvp = self.loss.hvp(prediction)
        self._mean: bool | None = None  # decided on the first batch
        self._fast: dict[bool, Callable[..., Any]] | None = None  # weighted? -> its function; None: not (yet) checked

    def __copy__(self) -> Objective:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Objective:
        """The objective itself: what it holds is fixed when made, and what it decides on the first batch
        (the fused function, sum or mean) is a cache of facts about the loss. ``lightgbm.train`` deep-copies
        its params, objective included, on every call: a copy would decide again, at the cost of
        several passes over the first batch in float64 (a quarter of a 20-round training here)."""
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by what it is made from (its source, names and constants; the compiled loss is found
        again in compile's cache or compiled anew): a scikit-learn wrapper holding it as its objective is
        pickled with the model, and GridSearchCV's workers receive it pickled."""
        return type(self), (self.loss.text, self.prediction, self.label, self.fixed)

    def _inputs(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
        integer = self.label in self.loss.graph.index_inputs
        label = np.asarray(y_true, dtype=np.int64 if integer else np.float64)
        return {**self.fixed, self.label: label, self.prediction: np.asarray(y_pred, dtype=np.float64)}

    def _derivatives(self, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inputs = self._inputs(y_true, y_pred)
        return np.asarray(self._grad(**inputs)), np.asarray(self._hess(**inputs))

    def _probe(self, y_true: np.ndarray, y_pred: np.ndarray, g: np.ndarray, h: np.ndarray) -> None:
        """Check that the Hessian is diagonal, and find whether the loss sums or averages its terms."""
        inputs = self._inputs(y_true, y_pred)
        v = np.random.default_rng(0).uniform(0.5, 1.5, size=np.shape(y_pred))
        coupled = np.asarray(self._hvp(v, **inputs)) - h * v
        if np.max(np.abs(coupled), initial=0.0) > _TOLERANCE * np.max(np.abs(h * v), initial=1.0):
            raise LossDSLError(f"the loss is not elementwise in '{self.prediction}': one sample's gradient depends "
                               "on other samples' predictions (its Hessian is not diagonal), so it cannot be a "
                               "gradient-boosting objective")
        g2, h2 = self._derivatives(np.concatenate([y_true, y_true]), np.concatenate([y_pred, y_pred]))
        n = len(y_pred)
        before = np.sum(np.abs(g)) + np.sum(np.abs(h))
        ratio = (np.sum(np.abs(g2[:n])) + np.sum(np.abs(h2[:n]))) / before if before else 1.0
        if abs(ratio - 1) > _TOLERANCE and abs(ratio - 0.5) > _TOLERANCE:
            raise LossDSLError("the loss must be a sum or a mean of one term per sample (its derivatives changed by "
                               f"a factor {ratio:.6g} on a batch twice as large, not 1 or 1/2)")
        self._mean = abs(ratio - 0.5) <= _TOLERANCE

    def __call__(self, y_true: Any, y_pred: Any, weight: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(grad, hess)``, one per element of ``y_pred``, weighted by ``weight`` when given."""
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        weighted = weight is not None and bool(np.size(weight))
        w = np.reshape(np.asarray(weight), (-1,) + (1,) * (np.ndim(y_pred) - 1)) if weighted else None
        if self._fast is None:  # the first batch: the general functions, then the fused one checked against them
            g, h = self._derivatives(y_true, y_pred)
            self._probe(y_true, y_pred, g, h)
            if self._mean:
                g, h = g * np.size(y_pred), h * np.size(y_pred)
            if weighted:
                g, h = g * w, h * w
            self._fast = self._fused(y_true, y_pred, w, g, h)
            return g, h
        if not self._fast:  # the fused function did not agree: the general ones, as above
            g, h = self._derivatives(y_true, y_pred)
            scale = np.size(y_pred) if self._mean else 1
            return (g * (w * scale), h * (w * scale)) if weighted else (g * scale, h * scale)
        inputs = {**self.fixed, self.label: self._label(y_true), self.prediction: y_pred}
        if weighted:
            inputs[WEIGHT] = w
        return reporting_input_errors(self._fast[weighted], inputs, self.loss.arguments)

    def _label(self, y_true: np.ndarray) -> np.ndarray:
        integer = self.label in self.loss.graph.index_inputs
        return y_true.astype(np.int64, copy=False) if integer else y_true

    def _fused(self, y_true: np.ndarray, y_pred: np.ndarray, w: np.ndarray | None, g: np.ndarray,
               h: np.ndarray) -> dict[bool, Callable[..., Any]]:
        """One generated function per weighting giving both derivatives of the loss summed over samples,
        weighted, in the margins' own dtype (``per_term``); kept where it agrees with the general
        functions on the first batch (``g``, ``h``), else ``{}``."""
        fns = {weighted: self.loss._derived(f"objective:{self._mean}:{weighted}", self.prediction,
                                            per_term(self._mean, weighted)) for weighted in (False, True)}
        inputs = self._inputs(y_true, y_pred)  # in float64, as g and h were computed
        if w is not None:
            inputs[WEIGHT] = w.astype(np.float64)
        fg, fh = reporting_input_errors(fns[w is not None], inputs, self.loss.arguments)
        close = all(np.allclose(a, b, rtol=1e-9, atol=1e-12 * np.max(np.abs(b), initial=1.0)) for a, b in ((fg, g), (fh, h)))
        return fns if close else {}


def _leaner(e: sp.Expr) -> sp.Expr:
    """``e``, or its terms over one denominator where that takes fewer operations (pseudo-Huber's
    second derivative ``1/sqrt(s) - r^2/s^(3/2)``, with ``s = 1 + r^2``, is ``s^(-3/2)``)."""
    together = sp.together(e)
    return together if sp.count_ops(together) < sp.count_ops(e) else e


WEIGHT = "_weight"  # the sample weights' input in the fused function; user names cannot start with "_"


def per_term(mean: bool, weighted: bool) -> Callable[[Graph, sp.Expr, str], tuple[Graph, list[sp.Expr]]]:
    """How to derive the fused objective function: the gradient and ``H 1`` as one elementwise function of
    the inputs, for a loss elementwise in the prediction (the first batch checks it): the ops that only
    broadcast and sum back (``broadcast``, ``sum_to``) are their operands, the element counts of a mean
    are 1 (the derivatives of the sum of terms, with no pass to scale them back), the logistic
    functions are in the forms hand-written objectives use (``rewrite.reflect_logistic``: ``p - y``,
    ``p*(1 - p)``), and both are multiplied by the sample weights."""
    def derive(graph: Graph, root: sp.Expr, wrt: str) -> tuple[Graph, list[sp.Expr]]:
        g, exprs = gradient_and_rowsum(graph, root, wrt)
        inline: dict[sp.Basic, sp.Basic] = {}
        for s, op in g:  # graph order: an op's operands are inlined before it
            if isinstance(op, Apply) and op.prim in ("broadcast", "sum_to"):
                inline[s] = op.operands[0].xreplace(inline)
            elif isinstance(op, Apply) and op.prim == "count" and mean:
                inline[s] = sp.Integer(1)
        exprs = [_leaner(reflect_logistic(e.xreplace(inline))) for e in exprs]
        if weighted:
            w = g.input(WEIGHT)  # g is this derivation's own graph
            exprs = [e * w for e in exprs]
        return g, exprs
    return derive


class XGBoostObjective(Objective):
    """``obj(preds, dtrain) -> (grad, hess)`` for ``xgboost.train(..., obj=...)``; also accepted by the
    scikit-learn wrappers (``XGBRegressor(objective=...)``), which call it as ``(y_true, y_pred, sample_weight=)``."""

    def __call__(self, preds: Any, dtrain: Any, sample_weight: Any = None) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        if hasattr(dtrain, "get_label"):  # a DMatrix
            return super().__call__(dtrain.get_label(), preds, dtrain.get_weight())
        return super().__call__(preds, dtrain, sample_weight)  # scikit-learn order: (y_true, y_pred)


class LightGBMObjective(Objective):
    """``objective(preds, train_data) -> (grad, hess)`` for ``params["objective"]`` in ``lightgbm.train``;
    also accepted by the scikit-learn wrappers (``LGBMRegressor(objective=...)``), which call it as
    ``(y_true, y_pred, weight)``."""

    def __call__(self, preds: Any, train_data: Any, weight: Any = None) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        if hasattr(train_data, "get_label"):  # a Dataset
            return super().__call__(train_data.get_label(), preds, train_data.get_weight())
        return super().__call__(preds, train_data, weight)


def xgboost(source: str, *, prediction: str = "y_pred", label: str = "y_true",
            inputs: Mapping[str, float] | None = None) -> XGBoostObjective:
    """An XGBoost custom objective from a loss: pass it as ``xgboost.train(params, dtrain, obj=...)``.

    ``prediction`` and ``label`` name the loss's inputs for the raw prediction (the margin) and the
    label; ``inputs`` gives constant values for any other input (a ``gamma`` left as an input, say).
    """
    return XGBoostObjective(source, prediction, label, inputs)


def lightgbm(source: str, *, prediction: str = "y_pred", label: str = "y_true",
             inputs: Mapping[str, float] | None = None) -> LightGBMObjective:
    """A LightGBM custom objective from a loss: pass it as ``params["objective"]`` to ``lightgbm.train``.

    Arguments as for :func:`xgboost`.
    """
    return LightGBMObjective(source, prediction, label, inputs)
