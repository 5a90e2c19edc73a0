"""``lossdsl plot``: losses and their gradients against the residual, a probability or a logit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .analysis import input_ranges
from .compiled import compile as compile_loss
from .errors import LossDSLError

INSTALL = "plotting needs matplotlib: pip install 'lossdsl[plot]'"
AXES = {"residual": "residual y_pred - y_true (y_true = 0)", "probability": "predicted probability (y_true = 1)",
        "logit": "logit y_pred (y_true = 1)"}


def _axis(loss, kind: str | None) -> str:
    """Probabilities if y_pred is checked to lie in [0, 1]; logits if only y_true is; else residuals."""
    if kind:
        return kind
    ranges = input_ranges(loss.graph)
    if ranges.get("y_pred") == (0.0, 1.0):
        return "probability"
    return "logit" if ranges.get("y_true") == (0.0, 1.0) else "residual"


def curves(source: str, kind: str | None = None, points: int = 401) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(axis kind, x, loss, d loss / d y_pred) for one element, the target held fixed."""
    loss = compile_loss(source)
    if set(loss.inputs) != {"y_true", "y_pred"}:
        raise LossDSLError(f"plot needs a loss of y_true and y_pred; {source!r} has inputs {', '.join(loss.inputs)}")
    kind = _axis(loss, kind)
    x = np.linspace(0.001, 0.999, points) if kind == "probability" else np.linspace(-4, 4, points)
    target = np.zeros(1) if kind == "residual" else np.ones(1)
    value_and_grad = loss.value_and_grad("y_pred")
    values, grads = np.empty_like(x), np.empty_like(x)
    for i, v in enumerate(x):
        f, g = value_and_grad(y_true=target, y_pred=np.array([v]))
        values[i], grads[i] = float(f), float(np.asarray(g).reshape(-1)[0])
    return kind, x, values, grads


def plot(sources: Sequence[str], output: str | Path, kind: str | None = None) -> Path:
    """Draw each loss and its gradient on one figure (two panels) and save it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LossDSLError(INSTALL) from None
    drawn = [(s, *curves(s, kind)) for s in sources]
    kinds = {k for _, k, *_ in drawn}
    if len(kinds) > 1:
        raise LossDSLError(f"these losses want different axes ({', '.join(sorted(kinds))}); choose one with --x")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for source, _, x, values, grads in drawn:
        top.plot(x, values, label=source)
        bottom.plot(x, grads, label=source)
    top.set_ylabel("loss")
    bottom.set_ylabel("d loss / d y_pred")
    bottom.set_xlabel(AXES[kinds.pop()])
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.axhline(0, color="black", linewidth=0.5)
    top.legend(fontsize="small")
    fig.tight_layout()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
