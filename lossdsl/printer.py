"""Phase 6, print: IR → Python source for one backend.

Expressions print through ``ExprPrinter`` (a visitor over SymPy types with an explicit
fallback); functions print through ``FunctionPrinter``, which schedules the ops a result needs,
shares common subexpressions between all of them (value and gradients alike, via ``sympy.cse``)
and copies in the runtime helpers it calls.
"""

from __future__ import annotations

import builtins
import keyword
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp

from .backend import BACKENDS, Backend
from .builtins import FUNCTION_NAMES, PRIMITIVES, maximum, minimum
from .checks import UNCHECKED
from .ir import Apply, Graph
from .representable import FLOAT64_MAX
from .rewrite import clamped_quadratics, share_logistic, stabilize

_ATOM, _POW, _UNARY, _MUL, _ADD, _CMP = 100, 60, 50, 40, 30, 20
_SHAPE_INLINE = 8  # leaves whose broadcast shape is printed where it is used; more, once in a variable


#: operands printed in one chain at most: Python's compiler recurses once per operator of a chain
#: (a + b + c is ((a + b) + c)), and a sum of 3,000 terms exceeds its recursion limit
_CHAIN = 64


def _balanced(chunks: list[str], op: str) -> str:
    """Chains joined pairwise in parentheses, so that the nesting grows with the log of their number."""
    while len(chunks) > 1:
        pairs = [chunks[i:i + 2] for i in range(0, len(chunks), 2)]
        chunks = [f"({p[0]}){op}({p[1]})" if len(p) == 2 else p[0] for p in pairs]
    return chunks[0]


