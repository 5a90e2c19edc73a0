"""Classification losses: references written from each loss's published formula.

The references use stable forms where the library promises stability (softplus as logaddexp(0, x),
log_softmax as x - max - log(sum(exp(x - max)))), so that rows with logits of +-100 and +-1000 compare
finite values and gradients. Rows with ignored labels (sparse_cce, nll) are not reducible: their
"mean" is over the samples that are not ignored (PyTorch), not the harness's plain mean, so each
such row calls one reduction explicitly and its reference returns the final value.
"""

import jax.numpy as jnp
import numpy as np
import optax

from . import Case

N, C = 6, 4
IGNORE = -100


# --- stable pieces, for numpy and jax.numpy alike -------------------------------------------------

def _softplus(xp, x):
    return xp.logaddexp(0.0, x)


def _sigmoid(xp, x):
    return xp.exp(-_softplus(xp, -x))


def _log_softmax(xp, x, axis=-1):
    m = xp.max(x, axis=axis, keepdims=True)
    return x - m - xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True))


def _normalised_clipped(xp, p, axis=-1, eps=1e-7):
    """Keras: probabilities normalised to sum 1 along axis, then clipped to [eps, 1 - eps]."""
    return xp.clip(p / xp.sum(p, axis=axis, keepdims=True), eps, 1 - eps)


def _pick(xp, x, labels):
    """x[..., label] (labels already in range)."""
    return xp.take_along_axis(x, labels[..., None], axis=-1)[..., 0]


# --- inputs ----------------------------------------------------------------------------------------

def _softmax_rows(rng, shape, scale=1.5, axis=-1):
    z = rng.normal(size=shape) * scale
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _binary(logits=False, soft=False, shape=(N, 3), scale=2.0):
    def make(rng):
        y = rng.uniform(size=shape) if soft else (rng.uniform(size=shape) < 0.5).astype(float)
        x = rng.normal(size=shape) * scale
        return {"y_true": y, "y_pred": x if logits else 1 / (1 + np.exp(-x))}
    return make


def _extreme_logits(big, shape=(N, 4)):
    """Logits of +-big and small ones, against hard and soft labels: every sign combination."""
    def make(rng):
        x = np.tile(np.array([-big, big, -big, big]), (shape[0], 1))
        x[:, 2:] *= rng.uniform(0.5, 1.0, size=(shape[0], 1))  # not all the same magnitude
        x[0] = [-big, big, 0.3, -0.7]
        y = np.tile(np.array([0.0, 1.0, 1.0, 0.0]), (shape[0], 1))
        y[1] = [1.0, 0.0, 0.0, 1.0]
        y[2] = [0.3, 0.7, 0.5, 1.0]
        return {"y_true": y, "y_pred": x}
    return make


def _probabilities_0_and_1(rng):
    """Hard labels against probabilities of exactly 0 and 1 (right and wrong) and ordinary ones."""
    p = rng.uniform(0.05, 0.95, size=(N, 4))
    p[:, 0], p[:, 1] = 0.0, 1.0
    y = (rng.uniform(size=(N, 4)) < 0.5).astype(float)
    y[:3, :2] = [0.0, 1.0]  # right, with certainty
    y[3:, :2] = [1.0, 0.0]  # wrong, with certainty
    return {"y_true": y, "y_pred": p}


def _categorical(logits=False, soft=False, shape=(N, C), axis=-1, normalised=True):
    def make(rng):
        labels = rng.integers(0, shape[axis], size=shape[:axis % len(shape)] + shape[axis % len(shape) + 1:])
        y = (_softmax_rows(rng, shape, axis=axis) if soft
             else np.moveaxis(np.eye(shape[axis])[labels], -1, axis))
        if logits:
            pred = rng.normal(size=shape) * 2
        elif normalised:
            pred = _softmax_rows(rng, shape, axis=axis)
        else:
            pred = rng.uniform(0.05, 0.95, size=shape)  # rows that do not sum to 1
        return {"y_true": y, "y_pred": pred}
    return make


def _categorical_extreme(big):
    def make(rng):
        x = rng.normal(size=(N, C))
        x[0] = [big, -big, 0.0, 1.0]       # right class far ahead
        x[1] = [-big, big, -big, 0.0]      # wrong class far ahead
        x[2] = [big, big, -big, -big]      # a tie at the top
        x[3] = [-big, -big, -big, -big]    # all equal
        x[4] = [big / 2, -big, big, 0.0]
        y = np.eye(C)[[0, 0, 1, 2, 3, 1]]
        y[5] = [0.1, 0.2, 0.3, 0.4]
        return {"y_true": y, "y_pred": x}
    return make


def _categorical_0_and_1(rng):
    p = np.eye(C)[[0, 1, 2, 3, 0, 1]]  # certain predictions
    p[4:] = _softmax_rows(rng, (2, C))
    y = np.eye(C)[[0, 2, 2, 1, 3, 1]]  # rows 0 and 2 right with certainty, 1 and 3 wrong
    return {"y_true": y, "y_pred": p}


def _sparse(logits=True, ignored=(), shape=(N,), extreme=None):
    def make(rng):
        labels = rng.integers(0, C, size=shape)
        for i in ignored:
            labels.flat[i] = IGNORE
        if extreme is not None:
            pred = np.where(rng.uniform(size=shape + (C,)) < 0.5, -extreme, extreme)
            pred[..., 0] = 0.0
        elif logits:
            pred = rng.normal(size=shape + (C,)) * 2
        else:
            pred = _softmax_rows(rng, shape + (C,))
        return {"y_true": labels, "y_pred": pred}
    return make


def _with_weights(make):
    return lambda rng: {**make(rng), "w": rng.uniform(0.5, 2.0, size=N)}


# --- references ------------------------------------------------------------------------------------

def _bce(xp, y_true, y_pred, from_logits=False, pos_weight=1.0, eps=1e-7):
    if from_logits:  # torch.nn.functional.binary_cross_entropy_with_logits(pos_weight=...)
        return pos_weight * y_true * _softplus(xp, -y_pred) + (1 - y_true) * _softplus(xp, y_pred)
    p = xp.clip(y_pred, eps, 1 - eps)  # keras.losses.binary_crossentropy
    return -(pos_weight * y_true * xp.log(p) + (1 - y_true) * xp.log(1 - p))


def _cce(xp, y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1, eps=1e-7):
    """torch cross_entropy with probability targets / Keras categorical_crossentropy: smooth the target."""
    logp = _log_softmax(xp, y_pred, axis) if from_logits else xp.log(_normalised_clipped(xp, y_pred, axis, eps))
    target = (1 - label_smoothing) * y_true + label_smoothing / y_true.shape[axis]
    return -xp.sum(target * logp, axis=axis)


