"""The JAX output on a batch sharded over 8 devices gives the value and gradient it gives on one device.

XLA's host device count is fixed when jax is first imported, so the computation runs in a subprocess
(this file run as a script) that sets ``XLA_FLAGS`` before importing jax and prints its measurements
as JSON; the test compares them. This module imports no jax at the top for the same reason.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

# one worker runs the module's tests under xdist, so its subprocess (the report fixture) runs once
pytestmark = pytest.mark.xdist_group("sharding")
DEVICES = 8
B = 2 * DEVICES  # two samples per device


def _rows() -> dict[str, tuple[str, dict[str, tuple[np.ndarray, int | None]]]]:
    """id -> (loss, {input: (value, batch axis or None for replicated)})."""
    rng = np.random.default_rng(0)
    normal = lambda *shape: rng.normal(size=shape)  # noqa: E731
    onehot = np.eye(5)[rng.integers(0, 5, B)]
    T, S, C = 12, 4, 5
    log_probs = normal(T, B, C)
    log_probs -= np.log(np.sum(np.exp(log_probs), axis=-1, keepdims=True))
    return {
        "mse": ("mse()", {"y_true": (normal(B, 3), 0), "y_pred": (normal(B, 3), 0)}),
        "cce_logits": ("cce(from_logits=true)", {"y_true": (onehot, 0), "y_pred": (normal(B, 5), 0)}),
        "sparse_cce": ("sparse_cce(from_logits=true, label_smoothing=0.1)",
                       {"y_true": (rng.integers(0, 5, B), 0), "y_pred": (normal(B, 5), 0)}),
        "sum_over_axis": ("mean(sum((y_pred - y_true)^2, axis=1))", {"y_true": (normal(B, 3), 0), "y_pred": (normal(B, 3), 0)}),
        "dice_per_sample": ("dice(axis=1)", {"y_true": ((normal(B, 6) > 0).astype(float), 0),
                                             "y_pred": (rng.uniform(size=(B, 6)), 0)}),
        "focal": ("focal(from_logits=true)", {"y_true": ((normal(B) > 0).astype(float), 0), "y_pred": (3 * normal(B), 0)}),
        "triplet_batch_hard": ("triplet_batch_hard(embeddings, labels)",
                               {"embeddings": (normal(B, 4), 0), "labels": (rng.integers(0, 3, B), 0)}),
        "ctc": ("ctc(log_probs, targets, input_lengths, target_lengths)",
                {"log_probs": (log_probs, 1), "targets": (rng.integers(1, C, (B, S)), 0),
                 "input_lengths": (rng.integers(8, T + 1, B), 0), "target_lengths": (rng.integers(1, S + 1, B), 0)}),
        "replicated_weights": ("0.5*huber(delta=1) + l1(w, 0.1)",
                               {"y_true": (normal(B), 0), "y_pred": (normal(B), 0), "w": (normal(3), None)}),
    }


def _worker() -> None:
    """Run every row on one device and sharded over DEVICES; print the largest differences as JSON."""
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import lossdsl
    jax.config.update("jax_enable_x64", True)
    assert jax.device_count() == DEVICES, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("batch",))

    def spec(axis: int | None) -> PartitionSpec:
        return PartitionSpec() if axis is None else PartitionSpec(*([None] * axis), "batch")

    report = {}
    for name, (source, inputs) in _rows().items():
        loss = lossdsl.compile(source, backend="jax")
        wrt = [n for n in loss.differentiable if inputs[n][0].dtype.kind == "f"]
        one = {n: jax.device_put(v, jax.devices()[0]) for n, (v, _) in inputs.items()}
        sharded = {n: jax.device_put(v, NamedSharding(mesh, spec(axis))) for n, (v, axis) in inputs.items()}
        value, grads = loss.value_and_grad(wrt)(**one)
        runs = {"value_and_grad": loss.value_and_grad(wrt)(**sharded)}
        # the custom_vjp under the user's own jit, as in a training step
        step = jax.jit(jax.value_and_grad(lambda d, rest, loss=loss: loss(**d, **rest)))
        runs["jit(jax.value_and_grad)"] = step({n: sharded[n] for n in wrt}, {n: sharded[n] for n in sharded if n not in wrt})
        report[name] = {
            "value": float(value),
            "runs": {how: {"value": float(v), "grad": {n: float(np.max(np.abs(np.asarray(g[n]) - np.asarray(grads[n]))))
                                                       for n in wrt},
                           "devices": {n: len(g[n].sharding.device_set) for n in wrt if inputs[n][1] is not None}}
                     for how, (v, g) in runs.items()},
            "scale": {n: float(np.max(np.abs(np.asarray(grads[n])))) for n in wrt},
            "input_devices": len(sharded[wrt[0]].sharding.device_set),
        }
    print(json.dumps(report))


@pytest.fixture(scope="module")
def report() -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(_rows()))
def test_sharded_matches_one_device(report, name):
    row = report[name]
    assert row["input_devices"] == DEVICES and np.isfinite(row["value"])
    for how, run in row["runs"].items():
        assert run["value"] == pytest.approx(row["value"], rel=1e-12, abs=1e-14), how
        for n, diff in run["grad"].items():
            assert row["scale"][n] > 0, n  # a gradient of zeros would match trivially
            assert diff <= 1e-12 * row["scale"][n], (how, n, diff)
        # gradients of sharded inputs stay sharded: the work was spread, not gathered on one device
        assert all(d == DEVICES for d in run["devices"].values()), (how, run["devices"])


if __name__ == "__main__":
    _worker()
