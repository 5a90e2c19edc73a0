"""Multi-task loss with learnable uncertainty weights: regression + classification + L2.

Two heads share the inputs: a linear regression and a logistic classifier. Rather than tuning the
weight of each task by hand, each task loss is scaled by a learnt precision exp(-s) with the
stdlib's ``uncertainty_weighted`` (Kendall, Gal and Cipolla, 2018), and ``s`` is learnt with the
weights. The noisier task ends with the larger variance exp(s), so the smaller weight.
Figures go to examples/out/multitask_uncertainty/ (or $LOSSDSL_EXAMPLES_OUT/multitask_uncertainty/).
"""

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import lossdsl

OUT = Path(os.environ.get("LOSSDSL_EXAMPLES_OUT", Path(__file__).parent / "out")) / "multitask_uncertainty"
OUT.mkdir(parents=True, exist_ok=True)

SOURCE = """
regression = mse(y, X @ w_reg)
classification = bce(labels, X @ w_cls, from_logits=true)
uncertainty_weighted(regression, s_reg) + uncertainty_weighted(classification, s_cls) + l2(w_reg, 0.001) + l2(w_cls, 0.001)
"""
loss = lossdsl.compile(SOURCE)
params = ["w_reg", "w_cls", "s_reg", "s_cls"]

rng = np.random.default_rng(0)
X = rng.normal(size=(500, 4))
y = X @ np.array([1.0, -1.0, 0.5, 0.0]) + 2.0 * rng.normal(size=500)  # a noisy regression target
labels = (X @ np.array([0.0, 1.0, 1.0, -1.0]) + 0.3 * rng.normal(size=500) > 0).astype(float)

values = {"w_reg": np.zeros(4), "w_cls": np.zeros(4), "s_reg": np.array(0.0), "s_cls": np.array(0.0)}
value_and_grad = loss.value_and_grad(params)
history: dict[str, list[float]] = {"loss": [], "s_reg": [], "s_cls": []}
for _ in range(400):
    value, grads = value_and_grad(X=X, y=y, labels=labels, **values)
    for name in params:
        values[name] = values[name] - 0.05 * grads[name]
    history["loss"].append(float(value))
    history["s_reg"].append(float(values["s_reg"]))
    history["s_cls"].append(float(values["s_cls"]))
print(f"loss {history['loss'][0]:.3f} -> {history['loss'][-1]:.3f}")
print(f"learnt task weights 0.5*exp(-s): regression {0.5 * np.exp(-values['s_reg']):.3f}, "
      f"classification {0.5 * np.exp(-values['s_cls']):.3f}")
assert values["s_reg"] > values["s_cls"]  # the noisy regression is trusted less

fig = Figure(figsize=(11, 4), layout="tight")
left, right = fig.subplots(1, 2)
left.plot(history["loss"])
left.set(xlabel="step", ylabel="total loss", title="Training")
right.plot(history["s_reg"], label="s (regression)")
right.plot(history["s_cls"], label="s (classification)")
right.set(xlabel="step", ylabel="log variance s", title="Learnt uncertainty")
right.legend()
fig.savefig(OUT / "multitask_uncertainty.png", dpi=100)
print("wrote", OUT / "multitask_uncertainty.png")
