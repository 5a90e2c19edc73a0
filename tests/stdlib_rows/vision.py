"""The losses of the vision and correlation libraries (issue 22): box losses as torchvision.ops writes
them, kornia's image losses, Pearson and Lin's correlation losses, timm's asymmetric loss. Each
reference is written in NumPy/jax.numpy from the library's published formula (torchvision and timm
cannot be installed beside the test environment's torch; tests/test_vision_losses.py checks the image
losses against kornia itself)."""

import jax
import numpy as np

from . import Case

N_BOXES = 8


def _stop(xp, v):
    """torch.no_grad's constant: stop_gradient under jax.numpy, the value itself under NumPy."""
    return v if xp is np else jax.lax.stop_gradient(v)


def _intersection_union(xp, t, p):
    """torchvision's _loss_inter_union: the overlap's area where both its sides are positive, else 0."""
    iw = xp.minimum(t[..., 2], p[..., 2]) - xp.maximum(t[..., 0], p[..., 0])
    ih = xp.minimum(t[..., 3], p[..., 3]) - xp.maximum(t[..., 1], p[..., 1])
    inter = xp.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter, area(t) + area(p) - inter


def iou_loss_reference(xp, y_true, y_pred, eps=1e-7):
    inter, union = _intersection_union(xp, y_true, y_pred)
    return 1 - inter / (union + eps)


def giou_reference(xp, y_true, y_pred, eps=1e-7):
    """torchvision.ops.generalized_box_iou_loss, per box."""
    inter, union = _intersection_union(xp, y_true, y_pred)
    enclosing = ((xp.maximum(y_true[..., 2], y_pred[..., 2]) - xp.minimum(y_true[..., 0], y_pred[..., 0]))
                 * (xp.maximum(y_true[..., 3], y_pred[..., 3]) - xp.minimum(y_true[..., 1], y_pred[..., 1])))
    return 1 - (inter / (union + eps) - (enclosing - union) / (enclosing + eps))


def diou_reference(xp, y_true, y_pred, eps=1e-7):
    """torchvision.ops.distance_box_iou_loss (its _diou_iou_loss), per box."""
    t, p = y_true, y_pred
    diagonal = ((xp.maximum(t[..., 2], p[..., 2]) - xp.minimum(t[..., 0], p[..., 0])) ** 2
                + (xp.maximum(t[..., 3], p[..., 3]) - xp.minimum(t[..., 1], p[..., 1])) ** 2 + eps)
    centres = (((t[..., 0] + t[..., 2]) / 2 - (p[..., 0] + p[..., 2]) / 2) ** 2
               + ((t[..., 1] + t[..., 3]) / 2 - (p[..., 1] + p[..., 3]) / 2) ** 2)
    return iou_loss_reference(xp, t, p, eps) + centres / diagonal


def ciou_reference(xp, y_true, y_pred, eps=1e-7, alpha=None):
    """torchvision.ops.complete_box_iou_loss, per box: arctan(w/h) as it writes it (a zero height
    divides by zero, arctan(inf) = pi/2; callers give no box of zero width and height). ``alpha``:
    held at these values instead of computed (for finite differences of the gradient's function)."""
    def angle(b):
        with np.errstate(divide="ignore"):
            return xp.arctan((b[..., 2] - b[..., 0]) / (b[..., 3] - b[..., 1]))
    v = 4 / np.pi**2 * (angle(y_true) - angle(y_pred)) ** 2
    if alpha is None:
        alpha = _stop(xp, v / (iou_loss_reference(xp, y_true, y_pred, eps) + v + eps))
    return diou_reference(xp, y_true, y_pred, eps) + alpha * v


BOX_REFERENCES = {"iou_loss": iou_loss_reference, "giou": giou_reference, "diou": diou_reference,
                  "ciou": ciou_reference}


def boxes(rng, shape=(N_BOXES,), spread=0.6):
    """Targets and predictions (x1, y1, x2, y2): each prediction a jittered copy of its target,
    most overlapping it (a larger spread: more of them disjoint)."""
    xy = rng.uniform(0, 4, size=(*shape, 2))
    wh = rng.uniform(0.5, 3, size=(*shape, 2))
    pxy = xy + rng.normal(size=xy.shape) * spread
    pwh = wh * np.exp(rng.normal(size=wh.shape) * 0.3)
    return {"y_true": np.concatenate([xy, xy + wh], -1), "y_pred": np.concatenate([pxy, pxy + pwh], -1)}


