"""Keras model.fit with a lossdsl loss, against Keras's own focal loss.

An imbalanced two-class problem (one positive in ten), a small MLP and Keras 3 on its JAX backend.
The loss is one line of text, ``lossdsl.keras.Loss("focal(gamma=2, alpha=0.75, from_logits=true)")``,
given to ``model.compile``; the positives also get a sample_weight of 2. The same model, from the same
initial weights, is trained with ``keras.losses.BinaryFocalCrossentropy``: the trained weights agree.
The model is then saved and loaded again with its lossdsl loss.
"""

import os
import tempfile
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"  # read when keras is first imported

import keras  # noqa: E402
import numpy as np  # noqa: E402

import lossdsl.keras  # noqa: E402

rng = np.random.default_rng(0)
n = 2000
X = rng.normal(size=(n, 2)).astype(np.float32)
y = ((X[:, 0] - 1.2) ** 2 + (X[:, 1] - 1.0) ** 2 < 0.8).astype(np.float32)[:, None]  # a disc: about 10% positive
weights = np.where(y[:, 0] == 1, 2.0, 1.0).astype(np.float32)
print(f"positives: {y.mean():.1%}")

keras.utils.set_random_seed(0)
start = keras.Sequential([keras.Input((2,)), keras.layers.Dense(32, activation="tanh"),
                          keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(1)]).get_weights()


def trained(loss: keras.losses.Loss) -> tuple[keras.Model, list[float]]:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(32, activation="tanh"),
                              keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(1)])
    model.set_weights(start)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    history = model.fit(X, y, sample_weight=weights, batch_size=200, epochs=20, shuffle=False, verbose=0)
    return model, history.history["loss"]


ours, our_history = trained(lossdsl.keras.Loss("focal(gamma=2, alpha=0.75, from_logits=true)"))
theirs, their_history = trained(keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.75,
                                                                     gamma=2.0, from_logits=True))
print(f"loss: {our_history[0]:.5f} -> {our_history[-1]:.5f} (lossdsl), "
      f"{their_history[0]:.5f} -> {their_history[-1]:.5f} (keras.losses)")
gap = max(float(np.max(np.abs(a - b))) for a, b in zip(ours.get_weights(), theirs.get_weights()))
print(f"largest difference between the trained weights: {gap:.2e}")
for a, b in zip(ours.get_weights(), theirs.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
np.testing.assert_allclose(our_history, their_history, rtol=1e-4)

predicted = ours.predict(X, verbose=0) > 0
print(f"accuracy {np.mean(predicted == (y == 1)):.1%}, recall {np.mean(predicted[y == 1]):.1%}")

with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "focal.keras"
    ours.save(path)
    loaded = keras.models.load_model(path)  # the loss comes back from its source text
    print(f"loaded loss: {loaded.loss!r}")
    np.testing.assert_allclose(loaded.evaluate(X, y, sample_weight=weights, verbose=0),
                               ours.evaluate(X, y, sample_weight=weights, verbose=0), rtol=1e-6)
