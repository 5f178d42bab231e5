"""Physical admissibility of a user nonlinearity φ, checked once when it is constructed.

The kernels evaluate the compiled φ in float64 inside Gaussian integrals (the quadratures of
:mod:`meanfield._kernels.gauss`, Gauss–Hermite rules) and at the sampler's preactivations, which
are Gaussian with O(1) variance under the prior. Beyond |z| ≈ 38.6 the standard normal density is
below the smallest double, so no Gaussian integral computed in float64 sees φ there; the check
therefore covers the range [−:data:`Z_MAX`, :data:`Z_MAX`] densely and a few far points. φ is
admissible when

1. it is real and finite there: no NaN (``sqrt(z)`` for z < 0, ``log`` of a negative number,
   0/0 or 0·∞ at an isolated point), no overflow and no pole or logarithmic singularity;
2. its Gaussian second moment ∫Dz φ(z)² is finite: φ(z)² e^{−z²/2} must fall by at least
   e^{−:data:`DECAY`} from its peak by |z| = Z_MAX, and stay below that at |z| = 60, 100
   (``exp(z**2)``, for which log|φ| grows like z² ≥ z²/4, is refused).

Poles are found three ways: values that are ±inf on the grid (step 0.01, plus 0, the kinks, the
real roots of every polynomial denominator, log argument and fractional-power base, and the
midpoints between those roots); a zoom on every local maximum of |φ| on the grid (the bracket is
halved 30 times; |φ| still growing at the end, like 1/d or log(1/d), means a singularity); and the
same growth test at the roots (the zoom also asks that |φ| at least doubles from the grid value,
so that a fast oscillation such as sin(z**9) is not taken for a pole). Measured cost: a few ms
for a simple φ (the compiled program is evaluated on ≈ 10⁴ points). A singularity narrower than the grid step that is neither a root of
a polynomial argument nor a local maximum of |φ| on the grid can be missed, and φ is not examined
between 100 and infinity; the kernels' own checks (a NaN or divergent integral raises) remain.
"""
from __future__ import annotations

import math

import numpy as np
import sympy as sp

from ._sympy_program import LOCALS, z

__all__ = ["check_admissible", "Z_MAX", "DECAY"]

Z_MAX = 40.0
DECAY = 20.0
_GRID = np.arange(-4000, 4001) / 100.0      # exact 0 and integers
_FAR = np.array([-100.0, -60.0, 60.0, 100.0])
_DELTAS = np.array([1e-4, 1e-7, 1e-10])
_ZOOM_STEPS = 30
_MAX_ZOOMS = 2000


def check_admissible(nl):
    """Raise ``ValueError`` (naming ``name``) if the user φ of ``nl`` is not admissible.

    Parameters
    ----------
    nl : Nonlinearity
        A user nonlinearity (compiled program and its sympy ``expr``).
    """
    roots = _roots(nl.expr)
    special = np.unique(np.concatenate([[0.0], np.asarray(nl.kinks, float), roots]))
    special = special[np.abs(special) <= Z_MAX]
    pts = np.unique(np.concatenate([_GRID, special, 0.5 * (special[1:] + special[:-1])]))
    with np.errstate(all="ignore"):
        v = nl.phi(pts)
    _overflow(nl, pts, v)
    _not_real_or_infinite(nl, pts, v)
    _singularities(nl, pts, v, special)
    _second_moment(nl, pts, v)


# --- candidates: real roots of the arguments where φ can become infinite or complex ----------

def _critical_arguments(expr):
    for e in sp.preorder_traversal(expr):
        if e.is_Pow and z in e.base.free_symbols and not (e.exp.is_Integer and e.exp >= 0):
            yield e.base                            # 1/q, q**(-k), q**(1/2), q**z: zeros of q
        elif e.func == sp.log:
            yield e.args[0]
        elif e.func == LOCALS["log1p"]:
            yield e.args[0] + 1


