"""NumPy-only helpers copied into generated NumPy modules."""

import numpy as np

from .runtime import _count, _sum_to


def _float_dtype(*xs):
    """The floating dtype of the float inputs; Python scalars are weak and do not promote."""
    dts = [x.dtype for x in xs if hasattr(x, "dtype") and np.issubdtype(x.dtype, np.floating)]
    return np.result_type(*dts) if dts else np.dtype(np.float64)


def _as_float(x, dt):
    x = np.asarray(x)
    x = (x if np.issubdtype(x.dtype, np.floating) else x.astype(dt)).view()
    x.flags.writeable = False  # read-only, and so is every view of it: _fit tells it from a result
    return x


def _mean(x, axis, keepdims):
    """``np.mean``, but a mean of nothing is NaN (as NumPy's) without its "Mean of empty slice" warning."""
    x = np.asarray(x)
    if x.size:
        return np.mean(x, axis=axis, keepdims=keepdims)
    return np.sum(x, axis=axis, keepdims=keepdims) / _count(x.shape, axis)


def _out(x, dt):
    return np.asarray(x, dtype=dt)


def _writable(x, shape, dtype):
    """Whether ``x`` is an array of our own that holds a result of ``shape`` and ``dtype``: inputs
    and views of them are read-only (see _as_float), and so are broadcasts."""
    return isinstance(x, np.ndarray) and x.flags.writeable and x.shape == tuple(shape) and x.dtype == dtype


def _fit(g, x):
    """A gradient shaped and typed like its input ``x``, an array of its own: a fresh result as it
    is; an input or a view of one, or a broadcast, copied."""
    g = _sum_to(g, x.shape)
    return g if _writable(g, x.shape, x.dtype) else np.array(np.broadcast_to(g, x.shape), dtype=x.dtype)


def _own(value, grads):
    """The gradients, each an array of its own: one that shares memory with the value or with an
    earlier gradient (one temporary returned twice, as for exp(x) unreduced) is copied."""
    seen = {_buffer(value)}  # arrays over different buffers cannot share memory: one pass, not one per pair
    for name, g in grads.items():
        if _buffer(g) in seen:
            grads[name] = g = g.copy()
        seen.add(_buffer(g))
    return grads


def _buffer(a):
    """The id of the array that owns ``a``'s memory (``a`` itself, or the base its views lead to)."""
    while getattr(a, "base", None) is not None:  # views, and broadcast_to's wrapper of its operand
        a = a.base
    return id(a)


def _into(ufunc, x, *rest):
    """``ufunc(x, *rest)`` written over ``x``, which the printer passes only when ``x`` is a
    temporary of the expression being evaluated. A fresh full-size array costs the page faults of
    memory the kernel must zero, often more than the arithmetic; NumPy reuses temporaries of
    operators (``a*b + c``) but not of function calls."""
    dtype = np.result_type(x, *rest)
    if dtype.kind == "f" and _writable(x, np.broadcast_shapes(*(np.shape(a) for a in (x, *rest))), dtype):
        return ufunc(x, *rest, out=x)
    return ufunc(x, *rest)


def _where(condition, x, y, scratch=""):
    """``np.where`` without a branch per element: it selects bit patterns (NaNs and infinities
    pass unchanged). ``np.where`` mispredicts on masks that alternate at random, as residuals do:
    14 ms against 4 for 4M float32 elements. ``scratch``: "x" or "y", a temporary to write over."""
    dt = np.result_type(x, y)
    if dt.kind != "f" or dt.itemsize > 8:
        return np.where(condition, x, y)
    bits = np.dtype(f"i{dt.itemsize}")
    mask = np.asarray(condition).astype(bits)
    np.negative(mask, out=mask)  # all ones where the condition holds
    x, y = np.asarray(x, dt), np.asarray(y, dt)
    shape = np.broadcast_shapes(mask.shape, x.shape, y.shape)
    if scratch == "y":  # x where the condition holds, else y: y ^ ((x ^ y) & mask) = x ^ ((x ^ y) & ~mask)
        np.invert(mask, out=mask)
        x, y = y, x
    keep = y.view(bits)
    if scratch and _writable(x, shape, dt):
        out = x.view(bits)
        out ^= keep
    else:
        out = np.bitwise_xor(x.view(bits), keep)
    if out.shape == shape:
        out &= mask
    else:
        out = np.bitwise_and(out, mask)
    out ^= keep
    return out.view(dt)


