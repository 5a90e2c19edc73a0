"""The standard library: definitions written in the language, one ``stdlib/*.loss`` file per family."""

from __future__ import annotations

import dataclasses
import textwrap
from dataclasses import dataclass
from functools import lru_cache

from . import syntax as A
from .backends.runtime import _bounds_text
from .builtins import BUILTINS, within_bounds
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


# reading order: the helpers, then losses by what they predict (values, correlations, classes and
# labels, distributions, GLM means, forecasts, survival), then embeddings and orderings, sequences,
# masks, boxes and images, generative models, and the terms added to other losses; a family not named
# here follows, alphabetically
FAMILY_ORDER = ("core", "regression", "correlation", "classification", "multilabel", "probabilistic", "glm",
                "forecasting", "survival", "metric_learning", "representation", "contrastive", "ranking", "sequence",
                "segmentation", "boxes", "images", "generative", "regularization", "multitask")


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


@dataclass(frozen=True)
class Declared:
    """The values a parameter may take, as its definition declares them (``delta = within(delta, above=0)``)."""

    lower: float | None
    upper: float | None
    strict: tuple[bool, bool]  # whether each bound is excluded
    integer: bool

    def text(self, name: str) -> str:
        """``delta > 0``, ``tau in (0, 1)``, ``ignore_index: an integer``."""
        bounds = [_bounds_text(self.lower, self.upper, self.strict)] if (self.lower, self.upper) != (None, None) else []
        return f"{name} {bounds[0]}{', an integer' if self.integer else ''}" if bounds else f"{name}: an integer"


def declared(d: A.FuncDef) -> dict[str, Declared]:
    """Each parameter's valid values: the statements ``p = within(p, ...)`` among ``d``'s, whose
    arguments are numbers and flags (the checks that run, at compile time for a constant ``p``)."""
    params = {p.name for p in d.params}
    names = [n for n, _ in BUILTINS["within"].params]
    out = {}
    for stmt in d.body:
        call = stmt.value if isinstance(stmt, A.Assign) else None
        if not (isinstance(call, A.Call) and call.func == "within" and call.args and isinstance(call.args[0], A.Name)
                and call.args[0].id == stmt.name in params):
            continue
        given = {**dict(zip(names, call.args)), **{k.name: k.value for k in call.kwargs}}
        value = {n: _constant(given[n]) if n in given else default for n, default in BUILTINS["within"].params[1:]}
        out[stmt.name] = Declared(*within_bounds(value["lower"], value["upper"], value["above"], value["below"]),
                                  integer=bool(value["integer"]))
    return out


def _constant(e: A.Expr) -> float | bool | None:
    if isinstance(e, A.Number):
        return e.value
    if isinstance(e, A.UnaryOp) and e.op == "-" and isinstance(e.operand, A.Number):
        return -e.operand.value
    if isinstance(e, A.Constant):
        return e.value
    raise ValueError(f"a declaration's bounds are numbers, not {e!r}")


def summary(d: A.FuncDef) -> str:
    """The docstring's first line."""
    doc = d.doc.strip()
    return doc.splitlines()[0] if doc else ""


def markdown() -> str:
    """docs/stdlib.md: every library definition, by family, from its docstring."""
    out = ["# The standard library", "",
           "Generated from the docstrings in `stdlib/` by `lossdsl docs -o docs/stdlib.md`; do not edit by hand.",
           "Every loss takes its target first and its prediction second; losses that produce one value per element",
           'or per sample also take `reduction="mean" | "sum" | "none"` and per-sample `weights`.',
           "A parameter's valid values, where some are not, are declared in its definition and checked:",
           "a constant at compile time (an error pointing at the argument), an input at call time.", ""]
    for family, defs in families().items():
        out += [f"## {family.replace('_', ' ')}", ""]
        for d in defs:
            first, _, rest = d.doc.strip().partition("\n")
            out += [f"### `{signature(d)}`", "", first or "(no docstring)", ""]
            valid = declared(d)
            if valid:
                out += ["Valid values: " + ", ".join(f"`{v.text(name)}`" for name, v in valid.items()) + ".", ""]
            if rest.strip():
                out += ["```text", textwrap.dedent(rest).strip("\n"), "```", ""]
    return "\n".join(out).rstrip() + "\n"
