"""Compiler from a sympy expression φ(z) to the stack program of :mod:`meanfield._kernels.program`.

``compile_program(expr, kinks)`` differentiates φ twice with sympy and emits postfix code for
φ, φ', φ'' (common subexpressions computed once, in registers). Before differentiating,
expressions that overflow or cancel in floating point are rewritten to stable primitives:
log(1 + e^u) → softplus(u), 1/(1 + e^u) → σ(−u), e^u σ(−u) → σ(u), and tanh gets the
derivative sech² = 1/cosh² (sympy's 1 − tanh² has no correct digit left at |u| ≈ 18).
Dirac deltas from differentiating kinks are dropped (φ'' at a kink is the one-sided value).
"""
from __future__ import annotations

import math

import numpy as np
import sympy as sp
from mpmath.libmp import prec_to_dps
from sympy.codegen.cfunctions import expm1 as _sp_expm1
from sympy.codegen.cfunctions import log1p as _sp_log1p

from ._kernels import program as _pk

z = sp.Symbol("z", real=True)
LOCALS = {"z": z, "log1p": _sp_log1p, "expm1": _sp_expm1}     # for parsing strings

__all__ = ["z", "LOCALS", "compile_program", "kinks_of"]


class _RealFunction(sp.Function):
    """A real function of a real argument (so that sympy differentiates |f| as sign(f) f')."""

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def _eval_evalf(self, prec):
        return _standard(self).evalf(prec_to_dps(prec))


class _Sigmoid(_RealFunction):
    """Logistic 1/(1 + e^{-u}); compiled to an overflow-free kernel."""

    def fdiff(self, argindex=1):
        u = self.args[0]
        return _Sigmoid(u) * _Sigmoid(-u)


class _Softplus(_RealFunction):
    """log(1 + e^u); compiled to an overflow-free kernel."""

    def fdiff(self, argindex=1):
        return _Sigmoid(self.args[0])


class _Sech2(_RealFunction):
    """sech²(u) = 1 − tanh²(u), compiled as 1/cosh² (no cancellation for large |u|)."""

    def fdiff(self, argindex=1):
        return -2 * _Tanh(self.args[0]) * _Sech2(self.args[0])


class _Tanh(_RealFunction):
    """tanh with derivative sech² (sympy's 1 − tanh² loses all digits at |u| ≳ 18)."""

    def fdiff(self, argindex=1):
        return _Sech2(self.args[0])


def _derivatives(expr):
    """φ, φ', φ'' with stable special functions (:func:`_stabilize`) and Dirac deltas dropped."""
    e0 = _stabilize(expr)
    e1 = sp.diff(e0, z)
    e2 = sp.diff(e1, z)
    drop = (lambda e: e.func == sp.DiracDelta, lambda e: sp.S.Zero)
    return [e.replace(*drop) for e in (e0, e1, e2)]


def _standard(expr):
    """Undo :func:`_stabilize` (for evaluating constant subexpressions)."""
    return expr.replace(_Tanh, sp.tanh).replace(_Sech2, lambda u: 1 / sp.cosh(u) ** 2).replace(
        _Sigmoid, lambda u: 1 / (1 + sp.exp(-u))).replace(_Softplus, lambda u: sp.log(1 + sp.exp(u)))


def _one_plus_exp(a):
    """u if ``a`` is 1 + exp(u), else None."""
    if a.is_Add and len(a.args) == 2 and sp.S.One in a.args:
        other = a.args[0] if a.args[1] == 1 else a.args[1]
        if other.func == sp.exp:
            return other.args[0]
    return None


def _stabilize(expr):
    """Rewrite log(1 + e^u) → softplus(u), 1/(1 + e^u) → σ(−u), e^u σ(−u) → σ(u), and tanh to a
    function whose derivative is sech², so that φ, φ', φ'' have no overflow or cancellation."""
    expr = expr.replace(lambda e: e.func == sp.tanh and z in e.free_symbols, lambda e: _Tanh(e.args[0]))
    expr = expr.replace(lambda e: e.func == sp.log and len(e.args) == 1 and _one_plus_exp(e.args[0]) is not None,
                        lambda e: _Softplus(_one_plus_exp(e.args[0])))
    expr = expr.replace(lambda e: e.is_Pow and e.exp == -1 and _one_plus_exp(e.base) is not None,
                        lambda e: _Sigmoid(-_one_plus_exp(e.base)))

    def pair(e):
        if not e.is_Mul:
            return None
        for f in e.args:
            if f.func == sp.exp and _Sigmoid(-f.args[0]) in e.args:
                return f
        return None

    return expr.replace(lambda e: pair(e) is not None,
                        lambda e: e / pair(e) / _Sigmoid(-pair(e).args[0]) * _Sigmoid(pair(e).args[0]))


