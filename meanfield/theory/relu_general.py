"""ReLU networks on general data: O(√N) outliers plus a linear-response bulk (docs/theory_relu.md §8).

The toy theory (:mod:`meanfield.theory.relu`) needs ``K0 = I``. On general inputs the paper's MNIST
approach keeps the outliers: an outlier neuron has readout ``√N ā`` and frozen preactivations
``√N z̄`` (z̄ ∈ range K0), stationary points of the single-neuron exponent, homogeneous of degree 2,

    E(ā, z̄) = −P|ā|²/(2s) − ½ z̄ᵀK0⁺z̄ + Σ_μ (t_μ·ā) relu(z̄_μ),

so, with ``z̄ = K0 w``:

    ā = (s/P) tᵀ relu(z̄),        w = θ(z̄) ⊙ (t ā)                      (outlier, E = 0: marginal)
    Y − T t = Σ_i relu(z̄_i) ā_iᵀ + ⟨relu(z)⟩_bulk a0ᵀ                    (S2)

The bulk (every other neuron) is kept to first order in its small tilt h = t a0 (linear response
of the Gaussian prior z ~ N(0, K0)): ``⟨relu(z)⟩ ≈ m0 + C h`` with ``m0_μ = √(K0_μμ / 2π)`` and C the
covariance of relu(z) (arc-cosine kernel), so ``a0 = (s/P) tᵀ⟨relu(z)⟩`` is a linear solve.
``bulk=False`` drops it (outliers only, exactly the paper's MNIST theory).

The outliers are found as a minimum of their energy (:func:`outlier_loss`), which prunes
unneeded candidates: on data the network cannot fit with m outliers (e.g. random labels with
P > N0) the theory, like the sampler, uses more.
"""
from __future__ import annotations

import numpy as np
from scipy import optimize

from .._blas import serial_blas

_INV_2PI = 1.0 / (2.0 * np.pi)


def arccos_moments(A, B, C):
    """``E[relu(u) relu(v)]`` for zero-mean Gaussians with Var u = A, Var v = B, Cov = C (elementwise)."""
    ab = np.sqrt(np.maximum(A * B, 1e-300))
    c = np.clip(C / ab, -1.0, 1.0)
    th = np.arccos(c)
    return ab * _INV_2PI * (np.sin(th) + (np.pi - th) * c)


def relu_covariance(K_xy, kxx, kyy):
    """Covariance of relu(z(x)), relu(z(y)) under the Gaussian prior with kernel K (arc-cosine kernel)."""
    E = arccos_moments(kxx[:, None], kyy[None, :], K_xy)
    return E - np.sqrt(kxx[:, None] * kyy[None, :]) * _INV_2PI


def _bulk(t, m0, Cov, s, P):
    """Bulk readout a0 and mean activation ⟨relu(z)⟩ ≈ m0 + Cov (t a0), self-consistently (linear)."""
    tc = t.T @ Cov @ t
    a0 = np.linalg.solve(np.eye(t.shape[1]) - (s / P) * tc, (s / P) * (t.T @ m0))
    return a0, m0 + Cov @ (t @ a0)


def _outliers(t, W, K0, s, P):
    Z = W @ K0                              # (n, P): z̄_i = K0 w_i (K0 symmetric)
    R = np.maximum(Z, 0.0)
    A = (s / P) * R @ t                     # (n, m): ā_i = (s/P) tᵀ relu(z̄_i)
    return Z, R, A


def _soft_relu(Z, beta):
    """softplus_β(z) = log(1 + e^{βz})/β and its derivative (relu and θ for ``beta=None``)."""
    if beta is None:
        return np.maximum(Z, 0.0), (Z > 0).astype(np.float64)
    bz = beta * Z
    R = np.where(bz > 30.0, Z, np.log1p(np.exp(np.minimum(bz, 30.0))) / beta)
    return R, 1.0 / (1.0 + np.exp(-np.clip(bz, -700.0, 700.0)))


