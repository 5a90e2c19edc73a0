"""Lovász-softmax + Dice on (B, C, H, W) logits in PyTorch, written in lossdsl text.

A tiny convolutional network segments synthetic 16x16 images into three classes (background, a
square, a disc; pixel label 255 at the image border is ignored). Its loss is the library's
Lovász-softmax (Berman et al. 2018) plus its multiclass Dice, on integer labels and NCHW logits, as
segmentation-models-pytorch's ``LovaszLoss(mode="multiclass")`` and ``DiceLoss(mode="multiclass")``
compute them. lossdsl's backward is its symbolic gradient (the Lovász term's through the sort's
routing); at the first step the value and every parameter's gradient are checked against the same
two losses written out by hand in torch from smp's formulas, then the network trains a few steps.
"""

import torch

import lossdsl

STEPS, IGNORE = 30, 255
F = torch.nn.functional

loss = lossdsl.compile("""
lovasz_softmax(labels, logits, axis=1, ignore_index=255)
    + dice(labels, logits, smooth=0, axis=1, from_logits=true, ignore_index=255)
""", backend="torch")


def hand_lovasz_softmax(logits, labels):
    """smp's lovasz_softmax(classes="present", per_image=False): per present class, the errors |fg - p|
    sorted descending, dotted with the steps of the Jaccard loss along them; the mean over the classes."""
    probas = logits.softmax(dim=1).movedim(1, -1).reshape(-1, logits.shape[1])
    keep = labels.reshape(-1) != IGNORE
    probas, flat = probas[keep], labels.reshape(-1)[keep]
    losses = []
    for c in range(probas.shape[1]):
        fg = (flat == c).to(probas.dtype)
        if fg.sum() == 0:
            continue
        errors, order = torch.sort((fg - probas[:, c]).abs(), descending=True, stable=True)
        gt = fg[order]
        jaccard = 1 - (gt.sum() - gt.cumsum(0)) / (gt.sum() + (1 - gt).cumsum(0))
        steps = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
        losses.append(errors @ steps)
    return torch.stack(losses).mean()


def hand_dice(logits, labels, eps=1e-7):
    """smp's DiceLoss(mode="multiclass", smooth=0, ignore_index=255): per class over batch and pixels,
    ignored pixels removed from both sides, absent classes counting 0, the mean over the classes."""
    b, c = logits.shape[:2]
    keep = (labels != IGNORE).reshape(b, 1, -1)
    p = logits.softmax(dim=1).reshape(b, c, -1) * keep
    t = F.one_hot((labels * (labels != IGNORE)).reshape(b, -1), c).permute(0, 2, 1) * keep
    inter, card = (p * t).sum((0, 2)), (p + t).sum((0, 2))
    return ((1 - 2 * inter / card.clamp_min(eps)) * (t.sum((0, 2)) > 0)).mean()


def batch(g, n=8, size=16):
    """Images of a square (class 1) and a disc (class 2) on noise; labels (n, size, size), border ignored."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    labels = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        r, c = torch.randint(3, size - 8, (2,), generator=g).tolist()
        labels[i, r:r + 5, c:c + 5] = 1
        cy, cx = torch.randint(4, size - 4, (2,), generator=g).tolist()
        labels[i][(yy - cy) ** 2 + (xx - cx) ** 2 < 9] = 2
    images = labels.to(torch.float64)[:, None] + 0.3 * torch.randn(n, 1, size, size, generator=g, dtype=torch.float64)
    labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1] = IGNORE, IGNORE, IGNORE, IGNORE
    return images, labels


torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.Conv2d(8, 3, 3, padding=1)).double()
optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
g = torch.Generator().manual_seed(1)
images, labels = batch(g)

# the first step: lossdsl's value and gradients against smp's formulas written out in torch
ours = loss(labels, model(images))
ours_grads = torch.autograd.grad(ours, list(model.parameters()))
hand = hand_lovasz_softmax(model(images), labels) + hand_dice(model(images), labels)
hand_grads = torch.autograd.grad(hand, list(model.parameters()))
torch.testing.assert_close(ours, hand, rtol=1e-12, atol=1e-12)
for a, b in zip(ours_grads, hand_grads):
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)

first = ours.item()
for _ in range(STEPS):
    value = loss(labels, model(images))
    optimiser.zero_grad()
    value.backward()
    optimiser.step()
last = loss(labels, model(images)).item()
assert last < 0.5 * first, (first, last)
print(f"Lovász-softmax + Dice: {first:.4f} -> {last:.4f} in {STEPS} steps; the first step's value and "
      "gradients agree with smp's formulas written in torch")
