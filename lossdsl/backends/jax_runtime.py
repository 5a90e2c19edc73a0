"""JAX-only helpers copied into generated JAX modules."""

import jax
import jax.numpy as jnp

from .runtime import _sum_to


def _float_dtype(*xs):
    """The floating dtype of the float inputs; Python scalars are weak and do not promote."""
    dts = [x.dtype for x in xs if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)]
    if not dts:
        return jnp.result_type(float)
    dt = dts[0]
    for other in dts[1:]:
        dt = jnp.promote_types(dt, other)
    return jax.dtypes.canonicalize_dtype(dt)  # float64 is float32 unless jax_enable_x64 is on


def _as_float(x, dt):
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(dt)


def _as_index(x, name):
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(f"input '{name}' holds integer labels, but its dtype is {x.dtype}")
    return x


def _check_labels(labels, n):
    if isinstance(labels, jax.core.Tracer) or not jnp.size(labels):
        return  # under jit the values are unknown; checked wherever they are concrete
    if jnp.min(labels) < 0 or jnp.max(labels) >= n:
        raise ValueError(f"integer labels must lie in [0, {n}); got values from {jnp.min(labels)} "
                         f"to {jnp.max(labels)}")


def _within(x, lower, upper, integer, label):
    """``x`` itself, checked where its values are concrete (not under jit)."""
    if integer and not jnp.issubdtype(jnp.result_type(x), jnp.integer):
        raise TypeError(f"{label} must hold integers; got dtype {jnp.result_type(x)}")
    if isinstance(x, jax.core.Tracer) or not jnp.size(x):
        return x
    lo, hi = jnp.min(x), jnp.max(x)
    if (lower is not None and not lo >= lower) or (upper is not None and not hi <= upper):
        raise ValueError(f"{label} must lie in [{lower}, {upper}]; got values from {lo} to {hi}")
    return x


def _out(x, dt):
    return jnp.asarray(x, dtype=dt)


def _fit(g, x):
    """A gradient shaped and typed like its input ``x``."""
    return jnp.broadcast_to(_sum_to(g, jnp.shape(x)), jnp.shape(x)).astype(x.dtype)


def _cotangent(g, x):
    """A custom_vjp cotangent: None (zero) for integer primals, which have no gradient."""
    return g if jnp.issubdtype(jnp.result_type(x), jnp.inexact) else None
