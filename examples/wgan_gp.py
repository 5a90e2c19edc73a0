"""A WGAN-GP critic step in JAX + optax, with the gradient penalty written in lossdsl.

The critic is a small MLP (W1, b1, w2). Its loss is the Wasserstein estimate plus the gradient penalty
of Gulrajani et al. (2017), lambda * mean((||grad_xhat critic(xhat)|| - 1)^2) at points xhat between
real and fake samples: ``grad(...)`` in the text is differentiated symbolically, and the outer gradient
(with respect to the critic's weights) goes through it. Each step is checked against the same loss
written in jax.numpy with nested jax.grad.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lossdsl

jax.config.update("jax_enable_x64", True)

SOURCE = """
def critic(x, W1, b1, w2):
    return tanh(x @ W1 + b1) @ w2

penalty = mean((norm(grad(critic(xhat, W1, b1, w2), xhat), axis=-1) - 1)^2)
mean(critic(fake, W1, b1, w2)) - mean(critic(real, W1, b1, w2))
  + 10 * penalty               # lambda = 10, as in the paper
"""
loss = lossdsl.compile(SOURCE, backend="jax")


def critic(x, p):
    return jnp.tanh(x @ p["W1"] + p["b1"]) @ p["w2"]


def reference(p, real, fake, xhat):
    """The same loss in jax.numpy: the penalty's gradient by an inner jax.grad."""
    g = jax.grad(lambda z: jnp.sum(critic(z, p)))(xhat)
    return jnp.mean(critic(fake, p)) - jnp.mean(critic(real, p)) + 10 * jnp.mean((jnp.linalg.norm(g, axis=-1) - 1) ** 2)


def objective(p, real, fake, xhat):
    return loss(real=real, fake=fake, xhat=xhat, **p)


rng = np.random.default_rng(0)
dim, hidden, batch = 2, 16, 64
params = {"W1": jnp.asarray(rng.normal(size=(dim, hidden)) / np.sqrt(dim)), "b1": jnp.zeros(hidden),
          "w2": jnp.asarray(rng.normal(size=hidden) / np.sqrt(hidden))}
optimizer = optax.adam(1e-2)
state = optimizer.init(params)


@jax.jit
def step(params, state, real, fake, xhat):
    value, grads = jax.value_and_grad(objective)(params, real, fake, xhat)
    want, want_grads = jax.value_and_grad(reference)(params, real, fake, xhat)
    updates, state = optimizer.update(grads, state, params)
    gap = jnp.max(jnp.asarray([jnp.abs(value - want)] + [jnp.max(jnp.abs(grads[k] - want_grads[k])) for k in grads]))
    return optax.apply_updates(params, updates), state, value, gap


for i in range(100):
    real = rng.normal(loc=(2.0, -1.0), scale=0.5, size=(batch, dim))  # the data: a shifted Gaussian
    fake = rng.normal(size=(batch, dim))  # a generator that has learnt nothing yet
    eps = rng.uniform(size=(batch, 1))
    xhat = eps * real + (1 - eps) * fake
    params, state, value, gap = step(params, state, real, fake, xhat)
    assert gap < 1e-10, f"step {i}: lossdsl and the jax.numpy reference differ by {float(gap)}"
    if i % 25 == 0 or i == 99:
        print(f"step {i:3d}  critic loss {float(value):+.4f}")
print("the critic separates the data from the fakes: loss", f"{float(value):+.3f}")
assert float(value) < 0
