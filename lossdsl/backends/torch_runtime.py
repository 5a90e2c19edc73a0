"""PyTorch helpers copied into generated torch modules.

torch differs from NumPy where the shared helpers lean on it: no ``shape``/``ndim``/``size`` of a
Python number, ``max`` returning indices, ``unsqueeze`` for ``expand_dims``, and elementwise
functions that want tensors. Python numbers become float64 0-d tensors (``_t``), which, like
NumPy's Python scalars, do not promote a dimensioned float32 tensor.
"""

import torch


def _t(x, dtype=None):
    return x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=dtype or torch.float64)


def _shape(x):
    return tuple(x.shape) if isinstance(x, torch.Tensor) else ()


def _float_dtype(*xs):
    """The floating dtype of the float inputs (tensors or arrays); Python numbers do not promote."""
    dts = [torch.as_tensor(x).dtype for x in xs if hasattr(x, "dtype")]
    dts = [dt for dt in dts if dt.is_floating_point]
    if not dts:
        return torch.get_default_dtype()
    dt = dts[0]
    for other in dts[1:]:
        dt = torch.promote_types(dt, other)
    return dt


def _as_float(x, dt):
    if not hasattr(x, "dtype"):
        return torch.as_tensor(x, dtype=dt)  # a Python number takes the loss's dtype
    x = torch.as_tensor(x)
    return x if x.is_floating_point() else x.to(dt)


def _as_index(x, name):
    x = torch.as_tensor(x)
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"input '{name}' holds integer labels, but its dtype is {x.dtype}")
    return x


def _out(x, dt):
    return torch.as_tensor(x, dtype=dt)


def _fit(g, x):
    """A gradient shaped and typed like its input ``x``: summed down, broadcast up, a fresh tensor."""
    return torch.broadcast_to(_sum_to(g, x.shape), x.shape).to(x.dtype).clone(memory_format=torch.contiguous_format)


def _where(c, x, y):
    return torch.where(c, _t(x), y) if not isinstance(y, torch.Tensor) else torch.where(c, x, y)


def _pair(x, y):
    """Both operands as tensors (torch.maximum and heaviside take no Python numbers)."""
    return _t(x), _t(y)


def _maximum(x, y):
    return torch.maximum(*_pair(x, y))


def _minimum(x, y):
    return torch.minimum(*_pair(x, y))


def _heaviside(x, h):
    x, h = _pair(x, h)
    dt = torch.promote_types(x.dtype, h.dtype)
    return torch.heaviside(x.to(dt), h.to(dt))


def _softplus(x):
    return torch.logaddexp(torch.zeros_like(x), x)


def _dims(x, axis):
    return tuple(range(x.ndim)) if axis is None else axis


def _logsumexp(x, axis, keepdims):
    return torch.logsumexp(x, dim=_dims(x, axis), keepdim=keepdims)


def _matmul(a, b):
    dt = torch.promote_types(a.dtype, b.dtype)
    return torch.matmul(a.to(dt), b.to(dt))


def _transpose(x, shape):
    x = torch.broadcast_to(_t(x), shape)
    return x.permute(*reversed(range(x.ndim)))


def _sum_to(x, shape, full=(), dtype=None):
    """``x`` broadcast against ``shape`` and ``full``, then summed down to ``shape``."""
    x, shape = _t(x, dtype), tuple(shape)
    target = torch.broadcast_shapes(tuple(x.shape), shape, tuple(full))
    if tuple(x.shape) == shape == target:
        return x
    x = torch.broadcast_to(x, target)
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and x.shape[i + lead] != 1)
    x = torch.sum(x, dim=axes, keepdim=True) if axes else x
    return torch.reshape(x, shape)


def _broadcast(x, shape, dtype=None):
    x = _t(x, dtype)
    return torch.broadcast_to(x, torch.broadcast_shapes(tuple(x.shape), tuple(shape)))


def _extremum_share(x, axis, kind):
    """1/k where ``x`` attains its max (``kind="max"``) or min over ``axis`` k times, else 0."""
    best = (torch.amax if kind == "max" else torch.amin)(x, dim=_dims(x, axis), keepdim=True)
    hit = (x == best).to(x.dtype)
    return hit / torch.sum(hit, dim=_dims(x, axis), keepdim=True)


