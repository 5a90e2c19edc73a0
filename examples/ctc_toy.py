"""CTC on a toy sequence task: reading digit sequences from unaligned frames.

Each sample is a sequence of 2 to 4 symbols from {1, 2, 3}; each symbol is "spoken" for 2 to 4
frames, with silent frames between, and every frame is a noisy 8-dimensional code of what it
shows. A per-frame linear classifier is trained with CTC, which sums over all alignments of the
target, so no frame labels are needed. Greedy decoding (best class per frame, merge repeats, drop
blanks) then reads the sequences back.
Figures go to examples/out/ctc_toy/ (or $LOSSDSL_EXAMPLES_OUT/ctc_toy/).
"""

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import lossdsl

OUT = Path(os.environ.get("LOSSDSL_EXAMPLES_OUT", Path(__file__).parent / "out")) / "ctc_toy"
OUT.mkdir(parents=True, exist_ok=True)

loss = lossdsl.compile("ctc(log_softmax(frames @ W, axis=-1), targets, input_lengths, target_lengths)")

rng = np.random.default_rng(0)
T, B, S, C, D = 25, 32, 4, 4, 8  # frames, samples, longest target, classes (blank 0), feature size
codes = rng.normal(size=(C, D))


def sample_batch() -> dict[str, np.ndarray]:
    frames = np.zeros((T, B, D))
    targets = np.zeros((B, S), dtype=np.int64)
    input_lengths, target_lengths = np.zeros(B, dtype=np.int64), np.zeros(B, dtype=np.int64)
    for b in range(B):
        symbols = rng.integers(1, C, size=rng.integers(2, S + 1))
        shown = [0]
        for s in symbols:
            shown += [s] * rng.integers(2, 5) + [0] * rng.integers(1, 3)
        frames[:len(shown), b] = codes[shown] + 0.5 * rng.normal(size=(len(shown), D))
        targets[b, :len(symbols)] = symbols
        input_lengths[b], target_lengths[b] = len(shown), len(symbols)
    return {"frames": frames, "targets": targets, "input_lengths": input_lengths, "target_lengths": target_lengths}


def greedy(frames: np.ndarray, W: np.ndarray, length: int) -> list[int]:
    best = np.argmax(frames[:length] @ W, axis=-1)
    return [int(c) for i, c in enumerate(best) if c != 0 and (i == 0 or c != best[i - 1])]


W = 0.01 * rng.normal(size=(D, C))
value_and_grad = loss.value_and_grad("W")
history = []
for _ in range(150):
    value, g = value_and_grad(W=W, **sample_batch())
    W = W - 0.5 * g
    history.append(float(value))
test = sample_batch()
read = [greedy(test["frames"][:, b], W, test["input_lengths"][b]) for b in range(B)]
correct = sum(r == list(test["targets"][b, :test["target_lengths"][b]]) for b, r in enumerate(read))
print(f"CTC loss {history[0]:.3f} -> {history[-1]:.3f}; {correct}/{B} held-out sequences read exactly")
print("first target", test["targets"][0, :test["target_lengths"][0]].tolist(), "read", read[0])

fig = Figure(figsize=(11, 4), layout="tight")
left, right = fig.subplots(1, 2)
left.plot(history)
left.set(xlabel="step", ylabel="CTC loss (per target symbol)", title="Training")
logits = test["frames"][:, 0] @ W
posterior = np.exp(logits - logits.max(-1, keepdims=True))
right.imshow((posterior / posterior.sum(-1, keepdims=True)).T, aspect="auto", cmap="viridis")
right.set(xlabel="frame", ylabel="class (0 = blank)", title="Per-frame posteriors, first held-out sample")
fig.savefig(OUT / "ctc_toy.png", dpi=100)
print("wrote", OUT / "ctc_toy.png")
