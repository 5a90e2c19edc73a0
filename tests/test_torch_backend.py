"""The torch backend against torch.nn.functional: value and gradient (by torch.autograd of PyTorch's own
loss), float32 and float64, each reduction; backward() through the compiled loss runs our symbolic
gradient (a torch.autograd.Function), checked against gradcheck's finite differences. And every loss of
the stdlib table (tests/stdlib_rows/, its first row) on torch, against its reference and jax.grad of it,
so that the runtime helpers torch modules copy from the shared runtime run."""

import importlib
import inspect
import pickle
import pkgutil
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import stdlib_rows
from oracles import row_grads

torch = pytest.importorskip("torch")
F = torch.nn.functional

import lossdsl  # noqa: E402
from lossdsl.errors import InputError  # noqa: E402
from lossdsl.torch import LossModule  # noqa: E402


@dataclass(frozen=True)
class Row:
    id: str
    call: str  # lossdsl source with {r} for the reduction
    reference: Any  # (inputs, reduction) -> PyTorch's loss
    inputs: Any  # torch.Generator -> dict of float64 tensors (integer labels as int64)
    wrt: tuple[str, ...] = ("y_pred",)
    reductions: tuple[str, ...] = ("mean", "sum", "none")


def _n(*shape):
    return lambda g: torch.randn(*shape, generator=g, dtype=torch.float64)


def _u(*shape, low=0.05, high=0.95):
    return lambda g: low + (high - low) * torch.rand(*shape, generator=g, dtype=torch.float64)


def _inputs(**makers):
    return lambda g: {k: m(g) for k, m in makers.items()}


def _labels(n, c, ignored=0):
    def make(g):
        y = torch.randint(0, c, (n,), generator=g)
        y[:ignored] = -100
        return y
    return make


def _probs(n, c):
    return lambda g: torch.softmax(torch.randn(n, c, generator=g, dtype=torch.float64), -1)


def _ctc_inputs(g):
    T, B, C, S = 12, 3, 5, 4
    return {"logits": torch.randn(T, B, C, generator=g, dtype=torch.float64),
            "targets": torch.randint(1, C, (B, S), generator=g), "input_lengths": torch.tensor([12, 10, 9]),
            "target_lengths": torch.tensor([4, 2, 3])}


