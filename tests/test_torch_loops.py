"""Torch inside training loops: double backward (second derivatives through the symbolic gradient's own
code), torch.func (grad, per-sample gradients by vmap, jacrev), torch.compile(fullgraph=True) of a loss
compiled with checks=False, and the checks switch. Every value and derivative is compared with torch
autograd of the same loss written by hand in torch, in float64."""

import importlib
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import lossdsl  # noqa: E402

TOL = dict(rtol=1e-9, atol=1e-12)


def _bce_logits(t, p, reduction="mean"):
    """By hand: torch's F.binary_cross_entropy_with_logits has no second derivative for the logits
    alone (its gradient does not require grad under create_graph=True)."""
    ce = -(t * F.logsigmoid(p) + (1 - t) * F.logsigmoid(-p))
    return ce.mean() if reduction == "mean" else ce


def _focal(t, p, gamma=2.0, alpha=0.25):
    """torchvision's sigmoid_focal_loss, averaged."""
    q = torch.sigmoid(p)
    ce = _bce_logits(t, p, reduction="none")
    p_t = q * t + (1 - q) * (1 - t)
    return (ce * (1 - p_t) ** gamma * (alpha * t + (1 - alpha) * (1 - t))).mean()


def _huber(t, p, d=0.7):
    r = p - t
    a = r.abs()
    return torch.where(a <= d, 0.5 * r**2, d * (a - 0.5 * d)).mean()


@dataclass(frozen=True)
class Row:
    id: str
    call: str
    reference: Any  # (y_true, y_pred) -> the loss written in torch
    y_true: Any  # torch.Generator -> float64 targets (int64 labels)
    shape: tuple[int, ...] = (6, 4)


def _normal(g, shape):
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _unit(g, shape):
    return 0.05 + 0.9 * torch.rand(*shape, generator=g, dtype=torch.float64)


ROWS = [
    Row("mse", "mse()", lambda t, p: ((p - t) ** 2).mean(), _normal),
    Row("huber", "huber(delta=0.7)", _huber, _normal),
    Row("bce_logits", "bce(from_logits=true)", _bce_logits, _unit),
    Row("cce_logits", "cce(from_logits=true)", lambda t, p: -(t * torch.log_softmax(p, -1)).sum(-1).mean(),
        lambda g, s: torch.softmax(_normal(g, s), -1)),
    Row("sparse_cce_logits", "sparse_cce(from_logits=true)", lambda t, p: F.cross_entropy(p, t),
        lambda g, s: torch.randint(0, s[-1], s[:-1], generator=g)),
    Row("focal_logits", "focal(gamma=2, from_logits=true)", _focal, _unit),
]


def _inputs(row, seed=0):
    g = torch.Generator().manual_seed(seed + sum(map(ord, row.id)))
    return row.y_true(g, row.shape), _normal(g, row.shape)


def _close(got, want, what=""):
    assert got.shape == want.shape and got.dtype == want.dtype, what
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), **TOL, err_msg=what)


def _wrt(t, p):
    """The inputs a gradient is taken with respect to: the prediction, and float targets too."""
    return (p, t) if t.is_floating_point() else (p,)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_double_backward_matches_autograd_of_the_loss_in_torch(row):
    """Hessian-vector products by grad(grad(loss), create_graph=True), for the prediction alone (the
    single-input vjp) and for prediction and float targets together (the full _vjp)."""
    loss = lossdsl.compile(row.call, backend="torch")
    t, p = _inputs(row)
    g = torch.Generator().manual_seed(1)
    for together in (False, True):
        results = []
        for fn in (loss, row.reference):
            tt, pp = t.clone(), p.clone().requires_grad_()
            if together and tt.is_floating_point():
                tt.requires_grad_()
            wrt = _wrt(tt, pp) if together else (pp,)
            first = torch.autograd.grad(fn(tt, pp), wrt, create_graph=True)
            assert all(d.requires_grad for d in first), "the gradient is not differentiable again"
            v = [_normal(g.manual_seed(2 + k), d.shape) for k, d in enumerate(first)]
            second = torch.autograd.grad(sum((d * w).sum() for d, w in zip(first, v)), wrt)
            results.append((first, second))
        (ours1, ours2), (want1, want2) = results
        for a, b in zip(ours1, want1):
            _close(a, b, "first derivative")
        for a, b in zip(ours2, want2):
            _close(a, b, "second derivative (Hessian times a vector)")


