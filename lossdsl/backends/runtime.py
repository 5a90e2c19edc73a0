"""Array helpers shared by the backends, written against ``xp`` (NumPy's API).

A backend's own runtime module overrides a helper by defining one of the same name, and names in
its ``NUMPY_NAMES`` what stands in for a NumPy function its array library lacks or spells otherwise
(torch's ``unsqueeze`` for ``expand_dims``). The few helpers below that only say how a backend differs
(``_typed``, ``_is_integer``, ``_scalar``, ``_traced``, ``_extremes``, ``_scan``, ``_bincount``) are those overrides'
NumPy forms; everything else, CTC's dynamic programme included, is written once.

Generated modules copy the helpers they use (backends/copying.py), with ``xp`` printed as the
backend's own module alias (``np``, ``jnp`` or ``torch``), so a generated module imports nothing but
its array library. NumPy's module itself also calls some of these in-process (compiled.py's checks).
"""

import numpy as xp


def _typed(x, dtype=None):
    """A Python number as an array of ``dtype``, the loss's float dtype (broadcast as it is,
    NumPy would make it float64 and promote every float32 array it meets)."""
    return x if dtype is None or hasattr(x, "dtype") else xp.asarray(x, dtype=dtype)


def _is_integer(dtype):
    """Whether ``dtype`` holds integers (bool does not)."""
    return xp.issubdtype(dtype, xp.integer)


def _scalar(x):
    """A 0-d array as an error message shows it."""
    return x


def _from_zero_to(x, upper, strict):
    """Whether the values of ``x`` surely lie in [0, upper] (or [0, upper)) by one quick test; False
    where this backend has none, or the test is unsure (the caller then checks exactly)."""
    return False


def _traced(x):
    """Whether ``x``'s values are unknown (a JAX tracer under jit; the JAX runtime says which)."""
    return False


def _as_index(x, name):
    x = xp.asarray(x)
    if not _is_integer(x.dtype):
        raise TypeError(f"input '{name}' holds integer labels, but its dtype is {x.dtype}")
    return x


def _sum_to(x, shape, full=(), dtype=None):
    """``x`` broadcast against ``shape`` and ``full``, then summed down to ``shape``."""
    if not full and isinstance(shape, tuple) and getattr(x, "shape", None) == shape:  # most often: an array of that shape, as it is
        return x
    x, shape = _typed(x, dtype), tuple(shape)
    if xp.shape(x) == shape and not full:  # the common case, decided before any broadcasting
        return x
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


def _log_softmax(x, axis):
    # the shifted logits minus their logsumexp: x - logsumexp(x) would lose the low digits of both
    # at logits of 1000 (float32's ulp there is 6e-5)
    m = xp.max(x, axis=axis, keepdims=True)
    s = x - xp.where(xp.isfinite(m), m, 0)
    return s - xp.log(xp.sum(xp.exp(s), axis=axis, keepdims=True))


def _extremum_share(x, axis, kind):
    """1/k where ``x`` attains its max (``kind="max"``) or min over ``axis`` k times, else 0."""
    best = (xp.amax if kind == "max" else xp.amin)(x, axis=axis, keepdims=True)
    hit = xp.asarray(x == best, dtype=x.dtype)  # integers divide to floats
    return hit / xp.sum(hit, axis=axis, keepdims=True)


def _inside(x, lo, hi):
    """The derivative of clip(x, lo, hi): 1 inside, 1/2 at either bound (each side of a tie gets
    half, as for maximum and minimum), 0 outside, NaN for NaN."""
    one = xp.ones_like(x)
    return xp.where((x > lo) & (x < hi), one, xp.where((x == lo) | (x == hi), one / 2, xp.where(x == x, 0 * one, x)))


def _count(shape, axis):
    """How many elements a reduction over ``axis`` (or all of them) combines; NaN for none, so that
    the gradient of a mean of nothing (which is NaN) is NaN times an empty array, not 1/0."""
    n = _dim(shape, axis)
    return n if n else float("nan")


def _dim(shape, axis, label="an array"):
    """The length of ``axis`` of ``shape`` (None: its element count) as a Python int: a shape is
    static under jit, so a constructor sized by it is too."""
    if axis is None:
        n = 1
        for d in shape:
            n *= d
        return n
    if isinstance(axis, tuple):  # a reduction over several axes
        n = 1
        for a in axis:
            n *= shape[a]
        return n
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"size(): axis {axis} is out of range for {label}, which has {len(shape)} axes")
    return shape[axis]


def _size(shape, axis, dtype, label):
    """``size(x, axis)`` as a number of the loss's dtype, for arithmetic."""
    return _typed(_dim(shape, axis, label), dtype)


def _length(n, what):
    """A constructor's length computed from sizes: a whole number >= 0, as a Python int."""
    if n != n // 1 or n < 0:
        raise ValueError(f"{what}: the length must be a whole number >= 0; got {n}")
    return int(n)


def _eye(n, dtype, what):
    n = _length(n, what)
    _check_size(n * n, what)
    return xp.eye(n, dtype=dtype)


def _arange(n, dtype, what):
    """0, 1, ..., n - 1 in the loss's float dtype: exact integers (to 2^24 in float32), and what is
    computed from them (a Gaussian window) in that dtype, where torch would take its default float32."""
    n = _length(n, what)
    _check_size(n, what)
    return xp.arange(n, dtype=dtype)


def _full(n, value, dtype, what):
    n = _length(n, what)
    _check_size(n, what)
    return xp.full((n,), value, dtype=dtype)


def _diag(x):
    """The diagonal of the last two axes, as numpy.diagonal(x, axis1=-2, axis2=-1)."""
    return xp.diagonal(x, 0, -2, -1)