ROWS = [
    Row("mse", "mse(reduction={r})", lambda i, r: F.mse_loss(i["y_pred"], i["y_true"], reduction=r),
        _inputs(y_true=_n(6, 3), y_pred=_n(6, 3)), ("y_pred", "y_true")),
    Row("l1", "mae(reduction={r})", lambda i, r: F.l1_loss(i["y_pred"], i["y_true"], reduction=r),
        _inputs(y_true=_n(6, 3), y_pred=_n(6, 3))),
    Row("huber", "huber(delta=0.7, reduction={r})",
        lambda i, r: F.huber_loss(i["y_pred"], i["y_true"], delta=0.7, reduction=r),
        _inputs(y_true=_n(6, 3), y_pred=_n(6, 3)), ("y_pred", "y_true")),
    Row("smooth_l1", "smooth_l1(beta=0.5, reduction={r})",
        lambda i, r: F.smooth_l1_loss(i["y_pred"], i["y_true"], beta=0.5, reduction=r),
        _inputs(y_true=_n(6, 3), y_pred=_n(6, 3))),
    Row("bce", "bce(reduction={r})", lambda i, r: F.binary_cross_entropy(i["y_pred"], i["y_true"], reduction=r),
        _inputs(y_true=_u(8), y_pred=_u(8))),
    Row("bce_with_logits_pos_weight", "bce(from_logits=true, pos_weight=2.5, reduction={r})",
        lambda i, r: F.binary_cross_entropy_with_logits(i["y_pred"], i["y_true"], reduction=r,
                                                        pos_weight=torch.tensor(2.5, dtype=i["y_pred"].dtype)),
        _inputs(y_true=_u(8, 2), y_pred=_n(8, 2))),
    Row("cross_entropy_indices", "sparse_cce(from_logits=true, reduction={r})",
        lambda i, r: F.cross_entropy(i["y_pred"], i["y_true"], reduction=r),
        _inputs(y_true=_labels(7, 4), y_pred=_n(7, 4))),
    Row("cross_entropy_ignore_smoothing", "sparse_cce(from_logits=true, label_smoothing=0.1, reduction={r})",
        lambda i, r: F.cross_entropy(i["y_pred"], i["y_true"], reduction=r, ignore_index=-100, label_smoothing=0.1),
        _inputs(y_true=_labels(7, 4, ignored=2), y_pred=_n(7, 4))),
    Row("cross_entropy_probabilities", "cce(from_logits=true, label_smoothing=0.2, reduction={r})",
        lambda i, r: F.cross_entropy(i["y_pred"], i["y_true"], reduction=r, label_smoothing=0.2),
        _inputs(y_true=_probs(7, 4), y_pred=_n(7, 4))),
    Row("nll", "nll(reduction={r})", lambda i, r: F.nll_loss(i["y_pred"], i["y_true"], reduction=r),
        lambda g: {"y_true": _labels(7, 4, ignored=1)(g), "y_pred": torch.log_softmax(_n(7, 4)(g), -1)}),
    Row("kl_div_batchmean", "kl_div(reduction={r})",
        lambda i, r: F.kl_div(torch.log(i["y_pred"]), i["y_true"], reduction="batchmean"),
        _inputs(y_true=_probs(5, 4), y_pred=_probs(5, 4)), reductions=("mean",)),
    Row("gaussian_nll", "gaussian_nll(y_true, y_pred, var, full=true, reduction={r})",
        lambda i, r: F.gaussian_nll_loss(i["y_pred"], i["y_true"], i["var"], full=True, reduction=r),
        _inputs(y_true=_n(6, 3), y_pred=_n(6, 3), var=_u(6, 1, low=0.2, high=2.0)), ("y_pred", "var")),
    Row("poisson_nll", "poisson_nll(log_input=true, reduction={r})",
        lambda i, r: F.poisson_nll_loss(i["y_pred"], i["y_true"], log_input=True, reduction=r),
        _inputs(y_true=lambda g: torch.randint(0, 5, (6, 3), generator=g).double(), y_pred=_n(6, 3))),
    Row("triplet_margin", "triplet(a, p, q, margin=1.0, squared=false, reduction={r})",
        lambda i, r: F.triplet_margin_loss(i["a"], i["p"], i["q"], margin=1.0, reduction=r),
        _inputs(a=_n(6, 4), p=_n(6, 4), q=_n(6, 4)), ("a", "p", "q")),
    # through log_softmax: PyTorch's ctc_loss backward assumes its input came from one (its gradient
    # with respect to log_probs alone is not the true one)
    Row("ctc", "ctc(log_softmax(logits), targets, input_lengths, target_lengths, reduction={r})",
        lambda i, r: F.ctc_loss(F.log_softmax(i["logits"], -1), i["targets"], i["input_lengths"],
                                i["target_lengths"], reduction=r),
        _ctc_inputs, ("logits",)),
]
DTYPES = {torch.float64: dict(rtol=1e-9, atol=1e-11), torch.float32: dict(rtol=2e-5, atol=1e-6)}
PARAMS = [pytest.param(row, r, dt, id=f"{row.id}-{r}-{str(dt)[6:]}") for row in ROWS for r in row.reductions
          for dt in DTYPES]


def _prepared(row, dtype):
    raw = row.inputs(torch.Generator().manual_seed(sum(map(ord, row.id))))
    return {k: (v.to(dtype).requires_grad_(k in row.wrt) if v.is_floating_point() else v) for k, v in raw.items()}


def _close(got, want, dtype, what):
    assert got.dtype == want.dtype == dtype, what
    assert got.shape == want.shape, what
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), **DTYPES[dtype], err_msg=what)


