"""Array helpers shared by the backends, written against ``xp`` (NumPy's API).

A backend's own runtime module overrides a helper by defining one of the same name.

Generated modules copy the helpers they use, with ``xp`` printed as the backend's own module
alias (``np`` or ``jnp``), so a generated module imports nothing but its array library.
"""

import numpy as xp


def _sum_to(x, shape, full=()):
    """``x`` broadcast against ``shape`` and ``full``, then summed down to ``shape``."""
    shape = tuple(shape)
    target = xp.broadcast_shapes(xp.shape(x), shape, tuple(full))
    if xp.shape(x) == shape == target:
        return x
    x = xp.broadcast_to(x, target)
    lead = xp.ndim(x) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and xp.shape(x)[i + lead] != 1)
    x = xp.sum(x, axis=axes, keepdims=True) if axes else x
    return xp.reshape(x, shape)


def _broadcast(x, shape):
    return xp.broadcast_to(x, xp.broadcast_shapes(xp.shape(x), tuple(shape)))


def _extremum_share(x, axis, kind):
    """1/k where ``x`` attains its max (``kind="max"``) or min over ``axis`` k times, else 0."""
    best = (xp.max if kind == "max" else xp.min)(x, axis=axis, keepdims=True)
    hit = (x == best).astype(xp.result_type(x, xp.float32))
    return hit / xp.sum(hit, axis=axis, keepdims=True)


def _count(shape, axis):
    """How many elements a reduction over ``axis`` (or all of them) combines."""
    if axis is None:
        n = 1
        for d in shape:
            n *= d
        return n
    return shape[axis]


def _expand_dims(g, shape, axis):
    """A reduction's cotangent (broadcastable to its output ``shape``) with the axis put back."""
    return xp.expand_dims(xp.broadcast_to(g, shape), axis)


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


def _matmul_vjp(g, a, b, shape):
    """Cotangents of ``a @ b`` (of ``shape``) for NumPy's matmul rules, 1-D operands included."""
    g = xp.broadcast_to(g, shape)
    a2 = xp.expand_dims(a, 0) if xp.ndim(a) == 1 else a
    b2 = xp.expand_dims(b, -1) if xp.ndim(b) == 1 else b
    g2 = xp.expand_dims(g, -2) if xp.ndim(a) == 1 else g
    g2 = xp.expand_dims(g2, -1) if xp.ndim(b) == 1 else g2
    ga = _sum_to(xp.matmul(g2, xp.swapaxes(b2, -1, -2)), xp.shape(a2))
    gb = _sum_to(xp.matmul(xp.swapaxes(a2, -1, -2), g2), xp.shape(b2))
    return xp.reshape(ga, xp.shape(a)), xp.reshape(gb, xp.shape(b))


def _matmul_vjp_a(g, a, b, shape):
    return _matmul_vjp(g, a, b, shape)[0]


def _matmul_vjp_b(g, a, b, shape):
    return _matmul_vjp(g, a, b, shape)[1]
