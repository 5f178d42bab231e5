"""Safe parser for user nonlinearities φ(z) given as strings (no ``eval`` of user text).

``parse_phi(text)`` reads the string with :func:`ast.parse` in ``"eval"`` mode (parsing
executes nothing), walks the syntax tree and builds the sympy expression node by node from a
whitelist; any other construct raises ``ValueError`` naming the offending token. The grammar:

* the symbol ``z``; numeric literals (int or float, |value| ≤ :data:`MAX_LITERAL`);
  the constants ``pi`` and ``E``; ``True`` / ``False`` (Piecewise conditions);
* unary ``+ -``; binary ``+ - * / **`` (``^`` is refused with a hint to write ``**``);
* comparisons ``< <= > >= == !=`` (chains such as ``0 < z < 1`` mean ``And``) and the boolean
  operators ``& | ~`` on conditions;
* calls, positional arguments only, of the functions in :data:`FUNCTIONS` — exactly those that
  the stack-program compiler (:mod:`meanfield._sympy_program`) can evaluate, with their arity.

Limits that keep sympy from hanging: at most :data:`MAX_LENGTH` characters and
:data:`MAX_NODES` syntax nodes; a constant exponent of an expression in ``z`` is at most
:data:`MAX_EXPONENT` in magnitude; every constant subexpression must be a finite real float64
(so ``9**9**9`` or ``exp(exp(1000))`` is refused before sympy evaluates it).
"""
from __future__ import annotations

import ast
import math

import sympy as sp

from ._sympy_program import LOCALS, z

__all__ = ["parse_phi", "FUNCTIONS", "MAX_LENGTH", "MAX_NODES", "MAX_LITERAL", "MAX_EXPONENT"]

MAX_LENGTH = 1000
MAX_NODES = 300
MAX_LITERAL = 1e6
MAX_EXPONENT = 100
_MAX_CONST = 1e300      # constants beyond this would overflow in φ, φ' or φ''

_NUM, _BOOL = "expression", "condition"
_ARTICLE = {_NUM: "an expression", _BOOL: "a condition (comparison)"}


def _heaviside(x, h0=0.5):
    return h0 if x == 0 else float(x > 0)


# name: (sympy function, min args, max args (None: any), argument kind, float function for constants)
FUNCTIONS = {
    "exp": (sp.exp, 1, 1, _NUM, math.exp),
    "log": (sp.log, 1, 2, _NUM, math.log),
    "log1p": (LOCALS["log1p"], 1, 1, _NUM, math.log1p),
    "expm1": (LOCALS["expm1"], 1, 1, _NUM, math.expm1),
    "sqrt": (sp.sqrt, 1, 1, _NUM, math.sqrt),
    "Abs": (sp.Abs, 1, 1, _NUM, abs),
    "sign": (sp.sign, 1, 1, _NUM, lambda x: float((x > 0) - (x < 0))),
    "tanh": (sp.tanh, 1, 1, _NUM, math.tanh),
    "sinh": (sp.sinh, 1, 1, _NUM, math.sinh),
    "cosh": (sp.cosh, 1, 1, _NUM, math.cosh),
    "sin": (sp.sin, 1, 1, _NUM, math.sin),
    "cos": (sp.cos, 1, 1, _NUM, math.cos),
    "tan": (sp.tan, 1, 1, _NUM, math.tan),
    "atan": (sp.atan, 1, 1, _NUM, math.atan),
    "asinh": (sp.asinh, 1, 1, _NUM, math.asinh),
    "erf": (sp.erf, 1, 1, _NUM, math.erf),
    "erfc": (sp.erfc, 1, 1, _NUM, math.erfc),
    "Max": (sp.Max, 1, None, _NUM, max),
    "Min": (sp.Min, 1, None, _NUM, min),
    "Heaviside": (sp.Heaviside, 1, 2, _NUM, _heaviside),
    "Piecewise": (sp.Piecewise, 1, None, None, None),
    "Eq": (sp.Eq, 2, 2, _NUM, None),       # what sympy prints for == and != (so printed φ parse back)
    "Ne": (sp.Ne, 2, 2, _NUM, None),
    "And": (sp.And, 2, None, _BOOL, None),
    "Or": (sp.Or, 2, None, _BOOL, None),
    "Not": (sp.Not, 1, 1, _BOOL, None),
}
_CONSTANTS = {"pi": (sp.pi, math.pi), "E": (sp.E, math.e)}
_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_COMPARE = {ast.Lt: sp.StrictLessThan, ast.LtE: sp.LessThan, ast.Gt: sp.StrictGreaterThan,
            ast.GtE: sp.GreaterThan, ast.Eq: sp.Eq, ast.NotEq: sp.Ne}
_OTHER_OPS = {ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
              ast.Not: "not", ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}
