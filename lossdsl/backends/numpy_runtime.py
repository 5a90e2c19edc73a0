"""NumPy-only helpers copied into generated NumPy modules."""

import numpy as np

from .runtime import _sum_to


def _float_dtype(*xs):
    """The floating dtype of the float inputs; Python scalars are weak and do not promote."""
    dts = [x.dtype for x in xs if hasattr(x, "dtype") and np.issubdtype(x.dtype, np.floating)]
    return np.result_type(*dts) if dts else np.dtype(np.float64)


def _as_float(x, dt):
    x = np.asarray(x)
    x = (x if np.issubdtype(x.dtype, np.floating) else x.astype(dt)).view()
    x.flags.writeable = False  # read-only, and so is every view of it: _fit tells it from a result
    return x


def _out(x, dt):
    return np.asarray(x, dtype=dt)


def _writable(x, shape, dtype):
    """Whether ``x`` is an array of our own that holds a result of ``shape`` and ``dtype``: inputs
    and views of them are read-only (see _as_float), and so are broadcasts."""
    return isinstance(x, np.ndarray) and x.flags.writeable and x.shape == tuple(shape) and x.dtype == dtype


def _fit(g, x):
    """A gradient shaped and typed like its input ``x``, an array of its own: a fresh result as it
    is; an input or a view of one, or a broadcast, copied."""
    g = _sum_to(g, x.shape)
    return g if _writable(g, x.shape, x.dtype) else np.array(np.broadcast_to(g, x.shape), dtype=x.dtype)


def _own(value, grads):
    """The gradients, each an array of its own: one that shares memory with the value or with an
    earlier gradient (one temporary returned twice, as for exp(x) unreduced) is copied."""
    seen = {_buffer(value)}  # arrays over different buffers cannot share memory: one pass, not one per pair
    for name, g in grads.items():
        if _buffer(g) in seen:
            grads[name] = g = g.copy()
        seen.add(_buffer(g))
    return grads


def _buffer(a):
    """The id of the array that owns ``a``'s memory (``a`` itself, or the base its views lead to)."""
    while getattr(a, "base", None) is not None:  # views, and broadcast_to's wrapper of its operand
        a = a.base
    return id(a)


def _into(ufunc, x, *rest):
    """``ufunc(x, *rest)`` written over ``x``, which the printer passes only when ``x`` is a
    temporary of the expression being evaluated. A fresh full-size array costs the page faults of
    memory the kernel must zero, often more than the arithmetic; NumPy reuses temporaries of
    operators (``a*b + c``) but not of function calls."""
    dtype = np.result_type(x, *rest)
    if dtype.kind == "f" and _writable(x, np.broadcast_shapes(*(np.shape(a) for a in (x, *rest))), dtype):
        return ufunc(x, *rest, out=x)
    return ufunc(x, *rest)


def _where(condition, x, y, scratch=""):
    """``np.where`` without a branch per element: it selects bit patterns (NaNs and infinities
    pass unchanged). ``np.where`` mispredicts on masks that alternate at random, as residuals do:
    14 ms against 4 for 4M float32 elements. ``scratch``: "x" or "y", a temporary to write over."""
    dt = np.result_type(x, y)
    if dt.kind != "f" or dt.itemsize > 8:
        return np.where(condition, x, y)
    bits = np.dtype(f"i{dt.itemsize}")
    mask = np.asarray(condition).astype(bits)
    np.negative(mask, out=mask)  # all ones where the condition holds
    x, y = np.asarray(x, dt), np.asarray(y, dt)
    shape = np.broadcast_shapes(mask.shape, x.shape, y.shape)
    if scratch == "y":  # x where the condition holds, else y: y ^ ((x ^ y) & mask) = x ^ ((x ^ y) & ~mask)
        np.invert(mask, out=mask)
        x, y = y, x
    keep = y.view(bits)
    if scratch and _writable(x, shape, dt):
        out = x.view(bits)
        out ^= keep
    else:
        out = np.bitwise_xor(x.view(bits), keep)
    if out.shape == shape:
        out &= mask
    else:
        out = np.bitwise_and(out, mask)
    out ^= keep
    return out.view(dt)


