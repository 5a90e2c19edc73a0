"""stdlib/representation.loss against its peers: pytorch-metric-learning's SupConLoss, MultiSimilarityLoss,
ArcFaceLoss and CosFaceLoss themselves (value, per-anchor losses, and gradient by torch.autograd of pml's
loss), VICReg and Barlow Twins against torch code written from their reference implementations (torch.var,
torch.cov, BatchNorm1d in training mode); float32 and float64, on the torch backend, and in float32 on
NumPy and JAX. The table rows (tests/stdlib_rows/representation.py) hold the float64 checks against jax.grad
and finite differences."""

import jax
import numpy as np
import pytest
import stdlib_rows.representation as rows
from oracles import finite_differences, row_grads

import lossdsl

torch = pytest.importorskip("torch")
losses = pytest.importorskip("pytorch_metric_learning.losses")
reducers = pytest.importorskip("pytorch_metric_learning.reducers")

jax.config.update("jax_enable_x64", True)

TOLERANCE = {torch.float64: dict(rtol=1e-9, atol=1e-11), torch.float32: dict(rtol=5e-5, atol=5e-6)}
MARGIN_DEGREES = float(np.degrees(0.5))  # pml's ArcFace margin is in degrees, ours in radians


def _sample(make, seed):
    return {k: (torch.as_tensor(v) if isinstance(v, np.ndarray) else v)
            for k, v in make(np.random.default_rng(seed)).items()}


def _centres_module(cls, W, **options):
    module = cls(num_classes=W.shape[1], embedding_size=W.shape[0], **options)
    module.W.data = W.detach().clone()
    return module


def _pml_embedding_loss(cls, **options):
    """pml's loss of embeddings and labels, with our call's inputs; None: pml's default reducer."""
    def peer(i, reducer=None):
        kw = {} if reducer is None else {"reducer": reducer}
        return cls(**options, **kw)(i["embeddings"], i["labels"])
    return peer


def _pml_centre_loss(cls, **options):
    def peer(i, reducer=None):
        kw = {} if reducer is None else {"reducer": reducer}
        return _centres_module(cls, i["W"], **options, **kw)(i["embeddings"], i["labels"])
    return peer


def _centre_grad(cls, **options):
    """pml's gradient with respect to its learnt W, read from the module's parameter."""
    def grads(i, dtype):
        module = _centres_module(cls, i["W"].to(dtype), **options)
        e = i["embeddings"].to(dtype).requires_grad_(True)
        value = module(e, i["labels"])
        value.backward()
        return value, {"embeddings": e.grad, "W": module.W.grad}
    return grads


def _embedding_grad(cls, **options):
    def grads(i, dtype):
        e = i["embeddings"].to(dtype).requires_grad_(True)
        value = cls(**options)(e, i["labels"])
        value.backward()
        return value, {"embeddings": e.grad}
    return grads


# (id, our call, sample, pml's gradient): every row's labels, values and gradients as pml computes them
PML = [
    ("supcon", "supcon(embeddings, labels{r})", rows._embeddings(rows.PAIRED),
     _embedding_grad(losses.SupConLoss)),
    ("supcon-temperature", "supcon(embeddings, labels, temperature=0.5{r})", rows._embeddings(rows.PAIRED),
     _embedding_grad(losses.SupConLoss, temperature=0.5)),
    ("supcon-singleton-class", "supcon(embeddings, labels{r})", rows._embeddings(rows.SINGLETON),
     _embedding_grad(losses.SupConLoss)),
    ("supcon-one-class", "supcon(embeddings, labels{r})", rows._embeddings(np.zeros(5, dtype=int)),
     _embedding_grad(losses.SupConLoss)),
    ("supcon-all-distinct", "supcon(embeddings, labels{r})", rows._embeddings(np.arange(5)),
     _embedding_grad(losses.SupConLoss)),
    # label 1 twice, label 0 once: anchors 1 and 2 have a positive; anchor 0 has none
    ("supcon-one-positive", "supcon(embeddings, labels{r})", rows._embeddings(np.array([0, 1, 1])),
     _embedding_grad(losses.SupConLoss)),
    ("multi_similarity", "multi_similarity(embeddings, labels{r})", rows._embeddings(rows.PAIRED),
     _embedding_grad(losses.MultiSimilarityLoss)),
    ("multi_similarity-options", "multi_similarity(embeddings, labels, alpha=1.5, beta=10.0, base=0.2{r})",
     rows._embeddings(rows.PAIRED), _embedding_grad(losses.MultiSimilarityLoss, alpha=1.5, beta=10.0, base=0.2)),
    ("multi_similarity-singleton-class", "multi_similarity(embeddings, labels{r})",
     rows._embeddings(rows.SINGLETON), _embedding_grad(losses.MultiSimilarityLoss)),
    ("multi_similarity-one-class", "multi_similarity(embeddings, labels{r})",
     rows._embeddings(np.zeros(5, dtype=int)), _embedding_grad(losses.MultiSimilarityLoss)),
    ("arcface", "arcface(embeddings, labels, W{r})", rows._centres(rows.CLASSES),
     _centre_grad(losses.ArcFaceLoss, margin=MARGIN_DEGREES)),
    ("arcface-options", "arcface(embeddings, labels, W, margin=0.3, scale=8.0{r})", rows._centres(rows.CLASSES),
     _centre_grad(losses.ArcFaceLoss, margin=float(np.degrees(0.3)), scale=8.0)),
    ("arcface-beyond-pi-minus-margin", "arcface(embeddings, labels, W, scale=16.0{r})", rows._beyond,
     _centre_grad(losses.ArcFaceLoss, margin=MARGIN_DEGREES, scale=16.0)),
    ("cosface", "cosface(embeddings, labels, W{r})", rows._centres(rows.CLASSES), _centre_grad(losses.CosFaceLoss)),
    ("cosface-options", "cosface(embeddings, labels, W, margin=0.2, scale=10.0{r})", rows._centres(rows.CLASSES),
     _centre_grad(losses.CosFaceLoss, margin=0.2, scale=10.0)),
    ("cosface-cosines-at-1-and-minus-1", "cosface(embeddings, labels, W, scale=16.0{r})", rows._cone_points,
     _centre_grad(losses.CosFaceLoss, scale=16.0)),
]
PML_PARAMS = [pytest.param(*row, dtype, id=f"{row[0]}-{str(dtype)[6:]}") for row in PML
              for dtype in TOLERANCE]