def _diag_vjp(g, shape, dtype=None):
    """Zeros of ``shape`` with ``g`` (broadcastable to its diagonal) on the diagonal of the last two axes."""
    n, m = shape[-2], shape[-1]
    g = xp.broadcast_to(_typed(g, dtype), tuple(shape[:-2]) + (min(n, m),))
    g = xp.expand_dims(g, -1 if n <= m else -2)
    return xp.where(xp.eye(n, m) > 0, g, xp.zeros((), dtype=g.dtype))


def _joined_shape(shapes, axis, stacked):
    """The shape of concat (or stack) of arrays of ``shapes`` along ``axis``."""
    first = tuple(shapes[0])
    if stacked:
        axis = axis % (len(first) + 1)
        return first[:axis] + (len(shapes),) + first[axis:]
    axis = axis % len(first)
    return first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1:]


def _join(parts, axis, stacked, dtype):
    parts = [_typed(p, dtype) for p in parts]
    return xp.stack(parts, axis) if stacked else xp.concatenate(parts, axis)


def _part(g, shapes, index, axis, stacked, dtype=None):
    """Part ``index`` of a cotangent ``g`` of concat (or stack) of arrays of ``shapes``: the slice
    (or the entry) along ``axis`` that the part filled."""
    full = _joined_shape(shapes, axis, stacked)
    g = xp.broadcast_to(_typed(g, dtype), full)
    axis = axis % len(full)
    if stacked:
        return g[(slice(None),) * axis + (index,)]
    start = sum(s[axis] for s in shapes[:index])
    return g[(slice(None),) * axis + (slice(start, start + shapes[index][axis]),)]


def _part_vjp(g, shapes, index, axis, stacked, dtype=None):
    """The adjoint of ``_part``: zeros of the joined shape, with ``g`` in part ``index``'s place."""
    parts = [xp.zeros(tuple(s), dtype=dtype) for s in shapes]
    parts[index] = xp.broadcast_to(_typed(g, dtype), tuple(shapes[index]))
    return _join(parts, axis, stacked, dtype)


# --- differences and windows: diff, roll, pad, correlate (windows.py)

def _window_axis(x, axis, what):
    """``axis`` of ``x`` as a position from 0, checked against its axes."""
    n = xp.ndim(x)
    if not -n <= axis < n:
        raise ValueError(f"{what}: axis {axis} is out of range for an array of {n} axes")
    return axis % n


def _sliced(x, axis, start, stop):
    return x[(slice(None),) * axis + (slice(start, stop),)]


def _diff(x, n, axis):
    axis = _window_axis(x, axis, "diff()")
    if xp.shape(x)[axis] < n:
        raise ValueError(f"diff(): axis {axis} has {xp.shape(x)[axis]} entries, fewer than n = {n}")
    for _ in range(n):
        x = _sliced(x, axis, 1, None) - _sliced(x, axis, None, -1)
    return x


def _roll(x, shift, axis):
    return xp.roll(x, shift, _window_axis(x, axis, "roll()"))


def _pad_sources(n, width, mode):
    """The positions of x that the entries reflect (or edge) pads before and after it copy, as
    numpy.pad: reflection about the end entries, repeated for widths beyond the axis."""
    if n == 0:
        raise ValueError(f"pad(): mode {mode!r} copies entries, and the axis has none")
    period = 2 * (n - 1)

    def source(p):
        if mode == "edge" or n == 1:
            return min(max(p, 0), n - 1)
        m = p % period
        return m if m < n else period - m
    return [source(p) for p in range(-width[0], 0)], [source(p) for p in range(n, n + width[1])]


def _pad(x, width, axis, mode, value):
    axis = _window_axis(x, axis, "pad()")
    shape = tuple(xp.shape(x))
    if mode == "constant":
        edges = [xp.full(shape[:axis] + (w,) + shape[axis + 1:], value, dtype=x.dtype) for w in width]
    else:
        key = (slice(None),) * axis
        edges = [x[key + (where,)] if where else _sliced(x, axis, 0, 0)
                 for where in _pad_sources(shape[axis], width, mode)]
    return xp.concatenate([edges[0], x, edges[1]], axis)


def _pad_vjp(g, shape, width, axis, mode, dtype=None):
    """The adjoint of ``_pad``: the middle of ``g``, plus (reflect, edge) each padded entry's
    cotangent added at the position it copies."""
    shape = tuple(shape)
    axis = axis % len(shape)
    n = shape[axis]
    g = xp.broadcast_to(_typed(g, dtype), shape[:axis] + (width[0] + n + width[1],) + shape[axis + 1:])
    out = _sliced(g, axis, width[0], width[0] + n)
    if mode != "constant":
        sources = _pad_sources(n, width, mode)
        for part, where in zip((_sliced(g, axis, 0, width[0]), _sliced(g, axis, width[0] + n, None)), sources):
            if where:
                spread = xp.asarray([[1.0 if i == j else 0.0 for j in range(n)] for i in where], dtype=g.dtype)
                out = out + xp.moveaxis(xp.matmul(xp.moveaxis(part, axis, -1), spread), -1, axis)
    return out