class ExprPrinter:
    """Prints a SymPy expression as array code; every leaf symbol prints as its name."""

    def __init__(self, backend: Backend, small: Callable[[sp.Symbol], bool] = lambda s: False,
                 names: Mapping[str, str] | None = None):
        self.b = backend
        self.small = small  # which leaves are known to be smaller than the arrays: 0-d, or reduced
        self.names = {} if names is None else names  # inputs whose Python names differ (Signature.code)

    def __call__(self, e: sp.Basic) -> str:
        return self._p(e)[0]

    def _wrap(self, e: sp.Basic, prec: int) -> str:
        code, p = self._p(e)
        return code if p > prec else f"({code})"

    def _p(self, e: sp.Basic) -> tuple[str, int]:
        ns = self.b.alias
        if isinstance(e, sp.Symbol):
            return self.names.get(e.name, e.name), _ATOM
        if e is sp.true or e is sp.false:
            return str(bool(e)), _ATOM
        if e is sp.zoo:  # SymPy's complex infinity (log(0) in a gradient): undefined in real arithmetic
            return f"{self.b.alias}.nan", _ATOM
        if e.is_Number or isinstance(e, sp.NumberSymbol):
            return self._number(e)
        if isinstance(e, sp.Expr) and e.is_number and e.is_extended_real and math.isfinite(float(e)):
            return self._number(sp.Float(float(e)))  # log(2*pi) prints as one float, not a call on a number
        if isinstance(e, sp.Add):
            return self._add(e)
        if isinstance(e, sp.Mul):
            return self._mul(e)
        if isinstance(e, sp.Pow):
            return self._pow(e)
        if isinstance(e, sp.Piecewise):
            return self._piecewise(e.args), _ATOM
        if isinstance(e, sp.core.relational.Relational):
            op = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[e.rel_op]
            return f"{self._wrap(e.lhs, _CMP)} {op} {self._wrap(e.rhs, _CMP)}", _CMP
        if isinstance(e, (sp.And, sp.Or)):
            fn = f"{ns}.logical_and" if isinstance(e, sp.And) else f"{ns}.logical_or"
            codes = [self(a) for a in e.args]
            out = codes[0]
            for c in codes[1:]:
                out = f"{fn}({out}, {c})"
            return out, _ATOM
        if isinstance(e, sp.Not):
            return f"{ns}.logical_not({self(e.args[0])})", _ATOM
        if isinstance(e, sp.logic.boolalg.ITE):  # SymPy folds some conditions into if-then-else
            return f"{self.b.fn('where')}({self(e.args[0])}, {self(e.args[1])}, {self(e.args[2])})", _ATOM
        if isinstance(e, sp.Xor):
            codes = [self(a) for a in e.args]
            out = codes[0]
            for c in codes[1:]:
                out = f"{ns}.logical_xor({out}, {c})"
            return out, _ATOM
        if self.b.one_sided_clip and type(e) in (maximum, minimum):
            x, bound = e.args if e.args[1].is_Number else e.args[::-1]
            if bound.is_Number and not x.is_Number:
                bounds = (bound, sp.oo) if type(e) is maximum else (-sp.oo, bound)
                return self._call(f"{ns}.clip", (x, *bounds)), _ATOM
        printed = FUNCTION_NAMES.get(type(e))
        if printed is not None:
            return self._call(printed[self.b.name], e.args), _ATOM
        raise NotImplementedError(f"no {self.b.name} form for {type(e).__name__}: {e}")

    def _call(self, name: str, args: Sequence[sp.Basic]) -> str:
        """``name(args)``; on a backend with scratch arrays, an array-module function whose first
        argument (or, for the symmetric maximum and minimum, second) is a temporary writes over it."""
        if self.b.scratch and name.startswith(self.b.alias + ".") and name not in _NOT_IN_PLACE:
            if name in _SYMMETRIC and len(args) == 2 and not _temporary(args[0]) and _temporary(args[1]):
                args = args[::-1]
            if _temporary(args[0]):
                return f"_into({name}, {', '.join(self(a) for a in args)})"
        return f"{name}({', '.join(self(a) for a in args)})"

    def _number(self, e: sp.Basic) -> tuple[str, int]:
        value = float(e)  # inf or 0.0 where e is beyond float64's range
        if value != value:
            return f"{self.b.alias}.nan", _ATOM
        if math.isinf(value):  # the array module's name, which no input can take: never a bare inf
            code = f"{self.b.alias}.inf"
            return (code, _ATOM) if value > 0 else ("-" + code, _UNARY)
        # integers beyond int32 print as floats: JAX reads a Python int as a (weak) int32
        code = str(int(e)) if e.is_Integer and abs(e) < 2**31 else repr(value)
        return code, (_UNARY if code.startswith("-") else _ATOM)

    def _add(self, e: sp.Add) -> tuple[str, int]:
        # constants last (x - 1, not -1 + x), and a positive term first where there is one: 1 - x*y,
        # not -(x*y) + 1, which negates a whole array before adding
        terms = sorted(e.args, key=lambda t: t.is_Number)
        positive = next((t for t in terms if not t.could_extract_minus_sign()), None)
        if positive is not None and terms[0].could_extract_minus_sign():
            terms.remove(positive)
            terms.insert(0, positive)
        chunks = [self._terms(terms[i:i + _CHAIN]) for i in range(0, len(terms), _CHAIN)]
        return _balanced(chunks, " + "), _ADD

    def _terms(self, terms: list[sp.Expr]) -> str:
        out = self._wrap(terms[0], _ADD - 1) if not terms[0].could_extract_minus_sign() else self._p(terms[0])[0]
        for t in terms[1:]:
            if t.could_extract_minus_sign():
                out += " - " + self._wrap(-t, _ADD)
            else:
                out += " + " + self._wrap(t, _ADD)
        return out

    def _mul(self, e: sp.Mul) -> tuple[str, int]:
        """A product, with its small factors (numbers, counts, reductions) gathered so that
        ``2*r/n`` costs one pass over the array: ``r*(2/n)``, and ``-r*c/s**2``, with s a row sum,
        ``r*c*(-1/s**2)``."""
        coeff, factors = e.as_coeff_mul()
        negative = coeff < 0
        coeff = -coeff if negative else coeff
        num: dict[bool, list[sp.Expr]] = {True: [], False: []}  # keyed by "is small"
        den: dict[bool, list[sp.Expr]] = {True: [], False: []}
        if coeff.is_Rational and max(abs(coeff.p), coeff.q) <= FLOAT64_MAX:  # else 1e-310 would print as 1/inf
            if coeff.p != 1:
                num[True].append(sp.Integer(coeff.p))
            if coeff.q != 1:
                den[True].append(sp.Integer(coeff.q))
        elif coeff != 1:
            num[True].append(coeff)
        for f in factors:
            if isinstance(f, sp.Pow) and f.exp.is_Number and f.exp < 0:
                b = sp.Pow(f.base, -f.exp)
                den[self._is_small(b)].append(b)
            else:
                num[self._is_small(f)].append(f)
        # the sign joins the small factors: one pass over the array, where -(r*(2/n)) takes two
        signed = negative and (num[True] or den[True]) and (num[False] or den[False])
        if signed:
            negative = False
        elif negative and any(_flips(f) for f in num[False]):
            # the sign flips a difference among the factors: -((a - b)*c) is (b - a)*c, one pass fewer
            i = next(i for i, f in enumerate(num[False]) if _flips(f))
            num[False][i] = sp.Add(*(-t for t in num[False][i].args))
            negative = False
        if not (num[False] or den[False]):
            code, prec = self._fraction(num[True], den[True])
        else:
            code, prec = self._fraction(num[False], den[False])
            array = self._wrap_code(code, prec, _MUL - 1)
            small = self._fraction(num[True], den[True])
            if signed:  # -(2*n) is (-2)*n: no parentheses around a product of small factors
                small = "-" + self._wrap_code(small[0], small[1], _MUL - 1), _UNARY
            if den[True] and (num[True] or signed):
                code, prec = f"{array}*({small[0]})", _MUL
            elif den[True]:
                code, prec = f"{array}/{self._denominator(den[True])}", _MUL
            elif num[True]:
                code, prec = f"{self._wrap_code(*small, _MUL - 1)}*{array}", _MUL
        if negative:
            return self._negated(code, prec), min(prec, _UNARY)
        return code, prec

    def _negated(self, code: str, prec: int) -> str:
        return "-" + self._wrap_code(code, prec, _UNARY - 1 if prec >= _MUL else _UNARY)

    @staticmethod
    def _wrap_code(code: str, prec: int, floor: int) -> str:
        return code if prec > floor else f"({code})"

    def _is_small(self, e: sp.Expr) -> bool:
        return all(self.small(s) for s in e.free_symbols)

    def _denominator(self, den: list[sp.Expr]) -> str:
        if len(den) == 1:
            return self._wrap(den[0], _MUL)  # parenthesised once, where it needs to be
        return "(" + "*".join(self._wrap(f, _MUL) for f in den) + ")"

    def _fraction(self, num: list[sp.Expr], den: list[sp.Expr]) -> tuple[str, int]:
        if len(num) == 1 and not den:
            return self._p(num[0])
        factors = [self._wrap(f, _MUL) for f in num]
        code = _balanced(["*".join(factors[i:i + _CHAIN]) for i in range(0, len(factors), _CHAIN)], "*") if num else "1"
        return (code + "/" + self._denominator(den) if den else code), _MUL

    def _pow(self, e: sp.Pow) -> tuple[str, int]:
        base, exp = e.base, e.exp
        ns = self.b.alias
        if exp == sp.Rational(1, 2):
            return self._call(f"{ns}.sqrt", (base,)), _ATOM
        if exp == sp.Rational(-1, 2):
            return f"1/{self._call(f'{ns}.sqrt', (base,))}", _MUL
        if abs(exp) == sp.Rational(3, 2) and base.is_Atom:  # x*sqrt(x): two quick passes, where pow is ten times slower
            product = f"{self._wrap(base, _MUL)}*{self._call(f'{ns}.sqrt', (base,))}"
            return (product, _MUL) if exp > 0 else (f"1/({product})", _MUL)
        if exp.is_Number and exp < 0:
            inner = self._wrap(base, _POW) if exp == -1 else f"{self._wrap(base, _POW)}**{self._wrap(-exp, _POW)}"
            return f"1/{inner}", _MUL
        return f"{self._wrap(base, _POW)}**{self._wrap(exp, _POW)}", _POW

    def _piecewise(self, pieces: Sequence[tuple[sp.Expr, sp.Basic]]) -> str:
        (value, cond), rest = pieces[0], pieces[1:]
        if cond is sp.true or not rest:
            return self(value)
        # the otherwise-side is a temporary when it is an expression or itself a select
        other_temporary = _temporary(rest[0][0]) or (rest[0][1] is not sp.true and len(rest) > 1)
        scratch = ""
        if self.b.scratch and (_temporary(value) or other_temporary):
            scratch = ', "x"' if _temporary(value) else ', "y"'  # the array written over
        return f"{self.b.fn('where')}({self(cond)}, {self(value)}, {self._piecewise(rest)}{scratch})"


