"""Class-reduced toy-task equations of the sigmoid theory (THEORY.md §2, §2.2).

Derivation and conventions: ``docs/theory_erf.md``. Toy task: ``K0 = I`` and targets that
depend on the class only. Classes c = 0..K−1 with fractions ρ_c and target rows Y_c; the
field has one row t_c ∈ R^m per class (``T t_c`` is the training residual on class c);
readouts a are raw (sampler units); ``s = P σ_a²`` (1 for the paper's σ_a² = 1/P). Then
``p(a) ∝ exp(P F(a))`` exactly (for N → ∞ at any P), with

    F(a) = −|a|²/(2s) + Σ_c ρ_c g(h_c),   h_c = t_c·a,   g(h) = log ∫Dz e^{h φ(z)}.   (E1)

This module holds what depends on one (t, a) only: F and its derivatives, codes, the search
for all local maxima of F, the convex dual of the field equations and the saturated limit
(the start of every solve). The coupled equations are in :mod:`meanfield.theory.erf_schemes`.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .._kernels.phi import USER
from ..integrators import tilted_moments
from ..nonlinearities import nonlinearity

__all__ = ["ToyProblem", "toy_problem", "all_codes", "free_energy", "hessian", "codes_of",
           "find_maxima", "dual_value", "saturated_dual", "saturated_scheme"]

MAX_CLASSES = 10        # the saturated dual has one constraint per code: 2^K − 1


@dataclass(frozen=True)
class ToyProblem:
    """Class-reduced toy task (THEORY.md §2.2).

    Attributes
    ----------
    rho : ndarray (K,)
        Class fractions ρ_c.
    Yc : ndarray (K, m)
        Target row of each class.
    s : float
        ``P σ_a²``.
    P : float
        Number of training inputs (enters only the finite-P Laplace weights; a float so that the
        solver can continue in P).
    nl : Nonlinearity
        φ (bounded; the code threshold is the middle of its range).
    """

    rho: np.ndarray
    Yc: np.ndarray
    s: float
    P: float
    nl: object

    @property
    def K(self):
        return self.rho.size

    @property
    def m(self):
        return self.Yc.shape[1]

    @property
    def threshold(self):
        """Half of φ's range: a neuron codes class c when ⟨φ⟩ on c exceeds it (THEORY.md §2.2)."""
        lo, hi = self.nl.range
        return 0.5 * (lo + hi)

    def moments(self, H):
        """``(g, g', g'')`` at the fields ``H`` (any shape), via the shared tilted integrals."""
        return tilted_moments(self.nl, H)

    def third_cumulant(self, H):
        """``g'''(H)`` by a central difference of g'' (relative error ≈ 1e-8; Jacobians only)."""
        H = np.asarray(H, dtype=np.float64)
        eps = 1e-4 * np.maximum(1.0, np.abs(H))
        return (self.moments(H + eps)[2] - self.moments(H - eps)[2]) / (2.0 * eps)


def toy_problem(rho, Yc, s, P, name="erf"):
    """Build a :class:`ToyProblem` (arrays copied, φ resolved by :func:`meanfield.nonlinearity`)."""
    nl = nonlinearity(name)
    if not nl.bounded:
        raise ValueError(f"nonlinearity must be bounded for the redundant-coding theory, got {nl.name}")
    return ToyProblem(np.array(rho, dtype=np.float64), np.array(Yc, dtype=np.float64), float(s), float(P), nl)


def all_codes(K):
    """All nonzero 0/1 code vectors over K classes, shape (2^K − 1, K), in lexicographic order."""
    return np.array([c for c in itertools.product((0, 1), repeat=K) if any(c)], dtype=np.int64)


def free_energy(A, t, prob):
    """F of (E1), its gradient and Hessian for each row of ``A``.

    Parameters
    ----------
    A : ndarray (n, m) or (m,)
        Readout vectors.
    t : ndarray (K, m)
        Field rows.
    prob : ToyProblem

    Returns
    -------
    F : ndarray (n,)
    grad : ndarray (n, m)
        ``−a/s + Σ_c ρ_c g'(h_c) t_c``.
    hess : ndarray (n, m, m)
        ``−I/s + Σ_c ρ_c g''(h_c) t_c t_cᵀ``.
    """
    A = np.atleast_2d(A)
    g, g1, g2 = prob.moments(A @ t.T)
    F = -np.sum(A * A, axis=1) / (2.0 * prob.s) + g @ prob.rho
    grad = -A / prob.s + (g1 * prob.rho) @ t
    hess = np.einsum("nc,ci,cj->nij", g2 * prob.rho, t, t) - np.eye(t.shape[1]) / prob.s
    return F, grad, hess


