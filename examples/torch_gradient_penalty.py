"""A GAN critic with a gradient penalty in PyTorch: double backward through a lossdsl loss, under torch.compile.

The critic learns to tell real points from generated ones with the non-saturating logistic loss,
written in lossdsl. Its gradient penalty is taken on the gradient of that loss with respect to points
between real and generated ones, so each step differentiates the loss's gradient again
(``torch.autograd.grad(..., create_graph=True)``): lossdsl's backward is its symbolic gradient,
printed as torch code, and autograd differentiates that code. The critic's loss term runs under
``torch.compile(fullgraph=True)``, for which the loss is compiled with ``checks=False`` (a value
check would break the graph). The same training written by hand in torch ends at the same
parameters.
"""

import torch

import lossdsl

F = torch.nn.functional
STEPS, LAMBDA, LR = 20, 10.0, 0.05

# the critic's loss on its scores for real and generated points; and the same as one mean, whose
# gradient with respect to the scores of the interpolates the penalty keeps near 1 in norm
critic_loss = lossdsl.compile("mean(softplus(-real)) + mean(softplus(fake))", backend="torch", checks=False)
fake_term = lossdsl.compile("mean(softplus(fake))", backend="torch")


def hand_critic_loss(real, fake):
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def hand_fake_term(fake):
    return F.softplus(fake).mean()


def critic(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)).double()


def train(loss, term, compiled, second=True):
    model = critic()
    optimiser = torch.optim.SGD(model.parameters(), lr=LR)
    g = torch.Generator().manual_seed(1)
    main = torch.compile(lambda r, f: loss(r, f), fullgraph=True, backend="aot_eager") if compiled else loss
    for _ in range(STEPS):
        real = torch.randn(256, 2, generator=g, dtype=torch.float64) * 0.5 + torch.tensor([2.0, -1.0])
        fake = torch.randn(256, 2, generator=g, dtype=torch.float64)
        t = torch.rand(256, 1, generator=g, dtype=torch.float64)
        between = (t * real + (1 - t) * fake).requires_grad_()
        (dx,) = torch.autograd.grad(term(model(between)), between, create_graph=second)  # kept differentiable
        penalty = ((dx.norm(dim=1) * 256 - 1) ** 2).mean()  # x256: the mean's gradient, per point
        value = main(model(real), model(fake)) + LAMBDA * penalty
        optimiser.zero_grad()
        value.backward()  # through the penalty too: second derivatives of the loss
        optimiser.step()
    return model, value.item(), penalty.item()


ours, value, penalty = train(critic_loss, fake_term, compiled=True)
hand, hand_value, hand_penalty = train(hand_critic_loss, hand_fake_term, compiled=False)
for a, b in zip(ours.parameters(), hand.parameters()):
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
assert abs(value - hand_value) < 1e-10 and abs(penalty - hand_penalty) < 1e-10
# without the penalty's second derivatives (its gradient treated as a constant) training goes elsewhere
first_order, _, _ = train(critic_loss, fake_term, compiled=False, second=False)
assert any((a - b).abs().max() > 1e-3 for a, b in zip(ours.parameters(), first_order.parameters()))
print(f"after {STEPS} steps: critic loss {value:.6f} (penalty {penalty:.6f}); lossdsl (torch.compile, "
      "double backward) and hand-written torch agree to 1e-10")
