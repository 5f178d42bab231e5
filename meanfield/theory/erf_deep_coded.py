"""Coded branch of the two-hidden-layer sigmoid theory on the toy task (docs/theory_erf_deep.md §8).

Variational form of the saddle (§1): eliminating the conjugate field Λ by its own saddle gives the
first-layer rate function

    I1(K1) = max_Λ [½ tr(Λ K1) − log Z1(Λ)]                                              (V1)

(convex; its maximizer Λ1(K1) is the first layer's inverse response), and the equilibrium K1 is a
stationary point of ``−I1(K1) + F2(K1)`` with F2 the feature-layer free energy after its t-saddle:
``Λ1(K1) = Λ2(K1)``, Λ2 = 2 ∂F2/∂K1 (the Stein form (D2)). Class-reduced: ``K1 = diag(d_c) + E B Eᵀ``,
``Λ = diag(λ_c) + E C Eᵀ``.

* :func:`layer1_inverse`: Λ1(K1), maximizing the concave ``½ tr(Λ K1) − log Z1(Λ)`` (exact quadrature).
* :func:`feature_layer` / :func:`stein_lambda`: the *equilibrium* feature layer at a given K1, exact in
  the readout (:func:`.erf_fluct.solve_fluct`, replica-exchange Monte Carlo, convex in t) and its Λ2.
* :func:`solve_frozen`: the saddle with a **frozen feature population** — the feature code fractions
  are imposed (a sampled network's feature neurons do not switch at T = 0.02, and their fractions are
  not the equilibrium ones: docs §8), every code's readout at its own maximum of F2 (Laplace in a,
  exact in v; all modes tracked by Newton, :class:`Modes`), and t, K1 = (d, B), Λ = (λ, C) solved
  together by MINPACK ``hybr`` on frozen quadrature grids, class exchange 1 ↔ 2 imposed.
"""
from __future__ import annotations

import itertools
import types

import numpy as np
from scipy import optimize

from . import erf_deep_layers as lay
from .erf_fluct import solve_fluct
from .erf_general import Problem

__all__ = ["kernel_stats", "layer1_inverse", "feature_layer", "stein_lambda", "Modes", "find_modes",
           "frozen_residual", "solve_frozen"]


def kernel_stats(d, B, n):
    """Sufficient statistics of ``K1 = diag(d_c) + E B Eᵀ`` paired with (λ, C) in ``tr(Λ K1)``:
    ``D_c = n_c (d_c + B_cc)`` (diagonal blocks) and ``M = n nᵀ ⊙ B + diag(n d)`` (class sums)."""
    return n * (d + np.diag(B)), np.outer(n, n) * B + np.diag(n * d)


def _sym_basis(K):
    """Orthonormal basis (K × K) in which the 1 ↔ 2 exchange (classes 1 and 2, K = 3) is diagonal:
    columns e0, (e1 + e2)/√2 (symmetric) and (e1 − e2)/√2 (antisymmetric)."""
    V = np.eye(K)
    if K == 3:
        V = np.array([[1.0, 0, 0], [0, 1 / np.sqrt(2), 1 / np.sqrt(2)], [0, 1 / np.sqrt(2), -1 / np.sqrt(2)]])
    return V