def _by_rows(fn, inputs, labels, min_rank, reduction, block):
    """``fn(**inputs)`` (a value, or a value and a dict of gradients), a block of about ``block``
    elements' rows at a time, for a loss that is the mean (or the sum) over rows of terms each
    computed from its own row (lossdsl/blocking.py): a block's temporaries stay in cache and reuse
    memory, where each whole-array temporary costs fresh pages. The inputs must share their rows
    (leading axis) and, the float ones, a rank of at least ``min_rank``; if not, or if they are
    small, the whole arrays are used."""
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    n, rows = _rows_per_block(arrays, labels, min_rank, block)
    if not rows:
        return fn(**inputs)
    total, grads = 0.0, {}
    try:
        for start in range(0, n, rows):
            part = fn(**{k: a[start:start + rows] for k, a in arrays.items()})
            value, block_grads = part if isinstance(part, tuple) else (part, {})
            stop = start + rows if start + rows < n else n
            share = (stop - start) / n if reduction == "mean" else 1
            total += float(value) * share
            for k, g in block_grads.items():
                if k not in grads:
                    grads[k] = np.empty((n,) + g.shape[1:], g.dtype)
                np.multiply(g, share, out=grads[k][start:stop])
    except (ValueError, TypeError, IndexError):
        return fn(**inputs)  # the error as the whole arrays raise it (their range, not a block's)
    value = np.asarray(total, dtype=value.dtype)
    return (value, grads) if isinstance(part, tuple) else value