def _roots(expr):
    """Real roots of the polynomial critical arguments of degree ≤ 8 (others: the zoom finds them)."""
    out = []
    for q in _critical_arguments(expr):
        if any(p.exp.is_Integer and abs(p.exp) > 8 for p in q.atoms(sp.Pow)) or not q.is_polynomial(z):
            continue
        try:
            coeffs = [complex(c) for c in sp.Poly(q, z).all_coeffs()]
        except (TypeError, ValueError, sp.PolynomialError):
            continue
        if len(coeffs) < 2 or len(coeffs) > 9 or any(np.iscomplex(coeffs)):
            continue
        r = np.roots(np.real(coeffs))
        out.extend(r.real[np.abs(r.imag) <= 1e-7 * (1.0 + np.abs(r.real))])
    return np.asarray(out, dtype=np.float64)


# --- reasons ------------------------------------------------------------------------------------

def _culprit(expr, z0):
    """The innermost subexpression of φ that is not a finite real number at z0: (text, complex?)."""
    for sub in sp.postorder_traversal(expr):
        if not isinstance(sub, sp.Expr) or z not in sub.free_symbols:
            continue
        try:
            val = sub.xreplace({z: sp.Float(z0)}).evalf(15)
        except Exception:   # noqa: BLE001 — the reason is a courtesy; the refusal stands without it
            continue
        if val.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or val.is_extended_real is False:
            return f"{sp.sstr(sub)} at z = {z0:g} is {sp.sstr(val)}", not val.has(sp.nan, sp.zoo, sp.oo, -sp.oo)
    return f"φ({z0:g}) is nan in floating point (0/0, 0·∞ or ∞ − ∞)", False


def _region(pts, mask):
    """Text for the set of grid points in ``mask``: runs bounded by their last bad or first good point,
    whichever prints shorter (sqrt(z): "z < 0", not "z ≤ -0.01")."""
    def bound(bad, good, strict, weak):
        return (strict, good) if len(f"{good:g}") <= len(f"{bad:g}") else (weak, bad)

    idx = np.flatnonzero(mask)
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    parts = []
    for run in runs[:2]:
        a, b = run[0], run[-1]
        lower = bound(pts[a], pts[a - 1], "<", "≤") if a > 0 else None
        upper = bound(pts[b], pts[b + 1], "<", "≤") if b < pts.size - 1 else None
        if a == b and lower and upper:
            parts.append(f"at z = {pts[a]:g}")
        elif lower and upper:
            parts.append(f"for {lower[1]:g} {lower[0]} z {upper[0]} {upper[1]:g}")
        elif lower:
            parts.append(f"for z {'>' if lower[0] == '<' else '≥'} {lower[1]:g}")
        else:
            parts.append(f"for z {upper[0]} {upper[1]:g}" if upper else f"for all |z| ≤ {Z_MAX:g}")
    return " and ".join(parts) + (" and elsewhere" if len(runs) > 2 else "")


def _representative(pts, mask):
    """A point of the first run of ``mask``, an integer near 0 if there is one."""
    idx = np.flatnonzero(mask)
    run = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)[0]
    x = pts[run]
    whole = x[x == np.round(x)]
    return float(min(whole if whole.size else x, key=abs))


# --- checks -------------------------------------------------------------------------------------

