"""CTC beyond the stdlib table (tests/stdlib_rows/sequence.py), on every backend (the dynamic programme
is written once, in backends/runtime.py): per-sample values and cotangents, jax.grad and jit through
the compiled JAX loss, infinite losses, call-time checks of the targets and
lengths, compile-time checks of the options, weights, dtypes, and the relation to PyTorch's gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from stdlib_rows.sequence import INPUT_LENGTHS, TARGET_LENGTHS, TARGETS, B, C, S, T, ctc_nll

import lossdsl
from lossdsl.errors import InputError

jax.config.update("jax_enable_x64", True)

BACKENDS = ["numpy", "jax", "torch"]
ARGS = "log_probs, targets, input_lengths, target_lengths"


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _inputs(seed=0, **changes):
    lp = _log_softmax(1.5 * np.random.default_rng(seed).normal(size=(T, B, C)))
    return {"log_probs": lp, "targets": TARGETS, "input_lengths": INPUT_LENGTHS,
            "target_lengths": TARGET_LENGTHS, **changes}


def _ctc(options="", backend="numpy"):
    return lossdsl.compile(f"ctc({ARGS}{options})", backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unreduced_values_and_cotangents_match_the_reference(backend):
    inputs = _inputs()
    loss = _ctc(', reduction="none"', backend)
    want = ctc_nll(np, **inputs)
    np.testing.assert_allclose(np.asarray(loss(**inputs)), want, rtol=1e-10)
    # a vector-Jacobian product with a cotangent per sample, through the generated _vjp
    ct = np.array([0.5, -2.0, 1.0, 3.0])
    if backend == "jax":
        _, vjp = jax.vjp(lambda lp: loss(**{**inputs, "log_probs": lp}), jnp.asarray(inputs["log_probs"]))
        (got,) = vjp(jnp.asarray(ct))
    else:
        got = _ctc(', reduction="none", weights=w', backend).grad("log_probs")(**inputs, w=ct)
    _, ref_vjp = jax.vjp(lambda lp: ctc_nll(jnp, **{**inputs, "log_probs": lp}), jnp.asarray(inputs["log_probs"]))
    np.testing.assert_allclose(np.asarray(got), ref_vjp(jnp.asarray(ct))[0], rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("options", ['', ', reduction="sum"', ', blank=2, zero_infinity=true'])
def test_jax_grad_through_the_compiled_loss_is_its_symbolic_gradient(options):
    inputs = _inputs(targets=np.where(TARGETS == 2, 0, TARGETS)) if "blank=2" in options else _inputs()
    loss = _ctc(options, "jax")

    def value(lp):
        return loss(**{**inputs, "log_probs": lp})

    lp = jnp.asarray(inputs["log_probs"])
    want = loss.grad("log_probs")(**inputs)
    np.testing.assert_allclose(jax.grad(value)(lp), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(jax.jit(jax.grad(value))(lp), want, rtol=1e-12, atol=1e-15)
    # and the generated module's own functions, jitted by hand, agree with NumPy
    fn = loss.module.loss
    jitted = jax.jit(lambda lp, tg, il, tl: fn(log_probs=lp, targets=tg, input_lengths=il, target_lengths=tl))
    got = jitted(lp, inputs["targets"], inputs["input_lengths"], inputs["target_lengths"])
    np.testing.assert_allclose(got, _ctc(options)(**inputs), rtol=1e-12)
    np.testing.assert_allclose(want, _ctc(options).grad("log_probs")(**inputs), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_is_minus_the_posterior_of_each_frame(backend):
    inputs = _inputs()
    grad = np.asarray(_ctc(', reduction="sum"', backend).grad("log_probs")(**inputs))
    sums = grad.sum(axis=-1)  # each frame emits exactly one class
    frames = np.arange(T)[:, None] < INPUT_LENGTHS
    np.testing.assert_allclose(sums, np.where(frames, -1.0, 0.0), atol=1e-12)
    assert np.all(grad <= 1e-15)
    # [3, 3, 3] in 5 frames has one alignment, 3 blank 3 blank 3
    np.testing.assert_allclose(grad[:5, 3, [3, 0, 3, 0, 3]].diagonal(), -1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_logits_gradient_is_pytorchs_gradient_through_log_softmax(backend):
    """PyTorch returns exp(log_probs) - posterior for log_probs: our gradient plus exp(log_probs),
    which is the gradient with respect to the logits under log_softmax."""
    inputs = _inputs()
    logits = 3 * np.random.default_rng(5).normal(size=(T, B, C))
    lp = _log_softmax(logits)
    g_lp = np.asarray(_ctc(', reduction="sum"', backend).grad("log_probs")(**{**inputs, "log_probs": lp}))
    loss = lossdsl.compile(f'ctc(log_softmax(logits), {ARGS[11:]}, reduction="sum")', backend=backend)
    g_logits = loss.grad("logits")(**{k: v for k, v in inputs.items() if k != "log_probs"}, logits=logits)
    frames = (np.arange(T)[:, None] < INPUT_LENGTHS)[:, :, None]
    np.testing.assert_allclose(g_logits, np.where(frames, np.exp(lp) + g_lp, 0.0), atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_impossible_target_is_infinite_with_nan_gradient_unless_zero_infinity(backend):
    lengths = np.array([6, 2, 4, 5])  # [1, 1] needs 3 frames
    inputs = _inputs(input_lengths=lengths)
    value, grad = _ctc(', reduction="none"', backend).value_and_grad("log_probs")(**inputs)
    value, grad = np.asarray(value), np.asarray(grad)
    assert value[1] == np.inf and np.all(np.isfinite(np.delete(value, 1)))
    assert np.all(np.isnan(grad[:, 1])) and np.all(np.isfinite(np.delete(grad, 1, axis=1)))
    assert _ctc(', reduction="mean"', backend)(**inputs) == np.inf
    value0, grad0 = _ctc(', zero_infinity=true, reduction="none"', backend).value_and_grad("log_probs")(**inputs)
    np.testing.assert_allclose(value0, np.where(np.arange(B) == 1, 0.0, value), rtol=1e-12)
    np.testing.assert_allclose(grad0, np.where((np.arange(B) == 1)[:, None], 0.0, grad), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_padding_is_ignored_whatever_it_holds(backend):
    inputs = _inputs()
    padded = np.where(np.arange(S) < TARGET_LENGTHS[:, None], TARGETS, np.array([[0], [99], [-7], [0]]))
    loss = _ctc(', reduction="none"', backend)
    np.testing.assert_allclose(loss(**{**inputs, "targets": padded}), loss(**inputs), rtol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mean_divides_by_target_length_and_weights_weigh_samples(backend):
    inputs = _inputs()
    nll = ctc_nll(np, **inputs)
    w = np.array([1.0, 2.0, 0.5, 3.0])
    per = nll / np.maximum(TARGET_LENGTHS, 1)
    np.testing.assert_allclose(_ctc("", backend)(**inputs), per.mean(), rtol=1e-12)
    np.testing.assert_allclose(_ctc(", weights=w", backend)(**inputs, w=w), (w * per).sum() / w.sum(), rtol=1e-12)
    np.testing.assert_allclose(_ctc(', reduction="sum", weights=w', backend)(**inputs, w=w), (w * nll).sum(),
                               rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_stays_float32_and_long_sequences_stay_finite(backend):
    rng = np.random.default_rng(3)
    t, b, c, s = 300, 5, 20, 60
    lp = _log_softmax(4 * rng.normal(size=(t, b, c))).astype(np.float32)
    targets = rng.integers(1, c, size=(b, s))
    il, tl = np.array([300, 250, 200, 150, 121]), np.array([60, 50, 40, 30, 60])
    inputs = {"log_probs": lp, "targets": targets, "input_lengths": il, "target_lengths": tl}
    value, grad = map(np.asarray, _ctc(', reduction="none"', backend).value_and_grad("log_probs")(**inputs))
    assert value.dtype == np.float32 and grad.dtype == np.float32
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
    want = _ctc(', reduction="none"')(**{**inputs, "log_probs": lp.astype(np.float64)})
    np.testing.assert_allclose(value, want, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lengths_may_be_one_number_for_all_samples(backend):
    inputs = _inputs()
    same = _ctc(', reduction="none"', backend)(**{**inputs, "input_lengths": np.array(T)})
    np.testing.assert_allclose(same, ctc_nll(np, **{**inputs, "input_lengths": np.full(B, T)}), rtol=1e-10)


BAD = [
    ("targets", {"targets": np.array([[1, 2, 4], [1, 1, 0], [2, 0, 0], [3, 3, 3]])}, r"\[0, 4\).*got 4 at sample 0, "
     "position 2"),
    ("targets", {"targets": np.array([[1, 2, 3], [1, -1, 0], [2, 0, 0], [3, 3, 3]])}, "got -1 at sample 1"),
    ("targets", {"targets": np.array([[1, 2, 3], [1, 1, 0], [2, 0, 0], [3, 0, 3]])}, "other than blank=0.*sample 3"),
    ("input_lengths", {"input_lengths": np.array([6, 7, 4, 5])}, r"\[0, 6\].*got 7 for sample 1"),
    ("input_lengths", {"input_lengths": np.array([6, 5, -1, 5])}, "got -1 for sample 2"),
    ("target_lengths", {"target_lengths": np.array([3, 2, 4, 3])}, r"\[0, 3\].*got 4 for sample 2"),
    ("target_lengths", {"target_lengths": np.array([3, 2, 1])}, r"one length per sample, shape \(4,\)"),
    ("targets", {"targets": np.array([1, 2, 3, 1])}, r"shaped \(B, S\)"),
    ("log_probs", {"log_probs": np.zeros((T, B))}, r"shaped \(T, B, C\)"),
]


@pytest.mark.parametrize("name, changes, message", BAD, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD)])
def test_out_of_range_targets_and_lengths_raise_naming_the_input(name, changes, message):
    inputs = _inputs(**changes)
    for backend in ("numpy", "torch"):
        loss = _ctc(backend=backend)
        for call in (loss, loss.grad("log_probs")):
            with pytest.raises(lossdsl.LossDSLError, match=f"input '{name}' of ctc\\(\\) must .*{message}") as e:
                call(**inputs)
            assert isinstance(e.value, InputError)
    # JAX checks the values wherever they are concrete: outside jit
    jax_loss = _ctc(backend="jax")
    with pytest.raises(ValueError, match=f"input '{name}' of ctc\\(\\)"):
        jax_loss.module.loss(**inputs)
    for call in (jax_loss, jax_loss.grad("log_probs")):  # the compiled loss checks before its own jit
        with pytest.raises(InputError, match=f"input '{name}' of ctc\\(\\) must .*{message}"):
            call(**inputs)


def test_under_jit_shapes_still_raise_and_bad_values_give_nan():
    loss = _ctc(', reduction="none"', "jax")
    with pytest.raises(lossdsl.LossDSLError, match=r"input 'target_lengths' of ctc\(\).*one length per sample"):
        loss(**_inputs(target_lengths=np.array([3, 2, 1])))
    # under the user's own jit the values are unknown: one bad sample makes the whole value and
    # gradient NaN, as every failed check does there (tests/test_input_checks.py)
    value = np.asarray(jax.jit(lambda kw: loss(**kw))(
        _inputs(targets=np.array([[1, 2, 9], [1, 1, 0], [2, 0, 0], [3, 3, 3]]))))
    assert np.all(np.isnan(value))
    grad = np.asarray(jax.jit(lambda kw: loss.grad("log_probs")(**kw))(_inputs(input_lengths=np.array([6, 5, 4, 9]))))
    assert np.all(np.isnan(grad))
    good = np.asarray(jax.jit(lambda kw: loss.grad("log_probs")(**kw))(_inputs()))
    assert np.all(np.isfinite(good))


def test_blank_out_of_the_classes_raises_at_call_time():
    with pytest.raises(InputError, match=r"blank=4 is not a class of input 'log_probs' of ctc\(\), which has C = 4"):
        _ctc(", blank=4")(**_inputs())


@pytest.mark.parametrize("options, message", [
    (", blank=-1", r"argument 'blank' of ctc_nll\(\): expected a constant integer >= 0"),
    (", blank=1.5", "expected a constant integer"),
    (", blank=b", "expected a constant integer"),
    (", zero_infinity=1", "expected true or false"),
    (', reduction="avg"', 'reduction must be "mean", "sum" or "none"'),
])
def test_options_are_checked_at_compile_time(options, message):
    with pytest.raises(lossdsl.LossDSLError, match=message):
        _ctc(options)


def test_targets_and_lengths_are_integer_inputs_without_gradient():
    loss = _ctc()
    assert loss.differentiable == ("log_probs",)
    with pytest.raises(InputError, match="integer labels"):
        loss(**_inputs(targets=TARGETS.astype(np.float64)))
    with pytest.raises(InputError, match="has no gradient"):
        loss.grad("targets")
