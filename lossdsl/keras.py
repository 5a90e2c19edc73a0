"""A loss written in the language as a Keras 3 loss (imported on demand: ``import lossdsl`` does not import keras).

Keras picks its backend when it is first imported (``KERAS_BACKEND``); a ``Loss`` compiles its source for
the matching lossdsl backend, JAX or torch, when it is made. Keras's ``Loss.__call__`` casts the inputs,
applies ``sample_weight`` and the reduction to the values ``call`` returns, so ``call`` returns the loss
per sample, computed from the source with ``reduction="none"`` (see ``Loss``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import syntax as A
from .compiled import CompiledLoss
from .compiled import compile as compile_loss
from .errors import LossDSLError
from .library import library
from .parser import _lark, parse
from .pipeline import read_source

try:
    import keras
except ModuleNotFoundError as e:  # Keras 3 imports its default backend, TensorFlow, at once
    if e.name != "tensorflow":
        raise
    raise ImportError("Keras is set to its TensorFlow backend, which is not installed; lossdsl.keras works with "
                      "Keras's JAX and torch backends: set KERAS_BACKEND=jax (or torch) before keras is first "
                      "imported") from e

#: Keras's backend -> the lossdsl backend its tensors go to
BACKENDS = {"jax": "jax", "torch": "torch"}


@keras.saving.register_keras_serializable(package="lossdsl")
class Loss(keras.losses.Loss):
    """A loss written in the language, for ``model.compile(loss=...)``.

    ``Loss("focal(gamma=2, from_logits=true)")``; Keras calls it with ``(y_true, y_pred)``, the loss's
    inputs of those names (a loss may leave ``y_true`` out). ``constants`` give values for its other
    inputs: ``Loss("mse() + l2(w, 0.01)", w=[1.0, 2.0])``. ``name``, ``reduction`` and ``dtype`` are
    Keras's: the reduction over samples (``"sum_over_batch_size"``, the mean, by default) is Keras's,
    applied after ``sample_weight``.

    What ``call`` returns, and how weights apply:

    * A library loss that takes ``reduction=`` (``mse``, ``huber``, ``bce``, ``cce``, ``focal``, ...),
      called as the whole source, is compiled with ``reduction="none"`` and left unreduced: leave
      ``reduction`` out of the source (or write ``"none"``) and pass Keras's to ``Loss``.
    * An unreduced value with ``y_pred``'s rank, two axes or more (one value per element), is averaged
      over its last axis, as Keras's own losses do, giving one value per sample (per sample and time
      step for 3-d predictions); one with fewer axes (``cce`` sums its class axis), or a batch of
      single numbers (``y_pred`` shaped ``(N,)``), is per sample already. Keras
      then multiplies these by ``sample_weight`` and reduces them: the values equal Keras's
      ``MeanSquaredError``, ``Huber``, ``BinaryCrossentropy``, ``CategoricalCrossentropy`` and
      ``BinaryFocalCrossentropy``, weighted or not.
    * A weighted sum of such calls (``mse() + 0.5*mae()``, ``(cce(from_logits=true) - mse()/4)*2``:
      ``+``, ``-``, and products and quotients by numbers) is computed term by term, each unreduced and
      made per sample as it would be alone, then summed: ``sample_weight`` weighs the sum as it would
      Keras's own losses summed. A term with no ``reduction=`` (a penalty such as ``l2(w, 0.1)``)
      leaves the source as it stands (next point).
    * Any other source is compiled as it stands. If its value is one number (a mean or sum over the
      batch, such as ``mean((y_pred - y_true)^2)``) there is nothing per sample for Keras to weigh,
      so calling it with ``sample_weight`` is an error rather than a mean scaled by the mean weight;
      write such a loss per element or per sample to weigh it.

    ``y_true`` is cast to ``y_pred``'s dtype (integer labels, as ``sparse_cce`` takes, to int32), and a
    last axis of length 1 is squeezed or added where their ranks differ by one, as Keras's losses do
    (``y_true`` shaped ``(N,)`` against ``y_pred`` shaped ``(N, 1)``). ``get_config`` holds the source
    text, the constants and ``checks``, so ``model.save`` and ``keras.models.load_model`` round-trip.

    ``checks=False`` compiles the loss without value checks (``lossdsl.compile``'s switch): what
    ``model.compile(..., jit_compile=True)`` on Keras's torch backend needs, since a check reads a value
    on the host (``torch.compile`` breaks its graph there). On JAX a jitted step cannot raise, and a
    failed check gives NaN either way.
    """

    def __init__(self, source: str | Path | None = None, /, name: str | None = None,
                 reduction: str | None = "sum_over_batch_size", dtype: Any = None, checks: bool = True,
                 **constants: Any):
        if source is None:  # Loss(source="mse()"); a constant for an input called 'source' needs the text given first
            source = constants.pop("source", None)
            if source is None:
                raise LossDSLError("lossdsl.keras.Loss needs the loss's source text: Loss(\"mse()\")")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._dtype_given = dtype
        backend = keras.backend.backend()
        if backend not in BACKENDS:
            raise LossDSLError(f"lossdsl.keras works with Keras's JAX and torch backends, not '{backend}': set "
                               "KERAS_BACKEND=jax (or torch) before keras is first imported")
        text, _ = read_source(source)
        self.source = text
        self.constants = {k: np.asarray(v).tolist() for k, v in constants.items()}
        unreduced = _unreduced(text)
        self.loss: CompiledLoss = compile_loss(unreduced or text, backend=BACKENDS[backend], checks=checks)
        # a weighted sum of library losses: each term per sample, as alone, then summed
        self._terms = tuple((c, compile_loss(t, backend=BACKENDS[backend], checks=checks))
                            for c, t in _weighted_terms(text))
        self._scalar = self.loss.graph.rank(self.loss.root).scalar and not self._terms
        _check_inputs(self.loss.inputs, self.constants)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ops = keras.ops
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.convert_to_tensor(y_true)
        if "y_true" in self.loss.graph.index_inputs:
            y_true = ops.cast(y_true, "int32")
            if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
                y_true = ops.squeeze(y_true, axis=-1)  # (N, 1) labels for (N, C) scores
        else:
            y_true, y_pred = _same_rank(ops.cast(y_true, y_pred.dtype), y_pred)
        labels = self.loss.graph.index_inputs
        inputs = {k: ops.convert_to_tensor(v, dtype="int32" if k in labels else y_pred.dtype)
                  for k, v in self.constants.items()}
        inputs["y_pred"] = y_pred
        if "y_true" in self.loss.inputs:
            inputs["y_true"] = y_true
        if not self._terms:
            return _per_sample(self.loss(**inputs), y_pred)
        values = [c * _per_sample(term(**{k: inputs[k] for k in term.inputs}), y_pred) for c, term in self._terms]
        return sum(values[1:], values[0])

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        if sample_weight is not None and self._scalar:
            raise LossDSLError(f"the loss {self.source!r} is one number for the whole batch, so Keras cannot weigh "
                               "its samples: write it per element or per sample (a library loss with its "
                               "default reduction, or reduction=\"none\") to use sample_weight")
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "source": self.source, "constants": self.constants,
                  "checks": self.loss.checks}
        if self._dtype_given is not None:
            config["dtype"] = self._dtype_given
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        config = dict(config)
        source, constants = config.pop("source"), config.pop("constants", {})
        return cls(source, **config, **constants)

    def __repr__(self) -> str:
        checks = "" if self.loss.checks else ", checks=False"
        return f"lossdsl.keras.Loss({self.source!r}, backend={self.loss.backend!r}{checks})"


def _check_inputs(inputs: tuple[str, ...], constants: dict[str, Any]) -> None:
    if "y_pred" not in inputs:
        raise LossDSLError(f"a Keras loss is a function of y_true and y_pred, but this one's inputs are "
                           f"{', '.join(inputs) or 'none'}: name the prediction y_pred")
    given = [k for k in ("y_true", "y_pred") if k in constants]
    missing = [n for n in inputs if n not in ("y_true", "y_pred", *constants)]
    unknown = [n for n in constants if n not in inputs]
    if given or missing or unknown:
        raise LossDSLError("Keras gives y_true and y_pred; every other input of the loss needs a constant value "
                           f"(Loss(source, name=value, ...)): missing {', '.join(missing) or 'none'}; not inputs "
                           f"of the loss: {', '.join(unknown) or 'none'}; given by Keras: {', '.join(given) or 'none'}")


def _per_sample(values: Any, y_pred: Any) -> Any:
    """Unreduced values as one per sample: averaged over the last axis where they have ``y_pred``'s
    rank, two or more (one value per element), as Keras's own losses are."""
    rank = len(values.shape)
    return keras.ops.mean(values, axis=-1) if rank >= 2 and rank == len(y_pred.shape) else values


def _same_rank(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Squeeze or add a last axis of length 1 where the ranks differ by one, as Keras's losses do."""
    ops = keras.ops
    t, p = len(y_true.shape), len(y_pred.shape)
    if t == p + 1 and y_true.shape[-1] == 1:
        return (ops.squeeze(y_true, axis=-1), y_pred) if p != 1 else (y_true, ops.expand_dims(y_pred, -1))
    if p == t + 1 and y_pred.shape[-1] == 1:
        return (y_true, ops.squeeze(y_pred, axis=-1)) if t != 1 else (ops.expand_dims(y_true, -1), y_pred)
    return y_true, y_pred


def _unreduced(text: str) -> str | None:
    """The source with ``reduction="none"`` added to its loss, when the loss is one call of a definition
    that takes ``reduction=`` and leaves it out; None when it does not (the source is compiled as it
    stands). A reduction other than "none" in that call is an error: Keras reduces."""
    program = parse(text)
    call = program.result
    if not isinstance(call, A.Call):
        return None
    params = _params(program, call)
    if "reduction" not in params:
        return None
    if _gives_none(call, params):
        return None
    before, close = _closing(text, call)
    return f"{text[:close]}{'' if before in ('LPAR', 'COMMA') else ', '}reduction=\"none\"{text[close:]}"


def _gives_none(call: A.Call, params: list[str]) -> bool:
    """Whether ``call`` gives reduction "none" (False: it leaves reduction out); any other reduction is
    an error, at its place in the source: Keras reduces."""
    given = [k.value for k in call.kwargs if k.name == "reduction"] + list(call.args[params.index("reduction"):][:1])
    if given and not (isinstance(given[0], A.String) and given[0].value == "none"):
        raise LossDSLError("Keras reduces the loss: leave reduction out of the source (or write reduction=\"none\") "
                           "and pass Keras's reduction to lossdsl.keras.Loss(..., reduction=...)", given[0].span)
    return bool(given)


def _params(program: A.Program, call: A.Call) -> list[str]:
    """The parameters of the definition ``call`` calls (the source's own or the library's); none for a builtin."""
    definition = {**library(), **{d.name: d for d in program.defs}}.get(call.func)
    return [p.name for p in definition.params] if definition is not None else []


def _closing(text: str, call: A.Call) -> tuple[str, int]:
    """Where ``call``'s closing parenthesis stands in ``text``, and the type of the token before it."""
    return _extent(text, call)[1:]


def _extent(text: str, call: A.Call) -> tuple[int, str, int]:
    """Where ``call`` starts in ``text``, the type of the token before its closing parenthesis, and
    where that parenthesis stands."""
    start, tokens = _tokens_from(text, call)
    depth, before = 0, ""
    for token in tokens:
        depth += {"LPAR": 1, "RPAR": -1}.get(token.type, 0)
        if depth == 0:
            return start, before, token.start_pos
        before = token.type
    raise AssertionError("a parsed call has its closing parenthesis")


def _tokens_from(text: str, node: Any) -> tuple[int, Iterator[Any]]:
    """Where ``node``'s first token stands in ``text``, and the tokens after it."""
    tokens: Iterator[Any] = iter(_lark().lex(text))
    for token in tokens:
        if (token.line, token.column) == (node.span.line, node.span.column):
            return token.start_pos, tokens
    raise AssertionError("a parsed node starts at a token")


def _weighted_terms(text: str) -> list[tuple[float, str]]:
    """For a source whose loss is a weighted sum of calls of library losses that take ``reduction=``
    (``mse() + 0.5*mae()``, ``-2*bce(...) + cce(...)/4``): each call's weight and the source of the
    call alone, unreduced (the definitions and bindings before the loss kept). Empty for any other
    source, which is compiled as it stands (a lone call by ``_unreduced``)."""
    program = parse(text)
    if isinstance(program.result, A.Call):
        return []
    terms = _linear(program.result, 1.0)
    if not terms or any(not isinstance(call, A.Call) for _, call in terms):
        return []
    head = _start(text, program.result)
    sources = []
    for c, call in terms:
        params = _params(program, call)
        if "reduction" not in params:  # a term with no samples to weigh (a penalty)
            return []
        _gives_none(call, params)  # another reduction is an error here, where the source says it
        start, _, close = _extent(text, call)
        alone = text[:head] + text[start:close + 1]
        sources.append((c, _unreduced(alone) or alone))
    return sources


def _linear(node: Any, c: float) -> list[tuple[float, Any]]:
    """``node`` as a sum of weighted terms: [(weight, term)], through +, -, and products and quotients
    by numbers; [] where it is no such sum."""
    if isinstance(node, A.UnaryOp) and node.op in "+-":
        return _linear(node.operand, -c if node.op == "-" else c)
    if isinstance(node, A.BinOp) and node.op in "+-":
        left, right = _linear(node.left, c), _linear(node.right, -c if node.op == "-" else c)
        return left + right if left and right else []
    if isinstance(node, A.BinOp) and node.op == "*" and isinstance(node.left, A.Number):
        return _linear(node.right, c * node.left.value)
    if isinstance(node, A.BinOp) and node.op in "*/" and isinstance(node.right, A.Number) and node.right.value:
        return _linear(node.left, c * node.right.value if node.op == "*" else c / node.right.value)
    return [(c, node)]


def _start(text: str, node: Any) -> int:
    """Where the expression ``node`` starts in ``text``: its leftmost part, and the parentheses that
    open before it (a binary operation's own position is its operator's)."""
    while isinstance(node, A.BinOp):
        node = node.left
    start = _tokens_from(text, node)[0]
    while start and text[start - 1] in " \t(":
        start -= 1
    return start
