"""Where ``grammar/`` and ``stdlib/`` live: inside the installed wheel, or beside the package in a checkout."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


def data_dir(name: str) -> Traversable:
    """``lossdsl/<name>`` in a wheel (mapped there at build time), else ``<repo>/<name>``."""
    packaged = resources.files("lossdsl").joinpath(name)
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / name