def _expand_dims(g, shape, axis, dtype=None):
    """A reduction's cotangent (broadcastable to its output ``shape``) with the axis put back."""
    return torch.unsqueeze(torch.broadcast_to(_t(g, dtype), tuple(shape)), axis)


def _within(x, lower, upper, integer, label):
    """``x`` itself, after checking its values lie in [lower, upper] (and are integers)."""
    if integer and (x.is_floating_point() or x.is_complex()):
        raise TypeError(f"{label} must hold integers; got dtype {x.dtype}")
    if x.numel():
        lo, hi = x.min().item(), x.max().item()
        if (lower is not None and not lo >= lower) or (upper is not None and not hi <= upper):
            raise ValueError(f"{label} must lie in [{lower}, {upper}]; got values from {lo} to {hi}")
    return x


def _per_sample(w, shape):
    """One value per sample (the leading axis), broadcast against an array of ``shape``."""
    w = _t(w)
    w = torch.reshape(w, tuple(w.shape) + (1,) * (len(shape) - w.ndim))
    return torch.broadcast_to(w, torch.broadcast_shapes(tuple(w.shape), tuple(shape)))


def _per_sample_vjp(g, w_shape, shape):
    padded = tuple(w_shape) + (1,) * (len(shape) - len(w_shape))
    g = _sum_to(torch.broadcast_to(_t(g), torch.broadcast_shapes(padded, tuple(shape))), padded)
    return torch.reshape(g, tuple(w_shape))


def _check_labels(labels, n, label):
    if labels.numel() and (labels.min() < 0 or labels.max() >= n):
        raise ValueError(f"{label} must hold class indices in [0, {n}); got values from {labels.min().item()} "
                         f"to {labels.max().item()}")


def _take(x, labels, axis, label):
    _check_labels(labels, x.shape[axis], label)
    return torch.squeeze(torch.take_along_dim(x, torch.unsqueeze(labels.long(), axis), dim=axis), axis)


def _take_vjp(g, labels, shape, axis):
    axis = axis % len(shape) - len(shape)  # counted from the right, where broadcasting aligns
    classes = torch.reshape(torch.arange(shape[axis]), (shape[axis],) + (1,) * (-axis - 1))
    g = _t(g)
    g = torch.broadcast_to(g, torch.broadcast_shapes(tuple(g.shape), tuple(labels.shape)))
    return torch.where(torch.unsqueeze(labels, axis) == classes, torch.unsqueeze(g, axis), 0)


def _one_hot(labels, depth, dt, label):
    _check_labels(labels, depth, label)
    return (torch.unsqueeze(labels, -1) == torch.arange(depth)).to(dt)


def _matmul_2d(g, a, b, shape):
    """``a @ b``'s operands and its cotangent ``g`` (broadcast to ``shape``) with 1-D operands made 2-D."""
    g = torch.broadcast_to(_t(g), tuple(shape))
    a2 = torch.unsqueeze(a, 0) if a.ndim == 1 else a
    b2 = torch.unsqueeze(b, -1) if b.ndim == 1 else b
    g2 = torch.unsqueeze(g, -2) if a.ndim == 1 else g
    g2 = torch.unsqueeze(g2, -1) if b.ndim == 1 else g2
    return g2, a2, b2


def _matmul_vjp_a(g, a, b, shape):
    """The cotangent of ``a`` in ``a @ b`` (of ``shape``), for NumPy's matmul rules."""
    g2, a2, b2 = _matmul_2d(g, a, b, shape)
    return torch.reshape(_sum_to(_matmul(g2, torch.transpose(b2, -1, -2)), a2.shape), a.shape)


def _matmul_vjp_b(g, a, b, shape):
    """The cotangent of ``b`` in ``a @ b`` (of ``shape``), for NumPy's matmul rules."""
    g2, a2, b2 = _matmul_2d(g, a, b, shape)
    return torch.reshape(_sum_to(_matmul(torch.transpose(a2, -1, -2), g2), b2.shape), b.shape)


