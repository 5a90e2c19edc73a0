"""Inputs no loss can mean are an InputError naming the input, on every backend and entry point.

NumPy would read a string array as numbers, drop a complex array's imaginary part and take
``None`` as an object array whose mean is NaN; a torch tensor reaches NumPy or JAX only through
``.numpy()``. Each odd kind below, given as a float input and as integer labels, through the value,
the gradient and each second-derivative entry point, on NumPy, JAX (and, for what JAX can trace,
under the caller's ``jax.jit``) and torch. What may be converted still is: lists, integers,
booleans, masked arrays with nothing masked, and NumPy or JAX arrays where the backend reads them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import lossdsl
from lossdsl.errors import InputError

BACKENDS = ["numpy", "jax", "torch"]
ODD = {
    "complex array": np.array([1 + 2j, 3.0, 0.5]),
    "complex number": 1 + 2j,
    "complex list": [1j, 2.0, 0.5],
    "object array": np.array([1.0, None, 2.0], dtype=object),
    "string array": np.array(["1", "2", "3"]),
    "string": "1.5",
    "bytes array": np.array([b"1", b"2", b"3"]),
    "bytes": b"1.5",
    "None": None,
    "dates": np.array(["2020-01-01", "2020-01-02", "2020-01-03"], dtype="datetime64[D]"),
    "structured": np.zeros(3, dtype=[("a", float)]),
    "masked array": np.ma.masked_array([1.0, 2.0, 0.5], mask=[False, True, False]),
    "jax complex": jnp.array([1 + 2j, 3.0, 0.5]),
    "torch complex": torch.tensor([1 + 2j, 3.0, 0.5]),
}
FOREIGN = {  # another library's tensors, where the backend cannot take them
    "numpy": {"torch tensor": torch.tensor([1.0, 2.0, 0.5]),
              "torch tensor requiring grad": torch.tensor([1.0, 2.0, 0.5], requires_grad=True)},
    "jax": {"torch tensor": torch.tensor([1.0, 2.0, 0.5]),
            "torch tensor requiring grad": torch.tensor([1.0, 2.0, 0.5], requires_grad=True)},
    "torch": {},
}
ENTRY_POINTS = {
    "value": lambda loss, kw: loss(**kw),
    "grad": lambda loss, kw: loss.grad("y_pred")(**kw),
    "value_and_grad": lambda loss, kw: loss.value_and_grad(["y_true", "y_pred"])(**kw),
    "second_derivative": lambda loss, kw: loss.second_derivative("y_pred")(**kw),
    "hvp": lambda loss, kw: loss.hvp("y_pred")(np.ones(3), **kw),
    "hessian": lambda loss, kw: loss.hessian("y_pred")(**kw),
}


def _good(backend, values):
    return torch.tensor(values) if backend == "torch" else np.array(values)


def _cases():
    return [pytest.param(backend, kind, value, entry, id=f"{backend}-{kind}-{entry}")
            for backend in BACKENDS for kind, value in {**ODD, **FOREIGN[backend]}.items() for entry in ENTRY_POINTS]


@pytest.mark.parametrize("backend, kind, value, entry", _cases())
def test_odd_float_input_is_an_input_error_naming_it(backend, kind, value, entry):
    loss = lossdsl.compile("mse(y_true, y_pred)", backend=backend)
    for name in ("y_pred", "y_true"):  # the one differentiated, and one that is not
        kw = {"y_true": _good(backend, [0.5, 1.0, 2.0]), "y_pred": _good(backend, [0.0, 1.5, 1.0]), name: value}
        with pytest.raises(InputError, match=f"input '{name}' "):
            ENTRY_POINTS[entry](loss, kw)


@pytest.mark.parametrize("backend, kind, value", [
    pytest.param(b, k, v, id=f"{b}-{k}") for b in BACKENDS for k, v in {**ODD, **FOREIGN[b]}.items()])
def test_odd_labels_are_an_input_error_naming_them(backend, kind, value):
    loss = lossdsl.compile("sparse_cce(labels, logits, from_logits=true)", backend=backend)
    logits = _good(backend, [[0.5, 1.0], [2.0, 0.0], [1.0, 1.0]])
    with pytest.raises(InputError, match="input 'labels' "):
        loss(labels=value, logits=logits)


@pytest.mark.parametrize("kind", ["complex array", "jax complex"])
def test_complex_under_the_callers_jit_is_an_input_error(kind):
    """Under jax.jit the inputs are tracers: their dtype is known, and refused as eagerly."""
    loss = lossdsl.compile("mse(y_true, y_pred)", backend="jax")
    y_true = jnp.array([0.5, 1.0, 2.0])
    for entry in (lambda y: loss(y_true=y_true, y_pred=y), lambda y: loss.grad("y_pred")(y_true=y_true, y_pred=y),
                  jax.grad(lambda y: loss(y_true=y_true, y_pred=y), holomorphic=True)):
        with pytest.raises(InputError, match="input 'y_pred' holds complex numbers"):
            jax.jit(entry)(jnp.asarray(ODD[kind]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_what_converts_still_does(backend):
    """Lists, integer and boolean arrays, and the arrays of a library the backend reads: the
    value and gradient of mse against NumPy's."""
    loss = lossdsl.compile("mse(y_true, y_pred)", backend=backend)
    y_true, y_pred = np.array([1, 0, 1]), np.array([0.25, 1.5, 1.0])
    givens = [[1, 0, 1], np.array([True, False, True]), y_true, jnp.asarray(y_true),
              np.ma.masked_array(y_true, mask=False)]  # a mask that hides nothing
    if backend == "torch":
        givens.append(torch.tensor([1, 0, 1]))
    for given in givens:
        value, grad = loss.value_and_grad("y_pred")(y_true=given, y_pred=_good(backend, y_pred.tolist()))
        np.testing.assert_allclose(np.asarray(value), np.mean((y_pred - y_true) ** 2), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(grad), 2 * (y_pred - y_true) / 3, rtol=1e-6)


class _UnhashableDtype:
    """An object whose dtype cannot be hashed (a list): asked in full, never remembered."""
    dtype = [("a", float)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_accepted_kind_is_remembered_only_where_its_type_and_dtype_decide(backend):
    """Inputs found acceptable are remembered by (type, dtype), where those alone decide; a list's,
    or a masked array's, contents decide, so each call asks again: an accepted value of a kind does
    not let a refused one of the same kind through, nor the reverse."""
    loss = lossdsl.compile("mse(y_true, y_pred)", backend=backend)
    y_pred = _good(backend, [0.0, 1.5, 1.0])
    pairs = [([0.5, 1.0, 2.0], [1j, 2.0, 0.5]), ([0.5, 1.0, 2.0], [0.5, None, 2.0]),
             (np.ma.masked_array([0.5, 1.0, 2.0], mask=False), ODD["masked array"]),
             (np.array([0.5, 1.0, 2.0]), ODD["complex array"]), (0.5, 1 + 2j)]
    if backend == "jax":  # jax.jit takes no masked array, masked or not (its own error, after ours)
        pairs.pop(2)
    for good, bad in pairs * 2:  # the second time round, every kind has been seen
        loss(y_true=good, y_pred=y_pred)
        with pytest.raises(InputError, match="input 'y_true' "):
            loss(y_true=bad, y_pred=y_pred)
    with pytest.raises(InputError, match="input 'y_true' holds structured records"):
        loss(y_true=_UnhashableDtype(), y_pred=y_pred)