_WHAT = {"Attribute": "attribute access", "Subscript": "subscript", "Lambda": "lambda", "BoolOp": "and/or in",
         "Tuple": "a tuple (only Piecewise((value, condition), ...) takes pairs):", "List": "a list",
         "Dict": "a dict", "Set": "a set", "ListComp": "a comprehension", "SetComp": "a comprehension",
         "DictComp": "a comprehension", "GeneratorExp": "a generator", "IfExp": "if/else in",
         "NamedExpr": "assignment", "JoinedStr": "an f-string", "Starred": "a starred argument",
         "Await": "await", "Yield": "yield", "YieldFrom": "yield", "Slice": "a slice"}
ALLOWED = ("the symbol z; numbers (|x| <= 1e6); pi, E; + - * / ** (not ^); comparisons < <= > >= == != "
           "and & | ~ inside Piecewise conditions; the functions " + ", ".join(FUNCTIONS))


class _Node:
    """A parsed subexpression: sympy ``expr``, its ``kind`` and, if it has no z, its float ``value``."""
    __slots__ = ("expr", "kind", "value")

    def __init__(self, expr, kind, value=None):
        self.expr, self.kind, self.value = expr, kind, value


def parse_phi(text):
    """Parse a user nonlinearity string into a sympy expression in :data:`z` (never evaluates it).

    Parameters
    ----------
    text : str
        The expression, e.g. ``"tanh(z)"`` or ``"Piecewise((z, z > 0), (0.1*z, True))"``.

    Returns
    -------
    sympy.Expr

    Raises
    ------
    ValueError
        A syntax error, a construct outside the grammar (the message names the token and lists
        what is allowed), or a limit exceeded (length, size, exponent, constant overflow).
    """
    if not isinstance(text, str):
        raise TypeError(f"name must be a str, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"name: the expression has {len(text)} characters, at most {MAX_LENGTH} are allowed")
    source = text.strip()
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        hint = " (write powers as **, not ^)" if "^" in source else ""
        raise ValueError(f"name: cannot parse {text!r}: {getattr(exc, 'msg', exc)}{hint}") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise ValueError(f"name: the expression has {count} syntax nodes, at most {MAX_NODES} are allowed")
    try:
        node = _Builder(source).build(tree.body)
    except (TypeError, ArithmeticError, AttributeError, RecursionError, NotImplementedError) as exc:
        raise ValueError(f"name: cannot build {text!r} as an expression in z ({type(exc).__name__}: {exc})") from None
    if node.kind != _NUM:
        raise ValueError(f"name: {text!r} is a condition, not an expression in z")
    big = [p for p in node.expr.atoms(sp.Pow) if p.exp.is_Integer and abs(p.exp) > MAX_EXPONENT]
    if big:     # sympy merges (z**a)**b into z**(a*b)
        raise ValueError(f"name: the power {sp.sstr(big[0])} has an exponent beyond ±{MAX_EXPONENT}")
    return node.expr


class _Builder:
    """Walks the syntax tree of ``source`` and builds sympy nodes from the whitelist only."""

    def __init__(self, source):
        self.source = source

    def fail(self, node, what):
        token = ast.get_source_segment(self.source, node) or type(node).__name__
        raise ValueError(f"name: {what} {token!r} is not allowed in an expression; allowed: {ALLOWED}")

    def build(self, node):
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            self.fail(node, _WHAT.get(type(node).__name__, type(node).__name__))
        return method(node)

    def expect(self, node, kind):
        out = self.build(node)
        if out.kind != kind:
            token = ast.get_source_segment(self.source, node)
            raise ValueError(f"name: {token!r} is {_ARTICLE[out.kind]} where {_ARTICLE[kind]} is expected")
        return out

    def constant(self, node, expr, thunk):
        """A node without z: its float value must exist and be finite (checked before sympy sees it)."""
        try:
            value = float(thunk())
        except (OverflowError, ValueError, ZeroDivisionError, TypeError):
            value = math.nan
        if not math.isfinite(value) or abs(value) > _MAX_CONST:
            token = ast.get_source_segment(self.source, node)
            raise ValueError(f"name: the constant {token!r} is not a finite real number")
        return _Node(expr() if callable(expr) else expr, _NUM, value)

    # --- leaves ------------------------------------------------------------------------------
    def _Constant(self, node):
        v = node.value
        if isinstance(v, bool):
            return _Node(sp.true if v else sp.false, _BOOL)
        if not isinstance(v, (int, float)):
            self.fail(node, f"the {type(v).__name__} literal")
        if not abs(v) <= MAX_LITERAL:
            self.fail(node, f"a number beyond ±{MAX_LITERAL:g}:")
        return _Node(sp.Integer(v) if isinstance(v, int) else sp.Float(v), _NUM, float(v))

    def _Name(self, node):
        if node.id == "z":
            return _Node(z, _NUM)
        if node.id in _CONSTANTS:
            expr, value = _CONSTANTS[node.id]
            return _Node(expr, _NUM, value)
        if node.id in FUNCTIONS:
            self.fail(node, "the function name without a call (write e.g. exp(z))")
        self.fail(node, "the name")

    # --- operators ---------------------------------------------------------------------------
    def _UnaryOp(self, node):
        if isinstance(node.op, ast.Invert):
            return _Node(sp.Not(self.expect(node.operand, _BOOL).expr), _BOOL)
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            self.fail(node, f"the operator {_OTHER_OPS.get(type(node.op), type(node.op).__name__)!r} in")
        a = self.expect(node.operand, _NUM)
        if isinstance(node.op, ast.UAdd):
            return a
        return _Node(-a.expr, _NUM, None if a.value is None else -a.value)

    def _BinOp(self, node):
        op = type(node.op)
        if op in (ast.BitAnd, ast.BitOr):
            a, b = self.expect(node.left, _BOOL), self.expect(node.right, _BOOL)
            return _Node((sp.And if op is ast.BitAnd else sp.Or)(a.expr, b.expr), _BOOL)
        if op is ast.BitXor:
            token = ast.get_source_segment(self.source, node)
            raise ValueError(f"name: '^' in {token!r} is not allowed: write powers as ** (e.g. z**2)")
        if op not in _BINARY:
            self.fail(node, f"the operator {_OTHER_OPS.get(op, op.__name__)!r} in")
        a, b = self.expect(node.left, _NUM), self.expect(node.right, _NUM)
        if op is ast.Pow:
            return self._pow(node, a, b)
        make = {ast.Add: lambda x, y: x + y, ast.Sub: lambda x, y: x - y, ast.Mult: lambda x, y: x * y,
                ast.Div: lambda x, y: x / y}[op]
        if a.value is not None and b.value is not None:
            return self.constant(node, lambda: make(a.expr, b.expr), lambda: make(a.value, b.value))
        return _Node(make(a.expr, b.expr), _NUM)

    def _pow(self, node, base, ex):
        if base.value is not None and ex.value is not None:
            return self.constant(node, lambda: base.expr ** ex.expr, lambda: math.pow(base.value, ex.value))
        if ex.value is not None and abs(ex.value) > MAX_EXPONENT:
            token = ast.get_source_segment(self.source, node)
            raise ValueError(f"name: the exponent in {token!r} is {ex.value:g}; at most {MAX_EXPONENT} "
                             "in magnitude is allowed")
        return _Node(base.expr ** ex.expr, _NUM)

    def _Compare(self, node):
        parts = []
        left = self.expect(node.left, _NUM)
        for op, right_node in zip(node.ops, node.comparators):
            if type(op) not in _COMPARE:
                self.fail(node, f"the comparison {_OTHER_OPS.get(type(op), type(op).__name__)!r} in")
            right = self.expect(right_node, _NUM)
            parts.append(_COMPARE[type(op)](left.expr, right.expr))
            left = right
        return _Node(sp.And(*parts) if len(parts) > 1 else parts[0], _BOOL)

    # --- calls -------------------------------------------------------------------------------
    def _Call(self, node):
        if not isinstance(node.func, ast.Name):
            self.fail(node.func, "calling")
        name = node.func.id
        if name not in FUNCTIONS:
            self.fail(node.func, "the function")
        if node.keywords:
            self.fail(node.keywords[0], "the keyword argument")
        if any(isinstance(a, ast.Starred) for a in node.args):
            self.fail(node, "a starred argument in")
        func, lo, hi, kind, fn = FUNCTIONS[name]
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi else f"at least {lo}"
            raise ValueError(f"name: {name} takes {want} argument(s), got {n} in "
                             f"{ast.get_source_segment(self.source, node)!r}")
        if name == "Piecewise":
            return self._piecewise(node)
        args = [self.expect(a, kind) for a in node.args]
        exprs = [a.expr for a in args]
        if kind == _BOOL or name in ("Eq", "Ne"):
            return _Node(func(*exprs), _BOOL)
        if name == "Heaviside" and n == 2 and args[1].value is None:
            raise ValueError("name: the second argument of Heaviside (its value at 0) must be a number")
        if all(a.value is not None for a in args):
            return self.constant(node, lambda: func(*exprs), lambda: fn(*(a.value for a in args)))
        return _Node(func(*exprs), _NUM)

    def _piecewise(self, node):
        pieces = []
        for arg in node.args:
            if not (isinstance(arg, ast.Tuple) and len(arg.elts) == 2):
                self.fail(arg, "a Piecewise argument that is not a (value, condition) pair:")
            pieces.append((self.expect(arg.elts[0], _NUM).expr, self.expect(arg.elts[1], _BOOL).expr))
        try:
            expr = sp.Piecewise(*pieces)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"name: invalid Piecewise {ast.get_source_segment(self.source, node)!r}: {exc}") from None
        if z not in expr.free_symbols:      # a branch chosen by constant conditions: bounded already
            value = (lambda: complex(expr.evalf(20)).real) if expr.is_number else (lambda: math.nan)
            return self.constant(node, lambda: expr, value)
        return _Node(expr, _NUM)