# --- CTC (connectionist temporal classification): forward-backward over time, vectorised over the batch,
# as in the NumPy runtime


def _ctc_lengths(log_probs, targets, input_lengths, target_lengths, blank, labels):
    """Check the shapes, labels and lengths; the lengths as (B,) int64 tensors."""
    if log_probs.ndim != 3:
        raise ValueError(f"{labels[0]} must hold log-probabilities shaped (T, B, C); got shape {tuple(log_probs.shape)}")
    T, B, C = log_probs.shape
    if targets.ndim != 2 or targets.shape[0] != B:
        raise ValueError(f"{labels[1]} must hold padded targets shaped (B, S) with B = {B} (log_probs is "
                         f"(T, B, C) = {tuple(log_probs.shape)}); got shape {tuple(targets.shape)}")
    if not 0 <= blank < C:
        raise ValueError(f"blank={blank} is not a class of {labels[0]}, which has C = {C} classes")
    S = targets.shape[1]
    out = []
    for x, top, label, what in ((input_lengths, T, labels[2], "T, the frames of log_probs"),
                                (target_lengths, S, labels[3], "S, the columns of targets")):
        if x.ndim > 1 or x.numel() not in (1, B):
            raise ValueError(f"{label} must hold one length per sample, shape ({B},); got shape {tuple(x.shape)}")
        x = torch.broadcast_to(x.long(), (B,))
        bad = (x < 0) | (x > top)
        if torch.any(bad):
            b = int(torch.argmax(bad.int()))
            raise ValueError(f"{label} must lie in [0, {top}] ({what}); got {x[b].item()} for sample {b}")
        out.append(x)
    used = torch.arange(S) < out[1][:, None]
    bad = used & ((targets < 0) | (targets >= C) | (targets == blank))
    if torch.any(bad):
        b, s = divmod(int(torch.argmax(bad.int())), S)
        raise ValueError(f"{labels[1]} must hold class labels in [0, {C}) other than blank={blank} in the first "
                         f"target_lengths[b] entries of each row b; got {targets[b, s].item()} at sample {b}, "
                         f"position {s}")
    return out


def _ctc_tables(log_probs, targets, target_lengths, blank):
    """The extended labels (blank, l1, blank, ..., blank) of each sample: their log-probabilities (T, B, L),
    -inf beyond 2*target_length + 1; where a label may be reached by skipping the blank before it; the two
    final positions; and the extended labels themselves (B, L)."""
    T, B, C = log_probs.shape
    S = targets.shape[1]
    L = 2 * S + 1
    lab = torch.clamp(targets.long(), 0, C - 1)  # the padding may hold anything
    blanks = torch.full((B, S + 1), blank, dtype=torch.long)
    ext = torch.cat([torch.reshape(torch.stack([blanks[:, :S], lab], dim=-1), (B, 2 * S)), blanks[:, S:]], dim=1)
    s = torch.arange(L)
    valid = s < 2 * target_lengths[:, None] + 1
    before = torch.cat([torch.full((B, 2), -1, dtype=torch.long), ext], dim=1)[:, :L]  # ext two places back
    skip = (s % 2 == 1) & (s >= 2) & (ext != before) & (ext != blank)
    final = (s == 2 * target_lengths[:, None]) | (s == 2 * target_lengths[:, None] - 1)
    lp = torch.gather(log_probs, 2, torch.broadcast_to(ext, (T, B, L)))
    return torch.where(valid, lp, -torch.inf), skip, final, ext


def _ctc_shift(a, k):
    """``a`` moved k places along its last axis (right for k > 0, left for k < 0), -inf entering."""
    pad = torch.full(a.shape[:-1] + (abs(k),), -torch.inf, dtype=a.dtype)
    if k > 0:
        return torch.cat([pad, a], dim=-1)[..., :a.shape[-1]]
    return torch.cat([a, pad], dim=-1)[..., -k:]


