"""Exact (unsmoothed) ReLU outliers on general data: active sets on activation patterns (docs/theory_relu.md §8).

ReLU is piecewise linear, so on a fixed activation pattern of an outlier — inputs active (z̄_μ > 0),
inactive (< 0) and pinned (z̄_μ = 0, linear equality constraints) — everything is smooth:

* :func:`slide`: the outlier energy (:func:`meanfield.theory.relu_general.outlier_loss`, exact relu)
  minimized by L-BFGS on the faces ``u_i ∈ null(B_Z)``, pins released by their multipliers and
  added where inputs stick at the kink, until the pattern is stable;
* :func:`polish_direction`: a local maximum of the certificate's ρ(u) = (s/P)|tᵀrelu(Bu)|²/|u|²
  exactly — on a face ρ is a Rayleigh quotient of rank ≤ m, maximized by a singular vector;
* :func:`solve_master`: on fixed directions û_j (features φ_j = relu(B û_j)) the energy over output
  weights is the convex group lasso

      F(V) = κ Σ_j |v_j| + |Y_b − Φ V|² / (2T),        κ = √(P/s),                         (M)

  whose KKT conditions are the outlier equations (``tᵀφ_j = κ v̂_j``, i.e. ρ(û_j) = 1 and
  ā = (s/P)tᵀrelu(B u) for the balanced outlier ``u = c û, ā = v/c, c² = κ|v|``); it fixes the final
  weights to machine precision.

The maximizers of ρ and the outliers pin many inputs at z̄_μ = 0 — kinks that a softplus smoothing
cannot resolve (its gains are hidden below log 2/β) and that L-BFGS on the exact relu approaches
only slowly; with the pins as constraints both problems are smooth and converge fast.
"""
from __future__ import annotations

import numpy as np


def features(U, pr):
    """Unit directions (rows of U normalized) and their exact features ``relu(B û)`` (P × n)."""
    Uh = U / np.linalg.norm(U, axis=1, keepdims=True)
    return Uh, np.maximum(pr.B @ Uh.T, 0.0)


def _objective(V, Phi, Yb, kappa, T):
    R = Yb - Phi @ V
    return kappa * np.sum(np.linalg.norm(V, axis=1)) + 0.5 * np.sum(R * R) / T


def _bcd(V, Phi, Yb, kappa, T, sweeps):
    """Block coordinate descent on (M): exact group soft-threshold per atom."""
    R = Yb - Phi @ V
    nrm2 = np.maximum(np.sum(Phi * Phi, axis=0), 1e-300)
    for _ in range(sweeps):
        for j in range(Phi.shape[1]):
            c = Phi[:, j] @ R + nrm2[j] * V[j]
            cn = np.linalg.norm(c)
            new = (max(cn - kappa * T, 0.0) / (nrm2[j] * max(cn, 1e-300))) * c
            R -= np.outer(Phi[:, j], new - V[j])
            V[j] = new
    return V


def _newton(V, Phi, Yb, kappa, T, iters=50):
    """Damped Newton on the active groups of (M) (smooth there); groups that shrink to 0 are dropped."""
    m = V.shape[1]
    for _ in range(iters):
        act = np.linalg.norm(V, axis=1) > 0.0
        if not act.any():
            return V
        Va, Pa = V[act], Phi[:, act]
        nv = np.linalg.norm(Va, axis=1)
        vh = Va / nv[:, None]
        R = Yb - Pa @ Va
        G = kappa * vh - Pa.T @ R / T
        k = Va.shape[0]
        H = np.kron(Pa.T @ Pa / T, np.eye(m))
        for i in range(k):
            H[i * m:(i + 1) * m, i * m:(i + 1) * m] += kappa * (np.eye(m) - np.outer(vh[i], vh[i])) / nv[i]
        try:
            step = -np.linalg.solve(H + 1e-12 * np.trace(H) / len(H) * np.eye(len(H)), G.ravel()).reshape(k, m)
        except np.linalg.LinAlgError:
            return V
        f0, h = _objective(V, Phi, Yb, kappa, T), 1.0
        while h > 1e-10:
            W = V.copy()
            W[act] = Va + h * step
            if _objective(W, Phi, Yb, kappa, T) <= f0:
                break
            h *= 0.5
        else:
            return V
        V = W
        if np.max(np.abs(h * step)) <= 1e-14 * np.max(np.abs(Va)):
            break
    return V


def kkt_residual(V, Phi, Yb, kappa, T):
    """Max violation of the KKT conditions of (M), relative to κ: ``|tᵀφ_j − κ v̂_j|`` (active),
    ``(|tᵀφ_j| − κ)₊`` (inactive)."""
    C = Phi.T @ (Yb - Phi @ V) / T
    nv = np.linalg.norm(V, axis=1)
    act = nv > 0
    r_act = np.linalg.norm(C[act] - kappa * V[act] / nv[act, None], axis=1)
    r_ina = np.maximum(np.linalg.norm(C[~act], axis=1) - kappa, 0.0)
    return float(np.max(np.concatenate([r_act, r_ina, [0.0]])) / kappa)