def _ours(loss, inputs, dtype):
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inputs.items() if k in loss.inputs}


def _close(got, want, dtype, what):
    assert got.dtype == want.dtype == dtype, what
    assert got.shape == want.shape, what
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), **TOLERANCE[dtype], err_msg=what)


@pytest.mark.parametrize("rid, call, make, peer, dtype", PML_PARAMS)
def test_matches_pytorch_metric_learning(rid, call, make, peer, dtype):
    """The "mean" and its gradient by autograd of pml's own loss, on the torch backend."""
    inputs = _sample(make, len(rid))
    loss = lossdsl.compile(call.format(r=""), backend="torch")
    want, want_grads = peer(inputs, dtype)
    value, grads = loss.value_and_grad(list(want_grads))(**_ours(loss, inputs, dtype))
    _close(value, want.detach(), dtype, "value")
    for name, g in want_grads.items():
        assert torch.all(torch.isfinite(g)), name
        _close(grads[name], g, dtype, f"d/d{name}")


PER_ANCHOR = {  # pml's losses before its reducer, for our reduction="none"
    "supcon": _pml_embedding_loss(losses.SupConLoss),
    "multi_similarity": _pml_embedding_loss(losses.MultiSimilarityLoss),
    "arcface": _pml_centre_loss(losses.ArcFaceLoss, margin=MARGIN_DEGREES),
    "cosface": _pml_centre_loss(losses.CosFaceLoss),
}


@pytest.mark.parametrize("rid, call, make, peer", [pytest.param(*r, id=r[0]) for r in PML if r[0] in PER_ANCHOR])
def test_per_anchor_losses_and_sum_match_pml_before_its_reducer(rid, call, make, peer):
    inputs = _sample(make, len(rid))
    # pml's MultiSimilarityLoss keeps a trailing axis of length 1: one loss per anchor all the same
    losses_ = PER_ANCHOR[rid](inputs, reducers.DoNothingReducer())["loss"]["losses"].reshape(-1)
    assert losses_.shape == inputs["labels"].shape
    for reduction, want in [("none", losses_), ("sum", losses_.sum())]:
        loss = lossdsl.compile(call.format(r=f', reduction="{reduction}"'), backend="numpy")
        got = loss(**{k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()})
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-12, atol=1e-14, err_msg=reduction)


def test_supcon_weights_average_over_the_kept_anchors():
    """weights=: sum(w*l)/sum(w) over the anchors pml keeps (loss above 0), the others' weights unused."""
    inputs = rows._embeddings(rows.SINGLETON)(np.random.default_rng(3))
    w = np.random.default_rng(4).uniform(0.5, 2.0, size=len(rows.SINGLETON))
    per_anchor = rows._supcon_anchors(np, **inputs)
    kept = per_anchor > 0
    assert not kept.all()  # the labels seen once are left out
    got = lossdsl.compile("supcon(embeddings, labels, weights=w)")(**inputs, w=w)
    np.testing.assert_allclose(got, np.sum(w * per_anchor * kept) / np.sum(w * kept), rtol=1e-12)


