"""Phase 1, parse: text → AST, with the Lark grammar in ``grammar/lossdsl.lark``."""

from __future__ import annotations

import math
import re
from functools import lru_cache

from lark import Lark, Token, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.indenter import DedentError, Indenter
from lark.visitors import Transformer_NonRecursive

from . import syntax as A
from .diagnose import (
    EXPRESSION_STARTS,
    character_hint,
    expression_expected,
    keyword_hint,
    open_parenthesis,
    tokens_before,
)
from .errors import LimitError, LossDSLError, ParseError, Span
from .resources import data_dir

MAX_SOURCE_CHARS = 200_000
MAX_DEPTH = 200

_TOKEN_NAMES = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "LPAR": "'('", "RPAR": "')'",
    "LSQB": "'['", "RSQB": "']'",
    "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '/' or '@'",
    "POW_OP": "'^'", "COMP_OP": "a comparison", "_NEWLINE": "end of line", "_INDENT": "an indented block",
    "_DEDENT": "end of block", "$END": "end of input",
}


_BINARY = {"ADD_OP", "MUL_OP", "POW_OP"}  # an expression goes on past a line end after one of these


class LossIndenter(Indenter):
    """Lark's indenter, keeping its indentation and parenthesis state per parse: Lark calls the one
    instance it was given for every parse, from whichever thread parses."""

    NL_type = "_NEWLINE"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def process(self, stream):
        return Indenter.process(LossIndenter(), stream)  # a fresh state for this parse alone

    def _process(self, stream):
        for token in super()._process(self._continued(stream)):
            if token.type in self.OPEN_PAREN_types and self.paren_level >= MAX_DEPTH:
                raise LimitError(f"parentheses nested deeper than {MAX_DEPTH} levels",
                                 Span(token.line or 1, token.column or 1))
            yield token

    def _continued(self, stream):
        """``stream`` without the line ends that follow a binary operator: the expression goes on.
        (An indented line that starts with one continues the line above in the lexer:
        ``_CONTINUATION`` in the grammar, where the next line can be seen.)"""
        previous = None
        for token in stream:
            if token.type == self.NL_type and previous is not None and previous.type in _BINARY:
                continue
            previous = token
            yield token

    def handle_NL(self, token: Token):
        try:
            yield from super().handle_NL(token)
        except DedentError:
            line = token.end_line or 1
            raise ParseError("this line's indentation matches no enclosing block", Span(line, 1)) from None


def grammar_text() -> str:
    return data_dir("grammar").joinpath("lossdsl.lark").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(grammar_text(), parser="lalr", postlex=LossIndenter(), propagate_positions=True,
                maybe_placeholders=True)


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "\n": ""}


def _unquote(text: str) -> str:
    q = 3 if text.startswith('"""') else 1
    body = text[q:-q]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body, flags=re.S)


def parse_number(text: str) -> int | float:
    """A numeric literal without eval: ints stay ints, the rest are floats."""
    if re.fullmatch(r"\d+", text):
        if len(text) > 18:
            raise ValueError("integer literal too long")
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


