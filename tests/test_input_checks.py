"""Every call-time input check, whatever the checked argument is, on every backend, and under jit.

The table: every check that a library loss or a builtin makes at call time (``within``: probabilities,
targets, variances, counts; ``take``/``one_hot``/``sparse_cce``/``nll``: labels; ``ctc``: lengths,
labels, blanks) × the checked argument as a bare input and as an expression of inputs (CTC also
with log-probabilities computed by ``log_softmax``) × backend. The library rows are derived from
the stdlib table's graphs, so a check a loss gains is covered here without a new row.

* Eagerly (NumPy, JAX, torch), a failed check is an ``InputError`` that names the input(s).
* Under a caller's ``jax.jit`` nothing can raise: the value and every gradient (through
  ``jax.grad`` and ``value_and_grad``) are NaN throughout, never a plausible number; valid inputs
  under jit give NumPy's value.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
import pytest
import stdlib_rows
from sampling import covering, one_of

import lossdsl
from lossdsl.backends.runtime import _bounds_text
from lossdsl.checks import CHECKED
from lossdsl.errors import InputError
from lossdsl.ir import Apply, Graph, Input
from lossdsl.parser import parse
from lossdsl.pipeline import lower

jax.config.update("jax_enable_x64", True)

UNIT = "unit"  # the input multiplied in to make a checked argument an expression of inputs


@dataclass(frozen=True)
class Row:
    """A call whose check (an op of ``CHECKED``: ``kind``) on ``name`` fails once ``bad`` changes
    the valid ``inputs``; ``message``: what the error says after naming the input."""

    id: str
    kind: str
    call: str
    inputs: dict[str, Any]
    name: str
    bad: Callable[[np.ndarray], np.ndarray]
    message: str


def _set_first(value: float | int) -> Callable[[np.ndarray], np.ndarray]:
    def change(x: np.ndarray) -> np.ndarray:
        x = np.array(x, copy=True)
        x.flat[0] = value
        return x
    return change


def _inputs_read(graph: Graph, expr: Any) -> set[str]:
    """Every input ``expr`` depends on, through any op."""
    names, stack, seen = set(), list(expr.free_symbols), set()
    while stack:
        s = stack.pop()
        if s in seen:
            continue
        seen.add(s)
        op = graph.op_of.get(s)
        if isinstance(op, Input):
            names.add(op.name)
        elif isinstance(op, Apply):
            stack.extend(f for o in op.operands for f in o.free_symbols)
    return names


def _library_rows() -> list[Row]:
    """One row per library loss, checked input and kind of check: the loss's first stdlib case
    that takes probabilities (most checks), values out of the checked range in the first element."""
    cases = [c for info in pkgutil.iter_modules(stdlib_rows.__path__)
             for c in importlib.import_module(f"stdlib_rows.{info.name}").CASES]
    first: dict[str, Any] = {}
    for c in cases:
        loss = c.call.split("(")[0]
        if loss not in first or ("from_logits=true" in first[loss].call and "from_logits=true" not in c.call):
            first[loss] = c
    rows = {}
    for case in first.values():
        call = case.call.format(opts="")
        graph, _ = lower(parse(call))  # the IR alone: at collection, in every worker
        for _, op in graph:
            if not isinstance(op, Apply) or op.prim not in CHECKED or op.prim == "ctc":
                continue
            for name in sorted(_inputs_read(graph, op.operands[CHECKED[op.prim][0]])):
                if op.prim == "within":
                    lo, hi = op.param("lower"), op.param("upper")
                    bounds = _bounds_text(lo, hi, op.param("strict"))  # "in [0, 1]", ">= 0", "> 0"
                    bad, message = _set_first(hi + 0.5 if hi is not None else lo - 0.5), "must be " + re.escape(bounds)
                else:
                    bad, message = _set_first(10**6), r"must hold class indices in \[0, \d+\)"
                row = Row(f"{case.id}-{name}-{op.prim}", op.prim, call, case.sample(), name, bad, message)
                rows.setdefault(row.id, row)
    return list(rows.values())


RNG = np.random.default_rng(14)
T, B, C, S = 6, 2, 4, 3


def _log_probs() -> np.ndarray:
    z = RNG.normal(size=(T, B, C))
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


CTC = "ctc(log_probs, targets, input_lengths, target_lengths)"
CTC_INPUTS = {"targets": np.array([[1, 2, 3], [3, 1, 0]]), "input_lengths": np.array([6, 5]),
              "target_lengths": np.array([3, 2])}
LABELS = {"y": np.array([0, 2, 1]), "x": RNG.normal(size=(3, 4))}


def _builtin_rows() -> list[Row]:
    rows = [
        Row("within", "within", "mean(within(p, 0, 1) * x)", {"p": RNG.uniform(size=3), "x": RNG.normal(size=3)}, "p",
            _set_first(1.25), r"must be in \[0, 1\]"),
        Row("within-below", "within", "sum(log(within(v, 0)))", {"v": RNG.uniform(1, 2, size=3)}, "v",
            _set_first(-1.0), r"must be >= 0"),
        Row("take-labels", "take", "mean(take(x, y))", LABELS, "y", _set_first(4), r"must hold class indices in \[0, 4\)"),
        Row("take-negative-labels", "take", "mean(take(exp(x), y))", LABELS, "y", _set_first(-1),
            r"must hold class indices in \[0, 4\)"),
        Row("one_hot-labels", "one_hot", "mean(one_hot(y, 4) * x)", LABELS, "y", _set_first(4),
            r"must hold class indices in \[0, 4\)"),
        Row("index-position", "index_check", "sum(x[:, i]^2)", {"x": RNG.normal(size=(3, 4)), "i": np.int64(1)}, "i",
            _set_first(4), r"is out of range: an index into axis 1 of input 'x' must lie in \[-4, 4\); got 4"),
    ]
    inputs = {"log_probs": _log_probs(), **CTC_INPUTS}  # log_probs: in the expression form, log_softmax's z
    return [*rows,
            Row("ctc-input_lengths", "ctc", CTC, inputs, "input_lengths", lambda x: np.array([6, 7]),
                r"must lie in \[0, 6\] \(T, the frames of log_probs\); got 7 for sample 1"),
            Row("ctc-target_lengths", "ctc", CTC, inputs, "target_lengths", lambda x: np.array([3, 4]),
                r"must lie in \[0, 3\] \(S, the columns of targets\); got 4 for sample 1"),
            Row("ctc-label", "ctc", CTC, inputs, "targets", lambda x: np.array([[1, 4, 3], [3, 1, 0]]),
                r"class labels in \[0, 4\) other than blank=0.*got 4 at sample 0, position 1"),
            Row("ctc-blank", "ctc", CTC, inputs, "targets", lambda x: np.array([[1, 2, 3], [3, 0, 9]]),
                r"class labels in \[0, 4\) other than blank=0.*got 0 at sample 1, position 1")]


ROWS = [*_library_rows(), *_builtin_rows()]


def _form(row: Row, form: str) -> tuple[str, dict[str, Any], str]:
    """The row's call, its valid inputs and the regex that its error must open with, with the checked
    input as it is (``bare``) or multiplied by an input of ones (``expression``; CTC's log_probs
    then also computed by log_softmax)."""
    if form == "bare":
        return row.call, row.inputs, f"input '{row.name}'"
    head, args = row.call.split("(", 1)
    call = head + "(" + re.sub(rf"\b{row.name}\b", f"({row.name} * {UNIT})", args, count=1)
    inputs = {**row.inputs, UNIT: np.ones_like(np.asarray(row.inputs[row.name]))}
    if row.kind == "ctc":  # log-probabilities computed from logits, the case that once went unchecked on JAX
        call = call.replace("ctc(log_probs,", "ctc(log_softmax(z, axis=-1),")
        inputs["z"] = inputs.pop("log_probs")
    return call, inputs, f"the expression of inputs ('{row.name}', '{UNIT}'|'{UNIT}', '{row.name}')"


def _to(backend: str, inputs: dict[str, Any]) -> dict[str, Any]:
    if backend != "torch":
        return inputs
    import torch
    return {k: torch.as_tensor(v) for k, v in inputs.items()}


def test_the_table_covers_every_kind_of_check_and_the_library():
    assert {r.kind for r in ROWS} == set(CHECKED)
    losses = {r.call.split("(")[0] for r in ROWS}
    assert losses >= {"bce", "cce", "sparse_cce", "nll", "focal", "categorical_focal", "kl_div", "gaussian_nll",
                      "poisson_nll", "ctc", "mean", "sum"}


FORMS = ("bare", "expression")
# a covering of forms and backends per row: each backend (JAX, whose checks read statistics that its
# jitted code returns; NumPy and torch, which check as they go) and each form at least once (all of
# them: LOSSDSL_FULL_TABLES=1); test_under_jit_... runs every row under the caller's jit in one form
EAGER = [pytest.param(row, form, backend, id=f"{row.id}-{form}-{backend}") for row in ROWS
         for form, backend in covering(f"{row.id}/eager", [FORMS, ("numpy", "jax", "torch")])]


@pytest.mark.parametrize("row, form, backend", EAGER)
def test_a_failed_check_raises_naming_the_input(row, form, backend):
    call, inputs, named = _form(row, form)
    loss = lossdsl.compile(call, backend=backend)
    loss(**_to(backend, inputs))  # valid inputs pass
    bad = {**inputs, row.name: row.bad(inputs[row.name])}
    for fn in (loss, loss.value_and_grad(loss.differentiable)):
        with pytest.raises(InputError, match=f"^{named}.* {row.message}"):
            fn(**_to(backend, bad))


@functools.cache
def _under_jit(call: str) -> Callable[[dict[str, Any]], Any]:
    """The loss's value, ``jax.grad`` of it and its ``value_and_grad``, in one function under the
    caller's jit (one XLA compilation, shared by the rows that call the same loss)."""
    loss = lossdsl.compile(call, backend="jax")
    wrt = loss.differentiable

    def all_three(inputs: dict[str, Any]) -> Any:
        floats = {k: v for k, v in inputs.items() if k in wrt}
        rest = {k: v for k, v in inputs.items() if k not in wrt}
        return loss(**inputs), jax.grad(lambda f: loss(**f, **rest))(floats), loss.value_and_grad(wrt)(**inputs)
    return jax.jit(all_three)


