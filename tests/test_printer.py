"""The expression printer: products print with their small factors (numbers, counts, reductions)
gathered and the sign among them, so that NumPy makes one pass over an array where it could make
two; each printed form is also evaluated against SymPy's own value of the expression."""

import numpy as np
import pytest
import sympy as sp
from sympy.core.parameters import distribute

from lossdsl.backend import NUMPY
from lossdsl.printer import ExprPrinter

x, y, z, n = sp.symbols("x y z n", real=True)  # n stands for a small leaf (a count, a row sum)
PRINT = ExprPrinter(NUMPY, lambda s: s == n)

with distribute(False):  # as the gradient pass builds them: -(x + y) stays a product
    CASES = [
        (-(x + y), "-(x + y)"),
        (-(x - y), "y - x"),  # a difference flips rather than negating a whole array
        (-2 * (x + y), "-2*(x + y)"),
        (-z * (x + y), "-(z*(x + y))"),
        (-(x + y) / n, "(x + y)*(-1/n)"),  # the sign joins the small factors
        (-2 * x, "-2*x"),
        (-x * y, "-(x*y)"),
        (-x / n, "x*(-1/n)"),
        (-2 * x / n, "x*(-2/n)"),
        (-x * y / n**2, "x*y*(-1/n**2)"),
        (2 * x / n, "x*(2/n)"),
        (x / n, "x/n"),
        (-(x + y) * (x - z), "(x + y)*(z - x)"),
        (-n * (x + y), "-n*(x + y)"),
        (-(x + y) / (n * z), "(x + y)/z*(-1/n)"),
        (1 - x * y, "1 - x*y"),  # a positive term first: no negation of x*y
        (-x * y + 1, "1 - x*y"),
        (-x - 1, "-x - 1"),
    ]


@pytest.mark.parametrize("expr, code", CASES, ids=[c for _, c in CASES])
def test_products_print_with_their_sign_among_small_factors(expr, code):
    assert PRINT(expr) == code
    rng = np.random.default_rng(0)
    values = {"x": rng.normal(size=5), "y": rng.normal(size=5), "z": rng.normal(size=5), "n": 3.0}
    got = eval(code, {"np": np, **values})  # noqa: S307 - printed by lossdsl from the symbols above
    want = sp.lambdify((x, y, z, n), expr, "numpy")(values["x"], values["y"], values["z"], values["n"])
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