_SYMMETRIC = frozenset({"np.maximum", "np.minimum"})
_NOT_IN_PLACE = frozenset({"np.sign"})  # written over its own input it takes a branching loop: 21 ms, not 1.6


def _flips(e: sp.Basic) -> bool:
    """Whether ``e`` is a sum that prints with no more subtractions when negated (a - b as b - a)."""
    return isinstance(e, sp.Add) and 2 * sum(t.could_extract_minus_sign() for t in e.args) >= len(e.args)


def _temporary(e: sp.Basic) -> bool:
    """Whether ``e`` evaluates to a fresh array of its own: an expression, not a name or a number."""
    return not (e.is_Atom or isinstance(e, sp.NumberSymbol))


@dataclass(frozen=True)
class Signature:
    """The inputs a generated function takes, split by kind, and the name each has in the code."""

    inputs: tuple[str, ...]
    index_inputs: frozenset[str]
    code: Mapping[str, str] = field(default_factory=dict)  # inputs whose name in the code differs

    @classmethod
    def of(cls, graph: Graph) -> Signature:
        return cls(tuple(graph.inputs), frozenset(graph.index_inputs), code_names(graph.inputs))

    @property
    def float_inputs(self) -> tuple[str, ...]:
        return tuple(n for n in self.inputs if n not in self.index_inputs)

    def name(self, input_name: str) -> str:
        """The Python name of an input (``lambda`` is ``lambda_``: see ``code_names``)."""
        return self.code.get(input_name, input_name)

    def names(self, input_names: Sequence[str]) -> tuple[str, ...]:
        return tuple(map(self.name, input_names))


