"""README's "Coming from PyTorch / optax / Keras" table: every row's lossdsl call compiles, and the
table names every peer loss the library's docstrings say they reproduce."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import lossdsl

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
SECTION = README.split("## Coming from PyTorch / optax / Keras", 1)[1].split("\n## ", 1)[0]
ROWS = [(peer, call) for peer, call in re.findall(r"^\| (`[^|]+) \| `([^|]+)` \|$", SECTION, re.M)]


def test_the_table_is_there_and_covers_the_three_peers():
    peers = " ".join(p for p, _ in ROWS)
    assert len(ROWS) >= 60
    for prefix in ("torch.nn.functional.", "optax.losses.", "keras.losses."):
        assert prefix in peers


@pytest.mark.parametrize("peer, call", ROWS, ids=[p.split("`")[1] + f"-{i}" for i, (p, _) in enumerate(ROWS)])
def test_every_row_compiles(peer, call):
    lossdsl.compile(call, backend="numpy")


def test_every_torch_functional_loss_the_docstrings_name_has_a_row():
    """A peer function named in a library docstring's Reference is one the library reproduces."""
    from lossdsl.library import library
    named = {m for d in library().values() for m in re.findall(r"torch\.nn\.functional\.([a-z_0-9]+)", d.doc or "")}
    listed = {m for p, _ in ROWS for m in re.findall(r"torch\.nn\.functional\.([a-z_0-9]+)", p)}
    assert named <= listed, named - listed