@pytest.mark.parametrize("row, reduction, dtype", PARAMS)
def test_matches_torch_functional(row, reduction, dtype):
    loss = lossdsl.compile(row.call.format(r=repr(reduction).replace("'", '"')), backend="torch")
    ours, theirs = _prepared(row, dtype), _prepared(row, dtype)
    value, want = loss(**ours), row.reference(theirs, reduction)
    _close(value, want, dtype, "value")
    ct = torch.linspace(0.5, 1.5, want.numel(), dtype=dtype).reshape(want.shape)  # a non-uniform cotangent
    value.backward(ct)
    want.backward(ct)
    for name in row.wrt:
        _close(ours[name].grad, theirs[name].grad, dtype, f"d/d{name} by backward()")
    if reduction != "none":  # value_and_grad: the gradient of the sum, as backward() with ones
        v, grads = loss.value_and_grad(list(row.wrt))(**ours)
        _close(v, want, dtype, "value_and_grad value")
        for name in row.wrt:
            _close(grads[name] * ct, theirs[name].grad, dtype, f"d/d{name} by value_and_grad")


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_backward_passes_gradcheck(row):
    """torch.autograd.gradcheck: our backward against finite differences of our forward, float64."""
    loss = lossdsl.compile(row.call.format(r='"none"' if "none" in row.reductions else '"mean"'), backend="torch")
    inputs = _prepared(row, torch.float64)
    names = list(inputs)

    def f(*args):
        return loss(**dict(zip(names, args)))
    assert torch.autograd.gradcheck(f, tuple(inputs[n] for n in names), eps=1e-6, atol=1e-6)


def test_module_wrapper_and_float32_training_step():
    criterion = LossModule("mse()")
    assert isinstance(criterion, torch.nn.Module) and "mse()" in repr(criterion)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    pred = model(x)
    criterion(y, pred).backward()  # positional, in the order of loss.inputs: (y_true, y_pred)
    want = torch.autograd.grad(F.mse_loss(model(x), y), model.weight)[0]
    torch.testing.assert_close(model.weight.grad, want)
    assert lossdsl.compile("mse()", backend="torch").as_module().inputs == ("y_true", "y_pred")
    with pytest.raises(lossdsl.LossDSLError, match="backend 'torch'"):
        LossModule(lossdsl.compile("mse()"))


@pytest.mark.parametrize("source, theirs", [
    ("bce()", lambda p, t: F.binary_cross_entropy(p, t)),
    ("bce(from_logits=true, pos_weight=2.0)", lambda p, t: F.binary_cross_entropy_with_logits(
        p, t, pos_weight=torch.tensor(2.0, dtype=torch.float64))),
    ("poisson_nll(log_input=true)", lambda p, t: F.poisson_nll_loss(p, t, log_input=True)),
    ("gaussian_nll(var=var)", lambda p, t, v: F.gaussian_nll_loss(p, t, v)),
], ids=["bce", "bce_logits_pos_weight", "poisson_nll", "gaussian_nll"])
def test_module_in_torch_order_takes_input_then_target(source, theirs):
    """LossModule(..., order="torch") is called as torch.nn losses are, (input, target, *others): the
    value and the gradient of the prediction are torch.nn.functional's, positionally, mixed with
    keywords, and by keyword alike; the default order is the loss's inputs, (y_true, y_pred)."""
    g = torch.Generator().manual_seed(0)
    target = torch.rand(6, 3, generator=g, dtype=torch.float64)
    raw = torch.randn(6, 3, generator=g, dtype=torch.float64)
    pred = torch.sigmoid(raw) if source == "bce()" else raw
    others = [torch.rand(6, 3, generator=g, dtype=torch.float64) + 0.5] if "var" in source else []
    ours, default = LossModule(source, order="torch"), lossdsl.compile(source, backend="torch").as_module()
    assert ours.order == "torch" and "order='torch'" in repr(ours) and default.order == "inputs"
    p = pred.clone().requires_grad_()
    want = theirs(p, target, *others)
    (want_grad,) = torch.autograd.grad(want, p)
    extra = {"var": others[0]} if others else {}
    for call in (lambda q: ours(q, target, *others), lambda q: ours(q, y_true=target, **extra),
                 lambda q: ours(y_true=target, y_pred=q, **extra), lambda q: default(target, q, *others)):
        p = pred.clone().requires_grad_()
        value = call(p)
        torch.testing.assert_close(value, want)
        torch.testing.assert_close(torch.autograd.grad(value, p)[0], want_grad)
    with pytest.raises(InputError, match="'y_pred' given both positionally and by keyword"):
        ours(pred, target, *others, y_pred=pred)
    assert pickle.loads(pickle.dumps(ours)).order == "torch"
    assert lossdsl.compile(source, backend="torch").as_module(order="torch").order == "torch"