def hessian(A, t, prob):
    """Hessian of F at each row of ``A`` (n, m, m); see :func:`free_energy`."""
    return free_energy(A, t, prob)[2]


def codes_of(A, t, prob):
    """Code of each readout: ``1[g'(h_c) > threshold]`` per class (n × K int array, THEORY.md §2.2)."""
    g1 = prob.moments(np.atleast_2d(A) @ t.T)[1]
    return (g1 > prob.threshold).astype(np.int64)


def _ascend(A, t, prob, maxiter=100, gtol=1e-10):
    """Batched damped Newton ascent of F from the rows of ``A`` (Armijo backtracking).

    The Newton matrix −∇²F is shifted to be positive definite where F is not concave, so every
    step ascends. A start stops when its gradient is below ``gtol (1 + |a|)/s``, its Newton step
    is below 1e-9 (1 + |a|), or no step along the Newton direction increases F (converged to
    working precision: F is flat to rounding there). Returns the end points,
    their F, gradient norms and Hessians.
    """
    A = np.array(A, dtype=np.float64)
    F, G, Hs = free_energy(A, t, prob)
    live = np.ones(A.shape[0], bool)
    for _ in range(maxiter):
        live &= np.linalg.norm(G, axis=1) > gtol * (1.0 + np.linalg.norm(A, axis=1)) / prob.s
        idx = np.flatnonzero(live)
        if idx.size == 0:
            break
        lam, V = np.linalg.eigh(-Hs[idx])
        lam = np.maximum(lam, 0.25 / prob.s)          # shifted Newton metric: always an ascent direction
        D = np.einsum("nij,nj,nkj,nk->ni", V, 1.0 / lam, V, G[idx])
        slope = np.sum(G[idx] * D, axis=1)
        done = slope < 1e-18 * (1.0 + np.sum(A[idx] ** 2, axis=1))   # Newton step below 1e-9 |a|
        live[idx[done]] = False
        idx, D, slope = idx[~done], D[~done], slope[~done]
        step = np.ones(idx.size)
        todo = np.arange(idx.size)
        for _ in range(40):
            Fn, Gn, Hn = free_energy(A[idx[todo]] + step[todo, None] * D[todo], t, prob)
            ok = Fn >= F[idx[todo]] + 1e-4 * step[todo] * slope[todo]
            sel = idx[todo[ok]]
            A[sel] += step[todo[ok], None] * D[todo[ok]]
            F[sel], G[sel], Hs[sel] = Fn[ok], Gn[ok], Hn[ok]
            todo = todo[~ok]
            step[todo] *= 0.25
            if todo.size == 0:
                break
        live[idx[todo]] = False                       # no ascent possible: at working precision
    return A, F, np.linalg.norm(G, axis=1), Hs


_TABLES = {}
_TABLE_H, _TABLE_STEP = 40.0, 0.005


class _Tabulated:
    """``prob`` with (g, g', g'') from a cubic-Hermite table on |h| ≤ 40 (exact outside).

    Used only for the multistart ascent of :func:`find_maxima`, whose end points are then
    polished with the exact quadrature: the table (≈ 1e-9 accurate, built once per φ in
    ≈ 0.3 s) replaces ≈ 10⁴ scalar quadratures per search.
    """

    def __init__(self, prob):
        self._prob = prob
        key = prob.nl.name
        if key not in _TABLES:
            h = np.arange(-_TABLE_H, _TABLE_H + _TABLE_STEP / 2, _TABLE_STEP)
            g, g1, g2 = tilted_moments(prob.nl, np.concatenate([h, h + 1e-4, h - 1e-4]))
            n = h.size
            g3 = (g2[n:2 * n] - g2[2 * n:]) / 2e-4
            _TABLES[key] = (h, g[:n], g1[:n], g2[:n], g3)
        self._table = _TABLES[key]

    def __getattr__(self, name):
        return getattr(self._prob, name)

    def moments(self, H):
        h, g, g1, g2, g3 = self._table
        H = np.asarray(H, dtype=np.float64)
        x = np.clip(H, h[0], h[-1])
        i = np.clip(((x - h[0]) / _TABLE_STEP).astype(np.int64), 0, h.size - 2)
        u = (x - h[i]) / _TABLE_STEP
        h00, h10, h01, h11 = (1 + 2 * u) * (1 - u) ** 2, u * (1 - u) ** 2, u * u * (3 - 2 * u), u * u * (u - 1)
        d = _TABLE_STEP

        def herm(f, df):
            return h00 * f[i] + h10 * d * df[i] + h01 * f[i + 1] + h11 * d * df[i + 1]

        out = [herm(g, g1), herm(g1, g2), herm(g2, g3)]
        outside = np.abs(H) > _TABLE_H
        if np.any(outside):
            exact = self._prob.moments(H[outside])
            for o, e in zip(out, exact):
                o[outside] = e
        return tuple(out)


