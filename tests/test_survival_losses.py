"""The survival library (stdlib/survival.loss): cox_ph's value and gradients against jax.value_and_grad
of the sorted Breslow reference (tests/stdlib_rows/survival.py) on NumPy, JAX (eager and under a
caller's jax.jit) and torch, in float32 and float64 (a covering of run x dtype per case); central finite differences in float64; its
Hessian against jax.hessian; then the peers: torchsurv's neg_partial_log_likelihood (distinct times,
and Breslow's ties), pycox's cox_ph_loss as its definition reads, and the deliberate differences."""

import importlib.util
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from oracles import (
    RUNS,
    assert_hessian_matches_jax,
    assert_value_and_grads_match_jax,
    finite_differences,
)
from sampling import sampled
from stdlib_rows.survival import cox_breslow, subjects

import lossdsl
from lossdsl.errors import InputError

jax.config.update("jax_enable_x64", True)

HAS_TORCHSURV = importlib.util.find_spec("torchsurv") is not None
COX = "cox_ph(time, event, risk)"


def _sample(seed, **kw):
    return subjects(**kw)(np.random.default_rng(seed))


def _extreme(seed):
    inputs = _sample(seed, ties=True)
    rng = np.random.default_rng(seed + 1)
    return {**inputs, "risk": rng.choice([-1000.0, 1000.0], size=inputs["risk"].shape) + rng.normal(size=12)}


# (id, inputs): every float input is differentiated, time (gradient 0) and event included
CASES = [
    ("distinct", _sample(1)),
    ("tied-groups", _sample(2, ties=True, n=16)),
    ("no-events", _sample(3, events=0.0)),
    ("single-event", {**_sample(4), "event": np.eye(12)[5]}),
    ("all-events-tied", {**_sample(5, events=1.0), "time": np.repeat([1.0, 2.0, 3.0], 4)}),
    ("risks-1000", _extreme(6)),
]


def _reference(time, event, risk):
    return cox_breslow(jnp, time, event, risk)


def test_samples_hold_their_hard_cases():
    """What each case is named for: tie groups among events, no events, one event, risks of +-1000."""
    cases = dict(CASES)
    time, event = cases["tied-groups"]["time"], cases["tied-groups"]["event"]
    assert sum(np.sum((time == t) & (event == 1)) > 1 for t in np.unique(time)) >= 2
    assert np.sum(cases["no-events"]["event"]) == 0 and np.sum(cases["single-event"]["event"]) == 1
    assert np.max(np.abs(cases["risks-1000"]["risk"])) > 999 and len(np.unique(cases["risks-1000"]["time"])) < 12


@pytest.mark.parametrize("row, run, dtype", sampled(CASES, [c for c, _ in CASES], [RUNS, [np.float32, np.float64]],
                                                     "cox"))
def test_value_and_gradients_match_jax(row, run, dtype):
    case, inputs = row
    tol = None
    if case == "risks-1000" and dtype == np.float32:
        tol = 1e-3  # terms like 1000.3 - 1000.1 keep float32's absolute resolution at 1000, ~6e-5
    assert_value_and_grads_match_jax(COX, inputs, run, dtype, _reference, tol=tol)


@pytest.mark.parametrize("case, inputs", [c for c in CASES if c[0] != "risks-1000"], ids=[c for c, _ in CASES][:-1])
def test_finite_differences(case, inputs):
    """In risk; in time too where the times are distinct (a step across a tie changes the risk sets).
    Not in event: a step leaves [0, 1] at a censored subject, which the loss refuses."""
    loss = lossdsl.compile(COX)
    distinct = len(np.unique(inputs["time"])) == len(inputs["time"])
    grads = loss.grad(["risk", "time"])(**inputs)
    for name in ["risk", "time"] if distinct else ["risk"]:
        np.testing.assert_allclose(grads[name], finite_differences(loss, inputs, name), rtol=1e-6, atol=1e-8,
                                   err_msg=name)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_hessian_in_risk_matches_jax(backend):
    assert_hessian_matches_jax(COX, _sample(7, ties=True), "risk", _reference, backend)