def _sparse_cce_per_sample(xp, y_true, y_pred, from_logits=True, label_smoothing=0.0, ignore_index=IGNORE):
    """torch cross_entropy with class indices: the one-hot target smoothed; 0 where ignored."""
    logp = _log_softmax(xp, y_pred) if from_logits else xp.log(_normalised_clipped(xp, y_pred))
    valid = y_true != ignore_index
    labels = xp.where(valid, y_true, 0)
    target = (1 - label_smoothing) * (labels[..., None] == xp.arange(y_pred.shape[-1])) + label_smoothing / y_pred.shape[-1]
    return xp.where(valid, -xp.sum(target * logp, axis=-1), 0.0)


def _mean_over_kept(xp, per_sample, y_true, ignore_index=IGNORE, w=None):
    """PyTorch's "mean" with ignore_index: over the samples that are not ignored."""
    valid = (y_true != ignore_index).astype(float)
    if w is not None:
        valid = valid * xp.reshape(w, w.shape + (1,) * (valid.ndim - 1))
    return xp.sum(valid * per_sample) / xp.sum(valid)


def _nll_per_sample(xp, y_true, y_pred, ignore_index=IGNORE):
    valid = y_true != ignore_index
    return xp.where(valid, -_pick(xp, y_pred, xp.where(valid, y_true, 0)), 0.0)


def _categorical_hinge(xp, y_true, y_pred):
    positive = xp.sum(y_true * y_pred, axis=-1)
    negative = xp.max((1 - y_true) * y_pred, axis=-1)
    return xp.maximum(0.0, negative - positive + 1)


def _focal(xp, y_true, y_pred, gamma=2.0, alpha=0.25, from_logits=False):
    """torchvision.ops.sigmoid_focal_loss (logits) / Keras binary focal crossentropy (probabilities),
    with ce and 1 - p_t written stably for logits."""
    if from_logits:
        ce = _bce(xp, y_true, y_pred, from_logits=True)
        miss = y_true * _sigmoid(xp, -y_pred) + (1 - y_true) * _sigmoid(xp, y_pred)  # 1 - p_t
    else:
        ce = _bce(xp, y_true, y_pred)
        p_t = y_pred * y_true + (1 - y_pred) * (1 - y_true)
        miss = 1 - p_t
    loss = ce * miss**gamma
    if isinstance(alpha, float) and alpha < 0:
        return loss
    return (alpha * y_true + (1 - alpha) * (1 - y_true)) * loss


def _categorical_focal(xp, y_true, y_pred, gamma=2.0, alpha=0.25, from_logits=False, axis=-1):
    """keras.losses.CategoricalFocalCrossentropy (probabilities); softmax without the clip for logits."""
    if from_logits:
        logp = _log_softmax(xp, y_pred, axis)
        p = xp.exp(logp)
    else:
        p = _normalised_clipped(xp, y_pred, axis)
        logp = xp.log(p)
    return xp.sum(-alpha * y_true * (1 - p) ** gamma * logp, axis=axis)



# --- class weights, class axis, label smoothing, masked logits (PyTorch's weight=, Keras's label_smoothing) ---

CW = np.array([0.5, 1.0, 2.0, 1.5])


def _smooth_binary(y, ls):
    """Keras: the binary target moved towards 1/2."""
    return y * (1 - ls) + 0.5 * ls


def _weighted_cce(xp, y_true, y_pred, cw, from_logits=True, label_smoothing=0.0, axis=-1):
    """torch cross_entropy with probability targets and weight=: -sum(w*t*log(p)) along the class axis."""
    logp = _log_softmax(xp, y_pred, axis) if from_logits else xp.log(_normalised_clipped(xp, y_pred, axis))
    shape = [1] * y_pred.ndim
    shape[axis] = -1
    target = (1 - label_smoothing) * y_true + label_smoothing / y_true.shape[axis]
    return -xp.sum(xp.reshape(cw, shape) * target * logp, axis=axis)


def _masked_cce(xp, y_true, y_pred):
    """optax.safe_softmax_cross_entropy: a class with no target mass adds 0, even at log(p) = -inf."""
    logp = _log_softmax(xp, y_pred)
    return -xp.sum(y_true * xp.where(y_true == 0, 0.0, logp), axis=-1)


def _class_weighted_sparse(xp, y_true, y_pred, cw=None, from_logits=True, label_smoothing=0.0, axis=-1,
                           ignore_index=IGNORE):
    """torch cross_entropy with class indices (nll_loss for from_logits=None: y_pred already log-probabilities),
    weight= and ignore_index, per sample: (1 - ls)*w[y]*(-log p[y]) + ls/C*sum_c w_c*(-log p_c)."""
    x = xp.moveaxis(y_pred, axis, -1)
    if from_logits is None:
        logp = x
    else:
        logp = _log_softmax(xp, x) if from_logits else xp.log(_normalised_clipped(xp, x))
    w = xp.ones(x.shape[-1]) if cw is None else cw
    valid = y_true != ignore_index
    labels = xp.where(valid, y_true, 0)
    smooth = -xp.sum(w * logp, axis=-1) / x.shape[-1]
    per_sample = (1 - label_smoothing) * w[labels] * -_pick(xp, logp, labels) + label_smoothing * smooth
    return xp.where(valid, per_sample, 0.0), xp.where(valid, w[labels], 0.0)


def _class_weighted_mean(xp, per_sample_and_weights, s=None):
    """PyTorch's "mean" with weight=: sum(s*l)/sum(s*w[y]), ignored samples (w[y] = 0 here) out of both."""
    losses, target_weights = per_sample_and_weights
    s = 1.0 if s is None else xp.reshape(s, s.shape + (1,) * (losses.ndim - 1))
    return xp.sum(s * losses) / xp.sum(s * target_weights)


def _nchw(ignored=(), c=C):
    """Segmentation: logits (N, C, H, W) with classes on axis 1 and labels (N, H, W)."""
    def make(rng):
        labels = rng.integers(0, c, size=(3, 2, 4))
        for i in ignored:
            labels.flat[i] = IGNORE
        return {"y_true": labels, "y_pred": rng.normal(size=(3, c, 2, 4)) * 2}
    return make


def _masked_logits(rng):
    """Logits of -inf on classes the one-hot or soft target gives no mass."""
    x = rng.normal(size=(N, C)) * 2
    y = np.eye(C)[[1, 2, 3, 1, 2, 3]]
    y[5] = [0.0, 0.3, 0.0, 0.7]
    x[:, 0] = -np.inf
    x[[1, 4], 3] = -np.inf
    x[5, 2] = -np.inf
    return {"y_true": y, "y_pred": x}