def _rows_per_block(arrays, labels, min_rank, block):
    """(the row count, the rows in a block), or (0, 0) where the inputs do not split."""
    floats = [a for k, a in arrays.items() if k not in labels]
    if not floats or floats[0].ndim < min_rank:
        return 0, 0
    n, ndim, size = floats[0].shape[0], floats[0].ndim, 0
    for k, a in arrays.items():
        if a.ndim < 1 or a.shape[0] != n or (k not in labels and a.ndim != ndim):
            return 0, 0
        size = size if size > a.size else a.size
    if size < 2 * block or n < 2:
        return 0, 0
    return n, (block * n // size) or 1


def _inside(x, lo, hi):
    """The derivative of clip(x, lo, hi) (see runtime._inside) as one mask: the strict inside, then
    the bounds and NaNs, which are rare, set only where they occur. Where nothing is clipped, as is
    usual (a probability clipped to [1e-7, 1 - 1e-7]), a 0-d 1, found by the min and the max; they
    also tell which bound can be met and whether there is a NaN (both are NaN then), so that the
    passes that look for those run only where they can find something."""
    x = np.asarray(x)
    dt = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    if not x.size:
        return np.ones(x.shape, dt)
    least, most = x.min(), x.max()
    if lo < least and most < hi:  # False for NaN
        return np.ones((), dt)
    mask = np.greater(x, lo)
    mask &= np.less(x, hi)
    out = mask.astype(dt)
    nan = np.isnan(least)
    for bound, reached in ((lo, least <= lo), (hi, most >= hi)):
        if nan or reached:
            np.copyto(out, 0.5, where=np.equal(x, bound))
    if nan:
        np.copyto(out, np.nan, where=np.isnan(x))
    return out


def _from_zero_to(x, upper, strict):
    """One pass where ``within(x, 0, upper)`` would take two (a min and a max): a float's bits, read as
    an unsigned integer, order the non-negative floats as their values, and put every negative one
    (its sign bit set) and NaN above infinity; so ``max(bits) <= bits(upper)`` holds exactly when all
    values lie in [0, upper] (-0.0 reads as negative: the exact check then says it is in range)."""
    x = np.asarray(x)
    if x.dtype.kind != "f" or not x.flags.c_contiguous:
        return False
    bits = np.dtype(f"u{x.dtype.itemsize}")
    top = np.array(np.inf if upper is None else upper, dtype=x.dtype)
    if top < 0 or top != (np.inf if upper is None else upper):
        return False  # a bound the dtype does not hold exactly: the exact check
    most = np.max(x.view(bits))
    return bool(most < top.view(bits) if strict else most <= top.view(bits))


def _sigmoid(x):
    # 1 / (1 + e^-x): right in every range (e^-x overflows to inf only where the result is below
    # the smallest normal number, and 1/inf is 0), in four passes over one fresh array, in place
    e = _into(np.exp, -x)
    e += 1
    return _into(np.reciprocal, e)


def _softplus(x):
    # max(x, 0) + log1p(e^-|x|): no overflow; ten times faster than np.logaddexp(0, x); in place
    t = _into(np.log1p, _into(np.exp, -np.abs(x)))
    t += np.clip(x, 0, np.inf)
    return t



def _special_input(x):
    """``x`` as a float64 array, and the dtype of the result: the input's float dtype (float64 for integers)."""
    x = np.asarray(x)
    return np.asarray(x, np.float64), (x.dtype if x.dtype.kind == "f" else np.dtype(np.float64))


def _polyval(coefficients, t):
    """sum(coefficients[k] * t**k), by Horner's rule."""
    out = np.full_like(t, coefficients[-1])
    for c in coefficients[-2::-1]:
        out = out * t + c
    return out


def _erf_small(x):
    """erf(x) for |x| <= 0.46875: W. J. Cody's rational Chebyshev approximation x R(x^2) (Math. Comp. 23,
    1969; netlib specfun CALERF), good to about 1e-18 relative."""
    a = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03,
         1.85777706184603153e-1)
    b = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
    z = x * x
    num, den = a[4] * z, z
    for i in range(3):
        num, den = (num + a[i]) * z, (den + b[i]) * z
    return x * (num + a[3]) / (den + b[3])


def _erfc_large(y):
    """erfc(y) for y > 0.46875 (Cody, as _erf_small): exp(-y^2) R(y), R rational in y up to 4 and in
    1/y^2 beyond. exp(-y^2) is exp(-s^2) exp(-(y - s)(y + s)) for s = y cut to a multiple of 1/16 (s^2
    exact), so that the rounding of y^2, 700 ulp of exp's argument at y = 26, stays out of the tail."""
    c = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02,
         8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03,
         2.15311535474403846e-8)
    d = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
         3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03)
    p = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
         6.58749161529837803e-4, 1.63153871373020978e-2)
    q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
         2.33520497626869185e-3)
    r = np.empty_like(y)
    near = y <= 4.0
    t = y[near]
    num, den = c[8] * t, t
    for i in range(7):
        num, den = (num + c[i]) * t, (den + d[i]) * t
    r[near] = (num + c[7]) / (den + d[7])
    t = y[~near]  # and NaN
    z = 1.0 / (t * t)
    num, den = p[5] * z, z
    for i in range(4):
        num, den = (num + p[i]) * z, (den + q[i]) * z
    r[~near] = (0.56418958354775628695 - z * (num + p[4]) / (den + q[4])) / t
    y = np.minimum(y, 28.0)  # erfc(28) underflows to 0, and so does r
    s = np.trunc(y * 16.0) / 16.0
    return np.exp(-s * s) * (np.exp(-(y - s) * (y + s)) * r)


def _erf(x):
    x, dt = _special_input(x)
    y = np.abs(x)
    small = y <= 0.46875
    out = np.empty_like(x)
    out[small] = _erf_small(x[small])
    out[~small] = np.copysign((0.5 - _erfc_large(y[~small])) + 0.5, x[~small])
    return out.astype(dt, copy=False)