def layer1_inverse(d, B, rho, P, x0=None, symmetric=True, gtol=1e-6, maxiter=80):
    """First-layer inverse response Λ1(K1) of (V1): maximize ``½ tr(Λ K1) − log Z1(Λ)``.

    Parameters
    ----------
    d, B : ndarray (K,), (K, K)
        Target kernel blocks.
    rho : ndarray (K,)
        Class fractions; ``P`` the number of inputs.
    x0 : ndarray, optional
        Start in the internal coordinates (``info["x"]`` of a previous call).
    symmetric : bool
        Impose the 1 ↔ 2 class exchange (K = 3; the target must be symmetric): C block-diagonal in
        :func:`_sym_basis`.
    gtol : float
        ``converged`` if the kernel mismatch (max |gradient| relative to max |M|) is below it. L-BFGS on
        re-placed quadrature grids stalls near 1e-2 relative (the problem is near-critical in the class
        contrasts, docs §4): a start / diagnostic, not a precise inverse.

    Returns
    -------
    lam : ndarray (K,)
    C : ndarray (K, K)
        Class-block part of Λ (PSD; the Hubbard–Stratonovich covariance of the class field u).
    info : dict
        ``x`` (restart), ``grad`` (relative max-norm gradient = kernel mismatch), ``layer1`` (the
        :func:`.erf_deep_layers.layer1_posterior` output at the optimum), ``nfev``.
    """
    K, n = len(rho), P * rho
    Dt, Mt = kernel_stats(d, B, n)
    V = _sym_basis(K)
    sym = symmetric and K == 3
    il = np.tril_indices(2 if sym else K)

    def unpack(x):
        if sym:
            lam = np.array([x[0], x[1], x[1]])
            L = np.zeros((2, 2))
            L[il] = x[2:5]
            S = np.zeros((3, 3))
            S[:2, :2] = L @ L.T
            S[2, 2] = x[5] ** 2
            Lfull = np.zeros((3, 3))
            Lfull[:2, :2], Lfull[2, 2] = L, x[5]
        else:
            lam = x[:K]
            Lfull = np.zeros((K, K))
            Lfull[il] = x[K:]
            S = Lfull @ Lfull.T
        return lam, V @ S @ V.T / P, Lfull

    nfev = [0]

    def f(x):
        nfev[0] += 1
        lam, C, L = unpack(x)
        l1 = lay.layer1_posterior(lam, C + 1e-12 * np.eye(K), rho, P)
        D, M = kernel_stats(l1["d"], l1["B"], n)
        val = l1["logZ"] - 0.5 * (lam @ Dt + np.sum(C * Mt))
        gl, GC = 0.5 * (D - Dt), 0.5 * (M - Mt)
        GS = V.T @ GC @ V                                  # dC = V dS Vᵀ / P, S = L Lᵀ
        gL = 2 * GS @ L / P
        if sym:
            g = np.concatenate([[gl[0], gl[1] + gl[2]], gL[:2, :2][il], [gL[2, 2]]])
        else:
            g = np.concatenate([gl, gL[il]])
        return val, g

    if x0 is None:
        if sym:
            x0 = np.array([-1.0, -1.0, np.sqrt(10.0), 0.0, np.sqrt(10.0), np.sqrt(30.0)])
        else:
            x0 = np.concatenate([np.full(K, -1.0), (np.eye(K) * np.sqrt(10.0))[il]])
    r = optimize.minimize(f, x0, jac=True, method="L-BFGS-B",
                          options=dict(maxiter=maxiter, gtol=1e-12, ftol=1e-15, maxcor=30))
    lam, C, _ = unpack(r.x)
    l1 = lay.layer1_posterior(lam, C, rho, P)
    D, M = kernel_stats(l1["d"], l1["B"], n)
    grad = max(np.max(np.abs(D - Dt)), np.max(np.abs(M - Mt))) / np.max(np.abs(Mt))
    S = V.T @ C @ V * P
    x = r.x
    if sym and np.all(np.linalg.eigvalsh(S[:2, :2]) > 0) and S[2, 2] > 0:
        L = np.linalg.cholesky(S[:2, :2])
        x = np.array([lam[0], lam[1], L[0, 0], L[1, 0], L[1, 1], np.sqrt(S[2, 2])])
    return lam, C, dict(x=x, grad=float(grad), layer1=l1, nfev=nfev[0], converged=bool(grad <= gtol),
                        message=r.message)


def _problem(task, classes, d, B, T, s):
    """The feature layer as an L = 1 problem (:class:`.erf_general.Problem`) with input kernel K1."""
    E = np.eye(len(d))[classes]
    K1 = E @ B @ E.T + np.diag(d[classes])
    return Problem(types.SimpleNamespace(K0=K1, Y=task.Y, labels=classes), T, s)


