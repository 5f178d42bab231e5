"""Nonlinearities φ: one object per φ carrying everything the theory needs.

``nonlinearity(name)`` returns a :class:`Nonlinearity` for a built-in name
(``"linear"``, ``"erf"``, ``"relu"``, ``"softplus"``, ``"relu2"``) or for a
user expression in the symbol ``z`` (a sympy expression or a string such as
``"tanh(z)"``, read by the whitelisted parser :mod:`meanfield._expr_parser`, never
by ``eval``). A user φ is differentiated by sympy and compiled, with φ' and
φ'', into a stack program evaluated by numba (:mod:`meanfield._kernels.program`),
so it runs inside every kernel (sampler, integrals) like a built-in. It must be
real and finite with a finite Gaussian second moment (:mod:`meanfield._admissible`);
grammar and rules: docs/nonlinearities.md.

The object carries φ, φ', φ'' (vectorized), the tilted Gaussian integrals
g(h) = log ∫Dz e^{hφ(z)} and its derivatives (THEORY.md §2.2,
:mod:`meanfield.integrators`), the range of φ, its degree of homogeneity and the
paper's readout-prior scaling σ_a² (THEORY.md §1).
"""
from __future__ import annotations

import math
import re

import numpy as np
import sympy as sp

from ._admissible import check_admissible
from ._expr_parser import parse_phi
from ._kernels import phi as _phik
from ._sympy_program import compile_program, kinks_of, z
from ._validation import check_int

__all__ = ["Nonlinearity", "nonlinearity", "default_sigma_a2", "compile_program", "z"]


_BUILTINS = {   # name: (code, φ as sympy, range, homogeneous degree)
    "linear": (_phik.LINEAR, z, (-math.inf, math.inf), 1),
    "erf": (_phik.ERF, (1 + sp.erf(sp.sqrt(sp.pi) * z / 2)) / 2, (0.0, 1.0), None),
    "relu": (_phik.RELU, sp.Max(0, z), (0.0, math.inf), 1),
    "softplus": (_phik.SOFTPLUS, sp.log(1 + sp.exp(z)), (0.0, math.inf), None),
    "relu2": (_phik.RELU2, sp.Max(0, z) ** 2, (0.0, math.inf), 2),
}
_BUILTIN_KINKS = {"relu": (0.0,), "relu2": (0.0,)}
_BUILTIN_CACHE = {}      # one shared (immutable) object per built-in name


class Nonlinearity:
    """A pointwise nonlinearity φ and everything the mean-field theory needs about it.

    Create with :func:`nonlinearity`; do not instantiate directly.

    Attributes
    ----------
    name : str
        Built-in name, or the user expression printed by sympy.
    code : int
        Kernel dispatch code (:mod:`meanfield._kernels.phi`).
    prog : ndarray
        Compiled stack program (user φ) or a one-element placeholder (built-ins).
    expr : sympy.Expr
        φ as a sympy expression in :data:`meanfield.nonlinearities.z` (real).
    kinks : tuple of float
        Points where φ, φ' or φ'' jump (quadrature panels are split there).
    """

    def __init__(self, name, code, expr, prog, kinks, range_=None, degree=None):
        self.name = name
        self.code = int(code)
        self.expr = expr
        self.prog = prog
        self.kinks = tuple(kinks)
        self._range = range_
        self._degree = degree if code != _phik.USER else _UNSET

    # --- pointwise values -------------------------------------------------------------------
    def _apply(self, x, which):
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"z must be a real number or array, got {type(x).__name__}") from exc
        flat = np.ascontiguousarray(arr.ravel())
        out = _phik.apply_phi_1d(self.code, self.prog, flat, which).reshape(arr.shape)
        return float(out) if arr.ndim == 0 else out

    def phi(self, x):
        """φ(z), elementwise on a float or array."""
        return self._apply(x, 0)

    def dphi(self, x):
        """φ'(z), elementwise (built-in kinks: the right limit is not used; φ'(0) = 0 for ReLU)."""
        return self._apply(x, 1)

    def d2phi(self, x):
        """φ''(z), elementwise (distributional parts at kinks are dropped)."""
        return self._apply(x, 2)

    def tilted(self, h):
        """Tilted Gaussian integrals ``(g, g', g'')`` at ``h``; see :func:`meanfield.integrators.tilted_moments`."""
        from .integrators import tilted_moments
        return tilted_moments(self, h)

    # --- properties the theory uses ------------------------------------------------------------
    @property
    def range(self):
        """(inf, sup) of φ over the real line (floats; ±inf when unbounded).

        Exact for built-ins; estimated numerically for user φ (extrema on [−50, 50] to ≈ 1e-12,
        growth and limits from |z| = 1e3, 1e6, 1e9; an extremum narrower than 0.005 may be missed).
        """
        if self._range is None:
            self._range = _estimate_range(self)
        return self._range

    @property
    def homogeneous_degree(self):
        """k with φ(cz) = c^k φ(z) for all c > 0 (k = 1..4), else None.

        Exact for built-ins; for user φ checked numerically at 8 points and 3 scales.
        """
        if self._degree is _UNSET:
            self._degree = _homogeneous_degree(self)
        return self._degree

    @property
    def bounded(self):
        """True if φ has a finite range."""
        lo, hi = self.range
        return math.isfinite(lo) and math.isfinite(hi)

    def sigma_a2(self, P, depth=1):
        """Readout prior variance σ_a² for P training inputs and ``depth`` hidden layers.

        1/P for bounded φ (the paper's sigmoid), P^(−1/L) otherwise (linear, ReLU; also
        softplus, relu2 and unbounded user φ). THEORY.md §1.
        """
        P = check_int(P, "P", minimum=1)
        depth = check_int(depth, "depth", minimum=1)
        return 1.0 / P if self.bounded else float(P) ** (-1.0 / depth)

    def __repr__(self):
        lo, hi = self.range
        deg = "" if self.homogeneous_degree is None else f", homogeneous_degree={self.homogeneous_degree}"
        return f"Nonlinearity({self.name!r}: φ(z) = {sp.sstr(self.expr)}, range=({lo:g}, {hi:g}){deg})"


