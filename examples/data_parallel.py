"""Data-parallel training on 8 devices: the compiled JAX loss on a batch sharded over a mesh.

The loss module is unchanged: place the batch with a ``NamedSharding`` that splits its leading axis
over the devices, replicate the parameters, and jit the step. XLA partitions the computation, and
the reductions in the loss (the mean, the sums) become cross-device all-reduces, so the value and
the gradient are those of the whole batch. Here the 8 devices are CPU devices that XLA simulates;
on GPUs or TPUs the code is the same. Figures go to examples/out/data_parallel/ (or
$LOSSDSL_EXAMPLES_OUT/data_parallel/).
"""

import os

# must precede the first import of jax; keeps any flags the user set
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import lossdsl  # noqa: E402

OUT = Path(os.environ.get("LOSSDSL_EXAMPLES_OUT", Path(__file__).parent / "out")) / "data_parallel"
OUT.mkdir(parents=True, exist_ok=True)

mesh = Mesh(np.array(jax.devices()), ("batch",))
batch_sharded = NamedSharding(mesh, PartitionSpec("batch"))  # leading axis split over the devices
replicated = NamedSharding(mesh, PartitionSpec())
print(f"{len(jax.devices())} devices:", ", ".join(str(d) for d in jax.devices()))

loss = lossdsl.compile("sparse_cce(labels, logits, from_logits=true) + l2(W, 1e-3)", backend="jax")

rng = np.random.default_rng(0)
n, d, classes = 1024, 16, 4
X = rng.normal(size=(n, d)).astype(np.float32)
labels = np.argmax(X @ rng.normal(size=(d, classes)), axis=1)
optimizer = optax.sgd(0.5)


def objective(W, x, y):
    return loss(labels=y, logits=x @ W, W=W)


@jax.jit
def step(W, state, x, y):
    value, g = jax.value_and_grad(objective)(W, x, y)
    updates, state = optimizer.update(g, state)
    return optax.apply_updates(W, updates), state, value


def train(x, y, W) -> tuple[jax.Array, list[float]]:
    state, history = optimizer.init(W), []
    for _ in range(50):
        W, state, value = step(W, state, x, y)
        history.append(float(value))
    return W, history


W0 = jnp.zeros((d, classes), jnp.float32)
# data-parallel: the batch split over the mesh, the parameters on every device
W, history = train(jax.device_put(X, batch_sharded), jax.device_put(labels, batch_sharded), jax.device_put(W0, replicated))
print("parameters after training:", W.sharding)
# the same training on one device gives the same model
W_one, history_one = train(jax.device_put(X, jax.devices()[0]), jax.device_put(labels, jax.devices()[0]), W0)
np.testing.assert_allclose(history, history_one, rtol=1e-5)
np.testing.assert_allclose(np.asarray(W), np.asarray(W_one), rtol=1e-4, atol=1e-6)
accuracy = float(np.mean(np.argmax(X @ np.asarray(W), axis=1) == labels))
print(f"loss {history[0]:.4f} -> {history[-1]:.4f}; training accuracy {accuracy:.2f}; one device agrees")

fig = Figure(figsize=(6, 4), layout="tight")
ax = fig.subplots()
ax.plot(history, label="8 devices, batch sharded")
ax.plot(history_one, "--", label="1 device")
ax.set(xlabel="step", ylabel="loss", title="Data-parallel training")
ax.legend()
fig.savefig(OUT / "data_parallel.png", dpi=100)
print("wrote", OUT / "data_parallel.png")