#: names that a generated function may read from its module or Python's builtins, or that Python
#: refuses as parameters: an input called so takes another name in the code (``code_names``)
TAKEN = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | frozenset().union(
    *(b.names for b in BACKENDS.values())) | frozenset(
    {"math", "loss", "grad", "value_and_grad", "SOURCE", "INPUTS", "ARGUMENTS", "DIFFERENTIABLE", "ROW_BLOCK"})


def code_names(inputs: Sequence[str]) -> dict[str, str]:
    """The inputs whose Python names differ from theirs, by construction never a name the code
    reads: ``lambda`` is ``lambda_`` (or ``lambda__``, if ``lambda_`` is an input too). Internal names
    all start with ``_``, which input names never do."""
    taken = set(TAKEN) | set(inputs)
    code = {}
    for n in inputs:
        if n in TAKEN:
            alias = n + "_"
            while alias in taken:
                alias += "_"
            code[n] = alias
            taken.add(alias)
    return code


class FunctionPrinter:
    """Prints functions of one graph for one backend, collecting the helpers they call."""

    def __init__(self, graph: Graph, backend: Backend, sig: Signature, checks: bool = True):
        """``checks``: whether the functions check values at call time (``within``, run-time index
        positions, labels, CTC's targets and lengths); without, they check shapes only."""
        self.graph, self.b, self.sig, self.checks = graph, backend, sig, checks
        self.smalls: set[sp.Symbol] = set()  # common subexpressions of small leaves only
        self.expr = ExprPrinter(backend, lambda s: s in self.smalls or graph.rank(s).small, sig.code)

    def shape(self, e: sp.Expr) -> str:
        shape = self.b.fn("shape")
        leaves = [self.sig.name(s.name) for s in sorted(e.free_symbols, key=lambda s: s.name)]
        if not leaves:
            return "()"
        if len(leaves) == 1:
            return f"{shape}({leaves[0]})"
        return f"{self.b.fn('broadcast_shapes')}({', '.join(f'{shape}({n})' for n in leaves)})"

    def body(self, outputs: Sequence[sp.Expr]) -> tuple[list[str], list[str]]:
        """Lines computing ``outputs`` from the inputs, and the code of each output."""
        g, sig = self.graph, self.sig
        # the checks on values the outputs read run with them (they stand beside the expressions)
        checks = g.checks_for(list(outputs)) if self.checks else []
        needed = [s for s in g.dependencies([*outputs, *checks]) if isinstance(g.op_of[s], Apply)]
        ops = [(s, g.op_of[s]) for s in needed]
        # operands a template reads only through {shapeK} are never computed
        original = [o for _, op in ops for k, o in enumerate(op.operands) if _computes(op, k, self.b)]
        compound = [clamped_quadratics(stabilize(e)) for e in original + list(outputs)]
        if self.b.shared_logistic:
            compound = share_logistic(compound, self.b.shared_logistic, self.b.tail_from_sigmoids)
        replacements, reduced_of = _common_subexpressions(tuple(compound))
        for sym, value in replacements:
            if all(s in self.smalls or g.rank(s).small for s in value.free_symbols):
                self.smalls.add(sym)
        pending = dict(replacements)
        lines: list[str] = []

        def ready(e: sp.Basic) -> None:
            for s in sorted(e.free_symbols & pending.keys(), key=lambda s: int(s.name[2:])):
                if s in pending:
                    value = pending.pop(s)
                    ready(value)
                    lines.append(f"{s.name} = {self.expr(value)}")

        lines.append(f"_dt = _float_dtype({', '.join(sig.names(sig.float_inputs))})")
        for name in sig.inputs:
            code = sig.name(name)
            kind = f"_as_index({code}, {name!r})" if name in sig.index_inputs else f"_as_float({code}, _dt)"
            lines.append(f"{code} = {kind}")
        # the broadcast shape of many leaves that several ops need (the sum_to of each term of a
        # long sum) is computed once
        shape_code: dict[sp.Expr, str] = {}
        for o in (o for _, op in ops for o in op.operands):
            if o not in shape_code:
                shape_code[o] = self.shape(o)
        uses = Counter(shape_code[o] for _, op in ops for o in op.operands)
        shared_shapes: dict[str, str] = {}

        def shape_of(e: sp.Expr) -> str:
            code = shape_code[e]
            if uses[code] == 1 or code.count(",") < _SHAPE_INLINE:
                return code
            if code not in shared_shapes:
                shared_shapes[code] = f"_s{len(shared_shapes)}"
                lines.append(f"{shared_shapes[code]} = {code}")
            return shared_shapes[code]

        k = 0
        for sym, op in ops:
            codes, shapes = [], []
            for i, operand in enumerate(op.operands):
                shapes.append(shape_of(operand))
                if not _computes(op, i, self.b):
                    codes.append("")
                    continue
                e = reduced_of[k]
                ready(e)
                codes.append(self.expr(e))
                k += 1
            fields = {f"shape{i}": s for i, s in enumerate(shapes)}
            fields["operands"], fields["shapes"] = ", ".join(codes), f"({', '.join(shapes)},)"  # variadic ops
            fields.update({name: repr(value) for name, value in op.params})
            variadic = PRIMITIVES[op.prim].variadic
            if variadic:  # the run-time operands of an index, as one tuple
                fields["rest"] = "(" + "".join(c + ", " for c in codes[variadic:]) + ")"
            fields["dtype"] = "_dt"
            if not self.checks and op.prim in UNCHECKED:  # the helper checks no values without a label
                fields[UNCHECKED[op.prim]] = "None"
            template = PRIMITIVES[op.prim].printed[self.b.name]
            lines.append(f"{sym.name} = {template.format(*codes, **fields)}")
        out_codes = []
        for e in reduced_of[k:]:
            ready(e)
            out_codes.append(self.expr(e))
        return lines, out_codes

    def function(self, name: str, lines: list[str], returns: str,
                 params: Sequence[str] | None = None, doc: str = "", guarded: bool = True) -> str:
        """A function of the inputs (keyword-only), or of ``params`` (Python names) in order;
        ``guarded``: its body runs under the backend's ``guard``."""
        keyword_only = params is None and bool(self.sig.inputs)
        params = self.sig.names(self.sig.inputs) if params is None else params
        head = f"def {name}({'*, ' if keyword_only else ''}{', '.join(params)}):"
        out = [head]
        if doc:
            out.append(f"    {doc!r}" if '"' in doc else f'    """{doc}"""')
        indent = "    "
        if self.b.guard and guarded:
            out.append(f"    with {self.b.guard}:")
            indent = "        "
        out += [indent + line for line in lines]
        out.append(indent + "return " + returns)
        return "\n".join(out)



