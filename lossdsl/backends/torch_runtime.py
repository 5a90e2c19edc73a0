"""PyTorch's own helpers for generated torch modules; the others come from runtime.py.

torch differs from NumPy where the shared helpers lean on it: no ``shape``/``ndim``/``size`` of a
Python number, ``unsqueeze`` for ``expand_dims``, int64 indices only, no mixed-dtype ``matmul``, and
elementwise functions that want tensors. Python numbers become float64 0-d tensors (``_typed``),
which, like NumPy's Python scalars, do not promote a dimensioned float32 tensor.
"""

import inspect

import torch

from .runtime import _correlate_lines, _sum_to

# NumPy functions the shared helpers call (as xp.NAME) -> what a torch module calls instead (as_tensor:
# torch.asarray warns of a tensor that requires grad)
NUMPY_NAMES = {"shape": "_shape", "ndim": "torch.Tensor.dim", "size": "torch.numel", "asarray": "torch.as_tensor",
               "expand_dims": "torch.unsqueeze", "take_along_axis": "_take_along_axis", "matmul": "_matmul",
               "broadcast_shapes": "_broadcast_shapes"}


def _typed(x, dtype=None):
    """A Python number as a 0-d tensor of ``dtype`` (float64 without one); a tensor as it is."""
    return x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=dtype or torch.float64)


def _shape(x):
    return tuple(x.shape) if isinstance(x, torch.Tensor) else ()


def _broadcast_shapes(*shapes):
    """torch.broadcast_shapes (a Python reference implementation, tens of microseconds a call, several
    calls a loss) for the shapes a loss meets; torch's own error where they do not broadcast."""
    same = ()
    for s in shapes:  # most often: one shape, and shapes of numbers ()
        if s and tuple(s) != same:
            if same:
                break
            same = tuple(s)
    else:
        return same
    n = max(map(len, shapes))
    out = []
    for k in range(n):
        sizes = {s[k - n + len(s)] for s in shapes if k - n + len(s) >= 0} - {1}
        if len(sizes) > 1:
            return tuple(torch.broadcast_shapes(*shapes))
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _take_along_axis(x, indices, axis):
    return torch.take_along_dim(x, indices.long(), dim=axis)


def _is_integer(dtype):
    """Whether ``dtype`` holds integers (bool does not)."""
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def _scalar(x):
    """A 0-d tensor as an error message shows it: its number, not ``tensor(...)``."""
    return x.item() if isinstance(x, torch.Tensor) else x


def _float_dtype(*xs):
    """The floating dtype of the float inputs (tensors or arrays); Python numbers do not promote."""
    dt = None
    for x in xs:
        d = x.dtype if isinstance(x, torch.Tensor) else torch.as_tensor(x).dtype if hasattr(x, "dtype") else None
        if d is not None and d.is_floating_point and d != dt:
            dt = d if dt is None else torch.promote_types(dt, d)
    return torch.get_default_dtype() if dt is None else dt


def _as_float(x, dt):
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.to(dt)
    if not hasattr(x, "dtype"):
        return torch.as_tensor(x, dtype=dt)  # a Python number takes the loss's dtype
    x = torch.as_tensor(x)
    return x if x.is_floating_point() else x.to(dt)


def _out(x, dt):
    return x if isinstance(x, torch.Tensor) and x.dtype == dt else torch.as_tensor(x, dtype=dt)


def _fit(g, x):
    """A gradient shaped and typed like its input ``x``: summed down, broadcast up, a fresh tensor."""
    return torch.broadcast_to(_sum_to(g, x.shape), x.shape).to(x.dtype).clone(memory_format=torch.contiguous_format)


def _fit_ct(g, x):
    """A cotangent for backward, shaped and typed like its input ``x``: ``_fit`` without the copy, which
    autograd makes itself where it keeps a gradient that is a view or held elsewhere."""
    if isinstance(g, torch.Tensor) and g.shape == x.shape and g.dtype == x.dtype:  # most often: as it is
        return g
    g = _sum_to(g, x.shape)
    return (g if g.shape == x.shape else torch.broadcast_to(g, x.shape)).to(x.dtype)


def _bits(dtype):
    """The integer dtype of a float dtype's bit patterns (None for any other dtype)."""
    return {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
            torch.bfloat16: torch.int16}.get(dtype)


