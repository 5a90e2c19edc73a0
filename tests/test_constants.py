"""A constant where a loss range-checks an input is checked at compile time, on every backend.

For every library loss of the stdlib table and every target or parameter it range-checks (``within``), the loss
called with a constant in that place (``bce(1, d, from_logits=true)``, the GAN generator's loss)
compiles on NumPy, JAX (eagerly and under a caller's jit) and torch to no check at all and gives, in
float64 and float32, the value and gradients of the same loss called with an array full of that
constant; a constant out of range is a compile-time error. The same for constant labels (``take``,
``one_hot``, ``sparse_cce``, ``nll``) and CTC's constant lengths, whose upper bounds are shapes, checked
at call time (under jit too: shapes are static).
"""

import importlib
import pkgutil
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import stdlib_rows
from sampling import covering

import lossdsl
from lossdsl.checks import checked_ops
from lossdsl.errors import InputError, LossDSLError
from lossdsl.ir import Apply, Input
from lossdsl.parser import parse
from lossdsl.pipeline import lower

jax.config.update("jax_enable_x64", True)

CASES = [case for info in pkgutil.iter_modules(stdlib_rows.__path__)
         for case in importlib.import_module(f"stdlib_rows.{info.name}").CASES]


def _checked_inputs(case):
    """The inputs of the row's call that a ``within`` op checks directly, with its bounds (from its IR
    alone: at collection, in every worker)."""
    g, _ = lower(parse(case.call.format(opts="")))
    found = {}
    for _, op in g:
        if isinstance(op, Apply) and op.prim == "within" and isinstance(g.op_of.get(op.operands[0]), Input):
            found[g.op_of[op.operands[0]].name] = (op.param("lower"), op.param("upper"))
    return found


# targets and parameters: a constant *prediction* is reduced over the class axis in cce (its row sum),
# and a number has no axis to reduce (a shape question of its own, not this class); nor has it axes to
# reshape, which cox_ph's events and lovasz_hinge's masks go through (reshape() refuses a number: noted)
RESHAPED = {("cox_ph", "event"), ("lovasz_hinge", "y_true")}
ROWS = [(case, name, bounds) for case in {c.call.split("(")[0]: c for c in reversed(CASES)}.values()
        for name, bounds in sorted(_checked_inputs(case).items())
        if name != "y_pred" and (case.call.split("(")[0], name) not in RESHAPED
        and re.search(rf"\b{name}\b", case.call.split("(", 1)[1])]


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


def _float(inputs, dtype):
    """The float arrays as ``dtype``; integer labels as they are."""
    return {k: v.astype(dtype) if np.issubdtype(np.asarray(v).dtype, np.floating) else v for k, v in inputs.items()}


def _run(loss, backend, wrt, inputs):
    """value_and_grad on ``backend``: "jax-jit" under a caller's jax.jit."""
    fn = loss.value_and_grad(wrt)
    if backend == "jax-jit":
        return jax.jit(lambda kw: fn(**kw))(inputs)
    return fn(**_to(backend, inputs))


BACKENDS = ["numpy", "jax", "jax-jit", "torch"]
DTYPES = [np.float64, np.float32]
TOLERANCE = {np.float64: (1e-10, 1e-12), np.float32: (2e-5, 1e-6)}


# each row on a covering of backend x dtype (every backend and every dtype per row: tests/sampling.py)
CHECKED_PLACES = [pytest.param(c, n, b, backend, dtype, id=f"{c.id}-{n}-{backend}-{dtype.__name__}")
                  for c, n, b in ROWS for backend, dtype in covering(f"{c.id}-{n}/constant", [BACKENDS, DTYPES])]