def test_module_order_mistakes_are_clear():
    with pytest.raises(lossdsl.LossDSLError, match="did you mean 'torch'"):
        LossModule("mse()", order="pytorch")
    with pytest.raises(lossdsl.LossDSLError, match="inputs are a, b: call it by keyword"):
        LossModule("mean((a - b)^2)", order="torch")


def test_import_lossdsl_does_not_import_torch():
    import subprocess
    import sys
    code = "import sys, lossdsl; lossdsl.compile('mse()', backend='numpy'); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("call", ["value", "grad", "module"])
def test_shape_mismatch_is_an_input_error_naming_the_inputs(call):
    """PyTorch reports mismatched shapes as a RuntimeError from inside the generated code; the
    compiled loss reports it as an InputError naming the two inputs, as the NumPy backend does."""
    loss = lossdsl.compile("mse()", backend="torch")
    y, p = torch.ones(3), torch.ones(4, requires_grad=True)
    run = {"value": lambda: loss(y_true=y, y_pred=p), "grad": lambda: loss.grad("y_pred")(y_true=y, y_pred=p),
           "module": lambda: loss.as_module()(y, p)}[call]
    with pytest.raises(lossdsl.InputError, match=r"'y_true' \(shape \(3,\)\) and 'y_pred' \(shape \(4,\)\)"):
        run()


def test_other_runtime_errors_are_not_disguised():
    """A RuntimeError that is not about the inputs' shapes propagates as it is."""
    loss = lossdsl.compile("mean(y_true @ y_pred)", backend="torch")
    with pytest.raises(RuntimeError) as info:
        loss(y_true=torch.ones(2, 3), y_pred=torch.ones(2, 3))
    assert not isinstance(info.value, lossdsl.LossDSLError)


def _first_row_of_each_stdlib_loss():
    """One row per loss: the whole table on torch takes minutes on this machine (SymPy at compile)."""
    rows = {}
    for info in pkgutil.iter_modules(stdlib_rows.__path__):
        for case in importlib.import_module(f"stdlib_rows.{info.name}").CASES:
            rows.setdefault(case.call.split("(")[0], case)
    return list(rows.values())


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=pytest.mark.xdist_group(c.id))
                                  for c in _first_row_of_each_stdlib_loss()])
def test_every_stdlib_row_on_torch_matches_its_reference(case):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)  # as tests/test_stdlib.py: the references in float64
    inputs = case.sample()
    loss = lossdsl.compile(case.call.format(opts=""), backend="torch")
    value, grads = loss.value_and_grad(list(case.wrt))(**{k: torch.as_tensor(v) for k, v in inputs.items()})
    want = case.reference(np, **inputs)
    np.testing.assert_allclose(value.numpy(), np.mean(want) if case.reducible else want, rtol=case.rtol,
                               atol=case.atol)
    expected = row_grads(case, inputs)  # shared with the row's other tables in its xdist group
    for name in case.wrt:
        np.testing.assert_allclose(grads[name].numpy(), expected[name], rtol=1e-6, atol=case.atol, err_msg=name)


@pytest.mark.parametrize("source, needs", [("x", ("x",))] + [
    (s, needs) for s in ("mean(x)*0 + y", "sum(x*y)") for needs in (("x",), ("y",), ("x", "y"))],
    ids=lambda v: v if isinstance(v, str) else "+".join(v))
