"""Generated documentation stays current, and the CLI shows the library."""

from pathlib import Path

import lossdsl.library as lib
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
