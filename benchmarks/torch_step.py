"""A PyTorch training step with lossdsl's losses against the same losses written with torch.nn.functional.

One step: forward of a small MLP on a batch, the loss, backward, and an SGD update, in float32 on the
CPU. For each loss, the median time of a step with lossdsl's loss (compiled with checks on, the
default, and with ``checks=False``) over the median with the hand-written one: the target is at most
1.1. The three take their steps in turn, one step each in a rotating order, each with its own model,
so that a slow spell of a shared machine falls on all three alike (timings of whole runs of steps
drifted by 10% between runs here). Before timing, each pair is checked to agree (value and the
parameters' gradients), so that the two compute the same thing.

    python benchmarks/torch_step.py [--batch N] [--steps K] [--threads T] [--losses NAME ...] [--out FILE | --write-docs]

Prints a Markdown table and writes it to ``--out`` (default build/torch_step.md); ``--write-docs``
puts it in the tracked docs/performance.md between its torch_step markers instead. Not a timed
test: tests/test_benchmarks.py runs it on tiny sizes only.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lossdsl  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from doc_sections import DOC, write_section  # noqa: E402

F = torch.nn.functional


def _focal(t: torch.Tensor, p: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25) -> torch.Tensor:
    """torchvision's sigmoid_focal_loss, averaged."""
    q = torch.sigmoid(p)
    ce = F.binary_cross_entropy_with_logits(p, t, reduction="none")
    p_t = q * t + (1 - q) * (1 - t)
    return (ce * (1 - p_t) ** gamma * (alpha * t + (1 - alpha) * (1 - t))).mean()


def _targets(kind: str, shape: tuple[int, int], g: torch.Generator) -> torch.Tensor:
    if kind == "real":
        return torch.randn(*shape, generator=g)
    if kind == "binary":
        return torch.randint(0, 2, shape, generator=g).float()
    return F.one_hot(torch.randint(0, shape[1], shape[:1], generator=g), shape[1]).float()


# name, lossdsl source, hand-written loss (y_true, y_pred), outputs, kind of targets
LOSSES: list[tuple[str, str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor], int, str]] = [
    ("mse", "mse()", lambda t, p: F.mse_loss(p, t), 8, "real"),
    ("huber", "huber(delta=1.0)", lambda t, p: F.huber_loss(p, t, delta=1.0), 8, "real"),
    ("bce_logits", "bce(from_logits=true)", lambda t, p: F.binary_cross_entropy_with_logits(p, t), 8, "binary"),
    ("cce_logits", "cce(from_logits=true)", lambda t, p: F.cross_entropy(p, t), 10, "onehot"),
    ("focal_logits", "focal(gamma=2, alpha=0.25, from_logits=true)", _focal, 8, "binary"),
]


def _model(outputs: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, outputs))


def _step(model: torch.nn.Module, loss: Callable[..., torch.Tensor], x: torch.Tensor, t: torch.Tensor,
          lr: float = 1e-3) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    value = loss(t, model(x))
    value.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    return value


def _agree(ours: Callable[..., torch.Tensor], hand: Callable[..., torch.Tensor], outputs: int,
           x: torch.Tensor, t: torch.Tensor) -> None:
    grads = []
    for loss in (ours, hand):
        model = _model(outputs)
        value = loss(t, model(x))
        grads.append([value, *torch.autograd.grad(value, list(model.parameters()))])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _medians(losses: dict[str, Callable[..., torch.Tensor]], outputs: int, x: torch.Tensor, t: torch.Tensor,
             steps: int) -> dict[str, float]:
    """The median time of a step for each loss, the losses taking ``steps`` steps each in turn."""
    models = {key: _model(outputs) for key in losses}
    keys = list(losses)
    for key in keys:  # warm-up
        _step(models[key], losses[key], x, t)
    times: dict[str, list[float]] = {key: [] for key in keys}
    for k in range(steps):
        for key in keys[k % len(keys):] + keys[:k % len(keys)]:
            start = time.perf_counter()
            _step(models[key], losses[key], x, t)
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(v) for key, v in times.items()}


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=400, help="timed steps of each loss, taken in turn")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one: steadier on a shared machine)")
    parser.add_argument("--losses", nargs="+", choices=[row[0] for row in LOSSES], help="only these losses")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=ROOT / "build" / "torch_step.md")
    where.add_argument("--write-docs", action="store_true", help="write the section into docs/performance.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 32, generator=g)
    rows = []
    for name, source, hand, outputs, kind in LOSSES:
        if args.losses and name not in args.losses:
            continue
        t = _targets(kind, (args.batch, outputs), g)
        checked = lossdsl.compile(source, backend="torch")
        unchecked = lossdsl.compile(source, backend="torch", checks=False)
        for ours in (checked, unchecked):
            _agree(ours, hand, outputs, x, t)
        med = _medians({"hand": hand, "checked": checked, "unchecked": unchecked}, outputs, x, t, args.steps)
        rows.append(f"| {name} | {med['hand'] * 1e3:.3f} | {med['checked'] / med['hand']:.2f} | "
                    f"{med['unchecked'] / med['hand']:.2f} |")
    table = "\n".join([
        "## PyTorch training step",
        "",
        f"`python benchmarks/torch_step.py --steps {args.steps}`, {datetime.date.today().isoformat()}: "
        "a training step with lossdsl's loss over the same step with the loss written with torch.nn.functional.",
        "",
        f"MLP 32-64-k, batch {args.batch}, float32, CPU ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}); median of {args.steps} steps "
        f"(forward, loss, backward, SGD update) of each, taken in turn. Target: ratio <= 1.1.",
        "",
        "| loss | hand-written step (ms) | lossdsl, checks on | lossdsl, checks=False |",
        "|---|---|---|---|",
        *rows,
        "",
        "torch.nn.functional's losses are fused ATen kernels; a lossdsl loss is a torch.autograd.Function "
        "whose forward computes the value and the gradient of the input that requires grad in elementwise "
        "ops (BCE from logits: eighteen, for both sigmoids and softplus(x) and softplus(-x) through the smaller "
        "of them, forms that keep the loss accurate where the label-1 loss is 4e-18) and some Python per call "
        "(input checks, dtypes, shapes). With checks on, a loss also reads the range of the values it checks "
        "(BCE's labels in [0, 1]: one aminmax, read back).",
        "",
    ])
    print(table)
    if args.write_docs:
        write_section(DOC, "torch_step", table)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    return table


if __name__ == "__main__":
    main()