def test_arcface_at_cosines_of_plus_minus_1_matches_pml_in_value_with_a_finite_gradient():
    """pml clamps the cosine into [-1, 1] before its arccos, which keeps the value finite there but not
    the gradient (arccos' is infinite at +-1); ours is finite, and central differences agree with it."""
    inputs = rows._cone_points(np.random.default_rng(0))
    t = {k: torch.as_tensor(v) for k, v in inputs.items()}
    e = t["embeddings"].clone().requires_grad_(True)
    module = _centres_module(losses.ArcFaceLoss, t["W"], margin=MARGIN_DEGREES, scale=16.0)
    want = module(e, t["labels"])
    want.backward()
    assert not torch.all(torch.isfinite(e.grad))  # pml's gradient there: NaN
    for backend in ("numpy", "jax", "torch"):
        loss = lossdsl.compile("arcface(embeddings, labels, W, scale=16.0)", backend=backend)
        value, grads = loss.value_and_grad(["embeddings", "W"])(**inputs)
        np.testing.assert_allclose(float(value), want.item(), rtol=1e-12, err_msg=backend)
        for name in ("embeddings", "W"):
            g = np.asarray(grads[name])
            assert np.all(np.isfinite(g)), (backend, name)
            np.testing.assert_allclose(g, finite_differences(loss, inputs, name), rtol=1e-5, atol=1e-7,
                                       err_msg=f"{backend} d/d{name}")


def _vicreg_torch(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    """Bardes et al.'s main_vicreg.py, with torch's own unbiased var and cov."""
    std = [torch.sqrt(z.var(dim=0) + 1e-4) for z in (z1, z2)]
    cov = [torch.cov(z.T) for z in (z1, z2)]
    off = ~torch.eye(z1.shape[1], dtype=torch.bool)
    return (sim_coeff * torch.nn.functional.mse_loss(z1, z2)
            + std_coeff * sum(torch.relu(1 - s).mean() for s in std) / 2
            + cov_coeff * sum(c[off].pow(2).sum() for c in cov) / z1.shape[1])


def _barlow_twins_torch(z1, z2, lambd=0.0051):
    """Zbontar et al.'s main.py: BatchNorm1d(affine=False) in training mode on each view."""
    bn = torch.nn.BatchNorm1d(z1.shape[1], affine=False).to(z1.dtype).train()
    c = bn(z1).T @ bn(z2) / z1.shape[0]
    off = ~torch.eye(z1.shape[1], dtype=torch.bool)
    return (torch.diagonal(c) - 1).pow(2).sum() + lambd * c[off].pow(2).sum()


TWO_VIEWS = [
    ("vicreg", "vicreg(z1, z2)", rows._views(scale=0.3), _vicreg_torch),
    ("vicreg-spread", "vicreg(z1, z2, sim_coeff=5.0, std_coeff=3.0, cov_coeff=0.5)", rows._views(scale=2.0),
     lambda a, b: _vicreg_torch(a, b, 5.0, 3.0, 0.5)),
    ("vicreg-constant-feature", "vicreg(z1, z2)", rows._constant_feature, _vicreg_torch),
    ("barlow_twins", "barlow_twins(z1, z2)", rows._views(n=12, d=5), _barlow_twins_torch),
    ("barlow_twins-lambd", "barlow_twins(z1, z2, lambd=0.2)", rows._views(scale=3.0),
     lambda a, b: _barlow_twins_torch(a, b, 0.2)),
    ("barlow_twins-constant-feature", "barlow_twins(z1, z2)", rows._constant_feature, _barlow_twins_torch),
]


@pytest.mark.parametrize("rid, call, make, peer, dtype",
                         [pytest.param(*r, dt, id=f"{r[0]}-{str(dt)[6:]}") for r in TWO_VIEWS for dt in TOLERANCE])
def test_two_view_losses_match_their_reference_code(rid, call, make, peer, dtype):
    inputs = {k: v.to(dtype) for k, v in _sample(make, len(rid)).items()}
    theirs = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    want = peer(theirs["z1"], theirs["z2"])
    want.backward()
    loss = lossdsl.compile(call, backend="torch")
    value, grads = loss.value_and_grad(["z1", "z2"])(**inputs)
    _close(value, want.detach(), dtype, "value")
    for name in ("z1", "z2"):
        _close(grads[name], theirs[name].grad, dtype, f"d/d{name}")


FLOAT32 = [(c.id, c) for c in rows.CASES if c.id in {
    "supcon", "supcon-singleton-class", "multi_similarity", "multi_similarity-one-class", "arcface",
    "arcface-cosines-at-1-and-minus-1", "cosface", "vicreg", "barlow_twins-constant-feature"}]


def _mean(case, losses):
    return losses.mean() if case.reducible else losses


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("rid, case", FLOAT32, ids=[r for r, _ in FLOAT32])
def test_float32_on_numpy_and_jax(rid, case, backend):
    """Float32 inputs give a float32 value and gradients, near the float64 reference."""
    inputs = case.sample()
    as32 = {k: (v.astype(np.float32) if np.issubdtype(np.asarray(v).dtype, np.floating) else v)
            for k, v in inputs.items()}
    loss = lossdsl.compile(case.call.format(opts=""), backend=backend)
    value, grads = loss.value_and_grad(list(case.wrt))(**as32)
    want = case.reference(np, **inputs)
    assert np.asarray(value).dtype == np.float32
    np.testing.assert_allclose(value, _mean(case, want), rtol=1e-4, atol=1e-5)
    want_grads = row_grads(case, inputs)
    for name in case.wrt:
        g = np.asarray(grads[name])
        assert g.dtype == np.float32 and np.all(np.isfinite(g)), name
        np.testing.assert_allclose(g, want_grads[name], rtol=1e-3, atol=1e-4, err_msg=name)
