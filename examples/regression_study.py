"""Regression study: gradient descent with MSE against MAE, and Newton's method with the derived Hessian.

The reference text's experiment, with every derivative taken by lossdsl: the gradient of
``mse(y, X @ w)`` and ``mae(y, X @ w)`` with respect to the weights ``w``, and the full (5, 5)
Hessian of the MSE for Newton's method (``loss.hessian("w")``, by symbolic reverse-over-reverse).
Figures go to examples/out/regression_study/ (or $LOSSDSL_EXAMPLES_OUT/regression_study/).
"""

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # drawn with Agg, no display or pyplot state

import lossdsl

OUT = Path(os.environ.get("LOSSDSL_EXAMPLES_OUT", Path(__file__).parent / "out")) / "regression_study"
OUT.mkdir(parents=True, exist_ok=True)

rng = np.random.default_rng(42)
X = rng.normal(size=(100, 5))
true_w = np.array([1.5, -2.0, 0.5, 3.0, -1.0])
y = X @ true_w + 0.5 * rng.normal(size=100)
w0 = rng.normal(size=5)

mse = lossdsl.compile("mse(y, X @ w)")
mae = lossdsl.compile("mae(y, X @ w)")
print("d mse / dw:", mse.gradient_formula("w"))


def descend(loss: lossdsl.CompiledLoss, step: float, epochs: int = 100) -> list[float]:
    """Plain (sub)gradient descent on w; the loss value at each epoch."""
    w, values, value_and_grad = w0.copy(), [], loss.value_and_grad("w")
    for _ in range(epochs):
        value, g = value_and_grad(y=y, X=X, w=w)
        values.append(float(value))
        w = w - step * g
    return values


def newton(loss: lossdsl.CompiledLoss, epochs: int = 10) -> list[float]:
    """Newton's method: w <- w - H^-1 g, with the Hessian derived symbolically."""
    w, values, value_and_grad, hessian = w0.copy(), [], loss.value_and_grad("w"), loss.hessian("w")
    for _ in range(epochs):
        value, g = value_and_grad(y=y, X=X, w=w)
        values.append(float(value))
        w = w - np.linalg.solve(hessian(y=y, X=X, w=w), g)
    return values


runs = {"gradient descent, MSE": descend(mse, 0.1), "subgradient descent, MAE": descend(mae, 0.1)}
newton_mse = newton(mse)
# MSE is quadratic in w: one Newton step reaches the least-squares solution
least_squares = np.linalg.lstsq(X, y, rcond=None)[0]
assert np.isclose(newton_mse[1], float(mse(y=y, X=X, w=least_squares)))
for name, values in runs.items():
    print(f"{name}: {values[0]:.3f} -> {values[-1]:.3f}")
print(f"Newton, MSE: {newton_mse[0]:.3f} -> {newton_mse[1]:.3f} after one step")

fig = Figure(figsize=(11, 4), layout="tight")
left, right = fig.subplots(1, 2)
for name, values in runs.items():
    left.plot(values, label=name)
left.set(xlabel="epoch", ylabel="loss", title="Convergence with different losses", yscale="log")
left.legend()
right.plot(runs["gradient descent, MSE"][:10], "o-", label="gradient descent")
right.plot(newton_mse, "s-", label="Newton (derived Hessian)")
right.set(xlabel="epoch", ylabel="MSE", title="First- against second-order", yscale="log")
right.legend()
fig.savefig(OUT / "convergence.png", dpi=100)
print("wrote", OUT / "convergence.png")
