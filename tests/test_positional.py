"""A compiled loss takes its inputs positionally, in the order of ``loss.inputs``, through every entry
point and on every backend, as it takes them by keyword; mixing follows Python's rules."""

import numpy as np
import pytest
import torch

import lossdsl
from lossdsl.errors import InputError

BACKENDS = ["numpy", "jax", "torch"]
ENTRY_POINTS = {
    "value": lambda loss: loss,
    "value_and_grad": lambda loss: lambda *a, **k: loss.value_and_grad("y_pred")(*a, **k),
    "grad": lambda loss: loss.grad(),
    "second_derivative": lambda loss: loss.second_derivative("y_pred"),
    "grad_and_second_derivative": lambda loss: loss.grad_and_second_derivative("y_pred"),
    "hvp": lambda loss: lambda *a, **k: loss.hvp("y_pred")(np.full(4, 0.5), *a, **k),
    "hessian": lambda loss: loss.hessian("y_pred"),
}


def _flat(result):
    if isinstance(result, dict):
        return [np.asarray(result[k]) for k in sorted(result)]
    if isinstance(result, tuple):
        return [a for r in result for a in _flat(r)]
    return [np.asarray(result)]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_positional_keyword_and_mixed_calls_agree(backend, entry):
    loss = lossdsl.compile("focal(y_true, y_pred, gamma=g, from_logits=true)", backend=backend)
    assert loss.inputs == ("y_true", "y_pred", "g")
    rng = np.random.default_rng(0)
    values = [rng.uniform(0, 1, 4), rng.normal(size=4), np.array(2.0)]
    if backend == "torch":
        values = [torch.from_numpy(v) for v in values]
    fn = ENTRY_POINTS[entry](loss)
    by_name = _flat(fn(**dict(zip(loss.inputs, values))))
    for args, kwargs in [(values, {}), (values[:1], {"y_pred": values[1], "g": values[2]}),
                         (values[:2], {"g": values[2]})]:
        for got, want in zip(_flat(fn(*args, **kwargs)), by_name, strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_positional_mistakes_are_input_errors(backend):
    loss = lossdsl.compile("mse(y_true, y_pred)", backend=backend)
    y = np.zeros(3) if backend != "torch" else torch.zeros(3)
    with pytest.raises(InputError, match="takes 2 inputs .*got 3 positional"):
        loss(y, y, y)
    with pytest.raises(InputError, match="'y_true' given both positionally and by keyword"):
        loss(y, y_true=y)
    with pytest.raises(InputError, match="missing 'y_pred'"):
        loss(y)
