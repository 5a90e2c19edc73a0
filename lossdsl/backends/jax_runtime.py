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


def _value_range(x):
    """(min, max, size) of ``x``; min and max are 0 for an empty ``x``."""
    x = jnp.asarray(x)
    if not x.size:
        return jnp.zeros((), x.dtype), jnp.zeros((), x.dtype), 0
    return jnp.min(x), jnp.max(x), x.size


def _out(x, dt):
    return jnp.asarray(x, dtype=dt)


def _sigmoid(x):
    # jax.nn.sigmoid refuses integers (as where(c, 2, 3) gives), which every other function takes
    return jax.nn.sigmoid(_as_float(x, jnp.result_type(float)))


def _softplus(x):
    # max(x, 0) + log1p(e^-|x|): jax.nn.softplus is logaddexp(x, 0), whose handling of infinities
    # costs three times as much on XLA:CPU (5.6 against 1.7 ms for 4M float32)
    return jnp.maximum(x, 0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


def _fit(g, x):
    """A gradient shaped and typed like its input ``x``."""
    return jnp.asarray(_sum_to(g, jnp.shape(x)), dtype=x.dtype)


def _dotted(value, pairs):
    """The tangent of a one-number loss: the sum of each gradient times its input's tangent (none for
    an integer array given for a float input: its tangent is float0)."""
    out = jnp.zeros((), jnp.result_type(value))
    for g, t in pairs:
        if jnp.result_type(t) != jax.dtypes.float0:
            out = out + jnp.sum(g * t).astype(out.dtype)
    return out


def _cotangent(g, x):
    """A custom_vjp cotangent: None (zero) for integer primals, which have no gradient."""
    return g if jnp.issubdtype(jnp.result_type(x), jnp.inexact) else None


# --- how CTC's dynamic programme (in runtime.py) runs under jit


def _traced(x):
    """Whether ``x``'s values are unknown: it is a tracer, or a constant met while jit traces (whose
    min and max would be tracers; custom_jvp hands its rule the primals as they were given). A Python
    number, such as a shape's length, is known."""
    if isinstance(x, (int, float)):
        return False
    return isinstance(x, jax.core.Tracer) or isinstance(jnp.zeros(()), jax.core.Tracer)


def _scan(step, carry, xs, reverse=False):
    return jax.lax.scan(step, carry, xs, reverse=reverse)


def _bincount(indices, weights, n):
    """The sum of ``weights`` at each of the ``n`` bins that ``indices`` name; ``length`` keeps the
    shape static under jit."""
    return jnp.bincount(indices, weights, length=n)


def _scatter(z, key, g):
    """Zeros ``z`` with ``g`` written at ``key`` (arrays are immutable: ``.at``)."""
    return z.at[key].set(g)


def _stop_gradient(x):
    """x itself, and no gradient for JAX's own differentiation of the printed value either."""
    return jax.lax.stop_gradient(x)


def _argsort(x, axis):
    return jnp.argsort(x, axis=axis, stable=True)


def _logcumsum(x, axis):
    return jax.lax.cumlogsumexp(x, axis=axis % x.ndim)
