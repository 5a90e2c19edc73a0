"""Rank in the IR: every op's rank from its registry rule, one query (``Graph.rank``) for everyone.

Each row compiles a loss, finds the op of the listed primitive, and compares what the IR says of its
rank with the rank NumPy gives the value at run time for inputs of a few ranks: a ``deficit`` d means
r - d axes for inputs of rank r, a ``fixed`` rank means that many axes whatever r is.
"""

import numpy as np
import pytest
import sympy as sp

import lossdsl
from lossdsl.backend import NUMPY
from lossdsl.backends.copying import helpers_for
from lossdsl.codegen import load_module
from lossdsl.ir import Apply
from lossdsl.printer import FunctionPrinter, Signature

# (source, primitive whose (first) op is checked, deficit, fixed, small)
ROWS = [
    ("mean(x)", "mean", None, 0, True),
    ("sum(x, axis=-1)", "sum", 1, None, True),
    ("mean(sum(x, axis=-1))", "sum", 1, None, True),
    ("mean(max(x, axis=-1, keepdims=true) - x)", "max", 0, None, True),
    ("mean(logsumexp(x, axis=-1))", "logsumexp", 1, None, True),
    ("mean(norm(x, axis=-1))", "norm", 1, None, True),
    ("mean(x - expand_dims(sum(x, axis=-1), -1))", "expand_dims", 0, None, True),
    ("sparse_cce(labels, x, from_logits=true)", "take", 1, None, False),
    ("mean(x - x + 1)", "broadcast", 0, None, False),
]


def _op(loss, prim):
    return next((s, op) for s, op in loss.graph if isinstance(op, Apply) and op.prim == prim)


def _evaluated_rank(loss, sym, rank):
    """The rank NumPy gives ``sym`` for float inputs of rank ``rank``."""
    g = loss.graph
    fp = FunctionPrinter(g, NUMPY, Signature.of(g))
    lines, (code,) = fp.body([sym])
    src = fp.function("f", lines, code)
    module = load_module("import numpy as np\n\n" + helpers_for(src, NUMPY)
                         + "\n\n" + src, "rank-test")
    shape = (3, 4, 5)[:rank]
    inputs = {n: (np.arange(int(np.prod(shape[:-1]) or 1)) % shape[-1]).reshape(shape[:-1])
              if n in g.index_inputs else np.random.default_rng(0).normal(size=shape) for n in g.inputs}
    return np.ndim(module.f(**inputs))


@pytest.mark.parametrize("source, prim, deficit, fixed, small", ROWS, ids=[r[0] for r in ROWS])
def test_rank_of_each_op_matches_numpy(source, prim, deficit, fixed, small):
    loss = lossdsl.compile(source)
    sym, _ = _op(loss, prim)
    r = loss.graph.rank(sym)
    assert (r.deficit, r.fixed, r.small) == (deficit, fixed, small)
    for rank in (2, 3):
        want = fixed if fixed is not None else rank - deficit
        assert _evaluated_rank(loss, sym, rank) == want


def test_elementwise_expressions_take_their_leaves_rank():
    g = lossdsl.compile("mean(x*sum(y, axis=-1)) + mean(z)").graph
    x, y, z = (g.input(n) for n in ("x", "y", "z"))
    row_sum = next(s for s, op in g if isinstance(op, Apply) and op.prim == "sum")
    total = next(s for s, op in g if isinstance(op, Apply) and op.prim == "mean" and op.operands[0] == z)
    assert g.rank(x * y).deficit == 0
    assert g.rank(x + total).deficit == 0  # a 0-d leaf broadcasts
    assert g.rank(x * row_sum).deficit is None  # leaves of different ranks: unknown
    assert g.rank(row_sum * 2).small and g.rank(sp.Integer(3)).scalar
    assert g.rank(sp.Symbol("_ct")).deficit is None and not g.rank(sp.Symbol("_ct")).scalar


def test_labels_have_a_rank_of_their_own():
    g = lossdsl.compile("sparse_cce(labels, x, from_logits=true)").graph
    assert g.rank(g.input("labels")).deficit is None
    assert g.rank(g.input("x")).deficit == 0
