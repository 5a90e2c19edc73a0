"""Array helpers shared by the backends, written against ``xp`` (NumPy's API).

A backend's own runtime module overrides a helper by defining one of the same name.

Generated modules copy the helpers they use, with ``xp`` printed as the backend's own module
alias (``np`` or ``jnp``), so a generated module imports nothing but its array library.
"""

import numpy as xp


def _typed(x, dtype):
    """A Python number as an array of ``dtype``, the loss's float dtype (broadcast as it is,
    NumPy would make it float64 and promote every float32 array it meets)."""
    return x if dtype is None or hasattr(x, "dtype") else xp.asarray(x, dtype=dtype)


def _sum_to(x, shape, full=(), dtype=None):
    """``x`` broadcast against ``shape`` and ``full``, then summed down to ``shape``."""
    x, shape = _typed(x, dtype), tuple(shape)
    target = xp.broadcast_shapes(xp.shape(x), shape, tuple(full))
    if xp.shape(x) == shape == target:
        return x
    x = xp.broadcast_to(x, target)
    lead = xp.ndim(x) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and xp.shape(x)[i + lead] != 1)
    x = xp.sum(x, axis=axes, keepdims=True) if axes else x
    return xp.reshape(x, shape)


def _broadcast(x, shape, dtype=None):
    x = _typed(x, dtype)
    return xp.broadcast_to(x, xp.broadcast_shapes(xp.shape(x), tuple(shape)))


def _heaviside(x, h0):
    # the builtin heaviside; with h0 = 1/2 as sign(x)/2 + 1/2, NaN kept: np.heaviside branches per
    # element (22 ms for 4M float32) and jnp.heaviside nests two selects
    if isinstance(h0, float) and h0 == 0.5:
        return xp.sign(x) * 0.5 + 0.5
    return xp.heaviside(x, h0)


def _logsumexp(x, axis, keepdims):
    # shifted by the max (0 where it is infinite, so that a row of -inf gives -inf, not NaN); no
    # sign output or gradient rule, which jax.nn.logsumexp carries and the symbolic gradient needs not
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else xp.squeeze(out, axis=axis)


def _extremum_share(x, axis, kind):
    """1/k where ``x`` attains its max (``kind="max"``) or min over ``axis`` k times, else 0."""
    best = (xp.max if kind == "max" else xp.min)(x, axis=axis, keepdims=True)
    hit = (x == best).astype(xp.result_type(x, xp.float32))
    return hit / xp.sum(hit, axis=axis, keepdims=True)


def _inside(x, lo, hi):
    """The derivative of clip(x, lo, hi): 1 inside, 1/2 at either bound (each side of a tie gets
    half, as for maximum and minimum), 0 outside, NaN for NaN."""
    one = xp.ones_like(x)
    return xp.where((x > lo) & (x < hi), one, xp.where((x == lo) | (x == hi), one / 2, xp.where(x == x, 0 * one, x)))


def _count(shape, axis):
    """How many elements a reduction over ``axis`` (or all of them) combines."""
    if axis is None:
        n = 1
        for d in shape:
            n *= d
        return n
    return shape[axis]


def _expand_dims(g, shape, axis, dtype=None):
    """A reduction's cotangent (broadcastable to its output ``shape``) with the axis put back."""
    return xp.expand_dims(xp.broadcast_to(_typed(g, dtype), shape), axis)


def _within(x, lower, upper, integer, label):
    """``x`` itself, after checking its values lie in [lower, upper] (and are integers)."""
    if integer and not xp.issubdtype(xp.asarray(x).dtype, xp.integer):
        raise TypeError(f"{label} must hold integers; got dtype {xp.asarray(x).dtype}")
    if xp.size(x):
        lo, hi = xp.min(x), xp.max(x)
        if (lower is not None and not lo >= lower) or (upper is not None and not hi <= upper):
            raise ValueError(f"{label} must lie in [{lower}, {upper}]; got values from {lo} to {hi}")
    return x