def kinks_of(expr):
    """Real points where a polynomial argument of Heaviside/Abs/sign/Max/Min/Piecewise changes
    sign (and 0): the quadrature splits its panels there."""
    eqs = []
    for e in sp.preorder_traversal(expr):
        if e.func in (sp.Heaviside, sp.Abs, sp.sign, sp.DiracDelta):
            eqs.append(e.args[0])
        elif e.func in (sp.Max, sp.Min):
            eqs.extend(a - b for a, b in zip(e.args, e.args[1:]))
        elif isinstance(e, sp.core.relational.Relational):
            eqs.append(e.lhs - e.rhs)
    points = {0.0}
    for q in eqs:     # polynomial switching conditions only (solveset can take minutes otherwise)
        if z not in q.free_symbols or not q.is_polynomial(z) or sp.degree(q, z) > 4:
            continue
        try:
            sol = sp.solveset(q, z, domain=sp.S.Reals)
        except Exception:   # noqa: BLE001 — kinks are an accuracy aid, never required
            continue
        if isinstance(sol, sp.FiniteSet):
            points.update(float(s) for s in sol if s.is_real and abs(float(s)) < 1e6)
    return tuple(sorted(points))[:32]


# --- compiler: sympy → stack program --------------------------------------------------------

_UNARY = {sp.exp: _pk.OP_EXP, sp.log: _pk.OP_LOG, _sp_log1p: _pk.OP_LOG1P, _sp_expm1: _pk.OP_EXPM1,
          sp.Abs: _pk.OP_ABS, sp.sign: _pk.OP_SIGN, sp.tanh: _pk.OP_TANH, sp.sin: _pk.OP_SIN,
          sp.cos: _pk.OP_COS, sp.tan: _pk.OP_TAN, sp.sinh: _pk.OP_SINH, sp.cosh: _pk.OP_COSH,
          sp.atan: _pk.OP_ATAN, sp.asinh: _pk.OP_ASINH, sp.erf: _pk.OP_ERF, sp.erfc: _pk.OP_ERFC,
          _Sigmoid: _pk.OP_SIGMOID, _Softplus: _pk.OP_SOFTPLUS, _Tanh: _pk.OP_TANH, _Sech2: _pk.OP_SECH2,
          sp.Not: _pk.OP_NOT}
_NARY = {sp.Max: _pk.OP_MAX, sp.Min: _pk.OP_MIN, sp.And: _pk.OP_AND, sp.Or: _pk.OP_OR}
_RELATIONAL = {sp.StrictLessThan: _pk.OP_LT, sp.LessThan: _pk.OP_LE, sp.StrictGreaterThan: _pk.OP_GT,
               sp.GreaterThan: _pk.OP_GE, sp.Equality: _pk.OP_EQ, sp.Unequality: _pk.OP_NE}


