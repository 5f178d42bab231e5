"""Tilted Gaussian integrals of φ (THEORY.md §2.2–2.3), as numba kernels.

    g(h)   = log ∫ Dz e^{h φ(z)}          (Dz: standard normal)
    g'(h)  = ⟨φ⟩_h,   g''(h) = Var_h[φ]   (moments under the tilted density ∝ Dz e^{hφ})

Closed forms: linear (h²/2, h, 1); ReLU, g = log(½ + e^{h²/2} Φ(h)): the tilted law of φ is a
mass at 0 (weight ½/Z) and a normal N(h, 1) truncated to z > 0 (weight e^{h²/2}Φ(h)/Z); its
moments come from Φ (h ≥ 0) or, for h < 0, from the ratios D_k = I_k/I_{k−1} of
I_k = ∫_0^∞ u^k e^{−|h|u − u²/2} du, which obey D_k = k/(|h| + D_{k+1}) (a continued fraction,
evaluated backwards) — no cancellation even at h = −1e3, where g'' ≈ 4/(√(2π)|h|³);
relu2, ∫Dz e^{h relu(z)²} = ½[1 + (1 − 2h)^{−1/2}] (divergent for h ≥ ½: g = +inf).

Everything else by quadrature of e^{ψ − ψ(c)}, ψ(z) = −z²/2 + hφ(z), c its global maximum:
bracket [−R, R] by doubling R (ψ still not falling at R = 2^65: divergent, g = +inf); find the
local maxima of ψ on a 129-point grid, refine each by safeguarded Newton on ψ' (bisection
through kinks) and keep those within 50 of the highest (≤ 8; ψ is unimodal for every built-in,
|z| has two modes); around each mode put panel ends where ψ falls by j²/2 below it (j = 1..10:
one standard deviation apart for a Gaussian tilt, down to e^{−50}), stopping at the valley
towards the next mode; split panels at the kinks of φ; 16-point Gauss–Legendre per panel.
Accuracy against mpmath: tests/test_integrals.py.

Precision details: ψ(z) − ψ(c) is formed as −d(d/2 + c) + h[φ(z) − φ(c)] with d = z − c (and,
for softplus at z, c > 0, φ(z) − φ(c) = d + log1p(e^{−z}) − log1p(e^{−c})), so h = 1e3 with
z ≈ 1e3 loses no digits; g'' is a centred variance about φ(c); for the sigmoid with h > 0 the
moments are of 1 − φ = Φ(−κz), computed by erfc, so Var_h is accurate when φ ≈ 1; when the
panels cover [−9, 9] (|h| small) g = log1p(⟨expm1(hφ)⟩_{N(0,1)}), accurate as g → 0.
"""
import math

import numba as nb
import numpy as np

from .phi import ERF, KAPPA, LINEAR, RELU, RELU2, SOFTPLUS, USER, d2phi, dphi, phi
from .program import kink, n_kinks

_C = 1.0 / math.sqrt(2.0 * math.pi)            # standard normal density at 0
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_HALF = math.sqrt(0.5)

N_LEVELS = 10
LEVELS = 0.5 * np.arange(1, N_LEVELS + 1, dtype=np.float64) ** 2
GL_ORDER = 16
GL_X, GL_W = np.polynomial.legendre.leggauss(GL_ORDER)
GRID = 128          # grid over the bracket [−R, R] on which the modes of ψ are detected
MAX_MODES = 8       # modes kept: the highest, within 50 of the global maximum
MAX_KINKS = 32
MAX_PANELS = MAX_MODES * 2 * N_LEVELS + MAX_KINKS

OK, DIVERGENT, UNDEFINED = 0, 1, 2


# --- closed forms --------------------------------------------------------------------------