def _by_rows(fn, inputs, labels, min_rank, reduction, block):
    """``fn(**inputs)`` (a value, or a value and a dict of gradients), a block of about ``block``
    elements' rows at a time, for a loss that is the mean (or the sum) over rows of terms each
    computed from its own row (lossdsl/blocking.py): a block's temporaries stay in cache and reuse
    memory, where each whole-array temporary costs fresh pages. The inputs must share their rows
    (leading axis) and, the float ones, a rank of at least ``min_rank``; if not, or if they are
    small, the whole arrays are used."""
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    n, rows = _rows_per_block(arrays, labels, min_rank, block)
    if not rows:
        return fn(**inputs)
    total, grads = 0.0, {}
    try:
        for start in range(0, n, rows):
            part = fn(**{k: a[start:start + rows] for k, a in arrays.items()})
            value, block_grads = part if isinstance(part, tuple) else (part, {})
            stop = start + rows if start + rows < n else n
            share = (stop - start) / n if reduction == "mean" else 1
            total += float(value) * share
            for k, g in block_grads.items():
                if k not in grads:
                    grads[k] = np.empty((n,) + g.shape[1:], g.dtype)
                np.multiply(g, share, out=grads[k][start:stop])
    except (ValueError, TypeError, IndexError):
        return fn(**inputs)  # the error as the whole arrays raise it (their range, not a block's)
    value = np.asarray(total, dtype=value.dtype)
    return (value, grads) if isinstance(part, tuple) else value


def _rows_per_block(arrays, labels, min_rank, block):
    """(the row count, the rows in a block), or (0, 0) where the inputs do not split."""
    floats = [a for k, a in arrays.items() if k not in labels]
    if not floats or floats[0].ndim < min_rank:
        return 0, 0
    n, ndim, size = floats[0].shape[0], floats[0].ndim, 0
    for k, a in arrays.items():
        if a.ndim < 1 or a.shape[0] != n or (k not in labels and a.ndim != ndim):
            return 0, 0
        size = size if size > a.size else a.size
    if size < 2 * block or n < 2:
        return 0, 0
    return n, (block * n // size) or 1


def _inside(x, lo, hi):
    """The derivative of clip(x, lo, hi) (see runtime._inside) as one mask: the strict inside, then
    the bounds and NaNs, which are rare, set only where they occur. Where nothing is clipped, as is
    usual (a probability clipped to [1e-7, 1 - 1e-7]), a 0-d 1, found by the min and the max; they
    also tell which bound can be met and whether there is a NaN (both are NaN then), so that the
    passes that look for those run only where they can find something."""
    x = np.asarray(x)
    dt = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    if not x.size:
        return np.ones(x.shape, dt)
    least, most = x.min(), x.max()
    if lo < least and most < hi:  # False for NaN
        return np.ones((), dt)
    mask = np.greater(x, lo)
    mask &= np.less(x, hi)
    out = mask.astype(dt)
    nan = np.isnan(least)
    for bound, reached in ((lo, least <= lo), (hi, most >= hi)):
        if nan or reached:
            np.copyto(out, 0.5, where=np.equal(x, bound))
    if nan:
        np.copyto(out, np.nan, where=np.isnan(x))
    return out


def _sigmoid(x):
    # e^min(x, 0) / (1 + e^-|x|): no overflow, no branch (np.where mispredicts, see _where);
    # evaluated in place, two fresh arrays rather than four; min and max with a number as a
    # one-sided np.clip, as the printer writes them (np.minimum has no fast loop for a number)
    e = _into(np.exp, -np.abs(x))
    e += 1
    s = _into(np.exp, np.clip(x, -np.inf, 0))
    s /= e
    return s


def _softplus(x):
    # max(x, 0) + log1p(e^-|x|): no overflow; ten times faster than np.logaddexp(0, x); in place
    t = _into(np.log1p, _into(np.exp, -np.abs(x)))
    t += np.clip(x, 0, np.inf)
    return t