def outlier_loss(x, Y, B, K0, s, T, n, beta=None):
    """Energy per N of n frozen outliers, and its gradient (docs/theory_relu.md §8).

    ``L = Σ_i [P|ā_i|²/(2s) + ½ w_iᵀK0 w_i] + |Y − B − Σ_i relu(K0 w_i) ā_iᵀ|² / (2T)``,
    ``x = [ā (n × m), w (n × P)]``; B is the (fixed) bulk output; ``beta`` replaces relu by
    softplus_β (continuation). Its stationary points are the outlier equations of the module
    docstring with ``t = (Y − f)/T``.
    """
    P, m = Y.shape
    A = x[:n * m].reshape(n, m)
    W = x[n * m:].reshape(n, P)
    Z = W @ K0
    R, D = _soft_relu(Z, beta)
    t = (Y - B - R.T @ A) / T
    L = 0.5 * P / s * np.sum(A * A) + 0.5 * np.sum(W * Z) + 0.5 * T * np.sum(t * t)
    gA = P / s * A - R @ t
    gW = Z - (D * (A @ t.T)) @ K0
    return L, np.concatenate([gA.ravel(), gW.ravel()])


BETAS = (2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 300.0, 1e3, 1e4)


def _minimize(U, A, pr, M, Bout, betas, maxiter=20000):
    """L-BFGS on :func:`outlier_loss` in whitened coordinates ``w = M u`` (z̄ = B u, prior ½|u|²)."""
    n, m, P = A.shape[0], pr.m, pr.P
    K0 = pr.B @ pr.B.T

    def fun(xu, beta):
        W = xu[n * m:].reshape(n, pr.r) @ M.T
        L, g = outlier_loss(np.concatenate([xu[:n * m], W.ravel()]), pr.Y, Bout, K0, pr.s, pr.T, n, beta)
        return L, np.concatenate([g[:n * m], (g[n * m:].reshape(n, P) @ M).ravel()])

    x, nfev = np.concatenate([A.ravel(), U.ravel()]), 0
    for beta in betas:
        sol = optimize.minimize(fun, x, args=(beta,), jac=True, method="L-BFGS-B",     # exact relu: capped
                                options=dict(maxiter=maxiter, maxcor=50, ftol=0.0, gtol=1e-10))
        x, nfev = sol.x, nfev + sol.nfev
    return x[n * m:].reshape(n, pr.r), x[:n * m].reshape(n, m), float(sol.fun), nfev


def _prune(U, A, pr, rel=1e-4):
    """Drop slots whose output ``|relu(B u)| |ā|`` is below ``rel`` of the largest (dead slots)."""
    size = np.linalg.norm(A, axis=1) * np.linalg.norm(np.maximum(U @ pr.B.T, 0.0), axis=1)
    keep = size > rel * max(size.max(initial=0.0), 1e-300)
    return U[keep], A[keep]