@pytest.mark.parametrize("case, name, bounds, backend, dtype", CHECKED_PLACES)
def test_a_constant_in_a_checked_place_matches_the_same_constant_as_an_input(case, name, bounds, backend, dtype):
    inputs = _float(case.sample(), dtype)
    # in range, as the row samples valid inputs; the mean, not an edge such as a count of 0 (a constant 0
    # in poisson_nll(full=true) folds log(0) in where()'s untaken branch: a bug of its own, not this class);
    # a number the dtype holds, so that the float64 reference sees the same one
    value = float(dtype(np.mean(inputs[name])))
    constant = lossdsl.compile(_with_constant(case.call.format(opts=""), name, value), backend=backend.split("-")[0])
    assert not any(isinstance(op, Apply) and op.prim == "within" and op.operands[0].is_number
                   for _, op in constant.graph)
    assert not checked_ops(constant.graph, constant.root) or name not in {
        constant.graph.op_of[s].name for op in checked_ops(constant.graph, constant.root)
        for s in op.operands[0].free_symbols if isinstance(constant.graph.op_of.get(s), Input)}
    reference = lossdsl.compile(case.call.format(opts=""), backend="numpy")
    rest = {k: v for k, v in inputs.items() if k != name}
    full = {**_float(rest, np.float64), name: np.full(np.shape(inputs[name]), value)}
    wrt = list(constant.differentiable)
    got_value, got_grads = _run(constant, backend, wrt, rest)
    want_value, want_grads = reference.value_and_grad(wrt)(**full)
    rtol, atol = TOLERANCE[dtype]
    assert np.asarray(got_value).dtype == dtype  # the constant takes the loss's dtype: no float64 promotion
    np.testing.assert_allclose(np.asarray(got_value), want_value, rtol=rtol, atol=atol)
    for w in wrt:
        assert np.asarray(got_grads[w]).dtype == dtype, w
        np.testing.assert_allclose(np.asarray(got_grads[w]), want_grads[w], rtol=rtol, atol=atol, err_msg=w)


@pytest.mark.parametrize("case, name, bounds", ROWS, ids=[f"{c.id}-{n}" for c, n, _ in ROWS])
def test_a_constant_out_of_range_is_a_compile_time_error(case, name, bounds):
    lower, upper = bounds
    bad = (upper + 1) if upper is not None else lower - 1
    text = _with_constant(case.call.format(opts=""), name, float(bad))
    with pytest.raises(LossDSLError, match=f"'{name}' must be a number") as info:
        lossdsl.compile(text)
    assert info.value.column == text.index(repr(float(bad))) + 1  # the caret under the constant


# --- labels: take, one_hot and the losses that gather, CTC's lengths ------------------------------

X = np.random.default_rng(14).normal(size=(4, 5))


def _logsumexp(xp, x):
    from scipy.special import logsumexp
    return (jax.scipy.special.logsumexp if xp is jnp else logsumexp)(x, axis=-1, keepdims=True)


def _log_softmax(xp, x):
    return x - _logsumexp(xp, x)