def _erfc(x):
    """erfc(x), accurate in the far tail (to x = 26.5, where it underflows), not computed as 1 - erf(x)."""
    x, dt = _special_input(x)
    y = np.abs(x)
    small = y <= 0.46875
    out = np.empty_like(x)
    out[small] = 1.0 - _erf_small(x[small])
    tail = _erfc_large(y[~small])
    out[~small] = np.where(x[~small] < 0, 2.0 - tail, tail)
    return out.astype(dt, copy=False)


def _gamma_series():
    """Taylor coefficients (mpmath, 50 digits; tests/test_special.py recomputes them): ``a`` about 2,
    lgamma(2 + e) = sum(a[k] e^k), a[1] = 1 - Euler's constant, a[k] = (-1)^k (zeta(k) - 1)/k; ``b``
    about x0, the positive zero of digamma, digamma(x0 + e) = sum(b[k] e^k), b[k] = polygamma(k, x0)/k!.
    Then digamma(2 + e) = sum(k a[k] e^(k-1)), lgamma(x0 + e) = lgamma(x0) + sum(b[k] e^(k+1)/(k+1)),
    and about 1, lgamma(1 + e) = sum((a[k] + (-1)^k/k) e^k)."""
    a = (0.0, 0.42278433509846713, 0.3224670334241132, -0.0673523010531981, 0.020580808427784546,
         -0.007385551028673986, 0.0028905103307415234, -0.001192753911703261, 0.0005096695247430425,
         -0.00022315475845357939, 9.945751278180853e-05, -4.492623673813314e-05, 2.050721277567069e-05,
         -9.439488275268397e-06, 4.374866789907488e-06, -2.039215753801366e-06, 9.55141213040742e-07,
         -4.492469198764566e-07, 2.1207184805554665e-07, -1.0043224823968099e-07, 4.7698101693639804e-08,
         -2.2711094608943164e-08, 1.0838659214896955e-08, -5.183475041970047e-09, 2.4836745438024785e-09,
         -1.1921401405860912e-09, 5.731367241678862e-10, -2.7595228851242334e-10, 1.330476437424449e-10,
         -6.4229645638381e-11, 3.1044247747322276e-11)
    b = (0.0, 0.9676722454476212, -0.4427631689835921, 0.258499760955651, -0.16394270544240652,
         0.10782405069126237, -0.07219956125645471, 0.04880428816414311, -0.03316112647484736,
         0.022597648232218104, -0.01542476590494896, 0.010538791616612175, -0.007204534386356869,
         0.004926781395729853, -0.003369801655439328, 0.002305126326734928, -0.0015769367714301972,
         0.0010788252019162967, -0.0007380709389960052, 0.000504953265834602, -0.0003454680251063077,
         0.00023635601564027053, -0.00016170622091974803, 0.0001106337276874741, -7.569179582195066e-05,
         5.178575795222081e-05, -3.5430070947659604e-05)
    return a, b


def _gamma_near_one(w, derivative):
    """lgamma(1 + w) (or, with ``derivative``, digamma(1 + w)) for -0.25 <= w < 1.5, ``w`` exact: by
    the Taylor series about 1 (w < 0.16), about x0 = 1.4616... (w < 0.76) or about 2. Each series
    keeps its full relative accuracy at its centre's zero (lgamma(1) = lgamma(2) = digamma(x0) = 0)."""
    a, b = _gamma_series()
    out = np.empty_like(w)
    one, root = w < 0.16, (w >= 0.16) & (w < 0.76)
    two = ~(one | root)
    e = w[one]
    near_one = [c + (-1.0) ** k / k if k else c for k, c in enumerate(a)]
    e2 = w[two] - 1.0
    # x0 as 0.46163214496836225 + 1 + 9.55e-17: w minus the first part is exact (Sterbenz)
    ex0 = (w[root] - 0.46163214496836225) - 9.549995429965697e-17
    if derivative:
        out[one] = _polyval([k * c for k, c in enumerate(near_one)][1:], e)
        out[root] = _polyval(b, ex0)
        out[two] = _polyval([k * c for k, c in enumerate(a)][1:], e2)
    else:
        out[one] = e * _polyval(near_one[1:], e)
        out[root] = -0.12148629053584961 + (3.364991468473138e-18 + ex0 * ex0 * _polyval(
            [c / (k + 2) for k, c in enumerate(b[1:])], ex0))
        out[two] = e2 * _polyval(a[1:], e2)
    return out