def _per_sample(w, shape):
    """One value per sample (the leading axis), broadcast against an array of ``shape``."""
    w = xp.reshape(w, xp.shape(w) + (1,) * (len(shape) - xp.ndim(w)))
    return xp.broadcast_to(w, xp.broadcast_shapes(xp.shape(w), tuple(shape)))


def _per_sample_vjp(g, w_shape, shape):
    padded = tuple(w_shape) + (1,) * (len(shape) - len(w_shape))
    g = _sum_to(xp.broadcast_to(g, xp.broadcast_shapes(padded, tuple(shape))), padded)
    return xp.reshape(g, w_shape)


def _check_labels(labels, n, label):
    if xp.size(labels) and (xp.min(labels) < 0 or xp.max(labels) >= n):
        raise ValueError(f"{label} must hold class indices in [0, {n}); got values from {xp.min(labels)} "
                         f"to {xp.max(labels)}")


def _take(x, labels, axis, label):
    _check_labels(labels, xp.shape(x)[axis], label)
    return xp.squeeze(xp.take_along_axis(x, xp.expand_dims(labels, axis), axis=axis), axis=axis)


def _take_vjp(g, labels, shape, axis):
    axis = axis % len(shape) - len(shape)  # counted from the right, where broadcasting aligns
    classes = xp.reshape(xp.arange(shape[axis]), (shape[axis],) + (1,) * (-axis - 1))
    g = xp.broadcast_to(g, xp.broadcast_shapes(xp.shape(g), xp.shape(labels)))
    return xp.where(xp.expand_dims(labels, axis) == classes, xp.expand_dims(g, axis), 0)


def _one_hot(labels, depth, dt, label):
    _check_labels(labels, depth, label)
    return (xp.expand_dims(labels, -1) == xp.arange(depth)).astype(dt)


def _matmul_2d(g, a, b, shape):
    """``a @ b``'s operands and its cotangent ``g`` (broadcast to ``shape``) with 1-D operands made 2-D."""
    g = xp.broadcast_to(g, shape)
    a2 = xp.expand_dims(a, 0) if xp.ndim(a) == 1 else a
    b2 = xp.expand_dims(b, -1) if xp.ndim(b) == 1 else b
    g2 = xp.expand_dims(g, -2) if xp.ndim(a) == 1 else g
    g2 = xp.expand_dims(g2, -1) if xp.ndim(b) == 1 else g2
    return g2, a2, b2


def _matmul_vjp_a(g, a, b, shape):
    """The cotangent of ``a`` in ``a @ b`` (of ``shape``), for NumPy's matmul rules."""
    g2, a2, b2 = _matmul_2d(g, a, b, shape)
    return xp.reshape(_sum_to(xp.matmul(g2, xp.swapaxes(b2, -1, -2)), xp.shape(a2)), xp.shape(a))


def _matmul_vjp_b(g, a, b, shape):
    """The cotangent of ``b`` in ``a @ b`` (of ``shape``), for NumPy's matmul rules."""
    g2, a2, b2 = _matmul_2d(g, a, b, shape)
    return xp.reshape(_sum_to(xp.matmul(xp.swapaxes(a2, -1, -2), g2), xp.shape(b2)), xp.shape(b))


def _traced(x):
    """Whether ``x``'s values are unknown (a JAX tracer under jit; the JAX runtime says which)."""
    return False