def solve_general(task, T, s, *, n_slots=None, bulk=True, tol=1e-5, seed=0, outer=4, cert_tol=1e-3,
                  max_rounds=60, n_random=64, max_new=3, n_confirm=None):
    """Outliers as the global minimum of :func:`outlier_loss` (certified), the bulk by linear response.

    The outlier energy is the weight-decay loss of a two-layer ReLU network whose "weight decay" is
    the Gaussian prior, convex over measures of neurons (:mod:`meanfield.theory.relu_certificate`).
    ``n_slots`` random candidates are minimized by L-BFGS with relu smoothed to softplus_β, β = 2 … 1e4
    (continuation, the global exploration); then, until the certificate λ_max ≤ 1 + ``cert_tol``
    holds: the outliers are minimized with the exact relu by an active set on their activation
    patterns (:func:`meanfield.theory.relu_activeset.slide`), dead slots pruned, and up to ``max_new``
    outliers inserted along the (exactly polished) maximizers of ρ with ρ > 1 + cert_tol (Frank–Wolfe
    step). The rounds also stop when three in a row lower L by < 1e-9 (``stalled``). Finally the
    output weights on the final directions are the exact minimum of the convex group lasso
    (:func:`meanfield.theory.relu_activeset.solve_master`). With the bulk, a bulk update and a
    certified minimization alternate ``outer`` times.

    Parameters
    ----------
    task : Task
    T, s : float
        Temperature (> 0) and ``P σ_a²``.
    n_slots : int, optional
        Random candidate outliers of the first minimization (default m).
    bulk : bool
        Keep the linear-response bulk.
    tol : float
        Tolerance on the stationarity residual (exact relu): max of |ā − (s/P)tᵀrelu(z̄)| / max|ā| and
        of |ρ − 1| on the outliers.
    seed : int
        Seed of the random start and of the certificate's random starts.
    outer : int
        Bulk/outlier alternations.
    cert_tol : float
        Tolerance of the certificate λ_max ≤ 1 + cert_tol (λ = 1 on the active outliers).
    max_rounds, n_random, max_new : int
        Insertion rounds per minimization, random starts of the λ_max search, outliers inserted per round.
    n_confirm : int, optional
        Random starts of the search that confirms (and reports) λ_max ≤ 1 + cert_tol before stopping
        (default ``max(4 n_random, min(1024, 32 r))``, r = rank K0);
        the search is a multistart heuristic (a lower bound of λ_max): on digits 256 starts missed a
        direction with ρ = 1.014 that 1024 found.

    Returns
    -------
    dict
        ``t`` (P × m), ``a_bar`` (n × m), ``z_bar`` (n × P), ``w`` (n × P) of the n surviving outliers,
        ``a0``, ``bulk_activation``, ``residual``, ``nfev``, ``converged``, ``loss``, ``lam_max``
        (certificate), ``gap`` (duality-gap bound on L − min L, relative to L), ``rounds`` (insertions),
        ``stalled`` (stopped because insertions no longer lowered L), ``history`` (per round: loss, outliers, λ_max).
    """
    from .erf_general import Problem
    from .relu_activeset import balanced, merge, slide, solve_master
    from .relu_certificate import certificate, duality_gap, insertion, rayleigh

    pr = Problem(task, T, s, phi="relu")
    Y, K0 = pr.Y, task.K0
    P, m, r = pr.P, pr.m, pr.r
    M = pr.V / np.sqrt(pr.w)                     # w = M u: K0 w = B u
    n = m if n_slots is None else int(n_slots)
    kd = np.diag(K0).copy()
    m0 = np.sqrt(kd * _INV_2PI)
    Cov = relu_covariance(K0, kd, kd)
    rng = np.random.default_rng(seed)
    U, A = 0.3 * rng.standard_normal((n, r)), 0.3 * rng.standard_normal((n, m))
    Bout, a0, g1, nfev, t = np.zeros_like(Y), np.zeros(m), np.zeros(P), 0, np.zeros_like(Y)
    history, rounds, kappa = [], 0, np.sqrt(P / s)
    n_confirm = max(4 * n_random, min(1024, 32 * r)) if n_confirm is None else int(n_confirm)
    for k in range(outer if bulk else 1):
        if bulk and k > 0:
            a0, g1 = _bulk(t, m0, Cov, s, P)
            Bout = np.outer(g1, a0)
        if k == 0:                                # smoothed continuation: the global exploration
            U, A, L, nf = _minimize(U, A, pr, M, Bout, BETAS)
            U, A = _prune(U, A, pr)
            nfev += nf
        stall = 0
        for _ in range(max_rounds + 1):
            U, A, L, nf, _stable = slide(U, A, Y - Bout, pr)       # exact relu, active set on the patterns
            U, A = _prune(U, A, pr)
            nfev += nf
            # exact output weights on these directions (convex group lasso): ā equation and ρ = 1 to ~1e-10
            Uh, V, Phi = merge(U, A, pr)
            V, kkt = solve_master(Phi, Y - Bout, kappa, T, V)
            act = np.linalg.norm(V, axis=1) > 0
            U, A = balanced(Uh[act], V[act], kappa)
            t = (Y - Bout - Phi[:, act] @ V[act]) / T
            lam, D, rho = certificate(t, pr, U, n_random=n_random, seed=seed + len(history))
            if lam <= 1.0 + cert_tol:             # confirm (and report) with n_confirm random starts
                lam, D, rho = certificate(t, pr, U, n_random=n_confirm, seed=seed + 7919 + len(history))
            stall = stall + 1 if history and history[-1]["loss"] - L < 1e-9 * abs(L) else 0
            history.append(dict(loss=L, outliers=U.shape[0], lam_max=lam))
            new = D[rho > 1.0 + cert_tol][:max_new]
            # stop: certified; out of rounds; or insertions no longer lower the loss (flat Frank–Wolfe tail)
            if not len(new) or rounds == max_rounds or stall >= 3:
                break
            rounds += 1
            ins = [insertion(u, t, pr) for u in new]
            A = np.vstack([A] + [a[None] / len(new) for a, _ in ins])
            U = np.vstack([U] + [u[None] for _, u in ins])
    gap, primal = duality_gap(U, A, t, Y - Bout, pr, lam)
    n = U.shape[0]
    W = U @ M.T
    # stationarity (exact relu): the ā equation ā = (s/P) tᵀrelu(z̄), relative, and ρ = 1 on the outliers
    # (z̄ stationarity is a subgradient condition, inputs pinned at z̄_μ = 0, as on the toy task)
    L = outlier_loss(np.concatenate([A.ravel(), W.ravel()]), Y, Bout, K0, s, T, n)[0]
    Abar = (s / P) * np.maximum(U @ pr.B.T, 0.0) @ t
    res = float(max(np.max(np.abs(A - Abar)) / np.max(np.abs(A)), np.max(np.abs(rayleigh(U, t, pr)[0] - 1.0))))
    Z, R, A = _outliers(t, W, K0, s, P)
    if bulk:
        a0, g1 = _bulk(t, m0, Cov, s, P)
    return dict(t=t, a_bar=A, z_bar=Z, w=W, a0=a0, bulk_activation=g1, residual=res, nfev=int(nfev),
                converged=bool(res <= tol and lam <= 1.0 + cert_tol), loss=float(L), lam_max=lam,
                cert_tol=cert_tol, rounds=rounds, history=history, gap=gap / primal, stalled=stall >= 3)