def _soft_margin(xp, y_true, y_pred):
    """torch soft_margin_loss: log(1 + exp(-y*x))."""
    return _softplus(xp, -y_true * y_pred)


def _multilabel_soft_margin(xp, y_true, y_pred, cw=1.0):
    """torch multilabel_soft_margin_loss: the class mean of -w*(y*logsigmoid(x) + (1 - y)*logsigmoid(-x))."""
    return xp.mean(cw * (y_true * _softplus(xp, -y_pred) + (1 - y_true) * _softplus(xp, y_pred)), axis=-1)


def _multi_margin(xp, y_true, y_pred, p=1, margin=1.0, cw=None):
    """torch multi_margin_loss: w[y]*sum over i != y of max(0, margin - x[y] + x[i])^p / C."""
    c = y_pred.shape[-1]
    own = _pick(xp, y_pred, y_true)[:, None]
    hinges = xp.where(y_true[:, None] != np.arange(c), xp.maximum(0.0, margin - own + y_pred) ** p, 0.0)
    w = 1.0 if cw is None else cw[y_true]
    return w * xp.sum(hinges, axis=-1) / c


def _multilabel_margin(xp, y_true, y_pred):
    """torch multilabel_margin_loss, written as its C loop: the targets are each row's labels before the first -1."""
    rows = []
    c = y_pred.shape[-1]
    for n in range(y_true.shape[0]):
        targets = []
        for label in y_true[n]:
            if label < 0:
                break
            targets.append(int(label))
        others = [i for i in range(c) if i not in targets]
        terms = [xp.maximum(0.0, 1 - (y_pred[n, j] - y_pred[n, i])) for j in targets for i in others]
        rows.append(sum(terms) / c if terms else 0.0 * y_pred[n, 0])
    return xp.stack(rows) if rows else xp.zeros((0,), dtype=y_pred.dtype)  # an empty batch: no rows


MULTILABEL = np.array([[3, 0, -1, 1], [0, 1, 2, 3], [-1, 0, 0, 0], [1, 1, -1, 2], [2, -1, 3, 3], [2, 0, 1, -1]])


def _optax_focal(i, alpha=0.25, gamma=2.0):
    return optax.losses.sigmoid_focal_loss(jnp.asarray(i["y_pred"]), jnp.asarray(i["y_true"]),
                                           alpha=alpha, gamma=gamma).mean()


def _optax_cce(i, label_smoothing=0.0):
    labels = optax.smooth_labels(jnp.asarray(i["y_true"]), label_smoothing)
    return optax.losses.softmax_cross_entropy(jnp.asarray(i["y_pred"]), labels).mean()


def _pm1(make):
    """+-1 labels from 0/1 ones."""
    return lambda rng: {k: (2 * v - 1 if k == "y_true" else v) for k, v in make(rng).items()}