_UNSET = object()


def nonlinearity(name):
    """Return the :class:`Nonlinearity` for a name, a sympy expression or a string expression.

    Parameters
    ----------
    name : str, sympy.Expr or Nonlinearity
        ``"linear"`` (φ = z), ``"erf"`` (the paper's sigmoid ½[1 + erf(√π z/2)] = Φ(κz),
        κ = √(π/2)), ``"relu"`` (max(0, z)), ``"softplus"`` (log(1 + e^z)), ``"relu2"``
        (max(0, z)²); a sympy expression in a symbol named ``z``; a string expression in ``z``
        (e.g. ``"tanh(z)"``, ``"Max(0.1*z, z)"``, ``"Piecewise((z, z > 0), (0.1*z, True))"``);
        or a Nonlinearity (returned as is).

        Strings are parsed without ``eval`` (:func:`meanfield._expr_parser.parse_phi`): only
        the symbol ``z``, numbers (|x| ≤ 1e6), ``pi``, ``E``, ``+ - * / **``, comparisons and
        ``& | ~`` inside Piecewise conditions, and calls (positional arguments) of exp, log,
        log1p, expm1, sqrt, Abs, sign, tanh, sinh, cosh, sin, cos, tan, atan, asinh, erf, erfc,
        Max, Min, Heaviside, Piecewise, Eq, Ne, And, Or, Not — the functions the compiler
        evaluates. At most 1000 characters; constant exponents of z at most 100.

        A user φ (string or sympy) must be real and finite on [−40, 40] (beyond, the Gaussian
        weight underflows in float64) — no NaN, pole, logarithmic singularity or overflow —
        and have a finite Gaussian second moment ∫Dz φ(z)² (``exp(z**2)`` is refused).
        docs/nonlinearities.md gives the grammar and the checks in full.

    Returns
    -------
    Nonlinearity

    Raises
    ------
    ValueError
        Unknown name; a string outside the grammar (the message names the offending token);
        an expression that does not depend on ``z`` only or uses a function the compiler does
        not know; a φ that is not admissible (the message says why, e.g. "φ is not real for
        z < 0 (sqrt(z) at z = -1 is 1.0*I)", "φ has a pole at z = 0", "∫Dz φ(z)² diverges").
    TypeError
        ``name`` is of another type.
    """
    if isinstance(name, Nonlinearity):
        return name
    if isinstance(name, str):
        key = name.strip()
        if key in _BUILTINS:
            if key not in _BUILTIN_CACHE:
                code, expr, rng, deg = _BUILTINS[key]
                _BUILTIN_CACHE[key] = Nonlinearity(key, code, expr, _phik.EMPTY_PROG, _BUILTIN_KINKS.get(key, ()),
                                                   rng, deg)
            return _BUILTIN_CACHE[key]
        if re.fullmatch(r"[A-Za-z_]\w*", key) and key != "z":
            raise ValueError(f"name must be one of {sorted(_BUILTINS)} or an expression in z, got {name!r}")
        return _user(parse_phi(key))
    if isinstance(name, sp.Basic):
        return _user(name)
    raise TypeError(f"name must be a str, a sympy expression or a Nonlinearity, got {type(name).__name__}")


