"""The ``lossdsl`` command: compile a loss to a module, print its gradient, list the library."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import sympy as sp

from . import __version__
from .analysis import analyze, selection_guide, table
from .backend import BACKENDS
from .builtins import BUILTINS, REQUIRED
from .codegen import GENERATED_BY
from .compiled import compile as compile_loss
from .errors import LossDSLError, did_you_mean
from .formula import text as formula_text
from .library import definition_text, families, library, markdown, signature, summary
from .pipeline import build, read_source


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 2, like user errors
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lossdsl", description="Compile losses written as text, with their symbolic gradients.")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    p.add_argument("--version", action="version", version=f"lossdsl {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser("compile", help="write the generated module for a loss")
    c.add_argument("source", help="a loss expression, or a path to a .loss file")
    c.add_argument("--backend", choices=tuple(BACKENDS), default="numpy")
    c.add_argument("-o", "--output", help="file to write (default: standard output); an existing file only "
                                          "if lossdsl generated it, unless --force")
    c.add_argument("--force", action="store_true", help="write over an existing file that lossdsl did not generate")
    c.add_argument("--no-checks", dest="checks", action="store_false",
                   help="leave out the value checks (ranges, labels, index positions), as compile(..., checks=False): "
                        "for torch.compile(fullgraph=True) and other traced code")
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


#: the first line of every module lossdsl writes (codegen's header): what -o may write over
_GENERATED = re.compile(re.escape('"""' + GENERATED_BY) + r" \w+;")
#: text that can only be meant as a path: ./x, ../x, /x, ~/x, or a name with an extension
_PATH_LIKE = re.compile(r"(\.{0,2}/|~/|/)[^\s()]*|[\w.-]+(/[\w.-]+)*\.[A-Za-z]\w*")


def _source(arg: str) -> str | Path:
    """A command-line source: an existing file whatever its name, else an expression, except that
    text which can only be a path, or whose first folder exists, is a missing file."""
    path = Path(arg)
    if "\n" not in arg and path.is_dir():
        raise LossDSLError(f"{arg} is a directory, not a loss file")
    if "\n" not in arg and path.is_file():
        return path
    first = arg.split("/", 1)[0]
    if _PATH_LIKE.fullmatch(arg) or ("/" in arg and first and Path(first).is_dir() and "(" not in arg):
        raise LossDSLError(f"no such file: {arg}")
    return arg