def _critic(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()


def test_gradient_penalty_reaches_the_parameters():
    """WGAN-GP: the penalty on the input gradient of a loss of the critic's output. Through lossdsl,
    the parameters' gradients include the penalty's, as with the hand-written loss (they used not to)."""
    loss = lossdsl.compile("mse()", backend="torch")
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    grads = []
    for fn in (loss, lambda t, p: ((p - t) ** 2).mean()):
        critic = _critic(0)
        xi = x.clone().requires_grad_()
        (dx,) = torch.autograd.grad(fn(y, critic(xi)), xi, create_graph=True)
        penalty = ((dx.norm(dim=1) - 1) ** 2).mean()
        grads.append(torch.autograd.grad(penalty, list(critic.parameters())))
    for ours, want in zip(*grads):
        assert want.abs().max() > 0
        _close(ours, want, "parameter gradient of the penalty")


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_torch_func_grad_vmap_and_jacrev(row):
    """grad and jacrev with checks on; vmap (which cannot run a check's data-dependent branch) with checks off."""
    from torch.func import grad, jacrev, vmap
    loss = lossdsl.compile(row.call, backend="torch")
    t, p = _inputs(row)
    _close(grad(lambda q: loss(t, q))(p), grad(lambda q: row.reference(t, q))(p), "torch.func.grad")
    _close(jacrev(lambda q: loss(t, q))(p), torch.autograd.grad(row.reference(t, p.requires_grad_()), p)[0],
           "torch.func.jacrev")
    # per-sample gradients: each row of the batch a loss of its own, against autograd row by row
    unchecked = lossdsl.compile(row.call, backend="torch", checks=False)
    per_sample = vmap(grad(lambda q, s: unchecked(s[None], q[None])))(p.detach(), t)
    for k in range(p.shape[0]):
        q = p[k:k + 1].detach().requires_grad_()
        _close(per_sample[k], torch.autograd.grad(row.reference(t[k:k + 1], q), q)[0][0], f"sample {k}")


def test_vmap_of_a_checked_loss_says_to_compile_without_checks():
    from torch.func import vmap
    loss = lossdsl.compile("bce(from_logits=true)", backend="torch")
    t, p = _inputs(ROWS[2])
    with pytest.raises(lossdsl.InputError, match="checks=False"):
        vmap(lambda q, s: loss(s, q))(p, t)


def test_jacrev_of_an_unreduced_loss():
    from torch.func import jacrev
    loss = lossdsl.compile('huber(delta=0.7, reduction="none")', backend="torch")
    t, p = _inputs(ROWS[1])

    def hand(q):
        r = q - t
        return torch.where(r.abs() <= 0.7, 0.5 * r**2, 0.7 * (r.abs() - 0.35))
    _close(jacrev(lambda q: loss(t, q))(p), torch.autograd.functional.jacobian(hand, p), "jacrev")


@pytest.mark.parametrize("row", [ROWS[4], ROWS[5]], ids=lambda r: r.id)
def test_torch_compile_fullgraph_without_checks(row):
    """torch.compile(fullgraph=True) of a function calling the loss: no graph breaks, and the values
    and gradients (our backward, traced) equal the eager ones and the hand-written loss's; after eager
    calls, fresh tensors of the same shapes compile nothing again (no guard on a cache the eager calls
    filled, nor on the tensors' identities)."""
    torch._dynamo.reset()
    loss = lossdsl.compile(row.call, backend="torch", checks=False)
    t, p = _inputs(row)
    compiled = torch.compile(lambda t, p: 2 * loss(t, p), fullgraph=True, backend="aot_eager")
    outs = []
    for fn in (compiled, lambda t, p: 2 * loss(t, p), lambda t, p: 2 * row.reference(t, p)):
        q = p.clone().requires_grad_()
        value = fn(t, q)
        value.backward()
        outs.append((value, q.grad))
    for value, gradient in outs[1:]:
        _close(outs[0][0], value, "value")
        _close(outs[0][1], gradient, "gradient")
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    compiled(t.clone(), p.clone().requires_grad_()).backward()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs


def test_generated_modules_are_importable_by_name():
    loss = lossdsl.compile("mse()", backend="torch")
    assert importlib.import_module(loss.module.__name__) is loss.module


def _source_calls(source, name):
    body = source[source.index("def _value"):]
    return f"{name}(" in body


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_checks_false_generates_no_value_checks(backend):
    """bce's y_true must lie in [0, 1] (a within check): with checks=True a value outside is an
    InputError; with checks=False the code holds no check and computes the formula anyway."""
    if backend == "jax":
        pytest.importorskip("jax")
    checked = lossdsl.compile("bce()", backend=backend)
    unchecked = lossdsl.compile("bce()", backend=backend, checks=False)
    assert _source_calls(checked.source, "_within") and not _source_calls(unchecked.source, "_within")
    assert unchecked is not checked and unchecked.checks is False and checked.checks is True
    t, p = np.array([1.5, 0.5, -0.25]), np.array([0.3, 0.6, 0.8])
    arrays = (lambda a: torch.tensor(a)) if backend == "torch" else np.asarray
    with pytest.raises(lossdsl.InputError, match="y_true"):
        checked(arrays(t), arrays(p))
    p32 = np.clip(p, 1e-7, 1 - 1e-7)
    want = -np.mean(t * np.log(p32) + (1 - t) * np.log(1 - p32))
    # JAX computes in float32 unless x64 is on
    np.testing.assert_allclose(np.asarray(unchecked(arrays(t), arrays(p))), want, rtol=1e-6 if backend == "jax" else 1e-12)


def test_checks_false_leaves_labels_unchecked_and_true_raises():
    checked = lossdsl.compile("sparse_cce(from_logits=true)", backend="torch")
    unchecked = lossdsl.compile("sparse_cce(from_logits=true)", backend="torch", checks=False)
    assert "_check_labels(" in checked.source  # the helper is copied in all the same, and told not to run
    assert ", None)" in unchecked.source[unchecked.source.index("def _value"):]
    bad = torch.tensor([0, 5]), torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(lossdsl.InputError, match=r"class indices in \[0, 3\)"):
        checked(*bad)
    with pytest.raises(lossdsl.InputError, match="input 'y_true'"):  # kinds are still checked
        unchecked(torch.tensor([0.5, 1.0]).to(torch.complex64), bad[1])
    good = torch.tensor([2, 1]), torch.randn(2, 3, dtype=torch.float64)
    _close(unchecked(*good), F.cross_entropy(good[1], good[0]), "value without checks")


def test_checks_travel_with_pickles_and_the_module_wrapper():
    from lossdsl.torch import LossModule
    unchecked = lossdsl.compile("bce()", backend="torch", checks=False)
    assert pickle.loads(pickle.dumps(unchecked)) is unchecked
    assert pickle.loads(pickle.dumps(lossdsl.compile("bce()", backend="torch"))).checks
    assert LossModule("bce()", checks=False).loss is unchecked
    assert "checks=False" in repr(unchecked)
    with pytest.raises(lossdsl.LossDSLError, match="checks must be True or False"):
        lossdsl.compile("bce()", checks="no")
    assert "_within(" not in lossdsl.module_source("bce()", "torch", checks=False)


def test_double_backward_through_an_op_torch_cannot_differentiate_is_an_error():
    """CTC's gradient counts with bincount, which torch has no derivative for: the second derivative
    is torch's error, never zeros (first order works, and create_graph=True records the gradient)."""
    loss = lossdsl.compile("ctc(log_softmax(logits), targets, input_lengths, target_lengths)", backend="torch")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    inputs = dict(targets=torch.tensor([[1, 2], [3, 1]]), input_lengths=torch.tensor([6, 5]),
                  target_lengths=torch.tensor([2, 1]))
    (first,) = torch.autograd.grad(loss(logits=logits, **inputs), logits, create_graph=True)
    assert first.abs().max() > 0 and first.requires_grad
    with pytest.raises(RuntimeError, match="derivative for aten::bincount is not implemented"):
        torch.autograd.grad((first * torch.randn_like(first)).sum(), logits)


@pytest.mark.parametrize("shapes", [((2, 3), (2, 3)), ((), (2, 3), ()), ((2, 1), (1, 3)), ((3,), (2, 3)), ((), ()),
                                    ((0,), (1,)), ((1,), (4, 1, 3)), ((2,), (3,)), ((2, 3), (2, 3), (4, 3))])
def test_broadcast_shapes_helper_agrees_with_torch(shapes):
    from lossdsl.backends.torch_runtime import _broadcast_shapes
    try:
        want = tuple(torch.broadcast_shapes(*shapes))
    except RuntimeError:
        with pytest.raises(RuntimeError):
            _broadcast_shapes(*shapes)
        return
    assert _broadcast_shapes(*shapes) == want


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_first_derivatives_whichever_inputs_require_grad(row):
    """backward() with the prediction alone requiring grad (the value and its gradient from one function),
    the targets alone, or both (the full vjp), under no_grad nowhere: each equals autograd's."""
    loss = lossdsl.compile(row.call, backend="torch")
    t, p = _inputs(row)
    cases = [(False, True), (True, True), (True, False)] if t.is_floating_point() else [(False, True)]
    for t_grad, p_grad in cases:
        grads = []
        for fn in (loss, row.reference):
            tt, pp = t.clone().requires_grad_(t_grad), p.clone().requires_grad_(p_grad)
            (fn(tt, pp) * 3).backward()
            grads.append([x.grad for x in (tt, pp) if x.requires_grad])
        for a, b in zip(*grads):
            _close(a, b, f"requires grad: y_true {t_grad}, y_pred {p_grad}")
