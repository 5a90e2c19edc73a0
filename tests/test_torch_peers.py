"""The stdlib's PyTorch losses and options (issue 16) against torch.nn.functional itself: value, and
gradient by torch.autograd of PyTorch's own loss, float64 and float32, each reduction, on the torch
backend; the NumPy backend in float64 beside it. PyTorch's edge cases are rows of their own: ignore_index
samples, an image wholly ignored, class weights in the mean's denominator, NCHW logits with axis=1,
-inf (masked) logits, cosine_embedding's labels other than +-1, a zero vector."""

from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import test_torch_backend  # noqa: E402

import lossdsl  # noqa: E402

CW = (0.5, 1.0, 2.0, 1.5)


@dataclass(frozen=True)
class Row(test_torch_backend.Row):
    """test_torch_backend's row, with its own float64 rtol."""

    rtol64: float = 1e-9  # float64's rtol; float32's is DTYPES'


def _n(*shape, scale=1.0):
    return lambda g: scale * torch.randn(*shape, generator=g, dtype=torch.float64)


def _u(*shape, low=0.05, high=0.95):
    return lambda g: low + (high - low) * torch.rand(*shape, generator=g, dtype=torch.float64)


def _pm1(*shape):
    return lambda g: torch.where(torch.rand(*shape, generator=g) < 0.5, -1.0, 1.0).double()


def _labels(*shape, c=4, ignored=()):
    def make(g):
        y = torch.randint(0, c, shape, generator=g)
        y.view(-1)[list(ignored)] = -100
        return y
    return make


def _inputs(**makers):
    return lambda g: {k: m(g) for k, m in makers.items()}


def _cw(g):
    return torch.tensor(CW, dtype=torch.float64)


def _masked_logits(g):
    """Logits of -inf on classes that are not the target; one-hot targets for us, indices for PyTorch."""
    x = 2 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([1, 2, 3, 1, 2, 3])
    x[:, 0] = -torch.inf
    x[[1, 4], 3] = -torch.inf
    return {"y_true": F.one_hot(labels, 4).double(), "labels": labels, "y_pred": x}


def _multilabel(g):
    y = torch.tensor([[3, 0, -1, 1], [0, 1, 2, 3], [-1, 0, 0, 0], [1, 1, -1, 2], [2, -1, 3, 3], [2, 0, 1, -1]])
    return {"y_true": y, "y_pred": torch.randn(6, 4, generator=g, dtype=torch.float64)}


def _swap_triplets(g):
    a = torch.randn(6, 4, generator=g, dtype=torch.float64)
    p = a + 0.8 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    q = a + 0.9 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    q[::2] = p[::2] + 0.5 * torch.randn(3, 4, generator=g, dtype=torch.float64)  # nearer the positive
    return {"a": a, "p": p, "q": q}


def _w(i):
    """The class weights for PyTorch, whose nll_loss and multi_margin_loss kernels do not differentiate them
    (d/dcw of those is checked by the stdlib rows, against jax.grad of the formula)."""
    return i["cw"]