def _ctc_loglik(last, target_lengths):
    """log p(target | log_probs) per sample from alpha at the last frame: the paths ending in the
    last label or in the blank after it."""
    end = torch.gather(last, 1, 2 * target_lengths[:, None])[:, 0]
    before = torch.gather(last, 1, torch.clamp(2 * target_lengths - 1, min=0)[:, None])[:, 0]
    return torch.logaddexp(end, torch.where(target_lengths > 0, before, -torch.inf))


def _ctc_alpha(lp, skip, input_lengths):
    """Forward variables log alpha[t, b, s] (emission at t included), and each sample's alpha at its
    last frame t = input_length - 1 (before any frame, the empty prefix: 0 at s = 0)."""
    T, B, L = lp.shape
    a = torch.broadcast_to(torch.where(torch.arange(L) == 0, 0.0, -torch.inf).to(lp.dtype), (B, L))
    last = a
    alphas = torch.empty_like(lp)
    for t in range(T):
        a = torch.logaddexp(torch.logaddexp(a, _ctc_shift(a, 1)), torch.where(skip, _ctc_shift(a, 2), -torch.inf)) + lp[t]
        alphas[t] = a
        last = torch.where((t < input_lengths)[:, None], a, last)
    return alphas, last


def _ctc_beta(lp, skip, final, input_lengths):
    """Backward variables log beta[t, b, s] (emission at t included), -inf from t = input_length on."""
    T, B, L = lp.shape
    skip_next = torch.cat([skip, torch.zeros((B, 2), dtype=torch.bool)], dim=1)[:, 2:]  # s + 2 skips to s
    start = torch.where(final, 0.0, -torch.inf).to(lp.dtype)
    b = torch.full((B, L), -torch.inf, dtype=lp.dtype)
    betas = torch.empty_like(lp)
    for t in range(T - 1, -1, -1):
        rec = torch.logaddexp(torch.logaddexp(b, _ctc_shift(b, -1)),
                              torch.where(skip_next, _ctc_shift(b, -2), -torch.inf))
        b = torch.where((t == input_lengths - 1)[:, None], start,
                        torch.where((t < input_lengths - 1)[:, None], rec, -torch.inf)) + lp[t]
        betas[t] = b
    return betas


def _ctc_nll(log_probs, targets, input_lengths, target_lengths, blank, zero_infinity, labels):
    """Per-sample CTC negative log-likelihood (B,); +inf where no alignment fits (0 with zero_infinity)."""
    input_lengths, target_lengths = _ctc_lengths(log_probs, targets, input_lengths, target_lengths, blank, labels)
    lp, skip, final, ext = _ctc_tables(log_probs, targets, target_lengths, blank)
    nll = -_ctc_loglik(_ctc_alpha(lp, skip, input_lengths)[1], target_lengths)
    return torch.where(torch.isposinf(nll), 0.0, nll) if zero_infinity else nll


def _ctc_grad(ct, log_probs, targets, input_lengths, target_lengths, blank, zero_infinity, labels):
    """ct[b] * d nll[b] / d log_probs[t, b, c] = -ct[b] * (the posterior probability that frame t of
    sample b emits class c), by forward-backward. 0 from t = input_length on; for an infinite loss NaN,
    or 0 with zero_infinity."""
    input_lengths, target_lengths = _ctc_lengths(log_probs, targets, input_lengths, target_lengths, blank, labels)
    T, B, C = log_probs.shape
    lp, skip, final, ext = _ctc_tables(log_probs, targets, target_lengths, blank)
    alphas, last = _ctc_alpha(lp, skip, input_lengths)
    nll = -_ctc_loglik(last, target_lengths)
    ab = alphas + _ctc_beta(lp, skip, final, input_lengths)
    reached = ab > -torch.inf
    occupancy = torch.where(reached, torch.exp(torch.where(reached, ab - lp, -torch.inf) + nll[:, None]), 0)
    posterior = torch.zeros((T, B, C), dtype=lp.dtype).scatter_add_(2, torch.broadcast_to(ext, lp.shape), occupancy)
    g = -posterior * torch.broadcast_to(_t(ct), (B,))[:, None].to(lp.dtype)
    return torch.where(torch.isposinf(nll)[:, None], 0.0 if zero_infinity else torch.nan, g)
