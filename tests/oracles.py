"""Oracles the test tables share: central finite differences in float64, jax.grad of a reference."""

import importlib.util

import numpy as np

HAS_TORCH = importlib.util.find_spec("torch") is not None
#: the ways a table row runs: each backend, and JAX under the caller's jax.jit too
RUNS = ["numpy", "jax", "jax-jit"] + (["torch"] if HAS_TORCH else [])
BACKENDS = ["numpy", "jax"] + (["torch"] if HAS_TORCH else [])


def float_names(inputs):
    """The inputs holding floats: the ones a gradient is taken with respect to."""
    return [n for n, v in inputs.items() if np.issubdtype(np.asarray(v).dtype, np.floating)]


def finite_differences(loss, inputs, name, h=1e-6):
    """d loss / d inputs[name], one element at a time, by central differences of step ``h``."""
    x = np.asarray(inputs[name], dtype=np.float64)
    fd = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        up = float(loss(**{**inputs, name: x + e}))
        down = float(loss(**{**inputs, name: x - e}))
        fd[i] = (up - down) / (2 * h)
    return fd


#: a reference tracing to more operations than this runs eagerly (see ``traced``)
JIT_LIMIT = 300


def equations(f, *args) -> int:
    """The number of operations ``f(*args)`` traces to, those of nested jaxprs included."""
    import jax

    def count(jaxpr) -> int:
        total = 0
        for eqn in jaxpr.eqns:
            total += 1
            for p in eqn.params.values():
                for sub in p if isinstance(p, tuple | list) else (p,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        total += count(inner)
        return total
    return count(jax.make_jaxpr(f)(*args).jaxpr)


def traced(f, *args):
    """``f``, under jax.jit where it traces to at most JIT_LIMIT operations, else as it is (eager).

    Every XLA compile costs about the same on a CPU, a whole function's or one primitive's at a new
    shape. Under jit a reference costs one; eagerly, one per primitive and shape, cached for the
    process and so shared by the rows and tests that meet the same shapes. A reference with Python
    loops (SSIM's windows, CTC, Cox) unrolls into a program whose one compile takes seconds, while
    eager mode compiles each of its few primitives once. A reference that branches in Python on a
    value it differentiates cannot be traced at all, and runs eagerly."""
    import jax

    try:
        return jax.jit(f) if equations(f, *args) <= JIT_LIMIT else f
    except (jax.errors.JAXTypeError, jax.errors.JAXIndexError):  # concretization, tracer conversion
        return f


def jax_grads(reference, inputs, names):
    """jax.grad of ``reference(**inputs)`` (written in jax.numpy) with respect to each input in ``names``
    (jitted or eager as ``traced`` decides)."""
    import jax
    import jax.numpy as jnp

    args = {k: jnp.asarray(v) for k, v in inputs.items()}

    def f(*values):
        return reference(**{**args, **dict(zip(names, values))})

    values = [args[n] for n in names]
    grad = jax.grad(f, argnums=tuple(range(len(names))))
    return dict(zip(names, (np.asarray(g) for g in traced(grad, *values)(*values))))


_ROW_GRADS: dict = {}


def row_grads(case, inputs):
    """jax.grad of a stdlib row's reference (its mean where reducible) with respect to each input in
    ``case.wrt``, at ``inputs``. One function per row, input shapes and labels, for the process:
    its float inputs are the function's arguments, so the tables that check the row at other values
    of the same shapes (test_stdlib's sample, test_stability's extremes in float64) share its compile."""
    import jax
    import jax.numpy as jnp

    floats = float_names(inputs)
    labels = {k: v for k, v in inputs.items() if k not in floats}
    key = (case.id, tuple((k, np.shape(v), np.asarray(v).dtype.str) for k, v in inputs.items()),
           tuple((k, np.asarray(v).tobytes()) for k, v in labels.items()))
    values = [jnp.asarray(inputs[k]) for k in floats]
    fn = _ROW_GRADS.get(key)
    if fn is None:
        def mean(*v):
            losses = case.reference(jnp, **labels, **dict(zip(floats, v)))
            return jnp.mean(losses) if case.reducible else losses
        grad = jax.grad(mean, argnums=tuple(floats.index(n) for n in case.wrt))
        fn = _ROW_GRADS[key] = traced(grad, *values)
    return dict(zip(case.wrt, (np.asarray(g) for g in fn(*values))))


def assert_gradients(loss, inputs, want, rtol, atol=1e-10):
    """``loss``'s gradient with respect to each float input: the input's shape, float64, and ``want[name]``."""
    names = float_names(inputs)
    assert set(loss.differentiable) == set(names)
    grads = loss.grad(names)(**inputs)
    for name in names:
        got = np.asarray(grads[name])
        assert got.shape == np.shape(inputs[name]) and got.dtype == np.float64, name
        np.testing.assert_allclose(got, want[name], rtol=rtol, atol=atol, err_msg=name)


def assert_finite_differences(loss, inputs, rtol=1e-5, atol=1e-6):
    """``loss``'s gradient with respect to each float input against central finite differences."""
    names = float_names(inputs)
    grads = loss.grad(names)(**inputs)
    for name in names:
        np.testing.assert_allclose(np.asarray(grads[name]), finite_differences(loss, inputs, name),
                                   rtol=rtol, atol=atol, err_msg=name)


def assert_within_limits(spent) -> None:
    """A compile's work as ``lossdsl.limits.tally()`` counted it stayed within the limits themselves:
    no more intermediate results than MAX_EVALUATIONS allows evaluations, no more distinct expression
    nodes than MAX_EXPR_NODES allows one expression. A bound on work that a busy machine cannot make
    fail, where a bound on seconds can."""
    from lossdsl import limits

    assert spent.expressions <= limits.MAX_EVALUATIONS, spent
    assert spent.nodes <= limits.MAX_EXPR_NODES, spent


def run_value_and_grads(source, inputs, run, dtype):
    """The loss's value and gradients with respect to every float input, as NumPy arrays, on one run
    ("numpy", "jax", "jax-jit": under a caller's jax.jit, or "torch") with float inputs of ``dtype``
    (integer labels passed as they are)."""
    import lossdsl

    loss = lossdsl.compile(source, backend="jax" if run == "jax-jit" else run)
    f = loss.value_and_grad(list(loss.differentiable))
    floats = set(float_names(inputs))
    typed = {k: v.astype(dtype) if k in floats else v for k, v in inputs.items()}
    if run == "torch":
        import torch
        args = {k: torch.as_tensor(v) for k, v in typed.items()}
    elif run.startswith("jax"):
        import jax.numpy as jnp
        args = {k: jnp.asarray(v) for k, v in typed.items()}
    else:
        args = typed
    if run == "jax-jit":
        import jax
        value, grads = jax.jit(lambda kw: f(**kw))(args)
    else:
        value, grads = f(**args)
    return np.asarray(value), {k: np.asarray(g) for k, g in grads.items()}


def assert_value_and_grads_match_jax(source, inputs, run, dtype, reference, tol=None):
    """The loss's value and gradients on one run (as ``run_value_and_grads``) against jax.value_and_grad
    of ``reference(**inputs)``, written in jax.numpy, with respect to each float input: each of
    ``dtype`` and the input's shape, within ``tol`` (by default float64's or float32's tolerance)."""
    want_value, want = jax_value_and_grads(reference, inputs)
    value, grads = run_value_and_grads(source, inputs, run, dtype)
    tol = (1e-10 if dtype == np.float64 else 2e-5) if tol is None else tol
    assert value.dtype == dtype
    np.testing.assert_allclose(float(value), want_value, rtol=tol, atol=tol)
    assert sorted(grads) == sorted(want)
    for name, w in want.items():
        assert grads[name].dtype == dtype and grads[name].shape == w.shape, name
        np.testing.assert_allclose(grads[name], w, rtol=tol, atol=tol, err_msg=name)


_VALUES_AND_GRADS: dict = {}


def jax_value_and_grads(reference, inputs):
    """jax.value_and_grad of ``reference(**inputs)`` (jax.numpy) with respect to each float input;
    remembered by reference and inputs for the process, since a table row meets it once per run and
    dtype (its tests share an xdist group: sampling.sampled). The results are read only."""
    import jax
    import jax.numpy as jnp

    key = (reference, tuple((k, np.asarray(v).dtype.str, np.shape(v), np.asarray(v).tobytes())
                            for k, v in sorted(inputs.items())))
    if key not in _VALUES_AND_GRADS:
        names = float_names(inputs)
        fixed = {k: jnp.asarray(v) for k, v in inputs.items() if k not in names}
        value, grads = jax.value_and_grad(lambda *v: reference(**fixed, **dict(zip(names, v))),
                                          argnums=tuple(range(len(names))))(*(jnp.asarray(inputs[n]) for n in names))
        _VALUES_AND_GRADS[key] = float(value), {n: np.asarray(g) for n, g in zip(names, grads)}
    return _VALUES_AND_GRADS[key]


def assert_hessian_matches_jax(source, inputs, wrt, reference, backend):
    """The loss's Hessian with respect to ``wrt`` on ``backend`` against jax.hessian of ``reference``."""
    import jax
    import jax.numpy as jnp

    import lossdsl

    args = {k: jnp.asarray(v) for k, v in inputs.items()}
    want = np.asarray(jax.hessian(lambda v: reference(**{**args, wrt: v}))(args[wrt]))
    got = lossdsl.compile(source, backend=backend).hessian(wrt)(**inputs)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)