def stein_lambda(pr, t, Z, classes, K):
    """Class-reduced Λ2 = ⟨∇ℓ∇ℓᵀ + ∇²ℓ⟩ (D2) from preactivation samples Z (n_sys, n, P).

    With ``a | z ~ N(ā, (s/P) I)``, ``ā = (s/P) tᵀφ(z)``, ``h̄ = t ā``:
    ``Λ_μν = ⟨(h̄_μ h̄_ν + (s/P) t_μ·t_ν) φ'_μ φ'_ν⟩ + δ_μν ⟨h̄_μ φ''_μ⟩``. Class blocks:
    ``C_cc'`` = mean of the off-diagonal entries of block (c, c'), ``λ_c`` = mean diagonal − C_cc.

    Returns
    -------
    lam, C, lam_se, C_se : the estimates and their batch-means standard errors (over the n_sys ladders).
    """
    c = pr.s / pr.P
    F, dF, d2F = pr.f(Z), pr.df(Z), pr.d2f(Z)
    A = c * F @ t                                     # ā (n_sys, n, m)
    Hb = A @ t.T                                      # h̄ (n_sys, n, P)
    E = np.eye(K)[classes]                            # P × K
    g = (Hb * dF) @ E                                 # Σ_{μ∈c} h̄_μ φ'_μ  (n_sys, n, K)
    W = np.einsum("snp,pk,pj->snkj", dF, E, t)        # Σ_{μ∈c} φ'_μ t_μ   (n_sys, n, K, m)
    full = np.einsum("snk,snl->skl", g, g) + c * np.einsum("snkj,snlj->skl", W, W)   # block sums of ⟨∇ℓ∇ℓᵀ⟩
    diag1 = (Hb * dF) ** 2 + c * dF ** 2 * np.sum(t * t, axis=1)                      # μ = ν terms of it
    diag2 = Hb * d2F
    n_s = Z.shape[1]
    full /= n_s
    dg1 = (diag1.mean(axis=1)) @ E                    # (n_sys, K) block sums of the diagonal
    dg2 = (diag2.mean(axis=1)) @ E
    nc = E.sum(axis=0)
    off = full - np.einsum("sk,kl->skl", dg1, np.eye(K))
    pairs = np.outer(nc, nc) - np.diag(nc)
    Cs = off / pairs                                   # (n_sys, K, K)
    lams = (dg1 + dg2) / nc - np.einsum("skk->sk", Cs)
    m = Z.shape[0]
    return (lams.mean(0), Cs.mean(0), lams.std(0, ddof=1) / np.sqrt(m), Cs.std(0, ddof=1) / np.sqrt(m))


def feature_layer(task, classes, d, B, T, s, t0=None, seed=0, n_sys=16, n_lev=16, sweeps=(200, 400, 800),
                  max_iter=30, progress=None):
    """The feature layer at input kernel (d, B): :func:`.erf_fluct.solve_fluct` and the Stein Λ2.

    Returns a dict with ``t`` (P × m), ``lam``, ``C``, their standard errors ``lam_se``, ``C_se``,
    ``Z`` (samples), ``pr`` (the :class:`Problem`), ``fluct`` (the solve_fluct output).
    """
    pr = _problem(task, classes, d, B, T, s)
    r = solve_fluct(pr, t0=t0, n_sys=n_sys, n_lev=n_lev, sweeps=sweeps, max_iter=max_iter, seed=seed,
                    progress=progress)
    lam, C, lam_se, C_se = stein_lambda(pr, r["t"], r["Z"], classes, len(d))
    return dict(t=r["t"], lam=lam, C=C, lam_se=lam_se, C_se=C_se, Z=r["Z"], pr=pr, fluct=r)


# ------------------------------------------------------------------- feature layer, Laplace in a
def _codes_starts(t, rho, s, K):
    """Every nonzero code's saturated stationary point ``a = s Σ_{c∈code} ρ_c t_c``."""
    codes = np.array([c for c in itertools.product((0, 1), repeat=K) if any(c)])
    return s * (codes * rho) @ t


class Modes:
    """Feature-layer modes tracked individually: one :class:`Geometry` (frozen v-grid) per mode, so
    the Laplace mixture over *all* of them is a smooth function of (t, d, B) — no mode is dropped."""

    def __init__(self, A):
        self.A = np.array(A, float)
        self.geos = [lay.Geometry() for _ in self.A]

    def evaluate(self, t, d, B, rho, P, s, frozen=False, weights=None):
        """Newton-tracked modes at (t, d, B); Laplace log-weights (or the fixed ``weights`` of a frozen
        population, one per mode); the (S2) output and the Stein Λ2 (``gvv`` = λ, ``gg`` = C)."""
        rows = []
        for g, a in enumerate(self.A):
            geo = self.geos[g]
            if frozen:
                with geo.freeze():
                    r = lay.feature_modes(t, d, B, rho, P, s, a[None], geometry=geo)
            else:
                r = lay.feature_modes(t, d, B, rho, P, s, a[None], geometry=geo)
            if len(r[0]) == 0:
                raise FloatingPointError(f"feature mode {g} lost (not a maximum)")
            rows.append((r[0][0], r[1][0], r[3][0], r[4][0]))
        A = np.array([r[0] for r in rows])
        F = np.array([r[1] for r in rows])
        H = np.array([r[2] for r in rows])
        vps = [r[3] for r in rows]
        logw = P * F - 0.5 * np.linalg.slogdet(-H)[1]
        if weights is None:
            w = np.exp(logw - logw.max())
            w /= w.sum()
        else:
            w = np.asarray(weights, float) / np.sum(weights)
        phis = np.array([v["phi"] for v in vps])
        return dict(A=A, F=F, H=H, vp=vps, logw=logw, P=w, phis=phis,
                    out=np.einsum("g,gc,gj->cj", w, phis, A),
                    gvv=w @ np.array([v["gvv"] for v in vps]),
                    gg=np.einsum("g,gij->ij", w, np.array([v["gv_gv"] for v in vps])),
                    codes=(phis > 0.5).astype(np.int64))