CASES = [
    # bce: probabilities (Keras) and logits (PyTorch)
    Case("bce", "bce(y_true, y_pred{opts})", _binary(), lambda xp, **i: _bce(xp, **i)),
    Case("bce-soft-labels", "bce(y_true, y_pred{opts})", _binary(soft=True), lambda xp, **i: _bce(xp, **i),
         wrt=("y_true", "y_pred")),
    Case("bce-1d", "bce(y_true, y_pred{opts})", _binary(shape=(9,)), lambda xp, **i: _bce(xp, **i)),
    Case("bce-eps", "bce(y_true, y_pred, eps=0.05{opts})", _binary(scale=4.0),  # some beyond the clip
         lambda xp, **i: _bce(xp, **i, eps=0.05)),
    Case("bce-pos-weight", "bce(y_true, y_pred, pos_weight=3.0{opts})", _binary(),
         lambda xp, **i: _bce(xp, **i, pos_weight=3.0)),
    Case("bce-probabilities-0-and-1", "bce(y_true, y_pred{opts})", _probabilities_0_and_1,
         lambda xp, **i: _bce(xp, **i), finite_differences=False),
    Case("bce-logits", "bce(y_true, y_pred, from_logits=true{opts})", _binary(logits=True),
         lambda xp, **i: _bce(xp, **i, from_logits=True),
         extra={"optax": lambda i: optax.losses.sigmoid_binary_cross_entropy(i["y_pred"], i["y_true"]).mean()}),
    Case("bce-logits-soft-labels", "bce(y_true, y_pred, from_logits=true{opts})", _binary(logits=True, soft=True),
         lambda xp, **i: _bce(xp, **i, from_logits=True), wrt=("y_true", "y_pred"),
         extra={"optax": lambda i: optax.losses.sigmoid_binary_cross_entropy(i["y_pred"], i["y_true"]).mean()}),
    Case("bce-logits-pos-weight", "bce(y_true, y_pred, from_logits=true, pos_weight=2.5{opts})",
         _binary(logits=True), lambda xp, **i: _bce(xp, **i, from_logits=True, pos_weight=2.5)),
    Case("bce-logits-pos-weight-per-class", "bce(y_true, y_pred, from_logits=true, pos_weight=pw{opts})",
         lambda rng: {**_binary(logits=True)(rng), "pw": np.array([0.5, 1.0, 4.0])},
         lambda xp, pw, **i: _bce(xp, **i, from_logits=True, pos_weight=pw), wrt=("y_pred", "pw")),
    Case("bce-logits-100", "bce(y_true, y_pred, from_logits=true{opts})", _extreme_logits(100.0),
         lambda xp, **i: _bce(xp, **i, from_logits=True), wrt=("y_true", "y_pred"), finite_differences=False,
         extra={"optax": lambda i: optax.losses.sigmoid_binary_cross_entropy(i["y_pred"], i["y_true"]).mean()}),
    Case("bce-logits-1000", "bce(y_true, y_pred, from_logits=true, pos_weight=2.0{opts})", _extreme_logits(1000.0),
         lambda xp, **i: _bce(xp, **i, from_logits=True, pos_weight=2.0), wrt=("y_true", "y_pred"),
         finite_differences=False),

    # cce: probabilities (Keras) and logits (PyTorch, optax)
    Case("cce", "cce(y_true, y_pred{opts})", _categorical(), lambda xp, **i: _cce(xp, **i)),
    Case("cce-unnormalised", "cce(y_true, y_pred{opts})", _categorical(normalised=False),
         lambda xp, **i: _cce(xp, **i)),
    Case("cce-soft-targets", "cce(y_true, y_pred{opts})", _categorical(soft=True), lambda xp, **i: _cce(xp, **i),
         wrt=("y_true", "y_pred")),
    Case("cce-smoothing", "cce(y_true, y_pred, label_smoothing=0.2{opts})", _categorical(soft=True, normalised=False),
         lambda xp, **i: _cce(xp, **i, label_smoothing=0.2), wrt=("y_true", "y_pred")),
    Case("cce-eps", "cce(y_true, y_pred, eps=0.02{opts})", _categorical(shape=(N, 8)),
         lambda xp, **i: _cce(xp, **i, eps=0.02)),
    Case("cce-axis-1", "cce(y_true, y_pred, axis=1{opts})", _categorical(shape=(N, C, 3), axis=1),
         lambda xp, **i: _cce(xp, **i, axis=1)),
    Case("cce-probabilities-0-and-1", "cce(y_true, y_pred{opts})", _categorical_0_and_1,
         lambda xp, **i: _cce(xp, **i), finite_differences=False),
    Case("cce-logits", "cce(y_true, y_pred, from_logits=true{opts})", _categorical(logits=True),
         lambda xp, **i: _cce(xp, **i, from_logits=True),
         extra={"optax": _optax_cce}),
    Case("cce-logits-smoothing", "cce(y_true, y_pred, from_logits=true, label_smoothing=0.1{opts})",
         _categorical(logits=True, soft=True), lambda xp, **i: _cce(xp, **i, from_logits=True, label_smoothing=0.1),
         wrt=("y_true", "y_pred"), extra={"optax": lambda i: _optax_cce(i, 0.1)}),
    Case("cce-logits-smoothing-input", "cce(y_true, y_pred, from_logits=true, label_smoothing=ls{opts})",
         lambda rng: {**_categorical(logits=True)(rng), "ls": np.array(0.15)},
         lambda xp, ls, **i: _cce(xp, **i, from_logits=True, label_smoothing=ls), wrt=("y_pred", "ls")),
    Case("cce-logits-axis-1", "cce(y_true, y_pred, from_logits=true, axis=1{opts})",
         _categorical(logits=True, shape=(N, C, 3), axis=1),
         lambda xp, **i: _cce(xp, **i, from_logits=True, axis=1)),
    Case("cce-logits-100", "cce(y_true, y_pred, from_logits=true, label_smoothing=0.1{opts})",
         _categorical_extreme(100.0), lambda xp, **i: _cce(xp, **i, from_logits=True, label_smoothing=0.1),
         wrt=("y_true", "y_pred"), finite_differences=False, extra={"optax": lambda i: _optax_cce(i, 0.1)}),
    Case("cce-logits-1000", "cce(y_true, y_pred, from_logits=true{opts})", _categorical_extreme(1000.0),
         lambda xp, **i: _cce(xp, **i, from_logits=True), wrt=("y_true", "y_pred"), finite_differences=False,
         extra={"optax": _optax_cce}),

    # sparse_cce: integer labels; no ignored sample, so the plain mean is PyTorch's
    Case("sparse_cce-logits", "sparse_cce(y_true, y_pred, from_logits=true{opts})", _sparse(),
         lambda xp, **i: _sparse_cce_per_sample(xp, **i),
         extra={"optax": lambda i: optax.losses.softmax_cross_entropy_with_integer_labels(
             i["y_pred"], i["y_true"]).mean()}),
    Case("sparse_cce-logits-smoothing", "sparse_cce(y_true, y_pred, from_logits=true, label_smoothing=0.2{opts})",
         _sparse(), lambda xp, **i: _sparse_cce_per_sample(xp, **i, label_smoothing=0.2),
         extra={"optax": lambda i: _optax_cce({"y_pred": i["y_pred"], "y_true": np.eye(C)[i["y_true"]]}, 0.2)}),
    Case("sparse_cce-probabilities", "sparse_cce(y_true, y_pred{opts})", _sparse(logits=False),
         lambda xp, **i: _sparse_cce_per_sample(xp, **i, from_logits=False)),
    Case("sparse_cce-probabilities-unnormalised", "sparse_cce(y_true, y_pred{opts})",
         lambda rng: {"y_true": rng.integers(0, C, size=N), "y_pred": rng.uniform(0.05, 0.95, size=(N, C))},
         lambda xp, **i: _sparse_cce_per_sample(xp, **i, from_logits=False)),
    Case("sparse_cce-probabilities-0-and-1", "sparse_cce(y_true, y_pred, label_smoothing=0.1{opts})",
         lambda rng: {"y_true": np.array([0, 2, 2, 1, 3, 1]), "y_pred": _categorical_0_and_1(rng)["y_pred"]},
         lambda xp, **i: _sparse_cce_per_sample(xp, **i, from_logits=False, label_smoothing=0.1),
         finite_differences=False),
    Case("sparse_cce-logits-3d", "sparse_cce(y_true, y_pred, from_logits=true{opts})", _sparse(shape=(N, 3)),
         lambda xp, **i: _sparse_cce_per_sample(xp, **i)),
    Case("sparse_cce-logits-100", "sparse_cce(y_true, y_pred, from_logits=true{opts})", _sparse(extreme=100.0),
         lambda xp, **i: _sparse_cce_per_sample(xp, **i), finite_differences=False,
         extra={"optax": lambda i: optax.losses.softmax_cross_entropy_with_integer_labels(
             i["y_pred"], i["y_true"]).mean()}),
    Case("sparse_cce-logits-1000", "sparse_cce(y_true, y_pred, from_logits=true, label_smoothing=0.1{opts})",
         _sparse(extreme=1000.0), lambda xp, **i: _sparse_cce_per_sample(xp, **i, label_smoothing=0.1),
         finite_differences=False),
    # ignore_index: "none" and "sum" are the per-sample losses with 0 where ignored
    Case("sparse_cce-ignore-mean", "sparse_cce(y_true, y_pred, from_logits=true)", _sparse(ignored=(1, 4)),
         lambda xp, **i: _mean_over_kept(xp, _sparse_cce_per_sample(xp, **i), i["y_true"]), reducible=False),
    Case("sparse_cce-ignore-sum", 'sparse_cce(y_true, y_pred, from_logits=true, reduction="sum")',
         _sparse(ignored=(1, 4)), lambda xp, **i: xp.sum(_sparse_cce_per_sample(xp, **i)), reducible=False),
    Case("sparse_cce-ignore-weighted-mean", "sparse_cce(y_true, y_pred, from_logits=true, weights=w)",
         _with_weights(_sparse(ignored=(0, 3))),
         lambda xp, w, **i: _mean_over_kept(xp, _sparse_cce_per_sample(xp, **i), i["y_true"], w=w),
         wrt=("y_pred", "w"), reducible=False),
    Case("sparse_cce-ignore-weighted-sum", 'sparse_cce(y_true, y_pred, from_logits=true, reduction="sum", weights=w)',
         _with_weights(_sparse(ignored=(0, 3))),
         lambda xp, w, **i: xp.sum(w * _sparse_cce_per_sample(xp, **i)), wrt=("y_pred", "w"), reducible=False),
    Case("sparse_cce-ignore-smoothing", "sparse_cce(y_true, y_pred, from_logits=true, label_smoothing=0.1)",
         _sparse(ignored=(2,)),
         lambda xp, **i: _mean_over_kept(xp, _sparse_cce_per_sample(xp, **i, label_smoothing=0.1), i["y_true"]),
         reducible=False),
    Case("sparse_cce-ignore-probabilities", "sparse_cce(y_true, y_pred)", _sparse(logits=False, ignored=(5,)),
         lambda xp, **i: _mean_over_kept(xp, _sparse_cce_per_sample(xp, **i, from_logits=False), i["y_true"]),
         reducible=False),
    Case("sparse_cce-ignore-3d", "sparse_cce(y_true, y_pred, from_logits=true, weights=w)",
         _with_weights(_sparse(shape=(N, 3), ignored=(0, 1, 2, 7, 11))),  # sample 0 wholly ignored
         lambda xp, w, **i: _mean_over_kept(xp, _sparse_cce_per_sample(xp, **i), i["y_true"], w=w),
         wrt=("y_pred", "w"), reducible=False),
    Case("sparse_cce-ignore-index-2", "sparse_cce(y_true, y_pred, from_logits=true, ignore_index=2)",
         lambda rng: {"y_true": np.array([2, 0, 1, 2, 3, 1]), "y_pred": rng.normal(size=(N, C))},
         lambda xp, **i: _mean_over_kept(xp, _sparse_cce_per_sample(xp, **i, ignore_index=2), i["y_true"], 2),
         reducible=False),

    # nll: log-probabilities and integer labels (torch.nn.functional.nll_loss)
    Case("nll", "nll(y_true, y_pred{opts})",
         lambda rng: {"y_true": rng.integers(0, C, size=N), "y_pred": _log_softmax(np, rng.normal(size=(N, C)))},
         lambda xp, **i: _nll_per_sample(xp, **i)),
    Case("nll-ignore-mean", "nll(y_true, y_pred)",
         lambda rng: {"y_true": np.array([0, IGNORE, 3, 1, IGNORE, 2]), "y_pred": _log_softmax(np, rng.normal(size=(N, C)))},
         lambda xp, **i: _mean_over_kept(xp, _nll_per_sample(xp, **i), i["y_true"]), reducible=False),
    Case("nll-ignore-sum", 'nll(y_true, y_pred, reduction="sum")',
         lambda rng: {"y_true": np.array([0, IGNORE, 3, 1, IGNORE, 2]), "y_pred": _log_softmax(np, rng.normal(size=(N, C)))},
         lambda xp, **i: xp.sum(_nll_per_sample(xp, **i)), reducible=False),
    Case("nll-ignore-weighted-mean", "nll(y_true, y_pred, weights=w)",
         _with_weights(lambda rng: {"y_true": np.array([IGNORE, 1, 3, 1, 0, IGNORE]),
                                    "y_pred": _log_softmax(np, rng.normal(size=(N, C)))}),
         lambda xp, w, **i: _mean_over_kept(xp, _nll_per_sample(xp, **i), i["y_true"], w=w),
         wrt=("y_pred", "w"), reducible=False),
    Case("nll-ignore-index-0", "nll(y_true, y_pred, ignore_index=0)",
         lambda rng: {"y_true": np.array([0, 1, 3, 0, 2, 2]), "y_pred": _log_softmax(np, rng.normal(size=(N, C)))},
         lambda xp, **i: _mean_over_kept(xp, _nll_per_sample(xp, **i, ignore_index=0), i["y_true"], 0),
         reducible=False),

    # hinge losses: +-1 labels, one-hot rows
    Case("hinge", "hinge(y_true, y_pred{opts})", _pm1(_binary(logits=True, shape=(N, 3), scale=1.5)),
         lambda xp, y_true, y_pred: xp.maximum(0.0, 1 - y_true * y_pred),
         extra={"optax": lambda i: optax.losses.hinge_loss(i["y_pred"], i["y_true"]).mean()}),
    Case("hinge-1d", "hinge(y_true, y_pred{opts})", _pm1(_binary(logits=True, shape=(9,))),
         lambda xp, y_true, y_pred: xp.maximum(0.0, 1 - y_true * y_pred), wrt=("y_true", "y_pred"),
         extra={"optax": lambda i: optax.losses.hinge_loss(i["y_pred"], i["y_true"]).mean()}),
    Case("squared_hinge", "squared_hinge(y_true, y_pred{opts})", _pm1(_binary(logits=True, scale=1.5)),
         lambda xp, y_true, y_pred: xp.maximum(0.0, 1 - y_true * y_pred) ** 2, wrt=("y_true", "y_pred")),
    Case("squared_hinge-at-margin", "squared_hinge(y_true, y_pred{opts})",  # smooth at the kink
         lambda rng: {"y_true": np.array([1.0, -1.0, 1.0, -1.0]), "y_pred": np.array([1.0, -1.0, 0.5, 3.0])},
         lambda xp, y_true, y_pred: xp.maximum(0.0, 1 - y_true * y_pred) ** 2, finite_differences=False),
    Case("categorical_hinge", "categorical_hinge(y_true, y_pred{opts})", _categorical(logits=True),
         lambda xp, **i: _categorical_hinge(xp, **i), wrt=("y_true", "y_pred")),
    Case("categorical_hinge-negative-scores", "categorical_hinge(y_true, y_pred{opts})",  # the 0 of the true class wins the max
         lambda rng: {"y_true": np.eye(C)[rng.integers(0, C, size=N)], "y_pred": -rng.uniform(0.5, 2.0, size=(N, C))},
         lambda xp, **i: _categorical_hinge(xp, **i)),
    Case("categorical_hinge-zero-loss", "categorical_hinge(y_true, y_pred{opts})",
         lambda rng: {"y_true": np.eye(C)[[0, 1, 2, 3, 0, 1]],
                      "y_pred": np.eye(C)[[0, 1, 2, 3, 0, 1]] * 3 + rng.uniform(-0.5, 0.5, size=(N, C))},
         lambda xp, **i: _categorical_hinge(xp, **i)),

    # focal: torchvision (logits), Keras (probabilities)
    Case("focal", "focal(y_true, y_pred{opts})", _binary(), lambda xp, **i: _focal(xp, **i)),
    Case("focal-soft", "focal(y_true, y_pred, gamma=1.5, alpha=0.7{opts})", _binary(soft=True),
         lambda xp, **i: _focal(xp, **i, gamma=1.5, alpha=0.7), wrt=("y_true", "y_pred")),
    Case("focal-probabilities-0-and-1", "focal(y_true, y_pred{opts})", _probabilities_0_and_1,
         lambda xp, **i: _focal(xp, **i), finite_differences=False),
    Case("focal-logits", "focal(y_true, y_pred, from_logits=true{opts})", _binary(logits=True),
         lambda xp, **i: _focal(xp, **i, from_logits=True),
         extra={"optax": _optax_focal}),
    Case("focal-logits-soft", "focal(y_true, y_pred, gamma=1.5, alpha=0.6, from_logits=true{opts})",
         _binary(logits=True, soft=True), lambda xp, **i: _focal(xp, **i, gamma=1.5, alpha=0.6, from_logits=True),
         wrt=("y_true", "y_pred"), extra={"optax": lambda i: _optax_focal(i, alpha=0.6, gamma=1.5)}),
    Case("focal-no-alpha", "focal(y_true, y_pred, alpha=-1, from_logits=true{opts})", _binary(logits=True),
         lambda xp, **i: _focal(xp, **i, alpha=-1.0, from_logits=True),
         extra={"optax": lambda i: _optax_focal(i, alpha=None)}),
    Case("focal-probabilities-no-alpha", "focal(y_true, y_pred, gamma=3.0, alpha=-0.5{opts})", _binary(),
         lambda xp, **i: _focal(xp, **i, gamma=3.0, alpha=-0.5)),
    Case("focal-gamma-0", "focal(y_true, y_pred, gamma=0, from_logits=true{opts})", _binary(logits=True),
         lambda xp, **i: _focal(xp, **i, gamma=0.0, from_logits=True)),
    Case("focal-inputs", "focal(y_true, y_pred, gamma=g, alpha=a, from_logits=true{opts})",
         lambda rng: {**_binary(logits=True)(rng), "g": np.array(2.5), "a": np.array(0.3)},
         lambda xp, g, a, **i: _focal(xp, **i, gamma=g, alpha=a, from_logits=True), wrt=("y_pred", "g", "a")),
    Case("focal-logits-100", "focal(y_true, y_pred, from_logits=true{opts})", _extreme_logits(100.0),
         lambda xp, **i: _focal(xp, **i, from_logits=True), wrt=("y_true", "y_pred"), finite_differences=False,
         extra={"optax": _optax_focal}),
    Case("focal-logits-1000", "focal(y_true, y_pred, from_logits=true{opts})", _extreme_logits(1000.0),
         lambda xp, **i: _focal(xp, **i, from_logits=True), wrt=("y_true", "y_pred"), finite_differences=False,
         extra={"optax": _optax_focal}),
    Case("focal-logits-1000-no-alpha", "focal(y_true, y_pred, gamma=1.0, alpha=-1, from_logits=true{opts})",
         _extreme_logits(1000.0), lambda xp, **i: _focal(xp, **i, gamma=1.0, alpha=-1.0, from_logits=True),
         wrt=("y_true", "y_pred"), finite_differences=False),

    # categorical_focal: Keras CategoricalFocalCrossentropy
    Case("categorical_focal", "categorical_focal(y_true, y_pred{opts})", _categorical(),
         lambda xp, **i: _categorical_focal(xp, **i)),
    Case("categorical_focal-unnormalised", "categorical_focal(y_true, y_pred, gamma=1.0, alpha=1.0{opts})",
         _categorical(soft=True, normalised=False),
         lambda xp, **i: _categorical_focal(xp, **i, gamma=1.0, alpha=1.0), wrt=("y_true", "y_pred")),
    Case("categorical_focal-probabilities-0-and-1", "categorical_focal(y_true, y_pred{opts})", _categorical_0_and_1,
         lambda xp, **i: _categorical_focal(xp, **i), finite_differences=False),
    Case("categorical_focal-logits", "categorical_focal(y_true, y_pred, from_logits=true{opts})",
         _categorical(logits=True, soft=True), lambda xp, **i: _categorical_focal(xp, **i, from_logits=True),
         wrt=("y_true", "y_pred")),
    Case("categorical_focal-gamma-0", "categorical_focal(y_true, y_pred, gamma=0, alpha=1, from_logits=true{opts})",
         _categorical(logits=True), lambda xp, **i: _cce(xp, **i, from_logits=True),  # = cross-entropy
         extra={"optax": _optax_cce}),
    Case("categorical_focal-axis-1", "categorical_focal(y_true, y_pred, gamma=3.0, from_logits=true, axis=1{opts})",
         _categorical(logits=True, shape=(N, C, 2), axis=1),
         lambda xp, **i: _categorical_focal(xp, **i, gamma=3.0, from_logits=True, axis=1)),
    Case("categorical_focal-inputs", "categorical_focal(y_true, y_pred, gamma=g, alpha=a{opts})",
         lambda rng: {**_categorical()(rng), "g": np.array(1.5), "a": np.array(0.4)},
         lambda xp, g, a, **i: _categorical_focal(xp, **i, gamma=g, alpha=a), wrt=("y_pred", "g", "a")),
    Case("categorical_focal-logits-100", "categorical_focal(y_true, y_pred, from_logits=true{opts})",
         _categorical_extreme(100.0), lambda xp, **i: _categorical_focal(xp, **i, from_logits=True),
         wrt=("y_true", "y_pred"), finite_differences=False),
    Case("categorical_focal-logits-1000", "categorical_focal(y_true, y_pred, from_logits=true{opts})",
         _categorical_extreme(1000.0), lambda xp, **i: _categorical_focal(xp, **i, from_logits=True),
         wrt=("y_true", "y_pred"), finite_differences=False),
    # label_smoothing (Keras's meaning) on bce, focal and categorical_focal
    *[row for name, ref in (("bce", _bce), ("focal", _focal)) for row in (
        Case(f"{name}-label-smoothing", f"{name}(y_true, y_pred, label_smoothing=0.2{{opts}})", _binary(),
             lambda xp, ref=ref, **i: ref(xp, _smooth_binary(i["y_true"], 0.2), i["y_pred"])),
        Case(f"{name}-logits-label-smoothing-input",
             f"{name}(y_true, y_pred, from_logits=true, label_smoothing=ls{{opts}})",
             lambda rng: {**_binary(logits=True)(rng), "ls": np.array(0.3)},
             lambda xp, ls, ref=ref, **i: ref(xp, _smooth_binary(i["y_true"], ls), i["y_pred"], from_logits=True),
             wrt=("y_pred", "ls")))],
    Case("categorical_focal-label-smoothing", "categorical_focal(y_true, y_pred, label_smoothing=0.2{opts})",
         _categorical(), lambda xp, **i: _categorical_focal(xp, 0.8 * i["y_true"] + 0.2 / C, i["y_pred"])),
    Case("categorical_focal-logits-label-smoothing-axis-1",
         "categorical_focal(y_true, y_pred, from_logits=true, axis=1, label_smoothing=ls{opts})",
         lambda rng: {**_categorical(logits=True, shape=(N, C, 2), axis=1)(rng), "ls": np.array(0.15)},
         lambda xp, ls, **i: _categorical_focal(xp, (1 - ls) * i["y_true"] + ls / C, i["y_pred"], from_logits=True,
                                                axis=1), wrt=("y_pred", "ls")),

    # cce: class_weights (torch's weight= with probability targets: "mean" over the samples), masked logits
    Case("cce-class-weights", "cce(y_true, y_pred, from_logits=true, class_weights=cw{opts})",
         lambda rng: {**_categorical(logits=True, soft=True)(rng), "cw": CW},
         lambda xp, cw, **i: _weighted_cce(xp, **i, cw=cw), wrt=("y_true", "y_pred", "cw")),
    Case("cce-class-weights-smoothing-axis-1",
         "cce(y_true, y_pred, label_smoothing=0.1, axis=1, class_weights=cw{opts})",
         lambda rng: {**_categorical(shape=(N, C, 3), axis=1)(rng), "cw": CW},
         lambda xp, cw, **i: _weighted_cce(xp, **i, cw=cw, from_logits=False, label_smoothing=0.1, axis=1),
         wrt=("y_pred", "cw")),
    Case("cce-logits-masked", "cce(y_true, y_pred, from_logits=true{opts})", _masked_logits,
         lambda xp, **i: _masked_cce(xp, **i), finite_differences=False,
         extra={"optax": lambda i: optax.losses.safe_softmax_cross_entropy(i["y_pred"], i["y_true"]).mean()}),

    # sparse_cce and nll: class_weights and the class axis (torch's weight=, NCHW with axis=1)
    Case("sparse_cce-logits-axis-1", "sparse_cce(y_true, y_pred, from_logits=true, axis=1{opts})", _nchw(),
         lambda xp, **i: _class_weighted_sparse(xp, **i, axis=1)[0]),
    Case("sparse_cce-probabilities-axis-1", "sparse_cce(y_true, y_pred, axis=1{opts})",
         lambda rng: {"y_true": rng.integers(0, C, size=(N, 3)), "y_pred": rng.uniform(0.05, 0.95, size=(N, C, 3))},
         lambda xp, **i: _class_weighted_sparse(xp, **i, from_logits=False, axis=1)[0]),
    Case("sparse_cce-class-weights-mean", "sparse_cce(y_true, y_pred, from_logits=true, class_weights=cw)",
         lambda rng: {**_sparse()(rng), "cw": CW},
         lambda xp, cw, **i: _class_weighted_mean(xp, _class_weighted_sparse(xp, **i, cw=cw)),
         wrt=("y_pred", "cw"), reducible=False),
    Case("sparse_cce-class-weights-sum", 'sparse_cce(y_true, y_pred, from_logits=true, class_weights=cw, reduction="sum")',
         lambda rng: {**_sparse(ignored=(2,))(rng), "cw": CW},
         lambda xp, cw, **i: xp.sum(_class_weighted_sparse(xp, **i, cw=cw)[0]), wrt=("y_pred", "cw"), reducible=False),
    Case("sparse_cce-class-weights-nchw-ignore-smoothing",
         "sparse_cce(y_true, y_pred, from_logits=true, label_smoothing=0.1, class_weights=cw, axis=1)",
         lambda rng: {**_nchw(ignored=(0, 5, 6, 17))(rng), "cw": CW},
         lambda xp, cw, **i: _class_weighted_mean(xp, _class_weighted_sparse(xp, **i, cw=cw, label_smoothing=0.1,
                                                                              axis=1)),
         wrt=("y_pred", "cw"), reducible=False),
    Case("sparse_cce-class-weights-sample-weights", "sparse_cce(y_true, y_pred, class_weights=cw, weights=w)",
         lambda rng: {**_with_weights(_sparse(logits=False, ignored=(1,)))(rng), "cw": CW},
         lambda xp, cw, w, **i: _class_weighted_mean(xp, _class_weighted_sparse(xp, **i, cw=cw, from_logits=False), w),
         wrt=("y_pred", "cw", "w"), reducible=False),
    Case("nll-axis-1", "nll(y_true, y_pred, axis=1{opts})",
         lambda rng: {"y_true": rng.integers(0, C, size=(N, 3)),
                      "y_pred": _log_softmax(np, rng.normal(size=(N, C, 3)), axis=1)},
         lambda xp, **i: _class_weighted_sparse(xp, **i, from_logits=None, axis=1)[0]),
    Case("nll-class-weights-nchw-ignore", "nll(y_true, y_pred, class_weights=cw, axis=1)",
         lambda rng: {**_nchw(ignored=(1, 2, 9))(rng), "cw": CW},
         lambda xp, cw, **i: _class_weighted_mean(xp, _class_weighted_sparse(xp, **i, cw=cw, from_logits=None, axis=1)),
         wrt=("y_pred", "cw"), reducible=False),
    Case("nll-class-weights-sum", 'nll(y_true, y_pred, class_weights=cw, reduction="sum", weights=w)',
         lambda rng: {**_with_weights(_sparse())(rng), "cw": CW},
         lambda xp, cw, w, **i: xp.sum(w * _class_weighted_sparse(xp, **i, cw=cw, from_logits=None)[0]),
         wrt=("y_pred", "cw", "w"), reducible=False),

    # PyTorch's margin losses
    Case("soft_margin", "soft_margin(y_true, y_pred{opts})", _pm1(_binary(logits=True, scale=2.0)),
         lambda xp, **i: _soft_margin(xp, **i), wrt=("y_true", "y_pred")),
    Case("soft_margin-1000", "soft_margin(y_true, y_pred{opts})",
         lambda rng: {"y_true": np.array([1.0, -1.0, 1.0, -1.0]), "y_pred": np.array([1000.0, 1000.0, -1000.0, -1000.0])},
         lambda xp, **i: _soft_margin(xp, **i), finite_differences=False),
    Case("multilabel_soft_margin", "multilabel_soft_margin(y_true, y_pred{opts})", _binary(logits=True, shape=(N, C)),
         lambda xp, **i: _multilabel_soft_margin(xp, **i)),
    Case("multilabel_soft_margin-class-weights", "multilabel_soft_margin(y_true, y_pred, class_weights=cw{opts})",
         lambda rng: {**_binary(logits=True, soft=True, shape=(N, C))(rng), "cw": CW},
         lambda xp, cw, **i: _multilabel_soft_margin(xp, **i, cw=cw), wrt=("y_pred", "cw")),
    Case("multi_margin", "multi_margin(y_true, y_pred{opts})",
         lambda rng: {"y_true": rng.integers(0, C, size=N), "y_pred": rng.normal(size=(N, C))},
         lambda xp, **i: _multi_margin(xp, **i)),
    Case("multi_margin-p2-class-weights", "multi_margin(y_true, y_pred, p=2, margin=m, class_weights=cw{opts})",
         lambda rng: {"y_true": rng.integers(0, C, size=N), "y_pred": rng.normal(size=(N, C)), "m": np.array(0.7),
                      "cw": CW},
         lambda xp, m, cw, **i: _multi_margin(xp, **i, p=2, margin=m, cw=cw), wrt=("y_pred", "m", "cw")),
    Case("multilabel_margin", "multilabel_margin(y_true, y_pred{opts})",
         lambda rng: {"y_true": MULTILABEL, "y_pred": rng.normal(size=(N, C))},
         lambda xp, **i: _multilabel_margin(xp, **i)),
]