def find_maxima(t, prob, n_starts=256, seed=0, scale=None, starts=None, tol=1e-6):
    """All local maxima of F that a multistart ascent finds (THEORY.md §2: global-maximum check).

    Parameters
    ----------
    t : ndarray (K, m)
    prob : ToyProblem
    n_starts : int
        Random starts, uniform in the ball of radius ``scale`` (besides the saturated stationary
        point of every code, ``s Σ_{c∈code} ρ_c t_c max|φ|``).
    seed : int
    scale : float, optional
        Radius of the ball of starts. Default ``s Σ_c ρ_c |t_c| max|φ|``: every stationary point
        ``a = s Σ_c ρ_c g'(h_c) t_c`` lies inside it, since ``|g'| ≤ max|φ|``.
    starts : ndarray (k, m), optional
        Extra starts (e.g. the scheme's own readouts).
    tol : float
        Two end points closer than ``tol·(1 + |a|)`` are the same maximum.

    Returns
    -------
    F : ndarray (k,)
        Values at the distinct maxima, descending.
    A : ndarray (k, m)
        The maxima.
    counts : ndarray (k,)
        How many starts ended at each.
    """
    rng = np.random.default_rng(seed)
    m = t.shape[1]
    if scale is None:
        scale = prob.s * float(np.sum(prob.rho * np.linalg.norm(t, axis=1))) * max(map(abs, prob.nl.range))
    U = rng.standard_normal((n_starts, m))
    U *= (scale * rng.uniform(0.0, 1.0, n_starts) ** (1.0 / m) / np.linalg.norm(U, axis=1))[:, None]
    # every maximum has a code; its saturated stationary point a = s Σ_{c∈code} ρ_c t_c max φ is a start
    C = all_codes(t.shape[0])
    U = np.vstack([prob.s * (C * prob.rho) @ t * max(map(abs, prob.nl.range)), U])
    if starts is not None:
        U = np.vstack([np.atleast_2d(starts), U])
    if prob.nl.code != USER:              # built-in φ: tabulated ascent, then exact polish
        U = _ascend(U, t, _Tabulated(prob), gtol=1e-8)[0]
    A, F, gn, Hs = _ascend(U, t, prob)
    is_max = (gn < 1e-7 * (1.0 + np.linalg.norm(A, axis=1))) & (np.linalg.eigvalsh(Hs)[:, -1] < 0.0)
    A, F = A[is_max], F[is_max]
    order = np.argsort(-F, kind="stable")
    outA, outF, counts = [], [], []
    for i in order:
        for j, b in enumerate(outA):
            if np.linalg.norm(A[i] - b) < tol * (1.0 + np.linalg.norm(b)):
                counts[j] += 1
                break
        else:
            outA.append(A[i])
            outF.append(F[i])
            counts.append(1)
    return np.array(outF), np.array(outA).reshape(-1, m), np.array(counts, dtype=np.int64)


def dual_value(t, prob, T, F_max):
    """Convex dual of the field equations, per P (docs/theory_erf.md §3).

    ``S(t) = (T/2) Σ_c ρ_c |t_c|² − Σ_c ρ_c t_c·Y_c + max_a F(a; t)``; (S2) with degenerate
    global maxima is its (sub)gradient condition, so the equilibrium t minimizes S and is unique.
    ``F_max`` is ``max_a F`` (from :func:`find_maxima`, or the Laplace log-partition per P).
    """
    return float(0.5 * T * prob.rho @ np.sum(t * t, axis=1) - np.sum(prob.rho[:, None] * t * prob.Yc) + F_max)


