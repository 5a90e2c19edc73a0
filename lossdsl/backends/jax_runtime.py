"""JAX-only helpers copied into generated JAX modules."""

import jax
import jax.numpy as jnp

from .runtime import _ctc_lengths, _ctc_loglik, _ctc_shift, _ctc_tables, _sum_to


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


def _check_labels(labels, n, label):
    if not jnp.size(labels) or isinstance(labels, jax.core.Tracer):
        return  # under jit the values are unknown; CompiledLoss checks them beforehand
    if jnp.min(labels) < 0 or jnp.max(labels) >= n:
        raise ValueError(f"{label} must hold class indices in [0, {n}); got values from {jnp.min(labels)} "
                         f"to {jnp.max(labels)}")


def _within(x, lower, upper, integer, label):
    """``x`` itself, checked where its values are concrete (not under jit)."""
    if integer and not jnp.issubdtype(jnp.result_type(x), jnp.integer):
        raise TypeError(f"{label} must hold integers; got dtype {jnp.result_type(x)}")
    if not jnp.size(x) or isinstance(x, jax.core.Tracer):
        return x  # under jit the values are unknown; CompiledLoss checks them beforehand
    lo, hi = jnp.min(x), jnp.max(x)
    if (lower is not None and not lo >= lower) or (upper is not None and not hi <= upper):
        raise ValueError(f"{label} must lie in [{lower}, {upper}]; got values from {lo} to {hi}")
    return x


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


def _cotangent(g, x):
    """A custom_vjp cotangent: None (zero) for integer primals, which have no gradient."""
    return g if jnp.issubdtype(jnp.result_type(x), jnp.inexact) else None


# --- CTC (connectionist temporal classification): forward-backward by jax.lax.scan over time, static
# shapes and length masks throughout, so that it traces once under jit


def _traced(x):
    """Whether ``x`` is a JAX tracer: its values are unknown (under jit)."""
    return isinstance(x, jax.core.Tracer)


def _ctc_alpha(lp, skip, input_lengths):
    """Forward variables log alpha[t, b, s] (emission at t included), and each sample's alpha at its
    last frame t = input_length - 1 (before any frame, the empty prefix: 0 at s = 0)."""
    T, B, L = lp.shape
    start = jnp.broadcast_to(jnp.where(jnp.arange(L) == 0, 0.0, -jnp.inf).astype(lp.dtype), (B, L))

    def step(carry, frame):
        a, last = carry
        lp_t, t = frame
        a = jnp.logaddexp(jnp.logaddexp(a, _ctc_shift(a, 1)), jnp.where(skip, _ctc_shift(a, 2), -jnp.inf)) + lp_t
        return (a, jnp.where((t < input_lengths)[:, None], a, last)), a

    (_, last), alphas = jax.lax.scan(step, (start, start), (lp, jnp.arange(T)))
    return alphas, last


def _ctc_beta(lp, skip, final, input_lengths):
    """Backward variables log beta[t, b, s] (emission at t included), -inf from t = input_length on."""
    T, B, L = lp.shape
    skip_next = jnp.concatenate([skip, jnp.zeros((B, 2), dtype=bool)], axis=1)[:, 2:]  # s + 2 skips to s
    start = jnp.where(final, 0.0, -jnp.inf).astype(lp.dtype)

    def step(b, frame):
        lp_t, t = frame
        rec = jnp.logaddexp(jnp.logaddexp(b, _ctc_shift(b, -1)), jnp.where(skip_next, _ctc_shift(b, -2), -jnp.inf))
        b = jnp.where((t == input_lengths - 1)[:, None], start,
                      jnp.where((t < input_lengths - 1)[:, None], rec, -jnp.inf)) + lp_t
        return b, b

    _, betas = jax.lax.scan(step, jnp.full((B, L), -jnp.inf, dtype=lp.dtype), (lp, jnp.arange(T)), reverse=True)
    return betas


def _ctc_nll(log_probs, targets, input_lengths, target_lengths, blank, zero_infinity, labels):
    """Per-sample CTC negative log-likelihood (B,); +inf where no alignment fits (0 with zero_infinity);
    NaN under jit for a sample whose targets or lengths are out of range."""
    input_lengths, target_lengths, ok = _ctc_lengths(log_probs, targets, input_lengths, target_lengths, blank,
                                                     labels)
    lp, skip, final, ext = _ctc_tables(log_probs, targets, target_lengths, blank)
    nll = 0.0 - _ctc_loglik(_ctc_alpha(lp, skip, input_lengths)[1], target_lengths)
    nll = jnp.where(jnp.isposinf(nll), 0.0, nll) if zero_infinity else nll
    return jnp.where(ok, nll, jnp.nan)


def _ctc_grad(ct, log_probs, targets, input_lengths, target_lengths, blank, zero_infinity, labels):
    """ct[b] * d nll[b] / d log_probs[t, b, c] = -ct[b] * (the posterior probability that frame t of
    sample b emits class c), by forward-backward. 0 from t = input_length on; for an infinite loss NaN,
    or 0 with zero_infinity; NaN for out-of-range targets or lengths under jit."""
    input_lengths, target_lengths, ok = _ctc_lengths(log_probs, targets, input_lengths, target_lengths, blank,
                                                     labels)
    T, B, C = jnp.shape(log_probs)
    lp, skip, final, ext = _ctc_tables(log_probs, targets, target_lengths, blank)
    alphas, last = _ctc_alpha(lp, skip, input_lengths)
    nll = -_ctc_loglik(last, target_lengths)
    ab = alphas + _ctc_beta(lp, skip, final, input_lengths)
    reached = ab > -jnp.inf
    occupancy = jnp.where(reached, jnp.exp(jnp.where(reached, ab - lp, -jnp.inf) + nll[:, None]), 0)
    posterior = jnp.zeros((T, B, C), dtype=lp.dtype).at[
        jnp.arange(T)[:, None, None], jnp.arange(B)[:, None], jnp.broadcast_to(ext, lp.shape)].add(occupancy)
    g = -posterior * jnp.broadcast_to(ct, (B,))[:, None]
    g = jnp.where(jnp.isposinf(nll)[:, None], 0.0 if zero_infinity else jnp.nan, g)
    return jnp.where(ok[:, None], g, jnp.nan)
