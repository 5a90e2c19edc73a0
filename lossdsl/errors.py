"""One error hierarchy for every phase, each error pointing at its place in the source."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A 1-based position in a source text (``file`` is a path or ``<string>``)."""

    line: int
    column: int
    source: str = ""
    file: str = "<string>"


class LossDSLError(Exception):
    """A user error: bad syntax, an unknown name, a wrong argument, a wrong type.

    ``line`` and ``column`` are 1-based; ``str(err)`` shows ``file:line:col: message``,
    the source line and a caret under the spot.
    """

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None):
        self.message = message
        self.span = span
        self.hint = hint
        self.line = span.line if span else None
        self.column = span.column if span else None
        super().__init__(self._format())

    def _format(self) -> str:
        text = visible(self.message + (f"\n  hint: {self.hint}" if self.hint else ""))
        if self.span is None:
            return text
        s = self.span
        head = f"{visible(s.file)}:{s.line}:{s.column}: {text}"
        lines = s.source.split("\n")  # lines as the parser counts them: \r, \f or \u2028 end none
        if not 1 <= s.line <= len(lines):
            return head
        code = lines[s.line - 1].rstrip("\r").expandtabs(1)
        return f"{head}\n    {visible(code)}\n    {' ' * len(visible(code[:s.column - 1]))}^"


def visible(text: str) -> str:
    """``text`` with every non-printable character but the newline escaped (\\x1b, \\u202e): a message
    echoes the user's source, which must not drive the terminal (colours, titles, bidi reordering)."""
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)


class ParseError(LossDSLError):
    """The text is not a well-formed program."""


class NameResolutionError(LossDSLError):
    """A name, keyword or arity that does not match any definition."""


class LossTypeError(LossDSLError):
    """A value of the wrong kind: a string where a tensor is needed, a tensor where a constant is."""


class ParameterError(LossTypeError):
    """A constant outside the values a definition declares valid for its ``parameter``."""

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None, parameter: str = ""):
        self.parameter = parameter
        super().__init__(message, span, hint)


class LimitError(LossDSLError):
    """The program is too large or too deep to compile safely."""


class InputError(LossDSLError, ValueError):
    """Bad call-time data: a missing input, a wrong dtype, a label out of range, shapes that
    do not broadcast. Also a ValueError, as NumPy users expect."""


def did_you_mean(name: str, known: Iterable[str], others: Iterable[str] = ()) -> str:
    """`` — did you mean 'x'?`` for the closest name, or an empty string. Names in ``known`` are the
    likelier (a call's builtins and the user's own definitions): they win a near tie, and ``others``
    (the library's) must be closer to count at all, so that 'relu' suggests no 'reduce'."""
    best, score = None, 0.0
    for names, bonus, cutoff in ((known, _PREFERRED, 0.6), (others, 0.0, 0.65)):
        for candidate in sorted(set(names)):
            ratio = difflib.SequenceMatcher(None, name, candidate).ratio()
            if ratio >= cutoff and ratio + bonus > score:
                best, score = candidate, ratio + bonus
    return f" — did you mean '{best}'?" if best else ""


_PREFERRED = 0.1  # how much closer a library name must be than a builtin to be suggested instead


# other libraries' spellings of a parameter (PyTorch's dim, keepdim, size_average), and lossdsl's
KEYWORD_SPELLINGS = {"dim": "axis", "axes": "axis", "keepdim": "keepdims", "keep_dims": "keepdims",
                     "reduce": "reduction", "size_average": "reduction"}


def keyword_suggestion(name: str, params: Iterable[str]) -> str:
    """`` — did you mean 'axis'?`` for a keyword argument a call does not take: its lossdsl spelling
    where another library's (``dim``) names one of ``params``, else the closest of them."""
    params = list(params)
    if KEYWORD_SPELLINGS.get(name) in params:
        return f" — did you mean '{KEYWORD_SPELLINGS[name]}'? ('{name}' elsewhere, '{KEYWORD_SPELLINGS[name]}' here)"
    return did_you_mean(name, params)