def test_no_events_is_zero_with_zero_gradient():
    inputs = _sample(3, events=0.0)
    value, grads = lossdsl.compile(COX).value_and_grad("risk")(**inputs)
    assert value == 0.0 and np.all(grads == 0.0)


def test_integer_labels_and_columns_agree_with_floats():
    """event as integer labels, time and risk as (N, 1) columns: the same value; the gradient in risk's shape."""
    inputs = _sample(8, ties=True)
    loss = lossdsl.compile(COX)
    columns = {"time": inputs["time"][:, None], "event": inputs["event"].astype(np.int64),
               "risk": inputs["risk"][:, None]}
    np.testing.assert_allclose(loss(**columns), loss(**inputs), rtol=1e-15)
    np.testing.assert_allclose(loss.grad("risk")(**columns), loss.grad("risk")(**inputs)[:, None], rtol=1e-15)


def test_event_outside_zero_one_is_an_input_error():
    with pytest.raises(InputError, match="event"):
        lossdsl.compile(COX)(**{**_sample(9), "event": np.full(12, 2.0)})


def _pycox_definition(time, event, risk, eps=1e-7):
    """pycox.models.loss.cox_ph_loss as its source reads: sort by descending time, log of the running
    sum of exp(risk) (shifted by the max, eps added), events' terms summed over the event count."""
    order = np.argsort(-time, kind="stable")
    e, r = event[order], risk[order]
    m = np.max(r)
    log_cumsum = np.log(np.cumsum(np.exp(r - m)) + eps) + m
    with np.errstate(invalid="ignore"):
        return -np.sum(e * (r - log_cumsum)) / np.sum(e)


def test_pycox_definition_where_times_are_distinct_and_its_nan_without_events():
    loss = lossdsl.compile(COX)
    for seed in range(5):
        inputs = _sample(10 + seed, n=30)
        np.testing.assert_allclose(loss(**inputs), _pycox_definition(**inputs), rtol=1e-6, atol=1e-6)
    no_events = _sample(3, events=0.0)
    assert np.isnan(_pycox_definition(**no_events)) and loss(**no_events) == 0.0  # deliberate: as torchsurv


@pytest.mark.skipif(not HAS_TORCHSURV, reason="torchsurv is a test-only dependency (dev extra)")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_torchsurv(dtype):
    """torchsurv's Cox loss: its mean where the times are distinct (value and gradient by autograd);
    with ties, its ties_method="breslow" sum over the event count (its mean divides by the distinct
    event times); 0 without events."""
    import torch
    from torchsurv.loss.cox import neg_partial_log_likelihood

    def peer(time, event, risk, **kw):
        r = torch.tensor(risk, dtype=torch.float64, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # its notes on ties and on no events
            value = neg_partial_log_likelihood(r, torch.tensor(event).bool(), torch.tensor(time), **kw)
        grad = torch.autograd.grad(value, r)[0].numpy() if value.grad_fn is not None else np.zeros_like(risk)
        return float(value.detach()), grad

    loss = lossdsl.compile(COX, backend="torch")
    tol = 1e-5 if dtype == np.float32 else 1e-7  # torchsurv computes in float32 in places

    def ours(inputs):
        args = {k: torch.tensor(v.astype(dtype)) for k, v in inputs.items()}
        value, grad = loss.value_and_grad("risk")(**args)
        return float(value), grad.numpy()

    distinct = _sample(20, n=30)
    value, grad = ours(distinct)
    want_value, want_grad = peer(**distinct)
    np.testing.assert_allclose(value, want_value, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, want_grad, rtol=tol, atol=tol)

    tied = _sample(21, ties=True, n=30)
    events = np.sum(tied["event"])
    value, grad = ours(tied)
    want_sum, want_grad = peer(**tied, ties_method="breslow", reduction="sum")
    np.testing.assert_allclose(value, want_sum / events, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, want_grad / events, rtol=1e-5, atol=1e-5)

    no_events = _sample(3, events=0.0)
    assert ours(no_events)[0] == peer(**no_events)[0] == 0.0
