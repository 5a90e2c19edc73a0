"""A compiled loss as a ``torch.nn.Module`` (imported on demand: ``import lossdsl`` does not import torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .compiled import CompiledLoss
from .compiled import compile as compile_loss
from .errors import LossDSLError


class LossModule(torch.nn.Module):
    """A loss written in the language, used where PyTorch expects a criterion.

    ``LossModule("focal(gamma=2)")`` or ``lossdsl.compile(src, backend="torch").as_module()``;
    call it with the loss's inputs by keyword, or positionally in the order of ``inputs``
    (``y_true`` before ``y_pred``, as in Keras — not PyTorch's ``(input, target)``). Its
    ``backward()`` is the symbolic gradient (differentiable again: double backward works), and the
    loss works under torch.func (grad, vmap, jacrev) and ``torch.compile`` (``checks=False`` for no
    graph breaks: see ``lossdsl.compile``). The module has no parameters of its own.
    """

    def __init__(self, loss: CompiledLoss | str | Path, checks: bool = True):
        super().__init__()
        if not isinstance(loss, CompiledLoss):
            loss = compile_loss(loss, backend="torch", checks=checks)
        if loss.backend != "torch":
            raise LossDSLError(f"LossModule needs a loss compiled for backend 'torch', not '{loss.backend}'")
        self.loss = loss

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.loss.inputs

    def __call__(*args: Any, **kwargs: Any) -> torch.Tensor:  # noqa: N805 - an input may be called 'self'
        module, *rest = args
        if "self" in kwargs:  # nn.Module.__call__ takes its own 'self' by keyword too: hand the inputs over whole
            return torch.nn.Module.__call__(module, *rest, _inputs=kwargs)
        return torch.nn.Module.__call__(module, *rest, **kwargs)

    def forward(self, /, *args: Any, _inputs: dict[str, Any] | None = None, **kwargs: Any) -> torch.Tensor:
        return self.loss(*args, **kwargs, **(_inputs or {}))

    def extra_repr(self) -> str:
        return repr(self.loss.text)
