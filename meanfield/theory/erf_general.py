"""Sigmoid (erf) networks on general data: redundant coding without the toy structure.

The paper's MNIST theory (docs/theory_erf.md §13): the fluctuations of the preactivations given
the readout are neglected, ``⟨φ(z)⟩_a → φ(z*)`` with z* the maximum of the single-neuron
exponent. With ``s = P σ_a²`` and ``z = B u`` (``K0 = B Bᵀ``, u ∈ R^r) the exponent, maximized
over the readout (``a = (s/P) tᵀφ(z)``), is

    E(u; t) = (s/2P) |tᵀφ(B u)|² − ½ |u|²,                                          (G1)

and the equations are those of the toy theory with E in place of P F:

    u_γ = Bᵀ[φ'(z_γ) ⊙ (t a_γ)],   a_γ = (s/P) tᵀφ(z_γ)      (local maxima of E)
    Y − T t = Σ_γ P_γ φ(z_γ) a_γᵀ                            (S2)
    E(u_γ) = E(u_γ') = max_u E(u),  Σ P_γ = 1, P_γ ≥ 0        (degenerate global maxima).

They are the optimality conditions of the convex dual ``S(t) = (T/2)|t|² − ⟨t, Y⟩ + max_u E(u; t)``
(each E(u; ·) is a convex quadratic in t). Algorithm: a cutting-plane method on S — the maxima of
E found so far are the planes; on a finite set the dual over the simplex of weights λ is smooth,
``D(λ) = −½⟨Y, M(λ)⁻¹Y⟩ − Σ_k λ_k ½|u_k|²`` with ``M = T + (s/P) Σ_k λ_k φ_k φ_kᵀ`` and
``t = M⁻¹Y`` — alternated with a multistart ascent of E at the new t; then Newton–Raphson on the
active maxima (``scipy.optimize.root``) and a final global search as the check. T > 0.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy import linalg, optimize
from scipy.special import ndtr

from .._blas import serial_blas
from ..nonlinearities import nonlinearity as _nonlinearity
from ..sampling.predict import conditional_map, gaussian_mean_activation, pair_kernel


def _numpy_phi(phi):
    """(φ, φ', φ'') as plain numpy functions (closed form for erf: no dispatch overhead on small arrays)."""
    if phi.name != "erf":
        return phi.phi, phi.dphi, phi.d2phi
    k = np.sqrt(np.pi / 2.0)
    c = k / np.sqrt(2.0 * np.pi)

    def df(z):
        return c * np.exp(-0.5 * k * k * z * z)

    return (lambda z: ndtr(k * z)), df, (lambda z: -k * k * z * df(z))


class Problem:
    """Data of (G1): factor B of K0 (P × r), targets Y, s = P σ_a², T, φ, class labels."""

    def __init__(self, task, T, s, phi="erf", rtol=1e-10):
        w, V = np.linalg.eigh(task.K0)
        keep = w > rtol * w.max()
        self.V, self.w = V[:, keep], w[keep]
        self.B = self.V * np.sqrt(self.w)
        self.Y = np.asarray(task.Y, dtype=np.float64)
        self.P, self.m = self.Y.shape
        self.r = self.B.shape[1]
        self.s, self.T = float(s), float(T)
        self.phi = _nonlinearity(phi)
        self.f, self.df, self.d2f = _numpy_phi(self.phi)
        self.labels = np.asarray(task.labels)
        self.K = int(self.labels.max()) + 1


def energy(U, t, pr):
    """E(u; t) of (G1) and its gradient for every row of U (n × r); also z, φ(z), a."""
    Z = U @ pr.B.T
    F = pr.f(Z)
    A = (pr.s / pr.P) * F @ t
    E = 0.5 * (pr.P / pr.s) * np.sum(A * A, axis=1) - 0.5 * np.sum(U * U, axis=1)
    G = (pr.df(Z) * (A @ t.T)) @ pr.B - U
    return E, G, Z, F, A


def hessian(u, t, pr):
    """∇²E at u (r × r): ``−I + Bᵀ diag(φ''⊙(t a)) B + (s/P) (tᵀ diag φ' B)ᵀ (tᵀ diag φ' B)``."""
    z = pr.B @ u
    a = (pr.s / pr.P) * (t.T @ pr.f(z))
    tb = t.T @ (pr.B * pr.df(z)[:, None])
    H = pr.B.T @ (pr.B * (pr.d2f(z) * (t @ a))[:, None]) + (pr.s / pr.P) * tb.T @ tb
    return H - np.eye(pr.r)


def _polish(u, t, pr, iters=30):
    """Damped Newton ascent to a strict local maximum; returns (u, |∇E|, is_max)."""
    e, g = energy(u[None], t, pr)[:2]
    e, g = e[0], g[0]
    for _ in range(iters):
        if np.max(np.abs(g)) < 1e-12 * (1.0 + np.max(np.abs(u))):
            break
        H = hessian(u, t, pr)
        lam = np.linalg.eigvalsh(H)[-1]
        step = np.linalg.solve(H - max(0.0, lam + 1e-3) * np.eye(pr.r), -g) if lam >= 0 else np.linalg.solve(H, -g)
        for _ in range(40):
            e2, g2 = energy((u + step)[None], t, pr)[:2]
            if e2[0] >= e - 1e-14 * (1.0 + abs(e)):
                break
            step *= 0.5
        u, e, g = u + step, e2[0], g2[0]
    is_max = bool(np.linalg.eigvalsh(hessian(u, t, pr))[-1] < 0)
    return u, float(np.max(np.abs(g))), is_max


def starts(t, pr, n_random, rng):
    """Ascent starts: every code's saturated point (``φ → 1[class ∈ code]``) and random u."""
    S = []
    phi0 = float(pr.df(np.zeros(1))[0]) or 1.0       # relu (φ'(0) = 0, relu_certificate): directions only
    for code in itertools.product((0, 1), repeat=pr.K):
        if not any(code):
            continue
        f = np.asarray(code, dtype=np.float64)[pr.labels]
        a = (pr.s / pr.P) * (t.T @ f)
        S.append(pr.B.T @ (phi0 * (t @ a)))
    S = np.array(S)
    scale = np.sqrt(np.mean(np.sum(S * S, axis=1))) / np.sqrt(pr.r) if len(S) else 1.0
    return np.vstack([S, scale * rng.standard_normal((n_random, pr.r))])


def _near(z, Z, tol):
    """Whether z agrees with a row of Z to ``tol`` (max-norm, relative to 1 + max|row|)."""
    return any(np.max(np.abs(z - w)) < tol * (1.0 + np.max(np.abs(w))) for w in Z)


def find_maxima(t, pr, U0, tol=1e-6):
    """Local maxima of E(·; t) reached from the rows of U0 (L-BFGS, then Newton), distinct, by E."""
    n = U0.shape[0]

    def negsum(x):
        E, G = energy(x.reshape(n, pr.r), t, pr)[:2]
        return -np.sum(E), -G.ravel()

    x = optimize.minimize(negsum, U0.ravel(), jac=True, method="L-BFGS-B",
                          options=dict(maxiter=3000, gtol=1e-9, ftol=0.0)).x.reshape(n, pr.r)
    E = energy(x, t, pr)[0]
    out, zs, vals = [], [], []
    for k in np.argsort(-E):
        if _near(pr.B @ x[k], zs, tol):
            continue
        u, gnorm, is_max = _polish(x[k], t, pr)
        z = pr.B @ u
        if not is_max or _near(z, zs, tol):
            continue
        out.append(u)
        zs.append(z)
        vals.append(energy(u[None], t, pr)[0][0])
    order = np.argsort(vals)[::-1]
    return np.array(out)[order], np.array(vals)[order]


def equations(x, pr, n):
    """Residual of the full equations in the unknowns (u_γ, λ_γ) with t = M(λ)⁻¹ Y eliminated."""
    U = x[:n * pr.r].reshape(n, pr.r)
    lam = x[n * pr.r:]
    Phi = pr.f(U @ pr.B.T).T
    t = np.linalg.solve(pr.T * np.eye(pr.P) + (pr.s / pr.P) * (Phi * lam) @ Phi.T, pr.Y)
    E, G = energy(U, t, pr)[:2]
    return np.concatenate([G.ravel(), E[1:] - E[0], [np.sum(lam) - 1.0]]), t


def equations_jacobian(x, pr, n):
    """Jacobian of :func:`equations` (analytic; t = M⁻¹Y differentiated through M)."""
    r, c = pr.r, pr.s / pr.P
    U, lam = x[:n * r].reshape(n, r), x[n * r:]
    Z = U @ pr.B.T
    F, D1, D2 = pr.f(Z), pr.df(Z), pr.d2f(Z)
    Minv = np.linalg.inv(pr.T * np.eye(pr.P) + c * (F.T * lam) @ F)
    t = Minv @ pr.Y
    A = c * F @ t
    TA = A @ t.T
    J = np.zeros((n * r + n, n * r + n))

    def columns(dMt, j=None, dphi=None):
        dt = -np.einsum("pq,iqm->ipm", Minv, dMt)
        da = c * np.einsum("ipm,kp->ikm", dt, F)
        if j is not None:
            da[:, j] += c * dphi @ t
        inner = np.einsum("ipm,km->ikp", dt, A) + np.einsum("pm,ikm->ikp", t, da)
        dG = np.einsum("ikp,pq->ikq", inner * D1[None], pr.B)
        dE = np.einsum("km,ikm->ik", A, da) / c
        if j is not None:
            dG[:, j] += (pr.B.T * (D2[j] * TA[j])) @ pr.B - np.eye(r)
            dE[:, j] -= U[j]
        return np.concatenate([dG.reshape(dG.shape[0], -1), dE[:, 1:] - dE[:, :1]], axis=1).T

    for j in range(n):
        dphi = (D1[j][:, None] * pr.B).T                       # (r, P): dφ_j along each u direction
        dMt = c * lam[j] * (dphi[:, :, None] * (F[j] @ t)[None, None, :] + F[j][None, :, None] * (dphi @ t)[:, None, :])
        J[:n * r + n - 1, j * r:(j + 1) * r] = columns(dMt, j, dphi)
        J[:n * r + n - 1, n * r + j] = columns(c * np.outer(F[j], F[j] @ t)[None])[:, 0]
    J[-1, n * r:] = 1.0
    return J


def primal(x, pr, n):
    """``J = Σ_k λ_k ½|u_k|² + ½⟨Y, M(λ)⁻¹Y⟩`` (λ = softmax θ) and its gradient in ``x = [U, θ]``.

    J(ν) is the convex primal of the dual S over measures ν = Σ_k λ_k δ_{u_k}: its minimum over the
    atoms and weights is the equilibrium (max_t −S = min_ν J); ``∂J/∂λ_k = −E(u_k; t)`` and
    ``∂J/∂u_k = −λ_k ∇E(u_k; t)`` with ``t = M⁻¹Y``.
    """
    U = x[:n * pr.r].reshape(n, pr.r)
    th = x[n * pr.r:]
    lam = np.exp(th - th.max())
    lam /= lam.sum()
    Phi = pr.f(U @ pr.B.T).T
    M = pr.T * np.eye(pr.P) + (pr.s / pr.P) * (Phi * lam) @ Phi.T
    cf = linalg.cho_factor(M)
    t = linalg.cho_solve(cf, pr.Y)
    c = 0.5 * np.sum(U * U, axis=1)
    J = float(lam @ c + 0.5 * np.sum(pr.Y * t))
    E, G = energy(U, t, pr)[:2]
    gl = -E
    gth = lam * (gl - lam @ gl)
    return J, np.concatenate([(-lam[:, None] * G).ravel(), gth]), t, lam


def _merge(U, lam, pr, tol=1e-3):
    """Merge atoms whose preactivations agree to ``tol`` (relative max-norm): one point, summed weight."""
    Z = U @ pr.B.T
    keep = []
    lam = lam.copy()
    for k in np.argsort(-lam):
        near = [j for j in keep if _near(Z[k], Z[j:j + 1], tol)]
        if near:
            lam[near[0]] += lam[k]
        else:
            keep.append(k)
    return U[keep], lam[keep]


def _polish_atoms(U, lam, pr, iters=10):
    """Newton–Raphson on :func:`equations` from (U, λ) (analytic Jacobian, least-squares steps, backtracking)."""
    n = U.shape[0]
    x = np.concatenate([U.ravel(), lam])
    F = equations(x, pr, n)[0]
    nrm = np.max(np.abs(F))
    for _ in range(iters):
        if nrm < 1e-13 * (1.0 + np.max(np.abs(x))):
            break
        dx = linalg.lstsq(equations_jacobian(x, pr, n), -F, cond=1e-10, lapack_driver="gelsy")[0]
        for step in (1.0, 0.5, 0.25, 0.125, 0.0625):
            F1 = equations(x + step * dx, pr, n)[0]
            if np.max(np.abs(F1)) < nrm:
                break
        else:
            break
        x, F, nrm = x + step * dx, F1, np.max(np.abs(F1))
    return x[:n * pr.r].reshape(n, pr.r), x[n * pr.r:], nrm


def solve(pr, n_starts=16, seed=0, max_outer=8):
    """Minimize the primal over atoms, polish, add atoms where E is higher (Frank–Wolfe); repeat.

    Returns a dict: ``U`` (n × r), ``lam`` (n,), ``t`` (P × m), ``E`` (n,), z, φ(z), a per atom,
    ``residual`` (max-norm of the equations), ``E_best`` (highest maximum found by the final global
    search from the atoms, every code's saturated point and ``2 n_starts`` random points), ``nit``
    (function evaluations), ``history`` (per outer iteration: J, atoms, gap of E above the atoms).
    """
    rng = np.random.default_rng(seed)
    U = starts(pr.Y / (pr.T + 1.0), pr, n_starts, rng)
    th = np.zeros(U.shape[0])
    history, nfev = [], 0
    for it in range(max_outer):
        n = U.shape[0]
        res = optimize.minimize(lambda x: primal(x, pr, n)[:2], np.concatenate([U.ravel(), th]), jac=True,
                                method="L-BFGS-B", options=dict(maxiter=4000, maxfun=8000, maxcor=20, gtol=1e-9,
                                                                ftol=0.0))
        J, _, t, lam = primal(res.x, pr, n)
        U = res.x[:n * pr.r].reshape(n, pr.r)
        act = lam > 1e-4 * lam.max()
        U, lam = _merge(U[act], lam[act] / lam[act].sum(), pr)
        t = equations(np.concatenate([U.ravel(), lam]), pr, U.shape[0])[1]
        found, Ef = find_maxima(t, pr, np.vstack([U, starts(t, pr, 2 * n_starts, rng)]))
        E_act = energy(U, t, pr)[0]
        Z_act = U @ pr.B.T
        new = np.array([u for u, e in zip(found, Ef) if e > E_act.max() + 1e-6 * (1.0 + abs(Ef[0]))
                        and not _near(pr.B @ u, Z_act, 1e-3)]).reshape(-1, pr.r)
        nfev += res.nfev
        history.append(dict(J=J, atoms=U.shape[0], E_gap=float(Ef[0] - E_act.max()), new=len(new), nfev=res.nfev))
        if not len(new) or it == max_outer - 1:
            break
        lam = np.clip(lam, 1e-6, None)
        U = np.vstack([U, new])
        th = np.concatenate([np.log(lam), np.full(len(new), np.log(lam.min()) - 2.0)])
    for _ in range(U.shape[0]):              # Newton on the active set; atoms driven to λ < 0 leave
        U, lam = _polish_atoms(U, lam, pr)[:2]
        if lam.min() >= 0.0 or U.shape[0] == 1:
            break
        keep = lam > 0.0
        U, lam = U[keep], lam[keep] / lam[keep].sum()
    n = U.shape[0]
    res, t = equations(np.concatenate([U.ravel(), lam]), pr, n)
    E, G, Z, F, A = energy(U, t, pr)
    s2 = pr.Y - pr.T * t - (F.T * lam) @ A
    residual = float(max(np.max(np.abs(res)), np.max(np.abs(s2))))
    found, Ef = find_maxima(t, pr, np.vstack([U, starts(t, pr, 2 * n_starts, rng)]))
    return dict(U=U, lam=lam, t=t, E=E, Z=Z, F=F, A=A, residual=residual, E_best=float(max(Ef[0], E.max())),
                maxima=dict(U=found, E=Ef), nit=int(nfev), history=history)


def solve_erf_general(task, T, sigma_a2, *, n_starts=16, seed=0, tol=1e-8, max_outer=8):
    """General-data sigmoid theory with the fluctuations of z given a neglected → :class:`Solution`.

    Every atom (u_γ, a_γ, P_γ) of the solution is a point of the readout posterior; atoms with the
    same code (class-mean activation above ½) are reported together: ``codes``, their total
    ``code_fractions`` and weight-averaged ``readouts``; the atoms themselves are in
    ``info["atoms"]`` (``a``, ``z``, ``weight``, ``code``, ``E``). ``converged`` requires the max-norm
    residual of the equations ≤ ``tol`` and no maximum of E above the atoms (global search).
    """
    from .solution import Solution

    if T <= 0:
        raise ValueError(f"T must be > 0 for the general-data sigmoid theory (t = residual/T), got {T}")
    pr = Problem(task, T, task.P * sigma_a2)
    with serial_blas():
        r = solve(pr, n_starts=n_starts, seed=seed, max_outer=max_outer)
    lab, K = pr.labels, pr.K
    atom_codes = [tuple(int(r["F"][k, lab == c].mean() > 0.5) for c in range(K)) for k in range(len(r["lam"]))]
    codes = sorted(set(atom_codes), key=lambda c: -sum(w for w, a in zip(r["lam"], atom_codes) if a == c))
    frac = np.array([sum(w for w, a in zip(r["lam"], atom_codes) if a == c) for c in codes])
    read = np.array([sum(w * a for w, a, ac in zip(r["lam"], r["A"], atom_codes) if ac == c) / f
                     for c, f in zip(codes, frac)])
    gap = r["E_best"] - float(np.max(r["E"]))
    probs = []
    if not r["residual"] <= tol:
        probs.append(f"residual {r['residual']:.2e} > tol {tol:.1e}")
    if gap > 1e-7 * (1.0 + abs(r["E_best"])):
        probs.append(f"a maximum of E lies {gap:.3g} above the atoms (not the global equilibrium)")
    if np.any(r["lam"] < -1e-10):
        probs.append(f"negative atom weight {r['lam'].min():.3g}")
    msg = (f"general data, fluctuations of z given a neglected: {len(r['lam'])} atom(s), {len(codes)} code(s)"
           + ("" if not probs else "; NOT converged: " + "; ".join(probs)
              + " (the theory with the fluctuations kept, solve(..., fluctuations=True), has no such limitation)"))
    K1 = (r["F"].T * r["lam"]) @ r["F"]
    U = (r["A"].T * r["lam"]) @ r["A"]
    X, N0 = task.X, task.N0
    def moments(X_new):
        B, var = conditional_map(X, np.asarray(X_new, dtype=np.float64), N0)   # z(x) | z_γ on the training set
        mean = B @ r["Z"].T                                                     # (P_new, n)
        return gaussian_mean_activation(pr.phi, mean, np.maximum(var, 0.0)[:, None] * np.ones_like(mean))

    def predict(X_new):
        return moments(X_new) @ (r["lam"][:, None] * r["A"])

    def kernel(layer, X1, X2):
        X1 = X if X1 is None else X1
        X2 = X1 if X2 is None else X2
        if layer == 0:
            return np.asarray(X1, dtype=np.float64).T @ np.asarray(X2, dtype=np.float64) / N0
        return pair_kernel(pr.phi, X, N0, X1, X2, r["Z"], r["lam"])

    atoms = dict(a=r["A"], z=r["Z"], u=r["U"], weight=r["lam"], code=atom_codes, E=r["E"])
    return Solution(
        nonlinearity=pr.phi.name, depth=1, T=T, sigma_a2=sigma_a2, field=r["t"], kernels=(task.K0, K1),
        converged=not probs, residual=r["residual"], message=msg, nit=r["nit"], U=U, codes=tuple(codes),
        code_fractions=frac, readouts=read, finite_P=False, task=task,
        info=dict(general=True, mode="neglect_fluctuations", atoms=atoms, E_best=r["E_best"], history=r["history"],
                  maxima=r["maxima"]),
        _predict=predict, _kernel=kernel)