def find_modes(t, d, B, rho, P, s):
    """Distinct feature-layer maxima reached from every code's saturated point (one search)."""
    A, F, _, _, _ = lay.feature_modes(t, d, B, rho, P, s, _codes_starts(t, rho, s, len(rho)))
    return Modes(A)


def _t_sym(y):
    """t (3 × 3) from its 1 ↔ 2 symmetric parameters (t00, t01, t10, t11, t12)."""
    t00, t01, t10, t11, t12 = y
    return np.array([[t00, t01, t01], [t10, t11, t12], [t10, t12, t11]])


def _t_unsym(t):
    return np.array([t[0, 0], t[0, 1], t[1, 0], t[1, 1], t[1, 2]])


# --------------------------------------------------------- frozen feature population: the full saddle
def _lamC(y, V, P):
    """(λ, C) from the symmetric parameters (λ0, λ1, S00, S01, S11, S22), C = V S Vᵀ / P."""
    S = np.zeros((3, 3))
    S[0, 0], S[0, 1], S[1, 1], S[2, 2] = y[2:]
    S[1, 0] = S[0, 1]
    return np.array([y[0], y[1], y[1]]), V @ S @ V.T / P


def _lamC_unsym(lam, C, V, P):
    S = V.T @ C @ V * P
    return np.array([lam[0], lam[1], S[0, 0], S[0, 1], S[1, 1], S[2, 2]])


def frozen_residual(x, modes, weights, rho, Yc, P, s, T, geo1, frozen=True):
    """Residual of the saddle with a frozen feature population (fixed code fractions ``weights``).

    ``x = (t: 5 symmetric parameters, λ0, λ1, S00, S01, S11, S22)``; equations (S2) for t and
    Λ = Λ2 (Stein, averaged over the population) for (λ, C), the C rows multiplied by P.
    """
    V = _sym_basis(3)
    t = _t_sym(x[:5])
    lam, C = _lamC(x[5:], V, P)
    if np.linalg.eigvalsh(C)[0] <= 0:
        raise FloatingPointError("C is not positive definite")
    if frozen:
        with geo1.freeze():
            l1 = lay.layer1_posterior(lam, C, rho, P, geometry=geo1)
    else:
        l1 = lay.layer1_posterior(lam, C, rho, P, geometry=geo1)
    ev = modes.evaluate(t, l1["d"], l1["B"], rho, P, s, frozen=frozen, weights=weights)
    R_t = _t_unsym(Yc - T * t - ev["out"])
    R_l = _lamC_unsym(ev["gvv"], ev["gg"], V, P) - x[5:]
    return np.concatenate([R_t, R_l]), dict(t=t, lam=lam, C=C, layer1=l1, feature=ev)


def _swap12(code):
    return (code[0], code[2], code[1])


