"""Compiled losses are shared things: pickled, deep-copied, called from many threads at once.

Every loss of the standard-library table, on a backend drawn per loss (every backend over the table),
survives a pickle and a deepcopy round trip
before and after its first call and gives the same value and gradients as the original. A stress test
then runs 8 threads that compile, differentiate random subsets of inputs, take Hessians, call the same
and different losses and parse programs, with Python switching threads every microsecond, and compares
every result with a single-threaded run of the same work.
"""

import contextlib
import copy
import importlib
import pickle
import pkgutil
import random
import sys
import threading

import numpy as np
import pytest
import stdlib_rows
from sampling import one_of

import lossdsl
from lossdsl.compiled import CompiledLoss
from lossdsl.errors import LossDSLError
from lossdsl.pipeline import build

CASES = [case for info in pkgutil.iter_modules(stdlib_rows.__path__)
         for case in importlib.import_module(f"stdlib_rows.{info.name}").CASES]
# one row per library loss: a round trip goes by the loss's source and backend, not by its inputs
FIRST_OF_EACH_LOSS = list({case.call.split("(")[0]: case for case in reversed(CASES)}.values())
BACKENDS = ["numpy", "jax", "torch"]


def _as_backend(inputs, backend):
    if backend != "torch":
        return inputs
    import torch
    return {k: torch.as_tensor(v) for k, v in inputs.items()}


def _numpy(x):
    return {k: _numpy(v) for k, v in x.items()} if isinstance(x, dict) else np.asarray(x)


def _results(loss, inputs):
    wrt = [w for w in loss.differentiable]
    value, grads = loss.value_and_grad(wrt)(**inputs)
    return _numpy(value), _numpy(grads)


def _assert_same(got, want):
    (v1, g1), (v2, g2) = got, want
    np.testing.assert_array_equal(v1, v2)
    assert g1.keys() == g2.keys()
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


# each loss on one backend, drawn per loss (every backend over the table: a round trip goes by the
# backend's name and the source, the same mechanism for every loss)
ROUND_TRIPS = [pytest.param(c, b, id=f"{c.id}-{b}") for c in FIRST_OF_EACH_LOSS for b in one_of(f"{c.id}/pickle", BACKENDS)]


def test_every_backend_makes_round_trips():
    assert {p.values[1] for p in ROUND_TRIPS} == set(BACKENDS)


@pytest.mark.parametrize("case, backend", ROUND_TRIPS)
def test_pickle_and_deepcopy_round_trips(case, backend):
    loss = lossdsl.compile(case.call.format(opts=""), backend=backend)
    inputs = _as_backend(case.sample(), backend)
    for before_first_call in (True, False):
        copies = [pickle.loads(pickle.dumps(loss)), copy.deepcopy(loss), copy.copy(loss)]
        want = _results(loss, inputs)
        for other in copies:
            assert isinstance(other, CompiledLoss) and other.source == loss.source
            _assert_same(_results(other, inputs), want)
        assert before_first_call or loss.source == copies[0].source


def test_a_fresh_process_compiles_what_it_unpickles():
    """Unpickling where the cache does not hold the loss compiles it again: a new object, same module."""
    loss = lossdsl.compile("0.5*huber(delta=1) + l1(w, 0.1)")
    lossdsl.compiled._compile.cache_clear()
    other = pickle.loads(pickle.dumps(loss))
    assert other is not loss and other.source == loss.source
    a, b, c = np.zeros(8), np.linspace(-2, 2, 8), np.ones(3)
    _assert_same(_results(other, {"y_true": a, "y_pred": b, "w": c}),
                 _results(loss, {"y_true": a, "y_pred": b, "w": c}))


def test_a_compiled_loss_cannot_be_changed():
    loss = lossdsl.compile("mse()")
    with pytest.raises(AttributeError):
        loss.graph = None
    with pytest.raises(AttributeError):
        del loss.root


def test_loss_module_deepcopies_and_pickles_after_use():
    torch = pytest.importorskip("torch")
    from lossdsl.torch import LossModule
    module = LossModule("focal(gamma=2, from_logits=true)")
    y = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    p = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
    module(y, p).backward()
    for other in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        assert torch.equal(other(y, p.detach()), module(y, p.detach()))


# --- many threads ------------------------------------------------------------------------------

_SOURCES = [
    ("0.5*huber(delta=1) + l1(w, 0.1)", "numpy"),
    ("mse(y1, p1) + mae(y2, p2) + l2(w, 0.01)", "numpy"),
    ("focal(gamma=2, from_logits=true) + 0.1*mean(tanh(y_pred)*y_true)", "numpy"),
    ("sparse_cce(labels, logits, from_logits=true) + l2(logits, 0.1)", "numpy"),
    ("mse(y1, p1) + mae(y2, p2) + l2(w, 0.01)", "jax"),
]
_PROGRAMS = [
    "def f(a, b=2.0):\n    r = a - b\n    return mean(r^2)\n\nf(x)\n",
    "lam = 0.01\n(mse(y, p)\n + l2(w, lam))\n",
    "def g(x):\n    return (sum(\n        x^2))\n\ng(y_pred) + mae()\n",
]