def _gamma_reduce(x, top):
    """Masks of x < 0.75, 0.75 <= x < 2.5, 2.5 <= x < top and the rest (and NaN); for the third, u in
    [1.5, 2.5) and the whole number n with x = u + n (exact: x and n have the same last place or coarser)."""
    low, mid, high = x < 0.75, (x >= 0.75) & (x < 2.5), (x >= 2.5) & (x < top)
    n = np.floor(x[high] - 1.5)
    return low, mid, high, ~(low | mid | high), x[high] - n, n


def _lgamma_positive(x):
    """log Gamma(x) for x > 0 (and +inf): the series about 1, x0 and 2 (_gamma_near_one) after the
    recurrence Gamma(x + 1) = x Gamma(x) moves x into [0.75, 2.5); Stirling's series from 13 on."""
    out = np.empty_like(x)
    low, mid, high, big, u, n = _gamma_reduce(x, 13.0)
    out[low] = _gamma_near_one(x[low], False) - np.log(x[low])
    out[mid] = _gamma_near_one(x[mid] - 1.0, False)
    product = np.ones_like(u)
    for k in range(11):
        product *= np.where(k < n, u + k, 1.0)
    out[high] = _gamma_near_one(u - 1.0, False) + np.log(product)
    t = x[big]
    z = 1.0 / (t * t)
    stirling = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156)  # B_2k/(2k(2k-1))
    series = _polyval(stirling, z) / t
    out[big] = np.where(t == np.inf, np.inf, ((t - 0.5) * np.log(t) - t) + (0.9189385332046728 + series))
    return out


def _by_sign(x, positive, negative):
    """(x in float64, ``positive`` of it where x >= 0 or NaN and ``negative`` where x < 0, the result dtype)."""
    x, dt = _special_input(x)
    out = np.empty_like(x)
    neg = x < 0
    out[~neg] = positive(x[~neg])
    out[neg] = negative(x[neg])
    return x, out, dt


def _lgamma(x):
    """log|Gamma(x)|, as scipy.special.gammaln: reflected for x < 0, log(pi / |sin(pi x)|) - lgamma(1 - x);
    +inf at the poles (0, -1, -2, ...) and at +inf, -inf at -inf, as scipy gives."""
    def negative(t):
        r = t - np.round(t)  # sin(pi x) = +-sin(pi r), r in [-1/2, 1/2] exact
        reflected = np.log(np.pi / np.abs(np.sin(np.pi * r))) - _lgamma_positive(1.0 - t)
        return np.where(t == -np.inf, -np.inf, np.where(r == 0, np.inf, reflected))
    x, out, dt = _by_sign(x, _lgamma_positive, negative)
    out[x == 0] = np.inf
    return out.astype(dt, copy=False)


def _digamma_positive(x):
    """digamma(x) for x > 0 (and +inf): the series of _gamma_near_one after the recurrence
    digamma(x + 1) = digamma(x) + 1/x moves x into [0.75, 2.5); the asymptotic series from 10 on."""
    out = np.empty_like(x)
    low, mid, high, big, u, n = _gamma_reduce(x, 10.0)
    out[low] = _gamma_near_one(x[low], True) - 1.0 / x[low]
    out[mid] = _gamma_near_one(x[mid] - 1.0, True)
    total = np.zeros_like(u)
    for k in range(8):
        total += np.where(k < n, 1.0 / (u + k), 0.0)
    out[high] = _gamma_near_one(u - 1.0, True) + total
    t = x[big]
    z = 1.0 / (t * t)
    asymptotic = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12, -3617 / 8160)  # B_2k/(2k)
    out[big] = np.log(t) - (0.5 / t + z * _polyval(asymptotic, z))
    return out