@v_args(meta=True)
class _ToAST(Transformer_NonRecursive):
    def __init__(self, source: str, file: str):
        super().__init__()
        self._source, self._file = source, file

    def _span(self, meta) -> Span:
        return Span(getattr(meta, "line", 1), getattr(meta, "column", 1), self._source, self._file)

    def _tok_span(self, tok: Token) -> Span:
        return Span(tok.line, tok.column, self._source, self._file)

    # statements
    def start(self, meta, items):
        stmts = [i for i in items if i is not None and not isinstance(i, Token)]
        defs = tuple(s for s in stmts if isinstance(s, A.FuncDef))
        rest = [s for s in stmts if not isinstance(s, A.FuncDef)]
        for s in rest:
            if isinstance(s, A.Return):
                raise ParseError("'return' outside a definition", s.span)
        result = None
        if rest and isinstance(rest[-1], A.ExprStmt):
            result = rest.pop().value
        for s in rest:
            if isinstance(s, A.ExprStmt):
                raise ParseError("only the last statement may be the loss expression; "
                                 "bind this one to a name", s.span)
        span = self._span(meta) if stmts else Span(1, 1, self._source, self._file)
        return A.Program(span, defs, tuple(rest), result)

    def funcdef(self, meta, items):
        name, params, body = items
        params = tuple(params or ())
        seen: set[str] = set()
        for p in params:
            if p.name in seen:
                raise ParseError(f"duplicate parameter '{p.name}'", p.span)
            seen.add(p.name)
        for p, q in zip(params, params[1:]):
            if p.default is not None and q.default is None:
                raise ParseError(f"parameter '{q.name}' without a default follows one with a default", q.span)
        stmts = list(body)
        doc = ""
        if stmts and isinstance(stmts[0], A.ExprStmt) and isinstance(stmts[0].value, A.String):
            doc = stmts.pop(0).value.value
        if not stmts or not isinstance(stmts[-1], A.Return):
            raise ParseError(f"definition '{name}' must end with 'return <expression>'", self._tok_span(name))
        result = stmts.pop().value
        for s in stmts:
            if not isinstance(s, (A.Assign, A.Assert)):
                what = "'return' before the end" if isinstance(s, A.Return) else "an expression statement"
                raise ParseError(f"{what} in the body of '{name}'; only bindings 'x = ...' and asserts may "
                                 "come before the final return", s.span)
        return A.FuncDef(self._tok_span(name), str(name), params, doc, tuple(stmts), result)

    def params(self, meta, items):
        return tuple(i for i in items if i is not None)

    def param(self, meta, items):
        name, default = items
        return A.Param(self._tok_span(name), str(name), default)

    def suite(self, meta, items):
        return [i for i in items if i is not None and not isinstance(i, Token)]

    def assign(self, meta, items):
        name, value = items
        return A.Assign(self._tok_span(name), str(name), value)

    def assert_stmt(self, meta, items):
        return A.Assert(self._span(meta), items[0], items[1])

    def return_stmt(self, meta, items):
        return A.Return(self._span(meta), items[0])

    def expr_stmt(self, meta, items):
        return A.ExprStmt(self._span(meta), items[0])

    # expressions
    def ifexp(self, meta, items):
        body, test, orelse = items
        return A.IfExp(self._span(meta), test, body, orelse)

    def or_(self, meta, items):
        return A.BinOp(self._span(meta), "or", items[0], items[1])

    def and_(self, meta, items):
        return A.BinOp(self._span(meta), "and", items[0], items[1])

    def not_(self, meta, items):
        return A.UnaryOp(self._span(meta), "not", items[0])

    def compare(self, meta, items):
        left, op, right = items
        return A.BinOp(self._tok_span(op), str(op), left, right)

    def binop(self, meta, items):
        left, op, right = items
        return A.BinOp(self._tok_span(op), "^" if op == "**" else str(op), left, right)

    def unary(self, meta, items):
        op, operand = items
        return A.UnaryOp(self._tok_span(op), str(op), operand)

    def call(self, meta, items):
        name, args = items
        args = args or ()
        pos = tuple(a for a in args if not isinstance(a, A.Keyword))
        kws = tuple(a for a in args if isinstance(a, A.Keyword))
        seen_kw = False
        for a in args:
            if isinstance(a, A.Keyword):
                seen_kw = True
            elif seen_kw:
                raise ParseError("positional argument follows keyword argument", a.span)
        return A.Call(self._tok_span(name), str(name), pos, kws)

    def arguments(self, meta, items):
        return tuple(i for i in items if i is not None)

    def kwarg(self, meta, items):
        name, value = items
        return A.Keyword(self._tok_span(name), str(name), value)

    def index(self, meta, items):
        value, subscripts = items
        return A.Index(self._span(meta), value, subscripts)

    def subscripts(self, meta, items):
        return tuple(i for i in items if i is not None)

    def slice(self, meta, items):
        start, stop, step = items
        return A.Slice(self._span(meta), start, stop, step)

    def ellipsis(self, meta, items):
        return A.EllipsisItem(self._span(meta))

    def tuple(self, meta, items):
        return A.Tuple(self._span(meta), tuple(i for i in items if i is not None))

    def name(self, meta, items):
        return A.Name(self._tok_span(items[0]), str(items[0]))

    def number(self, meta, items):
        tok = items[0]
        try:
            value = parse_number(str(tok))
        except ValueError as e:
            raise LimitError(f"{e}: {tok}", self._tok_span(tok)) from None
        return A.Number(self._tok_span(tok), value, str(tok))

    def string(self, meta, items):
        return A.String(self._tok_span(items[0]), _unquote(str(items[0])))

    def true(self, meta, items):
        return A.Constant(self._span(meta), True)

    def false(self, meta, items):
        return A.Constant(self._span(meta), False)

    def none(self, meta, items):
        return A.Constant(self._span(meta), None)


def _describe(tok: Token | None) -> str:
    if tok is None or tok.type == "$END":
        return "end of input"
    if tok.type in ("_NEWLINE", "_DEDENT"):
        return "end of line"
    if tok.type == "_INDENT":
        return "unexpected indentation"
    return f"'{tok}'"


