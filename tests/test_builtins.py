"""One row per user-callable builtin (every key of ``lossdsl.builtins.BUILTINS``): a loss that uses it,
a sampler of its domain, and two references written here from the math, one in NumPy and one in
jax.numpy. From each row, in both backends: the value against NumPy, and the gradient against
jax.grad of the jax.numpy reference and against central finite differences in float64. Each
elementwise builtin (and logsumexp) is also evaluated at extreme inputs, where whatever is finite in
the math must come out finite and right.
"""

import functools
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np
import pytest
import scipy.special as sc
from oracles import assert_finite_differences, assert_gradients, finite_differences, float_names, jax_grads

import lossdsl
from lossdsl.builtins import BUILTINS, ELEMENTWISE
from lossdsl.errors import InputError

jax.config.update("jax_enable_x64", True)

BACKENDS = ("numpy", "jax")


@dataclass(frozen=True)
class Extreme:
    """A loss of one input x, the points to evaluate it at (each an array), and its value and
    gradient there from NumPy: where these are finite, lossdsl's must be finite and agree."""

    source: str
    points: tuple[np.ndarray, ...]
    value: Callable[[np.ndarray], float]
    grad: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Row:
    name: str  # the builtin
    source: str
    sample: Callable[[np.random.Generator], dict[str, Any]]
    np_ref: Callable[..., Any]
    jnp_ref: Callable[..., Any]
    extreme: Extreme | None = None
    # for stop_gradient, whose gradient is by definition not the value's: the source with each
    # stopped operand an input ``c`` held at its value, whose finite differences the gradient must match
    frozen: str = ""


# --- domain samplers ---------------------------------------------------------------------------

def real(shape, scale=2.0):
    return lambda rng: {"x": scale * rng.normal(size=shape)}


def positive(shape, lo=0.2, hi=3.0):
    return lambda rng: {"x": rng.uniform(lo, hi, size=shape)}


def _away(rng, shape, lo=0.2, hi=2.0):
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(lo, hi, size=shape)


def nonzero(shape):
    return lambda rng: {"x": _away(rng, shape)}


def distinct(shape):
    """Entries at least about 0.3 apart: no ties in max or min."""
    n = int(np.prod(shape))
    return lambda rng: {"x": (rng.permutation(n) - n / 2).reshape(shape) * 0.3 + 0.01 * rng.normal(size=shape)}


def distinct_pair(shape):
    """x with distinct entries, and y with |x - y| >= 0.2."""
    def sample(rng):
        x = distinct(shape)(rng)["x"]
        return {"x": x, "y": x + _away(rng, shape)}
    return sample


def pair(shape):
    """x and y with |x - y| >= 0.2: away from the kinks of maximum, minimum and comparisons."""
    def sample(rng):
        x = 2 * rng.normal(size=shape)
        return {"x": x, "y": x + _away(rng, shape)}
    return sample


def _with(sampler, **more):
    """A sampler with further inputs drawn by ``more[name](rng)``."""
    return lambda rng: {**sampler(rng), **{k: f(rng) for k, f in more.items()}}


# --- extreme points ------------------------------------------------------------------------------

def elementwise(source, points, f, df):
    """Evaluate ``source`` (a sum of an elementwise builtin of x) at each point alone, as a 0-d x."""
    return Extreme(source, tuple(np.array(p, dtype=np.float64) for p in points),
                   lambda x: float(np.sum(f(x))), df)


def np_softplus(x):
    return np.logaddexp(0.0, x)


def np_sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


BIG = [-1e3, -300.0, 0.0, 300.0, 1e3]


# --- CTC references: the forward recursion in NumPy; every alignment enumerated in jax.numpy ---------

def np_ctc_nll(lp, targets, il, tl, blank=0):
    """-log p(target | lp) per sample by the CTC forward recursion (Graves et al. 2006), in log space."""
    out = []
    for b in range(lp.shape[1]):
        ext = [blank]
        for c in targets[b, :tl[b]]:
            ext += [int(c), blank]
        alpha = np.full(len(ext), -np.inf)
        alpha[0] = lp[0, b, ext[0]]
        if len(ext) > 1:
            alpha[1] = lp[0, b, ext[1]]
        for t in range(1, il[b]):
            new = np.full(len(ext), -np.inf)
            for s in range(len(ext)):
                prev = [alpha[s]] + ([alpha[s - 1]] if s >= 1 else [])
                if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                    prev.append(alpha[s - 2])
                new[s] = np.logaddexp.reduce(prev) + lp[t, b, ext[s]]
            alpha = new
        out.append(-np.logaddexp.reduce(alpha[-2:] if len(ext) > 1 else alpha))
    return np.array(out)


@functools.cache
def _alignments(length, target, classes, blank=0):
    """Every frame-wise path of ``length`` frames that collapses (merge repeats, drop blanks) to ``target``."""
    def collapse(path):
        merged = [k for k, _ in itertools.groupby(path)]
        return tuple(k for k in merged if k != blank)
    return np.array([p for p in itertools.product(range(classes), repeat=length) if collapse(p) == target])


def jnp_ctc_nll(lp, targets, il, tl, blank=0):
    """-log of the sum, over every alignment of the target, of the product of its frame probabilities."""
    targets, il, tl = np.asarray(targets), np.asarray(il), np.asarray(tl)
    out = []
    for b in range(lp.shape[1]):
        paths = _alignments(int(il[b]), tuple(int(c) for c in targets[b, :tl[b]]), lp.shape[2], blank)
        frames = np.arange(int(il[b]))
        scores = jnp.sum(lp[frames[None, :], b, paths], axis=1)
        out.append(-jax.scipy.special.logsumexp(scores))
    return jnp.stack(out)