ROWS = [
    # cross_entropy / nll_loss with weight=, ignore_index, label_smoothing, NCHW
    Row("cross_entropy_weight", "sparse_cce(from_logits=true, class_weights=cw, reduction={r})",
        lambda i, r: F.cross_entropy(i["y_pred"], i["y_true"], weight=_w(i), reduction=r),
        _inputs(y_true=_labels(7), y_pred=_n(7, 4), cw=_cw), ("y_pred",)),
    Row("cross_entropy_weight_ignore_smoothing",
        "sparse_cce(from_logits=true, label_smoothing=0.15, class_weights=cw, reduction={r})",
        lambda i, r: F.cross_entropy(i["y_pred"], i["y_true"], weight=_w(i), label_smoothing=0.15, reduction=r),
        _inputs(y_true=_labels(7, ignored=(0, 4)), y_pred=_n(7, 4), cw=_cw), ("y_pred",)),
    Row("cross_entropy_nchw", "sparse_cce(from_logits=true, axis=1, reduction={r})",
        lambda i, r: F.cross_entropy(i["y_pred"], i["y_true"], reduction=r),
        _inputs(y_true=_labels(3, 2, 5), y_pred=_n(3, 4, 2, 5, scale=2.0))),
    # image 0 wholly ignored (pixels 0..9), a few more pixels elsewhere
    Row("cross_entropy_nchw_weight_ignore_smoothing",
        "sparse_cce(from_logits=true, label_smoothing=0.1, class_weights=cw, axis=1, reduction={r})",
        lambda i, r: F.cross_entropy(i["y_pred"], i["y_true"], weight=_w(i), label_smoothing=0.1, reduction=r),
        _inputs(y_true=_labels(3, 2, 5, ignored=(*range(10), 13, 27)), y_pred=_n(3, 4, 2, 5, scale=2.0), cw=_cw),
        ("y_pred",)),
    Row("cross_entropy_probabilities_weight", "cce(from_logits=true, label_smoothing=0.2, class_weights=cw, "
        "reduction={r})",
        lambda i, r: F.cross_entropy(i["y_pred"], i["y_true"], weight=_w(i), label_smoothing=0.2, reduction=r),
        _inputs(y_true=lambda g: torch.softmax(_n(7, 4)(g), -1), y_pred=_n(7, 4), cw=_cw), ("y_pred", "y_true", "cw")),
    Row("cross_entropy_probabilities_nchw_weight", "cce(from_logits=true, axis=1, class_weights=cw, reduction={r})",
        lambda i, r: F.cross_entropy(i["y_pred"], i["y_true"], weight=_w(i), reduction=r),
        _inputs(y_true=lambda g: torch.softmax(_n(3, 4, 5)(g), 1), y_pred=_n(3, 4, 5), cw=_cw), ("y_pred", "cw")),
    # masked classes: PyTorch's class-index form is finite there (its probability form is 0*(-inf) = NaN)
    Row("cross_entropy_masked_logits", "cce(y_true, y_pred, from_logits=true, reduction={r})",
        lambda i, r: F.cross_entropy(i["y_pred"], i["labels"], reduction=r), _masked_logits),
    Row("nll_weight_ignore", "nll(class_weights=cw, reduction={r})",
        lambda i, r: F.nll_loss(i["y_pred"], i["y_true"], weight=_w(i), reduction=r),
        lambda g: {"y_true": _labels(7, ignored=(2,))(g), "y_pred": torch.log_softmax(_n(7, 4)(g), -1), "cw": _cw(g)},
        ("y_pred",)),
    Row("nll_nchw_weight_ignore", "nll(class_weights=cw, axis=1, reduction={r})",
        lambda i, r: F.nll_loss(i["y_pred"], i["y_true"], weight=_w(i), reduction=r),
        lambda g: {"y_true": _labels(2, 3, 2, ignored=(*range(6), 9))(g),
                   "y_pred": torch.log_softmax(_n(2, 4, 3, 2)(g), 1), "cw": _cw(g)}, ("y_pred",)),

    # bce's label_smoothing is Keras's: PyTorch's bce of the smoothed target
    Row("bce_label_smoothing", "bce(label_smoothing=0.2, reduction={r})",
        lambda i, r: F.binary_cross_entropy(i["y_pred"], 0.8 * i["y_true"] + 0.1, reduction=r),
        _inputs(y_true=lambda g: torch.randint(0, 2, (6, 3), generator=g).double(), y_pred=_u(6, 3))),
    Row("bce_with_logits_label_smoothing", "bce(from_logits=true, label_smoothing=0.1, reduction={r})",
        lambda i, r: F.binary_cross_entropy_with_logits(i["y_pred"], 0.9 * i["y_true"] + 0.05, reduction=r),
        _inputs(y_true=_u(6, 3), y_pred=_n(6, 3, scale=2.0)), ("y_pred", "y_true")),

    Row("triplet_swap", "triplet(a, p, q, margin=1.0, squared=false, swap=true, reduction={r})",
        lambda i, r: F.triplet_margin_loss(i["a"], i["p"], i["q"], margin=1.0, swap=True, reduction=r),
        _swap_triplets, ("a", "p", "q")),

    Row("margin_ranking", "margin_ranking(x1, x2, y_true, margin=0.3, reduction={r})",
        lambda i, r: F.margin_ranking_loss(i["x1"], i["x2"], i["y_true"], margin=0.3, reduction=r),
        _inputs(x1=_n(9), x2=_n(9), y_true=_pm1(9)), ("x1", "x2")),
    Row("cosine_embedding", "cosine_embedding(x1, x2, y_true, margin=0.2, reduction={r})",
        lambda i, r: F.cosine_embedding_loss(i["x1"], i["x2"], i["y_true"], margin=0.2, reduction=r),
        _inputs(x1=_n(8, 5), x2=_n(8, 5), y_true=_pm1(8)), ("x1", "x2")),
    Row("cosine_embedding_other_labels", "cosine_embedding(x1, x2, y_true, reduction={r})",  # 0 adds 0, as torch
        lambda i, r: F.cosine_embedding_loss(i["x1"], i["x2"], i["y_true"], reduction=r),
        lambda g: {"x1": _n(4, 3)(g), "x2": _n(4, 3)(g), "y_true": torch.tensor([1.0, 0.0, -1.0, 0.0]).double()},
        ("x1", "x2")),
    Row("cosine_embedding_zero_vector", "cosine_embedding(x1, x2, y_true, reduction={r})",
        lambda i, r: F.cosine_embedding_loss(i["x1"], i["x2"], i["y_true"], reduction=r),
        lambda g: {"x1": torch.cat([torch.zeros(1, 3, dtype=torch.float64), _n(3, 3)(g)]), "x2": _n(4, 3)(g),
                   "y_true": torch.tensor([1.0, 1.0, -1.0, 1.0], dtype=torch.float64)}, ("x1", "x2"),
        rtol64=1e-8),  # the zero vector's gradient is about 1e5 (1/sqrt(1e-12) scaled): rounding of that
    Row("hinge_embedding", "hinge_embedding(y_true, y_pred, margin=1.2, reduction={r})",
        lambda i, r: F.hinge_embedding_loss(i["y_pred"], i["y_true"], margin=1.2, reduction=r),
        _inputs(y_true=_pm1(10), y_pred=_u(10, low=0.0, high=2.5))),
    Row("soft_margin", "soft_margin(reduction={r})",
        lambda i, r: F.soft_margin_loss(i["y_pred"], i["y_true"], reduction=r),
        _inputs(y_true=_pm1(6, 3), y_pred=_n(6, 3, scale=3.0))),
    Row("multilabel_soft_margin_weight", "multilabel_soft_margin(class_weights=cw, reduction={r})",
        lambda i, r: F.multilabel_soft_margin_loss(i["y_pred"], i["y_true"], weight=_w(i), reduction=r),
        _inputs(y_true=lambda g: torch.randint(0, 2, (6, 4), generator=g).double(), y_pred=_n(6, 4, scale=2.0),
                cw=_cw), ("y_pred", "cw")),
    Row("multi_margin", "multi_margin(reduction={r})",
        lambda i, r: F.multi_margin_loss(i["y_pred"], i["y_true"], reduction=r),
        _inputs(y_true=_labels(7), y_pred=_n(7, 4))),
    Row("multi_margin_p2_weight", "multi_margin(p=2, margin=0.6, class_weights=cw, reduction={r})",
        lambda i, r: F.multi_margin_loss(i["y_pred"], i["y_true"], p=2, margin=0.6, weight=_w(i), reduction=r),
        _inputs(y_true=_labels(7), y_pred=_n(7, 4), cw=_cw), ("y_pred",)),
    Row("multilabel_margin", "multilabel_margin(reduction={r})",
        lambda i, r: F.multilabel_margin_loss(i["y_pred"], i["y_true"], reduction=r), _multilabel),
]
DTYPES = {torch.float64: dict(rtol=1e-9, atol=1e-11), torch.float32: dict(rtol=2e-5, atol=2e-6)}
PARAMS = [pytest.param(row, r, dt, id=f"{row.id}-{r}-{str(dt)[6:]}") for row in ROWS for r in row.reductions
          for dt in DTYPES]