@nb.njit(cache=True)
def _mills_ratios(x):
    """For x > 0: M = Φ(−x)/φ_N(x) and D_1, D_2, D_3 (module docstring)."""
    if x < 2.0:     # forward recurrence; cancellation ≤ 2^6 here
        m = 0.5 * math.erfc(x * _SQRT_HALF) * math.exp(0.5 * x * x) * _SQRT_2PI
        i1 = 1.0 - x * m
        i2 = m - x * i1
        i3 = 2.0 * i1 - x * i2
        return m, i1 / m, i2 / i1, i3 / i2
    n = 30 + int(1200.0 / (x * x))     # backward recurrence: error damped by ≈ e^{−2x√n}
    d = 0.5 * (math.sqrt(x * x + 4.0 * (n + 1)) - x)
    d2 = d3 = 0.0
    for k in range(n, 0, -1):
        d = k / (x + d)
        if k == 3:
            d3 = d
        elif k == 2:
            d2 = d
    return 1.0 / (x + d), d, d2, d3


@nb.njit(cache=True)
def _relu_moments(h):
    """(g, g', g'') for φ = max(0, z) (THEORY.md §2.3)."""
    loga = q = 0.0
    if h >= 0.0:
        cdf = 0.5 * math.erfc(-h * _SQRT_HALF)
        lam = _C * math.exp(-0.5 * h * h) / cdf        # truncated normal: mean h + λ
        mu = h + lam
        var = 1.0 - lam * (h + lam)
        loga = 0.5 * h * h + math.log(cdf)             # log of the z > 0 weight e^{h²/2}Φ(h)
        p0 = 1.0 / (1.0 + 2.0 * math.exp(loga))
        p1 = 1.0 / (1.0 + 0.5 * math.exp(-loga))
    else:
        x = -h
        m, d1, d2, d3 = _mills_ratios(x)
        mu = d1
        var = d1 * d1 * (x + 2.0 * d2 - d3) / (x + d3)
        q = _C * m
        p1 = q / (0.5 + q)
        p0 = 0.5 / (0.5 + q)
    if abs(h) < 1.0:     # g = log1p(e^{h²/2}Φ(h) − ½)
        g = math.log1p(math.expm1(0.5 * h * h) * 0.5 * math.erfc(-h * _SQRT_HALF) + 0.5 * math.erf(h * _SQRT_HALF))
    elif h > 0.0:
        g = loga + math.log1p(0.5 * math.exp(-loga))
    else:
        g = math.log(0.5 + q)
    return g, p1 * mu, p1 * var + p0 * p1 * mu * mu


@nb.njit(cache=True)
def _relu2_moments(h):
    """(g, g', g'') for φ = max(0, z)²; +inf for h ≥ ½ where the integral diverges."""
    if h >= 0.5:
        return math.inf, math.inf, math.inf
    r = math.sqrt(1.0 - 2.0 * h)
    s = 1.0 / r
    g = math.log1p(h / (r * (1.0 + r)))
    return g, s ** 3 / (1.0 + s), s ** 5 * (3.0 + 2.0 * s) / ((1.0 + s) * (1.0 + s))


# --- quadrature ----------------------------------------------------------------------------

_NJ = dict(cache=True, error_model="numpy")


@nb.njit(**_NJ)
def _n_kinks(code, prog):
    if code == USER:
        return min(n_kinks(prog), MAX_KINKS)
    return 1 if (code == RELU or code == RELU2) else 0


@nb.njit(**_NJ)
def _kink(code, prog, i):
    return kink(prog, i) if code == USER else 0.0


@nb.njit(**_NJ)
def _psi(code, prog, h, x):
    return -0.5 * x * x + h * phi(code, prog, x)


@nb.njit(**_NJ)
def _dpsi(code, prog, h, c, phic, x):
    """ψ(x) − ψ(c) without the rounding of the large terms."""
    d = x - c
    if code == SOFTPLUS and x > 0.0 and c > 0.0:
        dphi_ = d + (math.log1p(math.exp(-x)) - math.log1p(math.exp(-c)))
    else:
        dphi_ = phi(code, prog, x) - phic
    return -d * (0.5 * d + c) + h * dphi_