class _Emitter:
    """Postfix code for one sub-program, with its stack depth and registers."""

    def __init__(self):
        self.code = []
        self.depth = self.max_depth = 0
        self.registers = {}

    def op(self, op, arg=0.0):
        self.code += [float(op), float(arg)]
        self.depth += _pk.STACK_EFFECT[op]
        self.max_depth = max(self.max_depth, self.depth)

    def chain(self, args, op):
        self.emit(args[0])
        for a in args[1:]:
            self.emit(a)
            self.op(op)

    def emit(self, e):
        if e in self.registers:
            return self.op(_pk.OP_LOAD, self.registers[e])
        if e == z:
            return self.op(_pk.OP_Z)
        if e in (sp.true, sp.false):
            return self.op(_pk.OP_CONST, 1.0 if e == sp.true else 0.0)
        if e.is_number:
            value = complex(e.evalf(20))
            if value.imag != 0.0:
                raise ValueError(f"name: the expression has the complex constant {e}")
            return self.op(_pk.OP_CONST, value.real)
        if e.is_Add:
            const, rest = e.as_coeff_Add()
            terms = sp.Add.make_args(rest)
            self.emit(terms[0])
            for t in terms[1:]:
                neg = t.could_extract_minus_sign()
                self.emit(-t if neg else t)
                self.op(_pk.OP_SUB if neg else _pk.OP_ADD)
            return self.op(_pk.OP_ADDC, float(const)) if const != 0 else None
        if e.is_Mul:
            return self._mul(e)
        if e.is_Pow:
            return self._pow(e.base, e.exp)
        if e.func in _UNARY and len(e.args) == 1:
            self.emit(e.args[0])
            return self.op(_UNARY[e.func])
        if e.func in _NARY:
            return self.chain(e.args, _NARY[e.func])
        if e.func in _RELATIONAL:
            return self.chain([e.lhs, e.rhs], _RELATIONAL[e.func])
        if e.func == sp.Heaviside:
            self.emit(e.args[0])
            return self.op(_pk.OP_HEAVISIDE, float(sp.Heaviside(0, *e.args[1:])))
        if e.func == sp.Piecewise:
            return self._piecewise(e.args)
        raise ValueError(f"name: cannot compile {type(e).__name__} in the expression ({e})")

    def _mul(self, e):
        coeff, rest = e.as_coeff_Mul()
        factors = sp.Mul.make_args(rest)
        num = [f for f in factors if not (f.is_Pow and f.exp.is_number and f.exp < 0)]
        den = [1 / f for f in factors if f not in num]
        if num:
            self.chain(num, _pk.OP_MUL)
        else:
            self.op(_pk.OP_CONST, float(coeff))
            coeff = sp.S.One
        for f in den:
            self.emit(f)
            self.op(_pk.OP_DIV)
        if coeff == -1:
            self.op(_pk.OP_NEG)
        elif coeff != 1:
            self.op(_pk.OP_MULC, float(coeff))

    def _pow(self, base, ex):
        self.emit(base)
        if ex.is_Integer and abs(int(ex)) < 2 ** 31:
            self.op(_pk.OP_POWI, int(ex))
        elif ex == sp.Rational(1, 2) or ex == sp.Rational(-1, 2):
            self.op(_pk.OP_SQRT)
            if ex < 0:
                self.op(_pk.OP_POWI, -1)
        else:
            self.emit(ex)
            self.op(_pk.OP_POW)

    def _piecewise(self, pieces):
        (value, cond), rest = pieces[0], pieces[1:]
        if cond == sp.true:
            return self.emit(value)
        self.emit(cond)
        self.emit(value)
        if rest:
            self._piecewise(rest)
        else:
            self.op(_pk.OP_CONST, math.nan)     # undefined outside the listed conditions
        self.op(_pk.OP_SELECT)


def compile_program(expr, kinks=()):
    """Compile φ (a sympy expression in ``z``) with φ' and φ'' into a stack program.

    Returns the float64 array described in :mod:`meanfield._kernels.program`.
    """
    subs, stack, nreg = [], 0, 0
    for e in _derivatives(expr):
        replacements, (reduced,) = sp.cse(e, symbols=sp.numbered_symbols("_r"))
        em = _Emitter()
        for sym, sub in replacements:
            em.emit(sub)
            em.registers[sym] = len(em.registers)
            em.op(_pk.OP_STORE, em.registers[sym])
        em.emit(reduced)
        if em.depth != 1:
            raise ValueError(f"name: internal compiler error (stack depth {em.depth}) for {e}")
        subs.append(em.code)
        stack, nreg = max(stack, em.max_depth), max(nreg, len(em.registers))
    if stack > _pk.STACK_SIZE or nreg > _pk.N_REGISTERS:
        raise ValueError(f"name: expression too large to compile (stack {stack}, registers {nreg})")
    offsets, body = [], []
    for code in subs:
        offsets.append(_pk.HEADER + len(body))
        body += [len(code) // 2] + code
    kink_offset = _pk.HEADER + len(body)
    header = [3.0, *offsets, kink_offset, stack, nreg, _pk.VERSION]
    return np.array(header + body + [len(kinks), *kinks], dtype=np.float64)
