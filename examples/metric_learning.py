"""Metric learning with the batch-hard triplet loss.

A linear embedding ``X @ W`` of 10-dimensional points into the plane, normalised onto the unit circle
(so it cannot shrink to a point, the batch-hard loss's collapse), trained so that each point is
closer to its farthest same-class point than to its nearest other-class point, by a margin
(Hermans, Beyer and Leibe, 2017). The gradient with respect to ``W`` flows through the
normalisation, the pairwise distances and the hardest-pair selections.
Figures go to examples/out/metric_learning/ (or $LOSSDSL_EXAMPLES_OUT/metric_learning/).
"""

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import lossdsl

OUT = Path(os.environ.get("LOSSDSL_EXAMPLES_OUT", Path(__file__).parent / "out")) / "metric_learning"
OUT.mkdir(parents=True, exist_ok=True)

SOURCE = """
E = X @ W
triplet_batch_hard(E / norm(E, axis=1, keepdims=true), labels, margin=0.5)
"""
loss = lossdsl.compile(SOURCE)

rng = np.random.default_rng(0)
classes, per_class, dim = 4, 30, 10
centres = rng.normal(size=(classes, dim))
labels = np.repeat(np.arange(classes), per_class)
X = centres[labels] + 0.5 * rng.normal(size=(classes * per_class, dim))  # classes overlap in the raw space
W = 0.5 * rng.normal(size=(dim, 2))


def embed(W: np.ndarray) -> np.ndarray:
    E = X @ W
    return E / np.linalg.norm(E, axis=1, keepdims=True)


before = embed(W)

value_and_grad = loss.value_and_grad("W")
history = []
for _ in range(300):
    batch = rng.choice(len(X), size=48, replace=False)
    value, g = value_and_grad(X=X[batch], W=W, labels=labels[batch])
    W = W - 0.5 * g
    history.append(float(value))
full = float(loss(X=X, W=W, labels=labels))
print(f"batch-hard triplet loss {history[0]:.3f} -> {np.mean(history[-20:]):.3f} (last 20 batches); whole set {full:.3f}")

fig = Figure(figsize=(14, 4), layout="tight")
axes = fig.subplots(1, 3)
axes[0].plot(history)
axes[0].set(xlabel="step", ylabel="loss", title="Training (mini-batches of 48)")
for ax, points, title in ((axes[1], before, "Embedding before"), (axes[2], embed(W), "Embedding after")):
    ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=10)
    ax.set(title=title)
fig.savefig(OUT / "metric_learning.png", dpi=100)
print("wrote", OUT / "metric_learning.png")
