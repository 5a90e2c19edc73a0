"""The standard library: definitions written in the language, one ``stdlib/*.loss`` file per family."""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from . import syntax as A
from .builtins import BUILTINS
from .errors import NameResolutionError, ParseError
from .parser import parse
from .resources import data_dir


@lru_cache(maxsize=1)
def library() -> dict[str, A.FuncDef]:
    """Every stdlib definition by name; its ``family`` is the file it comes from."""
    defs: dict[str, A.FuncDef] = {}
    for entry in sorted(data_dir("stdlib").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".loss"):
            continue
        family = entry.name[: -len(".loss")]
        program = parse(entry.read_text(encoding="utf-8"), file=f"stdlib/{entry.name}")
        if program.result is not None or program.bindings:
            raise ParseError("a library file holds definitions only", program.span)
        for d in program.defs:
            if d.name in defs or d.name in BUILTINS:
                raise NameResolutionError(f"'{d.name}' is defined twice in the library", d.span)
            defs[d.name] = dataclasses.replace(d, family=family)
    return defs
