"""Generated documentation stays current, and the CLI shows the library."""

import re
from pathlib import Path

import lossdsl.library as lib
from lossdsl.builtins import BUILTINS, ELEMENTWISE
from lossdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_stdlib_md_is_current():
    current = (ROOT / "docs" / "stdlib.md").read_text(encoding="utf-8")
    assert current == lib.markdown(), "docs/stdlib.md is stale: run `lossdsl docs -o docs/stdlib.md`"


def test_every_library_definition_has_a_docstring_with_a_formula_or_summary():
    for d in lib.library().values():
        assert lib.summary(d), f"{d.name} has no docstring"
        if d.family not in ("core",):
            assert "Formula:" in d.doc and "Reference:" in d.doc, f"{d.name}: docstring needs Formula and Reference"


def test_list_groups_by_family_one_line_each(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    for family, defs in lib.families().items():
        assert family in out
        start = out.index(family)
        names = [line.split("(")[0].strip() for line in out[start + 1:start + 1 + len(defs)]]
        assert names == [d.name for d in defs]


def test_show_prints_definition_and_docstring(capsys):
    assert main(["show", "huber"]) == 0
    out = capsys.readouterr().out
    assert "def huber(y_true, y_pred, delta=1.0" in out and "Formula:" in out and "return " in out


def test_show_unknown_name_suggests(capsys):
    assert main(["show", "hubr"]) == 2
    assert "did you mean 'huber'" in capsys.readouterr().err


def _readme_builtins() -> tuple[list[str], set[str]]:
    """The README's list of elementwise builtins (its first), and every function its builtins bullet
    names: the words of its lists (spans of three names or more) and the names called in its examples."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("* Builtins, named as NumPy names them:")
    bullet = text[start:text.index("\n* ", start)]
    spans = re.findall(r"`([^`]*)`", bullet)
    lists = [s.split() for s in spans if len(s.split()) > 2 and all(w.isidentifier() for w in s.split())]
    named = {w for words in lists for w in words}
    named |= {w for s in spans for w in re.findall(r"\b([a-z_][a-z0-9_]*)\(", s)}
    return spans[0].split(), named


def test_readme_builtins_match_the_registry():
    elementwise, named = _readme_builtins()
    assert {e.name for e in ELEMENTWISE} <= set(elementwise), "README's builtin list lacks an elementwise builtin"
    assert set(BUILTINS) <= named, f"README does not name {sorted(set(BUILTINS) - named)}"
    unknown = named - set(BUILTINS) - set(lib.library())
    assert not unknown, f"README names builtins that do not exist: {sorted(unknown)}"