@nb.njit(**_NJ)
def _bracket(code, prog, h):
    """R with ψ(±R) at least 60 below every value seen and decreasing outwards: (R, status)."""
    best = _psi(code, prog, h, 0.0)
    prev_l = prev_r = best
    r = 2.0
    for _ in range(64):
        pl, pr = _psi(code, prog, h, -r), _psi(code, prog, h, r)
        if pl != pl or pr != pr:
            return r, UNDEFINED
        if pl == math.inf or pr == math.inf:
            return r, DIVERGENT
        best = max(best, pl, pr)
        if pl < best - 60.0 and pr < best - 60.0 and pl <= prev_l and pr <= prev_r:
            return r, OK
        prev_l, prev_r = pl, pr
        r *= 2.0
    return r, DIVERGENT


@nb.njit(**_NJ)
def _refine(code, prog, h, a, b, x):
    """Safeguarded Newton on ψ' in [a, b] (bisection through kinks)."""
    for _ in range(200):
        g = -x + h * dphi(code, prog, x)
        if g > 0.0:
            a = x
        elif g < 0.0:
            b = x
        else:
            return x
        curv = -1.0 + h * d2phi(code, prog, x)
        xn = x - g / curv if curv < 0.0 else 0.5 * (a + b)
        if not (a < xn < b):
            xn = 0.5 * (a + b)
        done = abs(xn - x) <= 1e-14 * (1.0 + abs(x)) or b - a <= 1e-13 * (1.0 + abs(x))
        x = xn
        if done:
            break
    return x


@nb.njit(**_NJ)
def _modes(code, prog, h, modes, valleys):
    """Local maxima of ψ within 50 of the global one (sorted, ≤ MAX_MODES) and the valleys
    between them (valleys[0] = −R, valleys[n] = R). Returns (n, index of the highest, status)."""
    r, status = _bracket(code, prog, h)
    if status != OK:
        return 0, 0, status
    dz = 2.0 * r / GRID
    p = np.empty(GRID + 1)
    for k in range(GRID + 1):
        p[k] = _psi(code, prog, h, -r + k * dz)
        if p[k] != p[k]:
            return 0, 0, UNDEFINED
    val = np.empty(GRID + 1)
    idx = np.empty(GRID + 1, dtype=np.int64)
    n = 0
    for k in range(GRID + 1):
        if (k == 0 or p[k] > p[k - 1]) and (k == GRID or p[k] >= p[k + 1]):
            x = _refine(code, prog, h, -r + max(k - 1, 0) * dz, -r + min(k + 1, GRID) * dz, -r + k * dz)
            px = _psi(code, prog, h, x)
            if not (px >= p[k]):
                x, px = -r + k * dz, p[k]
            for i in range(_n_kinks(code, prog)):       # a mode at a kink sits exactly on it
                xk = _kink(code, prog, i)
                if abs(xk - x) < 1e-9 * (1.0 + abs(x)):
                    pk = _psi(code, prog, h, xk)
                    if pk >= px - 1e-12 * (1.0 + abs(px)):      # not across a jump of φ
                        x, px = xk, max(pk, px)
            modes[n], val[n], idx[n] = x, px, k
            n += 1
    top = val[:n].max()
    keep = 0
    for i in range(n):      # the highest MAX_MODES within 50 of the top (in position order)
        rank = 0
        for j in range(n):
            rank += val[j] > val[i] or (val[j] == val[i] and j < i)
        if val[i] >= top - 50.0 and rank < MAX_MODES:
            modes[keep], val[keep], idx[keep] = modes[i], val[i], idx[i]
            keep += 1
    valleys[0], valleys[keep] = -r, r
    for i in range(1, keep):
        k0, k1 = idx[i - 1], idx[i]
        valleys[i] = -r + (k0 + np.argmin(p[k0:k1 + 1])) * dz
    return keep, np.argmax(val[:keep]), OK