# one form per row, drawn per row (both over the table, and both for every row in EAGER)
UNDER_JIT = [pytest.param(row, form, id=f"{row.id}-{form}") for row in ROWS for form in one_of(f"{row.id}/jit", FORMS)]


def test_both_forms_run_under_jit():
    assert {p.values[1] for p in UNDER_JIT} == set(FORMS)


@pytest.mark.parametrize("row, form", UNDER_JIT)
def test_under_jit_a_failed_check_makes_the_value_and_every_gradient_nan(row, form):
    call, inputs, _ = _form(row, form)
    jitted = _under_jit(call)
    # valid inputs: NumPy's value, finite gradients
    value, grads, (value2, grads2) = jitted(inputs)
    want = lossdsl.compile(call)(**inputs)
    for v in (value, value2):
        np.testing.assert_allclose(np.asarray(v), want, rtol=1e-9, atol=1e-12)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves((grads, grads2)))
    value, grads, (value2, grads2) = jitted({**inputs, row.name: row.bad(inputs[row.name])})
    assert np.all(np.isnan(np.asarray(value))) and np.all(np.isnan(np.asarray(value2)))
    assert set(grads) == set(grads2) == set(lossdsl.compile(call).differentiable)
    assert all(np.all(np.isnan(g)) for g in jax.tree_util.tree_leaves((grads, grads2)))
