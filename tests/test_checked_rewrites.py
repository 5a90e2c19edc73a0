"""A call-time check between the parts of a stable rewrite leaves the rewrite in place (issue 14, item 6).

``within`` stands beside the expression (Graph.check), not inside it, so ``log(within(softmax(z)))``
is rewritten and differentiated as ``log(softmax(z))``. Table: every stable rewrite rule that spans
more than one builtin, written with and without a check between its parts, on every backend, in
float32 and float64, at inputs where the unstable form overflows or underflows: the checked form
gives the unchecked form's value and gradient, finite; and the check still runs.
"""

import jax
import numpy as np
import pytest
import torch

import lossdsl
from lossdsl.errors import InputError

jax.config.update("jax_enable_x64", True)

BACKENDS = ["numpy", "jax", "torch"]
Z = {np.float64: np.array([[-1000.0, 700.0, 0.0, 5.0], [-50.0, 50.0, 100.0, -100.0]]),
     np.float32: np.array([[-100.0, 80.0, 0.0, 5.0], [-50.0, 50.0, 88.0, -88.0]])}

# (id, the rule's unchecked form, the same with a check between its parts); z: logits
RULES = [
    ("log-sigmoid", "sum(log(sigmoid(z)))", "sum(log(within(sigmoid(z), 0, 1)))"),
    ("log-one-minus-sigmoid", "sum(log(1 - sigmoid(z)))", "sum(log(1 - within(sigmoid(z), 0, 1)))"),
    ("log-one-plus-exp", "sum(log(1 + exp(z)))", "sum(log(1 + within(exp(z), 0)))"),
    ("log-softmax", "sum(log(softmax(z)))", "sum(log(within(softmax(z), 0, 1)))"),
    ("log-sum-exp", "sum(log(sum(exp(z), axis=-1)))", "sum(log(sum(within(exp(z), 0), axis=-1)))"),
    ("log-sum-exp-outer", "sum(log(sum(exp(z), axis=-1)))", "sum(log(within(sum(exp(z), axis=-1), 0)))"),
    ("log-cosh", "sum(log(cosh(z)))", "sum(log(within(cosh(z), 1)))"),
    ("log1p", "sum(log(1 + exp(-abs(z))))", "sum(log(1 + within(exp(-abs(z)), 0, 1)))"),
    ("expm1", "sum(exp(z/1e6) - 1)", "sum(within(exp(z/1e6), 0) - 1)"),
    ("kl-of-softmaxes", "kl_div(softmax(t), softmax(z))", None),  # kl_div checks both arguments itself
]


def _run(source, backend, inputs):
    loss = lossdsl.compile(source, backend=backend)
    value, grads = loss.value_and_grad(list(loss.differentiable))(**inputs)
    return float(value), {k: np.asarray(v, dtype=np.float64) for k, v in grads.items()}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: d.__name__)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", RULES, ids=[r[0] for r in RULES])
def test_check_between_rule_parts_keeps_the_stable_form(row, backend, dtype):
    _, plain, checked = row
    z = Z[dtype].astype(dtype)
    inputs = {"z": z, "t": z[::-1, ::-1].copy()} if "(t)" in plain else {"z": z}
    if checked is None:  # the check is inside the library loss; its unchecked twin is written with log_softmax
        checked, plain = plain, "mean(sum(softmax(t)*(log_softmax(t) - log_softmax(z)), axis=-1))"
    want_value, want_grads = _run(plain, "numpy", {k: v.astype(np.float64) for k, v in inputs.items()})
    value, grads = _run(checked, backend, inputs)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values()), (value, grads)
    np.testing.assert_allclose(value, want_value, rtol=tol)
    for name, g in grads.items():
        # entries are differences of probabilities and of logits' terms: rounding residues of unit scale
        unit = max(1.0, np.max(np.abs(want_grads[name])))
        np.testing.assert_allclose(g, want_grads[name], rtol=tol, atol=tol * unit)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_check_beside_the_expression_still_runs(backend):
    loss = lossdsl.compile("sum(log(within(softmax(z), 0, 0.5)))", backend=backend)
    assert np.isfinite(float(loss(z=np.array([0.0, 0.0, 0.0]))))
    with pytest.raises(InputError, match="0.5"):
        loss(z=np.array([10.0, 0.0, 0.0]))
    with pytest.raises(InputError):
        loss.grad("z")(z=np.array([10.0, 0.0, 0.0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_distillation_loss_of_two_softmaxes_is_finite(backend):
    """The issue's case: kl_div(softmax(t/T), softmax(s/T)), float32 logits of std 100."""
    rng = np.random.default_rng(0)
    t, s = (rng.normal(size=(2, 64, 10)) * 100).astype(np.float32)
    loss = lossdsl.compile("kl_div(softmax(t / 2), softmax(s / 2))", backend=backend)
    value, grads = loss.value_and_grad(["t", "s"])(t=t, s=s)
    ref = lossdsl.compile("mean(sum(softmax(t/2)*(log_softmax(t/2) - log_softmax(s/2)), axis=-1))", backend="numpy")
    want, want_grads = ref.value_and_grad(["t", "s"])(t=t.astype(np.float64), s=s.astype(np.float64))
    np.testing.assert_allclose(float(value), float(want), rtol=1e-5)
    for k in ("t", "s"):
        g = np.asarray(grads[k] if not isinstance(grads[k], torch.Tensor) else grads[k].numpy(), dtype=np.float64)
        # float32 sums of log-probability differences of about 100: residues of 100*eps32 per term
        np.testing.assert_allclose(g, want_grads[k], rtol=1e-3, atol=1e-4 * np.max(np.abs(want_grads[k])))