def disjoint_boxes(rng):
    """Each prediction wholly to the right of or above its target, some far, some near."""
    case = boxes(rng)
    shift = np.where(rng.uniform(size=(N_BOXES, 1)) < 0.5, [[1.0, 0.0]], [[0.0, 1.0]])
    gap = (case["y_true"][:, 2:] - case["y_pred"][:, :2] + rng.uniform(0.1, 3, size=(N_BOXES, 1))) * shift
    return {"y_true": case["y_true"], "y_pred": case["y_pred"] + np.concatenate([gap, gap], -1)}


def degenerate_boxes(rng):
    """Targets of zero width (rows 0-3) or zero height (rows 4-7), inside or beside their predictions."""
    case = boxes(rng)
    t = case["y_true"].copy()
    t[:4, 2] = t[:4, 0]
    t[4:, 3] = t[4:, 1]
    return {"y_true": t, "y_pred": case["y_pred"]}


def identical_boxes(rng):
    b = boxes(rng)["y_true"]
    return {"y_true": b, "y_pred": b.copy()}


def _box_cases(name):
    ref = BOX_REFERENCES[name]
    call = f"{name}(y_true, y_pred{{opts}})"
    # CIoU's gradient holds alpha constant, so it is not its value's: test_vision_losses.py takes its
    # finite differences with alpha held
    fd = name != "ciou"
    return [
        Case(name, call, boxes, ref, wrt=("y_true", "y_pred"), finite_differences=fd),
        Case(f"{name}-batched-eps", f"{name}(y_true, y_pred, eps=0.01{{opts}})",
             lambda rng: boxes(rng, shape=(3, 4), spread=1.0), lambda xp, **i: ref(xp, **i, eps=0.01),
             finite_differences=fd),
        Case(f"{name}-disjoint", call, disjoint_boxes, ref, wrt=("y_true", "y_pred"), finite_differences=fd),
        # a zero-area target sits on the intersection's kink: its own gradient is a subgradient there
        Case(f"{name}-zero-area", call, degenerate_boxes, ref, finite_differences=fd),
        Case(f"{name}-identical", call, identical_boxes, ref, wrt=("y_true", "y_pred"), finite_differences=False),
    ]


def tv_reference(xp, x):
    """kornia.losses.total_variation: absolute differences of neighbours, summed over the last two axes.
    |d| is written d*sign(d), whose jax.grad is sign(d): 0 at d = 0, as PyTorch's abs (jnp.abs's is 1)."""
    def tv_abs(d):
        return d * xp.sign(d)
    return (xp.sum(tv_abs(x[..., 1:, :] - x[..., :-1, :]), axis=(-2, -1))
            + xp.sum(tv_abs(x[..., :, 1:] - x[..., :, :-1]), axis=(-2, -1)))


def psnr_reference(xp, y_true, y_pred, data_range=1.0):
    """kornia.losses.psnr_loss: -10 log10(data_range^2 / MSE), the MSE over every element."""
    return -10 * xp.log10(data_range**2 / xp.mean((y_true - y_pred) ** 2))


def pearson_reference(xp, y_true, y_pred):
    """1 - r, r = cov/(sd_t sd_p) over axis 0, averaged over the other entries."""
    a = y_true - xp.mean(y_true, axis=0)
    b = y_pred - xp.mean(y_pred, axis=0)
    r = xp.mean(a * b, axis=0) / xp.sqrt(xp.mean(a**2, axis=0) * xp.mean(b**2, axis=0))
    return xp.mean(1 - r)


def ccc_reference(xp, y_true, y_pred):
    """1 - Lin's CCC: 2 s_tp / (s_t^2 + s_p^2 + (m_t - m_p)^2), moments over axis 0 divided by N."""
    mt, mp = xp.mean(y_true, axis=0), xp.mean(y_pred, axis=0)
    st, sp = xp.var(y_true, axis=0), xp.var(y_pred, axis=0)
    stp = xp.mean(y_true * y_pred, axis=0) - mt * mp
    return xp.mean(1 - 2 * stp / (st + sp + (mt - mp) ** 2))


def asymmetric_reference(xp, y_true, y_pred, gamma_neg=4.0, gamma_pos=1.0, clip=0.05, eps=1e-8):
    """timm.loss.AsymmetricLossMultiLabel before its reduction (-loss per element)."""
    p = xp.exp(-xp.logaddexp(0.0, -y_pred))  # sigmoid, with a gradient at logits of +-1000
    neg = xp.minimum(1 - p + clip, 1.0) if clip > 0 else 1 - p
    ce = y_true * xp.log(xp.maximum(p, eps)) + (1 - y_true) * xp.log(xp.maximum(neg, eps))
    pt = p * y_true + neg * (1 - y_true)
    return -ce * (1 - pt) ** (gamma_pos * y_true + gamma_neg * (1 - y_true))