def _ctc_inputs(rng):
    z = rng.normal(size=(5, 4, 3))  # (T, B, C): blank 0 and labels 1, 2
    lp = z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
    return {"x": lp,
            "targets": np.array([[1, 1], [2, 1], [2, 0], [0, 0]]),  # a repeated label; a padded row; an empty one
            "il": np.array([5, 3, 4, 2]), "tl": np.array([2, 2, 1, 0])}


# --- scan references: log(sum(exp(x[:i + 1]))) shifted by each prefix's max, and its gradient from the
# formula d/dx_j sum_i out_i = sum_{i >= j} exp(x_j - out_i)

def np_logcumsumexp(x):
    return np.array([np.max(x[:i + 1]) + np.log(np.sum(np.exp(x[:i + 1] - np.max(x[:i + 1])))) for i in range(len(x))])


def np_logcumsumexp_grad(x):
    out = np_logcumsumexp(x)
    return np.array([np.sum(np.exp(x[j] - out[j:])) for j in range(len(x))])


# --- the table ---------------------------------------------------------------------------------

LABELS3 = np.array([2, 0, 3])
ROWS4 = np.array([1, 0, 2, 2])

ROWS = [
    Row("exp", "sum(exp(x))", real(6),
        lambda x: np.sum(np.exp(x)), lambda x: jnp.sum(jnp.exp(x)),
        elementwise("sum(exp(x))", BIG, np.exp, np.exp)),
    Row("log", "sum(log(x))", positive(6),
        lambda x: np.sum(np.log(x)), lambda x: jnp.sum(jnp.log(x)),
        elementwise("sum(log(x))", [0.0, 1e-300, 1e-3, 1.0, 1e3, 1e300], np.log, lambda x: 1 / x)),
    Row("log1p", "sum(log1p(x))", positive(6, -0.9, 3.0),
        lambda x: np.sum(np.log(1 + x)), lambda x: jnp.sum(jnp.log1p(x)),
        elementwise("sum(log1p(x))", [-1.0, -0.5, -1e-300, 0.0, 1e-300, 1e3, 1e300], np.log1p, lambda x: 1 / (1 + x))),
    Row("expm1", "sum(expm1(x))", real(6),
        lambda x: np.sum(np.exp(x) - 1), lambda x: jnp.sum(jnp.expm1(x)),
        elementwise("sum(expm1(x))", [-1e3, -300.0, -1e-300, 0.0, 1e-10, 300.0, 1e3], np.expm1, np.exp)),
    Row("sqrt", "sum(sqrt(x))", positive(6),
        lambda x: np.sum(x**0.5), lambda x: jnp.sum(jnp.sqrt(x)),
        elementwise("sum(sqrt(x))", [0.0, 1e-300, 1.0, 1e3, 1e300], np.sqrt, lambda x: 0.5 / np.sqrt(x))),
    Row("abs", "sum(abs(x))", nonzero(6),
        lambda x: np.sum(np.where(x < 0, -x, x)), lambda x: jnp.sum(jnp.abs(x)),
        elementwise("sum(abs(x))", [-1e300, -1e3, 0.0, 1e3, 1e300], np.abs, np.sign)),
    Row("sign", "sum(sign(x) * x^2)", nonzero(6),
        lambda x: np.sum(np.abs(x) * x), lambda x: jnp.sum(jnp.sign(x) * x**2),
        elementwise("sum(sign(x))", [-1e300, -1e3, -1e-300, 0.0, 1e-300, 1e3], np.sign, np.zeros_like)),
    Row("tanh", "sum(tanh(x))", real(6),
        lambda x: np.sum((np.exp(2 * x) - 1) / (np.exp(2 * x) + 1)), lambda x: jnp.sum(jnp.tanh(x)),
        elementwise("sum(tanh(x))", [-1e3, -300.0, -20.0, 0.0, 20.0, 300.0, 1e3], np.tanh,
                    lambda x: 1 / np.cosh(x) ** 2)),
    Row("cosh", "sum(cosh(x))", real(6),
        lambda x: np.sum((np.exp(x) + np.exp(-x)) / 2), lambda x: jnp.sum(jnp.cosh(x)),
        elementwise("sum(cosh(x))", BIG, np.cosh, np.sinh)),
    Row("sinh", "sum(sinh(x))", real(6),
        lambda x: np.sum((np.exp(x) - np.exp(-x)) / 2), lambda x: jnp.sum(jnp.sinh(x)),
        elementwise("sum(sinh(x))", BIG, np.sinh, np.cosh)),
    Row("sigmoid", "sum(sigmoid(x))", real(6),
        lambda x: np.sum(1 / (1 + np.exp(-x))), lambda x: jnp.sum(jax.nn.sigmoid(x)),
        elementwise("sum(sigmoid(x))", [-1e3, -300.0, -40.0, 0.0, 40.0, 300.0, 1e3], np_sigmoid,
                    lambda x: np_sigmoid(x) * np_sigmoid(-x))),
    Row("softplus", "sum(softplus(x))", real(6),
        lambda x: np.sum(np.log(1 + np.exp(x))), lambda x: jnp.sum(jax.nn.softplus(x)),
        elementwise("sum(softplus(x))", [-1e3, -300.0, -40.0, 0.0, 40.0, 300.0, 1e3], np_softplus, np_sigmoid)),
    Row("maximum", "sum(maximum(x, y))", pair(6),
        lambda x, y: np.sum(np.where(x > y, x, y)), lambda x, y: jnp.sum(jnp.maximum(x, y)),
        elementwise("sum(maximum(x, 0.5))", [-1e300, -1e3, 0.0, 1e3, 1e300], lambda x: np.maximum(x, 0.5),
                    lambda x: (x > 0.5) * 1.0)),
    Row("minimum", "sum(minimum(x, y))", pair(6),
        lambda x, y: np.sum(np.where(x < y, x, y)), lambda x, y: jnp.sum(jnp.minimum(x, y)),
        elementwise("sum(minimum(x, 0.5))", [-1e300, -1e3, 0.0, 1e3, 1e300], lambda x: np.minimum(x, 0.5),
                    lambda x: (x < 0.5) * 1.0)),
    Row("heaviside", "sum(heaviside(x, 0.5) * y^2)", pair(6),
        lambda x, y: np.sum((x > 0) * y**2), lambda x, y: jnp.sum(jnp.heaviside(x, 0.5) * y**2),
        elementwise("sum(heaviside(x, 0.5))", [-1e3, -1e-300, 0.0, 1e-300, 1e3], lambda x: np.heaviside(x, 0.5),
                    np.zeros_like)),
    Row("erf", "sum(erf(x))", real(6),
        lambda x: np.sum(sc.erf(x)), lambda x: jnp.sum(jss.erf(x)),
        elementwise("sum(erf(x))", [-1e300, -30.0, -3.0, -1e-300, 0.0, 0.3, 6.0, 1e300], sc.erf,
                    lambda x: 2 / np.sqrt(np.pi) * np.exp(-x * x))),
    Row("erfc", "sum(erfc(x))", real(6),
        lambda x: np.sum(sc.erfc(x)), lambda x: jnp.sum(jss.erfc(x)),
        elementwise("sum(erfc(x))", [-1e300, -30.0, -0.3, 0.0, 5.0, 20.0, 26.0, 30.0, 1e300], sc.erfc,
                    lambda x: -2 / np.sqrt(np.pi) * np.exp(-x * x))),
    Row("lgamma", "sum(lgamma(x))", positive(6, 0.05, 30.0),
        lambda x: np.sum(sc.gammaln(x)), lambda x: jnp.sum(jss.gammaln(x)),
        elementwise("sum(lgamma(x))", [1e-300, 1e-8, 1.0, 2.0, 1e5, 1e300, -2.5, -1e-8], sc.gammaln, sc.psi)),
    Row("digamma", "sum(digamma(x))", positive(6, 0.05, 30.0),
        lambda x: np.sum(sc.psi(x)), lambda x: jnp.sum(jss.digamma(x)),
        elementwise("sum(digamma(x))", [1e-150, 1e-8, 1.0, 3.0, 1e5, 1e150, -2.5], sc.psi,
                    lambda x: sc.polygamma(1, x))),
    Row("where", "sum(where(x > y, x*y, x - y^2))", pair(6),
        lambda x, y: np.sum(np.where(x > y, x * y, x - y * y)), lambda x, y: jnp.sum(jnp.where(x > y, x * y, x - y**2)),
        elementwise("sum(where(x < 0, exp(x), 1 + x))", BIG, lambda x: np.where(x < 0, np.exp(np.minimum(x, 0)), 1 + x),
                    lambda x: np.where(x < 0, np.exp(np.minimum(x, 0)), 1.0))),
    Row("sum", "sum(sum(x, axis=1)^2) + sum(x * sum(x, axis=0, keepdims=true)) + sum(x)", real((3, 4)),
        lambda x: np.sum(x.sum(axis=1) ** 2) + np.sum(x * x.sum(axis=0)[None, :]) + x.sum(),
        lambda x: jnp.sum(jnp.sum(x, axis=1) ** 2) + jnp.sum(x * jnp.sum(x, axis=0, keepdims=True)) + jnp.sum(x)),
    Row("mean", "mean(mean(x, axis=0)^2) + sum(x * mean(x, axis=-1, keepdims=true)) + mean(x)", real((3, 4)),
        lambda x: np.sum(x.sum(axis=0) ** 2) / 4 / 9 + np.sum(x * x.sum(axis=1)[:, None] / 4) + x.sum() / 12,
        lambda x: jnp.mean(jnp.mean(x, axis=0) ** 2) + jnp.sum(x * jnp.mean(x, axis=-1, keepdims=True)) + jnp.mean(x)),
    Row("logsumexp", "sum(logsumexp(x, axis=-1)) + logsumexp(x) + sum(x * logsumexp(x, axis=0, keepdims=true))",
        real((3, 4)),
        lambda x: np.sum(np.log(np.exp(x).sum(axis=1))) + np.log(np.exp(x).sum())
        + np.sum(x * np.log(np.exp(x).sum(axis=0))[None, :]),
        lambda x: jnp.sum(jax.scipy.special.logsumexp(x, axis=-1)) + jax.scipy.special.logsumexp(x)
        + jnp.sum(x * jax.scipy.special.logsumexp(x, axis=0, keepdims=True)),
        Extreme("sum(logsumexp(x, axis=-1))",
                (np.array([[-1e3, 0.0, 1e3], [1e3, 1e3, 1e3], [-1e3, -1e3, -1e3], [-300.0, -1e3, 300.0]]),),
                lambda x: 1e3 + (1e3 + np.log(3)) + (-1e3 + np.log(3)) + 300.0,
                lambda x: np.array([[0, 0, 1], [1 / 3, 1 / 3, 1 / 3], [1 / 3, 1 / 3, 1 / 3], [0, 0, 1]]))),
    Row("norm", "sum(norm(x, axis=1)) + norm(x) + sum(x * norm(x, axis=0, keepdims=true))", real((3, 4)),
        lambda x: np.sum(np.sqrt(np.sum(x * x, axis=1))) + np.sqrt(np.sum(x * x)) + np.sum(x * np.linalg.norm(x, axis=0)),
        lambda x: jnp.sum(jnp.linalg.norm(x, axis=1)) + jnp.linalg.norm(x)
        + jnp.sum(x * jnp.linalg.norm(x, axis=0, keepdims=True))),
    Row("max", "sum(max(x, axis=1)) + max(x) + sum(x * max(x, axis=0, keepdims=true)) + sum(max(x, y))",
        distinct_pair((3, 4)),
        lambda x, y: np.sum(np.sort(x, axis=1)[:, -1]) + np.sort(x.ravel())[-1]
        + np.sum(x * np.sort(x, axis=0)[-1][None, :]) + np.sum(np.where(x > y, x, y)),
        lambda x, y: jnp.sum(jnp.max(x, axis=1)) + jnp.max(x) + jnp.sum(x * jnp.max(x, axis=0, keepdims=True))
        + jnp.sum(jnp.maximum(x, y))),
    Row("min", "sum(min(x, axis=0)) + min(x) + sum(x * min(x, axis=1, keepdims=true)) + sum(min(x, y))",
        distinct_pair((3, 4)),
        lambda x, y: np.sum(np.sort(x, axis=0)[0]) + np.sort(x.ravel())[0]
        + np.sum(x * np.sort(x, axis=1)[:, :1]) + np.sum(np.where(x < y, x, y)),
        lambda x, y: jnp.sum(jnp.min(x, axis=0)) + jnp.min(x) + jnp.sum(x * jnp.min(x, axis=1, keepdims=True))
        + jnp.sum(jnp.minimum(x, y))),
    Row("matmul", "sum(matmul(a, b)^2) + sum(matmul(v, b)) + sum(a @ v)",
        lambda rng: {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=(4, 2)), "v": rng.normal(size=4)},
        lambda a, b, v: np.sum(np.einsum("ik,kj->ij", a, b) ** 2) + np.einsum("k,kj->", v, b) + np.einsum("ik,k->", a, v),
        lambda a, b, v: jnp.sum(jnp.matmul(a, b) ** 2) + jnp.sum(jnp.matmul(v, b)) + jnp.sum(jnp.dot(a, v))),
    Row("take", "sum(take(x, labels)^2) + sum(take(x, rows, axis=0))",
        _with(real((3, 4)), labels=lambda rng: LABELS3, rows=lambda rng: ROWS4),
        lambda x, labels, rows: np.sum(x[np.arange(3), labels] ** 2) + np.sum(x[rows, np.arange(4)]),
        lambda x, labels, rows: jnp.sum(jnp.take_along_axis(x, labels[:, None], axis=1) ** 2)
        + jnp.sum(jnp.take_along_axis(x, rows[None, :], axis=0))),
    Row("one_hot", "sum(one_hot(labels, 4) * x^2) + sum(one_hot(labels, 4, axis=0) * transpose(x)^3)",
        _with(real((3, 4)), labels=lambda rng: LABELS3),
        lambda x, labels: np.sum(np.eye(4)[labels] * x**2) + np.einsum("ic,ic->", np.eye(4)[labels], x**3),
        lambda x, labels: jnp.sum(jax.nn.one_hot(labels, 4) * x**2) + jnp.sum(jax.nn.one_hot(labels, 4, axis=0) * x.T**3)),
    Row("expand_dims", "sum((expand_dims(x, 1) - expand_dims(x, 0))^2) + sum(expand_dims(v, -1) * x)",
        _with(real((3, 4)), v=lambda rng: rng.normal(size=3)),
        lambda x, v: sum(np.sum((x[i] - x[j]) ** 2) for i in range(3) for j in range(3)) + np.sum(v[:, None] * x),
        lambda x, v: jnp.sum((jnp.expand_dims(x, 1) - jnp.expand_dims(x, 0)) ** 2) + jnp.sum(jnp.expand_dims(v, -1) * x)),
    Row("transpose", "sum(transpose(x) * y) + sum(transpose(x) @ x) + sum(transpose(t, axes=(2, 0, 1)) * exp(u))",
        _with(real((3, 4)), y=lambda rng: rng.normal(size=(4, 3)), t=lambda rng: rng.normal(size=(2, 3, 4)),
              u=lambda rng: rng.normal(size=(4, 2, 3))),
        lambda x, y, t, u: np.sum(np.swapaxes(x, 0, 1) * y) + np.sum(np.einsum("ki,kj->ij", x, x))
        + np.einsum("abc,cab->", t, np.exp(u)),
        lambda x, y, t, u: jnp.sum(x.T * y) + jnp.sum(x.T @ x) + jnp.sum(jnp.transpose(t, (2, 0, 1)) * jnp.exp(u))),
    Row("swapaxes", "sum(swapaxes(t, 0, 2) * u^2) + sum(swapaxes(t, -1, 1)^3)",
        lambda rng: {"t": rng.normal(size=(2, 3, 4)), "u": rng.normal(size=(4, 3, 2))},
        lambda t, u: np.einsum("abc,cba->", t, u**2) + np.sum(t**3),
        lambda t, u: jnp.sum(jnp.swapaxes(t, 0, 2) * u**2) + jnp.sum(jnp.swapaxes(t, -1, 1) ** 3)),
    Row("moveaxis", "sum(moveaxis(t, 0, -1) * u) + sum(log_softmax(moveaxis(t, 2, 0), axis=0) * transpose(u[:, 0, :]))",
        lambda rng: {"t": rng.normal(size=(2, 3, 4)), "u": rng.normal(size=(3, 4, 2))},
        lambda t, u: np.einsum("abc,bca->", t, u) + np.einsum("abc,ab->", t - np.log(np.sum(np.exp(t), axis=2, keepdims=True)),
                                                              np.transpose(u[:, 0, :])),
        lambda t, u: jnp.sum(jnp.moveaxis(t, 0, -1) * u)
        + jnp.sum(jax.nn.log_softmax(jnp.moveaxis(t, 2, 0), axis=0) * u[:, 0, :].T)),
    Row("reshape", "sum(reshape(t, (size(t, axis=0), -1)) * w) + sum(reshape(t^2, (4, 3, 2)) * reshape(w, (4, -1, 2)))",
        lambda rng: {"t": rng.normal(size=(2, 3, 4)), "w": rng.normal(size=(2, 12))},
        lambda t, w: sum(t[i, j, k] * w[i, 4 * j + k] for i in range(2) for j in range(3) for k in range(4))
        + np.sum(np.ravel(t) ** 2 * np.ravel(w)),
        lambda t, w: jnp.sum(t.reshape(2, -1) * w) + jnp.sum(t.reshape(4, 3, 2) ** 2 * w.reshape(4, 3, 2))),
    Row("flatten", "sum(flatten(t) * w) + sum(flatten(t, start=0)^3)",
        lambda rng: {"t": rng.normal(size=(2, 3, 4)), "w": rng.normal(size=(2, 12))},
        lambda t, w: sum(t[i, j, k] * w[i, 4 * j + k] for i in range(2) for j in range(3) for k in range(4))
        + np.sum(t**3),
        lambda t, w: jnp.sum(t.reshape(2, -1) * w) + jnp.sum(t.reshape(-1) ** 3)),
    Row("within", "sum(within(x, 0, 5)^2) + sum(within(x, lower=0.1) * y)",
        _with(positive(6), y=lambda rng: rng.normal(size=6)),
        lambda x, y: np.sum(x**2) + np.sum(x * y), lambda x, y: jnp.sum(x**2) + jnp.sum(x * y)),
    Row("per_sample", "sum(per_sample(w, x) * x^2)",
        _with(real((3, 4)), w=lambda rng: rng.uniform(0.5, 2, size=3)),
        lambda x, w: np.sum(w[:, None] * x**2), lambda x, w: jnp.sum(w[:, None] * x**2)),
    Row("size", "sum(x^2) / size(x, axis=0) + size(x) * mean(x) + size(x, axis=-1)", real((3, 4)),
        lambda x: np.sum(x**2) / 3 + 12 * np.mean(x) + 4, lambda x: jnp.sum(x**2) / 3 + 12 * jnp.mean(x) + 4),
    Row("eye", "sum(eye(size(x, axis=-1)) * (transpose(x) @ x)) + sum(eye(4) * (transpose(x) @ x))", real((3, 4)),
        lambda x: 2 * np.trace(np.einsum("ki,kj->ij", x, x)), lambda x: 2 * jnp.sum(jnp.eye(4) * (x.T @ x))),
    Row("arange", "sum(arange(size(x, axis=-1)) * x) + sum(arange(4) * x^2)", real((3, 4)),
        lambda x: np.sum(np.arange(4) * (x + x * x)), lambda x: jnp.sum(jnp.arange(4) * x) + jnp.sum(jnp.arange(4) * x**2)),
    Row("ones", "sum(ones(size(x, axis=-1)) * x^2) + sum(ones(4) * x)", real((3, 4)),
        lambda x: np.sum(x * x + x), lambda x: jnp.sum(jnp.ones(4) * x**2) + jnp.sum(jnp.ones(4) * x)),
    Row("zeros", "sum((zeros(4) + 1) * x^2) + sum(zeros(size(x)) + 2)", real((3, 4)),
        lambda x: np.sum(x * x) + 24, lambda x: jnp.sum((jnp.zeros(4) + 1) * x**2) + jnp.sum(jnp.zeros(12) + 2)),
    Row("ones_like", "sum(ones_like(x) * x^2) + sum(ones_like(x))", real((3, 4)),
        lambda x: np.sum(x * x) + 12, lambda x: jnp.sum(jnp.ones_like(x) * x**2) + jnp.sum(jnp.ones_like(x))),
    Row("zeros_like", "sum((zeros_like(x) + 2) * x^2)", real((3, 4)),
        lambda x: 2 * np.sum(x * x), lambda x: jnp.sum((jnp.zeros_like(x) + 2) * x**2)),
    Row("diag", "sum(diag(x)^2) + sum(diag(transpose(x) @ x)) + sum(diag(y))",
        _with(real((3, 4)), y=lambda rng: rng.normal(size=(2, 4, 3))),
        lambda x, y: np.sum(np.diagonal(x) ** 2) + np.sum(x * x) + np.sum(np.diagonal(y, axis1=-2, axis2=-1)),
        lambda x, y: jnp.sum(jnp.diagonal(x) ** 2) + jnp.sum(jnp.diagonal(x.T @ x)) + jnp.sum(jnp.diagonal(y, 0, -2, -1))),
    Row("concat", "sum(concat(x, x^2, axis=1)^2) + sum(concat(x, y) * concat(y, x))",
        _with(real((3, 4)), y=lambda rng: rng.normal(size=(3, 4))),
        lambda x, y: np.sum(x**2) + np.sum(x**4) + 2 * np.sum(x * y),
        lambda x, y: jnp.sum(jnp.concatenate([x, x**2], axis=1) ** 2)
        + jnp.sum(jnp.concatenate([x, y]) * jnp.concatenate([y, x]))),
    Row("stack", "sum(stack(x, y, x*y, axis=-1)^2 * arange(3)) + sum(stack(sum(x), mean(y))^2)", pair((3, 4)),
        lambda x, y: np.sum(y**2 + 2 * (x * y) ** 2) + np.sum(x) ** 2 + np.mean(y) ** 2,
        lambda x, y: jnp.sum(jnp.stack([x, y, x * y], axis=-1) ** 2 * jnp.arange(3))
        + jnp.sum(jnp.stack([jnp.sum(x), jnp.mean(y)]) ** 2)),
    # differences and windows (tests/test_windows.py has the modes, dtypes, runs and Hessians)
    Row("diff", "sum(diff(x)^2) + sum(diff(x, n=2, axis=0) * y)",
        _with(real((4, 5)), y=lambda rng: rng.normal(size=(2, 5))),
        lambda x, y: np.sum((x[:, 1:] - x[:, :-1]) ** 2) + np.sum((x[2:] - 2 * x[1:-1] + x[:-2]) * y),
        lambda x, y: jnp.sum(jnp.diff(x) ** 2) + jnp.sum(jnp.diff(x, n=2, axis=0) * y)),
    Row("roll", "sum(roll(x, 1, axis=-1) * x) + mean(roll(x, -2, axis=0)^3)", real((4, 5)),
        lambda x: np.sum(x[:, [4, 0, 1, 2, 3]] * x) + np.mean(x[[2, 3, 0, 1]] ** 3),
        lambda x: jnp.sum(jnp.roll(x, 1, axis=-1) * x) + jnp.mean(jnp.roll(x, -2, axis=0) ** 3)),
    Row("pad", "sum(pad(x, 1, value=2)^2) + sum(pad(x, (2, 1), axis=0, mode=\"reflect\")^3) "
        "+ sum(pad(x, (0, 2), mode=\"edge\")^3)", real((4, 5)),
        lambda x: np.sum(x**2) + 2 * 4 * 4 + np.sum(x[[2, 1, 0, 1, 2, 3, 2]] ** 3) + np.sum(x[:, [0, 1, 2, 3, 4, 4, 4]] ** 3),
        lambda x: jnp.sum(jnp.pad(x, ((0, 0), (1, 1)), constant_values=2) ** 2)
        + jnp.sum(jnp.pad(x, ((2, 1), (0, 0)), mode="reflect") ** 3) + jnp.sum(jnp.pad(x, ((0, 0), (0, 2)), mode="edge") ** 3)),
    Row("correlate", "sum(correlate(x, k)^2) + sum(correlate(x, k, axis=0, mode=\"same\") * x)",
        _with(real((4, 5)), k=lambda rng: rng.normal(size=3)),
        lambda x, k: np.sum(sum(k[j] * x[:, j:j + 3] for j in range(3)) ** 2)
        + np.sum(sum(k[j] * np.pad(x, ((1, 1), (0, 0)))[j:j + 4] for j in range(3)) * x),
        lambda x, k: jnp.sum(jax.vmap(lambda r: jnp.correlate(r, k))(x) ** 2)
        + jnp.sum(jax.vmap(lambda c: jnp.correlate(c, k, "same"), 1, 1)(x) * x)),
    Row("logaddexp", "sum(logaddexp(x, y))", pair(6),
        lambda x, y: np.sum(np.log(np.exp(x) + np.exp(y))), lambda x, y: jnp.sum(jnp.logaddexp(x, y)),
        elementwise("sum(logaddexp(x, 0.5))", [-1e300, -1e3, -40.0, 0.5, 40.0, 1e3, 1e300], lambda x: np.logaddexp(x, 0.5),
                    lambda x: np.exp(-np.logaddexp(0.0, 0.5 - x)))),
    Row("xlogy", "sum(xlogy(x, y))",
        lambda rng: {"x": np.where(np.arange(6) % 3 == 0, 0.0, rng.normal(size=6)), "y": rng.uniform(0.2, 3.0, size=6)},
        lambda x, y: np.sum(sc.xlogy(x, y)), lambda x, y: jnp.sum(jss.xlogy(x, y)),
        elementwise("sum(xlogy(x, 2.5))", [-1e300, -1e3, 0.0, 1e-300, 1e3, 1e300], lambda x: sc.xlogy(x, 2.5),
                    lambda x: np.full_like(x, np.log(2.5)))),
    Row("sin", "sum(sin(x))", real(6), lambda x: np.sum(np.sin(x)), lambda x: jnp.sum(jnp.sin(x)),
        elementwise("sum(sin(x))", [-1e3, -3.0, 0.0, 1e-300, 1.5, 1e3], np.sin, np.cos)),
    Row("cos", "sum(cos(x))", real(6), lambda x: np.sum(np.cos(x)), lambda x: jnp.sum(jnp.cos(x)),
        elementwise("sum(cos(x))", [-1e3, -3.0, 0.0, 1e-300, 1.5, 1e3], np.cos, lambda x: -np.sin(x))),
    Row("tan", "sum(tan(x))", lambda rng: {"x": rng.uniform(-1.4, 1.4, 6)}, lambda x: np.sum(np.sin(x) / np.cos(x)),
        lambda x: jnp.sum(jnp.tan(x)),
        elementwise("sum(tan(x))", [-1.5, -1e-300, 0.0, 1.0, 1.57], np.tan, lambda x: 1 / np.cos(x) ** 2)),
    Row("arcsin", "sum(arcsin(x))", lambda rng: {"x": rng.uniform(-0.95, 0.95, 6)},
        lambda x: np.sum(np.arctan2(x, np.sqrt(1 - x * x))), lambda x: jnp.sum(jnp.arcsin(x)),
        elementwise("sum(arcsin(x))", [-1.0, -0.999999, 0.0, 1e-300, 0.5, 1.0], np.arcsin,
                    lambda x: 1 / np.sqrt((1 - x) * (1 + x)))),
    Row("arccos", "sum(arccos(x))", lambda rng: {"x": rng.uniform(-0.95, 0.95, 6)},
        lambda x: np.sum(np.arctan2(np.sqrt(1 - x * x), x)), lambda x: jnp.sum(jnp.arccos(x)),
        elementwise("sum(arccos(x))", [-1.0, -0.999999, 0.0, 1e-300, 0.5, 1.0], np.arccos,
                    lambda x: -1 / np.sqrt((1 - x) * (1 + x)))),
    Row("arctan", "sum(arctan(x))", real(6), lambda x: np.sum(np.arctan2(x, 1.0)), lambda x: jnp.sum(jnp.arctan(x)),
        elementwise("sum(arctan(x))", [-1e300, -1e3, 0.0, 1e-300, 1e3, 1e300], np.arctan, lambda x: 1 / (1 + x * x))),
    Row("arctan2", "sum(arctan2(y, x))", _with(nonzero(6), y=lambda rng: rng.normal(size=6)),
        lambda x, y: np.sum(np.arctan2(y, x)), lambda x, y: jnp.sum(jnp.arctan2(y, x)),
        # d/dx atan2(2, x) = -2/(x^2 + 4)
        elementwise("sum(arctan2(2, x))", [-1e300, -1e3, 0.0, 1e-300, 1e3, 1e300], lambda x: np.arctan2(2.0, x),
                    lambda x: -2 / (x * x + 4))),
    Row("hypot", "sum(hypot(x, y))", _with(nonzero(6), y=lambda rng: rng.normal(size=6)),
        lambda x, y: np.sum(np.sqrt(x * x + y * y)), lambda x, y: jnp.sum(jnp.sqrt(x * x + y * y)),
        # a/hypot(a, 3): finite at 1e300, where a^2 overflows; 0 at a = 0
        elementwise("sum(hypot(x, 3))", [-1e300, -1e3, 0.0, 1e-300, 1e3, 1e300], lambda x: np.hypot(x, 3.0),
                    lambda x: x / np.hypot(x, 3.0))),
    Row("prod", "prod(x) + sum(prod(x, axis=(0, 2))) + sum(x * prod(x, axis=1, keepdims=true))",
        lambda rng: {"x": np.where(np.arange(24).reshape(2, 3, 4) == 5, 0.0, rng.uniform(0.5, 1.5, (2, 3, 4)))},
        lambda x: np.prod(x) + np.sum(np.prod(x, axis=(0, 2)))
        + np.sum(x * np.prod(x, axis=1, keepdims=True)),
        lambda x: jnp.prod(x) + jnp.sum(jnp.prod(x, axis=(0, 2))) + jnp.sum(x * jnp.prod(x, axis=1, keepdims=True))),
    Row("stop_gradient", "sum(stop_gradient(x) * x) + sum(stop_gradient(x)^2)", real(6),
        lambda x: 2 * np.sum(x * x), lambda x: jnp.sum(jax.lax.stop_gradient(x) * x) + jnp.sum(jax.lax.stop_gradient(x) ** 2),
        elementwise("sum(stop_gradient(x))", BIG, lambda x: x, np.zeros_like), frozen="sum(c * x) + sum(c^2)"),
    # order statistics and scans: references from NumPy's sort and cumulative functions, and jax.lax's
    Row("sort", "sum(sort(x) * w) + sum(sort(x, axis=0, descending=true) * w^2)",
        _with(distinct((3, 4)), w=lambda rng: rng.normal(size=(3, 4))),
        lambda x, w: np.sum(np.sort(x, axis=1) * w) + np.sum(np.sort(x, axis=0)[::-1] * w**2),
        lambda x, w: jnp.sum(jnp.sort(x) * w) + jnp.sum(jnp.sort(x, axis=0, descending=True) * w**2)),
    Row("topk", "sum(topk(x, 2) * w[:, :2]) + mean(topk(x, size(x, axis=0) - 1, axis=0)^2)",
        _with(distinct((3, 4)), w=lambda rng: rng.normal(size=(3, 4))),
        lambda x, w: np.sum(np.sort(x, axis=1)[:, ::-1][:, :2] * w[:, :2]) + np.mean(np.sort(x, axis=0)[::-1][:2] ** 2),
        lambda x, w: jnp.sum(jax.lax.top_k(x, 2)[0] * w[:, :2]) + jnp.mean(jax.lax.top_k(x.T, 2)[0].T ** 2)),
    Row("cumsum", "sum(cumsum(x) * w) + sum(cumsum(x, axis=0, reverse=true)^2)",
        _with(real((3, 4)), w=lambda rng: rng.normal(size=(3, 4))),
        lambda x, w: sum(np.sum(x[:, :j + 1], axis=1) @ w[:, j] for j in range(4))
        + sum(np.sum(np.sum(x[i:], axis=0) ** 2) for i in range(3)),
        lambda x, w: jnp.sum(jnp.cumsum(x, axis=-1) * w) + jnp.sum(jnp.cumsum(x[::-1], axis=0)[::-1] ** 2)),
    Row("cumprod", "sum(cumprod(x) * w) + sum(cumprod(x, axis=0, reverse=true) * w)",
        lambda rng: {"x": np.where(np.arange(12).reshape(3, 4) == 5, 0.0, rng.uniform(0.5, 1.5, (3, 4))),
                     "w": rng.normal(size=(3, 4))},
        lambda x, w: sum(np.prod(x[:, :j + 1], axis=1) @ w[:, j] for j in range(4))
        + sum(np.prod(x[i:], axis=0) @ w[i] for i in range(3)),
        lambda x, w: jnp.sum(jnp.cumprod(x, axis=-1) * w) + jnp.sum(jnp.cumprod(x[::-1], axis=0)[::-1] * w)),
    Row("logcumsumexp", "sum(logcumsumexp(x) * w) + sum(logcumsumexp(x, axis=0, reverse=true) * w^2)",
        _with(real((3, 4)), w=lambda rng: rng.normal(size=(3, 4))),
        lambda x, w: np.sum(np.log(np.cumsum(np.exp(x), axis=1)) * w)
        + np.sum(np.log(np.cumsum(np.exp(x[::-1]), axis=0)[::-1]) * w**2),
        lambda x, w: jnp.sum(jax.lax.cumlogsumexp(x, axis=1) * w) + jnp.sum(jax.lax.cumlogsumexp(x, axis=0, reverse=True) * w**2),
        Extreme("sum(logcumsumexp(x))",
                (np.array([-1e3, 0.0, 1e3]), np.array([1e3, 1e3, -1e3]), np.array([-1e3, -1e3, -1e3, -1e3]),
                 np.array([300.0, -1e3, 1e3, 1e3])),
                lambda x: float(np.sum(np_logcumsumexp(x))), np_logcumsumexp_grad)),
    Row("grad", "sum(grad(sum(x^3 * transpose(y)), x)^2) + sum(grad(mean(x @ y), y) * y)",
        _with(real((3, 4)), y=lambda rng: rng.normal(size=(4, 3))),
        lambda x, y: np.sum((3 * x**2 * y.T) ** 2) + np.sum(np.broadcast_to(x.sum(0)[:, None] / 9, y.shape) * y),
        lambda x, y: jnp.sum(jax.grad(lambda z: jnp.sum(z**3 * y.T))(x) ** 2)
        + jnp.sum(jax.grad(lambda z: jnp.mean(x @ z))(y) * y)),
    Row("ctc_nll", "sum(ctc_nll(x, targets, il, tl)) + mean(ctc_nll(x, targets, il, tl, blank=0))", _ctc_inputs,
        lambda x, targets, il, tl: 1.25 * np.sum(np_ctc_nll(x, targets, il, tl)),
        lambda x, targets, il, tl: 1.25 * jnp.sum(jnp_ctc_nll(x, targets, il, tl))),
]