@nb.njit(**_NJ)
def _levels(code, prog, h, c, phic, x0, side, step, limit, out, pos):
    """Points beyond the mode x0 (direction ``side``, not past ``limit``) where ψ falls by
    LEVELS[j] below ψ(x0), written to out[pos:]. Returns the new ``pos``."""
    top = _dpsi(code, prog, h, c, phic, x0)
    xprev = x0
    for j in range(N_LEVELS):
        level = LEVELS[j] - top
        lo, flo = xprev, _dpsi(code, prog, h, c, phic, xprev) + level
        hi = lo + side * step
        while True:
            if side * (hi - limit) >= 0.0:
                hi = limit
            fhi = _dpsi(code, prog, h, c, phic, hi) + level
            if not (fhi > 0.0) or hi == limit:
                break
            lo, flo = hi, fhi
            step *= 2.0
            hi = lo + side * step
        if fhi > 0.0 or fhi != fhi:       # the valley (or the bracket) comes first
            out[pos] = hi
            return pos + 1
        x, last = hi, 0
        for _ in range(60):      # Illinois regula falsi; ±0.02 in ψ is precise enough
            x = (lo * fhi - hi * flo) / (fhi - flo)
            if not ((lo < x < hi) or (hi < x < lo)):
                x = 0.5 * (lo + hi)
            fx = _dpsi(code, prog, h, c, phic, x) + level
            if abs(fx) < 0.02 or abs(hi - lo) < 1e-13 * (1.0 + abs(x)):
                break
            if fx > 0.0:
                lo, flo = x, fx
                if last == 1:
                    fhi *= 0.5
                last = 1
            else:
                hi, fhi = x, fx
                if last == -1:
                    flo *= 0.5
                last = -1
        out[pos] = x
        pos += 1
        step = max(abs(x - xprev), 1e-300)
        xprev = x
    return pos


@nb.njit(**_NJ)
def _panels(code, prog, h):
    """Panel ends (pairs) covering where ψ > max ψ − 50, split at kinks: (ends, n, c, φ(c), status)."""
    modes, valleys = np.empty(GRID + 1), np.empty(GRID + 2)
    nm, top, status = _modes(code, prog, h, modes, valleys)
    ends = np.empty((MAX_PANELS, 2))
    if status != OK:
        return ends, 0, 0.0, math.nan, status
    c = modes[top]
    phic = phi(code, prog, c)
    pts = np.empty(2 * N_LEVELS + 1)
    n = 0
    for i in range(nm):
        m = modes[i]
        curv = -1.0 + h * d2phi(code, prog, m)
        step = 1.0 / math.sqrt(-curv) if curv < 0.0 else 1.0
        nl = _levels(code, prog, h, c, phic, m, -1.0, step, valleys[i], pts, 0)
        pts[:nl] = pts[:nl][::-1].copy()
        pts[nl] = m
        npts = _levels(code, prog, h, c, phic, m, 1.0, step, valleys[i + 1], pts, nl + 1)
        for q in range(npts - 1):
            a, b = pts[q], pts[q + 1]
            for k in range(_n_kinks(code, prog)):      # kinks are sorted
                x = _kink(code, prog, k)
                if a + 1e-12 * (1.0 + abs(a)) < x < b - 1e-12 * (1.0 + abs(b)) and n < MAX_PANELS:
                    ends[n, 0], ends[n, 1] = a, x
                    n += 1
                    a = x
            if b > a and n < MAX_PANELS:
                ends[n, 0], ends[n, 1] = a, b
                n += 1
    return ends, n, c, phic, OK