def _ctc_lengths(log_probs, targets, input_lengths, target_lengths, blank, labels):
    """Check the shapes (static, so also under jit) and, where the values are concrete, the labels and
    lengths; the lengths as (B,), and whether each sample's inputs are valid (for traced values)."""
    if xp.ndim(log_probs) != 3:
        raise ValueError(f"{labels[0]} must hold log-probabilities shaped (T, B, C); got shape {xp.shape(log_probs)}")
    T, B, C = xp.shape(log_probs)
    if xp.ndim(targets) != 2 or xp.shape(targets)[0] != B:
        raise ValueError(f"{labels[1]} must hold padded targets shaped (B, S) with B = {B} (log_probs is "
                         f"(T, B, C) = {xp.shape(log_probs)}); got shape {xp.shape(targets)}")
    if not 0 <= blank < C:
        raise ValueError(f"blank={blank} is not a class of {labels[0]}, which has C = {C} classes")
    S = xp.shape(targets)[1]
    concrete = not any(_traced(x) for x in (targets, input_lengths, target_lengths))
    out, ok = [], xp.ones((B,), dtype=bool)
    for x, top, label, what in ((input_lengths, T, labels[2], "T, the frames of log_probs"),
                                (target_lengths, S, labels[3], "S, the columns of targets")):
        if xp.ndim(x) > 1 or xp.size(x) not in (1, B):
            raise ValueError(f"{label} must hold one length per sample, shape ({B},); got shape {xp.shape(x)}")
        x = xp.broadcast_to(x, (B,))
        bad = (x < 0) | (x > top)
        if concrete and xp.any(bad):
            b = int(xp.argmax(bad))
            raise ValueError(f"{label} must lie in [0, {top}] ({what}); got {x[b]} for sample {b}")
        out.append(x)
        ok = ok & ~bad
    used = xp.arange(S) < out[1][:, None]
    bad = used & ((targets < 0) | (targets >= C) | (targets == blank))
    if concrete and xp.any(bad):
        b, s = divmod(int(xp.argmax(bad)), S)
        raise ValueError(f"{labels[1]} must hold class labels in [0, {C}) other than blank={blank} in the first "
                         f"target_lengths[b] entries of each row b; got {targets[b, s]} at sample {b}, position {s}")
    return out[0], out[1], ok & ~xp.any(bad, axis=1)


def _ctc_tables(log_probs, targets, target_lengths, blank):
    """The extended labels (blank, l1, blank, l2, ..., blank) of each sample: their log-probabilities
    (T, B, L), -inf beyond 2*target_length + 1; where a label may be reached by skipping the blank
    before it; the two final positions; and the extended labels themselves (B, L)."""
    T, B, C = xp.shape(log_probs)
    S = xp.shape(targets)[1]
    L = 2 * S + 1
    lab = xp.clip(targets, 0, C - 1)  # the padding may hold anything
    blanks = xp.full((B, S + 1), blank, dtype=lab.dtype)
    ext = xp.concatenate([xp.reshape(xp.stack([blanks[:, :S], lab], axis=-1), (B, 2 * S)), blanks[:, S:]], axis=1)
    s = xp.arange(L)
    valid = s < 2 * target_lengths[:, None] + 1
    before = xp.concatenate([xp.full((B, 2), -1, dtype=ext.dtype), ext], axis=1)[:, :L]  # ext two places back
    skip = (s % 2 == 1) & (s >= 2) & (ext != before) & (ext != blank)
    final = (s == 2 * target_lengths[:, None]) | (s == 2 * target_lengths[:, None] - 1)
    lp = xp.take_along_axis(log_probs, xp.broadcast_to(ext, (T, B, L)), axis=2)
    return xp.where(valid, lp, -xp.inf), skip, final, ext


def _ctc_shift(a, k):
    """``a`` moved k places along its last axis (right for k > 0, left for k < 0), -inf entering."""
    pad = xp.full(a.shape[:-1] + (abs(k),), -xp.inf, dtype=a.dtype)
    if k > 0:
        return xp.concatenate([pad, a], axis=-1)[..., :a.shape[-1]]
    return xp.concatenate([a, pad], axis=-1)[..., -k:]


def _ctc_loglik(last, target_lengths):
    """log p(target | log_probs) per sample from alpha at the last frame: the paths ending in the
    last label or in the blank after it."""
    end = xp.take_along_axis(last, 2 * target_lengths[:, None], axis=1)[:, 0]
    before = xp.take_along_axis(last, xp.maximum(2 * target_lengths - 1, 0)[:, None], axis=1)[:, 0]
    return xp.logaddexp(end, xp.where(target_lengths > 0, before, -xp.inf))
