"""Survival losses: Breslow's Cox partial likelihood written from Cox (1972) and Breslow (1974) the
sorted way (ascending times, a reverse log-cumulative sum, each tie group's risk set starting at its
first member, found by searchsorted), independent of the library's pairwise comparison."""

import numpy as np

from . import Case

N = 12


def reverse_logcumsumexp(xp, r):
    """log(sum_{k >= i} exp(r_k)) for each i, without overflow (NumPy's logaddexp.accumulate, JAX's
    cumlogsumexp)."""
    if xp is np:
        return np.logaddexp.accumulate(r[::-1])[::-1]
    import jax

    return jax.lax.cumlogsumexp(r, reverse=True)


def cox_breslow(xp, time, event, risk):
    """sum over events of (log of the risk set's sum of exp(risk) - risk) / the event count (0 without
    events); the risk set of i is every subject with time >= time_i, ties included. An empty batch is
    refused, as cox_ph documents (its risk sets' logsumexp has nothing to take a max of)."""
    time, event, risk = (xp.reshape(a, (-1,)) for a in (time, event, risk))
    if time.shape[0] == 0:
        raise ValueError("an empty batch has no risk sets")
    order = xp.argsort(time)
    t, e, r = time[order], event[order], risk[order]
    first = xp.searchsorted(t, t, side="left")  # where each subject's tie group starts in the order
    terms = e * (reverse_logcumsumexp(xp, r)[first] - r)
    return xp.sum(terms) / xp.maximum(xp.sum(e), 1)


def subjects(n=N, ties=False, events=0.6, scale=1.0):
    """Exponential times (integers 1..4 with ties: groups of tied events and censorings), events with
    probability ``events``, normal log-risks times ``scale``."""
    def make(rng):
        time = rng.integers(1, 5, size=n).astype(float) if ties else rng.exponential(size=n)
        return {"time": time, "event": (rng.uniform(size=n) < events).astype(float),
                "risk": rng.normal(size=n) * scale}
    return make


def _single_event(rng):
    inputs = subjects()(rng)
    return {**inputs, "event": np.eye(N)[3]}


def _extreme_risks(rng):
    inputs = subjects(ties=True)(rng)
    return {**inputs, "risk": rng.choice([-1000.0, 1000.0], size=N) + rng.normal(size=N)}


def _labels_column(rng):
    """Integer event labels, and times and risks as (N, 1) columns (a network's output)."""
    inputs = subjects(ties=True)(rng)
    return {"time": inputs["time"][:, None], "event": inputs["event"].astype(np.int64),
            "risk": inputs["risk"][:, None]}


def _reference(xp, **inputs):
    return cox_breslow(xp, **inputs)


CALL = "cox_ph(time, event, risk{opts})"
CASES = [
    Case("cox_ph", CALL, subjects(), _reference, wrt=("risk",), reducible=False),
    Case("cox_ph-tied-times", CALL, subjects(ties=True), _reference, wrt=("risk",), reducible=False),
    Case("cox_ph-no-events", CALL, subjects(events=0.0), _reference, wrt=("risk",), reducible=False),
    Case("cox_ph-single-event", CALL, _single_event, _reference, wrt=("risk",), reducible=False),
    Case("cox_ph-risks-1000", CALL, _extreme_risks, _reference, wrt=("risk",), reducible=False,
         finite_differences=False),
    Case("cox_ph-labels-column", CALL, _labels_column, _reference, wrt=("risk",), reducible=False),
]