def _inputs(source):
    rng = np.random.default_rng(len(source))
    shapes = {"w": (3,), "labels": (6,), "logits": (6, 4)}
    out = {}
    for name in lossdsl.compile(source).inputs:
        if name == "labels":
            out[name] = rng.integers(0, 4, size=6)
        elif name == "y_true":
            out[name] = rng.uniform(0.05, 0.95, size=(6,))
        else:
            out[name] = rng.normal(size=shapes.get(name, (6,)))
    return out


def _work(rng):
    """One random step: (kind, key, result), the same for the same draw in any thread."""
    kind = rng.choice(["grad", "grad", "grad", "hessian", "parse"])
    if kind == "parse":
        text = rng.choice(_PROGRAMS)
        return kind, text, lossdsl.parse(text)
    source, backend = rng.choice(_SOURCES)
    loss = lossdsl.compile(source, backend=backend)
    inputs = _inputs(source)
    if kind == "hessian":
        name = rng.choice(loss.differentiable)
        return kind, (source, backend, name), np.asarray(loss.second_derivative(name)(**inputs))
    subset = tuple(sorted(rng.sample(loss.differentiable, rng.randint(1, len(loss.differentiable)))))
    value, grads = loss.value_and_grad(list(subset))(**inputs)
    return kind, (source, backend, subset), (np.asarray(value), _numpy(grads))


def _fresh(seed):
    """A compile that no other thread shares (a new graph through every phase), and its results."""
    source, backend = _SOURCES[seed % len(_SOURCES)]
    return _results(CompiledLoss(build(source, "<string>", backend)), _inputs(source))


def _same(a, b):
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def test_eight_threads_share_losses_and_the_parser():
    """8 threads x 300 steps: each first compiles a loss of its own while the others do, then calls the
    shared (cached) losses for random gradient subsets and Hessians and parses programs."""
    seeds, steps = range(8), 300
    expected, fresh = {}, {}
    for seed in seeds:  # single-threaded first: what each draw must give
        fresh[seed] = _fresh(seed)
        rng = random.Random(seed)
        for _ in range(steps):
            kind, key, result = _work(rng)
            expected.setdefault((kind, str(key)), result)
    lossdsl.compiled._compile.cache_clear()  # the threads compile the shared losses again, racing

    errors, mismatches = [], []
    barrier = threading.Barrier(len(seeds))

    def run(seed):
        rng = random.Random(seed)
        barrier.wait()
        try:
            if not _same(_fresh(seed), fresh[seed]):
                mismatches.append(("fresh", seed))
            for _ in range(steps):
                kind, key, result = _work(rng)
                if not _same(result, expected[(kind, str(key))]):
                    mismatches.append((kind, key))
        except Exception as e:  # noqa: BLE001 - every failure is reported below
            errors.append(repr(e))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=run, args=(s,)) for s in seeds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:3]
    assert not mismatches, mismatches[:5]


@pytest.mark.parametrize("case", FIRST_OF_EACH_LOSS, ids=lambda c: c.id)
def test_derivations_leave_the_graph_they_are_given_unchanged(case):
    """The gradient and Hessian passes extend copies: the compiled loss's own graph keeps its ops,
    even when asked about a name that is not one of its inputs, and when a derivation fails part way
    (CTC has no second derivative)."""
    from lossdsl.gradient import gradients
    from lossdsl.hessian import hessian_rowsum, hessian_vector
    loss = lossdsl.compile(case.call.format(opts=""))
    g = loss.graph
    before = (dict(g.op_of), list(g.inputs), set(g.index_inputs))
    gradients(g, loss.root, [*loss.differentiable, "not_an_input"])
    for derive in (hessian_vector, hessian_rowsum):
        with contextlib.suppress(LossDSLError):
            derive(g, loss.root, loss.differentiable[0])
    assert (dict(g.op_of), list(g.inputs), set(g.index_inputs)) == before


_CLEAR = """
import lossdsl
from lossdsl import compiled, pipeline, printer, rewrite
for source in ("huber(delta=1.5)", "bce(from_logits=true)", "smooth_l1(beta=0.5)"):
    for backend in ("numpy", "torch"):
        lossdsl.compile(source, backend=backend).source
compiled.clear_caches()
# the rule table and the library's definitions: read once from the package, not from any source
static = {rewrite.rules, pipeline.library}
memos = {f"{m.__name__}.{name}": fn for m in (compiled, pipeline, printer, rewrite)
         for name, fn in vars(m).items() if hasattr(fn, "cache_info") and fn not in static}
assert len(memos) >= 8, sorted(memos)
left = {name: fn.cache_info().currsize for name, fn in memos.items() if fn.cache_info().currsize}
assert left == {}, left
"""


def test_clear_caches_forgets_every_compile_memo():
    """compiled.clear_caches (for timing a compile from scratch) empties every memo of the compile path,
    each module's lru_cache found by looking, so that a memo added later is covered or named here. In a
    fresh process: clearing this one's caches would break the identity of compiles other tests hold."""
    import subprocess
    done = subprocess.run([sys.executable, "-c", _CLEAR], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
