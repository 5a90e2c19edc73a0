"""Every library loss's parameters that have invalid values declare their valid ones, and are checked.

The parameters come from the library itself (every definition's options with a number as default),
their valid values from each definition's declaration (``delta = within(delta, above=0)``, read by
``lossdsl.library.declared``). For each: a constant outside them is a compile-time error that names
the parameter and points at the argument; a constant on a bound (or just inside an open one)
compiles; the same value given as an input is an ``InputError`` naming it (on a backend drawn per
option, every backend over the table); and a valid value given as an input still gives the row's
reference value (tests/stdlib_rows, each written from the published formula), on NumPy with its
gradients and on one other backend drawn per option. A numeric parameter without a declaration is an integer
option that a builtin already checks, or one whose every value is valid (``UNRESTRICTED``).
"""

import functools
import importlib
import pkgutil
import re

import jax
import numpy as np
import pytest
import stdlib_rows
from oracles import row_grads
from sampling import one_of

import lossdsl
import lossdsl.library as lib
from lossdsl import syntax as A
from lossdsl.builtins import BUILTINS
from lossdsl.checks import checked_ops
from lossdsl.errors import InputError, LossDSLError, ParameterError
from lossdsl.ir import Input
from lossdsl.parser import parse

jax.config.update("jax_enable_x64", True)

CASES = [case for info in pkgutil.iter_modules(stdlib_rows.__path__)
         for case in importlib.import_module(f"stdlib_rows.{info.name}").CASES]

# every value of these is a loss of the family (Barron's alpha: L2, Cauchy, Geman-McClure, ...; the
# margins of PyTorch's margin and embedding losses, any real number there too)
UNRESTRICTED = {("barron", "alpha"), ("multi_margin", "margin"), ("margin_ranking", "margin"),
                ("cosine_embedding", "margin"), ("hinge_embedding", "margin")}


def _number(e):
    if isinstance(e, A.UnaryOp) and e.op == "-" and isinstance(e.operand, A.Number):
        return -e.operand.value
    return e.value if isinstance(e, A.Number) else None


NUMERIC = [(d.name, p.name, _number(p.default)) for d in lib.library().values() if d.family != "core"
           for p in d.params if p.default is not None and _number(p.default) is not None]
DECLARED = [(loss, name, default, lib.declared(lib.library()[loss])[name]) for loss, name, default in NUMERIC
            if name in lib.declared(lib.library()[loss])]
BACKENDS = ["numpy", "jax", "torch"]
# the input checks are one generated mechanism per backend: each option's on one backend, drawn per
# option (every backend over the table); a valid input's value on NumPy (with its gradients) and on
# one other backend, drawn the same way
ERRORS = [pytest.param(*row, b, id=f"{row[0]}-{row[1]}-{b}")
          for row in DECLARED for b in one_of(f"{row[0]}-{row[1]}/errors", BACKENDS)]
VALID = [pytest.param(*row, b, id=f"{row[0]}-{row[1]}-{b}")
         for row in DECLARED for b in ["numpy", *one_of(f"{row[0]}-{row[1]}/valid", BACKENDS[1:])]]


@pytest.mark.parametrize("params", [ERRORS, VALID], ids=["errors", "valid"])
def test_every_backend_is_drawn(params):
    assert {p.values[-1] for p in params} == set(BACKENDS)


def _with(call, name, text):
    """A row's call with option ``name`` set to ``text``."""
    call = call.format(opts="")
    if re.search(rf"\b{name}=", call):
        return re.sub(rf"\b{name}=[^,)]+", f"{name}={text}", call)
    return call[:-1] + f", {name}={text})"


def _input(name):
    """The input that stands for option ``name``: the name itself, unless a function has it (timm's clip)."""
    return f"{name}_value" if name in BUILTINS or name in lib.library() else name


@functools.cache
def _row(loss, name):
    """The first row of ``loss`` that gives ``name`` by keyword or not at all, and in which the option,
    given as an input, is read (an option that other options leave unused is not), with its value."""
    d = lib.library()[loss]
    position = [p.name for p in d.params].index(name)
    for case in CASES:
        call = case.call.format(opts="")
        if not call.startswith(loss + "(") or len(parse(call).result.args) > position:
            continue
        given = re.search(rf"\b{name}=([^,)]+)", call)
        if given and not re.fullmatch(r"-?[0-9.e+-]+", given.group(1)):
            continue  # an input already
        compiled = lossdsl.compile(_with(case.call, name, _input(name)))
        read = {compiled.graph.op_of[s].name for op in checked_ops(compiled.graph, compiled.root)
                for s in op.operands[0].free_symbols if isinstance(compiled.graph.op_of.get(s), Input)}
        if _input(name) in read:
            return case, float(given.group(1)) if given else _number(d.params[position].default)
    raise AssertionError(f"no row of {loss} reads {name} as an input")


