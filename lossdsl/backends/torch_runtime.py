"""PyTorch's own helpers for generated torch modules; the others come from runtime.py.

torch differs from NumPy where the shared helpers lean on it: no ``shape``/``ndim``/``size`` of a
Python number, ``unsqueeze`` for ``expand_dims``, int64 indices only, no mixed-dtype ``matmul``, and
elementwise functions that want tensors. Python numbers become float64 0-d tensors (``_typed``),
which, like NumPy's Python scalars, do not promote a dimensioned float32 tensor.
"""

import torch

from .runtime import _sum_to

# NumPy functions the shared helpers call (as xp.NAME) -> what a torch module calls instead (as_tensor:
# torch.asarray warns of a tensor that requires grad)
NUMPY_NAMES = {"shape": "_shape", "ndim": "torch.Tensor.dim", "size": "torch.numel", "asarray": "torch.as_tensor",
               "expand_dims": "torch.unsqueeze", "take_along_axis": "_take_along_axis", "matmul": "_matmul"}


def _typed(x, dtype=None):
    """A Python number as a 0-d tensor of ``dtype`` (float64 without one); a tensor as it is."""
    return x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=dtype or torch.float64)


def _shape(x):
    return tuple(x.shape) if isinstance(x, torch.Tensor) else ()


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


def _out(x, dt):
    return torch.as_tensor(x, dtype=dt)


def _fit(g, x):
    """A gradient shaped and typed like its input ``x``: summed down, broadcast up, a fresh tensor."""
    return torch.broadcast_to(_sum_to(g, x.shape), x.shape).to(x.dtype).clone(memory_format=torch.contiguous_format)


def _where(c, x, y):
    return torch.where(c, _typed(x), y) if not isinstance(y, torch.Tensor) else torch.where(c, x, y)


def _pair(x, y):
    """Both operands as tensors (torch.maximum and heaviside take no Python numbers)."""
    return _typed(x), _typed(y)


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


def _logsumexp(x, axis, keepdims):
    dims = tuple(range(x.ndim)) if axis is None else axis
    if x.numel() == 0:  # torch's is -inf over an empty axis; NumPy's shift by the max refuses, as amax does
        torch.amax(x, dim=dims)
    return torch.logsumexp(x, dim=dims, keepdim=keepdims)


def _log_softmax(x, axis):
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


def _stop_gradient(x):
    """x itself, detached from torch's autograd graph."""
    return x.detach() if isinstance(x, torch.Tensor) else x


def _logaddexp(a, b):
    return torch.logaddexp(*_pair(a, b))
