"""JAX transformations through a compiled JAX loss, against the same loss written in jax.numpy:
forward mode (jvp, jacfwd), jax.hessian (forward over reverse), reverse mode under jit, vmap of the
gradient (per-sample gradients). A one-number loss is a custom_jvp whose tangent is the symbolic
gradient; an unreduced one keeps its custom_vjp (reverse mode). A NumPy-backend loss traced by JAX
says to compile for JAX."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lossdsl
from lossdsl.errors import InputError

jax.config.update("jax_enable_x64", True)

RNG = np.random.default_rng(0)
Y = jnp.asarray(RNG.uniform(0, 1, size=6))
P = jnp.asarray(RNG.normal(scale=2, size=6))
G = jnp.asarray(1.5)


def _softplus(x):
    return jnp.logaddexp(0.0, x)


def _focal(y, x, gamma):
    p = jax.nn.sigmoid(x)
    p_t = p * y + (1 - p) * (1 - y)
    alpha_t = 0.25 * y + 0.75 * (1 - y)
    ce = y * _softplus(-x) + (1 - y) * _softplus(x)
    return jnp.mean(alpha_t * (1 - p_t) ** gamma * ce)


ROWS = {  # source -> (jnp reference of (y, x, g), the inputs differentiated)
    "focal(y_true, y_pred, gamma=g, from_logits=true)": _focal,
    "huber(y_true, y_pred, delta=g) + 0.1*sum(y_pred^2)":
        lambda y, x, g: jnp.mean(jnp.where(jnp.abs(x - y) <= g, 0.5 * (x - y) ** 2, g * (jnp.abs(x - y) - 0.5 * g)))
        + 0.1 * jnp.sum(x**2),
    "mean(y_true * log_softmax(g * y_pred)) + sum(g^3)":
        lambda y, x, g: jnp.mean(y * jax.nn.log_softmax(g * x)) + g**3,
}


def _ours(source):
    loss = lossdsl.compile(source, backend="jax")
    return lambda y, x, g: loss(y_true=y, y_pred=x, g=g)


@pytest.mark.parametrize("source", ROWS)
def test_forward_mode_and_hessians_match_jax_on_the_reference(source):
    ours, ref = _ours(source), ROWS[source]
    tangents = (jnp.ones(6) * 0.3, jnp.linspace(-1, 1, 6), jnp.asarray(0.7))
    for transform in (
        lambda f: jax.jvp(f, (Y, P, G), tangents),
        lambda f: jax.jacfwd(f, argnums=(0, 1, 2))(Y, P, G),
        lambda f: jax.jacrev(f, argnums=(0, 1, 2))(Y, P, G),
        lambda f: jax.hessian(f, argnums=1)(Y, P, G),
        lambda f: jax.jit(jax.hessian(f, argnums=2))(Y, P, G),
        lambda f: jax.jit(jax.grad(f, argnums=(1, 2)))(Y, P, G),
    ):
        got, want = jax.tree_util.tree_leaves(transform(ours)), jax.tree_util.tree_leaves(transform(ref))
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)


def test_per_sample_gradients_by_vmap():
    loss = lossdsl.compile("focal(y_true, y_pred, gamma=2, from_logits=true)", backend="jax")
    per_sample = jax.vmap(jax.grad(lambda x, y: loss(y_true=y, y_pred=x)))(P[:, None], Y[:, None])
    want = jax.vmap(jax.grad(lambda x, y: _focal(y, x, 2.0)))(P[:, None], Y[:, None])
    np.testing.assert_allclose(np.asarray(per_sample), np.asarray(want), rtol=1e-10)


@pytest.mark.parametrize("source", ['mse(y_true, y_pred, reduction="none")', "mean((y_true - y_pred)^2) + g^2"])
def test_a_loss_that_may_be_an_array_keeps_reverse_mode_and_says_why_not_forward(source):
    loss = lossdsl.compile(source, backend="jax")
    inputs = {"g": G} if "g" in loss.inputs else {}
    vjp = jax.vjp(lambda x: loss(y_true=Y, y_pred=x, **inputs), P)[1](jnp.ones_like(P) if "none" in source
                                                                      else jnp.asarray(1.0))[0]
    want = 2 * (P - Y) if "none" in source else 2 * (P - Y) / 6
    np.testing.assert_allclose(np.asarray(vjp), np.asarray(want), rtol=1e-12)
    with pytest.raises(InputError, match="forward mode .* needs a loss that compile time knows is one number"):
        jax.jvp(lambda x: loss(y_true=Y, y_pred=x, **inputs), (P,), (P,))


@pytest.mark.parametrize("transform", [jax.grad, jax.jit, jax.vmap, lambda f: lambda x: jax.jvp(f, (x,), (x,))])
def test_a_numpy_loss_traced_by_jax_says_to_compile_for_jax(transform):
    loss = lossdsl.compile("mse(y_true, y_pred)")
    with pytest.raises(InputError, match='compile it with backend="jax"'):
        transform(lambda x: loss(y_true=np.ones(6), y_pred=x))(P)


def test_integer_arrays_for_float_inputs_have_no_tangent():
    """Integer labels given for a float input (y_true of focal) carry float0 tangents under jax.grad."""
    loss = lossdsl.compile("focal(y_true, y_pred, gamma=2, from_logits=true)", backend="jax")
    labels = jnp.asarray([0, 1, 1, 0, 1, 0])
    got = jax.grad(lambda x: loss(y_true=labels, y_pred=x))(P)
    want = jax.grad(lambda x: _focal(labels.astype(P.dtype), x, 2.0))(P)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-10)
