"""Contrastive and distillation losses: references written from each paper's formula (CLIP's pseudocode,
Hinton et al.'s KD loss) with the diagonal and label lookups by NumPy indexing."""

import numpy as np

from . import Case

N, D, C = 5, 4, 6


def _log_softmax(xp, x, axis=-1):
    m = xp.max(x, axis=axis, keepdims=True)
    return x - m - xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True))


def _infonce(xp, z1, z2, temperature=0.07, symmetric=True):
    """CLIP, figure 3: logits = normalised z1 @ normalised z2.T / t; the cross-entropy of each row (and,
    symmetric, each column) against its own index, averaged over both directions."""
    a = z1 / xp.linalg.norm(z1, axis=1, keepdims=True)
    b = z2 / xp.linalg.norm(z2, axis=1, keepdims=True)
    logits = a @ b.T / temperature
    rows = -xp.diagonal(_log_softmax(xp, logits, axis=1))  # row i against its own index i
    cols = -xp.diagonal(_log_softmax(xp, logits, axis=0))
    return (rows + cols) / 2 if symmetric else rows


def _pairs(rng):
    z1 = rng.normal(size=(N, D))
    return {"z1": z1, "z2": z1 + 0.8 * rng.normal(size=(N, D))}


def _distillation(xp, y_true, y_pred_student, y_pred_teacher, temperature=4.0, alpha=0.5):
    """Hinton et al. 2015: alpha*T^2*KL(p_teacher^T || p_student^T) + (1 - alpha)*CE(y, p_student)."""
    ls = _log_softmax(xp, y_pred_student / temperature)
    lt = _log_softmax(xp, y_pred_teacher / temperature)
    kl = xp.sum(xp.exp(lt) * (lt - ls), axis=-1)
    logp = _log_softmax(xp, y_pred_student)
    ce = -xp.take_along_axis(logp, xp.asarray(y_true, dtype=int)[:, None], axis=-1)[:, 0]
    return alpha * temperature**2 * kl + (1 - alpha) * ce


def _logits(scale=3.0):
    return lambda rng: {"y_true": rng.integers(0, C, size=N), "y_pred_student": scale * rng.normal(size=(N, C)),
                        "y_pred_teacher": scale * rng.normal(size=(N, C))}


CASES = [
    Case("infonce", "infonce(z1, z2{opts})", _pairs, lambda xp, **i: _infonce(xp, **i), wrt=("z1", "z2"), rtol=1e-6),
    Case("infonce-one-way", "infonce(z1, z2, temperature=0.5, symmetric=false{opts})", _pairs,
         lambda xp, **i: _infonce(xp, **i, temperature=0.5, symmetric=False), wrt=("z1", "z2")),
    Case("infonce-temperature-input", "infonce(z1, z2, temperature=t{opts})",
         lambda rng: {**_pairs(rng), "t": np.array(0.2)},
         lambda xp, t, **i: _infonce(xp, **i, temperature=t), wrt=("z2", "t")),
    Case("distillation", "distillation(y_true, y_pred_student, y_pred_teacher{opts})", _logits(),
         lambda xp, **i: _distillation(xp, **i), wrt=("y_pred_student", "y_pred_teacher")),
    Case("distillation-inputs", "distillation(y_true, y_pred_student, y_pred_teacher, temperature=t, alpha=a{opts})",
         lambda rng: {**_logits()(rng), "t": np.array(2.5), "a": np.array(0.7)},
         lambda xp, t, a, **i: _distillation(xp, **i, temperature=t, alpha=a), wrt=("y_pred_student", "t", "a")),
    Case("distillation-logits-1000", "distillation(y_true, y_pred_student, y_pred_teacher, temperature=2.0{opts})",
         _logits(scale=1000.0), lambda xp, **i: _distillation(xp, **i, temperature=2.0),
         wrt=("y_pred_student", "y_pred_teacher"), finite_differences=False),
]
