"""Hostile input, round two (issue 17): files, text and the command line.

Sources that recurse through their defaults, files too large, not UTF-8 or with old line ends,
terminal control characters echoed into messages, digits of other scripts, and the command line's
writes: never over the source, never over a file lossdsl did not write, never through a symlink.
Every CLI case checks the exit status (2 for a user error) and that no "internal error" is printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lossdsl
from lossdsl.builtins import BUILTINS
from lossdsl.cli import main
from lossdsl.errors import LimitError, LossDSLError, ParseError
from lossdsl.library import library
from lossdsl.parser import MAX_SOURCE_CHARS


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "internal error" not in err, err
    return code, out, err


# --- recursion through defaults counts towards the call depth -------------------------------------

@pytest.mark.parametrize("source", [
    "def f(a, b=f(1)):\n    return a + b\nmean(f(x))",
    "def f(a, b=g(1)):\n    return a + b\ndef g(a, b=f(1)):\n    return a*b\nmean(f(x))",
    "def f(a, b=f(a=f(1))):\n    return a\nmean(f(x))",
    "def f(a, r=f(1)):\n    return a\nmse(y, x, reduction=f(1))",  # through a library keyword
], ids=["self", "mutual", "nested", "library keyword"])
def test_recursion_through_defaults_is_a_limit_error(source):
    with pytest.raises(LimitError, match="recursive"):
        lossdsl.compile(source)


def test_defaults_that_call_other_functions_still_work():
    loss = lossdsl.compile("def g(a):\n    return 2*a\ndef f(a, b=g(3)):\n    return a*b\nmean(f(x))")
    np.testing.assert_allclose(loss(x=np.array([1.0, 2.0])), 9.0)


# --- files -----------------------------------------------------------------------------------------

def test_a_huge_sparse_file_is_refused_without_reading_it_whole(tmp_path):
    """A 2 GiB sparse file: only the limit's worth of bytes is read, in a subprocess whose memory is
    capped at 512 MB (reading it whole would need 2 GB)."""
    path = tmp_path / "huge.loss"
    with path.open("wb") as f:
        f.truncate(2 << 30)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 29, 1 << 29))\n"
            "from lossdsl.cli import main\nsys.exit(main(['grad', sys.argv[1]]))")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "longer than" in run.stderr and str(path) in run.stderr and "internal error" not in run.stderr


def test_dev_zero_is_refused_promptly():
    with pytest.raises(LimitError, match="longer than"):
        lossdsl.compile(Path("/dev/zero"))


def test_a_long_source_names_its_file(tmp_path):
    path = tmp_path / "long.loss"
    path.write_text("x + " * (MAX_SOURCE_CHARS // 4 + 10) + "x\n")
    with pytest.raises(LimitError) as e:
        lossdsl.compile(str(path))
    assert str(e.value).startswith(f"{path}:1:1:")


@pytest.mark.parametrize("data, where", [(b"mean(x)\xff\n", (1, 8)), (b"y = 1\nmean(\xc3x)\n", (2, 6)),
                                         (b"\xfe\xffmean(x)", (1, 1))])
def test_a_file_that_is_not_utf8_is_a_clear_error(tmp_path, capsys, data, where):
    path = tmp_path / "bad.loss"
    path.write_bytes(data)
    with pytest.raises(LossDSLError, match="not UTF-8") as e:
        lossdsl.compile(str(path))
    assert (e.value.line, e.value.column) == where and e.value.span.file == str(path)
    code, _, err = _cli(capsys, "grad", str(path))
    assert code == 2 and "not UTF-8" in err


@pytest.mark.parametrize("ends", ["\r", "\r\n", "\n"], ids=["cr", "crlf", "lf"])
def test_every_line_end_convention_parses(tmp_path, ends):
    text = ends.join(["def f(a):", "    return a^2", "y = f(x)", "mean(y)"])
    path = tmp_path / "ends.loss"
    path.write_bytes(text.encode())
    for source in (text, str(path)):
        np.testing.assert_allclose(lossdsl.compile(source)(x=np.array([1.0, 3.0])), 5.0)


def test_a_non_string_source_is_a_clear_error():
    for bad in (["mean(x)"], None, 3, b"mean(x)"):
        with pytest.raises(LossDSLError, match="source must be"):
            lossdsl.compile(bad)


# --- text ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "mean(x) + \x1b[2J",
    "mean(x) \x1b]0;owned\x07",
    "mean(\u202ex)",
    "assert false, \"\x1b]0;owned\x07 \u202e\"\nmean(x)",
    "mean(x\x00)",
    "y = 1\x08\nmean(x)",
])
def test_control_characters_are_never_echoed_raw(source):
    with pytest.raises(LossDSLError) as e:
        lossdsl.compile(source)
    text = str(e.value)
    assert all(c.isprintable() or c == "\n" for c in text), repr(text)
    lines = text.split("\n")
    caret = lines[-1].index("^")
    assert lines[-2][caret:].startswith(("\\", "m", "a", "x", "y", "1")), text  # the caret under its spot


@pytest.mark.parametrize("source", ["x*\u0663", "1\u0660*x", "x*\uff13", "x*\u09e9.5", "x*1e\u0663"])
def test_numbers_are_ascii_digits_only(source):
    with pytest.raises(ParseError):  # the digit itself, or what follows "1e" read as a name
        lossdsl.compile(source)


# --- the API ---------------------------------------------------------------------------------------

def test_value_and_grad_without_names_differentiates_every_float_input():
    loss = lossdsl.compile("mse()")
    inputs = {"y_true": np.array([1.0, 2.0]), "y_pred": np.array([0.0, 4.0])}
    value, grads = loss.value_and_grad()(**inputs)
    np.testing.assert_allclose(value, 2.5)
    np.testing.assert_allclose(grads["y_pred"], inputs["y_pred"] - inputs["y_true"])
    np.testing.assert_allclose(grads["y_true"], inputs["y_true"] - inputs["y_pred"])
    assert set(loss.grad()(**inputs)) == {"y_true", "y_pred"}


# --- the command line ------------------------------------------------------------------------------

@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.loss").write_text("mse()\n")
    return tmp_path


def test_compile_never_writes_over_its_source(here, capsys):
    code, _, err = _cli(capsys, "compile", "mine.loss", "-o", "mine.loss")
    assert code == 2 and "source file itself" in err
    assert (here / "mine.loss").read_text() == "mse()\n"
    code, _, err = _cli(capsys, "compile", "mine.loss", "-o", "./sub/../mine.loss", "--force")
    assert code == 2 and (here / "mine.loss").read_text() == "mse()\n"


def test_compile_writes_over_only_what_it_generated(here, capsys):
    assert _cli(capsys, "compile", "mine.loss", "-o", "out.py")[0] == 0
    assert _cli(capsys, "compile", "mae()", "-o", "out.py")[0] == 0  # its own module: replaced
    assert "mae()" in (here / "out.py").read_text()
    (here / "notes.py").write_text("keep me\n")
    code, _, err = _cli(capsys, "compile", "mine.loss", "-o", "notes.py")
    assert code == 2 and "--force" in err and (here / "notes.py").read_text() == "keep me\n"
    assert _cli(capsys, "compile", "mine.loss", "-o", "notes.py", "--force")[0] == 0
    assert "mse()" in (here / "notes.py").read_text()


def test_compile_never_follows_a_symlink(here, capsys):
    (here / "target.py").write_text("precious\n")
    os.symlink(here / "target.py", here / "link.py")
    code, _, err = _cli(capsys, "compile", "mine.loss", "-o", "link.py")
    assert code == 2 and (here / "target.py").read_text() == "precious\n"
    assert _cli(capsys, "compile", "mine.loss", "-o", "link.py", "--force")[0] == 0
    assert (here / "target.py").read_text() == "precious\n"  # the link was replaced, not its target
    assert not (here / "link.py").is_symlink() and "mse()" in (here / "link.py").read_text()


@pytest.mark.parametrize("output, fragment", [("", "needs a file name"), ("mine.loss/x.py", "is a file, not a folder"),
                                              (".", "is a directory")])
def test_bad_output_paths_are_plain_errors(here, capsys, output, fragment):
    code, out, err = _cli(capsys, "compile", "mine.loss", "-o", output)
    assert code == 2 and fragment in err and out == ""


def test_a_file_of_any_name_is_read_as_a_file(here, capsys):
    (here / "my_loss.txt").write_text("mae()\n")
    (here / "loss").write_text("mae()\n")
    for name in ("my_loss.txt", "./loss"):
        code, out, _ = _cli(capsys, "grad", name, "--wrt", "y_pred")
        assert code == 0 and "sign" in out


@pytest.mark.parametrize("source, fragment", [("my_losses/foo", "no such file"), ("./nothere", "no such file"),
                                              ("foo.txt", "no such file"), ("d.loss", "is a directory")])
def test_a_missing_path_says_so(here, capsys, source, fragment):
    (here / "my_losses").mkdir()
    (here / "d.loss").mkdir()
    code, _, err = _cli(capsys, "grad", source)
    assert code == 2 and fragment in err


def test_a_division_is_still_an_expression(here, capsys):
    code, out, _ = _cli(capsys, "grad", "mean(y/x)", "--wrt", "y")
    assert code == 0 and out.splitlines()[0] == "1/(n*x)"


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"lossdsl {lossdsl.__version__}"


def test_wrt_that_is_no_input_lists_the_inputs(capsys):
    code, _, err = _cli(capsys, "grad", "mse()", "--wrt", "y_pred_")
    assert code == 2 and "did you mean 'y_pred'" in err and "y_true, y_pred" in err


def test_grad_says_what_n_is(capsys):
    """On stderr, so that standard output stays one formula a line."""
    code, out, err = _cli(capsys, "grad", "mse()", "--wrt", "y_pred")
    assert code == 0 and "/n" in out and "n: the element count of the mean" in err
    code, out, err = _cli(capsys, "grad", "sum(x^2)")
    assert code == 0 and "element count" not in out + err


# --- sizes and messages ----------------------------------------------------------------------------

@pytest.mark.parametrize("source, fragment", [
    ("sum(one_hot(labels, 10^9))", "'num_classes' of one_hot(): 1000000000 is beyond the limit"),
    ("mean(take(x, l, axis=10^9))", "'axis' of take(): 1000000000 is beyond the limit of 64"),
    ("sum(z, axis=10^18)", "'axis' of sum(): 1000000000000000000 is beyond the limit of 64"),
    ("mean(logsumexp(z, axis=-65))", "beyond the limit of 64"),
    ("mean(expand_dims(z, 100))", "beyond the limit of 64"),
    ("mean(x^1000.0000001)", "exponent 1000.0000001 is larger than the limit"),
    ("mean(x^1001)", "exponent 1001 is larger than the limit"),  # an integer shown as one
    ("mean(x^1e300)", "exponent 1e+300 is larger than the limit"),
])
def test_sizes_the_source_fixes_have_limits_in_plain_words(source, fragment):
    with pytest.raises(LimitError, match=re.escape(fragment)):
        lossdsl.compile(source)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_sizes_from_inputs_are_checked_before_allocating(backend):
    """3,000 labels x 100,000 classes would be 3e8 elements: refused before one_hot allocates them."""
    loss = lossdsl.compile("sum(one_hot(labels, 100000) * x)", backend=backend)
    labels, x = np.zeros(3000, dtype=np.int64), np.ones(100000)
    if backend == "torch":
        import torch
        labels, x = torch.from_numpy(labels), torch.from_numpy(x)
    with pytest.raises(lossdsl.InputError, match="more than 2\\^28"):
        loss(labels=labels, x=x)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_missing_backend_package_names_the_extra(tmp_path, backend):
    """With the package hidden (sys.modules[name] = None), compile() says what to install; the
    module still prints (module_source, and the CLI writes it), the same bytes as where it is installed."""
    out = tmp_path / "build" / "loss.py"
    source = "mse(y_true, y_pred) + mean(take(z, labels)) + mean(softplus(z))"
    code = (f"import sys; sys.modules[{backend!r}] = None\n"
            "import lossdsl\n"
            "try:\n"
            f"    lossdsl.compile({source!r}, backend={backend!r})\n"
            "except lossdsl.LossDSLError as e:\n"
            "    print('API:', e)\n"
            f"assert lossdsl.module_source({source!r}, backend={backend!r}) == open(sys.argv[2]).read()\n"
            "from lossdsl.cli import main\n"
            f"sys.exit(main(['compile', {source!r}, '--backend', {backend!r}, '-o', sys.argv[1]]))")
    installed = tmp_path / "installed.py"
    installed.write_text(lossdsl.compile(source, backend=backend).source)
    run = subprocess.run([sys.executable, "-c", code, str(out), str(installed)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    hint = f'pip install "lossdsl[{backend}]"'
    assert f"API: the {backend} backend needs {backend}" in run.stdout and hint in run.stdout
    assert "internal error" not in run.stderr
    assert out.read_text() == installed.read_text()


def test_a_module_is_the_same_bytes_in_every_process():
    """Generated source never depends on a set's order: the same bytes under two string-hash seeds,
    for every library loss, the backends in turn (module_source: nothing is loaded)."""
    code = ("import hashlib, lossdsl\n"
            "from lossdsl.library import library\n"
            "for k, (name, d) in enumerate(sorted(library().items())):\n"
            "    call = f'{name}(' + ', '.join(p.name for p in d.params if p.default is None) + ')'\n"
            "    b = ('numpy', 'jax', 'torch')[k % 3]  # each loss on one backend, the backends in turn\n"
            "    print(name, b, hashlib.sha256(lossdsl.module_source(call, backend=b).encode()).hexdigest())\n")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                           env={**os.environ, "PYTHONHASHSEED": seed}) for seed in ("1", "2")]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert runs[0].stdout.count("\n") >= 30 and runs[0].stdout == runs[1].stdout


# --- names: every builtin, parameter and wrapper-internal name as an input ------------------------

def _names_to_try() -> list[str]:
    params = {p.name for d in library().values() for p in d.params}
    wrapper = {"self", "direction", "ctx", "inputs", "wrt", "kwargs", "args", "grads", "need", "fn", "names",
               "loss", "grad", "hvp", "hessian", "value", "source", "backend", "module", "x", "rows", "stats"}
    return sorted(params | wrapper | set(BUILTINS) - {"y_true", "y_pred"})


NAMES = _names_to_try()


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_every_name_is_an_input_or_a_clear_error(backend):
    """Each name as the one input of mean(name^2): it works through every entry point (value,
    gradient, value_and_grad, hvp, second derivative), or compile() refuses it with a message naming
    it; never a TypeError from a wrapper's own parameters or a broken generated module."""
    import torch

    from lossdsl.errors import NameResolutionError
    x = np.array([1.0, -2.0, 3.0])
    arg = torch.from_numpy(x) if backend == "torch" else x
    refused = []
    for name in NAMES:
        try:
            loss = lossdsl.compile(f"mean({name}^2)", backend=backend)
        except NameResolutionError as e:
            assert name in str(e), (name, str(e))
            refused.append(name)
            continue
        except LossDSLError as e:  # a builtin's name used as a value: "is a function"
            assert name in str(e), (name, str(e))
            refused.append(name)
            continue
        assert loss.inputs == (name,), name
        np.testing.assert_allclose(np.asarray(loss(**{name: arg})), np.mean(x**2), err_msg=name)
        np.testing.assert_allclose(np.asarray(loss.grad(name)(**{name: arg})), 2 * x / 3, err_msg=name)
        value, grads = loss.value_and_grad()(**{name: arg})
        np.testing.assert_allclose(np.asarray(grads[name]), 2 * x / 3, err_msg=name)
        hv = loss.hvp(name)(np.ones(3), **{name: arg})
        np.testing.assert_allclose(np.asarray(hv), np.full(3, 2 / 3), err_msg=name)
        if backend == "torch":
            t = torch.from_numpy(x.copy()).requires_grad_(True)
            loss(**{name: t}).backward()
            np.testing.assert_allclose(t.grad.numpy(), 2 * x / 3, err_msg=name)
            module = loss.as_module()  # through nn.Module.__call__, whose own first parameter is 'self'
            for value in (module(**{name: arg}), module(arg)):
                np.testing.assert_allclose(float(value), np.mean(x**2), err_msg=name)
    # the names refused are the language's own functions, never a wrapper's or Python's names
    assert set(refused) <= set(BUILTINS) | set(library()), refused


