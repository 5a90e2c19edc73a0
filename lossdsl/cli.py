"""The ``lossdsl`` command: compile a loss to a module, print its gradient, list the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import sympy as sp

from .builtins import BUILTINS
from .errors import LossDSLError
from .library import library
from .pipeline import compile as compile_loss


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 2, like user errors
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lossdsl", description="Compile losses written as text, with their symbolic gradients.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser("compile", help="write the generated module for a loss")
    c.add_argument("source", help="a loss expression, or a path to a .loss file")
    c.add_argument("--backend", choices=("numpy", "jax"), default="numpy")
    c.add_argument("-o", "--output", help="file to write (default: standard output)")
    g = sub.add_parser("grad", help="print the gradient of a loss, element by element")
    g.add_argument("source", help="a loss expression, or a path to a .loss file")
    g.add_argument("--wrt", action="append", help="input to differentiate with respect to (repeatable; "
                                                  "default: every float input)")
    g.add_argument("--latex", action="store_true", help="print LaTeX instead of plain text")
    sub.add_parser("list", help="list the builtins and the standard library")
    return p


def _compile(args: argparse.Namespace) -> None:
    loss = compile_loss(args.source, backend=args.backend)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(loss.source, encoding="utf-8")
        print(f"wrote {out} ({args.backend}; inputs: {', '.join(loss.inputs)})")
    else:
        sys.stdout.write(loss.source)


def _grad(args: argparse.Namespace) -> None:
    loss = compile_loss(args.source)
    names = args.wrt or list(loss.differentiable)
    show = sp.latex if args.latex else sp.sstr
    for name in names:
        formula = show(loss.gradient_formula(name))
        print(formula if len(names) == 1 else f"d/d{name}: {formula}")


def _list(args: argparse.Namespace) -> None:
    print("builtins")
    for b in BUILTINS.values():
        print(f"  {b.name:<12} {b.doc}")
    families: dict[str, list] = {}
    for d in library().values():
        families.setdefault(d.family, []).append(d)
    for family, defs in families.items():
        print(family)
        for d in defs:
            params = ", ".join(p.name for p in d.params)
            summary = d.doc.strip().splitlines()[0] if d.doc.strip() else ""
            print(f"  {d.name}({params})  {summary}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        {"compile": _compile, "grad": _grad, "list": _list}[args.command](args)
    except LossDSLError as e:
        print(f"lossdsl: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
