"""Plain-words explanations of syntax errors: what was expected after which token, the parenthesis
left open, the misspelt keyword, the look-alike character. Used by ``parser.py`` once Lark has
stopped; nothing here decides whether a program parses."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable

from lark import Token

from .errors import did_you_mean

KEYWORDS = ("def", "return", "assert", "if", "else", "and", "or", "not",
            "true", "false", "none", "True", "False", "None")
# tokens after which an expression must follow
_OPERATORS = {"ADD_OP", "MUL_OP", "POW_OP", "COMP_OP", "EQUAL", "COMMA", "LPAR",
              "AND", "OR", "NOT", "IF", "ELSE", "RETURN", "ASSERT"}
EXPRESSION_STARTS = {"NAME", "NUMBER", "STRING", "LPAR"}
_LAYOUT = {"_NEWLINE", "_INDENT", "_DEDENT"}
# characters that look like ASCII ones, from pasted text (Cyrillic, Greek, typography)
_LOOK_ALIKES = dict(zip("аеорсухіјѕАВЕКМНОРСТХνορα−–×÷“”‘’",
                        "aeopcyxijsABEKMHOPCTXvopa--*/\"\"''"))


def tokens_before(lex: Callable[[str], Iterable[Token]], source: str, pos: int) -> list[Token]:
    """The tokens that start before offset ``pos`` (as far as the text lexes), layout left out."""
    out: list[Token] = []
    try:
        for tok in lex(source):
            if tok.start_pos is None or tok.start_pos >= pos:
                break
            if tok.type not in _LAYOUT:
                out.append(tok)
    except Exception:  # noqa: BLE001 - a lexing error further on: keep what lexed before it
        pass
    return out


def open_parenthesis(tokens: list[Token]) -> Token | None:
    """The innermost '(' that ``tokens`` leave open."""
    stack: list[Token] = []
    for tok in tokens:
        if tok.type == "LPAR":
            stack.append(tok)
        elif tok.type == "RPAR" and stack:
            stack.pop()
    return stack[-1] if stack else None


def expression_expected(previous: Token | None, expected: set[str]) -> str | None:
    """"expected an expression after '+'" when an operator is left without its operand."""
    if previous is None or previous.type not in _OPERATORS or not expected & EXPRESSION_STARTS:
        return None
    return f"expected an expression after '{previous}'"


def keyword_hint(*candidates: Token | None) -> str | None:
    """'did you mean ...' for a name that is a misspelt keyword (``retrun``, ``deff``, ``esle``)."""
    for tok in candidates:
        if tok is not None and tok.type == "NAME" and len(tok) >= 3:
            close = did_you_mean(str(tok), KEYWORDS)
            if close:
                return close.removeprefix(" — ")
    return None


def character_hint(ch: str) -> str | None:
    """What to do about a character that no token starts with."""
    if ch in "\"'":
        return "this string is not closed on its line (use \"\"\"...\"\"\" for several lines)"
    if not ch.isascii():
        name = unicodedata.name(ch, f"U+{ord(ch):04X}")
        base = _LOOK_ALIKES.get(ch) or unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
        alike = f"; it looks like '{base}'" if base else ""
        return (f"'{ch}' is {name} (U+{ord(ch):04X}){alike}; names and operators are ASCII "
                "letters, digits, '_' and symbols")
    if ch in "{}":
        return "braces are not part of the language; index with x[i, 1:3] or take(x, labels)"
    return None