ROW_IDS = [row.name for row in ROWS]


def test_one_row_per_builtin():
    assert len(ROW_IDS) == len(set(ROW_IDS))
    assert set(ROW_IDS) == set(BUILTINS)


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_each_row_calls_its_builtin(row):
    assert re.search(rf"\b{row.name}\(", row.source)


def test_every_elementwise_builtin_is_tried_at_extreme_inputs():
    tried = {row.name for row in ROWS if row.extreme is not None}
    assert {e.name for e in ELEMENTWISE} | {"where"} <= tried


# --- helpers ---------------------------------------------------------------------------------------

def _inputs(row):
    return row.sample(np.random.default_rng(sum(map(ord, row.name))))


@functools.cache
def _reference_grads(name):
    """jax.grad of the row's jax.numpy reference at the row's inputs, per float input (computed once)."""
    row = ROWS[ROW_IDS.index(name)]
    inputs = _inputs(row)
    return jax_grads(row.jnp_ref, inputs, float_names(inputs))


# --- value and gradient, both backends --------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_value_against_numpy_reference(row, backend):
    inputs = _inputs(row)
    value = lossdsl.compile(row.source, backend=backend)(**inputs)
    assert np.shape(value) == () and np.asarray(value).dtype == np.float64
    np.testing.assert_allclose(float(value), float(row.np_ref(**inputs)), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_gradient_against_jax_grad_of_reference(row, backend):
    inputs = _inputs(row)
    assert_gradients(lossdsl.compile(row.source, backend=backend), inputs, _reference_grads(row.name), rtol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_gradient_against_finite_differences(row, backend):
    if not row.frozen:
        assert_finite_differences(lossdsl.compile(row.source, backend=backend), _inputs(row))
        return
    inputs = _inputs(row)
    frozen = lossdsl.compile(row.frozen, backend=backend)
    want = finite_differences(frozen, {**inputs, "c": inputs["x"]}, "x")
    np.testing.assert_allclose(lossdsl.compile(row.source, backend=backend).grad("x")(**inputs), want, rtol=1e-5, atol=1e-6)


# --- extreme inputs ------------------------------------------------------------------------------------

EXTREME_ROWS = [row for row in ROWS if row.extreme is not None]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", EXTREME_ROWS, ids=[row.name for row in EXTREME_ROWS])
def test_finite_at_extreme_inputs(row, backend):
    ex = row.extreme
    loss = lossdsl.compile(ex.source, backend=backend)
    step = loss.value_and_grad("x")
    for x in ex.points:
        with np.errstate(all="ignore"):
            want_value, want_grad = ex.value(x), np.broadcast_to(ex.grad(x), x.shape)
            value, grad = step(x=x)
        value, grad = float(value), np.asarray(grad)
        where = f"{row.name} at {x.tolist()}"
        if np.isfinite(want_value):
            assert np.isfinite(value), where
            np.testing.assert_allclose(value, want_value, rtol=1e-12, atol=1e-300, err_msg=where)
        finite = np.isfinite(want_grad)
        assert np.all(np.isfinite(grad[finite])), where
        np.testing.assert_allclose(grad[finite], want_grad[finite], rtol=1e-9, atol=1e-15, err_msg=where)


def test_within_rejects_values_out_of_range():
    loss = lossdsl.compile("sum(within(x, 0, 5)^2)")
    assert float(loss(x=np.array([0.0, 5.0]))) == 25.0
    with pytest.raises(InputError):
        loss(x=np.array([1.0, 6.0]))
    with pytest.raises(InputError):
        loss(x=np.array([-0.5, 1.0]))