def multi_hot(rng, shape=(5, 6), scale=3.0):
    return {"y_true": (rng.uniform(size=shape) < 0.4).astype(float), "y_pred": rng.normal(size=shape) * scale}


def saturated(rng):
    """Logits of +-100 (sigmoid 1 or 0 in float64) against both labels, among ordinary ones."""
    case = multi_hot(rng)
    case["y_pred"][:, :4] = [100.0, -100.0, 100.0, -100.0]
    case["y_true"][:, :4] = [1.0, 1.0, 0.0, 0.0]
    return case


def _images(rng, shape=(2, 3, 5, 6)):
    return {"y_true": rng.uniform(size=shape), "y_pred": rng.uniform(size=shape)}


def _pairs(shape):
    def make(rng):
        y = rng.normal(size=shape)
        return {"y_true": y, "y_pred": 0.7 * y + 0.5 * rng.normal(size=shape) + 0.3}
    return make


CASES = [
    *(case for name in BOX_REFERENCES for case in _box_cases(name)),
    Case("total_variation", "total_variation(x)", lambda rng: {"x": rng.normal(size=(5, 6))}, tv_reference,
         wrt=("x",), reducible=False),
    Case("total_variation-constant", "total_variation(x)", lambda rng: {"x": np.full((4, 5), 0.3)}, tv_reference,
         wrt=("x",), reducible=False),
    Case("psnr", "psnr(y_true, y_pred)", _images, psnr_reference, wrt=("y_true", "y_pred"), reducible=False),
    Case("psnr-range-input", "psnr(y_true, y_pred, data_range=r)",
         lambda rng: {**_images(rng), "r": np.array(255.0)},
         lambda xp, r, **i: psnr_reference(xp, **i, data_range=r), wrt=("y_pred", "r"), reducible=False),
    Case("psnr-constant-images", "psnr(y_true, y_pred, data_range=2)",
         lambda rng: {"y_true": np.full((2, 4, 4), 0.2), "y_pred": np.full((2, 4, 4), 0.5)},
         lambda xp, **i: psnr_reference(xp, **i, data_range=2.0), wrt=("y_true", "y_pred"), reducible=False),
    Case("pearson", "pearson(y_true, y_pred)", _pairs((9,)), pearson_reference, wrt=("y_true", "y_pred"),
         reducible=False),
    Case("pearson-outputs", "pearson(y_true, y_pred)", _pairs((9, 3)), pearson_reference,
         wrt=("y_true", "y_pred"), reducible=False),
    Case("ccc", "ccc(y_true, y_pred)", _pairs((9,)), ccc_reference, wrt=("y_true", "y_pred"), reducible=False),
    Case("ccc-outputs", "ccc(y_true, y_pred)", _pairs((9, 3)), ccc_reference, wrt=("y_true", "y_pred"),
         reducible=False),
    Case("ccc-constant-prediction", "ccc(y_true, y_pred)",
         lambda rng: {"y_true": rng.normal(size=9), "y_pred": np.full(9, 0.4)}, ccc_reference,
         wrt=("y_true", "y_pred"), reducible=False),
    Case("asymmetric", "asymmetric(y_true, y_pred{opts})", multi_hot, asymmetric_reference),
    Case("asymmetric-options", "asymmetric(y_true, y_pred, gamma_neg=2, gamma_pos=0, clip=0.1, eps=1e-6{opts})",
         multi_hot, lambda xp, **i: asymmetric_reference(xp, **i, gamma_neg=2.0, gamma_pos=0.0, clip=0.1, eps=1e-6)),
    Case("asymmetric-no-clip", "asymmetric(y_true, y_pred, clip=0{opts})", multi_hot,
         lambda xp, **i: asymmetric_reference(xp, **i, clip=0.0)),
    Case("asymmetric-gamma-inputs", "asymmetric(y_true, y_pred, gamma_neg=gn, gamma_pos=gp{opts})",
         lambda rng: {**multi_hot(rng), "gn": np.array(3.0), "gp": np.array(1.5)},
         lambda xp, gn, gp, **i: asymmetric_reference(xp, **i, gamma_neg=gn, gamma_pos=gp),
         wrt=("y_pred", "gn", "gp")),
    Case("asymmetric-soft-targets", "asymmetric(y_true, y_pred{opts})",
         lambda rng: {"y_true": rng.uniform(size=(5, 6)), "y_pred": rng.normal(size=(5, 6)) * 3},
         asymmetric_reference, wrt=("y_true", "y_pred")),
    Case("asymmetric-saturated", "asymmetric(y_true, y_pred{opts})", saturated, asymmetric_reference,
         finite_differences=False),
]
