"""Quickstart: compile the card example, evaluate it and its gradient, and take a few descent steps."""

import numpy as np

import lossdsl

loss = lossdsl.compile("0.5*huber(delta=1) + l1(w, 0.1)", backend="numpy")
print("inputs:", loss.inputs)
print("d/dy_pred:", loss.gradient_formula("y_pred"))

rng = np.random.default_rng(0)
y_true = rng.normal(size=100)
y_pred = np.zeros(100)
w = rng.normal(size=5)
step = loss.value_and_grad(["y_pred", "w"])
for i in range(5):
    value, grads = step(y_true=y_true, y_pred=y_pred, w=w)
    print(f"step {i}: loss {float(value):.4f}")
    y_pred = y_pred - 50.0 * grads["y_pred"]
    w = w - 1.0 * grads["w"]