def _new_input_features(task, sol, X_new):
    """``k0(x)`` (P_new × P), the outliers' ``relu(z̄_i(x))`` with ``z̄_i(x) = k0(x)ᵀ w_i`` (P_new × n) and
    the prior variance ``k0(x, x)`` of new inputs (columns of ``X_new``)."""
    X_new = np.asarray(X_new, dtype=np.float64)
    k0 = X_new.T @ task.X / task.N0
    return k0, np.maximum(k0 @ sol["w"].T, 0.0), np.sum(X_new * X_new, axis=0) / task.N0


def predictor(task, sol, bulk=True):
    """Mean predictor on new inputs: ``Σ_i ā_i relu(k0(x)ᵀ w_i) + a0 ⟨relu(z(x))⟩`` (linear response)."""

    def predict(X_new):
        k0, R, kxx = _new_input_features(task, sol, X_new)
        f = R @ sol["a_bar"]
        if bulk:
            cov = relu_covariance(k0, kxx, np.diag(task.K0))
            g = np.sqrt(kxx * _INV_2PI) + cov @ (sol["t"] @ sol["a0"])
            f = f + np.outer(g, sol["a0"])
        return f

    return predict


def kernel_function(task, sol):
    """Kernels on arbitrary inputs: layer 0 ``X1ᵀX2/N0``; layer 1 (feature layer, per N) the outliers'
    ``Σ_i relu(z̄_i(x)) relu(z̄_i(x'))`` with ``z̄_i(x) = k0(x)ᵀ w_i``, plus the bulk's arc-cosine kernel
    ``E[relu(z(x)) relu(z(x'))]`` under the prior (its tilt is O(1/√N) per neuron: h → 0).
    The n = O(1) outliers carry preactivations √N z̄, so each adds O(1) to the kernel like the whole bulk."""

    def kernel(layer, X1=None, X2=None):
        X1 = task.X if X1 is None else np.asarray(X1, dtype=np.float64)
        X2 = X1 if X2 is None else np.asarray(X2, dtype=np.float64)
        if layer == 0:
            return X1.T @ X2 / task.N0
        _, R1, k1 = _new_input_features(task, sol, X1)
        _, R2, k2 = (None, R1, k1) if X2 is X1 else _new_input_features(task, sol, X2)
        return R1 @ R2.T + arccos_moments(k1[:, None], k2[None, :], X1.T @ X2 / task.N0)

    return kernel


