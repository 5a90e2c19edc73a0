"""NumPy-only helpers copied into generated NumPy modules."""

import numpy as np

from .runtime import _sum_to


def _float_dtype(*xs):
    """The floating dtype of the float inputs; Python scalars are weak and do not promote."""
    dts = [x.dtype for x in xs if hasattr(x, "dtype") and np.issubdtype(x.dtype, np.floating)]
    return np.result_type(*dts) if dts else np.dtype(np.float64)


def _as_float(x, dt):
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(dt)


def _as_index(x, name):
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"input '{name}' holds integer labels, but its dtype is {x.dtype}")
    return x


def _out(x, dt):
    return np.asarray(x, dtype=dt)


def _fit(g, x):
    """A gradient shaped and typed like its input ``x``: summed down, broadcast up, a fresh array."""
    g = np.broadcast_to(_sum_to(g, x.shape), x.shape)
    return g.astype(x.dtype, copy=False) if g.flags.writeable else np.array(g, dtype=x.dtype)


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x):
    return np.logaddexp(0, x)


def _logsumexp(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)