# --- from optax and Keras (issue 16): PolyLoss, sparsemax, perceptron, generalized cross-entropy ----

def _poly1(xp, y_true, y_pred, epsilon=1.0, from_logits=True):
    """Leng et al. 2022, Poly-1: CE + epsilon * sum(y * (1 - p))."""
    logp = _log_softmax(xp, y_pred) if from_logits else xp.log(_normalised_clipped(xp, y_pred))
    p = xp.exp(logp)
    return -xp.sum(y_true * logp, axis=-1) + epsilon * xp.sum(y_true * (1 - p), axis=-1)


def _sparsemax_loss(xp, y_true, y_pred):
    """Martins and Astudillo 2016, eq. 17, with sparsemax's threshold from the sorted scores (their
    Algorithm 1): (sum over the support of z^2 - tau^2)/2 - z_y + 1/2."""
    z = y_pred
    ranked = -xp.sort(-z, axis=-1)
    cumulative = xp.cumsum(ranked, axis=-1)
    k = xp.arange(1, z.shape[-1] + 1)
    size = xp.sum(1 + k * ranked > cumulative, axis=-1, keepdims=True)
    tau = (xp.take_along_axis(cumulative, size - 1, axis=-1) - 1) / size
    support = xp.sum(xp.where(z > tau, z**2 - tau**2, 0.0), axis=-1)
    return support / 2 - _pick(xp, z, y_true) + 0.5