def _where(c, x, y):
    """``torch.where``; between two float tensors of one dtype on the CPU, where autograd does not
    record and no compiler traces, a select of bit patterns (NaNs and infinities pass unchanged):
    torch's CPU ``where`` branches per element, some 3x slower than these five bitwise ops on the
    random masks of residuals. On a GPU, or traced, ``torch.where`` is one fused kernel."""
    if not isinstance(y, torch.Tensor):
        return torch.where(c, _typed(x), y)
    bits = _bits(x.dtype) if isinstance(x, torch.Tensor) and x.dtype == y.dtype else None
    if (bits is None or c.dtype != torch.bool or torch.is_grad_enabled() or x.device.type != "cpu"
            or y.device.type != "cpu" or torch.compiler.is_compiling()):
        return torch.where(c, x, y)
    xb, yb = x.view(bits), y.view(bits)
    return torch.bitwise_xor(yb, torch.bitwise_and(torch.bitwise_xor(xb, yb), -c.to(bits))).view(x.dtype)


def _pair(x, y):
    """Both operands as tensors (torch.maximum and heaviside take no Python numbers)."""
    return _typed(x), _typed(y)


def _one_sided(x, y, clamp):
    """``clamp`` (torch.clamp_min or clamp_max) of the float tensor among ``x`` and ``y`` by the Python
    number that is the other, outside autograd (its derivative at a tie differs from maximum's): one op
    where torch.maximum needs the number made a tensor first. None for any other pair; an integer
    tensor is left to maximum, which promotes it as the NumPy backend does."""
    if isinstance(x, (int, float)):
        x, y = y, x
    if (isinstance(y, (int, float)) and isinstance(x, torch.Tensor) and x.is_floating_point()
            and not torch.is_grad_enabled()):
        return clamp(x, y)
    return None


def _maximum(x, y):
    if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):  # two tensors: torch's own, at once
        return torch.maximum(x, y)
    out = _one_sided(x, y, torch.clamp_min)
    return torch.maximum(*_pair(x, y)) if out is None else out


def _minimum(x, y):
    if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
        return torch.minimum(x, y)
    out = _one_sided(x, y, torch.clamp_max)
    return torch.minimum(*_pair(x, y)) if out is None else out


def _heaviside(x, h):
    x, h = _pair(x, h)
    dt = torch.promote_types(x.dtype, h.dtype)
    return torch.heaviside(x.to(dt), h.to(dt))


def _softplus(x):
    return torch.logaddexp(torch.zeros_like(x), x)


def _refuse_empty_axis(x, dim):
    """Over an empty axis, raise as NumPy's and JAX's max-shifted forms do (torch's logsumexp gives -inf)."""
    if x.numel() == 0:
        torch.amax(x, dim=dim)


def _logsumexp(x, axis, keepdims):
    dim = tuple(range(x.ndim)) if axis is None else axis
    _refuse_empty_axis(x, dim)
    return torch.logsumexp(x, dim=dim, keepdim=keepdims)


def _log_softmax(x, axis):
    _refuse_empty_axis(x, tuple(range(x.ndim)) if axis is None else axis)
    if isinstance(axis, tuple):  # torch's takes one axis: shifted by the max, as runtime.py's
        m = torch.amax(x, dim=axis, keepdim=True)
        s = x - torch.where(torch.isfinite(m), m, 0)
        return s - torch.log(torch.sum(torch.exp(s), dim=axis, keepdim=True))
    return torch.log_softmax(x.reshape(-1), 0).reshape(x.shape) if axis is None else torch.log_softmax(x, axis)


def _matmul(a, b):
    dt = torch.promote_types(a.dtype, b.dtype)
    return torch.matmul(a.to(dt), b.to(dt))


def _transpose(x, shape):
    x = torch.broadcast_to(_typed(x), shape)
    return x.permute(*reversed(range(x.ndim)))


def _positive_steps(x, key):
    """``x`` with the axes that ``key`` slices by a negative step flipped, and the key that reads
    the same entries from it by positive steps: torch slices only forwards."""
    flips, out, axis = [], [], 0
    for k, item in enumerate(key):
        if item is Ellipsis:
            axis = x.dim() - (len(key) - k - 1)
        elif isinstance(item, slice) and item.step is not None and item.step < 0:
            n = x.shape[axis]
            start, stop, step = item.indices(n)
            flips.append(axis)
            item = slice(n - 1 - start, n - 1 - stop, -step)
        out.append(item)
        axis += item is not Ellipsis
    return (torch.flip(x, flips) if flips else x), tuple(out), flips


def _gather(x, key):
    x, key, _ = _positive_steps(x, key)
    return x[key]


def _scatter(z, key, g):
    flipped, key, flips = _positive_steps(z, key)
    flipped[key] = g
    return torch.flip(flipped, flips) if flips else flipped


