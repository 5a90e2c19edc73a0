"""Oracles the test tables share: central finite differences in float64, jax.grad of a reference."""

import numpy as np


def float_names(inputs):
    """The inputs holding floats: the ones a gradient is taken with respect to."""
    return [n for n, v in inputs.items() if np.issubdtype(np.asarray(v).dtype, np.floating)]


def finite_differences(loss, inputs, name, h=1e-6):
    """d loss / d inputs[name], one element at a time, by central differences of step ``h``."""
    x = np.asarray(inputs[name], dtype=np.float64)
    fd = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        up = float(loss(**{**inputs, name: x + e}))
        down = float(loss(**{**inputs, name: x - e}))
        fd[i] = (up - down) / (2 * h)
    return fd


def jax_grads(reference, inputs, names):
    """jax.grad of ``reference(**inputs)`` (written in jax.numpy) with respect to each input in ``names``."""
    import jax
    import jax.numpy as jnp

    args = {k: jnp.asarray(v) for k, v in inputs.items()}

    def f(*values):
        return reference(**{**args, **dict(zip(names, values))})

    grads = jax.jit(jax.grad(f, argnums=tuple(range(len(names)))))(*(args[n] for n in names))
    return dict(zip(names, (np.asarray(g) for g in grads)))