def _write_module(name: str, text: str, source: str | Path, force: bool) -> Path:
    """Write ``text`` to the file ``name`` through a temporary file in its folder, renamed over it:
    never the source, never a file lossdsl did not generate (unless forced), never through a symlink."""
    if not name:
        raise LossDSLError("-o needs a file name (leave -o out to write to standard output)")
    out = Path(name)
    if isinstance(source, Path) and out.resolve() == source.resolve():
        raise LossDSLError(f"-o {out} is the source file itself; write the module elsewhere")
    if out.is_dir():
        raise LossDSLError(f"-o {out} is a directory; give a file name")
    if (out.exists() or out.is_symlink()) and not force:
        head = _head(out)
        if out.is_symlink() or not _GENERATED.match(head):
            raise LossDSLError(f"{out} exists and is not a module lossdsl generated; not writing over it "
                               "(use --force to replace it)")
    blocker = next((p for p in [*reversed(out.parent.parents), out.parent] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise LossDSLError(f"cannot write {out}: {blocker} is a file, not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would have made it, not mkstemp's 0600
        os.replace(tmp, out)  # replaces a link itself, never what it points to
    except BaseException:
        os.unlink(tmp)
        raise
    return out


def _head(path: Path) -> str:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            return f.read(200)
    except OSError:
        return ""


def _compile(args: argparse.Namespace) -> None:
    source = _source(args.source)
    # printed, not loaded: the module is written whether or not its array library is installed here
    built = build(*read_source(source), args.backend, load=False, checks=args.checks)
    if args.output is not None:
        out = _write_module(args.output, built.source, source, args.force)
        print(f"wrote {out} ({args.backend}; inputs: {', '.join(built.graph.inputs)})")
    else:
        sys.stdout.write(built.source)


def _grad(args: argparse.Namespace) -> None:
    loss = compile_loss(_source(args.source))
    names = args.wrt or list(loss.differentiable)
    for name in names:
        if name not in loss.differentiable:
            raise LossDSLError(f"--wrt {name}: not a float input of this loss{did_you_mean(name, loss.inputs)}; "
                               f"its float inputs are {', '.join(loss.differentiable) or 'none'}")
    uses_n = False
    for name in names:
        expr = loss.gradient_formula(name)
        uses_n = uses_n or sp.Symbol("n") in expr.free_symbols
        formula = sp.latex(expr) if args.latex else formula_text(expr)
        print(formula if len(names) == 1 else f"d/d{name}: {formula}")
    if uses_n and "n" not in loss.inputs:  # on stderr: stdout stays formulas, one a line
        print("n: the element count of the mean", file=sys.stderr)


#: names that appear in derivatives only (gradient and Hessian formulas, explain), in words
IN_FORMULAS = (
    ("n", "the element count of a mean"),
    ("inside(x, lo, hi)", "1 for lo < x < hi, 1/2 at either bound, 0 outside: the derivative of clip(x, lo, hi)"),
    ("extremum_share(x)", "1/k at the k entries where a max or min is attained, else 0 (ties share)"),
    ("Piecewise((a, c), (b, True))", "SymPy's where(c, a, b)"),
    ("ctc_grad(...)", "the gradient of ctc_nll: minus the posterior probability of each class at each frame"),
    ("dim(x)", "the length of eye's, arange's, ones' or zeros' axes: size(x) as a Python int (static under jit)"),
    ("part(g, ...)", "the slice of the gradient g that belongs to one operand of concat or stack"),
    ("diag_vjp(g, x)", "the gradient of diag(x): zeros shaped like x with g on the diagonal of the last two axes"),
    ("index_vjp(g, x, x[...])", "the gradient of x[...]: zeros shaped like x with g at the indexed positions"),
    ("pad_vjp(g, x)", "the gradient of pad(x): g's middle slice, with the padding's entries added back where "
     "they came from (reflect, edge)"),
    ("correlate_kernel_vjp(g, x, k)", "the gradient of correlate(x, k) in its kernel: each tap's sum of g times "
     "the entries of x it met"),
    ("order_scatter(g, x, k)", "the gradient of sort(x) or topk(x, k): zeros shaped like x with g written where each value came from"),
    ("order_gather(g, x, k)", "g at the first k positions of x's stable order: sort's own gather, the adjoint of order_scatter"),
)


#: constructs of the language that are not calls
SYNTAX = (
    ("x[i, :, 1:3, ...]", "indexing and slicing, as NumPy's basic indexing: integers (negative from the "
     "end), start:stop:step, '...'; gradients scatter back; integer arrays: take()"),
    ("axis=(1, 2)", "a tuple of axes, for sum, mean, logsumexp, max, min and norm ((1,) for one)"),
)


def _list(args: argparse.Namespace) -> None:
    print("builtins")
    for b in BUILTINS.values():
        print(f"  {b.name:<14} {b.doc}")
    print("syntax")
    for form, doc in SYNTAX:
        print(f"  {form:<18} {doc}")
    print("constants")
    print(f"  {'pi, inf':<14} numbers, unless a name of the loss binds them")
    print("in formulas (derivatives only)")
    for name, doc in IN_FORMULAS:
        print(f"  {name:<28} {doc}")
    for family, defs in families().items():
        print(family)
        for d in defs:
            print(f"  {signature(d)}  — {summary(d)}")


def _show(args: argparse.Namespace) -> None:
    lib = library()
    if args.name in BUILTINS:
        b = BUILTINS[args.name]
        params = ", ".join(("*" if b.variadic and i == 0 else "") + (p if v is REQUIRED else f"{p}={v!r}")
                           for i, (p, v) in enumerate(b.params))
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
    result = analyze(read_source(_source(args.source))[0])
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