@nb.njit(**_NJ)
def _rule(code, prog, h):
    """Gauss–Legendre rule on the panels: nodes, weights and log tilts ψ(z) − ψ(c), with
    ∫ f(z) e^{ψ(z)} dz ≈ e^{ψ(c)} Σ w e^{l} f(z). Returns (z, w, l, c, φ(c), status)."""
    ends, n, c, phic, status = _panels(code, prog, h)
    zs, ws, ls = np.empty(n * GL_ORDER), np.empty(n * GL_ORDER), np.empty(n * GL_ORDER)
    for j in range(n):
        half, mid = 0.5 * (ends[j, 1] - ends[j, 0]), 0.5 * (ends[j, 0] + ends[j, 1])
        for i in range(GL_ORDER):
            x = mid + half * GL_X[i]
            q = j * GL_ORDER + i
            zs[q], ws[q], ls[q] = x, half * GL_W[i], _dpsi(code, prog, h, c, phic, x)
    return zs, ws, ls, c, phic, status


@nb.njit(**_NJ)
def _quadrature_moments(code, prog, h):
    zs, ws, ls, c, phic, status = _rule(code, prog, h)
    if status == DIVERGENT:
        return math.inf, math.nan, math.nan
    if status != OK:
        return math.nan, math.nan, math.nan
    n = zs.shape[0]
    flip = code == ERF and h > 0.0      # moments of 1 − φ = Φ(−κz)
    vc = 0.5 * math.erfc(KAPPA * c * _SQRT_HALF) if flip else phic
    vs = np.empty(n)
    s0 = s1 = s2 = 0.0
    for i in range(n):
        v = 0.5 * math.erfc(KAPPA * zs[i] * _SQRT_HALF) if flip else phi(code, prog, zs[i])
        vs[i] = 1.0 - v if flip else v
        e = ws[i] * math.exp(ls[i])
        dv = v - vc
        s0 += e
        s1 += e * dv
        s2 += e * dv * dv
    m = s1 / s0
    mean = vc + m
    var = max(s2 / s0 - m * m, 0.0)
    psic = -0.5 * c * c + h * phic
    gs = es = 0.0
    if zs.min() <= -9.0 and zs.max() >= 9.0:     # the N(0, 1) bulk is inside: g = log1p⟨expm1(hφ)⟩
        for i in range(n):
            w = ws[i] * math.exp(-0.5 * zs[i] * zs[i])
            gs += w
            t = h * vs[i]
            # e^{−z²/2}(e^{t} − 1); as a difference where e^{t} may overflow (no cancellation there)
            es += w * math.expm1(t) if t < 1.0 else ws[i] * math.exp(ls[i] + psic) - w
    if zs.min() <= -9.0 and zs.max() >= 9.0 and abs(gs - _SQRT_2PI) <= 1e-14 * _SQRT_2PI:
        g = math.log1p(es / gs)
    else:
        g = psic + math.log(s0) - _LOG_SQRT_2PI
    return g, (1.0 - mean) if flip else mean, var


@nb.njit(**_NJ)
def tilted_moments(code, prog, h):
    """(g, g', g'') at the field ``h``: closed forms for linear, ReLU, relu2, else quadrature.

    g = +inf where the integral diverges (relu2 with h ≥ ½, φ growing faster than z²);
    nan where φ is undefined on part of the real line.
    """
    if h != h:
        return math.nan, math.nan, math.nan
    if code == LINEAR:
        return 0.5 * h * h, h, 1.0
    if code == RELU:
        return _relu_moments(h)
    if code == RELU2:
        return _relu2_moments(h)
    return _quadrature_moments(code, prog, h)


@nb.njit(cache=True, parallel=True, error_model="numpy")
def tilted_moments_array(code, prog, h_array):
    """:func:`tilted_moments` for every entry of a 1-D array (parallel over entries)."""
    n = h_array.shape[0]
    g, g1, g2 = np.empty(n), np.empty(n), np.empty(n)
    for i in nb.prange(n):
        g[i], g1[i], g2[i] = tilted_moments(code, prog, h_array[i])
    return g, g1, g2


@nb.njit(**_NJ)
def tilted_rule(code, prog, h):
    """Nodes and normalized weights of the tilted density, ⟨f⟩_h ≈ Σ w f(z), and a status."""
    zs, ws, ls, c, phic, status = _rule(code, prog, h)
    w = ws * np.exp(ls)
    return zs, w / w.sum(), status