def _perceptron(xp, y_true, y_pred):
    return xp.max(y_pred, axis=-1) - _pick(xp, y_pred, y_true)


def _generalized_cce(xp, y_true, y_pred, q=0.5):
    """Zhang and Sabuncu 2018, L_q: (1 - p_y^q)/q."""
    return (1 - _pick(xp, y_pred, y_true) ** q) / q


def _sparse_ties(rng):
    """Scores with ties at the top, a clear winner, and all equal (no score may sit on the support's edge)."""
    x = rng.normal(size=(N, C))
    x[0] = [2.0, 2.0, -1.0, 0.5]
    x[1] = [0.3, 0.3, 0.3, 0.3]
    x[2] = [5.0, -1.0, 0.0, 1.0]
    return {"y_true": np.array([0, 1, 2, 3, 0, 1]), "y_pred": x}


CASES += [
    Case("poly1", "poly1(y_true, y_pred{opts})", _categorical(logits=True), _poly1,
         extra={"optax": lambda i: optax.losses.poly_loss_cross_entropy(i["y_pred"], i["y_true"], epsilon=1.0).mean()}),
    Case("poly1-soft-epsilon-input", "poly1(y_true, y_pred, epsilon=e{opts})",
         lambda rng: {**_categorical(logits=True, soft=True)(rng), "e": np.array(-0.6)},
         lambda xp, e, **i: _poly1(xp, **i, epsilon=e), wrt=("y_pred", "e")),
    Case("poly1-probabilities", "poly1(y_true, y_pred, epsilon=2.0, from_logits=false{opts})",
         _categorical(normalised=False), lambda xp, **i: _poly1(xp, **i, epsilon=2.0, from_logits=False)),
    Case("poly1-logits-1000", "poly1(y_true, y_pred, epsilon=2.0{opts})", _categorical_extreme(1000.0),
         lambda xp, **i: _poly1(xp, **i, epsilon=2.0), finite_differences=False),
    Case("sparsemax_loss", "sparsemax_loss(y_true, y_pred{opts})", _sparse(), _sparsemax_loss,
         extra={"optax": lambda i: optax.losses.multiclass_sparsemax_loss(i["y_pred"], i["y_true"]).mean()}),
    Case("sparsemax_loss-3d", "sparsemax_loss(y_true, y_pred{opts})", _sparse(shape=(3, 2)), _sparsemax_loss),
    Case("sparsemax_loss-ties", "sparsemax_loss(y_true, y_pred{opts})", _sparse_ties, _sparsemax_loss,
         finite_differences=False),  # a tie moves the support under a step of one score
    Case("sparsemax_loss-scores-1000", "sparsemax_loss(y_true, y_pred{opts})", _sparse(extreme=1000.0),
         _sparsemax_loss, finite_differences=False),
    Case("perceptron", "perceptron(y_true, y_pred{opts})", _sparse(), _perceptron,
         extra={"optax": lambda i: optax.losses.multiclass_perceptron_loss(i["y_pred"], i["y_true"]).mean()}),
    Case("perceptron-scores-1000", "perceptron(y_true, y_pred{opts})", _sparse(extreme=1000.0), _perceptron,
         finite_differences=False),
    Case("generalized_cce", "generalized_cce(y_true, y_pred{opts})", _sparse(logits=False), _generalized_cce),
    Case("generalized_cce-q-input", "generalized_cce(y_true, y_pred, q=q{opts})",
         lambda rng: {**_sparse(logits=False)(rng), "q": np.array(0.8)},
         lambda xp, q, **i: _generalized_cce(xp, **i, q=q), wrt=("y_pred", "q")),
    Case("generalized_cce-q1", "generalized_cce(y_true, y_pred, q=1{opts})", _sparse(logits=False),
         lambda xp, **i: 1 - _pick(xp, i["y_pred"], i["y_true"])),  # q = 1: the MAE end
]