def _source(row, reduction):
    return row.call.format(r=repr(reduction).replace("'", '"'))


def _prepared(row, dtype):
    raw = row.inputs(torch.Generator().manual_seed(sum(map(ord, row.id))))
    return {k: (v.to(dtype).requires_grad_(k in row.wrt) if v.is_floating_point() else v) for k, v in raw.items()}


def _ours(loss, inputs):
    return {k: v for k, v in inputs.items() if k in loss.inputs}


def _tolerance(row, dtype):
    return {**DTYPES[dtype], "rtol": row.rtol64} if dtype == torch.float64 else DTYPES[dtype]


def _close(got, want, dtype, what, row):
    assert got.dtype == want.dtype == dtype, what
    assert got.shape == want.shape, what
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), **_tolerance(row, dtype), err_msg=what)


@pytest.mark.parametrize("row, reduction, dtype", PARAMS)
def test_matches_torch_functional(row, reduction, dtype):
    loss = lossdsl.compile(_source(row, reduction), backend="torch")
    ours, theirs = _prepared(row, dtype), _prepared(row, dtype)
    value, want = loss(**_ours(loss, ours)), row.reference(theirs, reduction)
    assert torch.all(torch.isfinite(want))  # every row is one where PyTorch's value is finite
    _close(value, want, dtype, "value", row)
    ct = torch.linspace(0.5, 1.5, want.numel(), dtype=dtype).reshape(want.shape)  # a non-uniform cotangent
    value.backward(ct)
    want.backward(ct)
    for name in row.wrt:
        assert torch.all(torch.isfinite(theirs[name].grad)), name
        _close(ours[name].grad, theirs[name].grad, dtype, f"d/d{name} by backward()", row)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_numpy_backend_matches_torch_functional(row):
    """The NumPy backend, float64, "mean" (or the row's first reduction): value and value_and_grad."""
    reduction = row.reductions[0]
    loss = lossdsl.compile(_source(row, reduction), backend="numpy")
    theirs = _prepared(row, torch.float64)
    want = row.reference(theirs, reduction)
    want.backward(torch.ones_like(want))
    value, grads = loss.value_and_grad(list(row.wrt))(
        **{k: v.detach().numpy() for k, v in theirs.items() if k in loss.inputs})
    np.testing.assert_allclose(value, want.detach().numpy(), **_tolerance(row, torch.float64))
    for name in row.wrt:
        np.testing.assert_allclose(grads[name], theirs[name].grad.numpy(), **_tolerance(row, torch.float64),
                                   err_msg=name)


def test_all_ignored_mean_is_nan_as_in_pytorch():
    """Every sample ignored: "mean" is 0/0, NaN in both, with or without class weights; "sum" is 0."""
    labels = torch.full((4,), -100)
    logits = torch.randn(4, 3, dtype=torch.float64)
    cw = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    for source, want in [("sparse_cce(y_true, y_pred, from_logits=true)", F.cross_entropy(logits, labels)),
                         ("sparse_cce(y_true, y_pred, from_logits=true, class_weights=cw)",
                          F.cross_entropy(logits, labels, weight=cw)),
                         ('nll(y_true, y_pred, class_weights=cw, reduction="sum")',
                          F.nll_loss(logits, labels, weight=cw, reduction="sum"))]:
        loss = lossdsl.compile(source, backend="torch")
        got = loss(**{k: v for k, v in {"y_true": labels, "y_pred": logits, "cw": cw}.items() if k in loss.inputs})
        np.testing.assert_equal(got.numpy(), want.numpy())