def test_an_output_that_is_an_input_trains(source, needs):
    """A loss (or the gradient the fused forward returns with it) that is one of the inputs itself:
    autograd refuses a Function that returns an input it saves, so the module returns a view of it.
    The gradients are torch autograd's of the same expression written in torch, by backward() (the
    plain-style Function) and by torch.func.grad (its setup_context twin)."""
    loss = lossdsl.compile(source, backend="torch", checks=False)
    names = [n for n in ("x", "y") if n in loss.inputs]
    values = {"x": torch.tensor([2.0, -1.0], dtype=torch.float64), "y": torch.tensor([3.0, 0.5], dtype=torch.float64)}
    if source == "x":
        values["x"] = values["x"][0]
    written = {"x": lambda x: x, "mean(x)*0 + y": lambda x, y: x.mean() * 0 + y, "sum(x*y)": lambda x, y: (x * y).sum()}
    ours = {n: values[n].clone().requires_grad_(n in needs) for n in names}
    theirs = {n: values[n].clone().requires_grad_(n in needs) for n in names}
    value = loss(**ours)
    want = written[source](*theirs.values())
    torch.testing.assert_close(value, want)
    wants = torch.autograd.grad(want.sum(), [theirs[n] for n in needs])
    for n, g, w in zip(needs, torch.autograd.grad(value.sum(), [ours[n] for n in needs]), wants):
        torch.testing.assert_close(g, w, msg=n)
    given = {n: values[n] for n in names}
    for n, w in zip(needs, wants):
        g = torch.func.grad(lambda v, n=n: loss(**{**given, n: v}).sum())(values[n])
        torch.testing.assert_close(g, w, msg=f"torch.func.grad, d/d{n}")


def _grad_modes_inside_forward(loss, run):
    """Whether grad mode was on in each generated function that only a Function's forward calls
    (``_value`` and the fused ``_value_and_grad_<k>``), over ``run(loss)``: they print without
    ``torch.no_grad()`` (Backend.forward_guarded), as autograd runs forward without grad."""
    module, seen = loss.module, []

    def recording(fn):
        def wrapped(**kw):
            seen.append(torch.is_grad_enabled())
            return fn(**kw)
        return wrapped
    saved = module._value, dict(module._FUSED)
    module._value = recording(module._value)
    module._FUSED.update({k: recording(f) for k, f in module._FUSED.items()})
    try:
        run(loss)
    finally:
        module._value = saved[0]
        module._FUSED.clear()
        module._FUSED.update(saved[1])
    return seen


@pytest.mark.parametrize("mode", ["eager", "both inputs", "create_graph", "func.grad", "vmap", "jacrev", "compile"])
def test_what_only_forward_calls_runs_without_grad(mode):
    loss = lossdsl.compile("bce(y_true, y_pred, from_logits=true) + mean(y_pred^2)", backend="torch", checks=False)
    assert "no_grad" not in inspect.getsource(loss.module._value_and_grad_1)
    assert "no_grad" not in inspect.getsource(loss.module._value)
    t = torch.tensor([[0.0, 1.0], [1.0, 0.25]], dtype=torch.float64)
    p = torch.tensor([[0.5, -2.0], [3.0, 0.1]], dtype=torch.float64)

    def eager(loss):
        p_ = p.clone().requires_grad_()
        t_ = t.clone().requires_grad_(mode == "both inputs")
        (g,) = torch.autograd.grad(loss(t_, p_), p_, create_graph=mode == "create_graph")
        if mode == "create_graph":
            g.sum().backward()
    runs = {"func.grad": lambda loss: torch.func.grad(lambda q: loss(t, q))(p),
            "vmap": lambda loss: torch.func.vmap(torch.func.grad(lambda q, s: loss(s, q)))(p, t),
            "jacrev": lambda loss: torch.func.jacrev(lambda q: loss(t, q))(p),
            "compile": lambda loss: torch.compile(lambda q: loss(t, q), fullgraph=True, backend="eager")(p.requires_grad_())}
    seen = _grad_modes_inside_forward(loss, runs.get(mode, eager))
    assert seen and not any(seen), seen
