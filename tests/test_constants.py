"""A constant where a loss range-checks an input is checked at compile time, on every backend.

For every library loss of the stdlib table and every target or parameter it range-checks (``within``), the loss
called with a constant in that place (``bce(1, d, from_logits=true)``, the GAN generator's loss)
compiles on NumPy, JAX and torch to no check at all and gives the value and gradients of the same
loss called with an array full of that constant; a constant out of range is a compile-time error.
"""

import importlib
import pkgutil
import re

import numpy as np
import pytest
import stdlib_rows

import lossdsl
from lossdsl.errors import LossDSLError
from lossdsl.ir import Apply, Input

CASES = [case for info in pkgutil.iter_modules(stdlib_rows.__path__)
         for case in importlib.import_module(f"stdlib_rows.{info.name}").CASES]


def _checked_inputs(case):
    """The inputs of the row's call that a ``within`` op checks directly, with its bounds."""
    g = lossdsl.compile(case.call.format(opts="")).graph
    found = {}
    for _, op in g:
        if isinstance(op, Apply) and op.prim == "within" and isinstance(g.op_of.get(op.operands[0]), Input):
            found[g.op_of[op.operands[0]].name] = (op.param("lower"), op.param("upper"))
    return found


# targets and parameters: a constant *prediction* is reduced over the class axis in cce (its row sum),
# and a number has no axis to reduce (a shape question of its own, not this class)
ROWS = [(case, name, bounds) for case in {c.call.split("(")[0]: c for c in reversed(CASES)}.values()
        for name, bounds in sorted(_checked_inputs(case).items())
        if name != "y_pred" and re.search(rf"\b{name}\b", case.call.split("(", 1)[1])]


def _with_constant(call, name, value):
    head, args = call.split("(", 1)
    return head + "(" + re.sub(rf"\b{name}\b", repr(value), args, count=1)


def _to(backend, inputs):
    if backend != "torch":
        return inputs
    import torch
    return {k: torch.as_tensor(v) for k, v in inputs.items()}


def test_every_range_checked_loss_is_covered():
    assert {c.call.split("(")[0] for c, _, _ in ROWS} >= {"bce", "focal", "kl_div", "gaussian_nll", "poisson_nll"}


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("case, name, bounds", ROWS, ids=[f"{c.id}-{n}" for c, n, _ in ROWS])
def test_a_constant_in_a_checked_place_matches_the_same_constant_as_an_input(case, name, bounds, backend):
    inputs = case.sample()
    # in range, as the row samples valid inputs; the mean, not an edge such as a count of 0 (a constant 0
    # in poisson_nll(full=true) folds log(0) in where()'s untaken branch: a bug of its own, not this class)
    value = float(np.mean(inputs[name]))
    constant = lossdsl.compile(_with_constant(case.call.format(opts=""), name, value), backend=backend)
    assert not any(isinstance(op, Apply) and op.prim == "within" and op.operands[0].is_number
                   for _, op in constant.graph)
    reference = lossdsl.compile(case.call.format(opts=""), backend="numpy")
    full = {**inputs, name: np.full_like(np.asarray(inputs[name], dtype=float), value)}
    rest = {k: v for k, v in inputs.items() if k != name}
    wrt = list(constant.differentiable)
    got_value, got_grads = constant.value_and_grad(wrt)(**_to(backend, rest))
    want_value, want_grads = reference.value_and_grad(wrt)(**full)
    rtol = 1e-5 if backend == "jax" else 1e-10  # JAX computes in float32 unless x64 is on
    np.testing.assert_allclose(np.asarray(got_value), want_value, rtol=rtol, atol=1e-7)
    for w in wrt:
        np.testing.assert_allclose(np.asarray(got_grads[w]), want_grads[w], rtol=rtol, atol=1e-7)


@pytest.mark.parametrize("case, name, bounds", ROWS, ids=[f"{c.id}-{n}" for c, n, _ in ROWS])
def test_a_constant_out_of_range_is_a_compile_time_error(case, name, bounds):
    lower, upper = bounds
    bad = (upper + 1) if upper is not None else lower - 1
    with pytest.raises(LossDSLError, match="must be a number in"):
        lossdsl.compile(_with_constant(case.call.format(opts=""), name, float(bad)))
