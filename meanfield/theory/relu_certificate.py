"""Global-optimality certificate and neuron insertion for the general-data ReLU outliers (docs/theory_relu.md §8).

The outlier energy (:func:`meanfield.theory.relu_general.outlier_loss`) is the weight-decay loss of
a two-layer ReLU network; its prior term is a path norm, so over *measures* of neurons it is the
convex problem

    min_ν  √(P/s) ∫|v| dν + |Y − B − ∫ relu(B û) vᵀ dν|² / (2T)     (û on the unit sphere of R^r, z̄ = B û).

With ``t = (Y − f)/T`` its optimality condition is that no direction has positive single-neuron
energy: the certificate

    λ_max(t) = max_u ρ(u),   ρ(u) = (s/P) |tᵀ relu(B u)|² / |u|²                        (C1)

is ≤ 1, with equality on the active outliers (ρ = 1 + 2E/|u|² with E the single-neuron exponent
of :mod:`meanfield.theory.erf_general` at φ = relu, homogeneous of degree 2). A minimum of the
n-slot energy with λ_max > 1 is slot-limited (dead slots sit at the saddle ā = 0, z̄ = 0); a
neuron inserted along the maximizer lowers the energy (Frank–Wolfe step, :func:`insertion`).
The maximization of ρ is a multistart L-BFGS ascent on the sphere (non-convex: a heuristic search) (:func:`find_directions`) from
the active outliers, the class directions and every class code's direction
(:func:`meanfield.theory.erf_general.starts`) and random points; the best maxima are then polished
exactly on their activation pattern (:mod:`meanfield.theory.relu_activeset`).
"""
from __future__ import annotations

import numpy as np
from scipy import optimize

from .erf_general import _near, energy, starts


def rayleigh(U, t, pr):
    """ρ(u) of (C1) and its gradient for every row of U (n × r); ``pr`` an erf_general ``Problem`` with φ = relu.

    ``q = (s/P)|tᵀrelu(Bu)|² = 2E + |u|²`` with E, ∇E from :func:`meanfield.theory.erf_general.energy`;
    ``∇ρ = (∇q − 2ρu)/|u|²`` is orthogonal to u (ρ is scale invariant).
    """
    E, G = energy(U, t, pr)[:2]
    n2 = np.sum(U * U, axis=1)
    rho = (2.0 * E + n2) / n2
    return rho, 2.0 * (G + U - rho[:, None] * U) / n2[:, None]


def certificate_starts(t, pr, U_active, n_random, rng):
    """Starts of the search for λ_max: active outliers, ± class-mean directions, code directions, random."""
    onehot = (pr.labels[:, None] == np.arange(pr.K)[None, :]).astype(np.float64)
    cls = (pr.B.T @ (onehot / onehot.sum(axis=0))).T                 # z̄ ∝ K0 1_c: a class-mean weight vector
    S = [np.asarray(U_active, dtype=np.float64).reshape(-1, pr.r), cls, -cls, starts(t, pr, n_random, rng)]
    S = np.vstack(S)
    nrm = np.linalg.norm(S, axis=1)
    return S[nrm > 1e-12 * max(nrm.max(), 1e-300)]


def find_directions(t, pr, U0, tol=1e-6, maxiter=1000):
    """Local maxima of ρ on the sphere from the rows of U0 (L-BFGS from each start), distinct, by decreasing ρ.

    The starts are ascended independently (a batched ascent couples them through its line search).

    Returns
    -------
    U : (k, r) unit vectors;  rho : (k,) their ρ values.
    """
    def neg(u):
        rho, G = rayleigh(u[None], t, pr)
        return -rho[0], -G[0]

    X = []
    for u in U0 / np.linalg.norm(U0, axis=1, keepdims=True):
        X.append(optimize.minimize(neg, u, jac=True, method="L-BFGS-B",
                                   options=dict(maxiter=maxiter, gtol=1e-9, ftol=0.0)).x)
    x = np.array(X)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rho = rayleigh(x, t, pr)[0]
    out, zs, vals = [], [], []
    for k in np.argsort(-rho):
        z = pr.B @ x[k]
        if _near(z, zs, tol):
            continue
        out.append(x[k])
        zs.append(z)
        vals.append(rho[k])
    return np.array(out), np.array(vals)


def certificate(t, pr, U_active, n_random=64, seed=0, n_polish=20):
    """λ_max(t) of (C1) by the multistart search; returns ``(lam_max, directions, rho)`` (all maxima found).

    The ``n_polish`` best maxima are polished exactly on their activation pattern
    (:func:`meanfield.theory.relu_activeset.polish_direction`: L-BFGS stops short of the kinks where
    the maximizers pin inputs at z̄_μ = 0, by up to a few % of ρ) and duplicates removed.
    """
    from .relu_activeset import polish_direction
    rng = np.random.default_rng(seed)
    U, rho = find_directions(t, pr, certificate_starts(t, pr, U_active, n_random, rng))
    for k in range(min(n_polish, len(U))):
        U[k], rho[k] = polish_direction(U[k], t, pr)[:2]
    out, zs = [], []
    for k in np.argsort(-rho):
        z = pr.B @ U[k]
        if not _near(z, zs, 1e-7):
            out.append(k)
            zs.append(z)
    return float(rho[out[0]]), U[out], rho[out]


def insertion(u_hat, t, pr):
    """A new outlier along the unit direction ``u_hat`` at the Frank–Wolfe step size.

    Along ``(u, ā) = (c û, α v̂)`` with ``v̂ ∝ tᵀrelu(Bû)`` the energy depends on γ = cα only, through
    the path norm ``√(P/s) γ`` (balanced c² = √(P/s) γ) and the data term; its minimum is at
    ``γ* = T √(P/s) (√ρ − 1) / |relu(Bû)|²`` (> 0 iff ρ(û) > 1).

    Returns
    -------
    a_bar : (m,);  u : (r,)
    """
    r = np.maximum(pr.B @ u_hat, 0.0)
    g = t.T @ r
    rho = (pr.s / pr.P) * float(g @ g)
    k = np.sqrt(pr.P / pr.s)
    gamma = pr.T * k * max(np.sqrt(rho) - 1.0, 0.0) / max(float(r @ r), 1e-300)
    c = np.sqrt(k * gamma)
    return (gamma / max(c, 1e-300)) * g / max(np.linalg.norm(g), 1e-300), c * u_hat


def duality_gap(U, A, t, Yb, pr, lam_max):
    """Bound on the distance of the outlier energy to its global minimum, ``L(ν) − D(t/√max(λ_max, 1))``.

    ``L(ν) = Σ_i [P|ā_i|²/(2s) + ½|u_i|²] + T|t|²/2`` (exact relu, t = (Yb − f)/T, Yb = Y − bulk output)
    and the dual ``D(t) = ⟨t, Yb⟩ − T|t|²/2``, a lower bound of min L for every t with λ_max(t) ≤ 1
    (weak duality of the convex problem over measures); ``t/√λ_max`` is such a t. Valid as far as
    λ_max is the global maximum of (C1).
    """
    primal = 0.5 * (pr.P / pr.s) * np.sum(A * A) + 0.5 * np.sum(U * U) + 0.5 * pr.T * np.sum(t * t)
    td = t / np.sqrt(max(lam_max, 1.0))
    return float(primal - (np.sum(td * Yb) - 0.5 * pr.T * np.sum(td * td))), float(primal)