def _keep(ctx, inputs):
    """Keep a loss's inputs for its backward: tensors by ``save_for_backward`` (as torch.func and
    double backward need), anything else (a Python number) as it is (``others``: None where all are
    tensors, as they are in a training step)."""
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    ctx.save_for_backward(*tensors)
    ctx.others = None if len(tensors) == len(inputs) else tuple(
        None if isinstance(x, torch.Tensor) else x for x in inputs)


def _kept(ctx):
    """The inputs ``_keep`` kept, in their order."""
    if ctx.others is None:
        return ctx.saved_tensors
    tensors = iter(ctx.saved_tensors)
    return tuple(next(tensors) if x is None else x for x in ctx.others)


def _signed(*functions):
    """Each ``torch.autograd.Function``'s forward with its signature worked out once: ``apply`` binds
    the arguments to ``inspect.signature(forward)`` on every call (in the setup_context style), which,
    worked out afresh, costs as much as a small loss's arithmetic."""
    for function in functions:
        function.forward.__signature__ = inspect.signature(function.forward)


def _fresh(outputs, inputs):
    """``outputs`` with each that is one of ``inputs`` (a loss ``x``, a gradient ``y`` of ``sum(x*y)``)
    as a view of it: autograd refuses a Function in the setup_context style that returns an input
    it saves for backward."""
    return tuple(o.view_as(o) if any(o is x for x in inputs) else o for o in outputs)  # no id(): compilers guard on it


def _plain():
    """Whether autograd's plain Function style (forward with ctx) serves a call: no torch.func transform
    is active and no compiler traces, which need the setup_context style. Asked of torch's private flag
    (which Function.apply reads); where a torch lacks it, never."""
    if torch.compiler.is_compiling():
        return False
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    return active is not None and not active()


def _requiring_grad(inputs):
    """The position of the one input that requires grad where autograd records (else None)."""
    if not torch.is_grad_enabled():
        return None
    found = None
    for k, x in enumerate(inputs):
        if isinstance(x, torch.Tensor) and x.requires_grad:
            if found is not None:
                return None
            found = k
    return found


def _stop_gradient(x):
    """x itself, detached from torch's autograd graph."""
    return x.detach() if isinstance(x, torch.Tensor) else x


def _logaddexp(a, b):
    return torch.logaddexp(*_pair(a, b))


def _argsort(x, axis):
    return torch.argsort(x, dim=axis, stable=True)


def _logcumsum(x, axis):
    return torch.logcumsumexp(x, axis)


def _lines(x, axis):
    """``x`` with ``axis`` moved last, as (lines, 1, length) for conv1d, and the moved shape."""
    moved = torch.movedim(x, axis, -1)
    count = 1
    for d in moved.shape[:-1]:
        count *= d
    return moved.reshape(count, 1, moved.shape[-1]), tuple(moved.shape)


def _correlate(x, kernel, axis, mode, flip):
    """As the shared helper, by conv1d (a cross-correlation): one kernel, every line a batch entry."""
    x, axis, length = _correlate_lines(x, tuple(kernel.shape), axis, mode)
    dt = torch.promote_types(x.dtype, kernel.dtype)
    kernel = torch.flip(kernel, (0,)) if flip else kernel
    lines, shape = _lines(x.to(dt), axis)
    out = torch.nn.functional.conv1d(lines, kernel.to(dt).reshape(1, 1, -1))
    return torch.movedim(out.reshape(shape[:-1] + (length,)), -1, axis)


def _correlate_kernel_vjp(g, x, kernel_shape, axis, mode, flip):
    """As the shared helper, by conv1d: the lines of padded x as channels, those of ``g`` the weights."""
    x, axis, length = _correlate_lines(x, tuple(kernel_shape), axis, mode)
    dt = torch.promote_types(x.dtype, g.dtype)
    shape = list(x.shape)
    shape[axis] = length
    lines, _ = _lines(x.to(dt), axis)
    weights, _ = _lines(torch.broadcast_to(g, tuple(shape)).to(dt), axis)
    if not lines.shape[0]:  # no lines: nothing to sum
        return torch.zeros(tuple(kernel_shape), dtype=dt)
    out = torch.nn.functional.conv1d(lines.reshape(1, lines.shape[0], -1), weights.reshape(1, lines.shape[0], length))
    out = out.reshape(-1)
    return torch.flip(out, (0,)) if flip else out


def _extremes(x):
    """As the shared helper, from one ``torch.aminmax`` read back as two Python numbers: two reductions,
    and comparisons of 0-d tensors each read back, cost more than a small loss's arithmetic."""
    return tuple(v.item() for v in torch.aminmax(x if x.dtype != torch.bool else x.to(torch.uint8)))
