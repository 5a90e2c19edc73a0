"""Segmentation-style Dice + BCE on a toy mask.

A noisy 48x48 image of two discs; a per-pixel logistic model over three features (the pixel, a 5x5
box blur of the image, a bias) is trained against the mask with the sum of the soft Dice loss of
the probabilities and the binary cross-entropy of the logits, a common pairing: Dice scores overlap
regardless of class balance, BCE gives smooth per-pixel gradients.
Figures go to examples/out/segmentation/ (or $LOSSDSL_EXAMPLES_OUT/segmentation/).
"""

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import lossdsl

OUT = Path(os.environ.get("LOSSDSL_EXAMPLES_OUT", Path(__file__).parent / "out")) / "segmentation"
OUT.mkdir(parents=True, exist_ok=True)

loss = lossdsl.compile("""
logits = features @ w
dice(mask, sigmoid(logits)) + bce(mask, logits, from_logits=true)
""")

rng = np.random.default_rng(0)
size = 48
yy, xx = np.mgrid[:size, :size]
mask = (((yy - 16) ** 2 + (xx - 18) ** 2 < 64) | ((yy - 32) ** 2 + (xx - 32) ** 2 < 36)).astype(float)
image = mask + 0.8 * rng.normal(size=mask.shape)
padded = np.pad(image, 2, mode="edge")
blurred = sum(padded[i:i + size, j:j + size] for i in range(5) for j in range(5)) / 25
features = np.stack([image.ravel(), blurred.ravel(), np.ones(size * size)], axis=1)

w = np.zeros(3)
value_and_grad = loss.value_and_grad("w")
history = []
for _ in range(200):
    value, g = value_and_grad(features=features, mask=mask.ravel(), w=w)
    w = w - 1.0 * g
    history.append(float(value))
predicted = (features @ w > 0).reshape(size, size)
iou = (predicted & (mask > 0)).sum() / (predicted | (mask > 0)).sum()
print(f"Dice + BCE {history[0]:.3f} -> {history[-1]:.3f}; IoU of the thresholded prediction {iou:.2f}")

fig = Figure(figsize=(14, 3.5), layout="tight")
axes = fig.subplots(1, 4)
axes[0].plot(history)
axes[0].set(xlabel="step", ylabel="Dice + BCE", title="Training")
for ax, picture, title in zip(axes[1:], (image, mask, predicted), ("Noisy image", "Mask", f"Prediction (IoU {iou:.2f})")):
    ax.imshow(picture, cmap="gray")
    ax.set(title=title, xticks=[], yticks=[])
fig.savefig(OUT / "segmentation.png", dpi=100)
print("wrote", OUT / "segmentation.png")