# (loss with a constant label c, the same loss of an integer input `labels`, reference of x and labels)
LABEL_ROWS = [
    ("mean(take(x, {c}))", "mean(take(x, labels))", lambda xp, x, c: xp.mean(x[:, c])),
    ("sum(one_hot({c}, 5) * x)", "sum(one_hot(labels, 5) * x)", lambda xp, x, c: xp.sum(x[:, c])),
    ("sparse_cce({c}, x, from_logits=true)", "sparse_cce(labels, x, from_logits=true)",
     lambda xp, x, c: -xp.mean(_log_softmax(xp, x)[:, c])),
    ("nll({c}, x)", "nll(labels, x)", lambda xp, x, c: -xp.mean(x[:, c])),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("constant, _, reference", LABEL_ROWS, ids=[r[0] for r in LABEL_ROWS])
def test_a_constant_label_generates_no_check_and_matches_the_reference(constant, _, reference, backend, dtype):
    for c in (0, 4):  # the first class and the last
        loss = lossdsl.compile(constant.format(c=c), backend=backend.split("-")[0])
        assert not checked_ops(loss.graph, loss.root)
        value, grads = _run(loss, backend, ["x"], {"x": X.astype(dtype)})
        x = X.astype(dtype).astype(np.float64)
        want = jax.grad(lambda x, c=c: reference(jnp, x, c))(jnp.asarray(x))
        rtol, atol = TOLERANCE[dtype]
        assert np.asarray(value).dtype == np.asarray(grads["x"]).dtype == dtype
        np.testing.assert_allclose(np.asarray(value), reference(np, x, c), rtol=rtol, atol=atol)
        np.testing.assert_allclose(np.asarray(grads["x"]), np.asarray(want), rtol=rtol, atol=atol)


@pytest.mark.parametrize("constant, from_input, _", LABEL_ROWS, ids=[r[0] for r in LABEL_ROWS])
def test_a_constant_label_out_of_range(constant, from_input, _):
    """Below 0 (and, for one_hot, at or beyond its num_classes) at compile time, under the caret; beyond
    the classes of a gather's array, a shape, at call time on every backend and under jit, as the same
    label from an input is."""
    text = constant.format(c=-1)
    with pytest.raises(LossDSLError, match="must be a class index") as info:
        lossdsl.compile(text)
    # take and one_hot point at the label; a loss that gathers labels it computed (ignore_index) at its call
    gathers = text.startswith(("sparse_cce(", "nll("))
    assert info.value.column == (1 if gathers else text.index("-1") + 1)
    beyond = constant.format(c=5)
    if "one_hot" in constant:
        with pytest.raises(LossDSLError, match=r"in \[0, 5\); got the constant 5"):
            lossdsl.compile(beyond)
        return
    for backend in BACKENDS:
        loss = lossdsl.compile(beyond, backend=backend.split("-")[0])
        with pytest.raises((InputError, ValueError), match=r"class indices in \[0, 5\); got the constant 5"):
            _run(loss, backend, ["x"], {"x": X})
    with pytest.raises(InputError, match=r"class indices in \[0, 5\)"):
        lossdsl.compile(from_input)(x=X, labels=np.full(4, 5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_constant_ctc_lengths(backend):
    """CTC's lengths may be constants: below 0 is a compile-time error at the argument, beyond T or S (shapes)
    a call-time one on every backend; in range, the loss and gradient of the same lengths as inputs."""
    rng = np.random.default_rng(3)
    T, B, C, S = 6, 3, 4, 2
    z = rng.normal(size=(T, B, C))
    lp = _log_softmax(np, z)
    targets = rng.integers(1, C, size=(B, S))
    want = lossdsl.compile("ctc(lp, targets, il, tl)").value_and_grad("lp")(
        lp=lp, targets=targets, il=np.full(B, 5), tl=np.full(B, 2))
    torch_reference = _torch_ctc(lp, targets, 5, 2)
    np.testing.assert_allclose(want[0], torch_reference, rtol=1e-10)
    run = backend.split("-")[0]
    got = _run(lossdsl.compile("ctc(lp, targets, 5, 2)", backend=run), backend, "lp", {"lp": lp, "targets": targets})
    np.testing.assert_allclose(np.asarray(got[0]), torch_reference, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(got[1]), want[1], rtol=1e-9, atol=1e-12)
    for text, match in (("ctc(lp, targets, 7, 2)", r"input_lengths.*\[0, 6\]"),
                        ("ctc(lp, targets, 5, 3)", r"target_lengths.*\[0, 2\]")):
        with pytest.raises((InputError, ValueError), match=match):
            _run(lossdsl.compile(text, backend=run), backend, "lp", {"lp": lp, "targets": targets})
    with pytest.raises(LossDSLError, match="'target_lengths' must be a length") as info:
        lossdsl.compile("ctc(lp, targets, 5, -1)")
    assert info.value.column == len("ctc(lp, targets, 5, ") + 1


def _torch_ctc(lp, targets, input_length, target_length):
    import torch
    B = targets.shape[0]
    return float(torch.nn.functional.ctc_loss(torch.as_tensor(lp), torch.as_tensor(targets),
                                              torch.full((B,), input_length), torch.full((B,), target_length)))
