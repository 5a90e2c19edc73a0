"""Sequence losses: CTC against a per-sample forward algorithm written here, independent of lossdsl's
vectorised forward-backward (dictionaries of reachable states, Python loops over frames and labels;
traceable by jax.grad because only the values, never the control flow, depend on log_probs).

The harness's generic "mean" is a plain mean over samples, but CTC's (PyTorch's) "mean" divides each
loss by its target length first, so rows pass ``reduction=`` themselves (``reducible=False``) and the
reference reduces; only rows whose targets have length <= 1, where the two means agree, are reducible.
"""

from functools import reduce

import numpy as np
import optax

from . import Case

T, B, C, S = 6, 4, 4, 3
# -1 pads the rows: ignored beyond each target length. [1, 1] needs a blank between its labels, and
# [3, 3, 3] in 5 frames has exactly one alignment.
TARGETS = np.array([[1, 2, 3], [1, 1, -1], [2, -1, -1], [3, 3, 3]])
INPUT_LENGTHS = np.array([6, 5, 4, 5])
TARGET_LENGTHS = np.array([3, 2, 1, 3])


def _log_softmax(xp, z):
    m = xp.max(z, axis=-1, keepdims=True)
    return z - m - xp.log(xp.sum(xp.exp(z - m), axis=-1, keepdims=True))


def _log_probs(rng, shape=(T, B, C)):
    z = 1.5 * rng.normal(size=shape)
    return z - np.max(z, axis=-1, keepdims=True) - np.log(np.sum(np.exp(z - np.max(z, axis=-1, keepdims=True)),
                                                                 axis=-1, keepdims=True))


def ctc_nll(xp, log_probs, targets, input_lengths, target_lengths, blank=0, zero_infinity=False):
    """One CTC negative log-likelihood per sample, straight from Graves et al. (2006), eq. 6-8."""
    out = []
    for b in range(log_probs.shape[1]):
        labels = [int(k) for k in targets[b, :int(target_lengths[b])]]
        ext = [blank]
        for k in labels:
            ext += [k, blank]
        alpha = {}  # extended position -> log alpha, for the reachable positions only
        for t in range(int(input_lengths[b])):
            new = {}
            for s, k in enumerate(ext):
                sources = [s, s - 1] + ([s - 2] if s >= 2 and k != blank and k != ext[s - 2] else [])
                if t == 0:
                    terms = [0.0] if s <= 1 else []
                else:
                    terms = [alpha[r] for r in sources if r in alpha]
                if terms:
                    new[s] = reduce(xp.logaddexp, terms) + log_probs[t, b, k]
            alpha = new
        if int(input_lengths[b]) == 0:
            ends = [0.0] if not labels else []
        else:
            ends = [alpha[s] for s in {len(ext) - 1, len(ext) - 2} if s in alpha]
        if ends:
            out.append(-reduce(xp.logaddexp, ends))
        else:
            out.append(0.0 if zero_infinity else np.inf)
    return xp.stack([xp.asarray(v, dtype=log_probs.dtype) for v in out]) if out else xp.zeros(0, log_probs.dtype)


def ctc_reduced(xp, reduction, log_probs, targets, input_lengths, target_lengths, **options):
    nll = ctc_nll(xp, log_probs, targets, input_lengths, target_lengths, **options)
    if reduction == "mean":
        return xp.mean(nll / np.maximum(target_lengths, 1))
    return xp.sum(nll) if reduction == "sum" else nll


def _inputs(targets=TARGETS, input_lengths=INPUT_LENGTHS, target_lengths=TARGET_LENGTHS, name="log_probs"):
    def make(rng):
        lp = _log_probs(rng, (T, len(targets), C))
        return {name: lp if name == "log_probs" else 2 * lp, "targets": targets, "input_lengths": input_lengths,
                "target_lengths": target_lengths}
    return make


def _optax_sum(i):
    """optax's CTC: logits (B, T, C) (log-softmaxed again, which changes nothing), paddings as masks."""
    logits = np.transpose(i["log_probs"], (1, 0, 2))
    frames = (np.arange(T) >= i["input_lengths"][:, None]).astype(np.float64)
    labels = np.where(np.arange(S) < i["target_lengths"][:, None], i["targets"], 0)
    label_pad = (np.arange(S) >= i["target_lengths"][:, None]).astype(np.float64)
    return optax.ctc_loss(logits, frames, labels, label_pad).sum()


CALL = "ctc(log_probs, targets, input_lengths, target_lengths{args}{{opts}})"

# one target label or none per sample: PyTorch's mean and the plain mean agree, so reductions and
# weights come from the harness
SINGLE = (np.array([[2, -1], [0, 0], [3, -1], [1, -1]]), np.array([6, 3, 1, 4]), np.array([1, 0, 1, 1]))
# no frames and no target (loss 0); frames but no target (all blanks); targets that use every frame
EDGES = (np.array([[1, 2, 3], [0, 0, 0], [2, 1, 2], [1, 2, 1]]), np.array([0, 4, 6, 3]), np.array([0, 0, 3, 3]))
# [1, 1] in 2 frames and [2, 2, 2] in 4: no alignment fits
IMPOSSIBLE = (np.array([[1, 1, -1], [2, 3, -1], [2, 2, 2], [3, -1, -1]]), np.array([2, 6, 4, 1]),
              np.array([2, 2, 3, 1]))

CASES = [
    Case("ctc-mean", CALL.format(args=', reduction="mean"'), _inputs(),
         lambda xp, **i: ctc_reduced(xp, "mean", **i), wrt=("log_probs",), reducible=False),
    Case("ctc-sum", CALL.format(args=', reduction="sum"'), _inputs(),
         lambda xp, **i: ctc_reduced(xp, "sum", **i), wrt=("log_probs",), reducible=False,
         extra={"optax": _optax_sum}),
    Case("ctc-single-label", CALL.format(args=""), _inputs(*SINGLE),
         lambda xp, **i: ctc_nll(xp, **i), wrt=("log_probs",)),
    Case("ctc-blank-last", CALL.format(args=', blank=3, reduction="mean"'),
         _inputs(np.array([[0, 1, 2], [1, 1, 3], [2, 0, 3], [0, 0, 0]]), INPUT_LENGTHS, TARGET_LENGTHS),
         lambda xp, **i: ctc_reduced(xp, "mean", **i, blank=3), wrt=("log_probs",), reducible=False),
    Case("ctc-edges", CALL.format(args=', reduction="mean"'), _inputs(*EDGES),
         lambda xp, **i: ctc_reduced(xp, "mean", **i), wrt=("log_probs",), reducible=False),
    Case("ctc-zero-infinity", CALL.format(args=', zero_infinity=true, reduction="mean"'), _inputs(*IMPOSSIBLE),
         lambda xp, **i: ctc_reduced(xp, "mean", **i, zero_infinity=True), wrt=("log_probs",), reducible=False),
    Case("ctc-of-logits", "ctc(log_softmax(logits), targets, input_lengths, target_lengths, reduction=\"sum\"{opts})",
         _inputs(name="logits"),
         lambda xp, logits, **i: ctc_reduced(xp, "sum", _log_softmax(xp, logits), **i), wrt=("logits",),
         reducible=False),
]