def _next_code_line(source: str, after: int) -> int:
    """The first line after line ``after`` that holds more than blanks and a comment."""
    lines = source.splitlines()
    for number in range(after + 1, len(lines) + 1):
        if lines[number - 1].strip() and not lines[number - 1].lstrip().startswith("#"):
            return number
    return after


def _syntax_error(e: UnexpectedInput, source: str, file: str) -> ParseError:
    line, column = max(getattr(e, "line", 1) or 1, 1), max(getattr(e, "column", 1) or 1, 1)
    hint = None
    if isinstance(e, UnexpectedCharacters):
        text = source.split("\n")[line - 1] if line <= source.count("\n") + 1 else ""  # Lark counts only \n
        ch = text[column - 1] if column <= len(text) else "?"
        msg, hint = f"unexpected character '{ch}'", character_hint(ch)
    elif isinstance(e, (UnexpectedToken, UnexpectedEOF)):
        tok = getattr(e, "token", None)
        at_end = tok is None or tok.type == "$END" or tok.line is None
        if at_end:
            lines = source.rstrip("\n").splitlines() or [""]
            line, column = len(lines), len(lines[-1]) + 1
        before = tokens_before(_lark().lex, source, len(source) if at_end else tok.start_pos)
        previous = before[-1] if before else None
        expected_types = set(getattr(e, "expected", ()) or ())
        expected = sorted({_TOKEN_NAMES.get(t, repr(t.strip('"').lower())) for t in expected_types
                           if not t.startswith("__")})
        msg = f"unexpected {_describe(None if at_end else tok)}"
        if tok is not None and tok.type == "_INDENT":  # the token sits on the newline before the indented line
            msg = "unexpected indentation"
            line, column = _next_code_line(source, tok.line), len(tok.value) + 1
        operand = expression_expected(previous, expected_types)
        if operand:
            msg = f"{operand}, found {_describe(None if at_end else tok)}"
        elif 0 < len(expected) <= 6:
            msg += "; expected " + ", ".join(expected)
        elif expected_types & EXPRESSION_STARTS and not previous:
            msg += "; expected an expression"
        elif {"ADD_OP", "MUL_OP"} <= expected_types:
            msg += "; expected an operator" + (" or the end of the line" if "_NEWLINE" in expected_types else "")
        unclosed = open_parenthesis(before)
        if at_end and unclosed is not None:
            msg += f"; the '(' at line {unclosed.line}, column {unclosed.column} is never closed"
            hint = "add the missing ')'"
        elif tok is not None and tok.type == "RPAR" and unclosed is None:
            msg += "; there is no '(' for it to close"
        hint = keyword_hint(previous, None if at_end else tok) or hint
        if tok is not None and tok.type == "LSQB" and previous is not None and previous.type == "LSQB":
            hint = "an index holds integers, slices and '...'; take(x, labels, axis=k) gathers by an array of labels"
    else:
        msg = "syntax error"
    return ParseError(msg, Span(line, column, source, file), hint)


def _check_depth(tree) -> None:
    """Reject nesting deeper than MAX_DEPTH. A chain such as ``a + b + c`` is one level: its
    left-deep spine does not count, and the resolver walks it without recursion."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            meta = node.meta
            raise LimitError(f"expression nested deeper than {MAX_DEPTH} levels",
                             Span(getattr(meta, "line", 1), getattr(meta, "column", 1)))
        for i, c in enumerate(node.children):
            if hasattr(c, "children"):
                chain = i == 0 and node.data == "binop" and c.data == "binop"
                stack.append((c, depth if chain else depth + 1))


def parse(text: str, file: str = "<string>") -> A.Program:
    """Parse a program (definitions, bindings, and a final loss expression) into an AST."""
    if not isinstance(text, str):
        raise LossDSLError(f"source must be a string, not {type(text).__name__}")
    if len(text) > MAX_SOURCE_CHARS:
        raise LimitError(f"source longer than {MAX_SOURCE_CHARS} characters ({len(text)})", Span(1, 1, "", file))
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # Windows and old Mac line ends alike
    source = text if text.endswith("\n") else text + "\n"
    try:
        tree = _lark().parse(source)
    except UnexpectedInput as e:
        raise _syntax_error(e, source, file) from None
    except (ParseError, LimitError) as e:  # from the indenter, which does not see the source
        raise type(e)(e.message, Span(e.line or 1, e.column or 1, source, file)) from None
    try:
        _check_depth(tree)
    except LimitError as e:
        raise LimitError(e.message, Span(e.line, e.column, source, file)) from None
    try:
        return _ToAST(source, file).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, LossDSLError):
            raise e.orig_exc from None
        raise