def _overflow(nl, pts, v):
    """A run of ±inf/nan reaching ±Z_MAX after huge values: φ grows out of float64 range."""
    for side in (1.0, -1.0):
        order = np.flatnonzero(pts * side >= 0)[:: int(side)]      # outwards from 0
        bad = ~np.isfinite(v[order])
        if not bad[-1]:
            continue
        k = bad.size - np.argmin(bad[::-1])     # first index of the trailing bad run
        if k == bad.size or k < 3:
            continue
        prev = np.abs(v[order[k - 1]])
        if not prev > 1e100:
            continue
        z_o, z_b = pts[order[k]], pts[order[k - 1]]
        z_a, z_h = 0.9 * z_b, 0.5 * z_b
        with np.errstate(all="ignore"):
            la, lh = np.log(np.abs(nl.phi(np.array([z_a, z_h]))) + 1e-300)
        a = (math.log(prev) - la) / (z_b ** 2 - z_a ** 2)          # slope of log|φ| against z², outer
        a_h = (lh - np.log(np.abs(nl.phi(0.45 * z_b)) + 1e-300)) / (z_h ** 2 - (0.45 * z_b) ** 2)   # at half
        if a >= 0.245 and a >= 0.8 * a_h and abs(z_b) >= 4.0:     # z² growth, not e^{kz} or a power
            raise ValueError(f"name: ∫Dz φ(z)² diverges: log|φ| grows like {a:.3g}·z² (z²/4 or faster, so "
                             f"φ(z)² e^(-z²/2) does not decay); φ overflows float64 at z = {z_o:g}")
        raise ValueError(f"name: φ overflows float64 at z = {z_o:g} (|φ({z_b:g})| = {prev:.3g}), inside the "
                         f"range |z| ≤ {Z_MAX:g} that Gaussian integrals see: ∫Dz φ(z)² is not finite in float64")


def _not_real_or_infinite(nl, pts, v):
    for mask, what in ((np.isnan(v), "nan"), (np.isinf(v), "inf")):
        if not mask.any():
            continue
        z0 = _representative(pts, mask)
        reason, complex_ = _culprit(nl.expr, z0)
        if what == "inf":
            with np.errstate(all="ignore"):
                d = np.abs(nl.phi(z0 + _DELTAS))
            kind = _kind(d)
            raise ValueError(f"name: φ has {kind} at z = {z0:g} ({reason}); φ must be finite on the whole real line")
        if complex_:
            raise ValueError(f"name: φ is not real {_region(pts, mask)} ({reason})")
        raise ValueError(f"name: φ is undefined (nan in floating point) {_region(pts, mask)} ({reason}); "
                         "φ must be a finite real number at every z")


def _blowup(d_small, d_mid, d_big):
    """|φ| still growing as the distance shrinks (like 1/d: pole; like log(1/d): singularity)."""
    d1, d2 = d_mid - d_big, d_small - d_mid
    return ~np.isfinite(d_small) | ((d1 > 0) & (d2 > 0.5 * d1) & (d2 > 1e-12 * np.maximum(1.0, d_small)))


def _singularities(nl, pts, v, special):
    """Growth test at the special points, then a zoom on every local maximum of |φ| on the grid."""
    with np.errstate(all="ignore"):
        if special.size:
            side = np.abs(nl.phi(special[:, None, None] + np.array([-1.0, 1.0])[None, :, None] * _DELTAS))
            D = np.max(np.where(np.isnan(side), np.inf, side), axis=1)        # (n, 3): δ = 1e-4, 1e-7, 1e-10
            hit = _blowup(D[:, 2], D[:, 1], D[:, 0])
            if hit.any():
                i = int(np.flatnonzero(hit)[np.argmin(np.abs(special[hit]))])     # the one nearest 0
                _refuse_singular(special[i], D[i], _DELTAS)
        a = np.abs(v)
        peak = np.flatnonzero((a[1:-1] >= a[:-2]) & (a[1:-1] >= a[2:]) & ((a[1:-1] > a[:-2]) | (a[1:-1] > a[2:])))
        if peak.size > _MAX_ZOOMS:
            peak = peak[np.argsort(a[peak + 1])[-_MAX_ZOOMS:]]
        lo, hi = pts[peak], pts[peak + 2]
        frac = np.linspace(0.0, 1.0, 5)
        rows = np.arange(peak.size)
        m = np.empty((_ZOOM_STEPS, peak.size))
        for k in range(_ZOOM_STEPS):
            x = lo[:, None] + (hi - lo)[:, None] * frac
            ax = np.abs(nl.phi(x))
            ax = np.where(np.isnan(ax), np.inf, ax)
            j = np.argmax(ax, axis=1)
            m[k] = ax[rows, j]
            lo, hi = x[rows, np.maximum(j - 1, 0)], x[rows, np.minimum(j + 1, 4)]
        if peak.size:
            hit = _blowup(m[-1], m[-6], m[-11]) & ~(m[-1] <= 2.0 * m[0])    # and well above the grid value
            if hit.any():
                i = int(np.flatnonzero(hit)[np.argmin(np.abs(lo[hit]))])
                w = (pts[peak[i] + 2] - pts[peak[i]]) * 0.5 ** np.array([_ZOOM_STEPS - 11, _ZOOM_STEPS - 6,
                                                                         _ZOOM_STEPS - 1])
                _refuse_singular(0.5 * (lo[i] + hi[i]), m[[-11, -6, -1], i], w)


