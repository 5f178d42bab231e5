"""Coding schemes of the sigmoid toy theory: the coupled equations, their solution and checks.

THEORY.md §2.2, §4; derivation in ``docs/theory_erf.md``. Unknowns: the field rows t_c
(K × m), one readout a_γ per code (n × m) and the code fractions P_γ. Equations (h_cγ = t_c·a_γ):

    a_γ = s Σ_c ρ_c g'(h_cγ) t_c                          stationarity (∇F(a_γ) = 0)
    Y_c − T t_c = Σ_γ P_γ g'(h_cγ) a_γ                     (S2)

closed by one of three conditions on the fractions (``mode``):

* ``"equilibrium"`` (P → ∞): F(a_γ) = F(a_0) for all γ and Σ P_γ = 1 (degenerate maxima);
* ``"laplace"`` (finite P): P_γ ∝ exp(ℓ_γ), ℓ_γ = P F(a_γ) − ½ log det(−∇²F(a_γ));
* ``"fixed"``: P_γ given (the frozen states of THEORY.md §4).

Everything is solved by Levenberg–Marquardt with the analytic Jacobian.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from . import erf_toy as toy

__all__ = ["Scheme", "laplace_logweights", "residuals", "solve_scheme", "validate", "active_set"]

MODES = ("equilibrium", "laplace", "fixed")


@dataclass
class Scheme:
    """A candidate solution: codes (n × K, 0/1), field t (K × m), readouts A (n × m), fractions P (n,)."""

    codes: np.ndarray
    t: np.ndarray
    A: np.ndarray
    P: np.ndarray
    residual: float = np.inf
    nfev: int = 0
    info: dict = field(default_factory=dict)

    def copy(self):
        return Scheme(self.codes.copy(), self.t.copy(), self.A.copy(), self.P.copy(), self.residual, self.nfev,
                      dict(self.info))


def _pack(t, A, P, mode):
    return np.r_[t.ravel(), A.ravel(), P] if mode == "equilibrium" else np.r_[t.ravel(), A.ravel()]


def _unpack(x, K, m, n, mode):
    t = x[:K * m].reshape(K, m)
    A = x[K * m:K * m + n * m].reshape(n, m)
    P = x[K * m + n * m:] if mode == "equilibrium" else None
    return t, A, P


def laplace_logweights(t, A, prob, derivatives=False):
    """ℓ_γ = P F(a_γ) − ½ log det(−∇²F(a_γ)) (THEORY.md §2, finite-P Laplace weights).

    With ``derivatives=True`` also ∂ℓ_γ/∂a_γ (n × m) and ∂ℓ_γ/∂t (n × K × m), using
    ``∂ log det M = tr(M⁻¹ ∂M)`` with ``M = I/s − Σ_c ρ_c g''(h_c) t_c t_cᵀ``.
    Returns ``-inf`` weights where a_γ is not a strict local maximum.
    """
    F, grad, hess = toy.free_energy(A, t, prob)
    M = -hess
    sign, logdet = np.linalg.slogdet(M)
    ell = np.where(sign > 0, prob.P * F - 0.5 * logdet, -np.inf)
    if not derivatives:
        return ell
    H = A @ t.T
    _, g1, g2 = prob.moments(H)
    g3 = prob.third_cumulant(H)
    Minv = np.linalg.inv(M)
    Mt = np.einsum("nij,cj->nci", Minv, t)                 # M⁻¹ t_c
    q = np.einsum("ci,nci->nc", t, Mt)                      # t_cᵀ M⁻¹ t_c
    rho = prob.rho
    dld_a = -np.einsum("nc,ci->ni", rho * g3 * q, t)
    dld_t = -(rho * g3 * q)[:, :, None] * A[:, None, :] - 2.0 * (rho * g2)[:, :, None] * Mt
    dF_t = (rho * g1)[:, :, None] * A[:, None, :]
    return ell, prob.P * grad - 0.5 * dld_a, prob.P * dF_t - 0.5 * dld_t


def _softmax(ell):
    w = np.exp(ell - np.max(ell))
    return w / w.sum()


def residuals(x, prob, T, n, mode, P_fixed=None, jac=False):
    """Residual vector of the scheme equations (module docstring) and optionally its Jacobian.

    Order: stationarity (n·m), then [degeneracy (n−1) for "equilibrium"], (S2) (K·m),
    [Σ P_γ − 1 for "equilibrium"].
    """
    K, m, s, rho = prob.K, prob.m, prob.s, prob.rho
    t, A, P = _unpack(x, K, m, n, mode)
    H = A @ t.T                                             # h_cγ, n × K
    g, g1, g2 = prob.moments(H)
    if mode == "fixed":
        P = P_fixed
    elif mode == "laplace":
        if jac:
            ell, dell_a, dell_t = laplace_logweights(t, A, prob, derivatives=True)
        else:
            ell = laplace_logweights(t, A, prob)
        if not np.all(np.isfinite(ell)):                    # some a_γ is no longer a maximum
            ell = np.where(np.isfinite(ell), ell, np.max(ell[np.isfinite(ell)], initial=0.0) - 50.0)
        P = _softmax(ell)
    stat = A - s * (g1 * rho) @ t
    s2 = prob.Yc - T * t - np.einsum("g,gc,gj->cj", P, g1, A)
    F = -np.sum(A * A, 1) / (2.0 * s) + g @ rho
    parts = [stat.ravel()]
    if mode == "equilibrium":
        parts.append(F[1:] - F[0])
    parts.append(s2.ravel())
    if mode == "equilibrium":
        parts.append([P.sum() - 1.0])
    r = np.concatenate(parts)
    if not jac:
        return r
    nt, na = K * m, n * m
    nx = x.size
    I_m = np.eye(m)
    J_stat = np.zeros((n, m, nx))
    J_s2 = np.zeros((K, m, nx))
    dF = np.zeros((n, nx))
    for gam in range(n):
        a = A[gam]
        sl = slice(nt + gam * m, nt + (gam + 1) * m)
        J_stat[gam, :, sl] = I_m - s * np.einsum("c,ci,cj->ij", rho * g2[gam], t, t)
        dF[gam, sl] = -a / s + (rho * g1[gam]) @ t
        for c in range(K):
            tsl = slice(c * m, (c + 1) * m)
            J_stat[gam, :, tsl] = -s * rho[c] * (g2[gam, c] * np.outer(t[c], a) + g1[gam, c] * I_m)
            dF[gam, tsl] = rho[c] * g1[gam, c] * a
            J_s2[c, :, tsl] -= P[gam] * g2[gam, c] * np.outer(a, a)
            J_s2[c, :, sl] -= P[gam] * (g2[gam, c] * np.outer(a, t[c]) + g1[gam, c] * I_m)
    for c in range(K):
        J_s2[c, :, c * m:(c + 1) * m] -= T * I_m
    if mode == "equilibrium":
        for gam in range(n):
            J_s2[:, :, nt + na + gam] = -g1[gam][:, None] * A[gam][None, :]
    elif mode == "laplace":
        dell = np.zeros((n, nx))
        dell[:, :nt] = dell_t.reshape(n, nt)
        for gam in range(n):
            dell[gam, nt + gam * m:nt + (gam + 1) * m] = dell_a[gam]
        dP = P[:, None] * (dell - P @ dell)                 # softmax derivative
        J_s2 -= np.einsum("gc,gj,gx->cjx", g1, A, dP)
    rows = [J_stat.reshape(n * m, nx)]
    if mode == "equilibrium":
        rows.append(dF[1:] - dF[0])
    rows.append(J_s2.reshape(K * m, nx))
    if mode == "equilibrium":
        last = np.zeros((1, nx))
        last[0, nt + na:] = 1.0
        rows.append(last)
    return r, np.vstack(rows)


def solve_scheme(prob, T, scheme, mode, P_fixed=None, tol=1e-12, max_nfev=400):
    """Levenberg–Marquardt on the scheme equations from ``scheme`` (a :class:`Scheme`).

    Returns a new :class:`Scheme` with ``residual`` (max-norm) and, for "laplace"/"fixed",
    the implied fractions in ``P``.
    """
    n = len(scheme.codes)
    if mode == "laplace" and n == 1:
        mode_eff, P_fixed = "fixed", np.ones(1)
    else:
        mode_eff = mode
    x0 = _pack(scheme.t, scheme.A, scheme.P, mode_eff)
    with np.errstate(all="ignore"):
        try:
            res = optimize.least_squares(
                lambda x: residuals(x, prob, T, n, mode_eff, P_fixed),
                x0, jac=lambda x: residuals(x, prob, T, n, mode_eff, P_fixed, jac=True)[1],
                method="lm", xtol=tol, ftol=tol, gtol=tol, max_nfev=max_nfev)
            x, nfev = res.x, res.nfev
        except (ValueError, np.linalg.LinAlgError) as exc:   # fields so large the integrals fail
            out = scheme.copy()
            out.residual, out.info = np.inf, dict(error=str(exc))
            return out
    t, A, P = _unpack(x, prob.K, prob.m, n, mode_eff)
    if mode_eff == "fixed":
        P = np.array(P_fixed, dtype=np.float64)
    elif mode_eff == "laplace":
        P = _softmax(laplace_logweights(t, A, prob))
    r = residuals(x, prob, T, n, mode_eff, P_fixed)
    return Scheme(scheme.codes.copy(), t, A, np.array(P), float(np.max(np.abs(r))), int(nfev))


def validate(prob, scheme, mode, n_starts=128, seed=0, tol_F=1e-9, min_weight=1e-8):
    """Checks that make a solution of the equations a posterior (THEORY.md §2, §2.2).

    * every a_γ is a strict local maximum (∇²F negative definite);
    * the code of a_γ computed from ``g'(h_cγ) > threshold`` equals its label;
    * fractions are non-negative;
    * global: a multistart search (:func:`erf_toy.find_maxima`, ``n_starts`` random starts plus
      the a_γ) finds no maximum above max_γ F(a_γ) + ``tol_F`` ("equilibrium") or no local maximum
      outside the scheme with relative Laplace weight above ``min_weight`` ("laplace").

    Returns
    -------
    dict
        ``ok`` and the details: ``F`` (per code), ``F_best`` and ``a_best`` (the best maximum the
        search found), ``hessian_max_eig``, ``codes_found``, ``missing`` (maxima to add: list of
        (F, a, code)), ``maxima`` (all distinct maxima found: F, A, counts).
    """
    t, A = scheme.t, scheme.A
    F, _, hess = toy.free_energy(A, t, prob)
    eig = np.linalg.eigvalsh(hess)[:, -1]
    found_codes = toy.codes_of(A, t, prob)
    Fm, Am, counts = toy.find_maxima(t, prob, n_starts=n_starts, seed=seed, starts=A)
    missing = []
    near = lambda a: np.min(np.linalg.norm(A - a, axis=1)) < 1e-5 * (1.0 + np.linalg.norm(a))
    if mode == "laplace":
        ell = laplace_logweights(t, A, prob)
        ell_m = laplace_logweights(t, Am, prob)
        for f, a, e in zip(Fm, Am, ell_m):
            if not near(a) and e - np.max(ell) > np.log(min_weight):
                missing.append((float(f), a, tuple(toy.codes_of(a, t, prob)[0])))
    else:
        for f, a in zip(Fm, Am):
            if f > np.max(F) + tol_F and not near(a):
                missing.append((float(f), a, tuple(toy.codes_of(a, t, prob)[0])))
    ok_codes = bool(np.array_equal(found_codes, scheme.codes))
    ok_max = bool(np.all(eig < 0))
    ok_P = bool(np.all(scheme.P >= -1e-12))
    ok_global = not missing and Fm[0] <= np.max(F) + tol_F
    return dict(ok=ok_codes and ok_max and ok_P and ok_global, ok_codes=ok_codes, ok_max=ok_max, ok_P=ok_P,
                ok_global=ok_global, F=F, F_best=float(Fm[0]), a_best=Am[0], hessian_max_eig=eig,
                codes_found=found_codes, missing=missing, maxima=(Fm, Am, counts))


def _merge(scheme, prob):
    """Relabel the codes from the readouts and merge duplicates (fractions added)."""
    codes = toy.codes_of(scheme.A, scheme.t, prob)
    keys, first, inv = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    P = np.bincount(inv.ravel(), weights=scheme.P, minlength=len(keys))
    return Scheme(keys, scheme.t, scheme.A[first], P)


def active_set(prob, T, scheme, mode, P_fixed=None, max_rounds=12, n_starts=128, seed=0, tol=1e-12,
               res_tol=1e-9):
    """Solve, then repair the code set until the solution validates (docs/theory_erf.md §4).

    Each round: solve with the current codes (if Levenberg–Marquardt ends above ``res_tol`` the
    result is returned as it is, validated, to be flagged); drop the code with the most negative fraction;
    relabel codes whose readout moved into another code's region (merging duplicates); add every
    maximum the global search finds above the scheme ("equilibrium") or with a non-negligible
    Laplace weight ("laplace"). "fixed" only solves and validates (its codes are given).

    Returns
    -------
    scheme : Scheme
        With ``info['validation']`` (see :func:`validate`) and ``info['rounds']``.
    """
    history = []
    cur = scheme.copy()
    for rnd in range(1, max_rounds + 1):
        sol = solve_scheme(prob, T, cur, mode, P_fixed, tol=tol)
        history.append((tuple(map(tuple, cur.codes)), sol.residual))
        if not np.isfinite(sol.residual):
            break
        if mode == "equilibrium" and sol.P.min() < -1e-10 and len(sol.codes) > 1:
            k = int(np.argmin(sol.P))
            keep = np.arange(len(sol.P)) != k
            cur = Scheme(sol.codes[keep], sol.t, sol.A[keep], np.maximum(sol.P[keep], 0) / np.maximum(sol.P[keep], 0).sum())
            continue
        if sol.residual > res_tol:                          # LM failed: report, do not repair blindly
            sol.info.update(validation=validate(prob, sol, mode, n_starts=n_starts, seed=seed + rnd), rounds=rnd,
                            history=history)
            return sol
        if mode == "laplace" and len(sol.codes) > 1:
            d = np.linalg.norm(sol.A[:, None] - sol.A[None], axis=2) + np.eye(len(sol.codes))
            dup = np.any(np.triu(d < 1e-6 * (1.0 + np.linalg.norm(sol.A, axis=1))[:, None]), axis=0)
            if dup.any():                                   # modes collapsed onto one point: count it once
                keep = ~dup
                cur = Scheme(toy.codes_of(sol.A[keep], sol.t, prob), sol.t, sol.A[keep], sol.P[keep])
                continue
        chk = validate(prob, sol, mode, n_starts=n_starts, seed=seed + rnd)
        sol.info.update(validation=chk, rounds=rnd, history=history)
        if mode == "fixed" or chk["ok"]:
            return sol
        if not chk["ok_codes"]:
            merged = _merge(sol, prob)
            if len(merged.codes) < len(sol.codes) or not np.array_equal(merged.codes, sol.codes):
                cur = merged
                continue
        if chk["missing"]:
            new = [(a, c) for _, a, c in chk["missing"] if not (sol.codes == c).all(1).any()]
            if not new:      # a missing maximum with an existing code: replace that readout
                f, a, c = chk["missing"][0]
                A = sol.A.copy()
                A[np.flatnonzero((sol.codes == c).all(1))[0]] = a
                cur = Scheme(sol.codes, sol.t, A, sol.P)
                continue
            cur = Scheme(np.vstack([sol.codes, [c for _, c in new]]), sol.t,
                         np.vstack([sol.A, [a for a, _ in new]]), np.r_[sol.P, np.zeros(len(new))])
            continue
        return sol
    sol = sol if "sol" in locals() else cur
    sol.info.setdefault("history", history)
    sol.info["rounds"] = max_rounds
    return sol
