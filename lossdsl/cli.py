"""The ``lossdsl`` command: compile a loss to a module, print its gradient, list the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import sympy as sp

from .analysis import analyze, selection_guide, table
from .backend import BACKENDS
from .builtins import BUILTINS, REQUIRED
from .compiled import compile as compile_loss
from .errors import LossDSLError, did_you_mean
from .library import definition_text, families, library, markdown, signature, summary
from .pipeline import read_source


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 2, like user errors
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lossdsl", description="Compile losses written as text, with their symbolic gradients.")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser("compile", help="write the generated module for a loss")
    c.add_argument("source", help="a loss expression, or a path to a .loss file")
    c.add_argument("--backend", choices=tuple(BACKENDS), default="numpy")
    c.add_argument("-o", "--output", help="file to write (default: standard output)")
    g = sub.add_parser("grad", help="print the gradient of a loss, element by element")
    g.add_argument("source", help="a loss expression, or a path to a .loss file")
    g.add_argument("--wrt", action="append", help="input to differentiate with respect to (repeatable; "
                                                  "default: every float input)")
    g.add_argument("--latex", action="store_true", help="print LaTeX instead of plain text")
    sub.add_parser("list", help="list the builtins and the standard library, by family")
    s = sub.add_parser("show", help="print a library definition with its docstring")
    s.add_argument("name")
    d = sub.add_parser("docs", help="write docs/stdlib.md from the library's docstrings")
    d.add_argument("-o", "--output", help="file to write (default: standard output)")
    d.add_argument("--guide", action="store_true", help="write docs/selection-guide.md (derived properties) instead")
    e = sub.add_parser("explain", help="derived properties: convexity, smoothness, robustness, range, likelihood")
    e.add_argument("source", help="a loss expression, or a path to a .loss file")
    e.add_argument("--json", action="store_true", help="print the analysis as JSON")
    pl = sub.add_parser("plot", help="draw losses and their gradients (needs matplotlib: lossdsl[plot])")
    pl.add_argument("sources", nargs="+", metavar="SOURCE", help="loss expressions or .loss files")
    pl.add_argument("-o", "--output", required=True, help="image file to write (.png, .svg, .pdf)")
    pl.add_argument("--x", choices=("residual", "probability", "logit"), help="the horizontal axis (default: "
                    "probability if y_pred is checked to lie in [0, 1], logit if y_true is, else the residual)")
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
    for name in names:
        formula = loss.gradient_latex(name) if args.latex else sp.sstr(loss.gradient_formula(name))
        print(formula if len(names) == 1 else f"d/d{name}: {formula}")


def _list(args: argparse.Namespace) -> None:
    print("builtins")
    for b in BUILTINS.values():
        print(f"  {b.name:<14} {b.doc}")
    for family, defs in families().items():
        print(family)
        for d in defs:
            print(f"  {signature(d)}  — {summary(d)}")


def _show(args: argparse.Namespace) -> None:
    lib = library()
    if args.name in BUILTINS:
        b = BUILTINS[args.name]
        params = ", ".join(p if v is REQUIRED else f"{p}={v!r}" for p, v in b.params)
        print(f"{b.name}({params})  [builtin]\n    {b.doc}")
        return
    if args.name not in lib:
        raise LossDSLError(f"no definition named '{args.name}'{did_you_mean(args.name, [*lib, *BUILTINS])}")
    d = lib[args.name]
    print(f"# {d.family}: {d.span.file}:{d.span.line}")
    print(definition_text(d))


def _docs(args: argparse.Namespace) -> None:
    text = selection_guide() if args.guide else markdown()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)


def _explain(args: argparse.Namespace) -> None:
    result = analyze(read_source(args.source)[0])
    print(json.dumps(result, indent=2) if args.json else table(result), end="\n" if args.json else "")


def _plot(args: argparse.Namespace) -> None:
    from .plot import plot
    print(f"wrote {plot(args.sources, args.output, args.x)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        {"compile": _compile, "grad": _grad, "list": _list, "show": _show, "docs": _docs, "explain": _explain,
         "plot": _plot}[args.command](args)
    except LossDSLError as e:
        if args.debug:
            raise
        print(f"lossdsl: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lossdsl list | head`: the reader left; so do we, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        if args.debug:
            raise
        print(f"lossdsl: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except Exception as e:  # a bug of ours: say so briefly; --debug shows the traceback
        if args.debug:
            raise
        print(f"lossdsl: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback; "
              "please report it)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