def solve_frozen(task, T, fractions, d0, B0, t0, *, lam0=None, C0=None, sigma_a2=None, tol=1e-4, rounds=8, N=None,
                 progress=False):
    """Saddle of the depth-2 theory with a *frozen* feature-layer population (docs §8).

    The feature-layer code fractions are given (``fractions``: dict code → fraction, e.g. from a sampled
    network whose feature neurons never switch); every code's readout sits at its own maximum of F2
    (Laplace in a, exact in v), and t, the first-layer kernel K1 = (d, B) and its conjugate Λ = (λ, C)
    are solved self-consistently: (S2) with the fixed fractions and Λ = Σ_γ P_γ Λ2_γ (Stein), with the
    first layer exact (continuous u-mixture). Class exchange 1 ↔ 2 imposed (K = 3, ρ1 = ρ2).

    Parameters
    ----------
    task : Task
        Toy task with three classes, classes 1 and 2 exchangeable.
    T : float
    fractions : dict
        Feature code → fraction (codes related by 1 ↔ 2 are averaged).
    d0, B0, t0 : ndarray
        Start: first-layer kernel blocks (K,), (K, K) and class field (K × m).
    lam0, C0 : ndarray, optional
        Start of Λ; default the feature layer's Stein Λ2 at the start.
    tol : float
        ``converged`` when the max-norm residual, re-evaluated on freshly placed quadrature grids, is
        ≤ tol: (S2) in units of the targets, the Λ equations relative to max(1, |λ|) and max(1, |P C|)
        entrywise. The grids are accurate to ≈ 1e-5 relative (docs §3): the default is 10× that.
    rounds : int
        MINPACK ``hybr`` solves on frozen grids, the grids re-placed between rounds.

    Returns
    -------
    Solution
        As :func:`.erf_deep.solve_erf_deep` (``info["layer1"]``, ``info["feature"]``, …);
        ``info["frozen_fractions"]`` holds the imposed fractions.
    """
    from .relu_toy import class_reduction
    from .erf_deep import DeepState
    from .erf_deep_assemble import assemble
    rho, Yc, classes = class_reduction(task, tol=1e-10)
    P = task.P
    if len(rho) != 3 or abs(rho[1] - rho[2]) > 1e-12 or np.max(np.abs(Yc[[0, 2, 1]][:, [0, 2, 1]] - Yc)) > 1e-12:
        raise NotImplementedError("frozen-population solve: three classes with classes 1 and 2 exchangeable")
    sigma_a2 = 1.0 / P if sigma_a2 is None else float(sigma_a2)
    s = P * sigma_a2
    sw = [0, 2, 1]
    d0 = 0.5 * (d0 + d0[sw])
    B0 = 0.5 * (B0 + B0[sw][:, sw])
    t0 = _t_sym(_t_unsym(0.5 * (t0 + t0[sw][:, sw])))
    fr = {tuple(c): 0.5 * (p + fractions.get(_swap12(tuple(c)), 0.0)) for c, p in fractions.items()}
    fr.update({_swap12(c): p for c, p in fr.items()})
    fr = {c: p for c, p in fr.items() if p > 0 and any(c)}
    found = find_modes(t0, d0, B0, rho, P, s)
    ev = found.evaluate(t0, d0, B0, rho, P, s)
    mcodes = [tuple(int(b) for b in c) for c in ev["codes"]]
    missing = [c for c in fr if c not in mcodes]
    if missing:
        raise ValueError(f"no feature-layer maximum with code(s) {missing} at the start (found {mcodes})")
    keep = [mcodes.index(c) for c in fr]
    modes = Modes(ev["A"][keep])
    w = np.array([fr[mcodes[i]] for i in keep])
    V = _sym_basis(3)
    if lam0 is None or C0 is None:
        e0 = modes.evaluate(t0, d0, B0, rho, P, s, weights=w)
        lam0, C0 = e0["gvv"], e0["gg"]
    x = np.concatenate([_t_unsym(t0), _lamC_unsym(0.5 * (lam0 + lam0[sw]), 0.5 * (C0 + C0[sw][:, sw]), V, P)])
    geo1 = lay.Geometry()
    nfev, history = 0, []

    def fun(y):
        try:
            return frozen_residual(y, modes, w, rho, Yc, P, s, T, geo1)[0]
        except (FloatingPointError, np.linalg.LinAlgError):
            return np.full(11, 1e3)

    def fresh(x):                      # residual on freshly placed grids, relative to max(1, |value|)
        R, info = frozen_residual(x, modes, w, rho, Yc, P, s, T, geo1, frozen=False)
        scale = np.concatenate([np.ones(5), np.maximum(1.0, np.abs(x[5:]))])
        return float(np.max(np.abs(R) / scale)), info

    res, info = fresh(x)
    for rnd in range(rounds):
        if res <= tol:
            break
        modes.A = info["feature"]["A"]
        sol = optimize.root(fun, x, method="hybr", options=dict(eps=1e-6, xtol=1e-8))
        nfev += sol.nfev
        if np.max(np.abs(sol.fun)) < 1e2:
            x = sol.x
        prev, (res, info) = res, fresh(x)
        history.append(dict(round=rnd, frozen_residual=float(np.max(np.abs(sol.fun))), residual=res, nfev=sol.nfev))
        if progress:
            print(f"  [erf depth 2, frozen feature population] round {rnd}: residual {res:.2e} "
                  f"(frozen grids {history[-1]['frozen_residual']:.1e}, {sol.nfev} evaluations)", flush=True)
        if res > 0.5 * prev:                             # stalled at the quadrature floor
            break
    ok = res <= tol
    st = DeepState(rho, Yc, s, P, T)
    fl = info["feature"]
    info.update(d=info["layer1"]["d"], B=info["layer1"]["B"], out=fl["out"])
    msg = (f"{'converged' if ok else 'NOT converged'}: residual {res:.1e} (tol {tol:.0e}, fresh quadrature grids); "
           f"frozen feature population {len(w)} code(s)")
    sol = assemble(task, st, info, classes, x, res, ok, msg, nfev, sigma_a2, N)
    sol.info["frozen_fractions"] = dict(zip([mcodes[i] for i in keep], w / w.sum()))
    sol.info["history"] = history
    return sol
