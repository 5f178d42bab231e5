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
* The saddle with a **frozen feature population** (``solve_frozen``) is in :mod:`.erf_deep_frozen`.
"""
from __future__ import annotations

import types

import numpy as np
from scipy import optimize

from . import erf_deep_layers as lay
from .erf_fluct import solve_fluct
from .erf_general import Problem

__all__ = ["kernel_stats", "layer1_inverse", "feature_layer", "stein_lambda"]


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