def saturated_dual(prob, T, codes=None):
    """Minimize the dual in the saturated limit ``g'(h) → 1[h > 0]`` (THEORY.md §2.2).

    There ``max_a F = (s/2) max_S |Σ_{c∈S} ρ_c t_c|²`` over codes S, so the dual is a convex
    quadratically constrained program in (t, u):
    ``min (T/2)Σρ|t_c|² − Σρ t_c·Y_c + u``  s.t.  ``u ≥ (s/2)|Σ_{c∈S} ρ_c t_c|²`` for every S,
    solved by SLSQP. The active constraints are the codes; their multipliers (recovered by
    non-negative least squares from the stationarity condition, which is the saturated (S2)
    ``Y_c − T t_c = Σ_γ P_γ s_γc a_γ`` with ``a_γ = s Σ_{c∈S_γ} ρ_c t_c``) are the fractions.

    Returns
    -------
    t : ndarray (K, m)
    codes : ndarray (n, K)
    P : ndarray (n,)
    A : ndarray (n, m)
    """
    K, m = prob.K, prob.m
    C = all_codes(K) if codes is None else np.atleast_2d(codes)
    W = C * prob.rho                                    # a_S = s W_S t
    rho, s, Y = prob.rho, prob.s, prob.Yc

    def obj(x):
        t = x[:-1].reshape(K, m)
        return 0.5 * T * rho @ np.sum(t * t, 1) - np.sum(rho[:, None] * t * Y) + x[-1]

    def obj_jac(x):
        t = x[:-1].reshape(K, m)
        return np.r_[(rho[:, None] * (T * t - Y)).ravel(), 1.0]

    def cons(x):
        A = s * W @ x[:-1].reshape(K, m)
        return x[-1] - np.sum(A * A, 1) / (2.0 * s)

    def cons_jac(x):
        A = s * W @ x[:-1].reshape(K, m)
        return np.hstack([-np.einsum("gc,gj->gcj", W, A).reshape(len(C), K * m), np.ones((len(C), 1))])

    t0 = Y / (s * rho[:, None])
    x0 = np.r_[t0.ravel(), np.max(-cons(np.r_[t0.ravel(), 0.0])) + 1.0]
    res = optimize.minimize(obj, x0, jac=obj_jac, method="SLSQP",
                            constraints=[dict(type="ineq", fun=cons, jac=cons_jac)],
                            options=dict(ftol=1e-15, maxiter=1000))
    t = res.x[:-1].reshape(K, m)
    slack = cons(res.x)
    act = slack <= np.min(slack) + 1e-6 * max(1.0, abs(res.x[-1]))     # (min: SLSQP stopped early)
    A = s * W[act] @ t
    P = _saturated_fractions(prob, T, t, C[act], A)
    if not np.any(P > 1e-9):                          # degenerate start: spread evenly
        return t, C[act], np.full(A.shape[0], 1.0 / A.shape[0]), A
    keep = P > 1e-9
    return t, C[act][keep], P[keep] / P[keep].sum(), A[keep]


def _saturated_fractions(prob, T, t, codes, A):
    """Non-negative P_γ with ``Y_c − T t_c = Σ_γ P_γ s_γc a_γ`` and ``Σ P_γ = 1`` (least squares)."""
    M = np.einsum("gc,gj->cjg", codes, A).reshape(-1, len(codes))
    rhs = (prob.Yc - T * t).ravel()
    w = 10.0 * max(1.0, float(np.abs(rhs).max()))
    P, _ = optimize.nnls(np.vstack([M, w * np.ones((1, len(codes)))]), np.r_[rhs, w])
    return P


def saturated_scheme(prob, T, codes, fractions=None):
    """Saturated-limit start for a given code set (THEORY.md §2.2).

    With fractions given: t solves the saturated (S2), ``(B + T I) t = Y`` with
    ``B_cc' = s Σ_γ P_γ s_γc s_γc' ρ_c'``. Without: the dual restricted to ``codes``
    (:func:`saturated_dual`), which makes the |a_γ| as equal as the code set allows.

    Returns
    -------
    t, P, A : ndarrays (K, m), (n,), (n, m)
    """
    codes = np.atleast_2d(codes)
    if fractions is None:
        t, kept, P, _ = saturated_dual(prob, T, codes)
        full = np.zeros(len(codes))
        for c, p in zip(kept, P):
            full[np.flatnonzero((codes == c).all(1))[0]] = p
        P = full
    else:
        P = np.asarray(fractions, dtype=np.float64)
        B = prob.s * np.einsum("g,gc,gd,d->cd", P, codes, codes, prob.rho)
        t = np.linalg.lstsq(B + T * np.eye(prob.K), prob.Yc, rcond=None)[0]
    A = prob.s * (codes * prob.rho) @ t
    return t, P, A