def default_sigma_a2(name, P, depth=1):
    """The paper's readout-prior variance: P^(−1/L) for linear and ReLU, 1/P for the sigmoid.

    THEORY.md §1. For the other φ (softplus, relu2, user expressions) the choice follows the
    range: 1/P if φ is bounded (coding like the sigmoid), P^(−1/L) if it is unbounded.

    Parameters
    ----------
    name : str, sympy.Expr or Nonlinearity
        Anything :func:`nonlinearity` accepts.
    P : int
        Number of training inputs (≥ 1).
    depth : int
        Number of hidden layers L (≥ 1).
    """
    return nonlinearity(name).sigma_a2(P, depth)


# --- user expressions ------------------------------------------------------------------------

def _user(expr):
    other = [s for s in expr.free_symbols if s.name != "z"]
    if other:
        raise ValueError(f"name: the expression must depend on z only, got free symbols {sorted(map(str, other))}")
    expr = expr.subs({s: z for s in expr.free_symbols})
    if z not in expr.free_symbols:
        raise ValueError(f"name: the expression must depend on z, got the constant {expr}")
    kinks = kinks_of(expr)
    prog = compile_program(expr, kinks)
    nl = Nonlinearity(sp.sstr(expr), _phik.USER, expr, prog, kinks)
    check_admissible(nl)
    return nl


# --- range and homogeneity of user expressions ----------------------------------------------

def _estimate_range(nl):
    """Numerical (inf, sup): a grid on [−50, 50] with the extrema polished by a bounded scalar
    minimization, and the values at |z| = 1e3, 1e6, 1e9 (increments that do not shrink and
    beyond the grid's extremes: unbounded that way; otherwise the value at 1e9 counts).
    Sympy's ``function_range`` is not used: it can run for minutes on simple compositions."""
    from scipy.optimize import minimize_scalar
    x = np.linspace(-50.0, 50.0, 20001)
    grid = nl.phi(x)
    if np.isnan(grid).all():
        return math.nan, math.nan
    ends = []
    for sign, k in ((1.0, int(np.nanargmin(grid))), (-1.0, int(np.nanargmax(grid)))):
        a, b = x[max(k - 1, 0)], x[min(k + 1, x.size - 1)]
        res = minimize_scalar(lambda t: sign * nl.phi(t), bounds=(a, b), method="bounded",
                              options={"xatol": 1e-12})
        ends.append(sign * min(sign * grid[k], res.fun))
    lo, hi = ends
    for side in (-1.0, 1.0):
        f3, f6, f9 = nl.phi(side * np.array([1e3, 1e6, 1e9]))
        if np.isnan([f3, f6, f9]).any():
            continue
        with np.errstate(invalid="ignore"):
            d1, d2 = f6 - f3, f9 - f6
            growing = (np.isinf(f9) or np.isinf(f6)) or (d1 * d2 > 0 and abs(d2) >= 0.5 * abs(d1))
        if growing and f9 > hi:             # exp, powers, logs: unbounded that way
            hi = math.inf
        elif growing and f9 < lo:
            lo = -math.inf
        else:                               # a limit (or bounded oscillation)
            lo, hi = min(lo, f9), max(hi, f9)
    return float(lo) + 0.0, float(hi) + 0.0     # no -0.0


def _homogeneous_degree(nl):
    """Numerical test of φ(cz) = c^k φ(z) on fixed points (both signs) and scales (sympy's
    ``simplify`` can take minutes on such identities)."""
    x = np.array([0.3, 0.77, 1.9, 4.1, -0.3, -0.77, -1.9, -4.1])
    base = nl.phi(x)
    if not np.all(np.isfinite(base)) or not np.any(base != 0.0):
        return None
    for k in (1, 2, 3, 4):
        if all(np.all(np.abs(nl.phi(c * x) - c ** k * base) <= 1e-12 * c ** k * np.abs(base) + 1e-300)
               for c in (0.5, 3.0, 11.0)):
            return k
    return None