def _shared_roots(replacements: list[tuple[sp.Symbol, sp.Expr]], reduced: list[sp.Expr],
                  names: Iterator[sp.Symbol]) -> tuple[list[tuple[sp.Symbol, sp.Expr]], list[sp.Expr]]:
    """After CSE: where one symbol's square root appears in two or more half-integer powers
    (pseudo-Huber's gradient ``r/sqrt(s)`` beside its Hessian ``s^(-3/2)``), the root computed once,
    as ``q = sqrt(s)``, and each power written through it (``r/q``, ``1/(s*q)``)."""
    everything = [v for _, v in replacements] + list(reduced)
    powers = {p for e in everything for p in e.atoms(sp.Pow)
              if p.base.is_Symbol and p.exp.is_Rational and p.exp.q == 2}
    bases = Counter(p.base for p in powers)
    roots = {b: next(names) for b, n in bases.items() if n >= 2}
    if not roots:
        return replacements, reduced
    forms = {p: p.base ** ((p.exp.p - 1) // 2) * roots[p.base] if p.exp > 0
             else p.base ** ((p.exp.p + 1) // 2) / roots[p.base] for p in powers if p.base in roots}
    defined = {s for s, _ in replacements}
    shared = [(q, sp.sqrt(b)) for b, q in roots.items() if b not in defined]  # a root of an input: first
    for s, v in replacements:  # a root of a subexpression: just after it
        shared.append((s, v.xreplace(forms)))
        if s in roots:
            shared.append((roots[s], sp.sqrt(s)))
    return shared, [e.xreplace(forms) for e in reduced]

def _computes(op: Apply, k: int, backend: Backend) -> bool:
    """Whether ``op``'s printed form uses operand ``k``'s value, not just its shape."""
    spec = PRIMITIVES[op.prim]
    template = spec.printed[backend.name]
    return f"{{{k}}}" in template or (0 < spec.variadic <= k and "{rest}" in template) or "{operands}" in template


@lru_cache(maxsize=512)
def _common_subexpressions(compound: tuple[sp.Expr, ...]) -> tuple[list[tuple[sp.Symbol, sp.Expr]], list[sp.Expr]]:
    """``sympy.cse`` of ``compound``: memoised, since every backend but NumPy (shared_logistic) prints
    the same expressions, and CSE is most of printing's time. The callers read the lists only."""
    names = sp.numbered_symbols("_c", real=True)
    replacements, reduced = sp.cse(list(compound), symbols=names, order="none")
    return _shared_roots(replacements, reduced, names)