def _correlate_pads(n, m, mode):
    """The zeros ``mode`` pads an axis of length n with before a kernel of length m slides along it
    (valid: none; same: numpy's, m // 2 before; full and same_t: the adjoints' of valid and same)."""
    if m == 0:
        raise ValueError("correlate(): the kernel is empty")
    if m > n and mode in ("valid", "same"):
        raise ValueError(f"correlate(): the kernel's {m} entries are more than the {n} along the axis "
                         f"(mode {mode!r} slides the kernel within it)")
    return {"valid": (0, 0), "same": (m // 2, m - 1 - m // 2), "full": (m - 1, m - 1),
            "same_t": (m - 1 - m // 2, m // 2)}[mode]


def _correlate_lines(x, kernel_shape, axis, mode):
    """``x`` zero-padded as ``mode`` pads it, its axis, and the length of the correlation."""
    axis = _window_axis(x, axis, "correlate()")
    if len(kernel_shape) != 1:
        raise ValueError(f"correlate(): the kernel must be a 1-D array, got one of {len(kernel_shape)} axes")
    n, m = xp.shape(x)[axis], kernel_shape[0]
    pads = _correlate_pads(n, m, mode)
    if pads != (0, 0):
        x = _pad(x, pads, axis, "constant", 0.0)
    return x, axis, n + pads[0] + pads[1] - m + 1


def _correlate(x, kernel, axis, mode, flip):
    """Each line of ``x`` along ``axis`` correlated with the 1-D ``kernel`` (reversed if ``flip``:
    a convolution), as numpy.correlate(line, kernel, mode)."""
    x, axis, length = _correlate_lines(x, tuple(xp.shape(kernel)), axis, mode)
    m = xp.shape(kernel)[0]
    out = None
    for j in range(m):
        term = kernel[m - 1 - j if flip else j] * _sliced(x, axis, j, j + length)
        out = term if out is None else out + term
    return out


def _correlate_kernel_vjp(g, x, kernel_shape, axis, mode, flip):
    """The gradient of ``_correlate(x, kernel, ...)`` in the kernel, for the cotangent ``g``."""
    x, axis, length = _correlate_lines(x, tuple(kernel_shape), axis, mode)
    m = kernel_shape[0]
    parts = [xp.sum(g * _sliced(x, axis, j, j + length)) for j in range(m)]
    return xp.stack(parts[::-1] if flip else parts)


def _stop_gradient(x):
    """x itself; the symbolic gradient treats it as a constant (JAX and torch detach it too)."""
    return x


def _expand_dims(g, shape, axis, dtype=None):
    """A reduction's cotangent (broadcastable to its output ``shape``) with the axis put back."""
    g = xp.broadcast_to(_typed(g, dtype), shape)
    axes = axis if isinstance(axis, tuple) else (axis,)
    for a in sorted(a % (len(shape) + len(axes)) for a in axes):  # torch's unsqueeze takes one axis
        g = xp.expand_dims(g, a)
    return g


def _moveaxis(x, shape, source, destination, ndim, label, dtype=None):
    """``x`` (broadcast to ``shape``: a cotangent may be smaller) with axes ``source`` moved to
    ``destination``, as numpy.moveaxis; ``ndim``: the axes ``transpose(x, axes)`` requires."""
    x = xp.broadcast_to(_typed(x, dtype), tuple(shape))
    n = len(shape)
    if ndim is not None and n != ndim:
        raise ValueError(f"transpose(): {label} has {n} axes, but axes= names {ndim}")
    for axis in source + destination:
        if not -n <= axis < n:
            raise ValueError(f"axis {axis} is out of range for {label}, which has {n} axes")
    if len({a % n for a in source}) < len(source):  # swapaxes of one axis with itself
        return x
    return xp.moveaxis(x, source, destination)


def _reshape_length(n, label):
    if n != n // 1 or n < 0:
        raise ValueError(f"reshape(): a length computed from sizes must be a whole number >= 0; got {n} for {label}")
    return int(n)


def _reshape(x, spec, dynamic, label):
    """``x`` reshaped to ``spec``, whose "d" entries are the run-time lengths ``dynamic`` in order;
    an error naming the input where its elements do not fill that shape."""
    lengths = iter(dynamic)
    target = tuple(_reshape_length(next(lengths), label) if n == "d" else n for n in spec)
    shape, known = tuple(xp.shape(x)), 1
    for n in target:
        known *= 1 if n == -1 else n
    elements = _dim(shape, None)
    if (elements != known) if -1 not in target else (known == 0 or elements % known):
        raise ValueError(f"reshape(): {label} has shape {shape} ({elements} elements), which does not fit "
                         f"the shape {target}")
    return xp.reshape(x, target)


def _flatten(x, start, label):
    """The axes of ``x`` from ``start`` on merged into one, as torch.flatten(x, start)."""
    shape = tuple(xp.shape(x))
    n = max(len(shape), 1)
    if not -n <= start < n:
        raise ValueError(f"flatten(): axis {start} is out of range for {label}, which has {len(shape)} axes")
    start %= n
    return xp.reshape(x, shape[:start] + (_dim(shape[start:], None),))


def _reshape_like(g, source, target, dtype=None):
    """A cotangent ``g`` (broadcast to ``source``, a reshape's output shape) reshaped to ``target``."""
    return xp.reshape(xp.broadcast_to(_typed(g, dtype), tuple(source)), tuple(target))


def _bounds_text(lower, upper, strict):
    """How a message reads bounds: "> 0", "<= 1", "in [0, 1]", "in (0, 0.5]"; ``strict``: whether
    each bound is excluded."""
    signs = (">" if strict[0] else ">=", "<" if strict[1] else "<=")
    if lower is None or upper is None:
        return "any number" if lower is None and upper is None else (
            f"{signs[0]} {lower}" if upper is None else f"{signs[1]} {upper}")
    return f"in {'(' if strict[0] else '['}{lower}, {upper}{')' if strict[1] else ']'}"


def _outside(lo, hi, lower, upper, strict):
    """Whether values from ``lo`` to ``hi`` leave the bounds (NaN does)."""
    return (lower is not None and not (lo > lower if strict[0] else lo >= lower)) or (
        upper is not None and not (hi < upper if strict[1] else hi <= upper))


def _extremes(x):
    """The least and the greatest value of a non-empty ``x`` (NaN where it holds one)."""
    return xp.min(x), xp.max(x)


def _within(x, lower, upper, strict, integer, label, hint=None):
    """``x`` itself, after checking its values lie within the bounds (and are integers); under jit,
    where the values are unknown, the dtype only (CompiledLoss checks the values beforehand).
    ``hint``: what the message adds, such as what to pass instead."""
    dtype = xp.asarray(x).dtype
    if integer and not _is_integer(dtype):
        raise TypeError(f"{label} must hold integers; got dtype {dtype}")
    if xp.size(x) and not _traced(x) and not (lower == 0 and not strict[0] and _from_zero_to(x, upper, strict[1])):
        lo, hi = _extremes(x)
        if _outside(lo, hi, lower, upper, strict):
            raise ValueError(f"{label} must be {_bounds_text(lower, upper, strict)}; got values from "
                             f"{_scalar(lo)} to {_scalar(hi)}" + (f"; {hint}" if hint else ""))
    return x


def _in_range(stats, lower, upper, strict=(False, False)):
    """Whether (min, max, size) statistics of an array lie in [lower, upper] (None: no bound; a bound
    ``strict`` excludes its value); an empty array does, NaN does not. For traced values, where
    ``_within`` cannot check."""
    lo, hi, size = stats
    ok = True
    if size and lower is not None:
        ok = ok & ((lo > lower) if strict[0] else (lo >= lower))
    if size and upper is not None:
        ok = ok & ((hi < upper) if strict[1] else (hi <= upper))
    return ok


def _nan_unless(ok, x):
    """``x``, or NaN throughout where ``ok`` (one flag) is false: traced code cannot raise, and a
    failed check must not pass for a plausible number."""
    return xp.where(ok, x, xp.nan)


def _per_sample_shape(w_shape, shape, label="the weights"):
    """How weights of ``w_shape`` line up with losses of ``shape``, as Keras matches sample weights:
    trailing axes of length 1 beyond the losses' rank are dropped ((N, 1) weights on N per-sample
    losses), then the weights take the leading axes and must broadcast to ``shape`` without growing
    it: never an outer product of weights and losses."""
    w_shape, shape = tuple(w_shape), tuple(shape)
    matched = w_shape
    while len(matched) > len(shape) and matched[-1] == 1:
        matched = matched[:-1]
    padded = matched + (1,) * (len(shape) - len(matched))
    if len(padded) != len(shape) or any(a != 1 and a != b for a, b in zip(padded, shape)):
        raise ValueError(f"{label} holds weights of shape {w_shape}, which do not match the losses they weigh, "
                         f"of shape {shape}: give one weight per sample (shape {shape[:1]} or {shape[:1] + (1,)}), "
                         f"one per loss (shape {shape}), or a single number")
    return padded


def _per_sample(w, shape, label="the weights"):
    """Weights matched to losses of ``shape`` (see _per_sample_shape) and broadcast to it."""
    w = _typed(w)
    return xp.broadcast_to(xp.reshape(w, _per_sample_shape(xp.shape(w), shape, label)), tuple(shape))


def _per_sample_vjp(g, w_shape, shape):
    padded = _per_sample_shape(w_shape, shape)
    g = _sum_to(xp.broadcast_to(_typed(g), tuple(shape)), padded)
    return xp.reshape(g, tuple(w_shape))


def _check_labels(labels, n, label):
    """Under jit, where the values are unknown, nothing (CompiledLoss checks them beforehand); nor
    without a ``label`` (a loss compiled with checks=False)."""
    if label is not None and xp.size(labels) and not _traced(labels) and (xp.min(labels) < 0 or xp.max(labels) >= n):
        raise ValueError(f"{label} must hold class indices in [0, {n}); got values from "
                         f"{_scalar(xp.min(labels))} to {_scalar(xp.max(labels))}")


def _constant_labels(labels, shape, axis, label):
    """A constant label (checked >= 0 at compile time) against the class count, a shape and so
    known under jit too, as one label per row of an array of ``shape`` gathered along ``axis``."""
    n = shape[axis]
    if labels >= n:
        raise ValueError(f"{label} must hold class indices in [0, {n}); got the constant {labels}")
    rows = list(shape)
    del rows[axis]
    return xp.full(tuple(rows), labels)


def _check_size(elements, label):
    """Before an array whose size the inputs set is allocated: at most 2^28 elements (2 GiB of
    float64), rather than a MemoryError or an out-of-memory kill part way through."""
    if elements > 1 << 28:
        raise ValueError(f"{label}: the result would hold {elements} elements, more than 2^28 (2 GiB of "
                         "float64); pass fewer labels or classes at a time")


def _class_axis(x_shape, labels_shape, axis, label):
    """Labels shaped like the values without another axis than the one the classes are taken along,
    the batch axis kept (NCHW logits, where classes are last): the one message that says where
    classes go."""
    rest = list(x_shape)
    del rest[axis]
    if len(labels_shape) != len(rest) or tuple(labels_shape) == tuple(rest):
        return
    for k in range(1, len(x_shape)):
        other = list(x_shape)
        del other[k]
        if tuple(other) == tuple(labels_shape):
            where = "the last axis" if axis in (-1, len(x_shape) - 1) else f"axis {axis}"
            raise ValueError(f"{label} has shape {tuple(labels_shape)}: the values' shape {tuple(x_shape)} "
                             f"without axis {k}, but the classes are on {where}; transpose the logits so "
                             f"that classes are on {where} (numpy.moveaxis(logits, {k}, {axis})), or keep "
                             f"them and pass axis={k} (sparse_cce and nll take the class axis)")


def _take(x, labels, axis, label):
    if isinstance(labels, int):
        labels = _constant_labels(labels, xp.shape(x), axis, label)
    else:
        _class_axis(xp.shape(x), xp.shape(labels), axis, label)
        _check_labels(labels, xp.shape(x)[axis], label)
    return xp.squeeze(xp.take_along_axis(x, xp.expand_dims(labels, axis), axis=axis), axis=axis)


def _take_vjp(g, labels, shape, axis):
    axis = axis % len(shape) - len(shape)  # counted from the right, where broadcasting aligns
    if isinstance(labels, int):
        labels = _constant_labels(labels, tuple(shape), axis, "")
    classes = xp.reshape(xp.arange(shape[axis]), (shape[axis],) + (1,) * (-axis - 1))
    g = _typed(g)
    g = xp.broadcast_to(g, xp.broadcast_shapes(xp.shape(g), xp.shape(labels)))
    return xp.where(xp.expand_dims(labels, axis) == classes, xp.expand_dims(g, axis), 0)


def _one_hot(labels, depth, dt, label):
    if isinstance(labels, int):  # a constant, checked in [0, depth) at compile time
        return xp.asarray(xp.arange(depth) == labels, dtype=dt)
    _check_labels(labels, depth, label)
    _check_size(xp.size(labels) * depth, label)
    return xp.asarray(xp.expand_dims(labels, -1) == xp.arange(depth), dtype=dt)


def _matmul_2d(g, a, b, shape):
    """``a @ b``'s operands and its cotangent ``g`` (broadcast to ``shape``) with 1-D operands made 2-D."""
    g = xp.broadcast_to(_typed(g), shape)
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


# --- CTC (connectionist temporal classification): forward-backward over time, vectorised over the
# batch; static shapes and length masks throughout, so that under jit it traces once


def _scan(step, carry, xs, reverse=False):
    """jax.lax.scan (the JAX runtime's) as a loop: ``carry, y = step(carry, frame t of xs)`` over the
    leading axis (backwards with ``reverse``); the last carry and the y of every frame, each y shaped
    and typed like a frame of ``xs[0]``."""
    ys = xp.empty_like(xs[0])
    for t in range(len(ys) - 1, -1, -1) if reverse else range(len(ys)):
        carry, ys[t] = step(carry, tuple(x[t] for x in xs))
    return carry, ys


def _bincount(indices, weights, n):
    """The sum of ``weights`` at each of the ``n`` bins that ``indices`` (flat, non-negative) name."""
    return xp.bincount(indices, weights, minlength=n)


def _ctc_lengths(log_probs, targets, input_lengths, target_lengths, blank, labels):
    """Check the shapes (static, so also under jit) and, where the values are concrete, the labels and
    lengths; the lengths as (B,), and whether each sample's inputs are valid (for traced values)."""
    checked = labels is not None
    labels = labels or ("log_probs", "targets", "input_lengths", "target_lengths")
    if xp.ndim(log_probs) != 3:
        raise ValueError(f"{labels[0]} must hold log-probabilities shaped (T, B, C); got shape {xp.shape(log_probs)}")
    T, B, C = xp.shape(log_probs)
    if xp.ndim(targets) != 2 or xp.shape(targets)[0] != B:
        raise ValueError(f"{labels[1]} must hold padded targets shaped (B, S) with B = {B} (log_probs is "
                         f"(T, B, C) = {xp.shape(log_probs)}); got shape {xp.shape(targets)}")
    if not 0 <= blank < C:
        raise ValueError(f"blank={blank} is not a class of {labels[0]}, which has C = {C} classes")
    S = xp.shape(targets)[1]
    # without labels (checks=False) the values go unchecked, as under jit: NaN for a sample out of range
    concrete = checked and not any(_traced(x) for x in (targets, input_lengths, target_lengths))
    out, ok = [], xp.ones((B,), dtype=bool)
    for x, top, label, what in ((input_lengths, T, labels[2], "T, the frames of log_probs"),
                                (target_lengths, S, labels[3], "S, the columns of targets")):
        if isinstance(x, int):  # a constant, >= 0 by compile time; its bound is a shape, known under jit too
            if x > top:
                raise ValueError(f"{label} must lie in [0, {top}] ({what}); got the constant {x}")
            x = xp.full((B,), x)
        if xp.ndim(x) > 1 or xp.size(x) not in (1, B):
            raise ValueError(f"{label} must hold one length per sample, shape ({B},); got shape {xp.shape(x)}")
        x = xp.broadcast_to(x, (B,))
        bad = (x < 0) | (x > top)
        if concrete and xp.any(bad):
            b = int(xp.argmax(xp.asarray(bad, dtype=xp.int8)))  # torch's argmax takes no bool
            raise ValueError(f"{label} must lie in [0, {top}] ({what}); got {_scalar(x[b])} for sample {b}")
        out.append(x)
        ok = ok & ~bad
    used = xp.arange(S) < out[1][:, None]
    bad = used & ((targets < 0) | (targets >= C) | (targets == blank))
    if concrete and xp.any(bad):
        b, s = divmod(int(xp.argmax(xp.asarray(bad, dtype=xp.int8))), S)
        raise ValueError(f"{labels[1]} must hold class labels in [0, {C}) other than blank={blank} in the first "
                         f"target_lengths[b] entries of each row b; got {_scalar(targets[b, s])} at sample {b}, "
                         f"position {s}")
    return out[0], out[1], ok & ~xp.any(bad, axis=1)


def _ctc_passes(log_probs, targets, input_lengths, target_lengths, blank, labels):
    """Whether every sample's targets and lengths are in range (shapes raise, as always)."""
    return xp.all(_ctc_lengths(log_probs, targets, input_lengths, target_lengths, blank, labels)[2])


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
    before = xp.take_along_axis(last, xp.clip(2 * target_lengths - 1, 0, None)[:, None], axis=1)[:, 0]
    return xp.logaddexp(end, xp.where(target_lengths > 0, before, -xp.inf))


def _ctc_alpha(lp, skip, input_lengths):
    """Forward variables log alpha[t, b, s] (emission at t included), and each sample's alpha at its
    last frame t = input_length - 1 (before any frame, the empty prefix: 0 at s = 0)."""
    T, B, L = xp.shape(lp)
    start = xp.broadcast_to(xp.asarray(xp.where(xp.arange(L) == 0, 0.0, -xp.inf), dtype=lp.dtype), (B, L))

    def step(carry, frame):
        a, last = carry
        lp_t, t = frame
        a = xp.logaddexp(xp.logaddexp(a, _ctc_shift(a, 1)), xp.where(skip, _ctc_shift(a, 2), -xp.inf)) + lp_t
        return (a, xp.where((t < input_lengths)[:, None], a, last)), a

    (_, last), alphas = _scan(step, (start, start), (lp, xp.arange(T)))
    return alphas, last


def _ctc_beta(lp, skip, final, input_lengths):
    """Backward variables log beta[t, b, s] (emission at t included), -inf from t = input_length on."""
    T, B, L = xp.shape(lp)
    skip_next = xp.concatenate([skip, xp.zeros((B, 2), dtype=bool)], axis=1)[:, 2:]  # s + 2 skips to s
    start = xp.asarray(xp.where(final, 0.0, -xp.inf), dtype=lp.dtype)

    def step(b, frame):
        lp_t, t = frame
        rec = xp.logaddexp(xp.logaddexp(b, _ctc_shift(b, -1)), xp.where(skip_next, _ctc_shift(b, -2), -xp.inf))
        b = xp.where((t == input_lengths - 1)[:, None], start,
                     xp.where((t < input_lengths - 1)[:, None], rec, -xp.inf)) + lp_t
        return b, b

    return _scan(step, xp.full((B, L), -xp.inf, dtype=lp.dtype), (lp, xp.arange(T)), reverse=True)[1]


def _ctc_nll(log_probs, targets, input_lengths, target_lengths, blank, zero_infinity, labels):
    """Per-sample CTC negative log-likelihood (B,); +inf where no alignment fits (0 with zero_infinity);
    NaN under jit for a sample whose targets or lengths are out of range."""
    input_lengths, target_lengths, ok = _ctc_lengths(log_probs, targets, input_lengths, target_lengths, blank,
                                                     labels)
    lp, skip, final, ext = _ctc_tables(log_probs, targets, target_lengths, blank)
    nll = 0.0 - _ctc_loglik(_ctc_alpha(lp, skip, input_lengths)[1], target_lengths)
    nll = xp.where(xp.isposinf(nll), 0.0, nll) if zero_infinity else nll
    return xp.where(ok, nll, xp.nan)


def _ctc_grad(ct, log_probs, targets, input_lengths, target_lengths, blank, zero_infinity, labels):
    """ct[b] * d nll[b] / d log_probs[t, b, c] = -ct[b] * (the posterior probability that frame t of
    sample b emits class c), by forward-backward. 0 from t = input_length on; for an infinite loss NaN,
    or 0 with zero_infinity; NaN for out-of-range targets or lengths under jit."""
    input_lengths, target_lengths, ok = _ctc_lengths(log_probs, targets, input_lengths, target_lengths, blank,
                                                     labels)
    T, B, C = xp.shape(log_probs)
    lp, skip, final, ext = _ctc_tables(log_probs, targets, target_lengths, blank)
    alphas, last = _ctc_alpha(lp, skip, input_lengths)
    nll = 0.0 - _ctc_loglik(last, target_lengths)
    ab = alphas + _ctc_beta(lp, skip, final, input_lengths)
    reached = ab > -xp.inf
    occupancy = xp.where(reached, xp.exp(ab - xp.where(reached, lp, 0) + nll[:, None]), 0)
    cell = (xp.arange(T)[:, None, None] * B + xp.arange(B)[:, None]) * C + ext  # (t, b, ext[b, s]), flat
    posterior = xp.reshape(_bincount(xp.reshape(cell, (-1,)), xp.reshape(occupancy, (-1,)), T * B * C), (T, B, C))
    ct = xp.broadcast_to(xp.asarray(ct, dtype=lp.dtype), (B,))
    g = -xp.asarray(posterior, dtype=lp.dtype) * ct[:, None]
    g = xp.where(xp.isposinf(nll)[:, None], 0.0 if zero_infinity else xp.nan, g)
    return xp.where(ok[:, None], g, xp.nan)


# --- indexing and slicing: x[i, :, 1:3, ...] with NumPy's meaning


def _index_number(v, label):
    """A run-time index or slice bound: one integer (a traced one stays an array, which JAX indexes)."""
    if isinstance(v, int):  # from size(...): a shape's length
        return v
    if xp.ndim(v) != 0:  # a shape: known under jit too
        raise ValueError(f"an index into {label} must be a single integer, got an array of shape "
                         f"{tuple(xp.shape(v))}; take(x, labels, axis=k) gathers one entry per label")
    if _traced(v):
        return xp.asarray(v).astype(int)
    if v != int(v):
        raise ValueError(f"an index into {label} must be an integer, got {_scalar(v)}")
    return int(v)


def _index_key(spec, dynamic, shape, label):
    """The subscript that ``spec`` (("i", k), ("s", start, stop, step) or ("e",), each number an int,
    None, or "d" for the next of ``dynamic``) stands for; constant positions checked against
    ``shape``, which is known under jit too."""
    values = iter(dynamic)

    def number(v, bound=False):
        if v != "d":
            return v
        v = next(values)
        if bound and _traced(v):
            raise ValueError(f"a slice of {label} needs bounds known while tracing under jax.jit (constants, or "
                             "shapes), not a run-time value; an integer position may be one")
        return _index_number(v, label)

    named = sum(item[0] != "e" for item in spec)
    if named > len(shape):
        raise ValueError(f"{label} has {len(shape)} axes, but the index names {named}")
    key, axis = [], 0
    for k, item in enumerate(spec):
        if item[0] == "e":
            key.append(Ellipsis)
            axis = len(shape) - sum(later[0] != "e" for later in spec[k + 1:])
            continue
        if item[0] == "s":
            key.append(slice(*(number(v, bound=True) for v in item[1:])))
        else:
            position, n = number(item[1]), shape[axis]
            if isinstance(position, int) and not -n <= position < n:
                raise ValueError(f"index {position} is out of range for axis {axis} of {label}, of length {n}")
            key.append(position)
        axis += 1
    return tuple(key)


def _gather(x, key):
    return x[key]


def _scatter(z, key, g):
    """Zeros ``z`` with ``g`` written at ``key`` (basic indexing reaches each entry once)."""
    z[key] = g
    return z


def _index(x, spec, dynamic, label):
    return _gather(x, _index_key(spec, dynamic, xp.shape(x), label))


def _index_vjp(g, shape, out_shape, spec, dynamic, dtype=None):
    """The cotangent ``g`` of ``x[key]`` (broadcastable to its shape) in zeros shaped like ``x``."""
    g = xp.broadcast_to(_typed(g, dtype), tuple(out_shape))
    key = _index_key(spec, dynamic, tuple(shape), "the cotangent")
    return _scatter(xp.zeros(tuple(shape), dtype=g.dtype), key, g)


def _index_check(position, shape, axis, label, into):
    """A run-time index, after checking it lies within the axis (under jit, where its value is
    unknown, nothing: CompiledLoss checks the statistics beforehand)."""
    if not _traced(position) and axis < len(shape):
        _check_position(position if isinstance(position, int) else xp.asarray(position), shape[axis], axis, label,
                        into)
    return position


def _check_position(positions, n, axis, label, into):
    """``positions`` (a Python int from size(...), known under jit too, or an array) within an axis of length n."""
    lo, hi = (positions, positions) if isinstance(positions, int) else (xp.min(positions), xp.max(positions))
    if (isinstance(positions, int) or xp.size(positions)) and (lo < -n or hi >= n):
        raise ValueError(f"{label} is out of range: an index into axis {axis} of {into} must lie in "
                         f"[{-n}, {n}); got {_scalar(hi if hi >= n else lo)}")


def _xlogy(x, y):
    """x*log(y), 0 where x = 0 (unless y is NaN), as scipy.special.xlogy."""
    return xp.where((x == 0) & (y == y), xp.zeros((), dtype=xp.result_type(x, y)), x * xp.log(y))


def _merged_last(x, axis):
    """``x`` with the axes of a reduction over ``axis`` (None: all; an int or a tuple) moved last
    and merged into one, and those axes (non-negative, in order)."""
    nd = xp.ndim(x)
    axes = tuple(range(nd)) if axis is None else tuple(sorted(a % nd for a in (axis if isinstance(axis, tuple) else (axis,))))
    moved = xp.moveaxis(x, axes, tuple(range(nd - len(axes), nd)))
    return xp.reshape(moved, tuple(xp.shape(moved)[:nd - len(axes)]) + (-1,)), axes


def _prod(x, axis, keepdims):
    """The product over ``axis`` (None: all; an int or a tuple), as numpy.prod."""
    flat, axes = _merged_last(x, axis)
    out = xp.prod(flat, -1)
    if keepdims:
        out = xp.reshape(out, tuple(1 if a in axes else n for a, n in enumerate(xp.shape(x))))
    return out


def _unmerged(flat, x, axes):
    """Undoes ``_merged_last``: ``flat`` back in the shape of ``x``."""
    nd, shape = xp.ndim(x), xp.shape(x)
    moved_shape = tuple(shape[a] for a in range(nd) if a not in axes) + tuple(shape[a] for a in axes)
    return xp.moveaxis(xp.reshape(flat, moved_shape), tuple(range(nd - len(axes), nd)), axes)


def _exclusive_products(flat):
    """The products of the entries before and after each one along the last axis."""
    one = xp.ones_like(flat[..., :1])
    before = xp.cumprod(xp.concatenate((one, flat[..., :-1]), -1), -1)
    after = xp.flip(xp.cumprod(xp.flip(xp.concatenate((flat[..., 1:], one), -1), (-1,)), -1), (-1,))
    return before, after


def _prod_others(x, axis):
    """For each entry, the product of the other entries along ``axis``: prod's gradient, from
    exclusive cumulative products from either end, so exact where x holds zeros (prod/x is 0/0)."""
    flat, axes = _merged_last(x, axis)
    before, after = _exclusive_products(flat)
    return _unmerged(before * after, x, axes)


def _prod_others_vjp(ct, x, axis):
    """The adjoint of ``_prod_others`` at ``x``: entry j gets the sum over i != j of ct_i times the
    product of the entries other than i and j, without dividing (zeros present). Scans from either
    end: a_(j+1) = a_j*x_j + ct_j*before_j collects the terms i < j, b likewise the terms i > j."""
    flat, axes = _merged_last(x, axis)
    c = _merged_last(ct * xp.ones_like(x), axis)[0]
    n = xp.shape(flat)[-1]
    if n == 0:
        return xp.zeros_like(x)
    before, after = _exclusive_products(flat)
    zero = 0 * flat[..., 0]
    a, b = [zero], [zero]
    for j in range(n - 1):
        a.append(a[-1] * flat[..., j] + c[..., j] * before[..., j])
        k = n - 1 - j
        b.append(b[-1] * flat[..., k] + c[..., k] * after[..., k])
    return _unmerged(xp.stack(a, -1) * after + before * xp.stack(b[::-1], -1), x, axes)


# --- order statistics and scans (scans.py): along one axis, every other axis independent


def _argsort(x, axis):
    """The stable ascending argsort: ties in their original order."""
    return xp.argsort(x, axis=axis, kind="stable")


def _stable_order(x, axis, descending):
    """The stable argsort of ``x`` along ``axis``, ties in their original order either way (descending:
    the ascending order of the flipped array, flipped back, its positions mapped to ``x``'s)."""
    if not descending:
        return _argsort(x, axis)
    n = xp.shape(x)[axis]
    return (n - 1) - xp.flip(_argsort(xp.flip(x, (axis,)), axis), (axis,))


def _first_k(x, k, axis):
    """The first ``k`` entries of ``x`` along ``axis``."""
    return x[(slice(None),) * (axis % xp.ndim(x)) + (slice(0, k),)]


def _top_count(k, n, axis, label):
    """topk's k (a Python number, from a constant or from sizes): a whole number in [0, n]."""
    if k != k // 1 or not 0 <= k <= n:
        raise ValueError(f"topk(): k must be a whole number from 0 to the length of axis {axis} of {label}, "
                         f"{n}; got {k}")
    return int(k)


def _sort(x, axis, descending):
    return xp.take_along_axis(x, _stable_order(x, axis, descending), axis=axis)


def _topk(x, k, axis, label):
    """The ``k`` largest entries along ``axis``, largest first (as torch.topk(...).values)."""
    k = _top_count(k, xp.shape(x)[axis], axis, label)
    return xp.take_along_axis(x, _first_k(_stable_order(x, axis, True), k, axis), axis=axis)


def _order_gather(y, x, k, axis, descending, dtype=None):
    """``y`` (broadcast to ``x``'s shape) at the first ``k`` positions of ``x``'s stable order."""
    y = xp.broadcast_to(_typed(y, dtype), xp.shape(x))
    return xp.take_along_axis(y, _first_k(_stable_order(x, axis, descending), int(k), axis), axis=axis)


def _order_scatter(g, x, k, axis, descending, dtype=None):
    """Zeros shaped like ``x`` with the cotangent ``g`` of its first ``k`` ordered entries written where
    each came from: padded to the axis's length, then gathered by the inverse permutation."""
    shape, k = list(xp.shape(x)), int(k)
    n, shape[axis] = shape[axis], k
    g = xp.broadcast_to(_typed(g, dtype), tuple(shape))
    if k < n:
        shape[axis] = n - k
        g = xp.concatenate((g, xp.zeros(tuple(shape), dtype=g.dtype)), axis)
    return xp.take_along_axis(g, _argsort(_stable_order(x, axis, descending), axis), axis=axis)


def _scan_along(f, x, axis, reverse):
    """``f(x, axis)``, a scan from the start of the axis, or from its end with ``reverse``."""
    if not reverse:
        return f(x, axis)
    return xp.flip(f(xp.flip(x, (axis,)), axis), (axis,))


def _cumsum(x, shape, axis, reverse, dtype=None):
    """The cumulative sum of ``x`` (broadcast to ``shape``: a cotangent may be smaller)."""
    return _scan_along(xp.cumsum, xp.broadcast_to(_typed(x, dtype), tuple(shape)), axis, reverse)


def _cumprod(x, axis, reverse):
    return _scan_along(xp.cumprod, x, axis, reverse)


def _logcumsum(x, axis):
    """log(cumsum(exp(x))) from the start, by logaddexp at each step: nothing overflows."""
    return xp.logaddexp.accumulate(x, axis=axis)


def _logcumsumexp(x, axis, reverse):
    return _scan_along(_logcumsum, x, axis, reverse)


def _scan_shift(x, shape, axis, by, fill, dtype=None):
    """``x`` (broadcast to ``shape``) moved one step along ``axis`` (``by`` 1: towards its end), ``fill``
    in the entry left empty."""
    x = xp.moveaxis(xp.broadcast_to(_typed(x, dtype), tuple(shape)), axis, 0)
    if xp.shape(x)[0]:
        edge = xp.full_like(x[:1], fill)
        x = xp.concatenate((edge, x[:-1]) if by > 0 else (x[1:], edge), 0)
    return xp.moveaxis(x, 0, axis)


def _linear_scan(a, b, axis, reverse, dtype=None):
    """h_0 = b_0, h_i = a_i*h_(i-1) + b_i along ``axis`` (from its end with ``reverse``), ``a`` and ``b``
    broadcast together; a_0 is never read. By doubling (Hillis and Steele): after the step of span d,
    each entry holds the recurrence over the d entries ending there, (a product, a sum), so log2(n)
    whole-array steps replace n small ones (100,000 entries: 3 s a loop in torch)."""
    shape = xp.broadcast_shapes(xp.shape(a), xp.shape(b))
    a, b = (xp.moveaxis(xp.broadcast_to(_typed(v, dtype), shape), axis, 0) for v in (a, b))
    if reverse:
        a, b = xp.flip(a, (0,)), xp.flip(b, (0,))
    a = xp.concatenate((xp.zeros_like(a[:1]), a[1:]), 0)  # h_(-1) = 0: whatever a_0 holds, it adds nothing
    span, n = 1, xp.shape(b)[0]
    while span < n:
        b = xp.concatenate((b[:span], a[span:] * b[:-span] + b[span:]), 0)
        a = xp.concatenate((a[:span], a[span:] * a[:-span]), 0)
        span *= 2
    return xp.moveaxis(xp.flip(b, (0,)) if reverse else b, 0, axis)