def solve_master(Phi, Yb, kappa, T, V=None, tol=1e-10, max_cycles=30):
    """Exact minimum of the group lasso (M): BCD sweeps, Newton on the active set, until KKT ≤ tol.

    Returns
    -------
    V : (n, m) output weights (rows exactly 0 for inactive atoms);  kkt : final KKT residual.
    """
    n, m = Phi.shape[1], Yb.shape[1]
    V = np.zeros((n, m)) if V is None else V.copy()
    kkt = np.inf
    for _ in range(max_cycles):
        V = _bcd(V, Phi, Yb, kappa, T, 20)
        V = _newton(V, Phi, Yb, kappa, T)
        V = _bcd(V, Phi, Yb, kappa, T, 1)
        kkt = kkt_residual(V, Phi, Yb, kappa, T)
        if kkt <= tol:
            break
    return V, kkt


def balanced(Uh, V, kappa):
    """Outliers ``(u, ā) = (c û, v/c)`` with c² = κ|v| (the balanced point of the rescaling orbit)."""
    c = np.sqrt(kappa * np.linalg.norm(V, axis=1))
    return c[:, None] * Uh, V / np.maximum(c, 1e-300)[:, None]


def _null(Bz, r):
    """Orthonormal basis (columns) of the null space of the rows Bz."""
    if not Bz.shape[0]:
        return np.eye(r)
    _, sv, vt = np.linalg.svd(Bz, full_matrices=True)
    return vt[int(np.sum(sv > 1e-10 * sv[0])):].T


def polish_direction(u, t, pr, rel=1e-3, iters=60):
    """Exact local maximum of ρ(u) = (s/P)|tᵀrelu(Bu)|²/|u|² near u, by an active set on activation patterns.

    On a pattern (active S: z̄_μ > 0, pinned Z: z̄_μ = 0, the rest < 0) ρ is the Rayleigh quotient of
    ``G = tᵀ D_S B`` on ``null(B_Z)``; its maximum there is the top right-singular vector v of ``G N``
    (N an orthonormal null-space basis). Steps: if v keeps the signs of S and of the inactive inputs,
    move to v and check the pinned inputs' multipliers η (``Bᵀ D_S t g − |g|² u = Σ_Z η_μ B_μ``,
    g = tᵀrelu(Bu)): a local maximum needs ``0 ≤ η_μ ≤ −t_μ·g``; the worst violator is released
    (to inactive if η_μ < 0, to active otherwise). If v breaks a sign, move along the segment u → v
    (ρ increases monotonically on it: v is the top eigenvector of the plane's quadratic form) to the
    first input that crosses zero and pin it. Inputs with |z̄_μ| ≤ ``rel`` max|z̄| start pinned.

    Returns
    -------
    u : (r,) unit vector;  rho : its ρ (exact relu);  ok : whether the multiplier test passed.
    """
    u = u / np.linalg.norm(u)
    z = pr.B @ u
    pinned = np.abs(z) <= rel * np.max(np.abs(z))
    active = (z > 0) & ~pinned
    N = _null(pr.B[pinned], pr.r)
    ok = False
    if N.shape[1] == 0:
        return u, rho_exact(u, t, pr), ok
    u = N @ (N.T @ u)
    u /= np.linalg.norm(u)
    for _ in range(iters):
        G = t[active].T @ pr.B[active] @ N
        v = N @ np.linalg.svd(G, full_matrices=False)[2][0]
        v *= np.sign(v @ u) or 1.0
        zu, zv = pr.B @ u, pr.B @ v
        free = ~pinned
        bad = free & ((active & (zv <= 0)) | (~active & (zv >= 0)))
        if bad.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = np.where(bad, zu / (zu - zv), np.inf)
            k = int(np.argmin(frac))
            u = u + frac[k] * (v - u)
            u /= np.linalg.norm(u)
            pinned[k], active[k] = True, False
            N = _null(pr.B[pinned], pr.r)
            if N.shape[1] == 0:
                break
            u = N @ (N.T @ u)
            u /= np.linalg.norm(u)
            continue
        u = v
        if not pinned.any():
            ok = True
            break
        g = t.T @ np.maximum(zv, 0.0)
        h = pr.B[active].T @ (t[active] @ g) - float(g @ g) * u
        eta = np.linalg.lstsq(pr.B[pinned].T, h, rcond=None)[0]
        tg = t[pinned] @ g
        scale = float(g @ g) * np.max(np.abs(pr.B))
        viol = np.maximum(-eta, eta + tg)
        if np.max(viol) <= 1e-9 * scale:
            ok = True
            break
        k = np.flatnonzero(pinned)[int(np.argmax(viol))]
        release_active = eta[int(np.argmax(viol))] >= 0
        pinned[k], active[k] = False, bool(release_active)
        N = _null(pr.B[pinned], pr.r)
    return u, rho_exact(u, t, pr), ok