def _invalid(decl):
    """Values outside the declared ones: beyond each bound (the bound itself where it is excluded),
    and a fraction where integers are required."""
    out = []
    if decl.lower is not None:
        out.append(decl.lower if decl.strict[0] else decl.lower - 1)
    if decl.upper is not None:
        out.append(decl.upper if decl.strict[1] else decl.upper + 1)
    if decl.integer:
        out.append(0.5)
    return out


def _boundary(decl):
    """Valid values at each bound: the bound, or just inside it where it is excluded."""
    out = []
    for bound, strict, inward in ((decl.lower, decl.strict[0], 1), (decl.upper, decl.strict[1], -1)):
        if bound is not None:
            out.append(bound + inward * 1e-6 if strict else bound)
    return out


def _ids(rows):
    return [f"{loss}-{name}" for loss, name, *_ in rows]


def test_every_numeric_parameter_is_declared_or_checked_by_a_builtin():
    assert {"huber", "smooth_l1", "focal", "quantile", "cce", "l1"} <= {loss for loss, *_ in DECLARED}
    for loss, name, _ in NUMERIC:
        if name in lib.declared(lib.library()[loss]) or (loss, name) in UNRESTRICTED:
            continue
        # an integer option (an axis, CTC's blank): a builtin takes it as a constant integer
        case, _ = next((c, None) for c in CASES if c.call.startswith(loss + "("))
        with pytest.raises(LossDSLError, match=rf"'{name}'"):
            lossdsl.compile(_with(case.call, name, "0.5"))


def test_the_declarations_are_in_the_generated_docs():
    text = lib.markdown()
    for loss, name, _, decl in DECLARED:
        entry = text[text.index(f"### `{loss}("):]
        entry = entry[:entry.index("\n### ") if "\n### " in entry else None]
        assert f"`{decl.text(name)}`" in entry, (loss, name)


@pytest.mark.parametrize("loss, name, default, decl", DECLARED, ids=_ids(DECLARED))
def test_a_constant_outside_the_declared_values_is_a_compile_time_error_at_the_argument(loss, name, default, decl):
    case, _ = _row(loss, name)
    for bad in _invalid(decl):
        text = _with(case.call, name, repr(bad))
        with pytest.raises(ParameterError) as info:
            lossdsl.compile(text)
        e = info.value
        assert f"'{name}'" in e.message and e.message.startswith(f"{loss}(): "), e.message
        assert (e.line, e.column) == (1, text.index(f"{name}=") + 1), str(e)
        assert str(e).endswith("^")


@pytest.mark.parametrize("loss, name, default, decl", DECLARED, ids=_ids(DECLARED))
def test_a_valid_value_at_a_bound_compiles_and_passes_as_an_input(loss, name, default, decl):
    case, _ = _row(loss, name)
    inputs = case.sample()
    for good in _boundary(decl) or [default]:
        lossdsl.compile(_with(case.call, name, repr(good)))
        lossdsl.compile(_with(case.call, name, _input(name)))(**inputs, **{_input(name): np.array(good)})  # no InputError


def _to(backend, inputs):
    if backend != "torch":
        return inputs
    import torch
    return {k: torch.as_tensor(v) for k, v in inputs.items()}


@pytest.mark.parametrize("loss, name, default, decl, backend", ERRORS)
def test_an_input_outside_the_declared_values_is_an_input_error_naming_it(loss, name, default, decl, backend):
    case, _ = _row(loss, name)
    compiled = lossdsl.compile(_with(case.call, name, _input(name)), backend=backend)
    for bad in _invalid(decl):
        inputs = {**case.sample(), _input(name): np.array(bad)}
        with pytest.raises(InputError, match=rf"input '{_input(name)}'"):
            compiled(**_to(backend, inputs))


@functools.cache
def _reference(loss, name):
    """The row's inputs, its value of the option, and its reference value and gradients (jax.grad)."""
    case, value = _row(loss, name)
    inputs = case.sample()

    def reference(**i):
        xp = jax.numpy if isinstance(next(iter(i.values())), jax.Array) else np
        losses = case.reference(xp, **i)
        return xp.mean(losses) if case.reducible else losses

    return case, inputs, value, reference(**inputs), row_grads(case, inputs)


@pytest.mark.parametrize("loss, name, default, decl, backend", VALID)
def test_a_valid_input_matches_the_reference(loss, name, default, decl, backend):
    case, inputs, value, want, want_grads = _reference(loss, name)
    given = np.array(int(value) if decl.integer else value)
    compiled = lossdsl.compile(_with(case.call, name, _input(name)), backend=backend)
    got = compiled(**_to(backend, {**inputs, _input(name): given}))
    np.testing.assert_allclose(np.asarray(got), want, rtol=case.rtol, atol=case.atol)
    if backend != "numpy":
        return  # the gradients' agreement across backends is test_stdlib's
    wrt = [w for w in case.wrt if w in compiled.differentiable]
    grads = compiled.grad(wrt)(**inputs, **{_input(name): given})
    for w in wrt:
        np.testing.assert_allclose(np.asarray(grads[w]), want_grads[w], rtol=1e-6, atol=1e-9, err_msg=w)
