"""The standard library: definitions written in the language, one ``stdlib/*.loss`` file per family."""

from __future__ import annotations

import dataclasses
import textwrap
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


FAMILY_ORDER = ("core", "regression", "classification", "probabilistic", "metric_learning", "sequence",
                "segmentation", "regularization", "multitask")


def families() -> dict[str, list[A.FuncDef]]:
    """The library grouped by family, in reading order (core helpers first)."""
    groups: dict[str, list[A.FuncDef]] = {}
    for d in library().values():
        groups.setdefault(d.family, []).append(d)
    rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    return dict(sorted(groups.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def definition_text(d: A.FuncDef) -> str:
    """The source text of a definition, from ``def`` to its last line."""
    lines = d.span.source.splitlines()
    start = d.span.line - 1
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][:1] in (" ", "\t")):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[start:end])


def signature(d: A.FuncDef) -> str:
    """``name(a, b, opt=1.0)`` as written in the definition."""
    params = [p.name if p.default is None else f"{p.name}={_literal(p.default)}" for p in d.params]
    return f"{d.name}({', '.join(params)})"


def _literal(e: A.Expr) -> str:
    if isinstance(e, A.Number):
        return e.text
    if isinstance(e, A.String):
        return repr(e.value).replace("'", '"')
    if isinstance(e, A.Constant):
        return {True: "true", False: "false", None: "none"}[e.value]
    if isinstance(e, A.UnaryOp) and isinstance(e.operand, A.Number):
        return e.op + e.operand.text
    return "..."


def summary(d: A.FuncDef) -> str:
    """The docstring's first line."""
    doc = d.doc.strip()
    return doc.splitlines()[0] if doc else ""


def markdown() -> str:
    """docs/stdlib.md: every library definition, by family, from its docstring."""
    out = ["# The standard library", "",
           "Generated from the docstrings in `stdlib/` by `lossdsl docs -o docs/stdlib.md`; do not edit by hand.",
           "Every loss takes its target first and its prediction second; losses that produce one value per element",
           'or per sample also take `reduction="mean" | "sum" | "none"` and per-sample `weights`.', ""]
    for family, defs in families().items():
        out += [f"## {family.replace('_', ' ')}", ""]
        for d in defs:
            first, _, rest = d.doc.strip().partition("\n")
            out += [f"### `{signature(d)}`", "", first or "(no docstring)", ""]
            if rest.strip():
                out += ["```text", textwrap.dedent(rest).strip("\n"), "```", ""]
    return "\n".join(out).rstrip() + "\n"