def _kind(values):
    """'a pole' if |φ| grows like a power of 1/distance along ``values`` (distances shrinking by a
    factor ≥ 32), else 'a singularity' (log(1/d) adds about the same amount each step)."""
    if not np.isfinite(values).all():
        return "a singularity"
    inc1, inc2 = values[1] - values[0], values[2] - values[1]
    return "a pole" if inc2 > 8 * inc1 > 0 else "a singularity"


def _refuse_singular(c, values, dist):
    if not np.isfinite(values).all():
        raise ValueError(f"name: φ is infinite at z ≈ {c:.6g} (a pole or singularity); "
                         "φ must be finite on the whole real line")
    vals = ", ".join(f"{x:.3g}" for x in values)
    ds = ", ".join(f"{x:.0e}" for x in dist)
    raise ValueError(f"name: φ has {_kind(values)} near z = {c:.6g}: |φ| = {vals} at distances {ds}; "
                     "φ must be finite on the whole real line")


def _second_moment(nl, pts, v):
    """∫Dz φ² finite: φ² e^{−z²/2} has decayed by e^{−DECAY} at |z| = Z_MAX and beyond."""
    with np.errstate(all="ignore"):
        e = 2.0 * np.log(np.abs(v)) - 0.5 * pts ** 2
        far = nl.phi(_FAR)
    top = np.max(e)
    if top == -np.inf:
        raise ValueError(f"name: φ(z) = 0 for every |z| ≤ {Z_MAX:g}: a network with this φ computes nothing")
    log_m2 = top + math.log(np.sum(np.exp(e - top)) * 0.01 / math.sqrt(2.0 * math.pi))
    if log_m2 > 690.0:
        raise ValueError(f"name: ∫Dz φ(z)² ≈ e^{log_m2:.0f} overflows float64")
    if np.isnan(far).any():
        z0 = float(_FAR[np.argmax(np.isnan(far))])
        raise ValueError(f"name: φ is not real at z = {z0:g} ({_culprit(nl.expr, z0)[0]})")
    with np.errstate(all="ignore"):
        e_far = 2.0 * np.log(np.abs(far)) - 0.5 * _FAR ** 2
    for side in (1.0, -1.0):
        outer = side * pts >= Z_MAX - 1.0
        worst = max(np.max(e[outer]), np.max(np.where(np.isfinite(e_far) & (side * _FAR > 0), e_far, -np.inf)))
        if worst > top - DECAY:
            inner = (side * pts >= 29.0) & (side * pts <= 30.0)
            a = (np.max(e[outer]) - np.max(e[inner])) / (2 * (Z_MAX ** 2 - 30.0 ** 2)) + 0.25
            end = f"z → {'+' if side > 0 else '-'}∞"
            if a >= 0.245:
                raise ValueError(f"name: ∫Dz φ(z)² diverges: log|φ| grows like {a:.3g}·z² as {end} (z²/4 or "
                                 "faster, so φ(z)² e^(-z²/2) does not decay)")
            raise ValueError(f"name: ∫Dz φ(z)² converges too slowly or diverges as {end}: φ(z)² e^(-z²/2) has "
                             f"fallen only by e^-{top - worst:.3g} from its peak at |z| ≥ {Z_MAX:g} "
                             f"(at least e^-{DECAY:g} is required)")
