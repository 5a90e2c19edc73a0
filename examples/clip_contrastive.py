"""CLIP's symmetric contrastive loss in one line of lossdsl, training two linear encoders with JAX + optax.

Image and text features (here: two noisy views of shared latent vectors) are mapped by W_img and
W_txt, L2-normalised, and compared in the batch similarity matrix; the loss is the mean of the
cross-entropy of each row and each column against the diagonal (Radford et al., 2021):

    mean(-diag(log_softmax(S)) - diag(log_softmax(transpose(S))))/2  with  S = a @ transpose(b) / tau

The diagonal comes from `diag(...)`, the normalisation from `norm(..., keepdims=true)`. Each step's
loss and gradients are checked against the same loss written in jax.numpy with jax.grad, and the
encoders learn to match the pairs (the diagonal wins most rows at the end, where chance is 1 in 32).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lossdsl

jax.config.update("jax_enable_x64", True)

SOURCE = """
a = (x @ W_img) / norm(x @ W_img, axis=-1, keepdims=true)
b = (t @ W_txt) / norm(t @ W_txt, axis=-1, keepdims=true)
S = a @ transpose(b) / 0.1
mean(-diag(log_softmax(S)) - diag(log_softmax(transpose(S)))) / 2
"""
loss = lossdsl.compile(SOURCE, backend="jax")


def reference(params, x, t):
    a = x @ params["W_img"]
    b = t @ params["W_txt"]
    a = a / jnp.linalg.norm(a, axis=-1, keepdims=True)
    b = b / jnp.linalg.norm(b, axis=-1, keepdims=True)
    s = a @ b.T / 0.1
    return jnp.mean(-jnp.diag(jax.nn.log_softmax(s)) - jnp.diag(jax.nn.log_softmax(s.T))) / 2


def main() -> None:
    rng = np.random.default_rng(0)
    n, latent, d_img, d_txt, d = 32, 6, 10, 8, 6
    mix_img, mix_txt = rng.normal(size=(latent, d_img)), rng.normal(size=(latent, d_txt))
    params = {"W_img": jnp.asarray(0.3 * rng.normal(size=(d_img, d))),
              "W_txt": jnp.asarray(0.3 * rng.normal(size=(d_txt, d)))}
    optimizer = optax.adam(0.05)
    state = optimizer.init(params)
    step = jax.jit(loss.value_and_grad(["W_img", "W_txt"]))
    for k in range(150):
        z = rng.normal(size=(n, latent))
        x = jnp.asarray(z @ mix_img + 0.1 * rng.normal(size=(n, d_img)))
        t = jnp.asarray(z @ mix_txt + 0.1 * rng.normal(size=(n, d_txt)))
        value, grads = step(x=x, t=t, **params)
        if k % 25 == 0:  # the symbolic gradient against jax.grad of the jnp version
            want_value, want_grads = jax.value_and_grad(reference)(params, x, t)
            np.testing.assert_allclose(float(value), float(want_value), rtol=1e-10)
            for name in params:
                np.testing.assert_allclose(np.asarray(grads[name]), np.asarray(want_grads[name]), rtol=1e-8,
                                           atol=1e-12)
            print(f"step {k:3d}  loss {float(value):.4f}")
        updates, state = optimizer.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    a, b = x @ params["W_img"], t @ params["W_txt"]
    a, b = a / jnp.linalg.norm(a, axis=-1, keepdims=True), b / jnp.linalg.norm(b, axis=-1, keepdims=True)
    matched = np.mean(np.argmax(np.asarray(a @ b.T), axis=1) == np.arange(n))
    print(f"pairs matched at the end: {matched:.0%} (by chance: {1 / n:.0%})")
    assert matched > 0.5


if __name__ == "__main__":
    main()