def solve_relu_general(task, T, sigma_a2, *, bulk=False, tol=1e-5, seed=0, n_slots=None):
    """General-data ReLU theory → :class:`Solution` (see the module docstring and :func:`solve_general`).

    ``bulk=False`` (default) is the paper's MNIST theory (outliers only). ``bulk=True`` adds the
    linear-response bulk; it is only meaningful while ``(s/P) tᵀ C t`` has all eigenvalues below 1
    (the bulk's stability, max Q ≤ 1) — with the fields of a fitted task it often has not, and the
    solution is then flagged by its residual.
    ``converged`` is False, with the reason in ``message``, if the minimization does not reach a
    stationary point within ``tol`` (relative) or the global certificate fails (λ_max > 1 + cert_tol,
    :mod:`meanfield.theory.relu_certificate`: then a better minimum exists). ``info`` has ``loss``,
    ``lam_max``, ``rounds`` (insertion rounds) and ``history``.
    """
    from .solution import Solution

    if T <= 0:
        raise ValueError(f"T must be > 0 for the general-data ReLU theory (t = residual/T), got {T}")
    labels = np.asarray(task.labels)
    K = int(labels.max()) + 1
    P = task.P
    with serial_blas():
        sol = solve_general(task, T, P * sigma_a2, n_slots=n_slots, bulk=bulk, tol=tol, seed=seed)
    R = np.maximum(sol["z_bar"], 0.0)
    zc = np.array([[R[i, labels == c].mean() for c in range(K)] for i in range(R.shape[0])]).reshape(-1, K)
    out_codes = tuple(tuple(int(v > 0.5 * row.max()) for v in row) for row in zc)
    msg = (f"general data: {R.shape[0]} outlier(s)" + (" + linear-response bulk" if bulk else " (outliers only)")
           + f"; stationarity residual {sol['residual']:.2e} (relative); certificate λ_max = {sol['lam_max']:.6f}"
           + f" (duality gap ≤ {sol['gap']:.1e} of the energy) after {sol['rounds']} insertion round(s)"
           + (", stopped: insertions no longer lower the energy" if sol["stalled"] else ""))
    probs = []
    if not sol["residual"] <= tol:
        probs.append(f"residual {sol['residual']:.2e} > tol {tol:.1e}")
    if not sol["lam_max"] <= 1.0 + sol["cert_tol"]:
        probs.append(f"certificate λ_max = {sol['lam_max']:.4g} > 1 + {sol['cert_tol']:.0e}: a direction with "
                     "positive single-neuron energy (not the global minimum)")
    if probs:
        msg = "not converged: " + "; ".join(probs) + "; " + msg
    a0 = sol["a0"]
    kernel = kernel_function(task, sol)
    return Solution(
        nonlinearity="relu", depth=1, T=T, sigma_a2=sigma_a2, field=sol["t"],
        kernels=(task.K0, kernel(1)), converged=sol["converged"], residual=sol["residual"],
        message=msg, nit=sol["nfev"], codes=((0,) * K,), code_fractions=np.ones(1), readouts=a0[None],
        outliers=dict(a_bar=sol["a_bar"], z_bar=sol["z_bar"], z_bar_class=zc, codes=out_codes),
        finite_P=True, task=task,
        info=dict(a0=a0, bulk=bulk, bulk_activation=sol["bulk_activation"], w=sol["w"], general=True,
                  loss=sol["loss"], lam_max=sol["lam_max"], gap=sol["gap"], rounds=sol["rounds"], history=sol["history"]),
        _predict=predictor(task, sol, bulk), _kernel=kernel)
