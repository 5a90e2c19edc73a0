"""Know your loss: properties derived from its IR, with respect to each float input.

* ``convexity`` is proved by composition in the style of disciplined convex programming
  (``curvature.py``, over ranges from ``intervals.py``); "nonconvex" needs a counterexample found
  numerically (``counterexample.py``: a violation of midpoint convexity, reported); otherwise
  "unknown", with the sub-expression that broke the rule. A wrong "convex" is the one answer this
  must never give.
* ``smoothness``, ``robustness`` and ``range`` study the per-element loss ``l(t)`` (``element.py``:
  the term one element of the prediction contributes), with the other inputs held at a typical
  value; expressions evaluate through lossdsl's own NumPy printer (``evaluate.py``).
* ``likelihood`` matches the gradient against known negative log-likelihoods up to a positive
  factor (``likelihood.py``: so the loss is ``a * nll + b(target)``), on random inputs.

``report.py`` assembles these into ``analyze``'s result; ``guide.py`` renders it for people.
"""

from .counterexample import counterexample
from .curvature import Analysis
from .element import Element, element, robustness, smoothness, value_range
from .evaluate import elementary, numpy_function
from .guide import GUIDE_LOSSES, selection_guide, table
from .intervals import Bounds, Interval, input_ranges
from .likelihood import LIKELIHOODS, NLL, likelihood
from .report import analyze, analyze_input

__all__ = ["GUIDE_LOSSES", "LIKELIHOODS", "NLL", "Analysis", "Bounds", "Element", "Interval", "analyze",
           "analyze_input", "counterexample", "element", "elementary", "input_ranges", "likelihood",
           "numpy_function", "robustness", "selection_guide", "smoothness", "table", "value_range"]
