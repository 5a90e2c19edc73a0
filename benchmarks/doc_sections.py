"""The sections of docs/performance.md that benchmarks write between their own markers.

bench.py writes the file's head (its tables and targets); compile_time.py, boosting.py and
torch_step.py each write one section between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``,
replacing it where it stands. Whichever runs, the others' sections stay as they were.
"""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
_SECTION = re.compile(r"<!-- ([\w.]+):start -->\n.*?<!-- \1:end -->", re.S)


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(path: Path, name: str, section: str) -> None:
    """``section`` between ``name``'s markers in ``path``: replaced where they are, appended otherwise."""
    start, end = markers(name)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n"
    block = f"{start}\n{section.strip(chr(10))}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def sections(text: str) -> list[str]:
    """Every marked section of ``text``, markers included, in order."""
    return [m.group(0) for m in _SECTION.finditer(text)]