def _cot_pi(r):
    """cot(pi r) for |r| <= 1/2: near +-1/2 as tan(pi (1/2 - |r|)), whose argument is exact (Sterbenz),
    where 1/tan(pi r) would magnify the rounding of pi r a hundredfold."""
    a = np.abs(r)
    with np.errstate(divide="ignore"):
        return np.where(a < 0.25, 1.0 / np.tan(np.pi * r), np.copysign(np.tan(np.pi * (0.5 - a)), r))


def _digamma(x):
    """digamma(x) = d lgamma/dx, as scipy.special.psi: reflected for x < 0, digamma(1 - x) - pi/tan(pi x);
    -inf at +0, +inf at -0, NaN at the negative integers and -inf."""
    def negative(t):
        r = t - np.round(t)
        return np.where(r == 0, np.nan, _digamma_positive(1.0 - t) - np.pi * _cot_pi(r))
    x, out, dt = _by_sign(x, _digamma_positive, negative)
    zero = x == 0
    out[zero] = np.copysign(np.inf, -x[zero])
    return out.astype(dt, copy=False)


def _polygamma_positive(n, x):
    """polygamma(n, x) for n >= 1 and x > 0: (-1)^(n+1) n! zeta(n + 1, x), the Hurwitz zeta function
    summed directly up to x + k >= 12 + 2n (each x + k rounded once), then by its asymptotic series."""
    terms = 12 + 2 * n
    head = np.zeros_like(x)
    for k in range(terms):
        head += np.where(x + k < terms, (x + k) ** -(n + 1.0), 0.0)
    z = np.where(x < terms, x + np.ceil(terms - x), x)
    # zeta(n + 1, z) ~ z^-n/n + z^-(n+1)/2 + sum B_2k/(2k)! (n+1)(n+2)...(n+2k-1) z^-(n+2k)
    bernoulli = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510)
    coefficients, rising, factorial = [], 1.0, 1.0
    for k, b2k in enumerate(bernoulli, start=1):
        rising *= (n + 2 * k - 2) * (n + 2 * k - 1) if k > 1 else n + 1
        factorial *= (2 * k - 1) * (2 * k)
        coefficients.append(b2k * rising / factorial)
    w = 1.0 / (z * z)
    tail = z ** -float(n) * (1.0 / n + (0.5 + w * z * _polyval(coefficients, w)) / z)
    sign_factorial = (-1.0) ** (n + 1) * float(np.prod(np.arange(1, n + 1, dtype=np.float64)))
    return sign_factorial * (head + np.where(x == np.inf, 0.0, tail))


def _polygamma(n, x):
    """The n-th derivative of digamma, as scipy.special.polygamma: for x < 0 by reflection,
    polygamma(n, x) = (-1)^n polygamma(n, 1 - x) - pi d^n/dx^n cot(pi x), where the n-th derivative of
    cot(pi x) is pi^n P_n(cot(pi x)), P_0(c) = c, P_(k+1)(c) = -(1 + c^2) P_k'(c); (-1)^(n+1) inf at poles."""
    n = int(n)
    if n == 0:
        return _digamma(x)
    x, dt = _special_input(x)
    out = np.empty_like(x)
    neg = x <= 0
    positive = ~neg
    out[positive] = _polygamma_positive(n, x[positive])
    p = np.polynomial.Polynomial([0.0, 1.0])
    for _ in range(n):
        p = -p.deriv() * np.polynomial.Polynomial([1.0, 0.0, 1.0])
    t = x[neg]
    r = t - np.round(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        reflected = (-1.0) ** n * _polygamma_positive(n, 1.0 - t) - np.pi ** (n + 1) * p(_cot_pi(r))
    out[neg] = np.where((r == 0) | (t == -np.inf), (-1.0) ** (n + 1) * np.inf, reflected)
    return out.astype(dt, copy=False)
