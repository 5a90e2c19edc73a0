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

from collections.abc import Mapping
from typing import Any

import numpy as np

from .compiled import CompiledLoss
from .compiled import compile as compile_loss
from .errors import LossDSLError

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
        g, h = self._derivatives(y_true, y_pred)
        if self._mean is None:
            self._probe(y_true, y_pred, g, h)
        if self._mean:
            g, h = g * np.size(y_pred), h * np.size(y_pred)
        if weight is not None and np.size(weight):
            w = np.reshape(np.asarray(weight, dtype=np.float64), (-1,) + (1,) * (np.ndim(y_pred) - 1))
            g, h = g * w, h * w
        return g, h


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
