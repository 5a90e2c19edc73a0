"""Binary classification with focal loss in a JAX + optax training loop.

An imbalanced two-class problem (one positive in ten) and a small MLP. The loss is one line of text;
``jax.value_and_grad`` through it uses lossdsl's symbolic gradient (a ``jax.custom_vjp``), and the
whole step is jitted. Figures go to examples/out/focal_optax/ (or $LOSSDSL_EXAMPLES_OUT/focal_optax/).
"""

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import lossdsl

OUT = Path(os.environ.get("LOSSDSL_EXAMPLES_OUT", Path(__file__).parent / "out")) / "focal_optax"
OUT.mkdir(parents=True, exist_ok=True)

rng = np.random.default_rng(0)
n = 2000
X = rng.normal(size=(n, 2)).astype(np.float32)
y = ((X[:, 0] - 1.2) ** 2 + (X[:, 1] - 1.0) ** 2 < 0.8).astype(np.float32)  # a disc: about 10% positive
print(f"positives: {y.mean():.1%}")

focal = lossdsl.compile("focal(gamma=2, alpha=0.75, from_logits=true)", backend="jax")


def init(key: jax.Array, sizes=(2, 32, 32, 1)) -> list[tuple[jax.Array, jax.Array]]:
    keys = jax.random.split(key, len(sizes) - 1)
    return [(jax.random.normal(k, (a, b)) / np.sqrt(a), jnp.zeros(b)) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def logits(params, x):
    for w, b in params[:-1]:
        x = jnp.tanh(x @ w + b)
    w, b = params[-1]
    return (x @ w + b)[:, 0]


def objective(params, x, labels):
    return focal(y_true=labels, y_pred=logits(params, x))


params = init(jax.random.PRNGKey(0))
optimizer = optax.adam(1e-2)
state = optimizer.init(params)


@jax.jit
def step(params, state, x, labels):
    value, grads = jax.value_and_grad(objective)(params, x, labels)
    updates, state = optimizer.update(grads, state)
    return optax.apply_updates(params, updates), state, value


history = []
for _ in range(300):
    params, state, value = step(params, state, X, y)
    history.append(float(value))
predicted = np.asarray(logits(params, X)) > 0
recall, precision = (predicted & (y > 0)).sum() / (y > 0).sum(), (predicted & (y > 0)).sum() / max(predicted.sum(), 1)
print(f"focal loss {history[0]:.4f} -> {history[-1]:.4f}; recall {recall:.2f}, precision {precision:.2f}")

fig = Figure(figsize=(11, 4), layout="tight")
left, right = fig.subplots(1, 2)
left.plot(history)
left.set(xlabel="step", ylabel="focal loss", yscale="log", title="Training")
grid = np.stack(np.meshgrid(np.linspace(-3, 3, 200), np.linspace(-3, 3, 200)), -1).reshape(-1, 2)
p = np.asarray(jax.nn.sigmoid(logits(params, jnp.asarray(grid, jnp.float32)))).reshape(200, 200)
right.contourf(np.linspace(-3, 3, 200), np.linspace(-3, 3, 200), p, levels=20, cmap="RdBu_r", alpha=0.6)
right.scatter(X[:, 0], X[:, 1], c=y, s=3, cmap="RdBu_r")
right.set(title="P(positive)", xlim=(-3, 3), ylim=(-3, 3))
fig.savefig(OUT / "focal_optax.png", dpi=100)
print("wrote", OUT / "focal_optax.png")