@pytest.mark.parametrize("op", ["+", "-"])
def test_thousands_of_terms_print_as_code_python_can_compile(op):
    """A sum of 3,000 distinct terms, legal by every limit: printed as balanced chains, since Python's
    compiler recurses once per operator of one chain (found by fuzz --mode sizes)."""
    n = 3000
    loss = lossdsl.compile(f"sum({f' {op} '.join(f'tanh(x*{k}/{n})' for k in range(n))})")
    x = np.array([0.3, -0.7])
    parts = np.tanh(x * np.arange(n)[:, None] / n)
    want = (parts.sum(0) if op == "+" else parts[0] - parts[1:].sum(0)).sum()
    np.testing.assert_allclose(loss(x=x), want, rtol=1e-12)


def test_long_products_print_as_balanced_chains():
    """A product of 150 inputs prints in chains of at most 64 factors, and still computes."""
    names = [f"x{k}" for k in range(150)]
    loss = lossdsl.compile(f"mean({'*'.join(names)})")
    body = loss.source.split("def loss")[1]
    assert max(len(chain.split("*")) for chain in body.replace("(", " ").replace(")", " ").split()) <= 64
    values = {n: np.array([1.01, 0.99]) + 0.001 * k for k, n in enumerate(names)}
    np.testing.assert_allclose(loss(**values), np.mean(np.prod(list(values.values()), axis=0)), rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("call, y_true", [
    ("bce(y_true, y_pred)", np.array([[1.0, 0.0, 1.0]])),
    ("focal(y_true, y_pred)", np.array([[1.0, 0.0, 1.0]])),
    ("cce(y_true, y_pred)", np.array([[1.0, 0.0, 0.0]])),
    ("categorical_focal(y_true, y_pred)", np.array([[1.0, 0.0, 0.0]])),
    ("sparse_cce(y_true, y_pred)", np.array([0])),
])
def test_probabilities_out_of_range_suggest_from_logits(call, y_true, backend):
    """Logits passed where a loss expects probabilities: the message says what to pass instead."""
    y_pred = np.array([[2.5, -1.0, 0.3]])
    loss = lossdsl.compile(call, backend=backend)
    if backend == "torch":
        import torch
        y_true, y_pred = torch.from_numpy(y_true), torch.from_numpy(y_pred)
    with pytest.raises(lossdsl.InputError, match=r"input 'y_pred' of \w+\(\) must be in \[0, 1\]; got values from "
                                                 r"-1\.0 to 2\.5; for logits, pass from_logits=true"):
        loss(y_true=y_true, y_pred=y_pred)
