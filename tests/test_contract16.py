"""Issue 16's public contract: the names, parameter names, order and defaults that outside code is
written against, copied from the issue's text, against the library's definitions. A contract
signature is the loss's leading parameters, exactly; ``reduction="mean"`` and ``weights=none`` may
follow (and only they). The options the issue adds to existing losses are keyword parameters with
the given default, wherever they stand."""

from __future__ import annotations

import pytest

from lossdsl.library import library, signature

CONTRACT = [
    # from PyTorch
    "margin_ranking(x1, x2, y_true, margin=0.0)",
    "cosine_embedding(x1, x2, y_true, margin=0.0, axis=-1)",
    "hinge_embedding(y_true, y_pred, margin=1.0)",
    "soft_margin(y_true, y_pred)",
    "multilabel_soft_margin(y_true, y_pred, class_weights=none)",
    "multi_margin(y_true, y_pred, p=1, margin=1.0, class_weights=none)",
    "multilabel_margin(y_true, y_pred)",
    # from optax
    "poly1(y_true, y_pred, epsilon=1.0, from_logits=true)",
    "sparsemax_loss(y_true, y_pred)",
    "perceptron(y_true, y_pred)",
    "convex_kl(y_true, y_pred)",
    "ntxent(embeddings, labels, temperature=0.07)",
    "ranking_softmax(y_true, y_pred)",
    # from Keras
    "mape(y_true, y_pred)",
    "msle(y_true, y_pred)",
    "circle(y_true, y_pred, gamma=80.0, margin=0.4)",
    "generalized_cce(y_true, y_pred, q=0.5)",
    # in none of them
    "infonce(z1, z2, temperature=0.07, symmetric=true)",
    "distillation(y_true, y_pred_student, y_pred_teacher, temperature=4.0, alpha=0.5)",
    "gaussian_kl(mu, log_var)",
    'beta_vae(x, x_recon, mu, log_var, beta=1.0, likelihood="bernoulli")',
    'gan_generator(d_fake, kind="ns")',
    'gan_discriminator(d_real, d_fake, kind="ns")',
    "gradient_penalty(critic_expr, x)",
    "dpo(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta=0.1)",
    "ranknet(y_true, y_pred)",
    "listnet(y_true, y_pred)",
    "tweedie_deviance(y_true, y_pred, power=1.5)",
    "gamma_deviance(y_true, y_pred)",
    "poisson_deviance(y_true, y_pred)",
    "negative_binomial_nll(y_true, mu, alpha)",
    "student_t_nll(y_true, mu, log_scale, df)",
    "crps_gaussian(y_true, mu, sigma)",
    "pinball_multi(y_true, y_pred, taus)",
    "charbonnier(y_true, y_pred, eps=1e-3)",
    "geman_mcclure(y_true, y_pred, c=1.0)",
    "welsch(y_true, y_pred, c=1.0)",
    "cauchy(y_true, y_pred, c=1.0)",
    "wing(y_true, y_pred, w=10.0, epsilon=2.0)",
]

# options on existing losses: (loss, parameter, default)
OPTIONS = [
    ("cce", "class_weights", "none"), ("cce", "from_logits", "false"),
    ("sparse_cce", "class_weights", "none"), ("sparse_cce", "axis", "-1"),
    ("nll", "class_weights", "none"), ("nll", "axis", "-1"),
    ("bce", "label_smoothing", "0.0"), ("focal", "label_smoothing", "0.0"),
    ("categorical_focal", "label_smoothing", "0.0"), ("triplet", "swap", "false"),
]

TRAILING = [("reduction", '"mean"'), ("weights", "none")]


def _params(sig: str) -> tuple[str, list[tuple[str, object]]]:
    """``name(a, b=1.0)`` as (name, [(a, None), (b, 1.0)]); numbers compare as numbers (1e-3 = 0.001)."""
    name, rest = sig.split("(", 1)
    params = []
    for part in filter(None, (p.strip() for p in rest.rstrip(")").split(","))):
        key, _, default = part.partition("=")
        params.append((key.strip(), _value(default.strip()) if default else None))
    return name, params


def _value(text: str) -> object:
    try:
        return float(text)
    except ValueError:
        return text


@pytest.mark.parametrize("contract", CONTRACT)
def test_the_library_loss_has_exactly_the_contract_parameters(contract):
    name, want = _params(contract)
    assert name in library(), f"{name} is not in the library"
    _, got = _params(signature(library()[name]))
    assert got[:len(want)] == want, (signature(library()[name]), contract)
    trailing = [(k, _value(v)) for k, v in TRAILING]
    rest = got[len(want):]
    assert rest in (trailing, trailing[:1], []), (signature(library()[name]), "only reduction=, weights= may follow")


@pytest.mark.parametrize("loss, option, default", OPTIONS)
def test_the_options_on_existing_losses(loss, option, default):
    _, got = _params(signature(library()[loss]))
    assert (option, _value(default)) in got, signature(library()[loss])


def test_the_contract_names_are_distinct_and_cover_the_issue():
    names = [_params(c)[0] for c in CONTRACT]
    assert len(names) == len(set(names)) == 39