def rho_exact(u, t, pr):
    """ρ(u) with the exact relu for one vector u."""
    g = t.T @ np.maximum(pr.B @ u, 0.0)
    return (pr.s / pr.P) * float(g @ g) / float(u @ u)



def _faces(U, pr, rel):
    """Pinned inputs (|z̄_μ| ≤ rel max|z̄|) and null-space bases of every outlier's face."""
    Z = U @ pr.B.T
    pins = np.abs(Z) <= rel * np.max(np.abs(Z), axis=1, keepdims=True)
    return pins, [_null(pr.B[p], pr.r) for p in pins]


def slide(U, A, Yb, pr, rel=1e-4, outer=8, maxiter=3000):
    """Exact-relu local minimum of the outlier energy by an active set on activation patterns.

    Each outlier's pinned inputs (z̄_μ = 0) are linear equality constraints, ``u_i = N_i c_i``; on the
    faces the energy is smooth away from the remaining sign changes and is minimized by L-BFGS in
    (ā, c) with the exact relu. Then the pinned inputs' multipliers η (``u − B_Sᵀ g_S = Σ_Z η_μ B_μ``,
    g = t ā_i) are checked against the local-minimum condition ``g_μ ≤ η_μ ≤ 0``; violators are released
    and inputs that ended at |z̄_μ| ≤ ``rel`` max|z̄| (crossed zero and stuck at the kink) are pinned,
    until the pattern is stable.

    Returns
    -------
    U, A, loss, nfev, stable (the last pattern passed the multiplier test)
    """
    from scipy import optimize
    n, m = A.shape
    kp = pr.P / pr.s
    nfev, stable = 0, False
    pins, Ns = _faces(U, pr, rel)
    for _ in range(outer):
        C = [N.T @ u for N, u in zip(Ns, U)]
        dims = np.cumsum([0] + [c.size for c in C])

        def fun(x):
            Aa = x[:n * m].reshape(n, m)
            Uu = np.array([Ns[i] @ x[n * m + dims[i]:n * m + dims[i + 1]] for i in range(n)])
            Z = Uu @ pr.B.T
            R = np.maximum(Z, 0.0)
            t = (Yb - R.T @ Aa) / pr.T
            L = 0.5 * kp * np.sum(Aa * Aa) + 0.5 * np.sum(Uu * Uu) + 0.5 * pr.T * np.sum(t * t)
            gA = kp * Aa - R @ t
            gU = Uu - ((Z > 0) * (Aa @ t.T)) @ pr.B
            return L, np.concatenate([gA.ravel()] + [Ns[i].T @ gU[i] for i in range(n)])

        sol = optimize.minimize(fun, np.concatenate([A.ravel()] + C), jac=True, method="L-BFGS-B",
                                options=dict(maxiter=maxiter, maxcor=30, ftol=0.0, gtol=1e-11))
        nfev += sol.nfev
        x = sol.x
        A = x[:n * m].reshape(n, m).copy()
        U = np.array([Ns[i] @ x[n * m + dims[i]:n * m + dims[i + 1]] for i in range(n)])
        Z = U @ pr.B.T
        t = (Yb - np.maximum(Z, 0.0).T @ A) / pr.T
        changed = False
        for i in range(n):
            G = t @ A[i]
            act = (Z[i] > 0) & ~pins[i]
            new = pins[i] | (np.abs(Z[i]) <= rel * np.max(np.abs(Z[i])))
            if pins[i].any():
                h = U[i] - pr.B[act].T @ G[act]
                eta = np.linalg.lstsq(pr.B[pins[i]].T, h, rcond=None)[0]
                tol = 1e-6 * (np.max(np.abs(G)) + 1e-300)
                bad = (eta > tol) | (eta < G[pins[i]] - tol)
                new[np.flatnonzero(pins[i])[bad]] = False
            if np.any(new != pins[i]):
                changed = True
                pins[i] = new
                Ns[i] = _null(pr.B[new], pr.r)
                U[i] = Ns[i] @ (Ns[i].T @ U[i])
        if not changed:
            stable = True
            break
    return U, A, float(sol.fun), nfev, stable



def merge(U, A, pr, tol=1e-7):
    """Merge outliers with the same direction (|Δû| ≤ tol): one outlier with the summed output ``v = |u| ā``."""
    Uh, Phi = features(U, pr)
    V = A * np.linalg.norm(U, axis=1)[:, None]
    keep = []
    for i in range(len(Uh)):
        j = next((k for k in keep if np.linalg.norm(Uh[i] - Uh[k]) <= tol), None)
        if j is None:
            keep.append(i)
        else:
            V[j] += V[i]
    return Uh[keep], V[keep], Phi[:, keep]
