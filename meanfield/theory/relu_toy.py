"""Toy-task reduction of the ReLU theory: class reduction, readout free energy, stability checks.

THEORY.md §2.2 ("Toy task reduction") and §2.3; derivation in ``docs/theory_relu.md``.
With ``K0 = I`` and targets that depend on the class only, the field is one row
``t_c`` per class and the single-neuron readout marginal is ``p(a) ∝ exp(P F(a))`` with

    F(a) = −|a|²/(2s) + Σ_c ρ_c g(t_c·a),   g(h) = log ∫Dz e^{h relu(z)},   s = P σ_a².   (R1)

Along a ray ``a = r â``, ``F ≈ (r²/2s)(Q(â) − 1)`` for large r, with

    Q(â) = s Σ_c ρ_c relu(t_c·â)²                                                           (R2)

(s = 1 with the paper's σ_a² = 1/P). The bulk (an O(1) Dirac at the maximum a0 of F) exists
only if ``max_{|â|=1} Q ≤ 1``; directions with ``Q = 1`` carry the O(√N) outliers.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy import optimize

from ..integrators import tilted_moments

__all__ = ["class_reduction", "free_energy", "free_energy_hessian", "q_function", "max_q", "bulk_global_check"]

_MAX_ENUMERATED_CLASSES = 12    # 2^K subsets in the exact critical-point enumeration of Q


def class_reduction(task, tol=1e-8):
    """Reduce a toy task to class fractions and class targets (THEORY.md §2.2).

    Parameters
    ----------
    task : Task
        Must have ``K0 = I`` (mutually orthogonal inputs with ``|x|² = N0``) and targets that
        are identical within each class of ``task.labels``.
    tol : float
        Tolerance of both checks (max-norm).

    Returns
    -------
    rho : ndarray (K,)
        Class fractions ``ρ_c`` of the K classes present (labels relabelled 0..K−1 in sorted order).
    Yc : ndarray (K, m)
        Target row of each class.
    classes : ndarray (P,)
        Class index (0..K−1) of every training input.

    Raises
    ------
    NotImplementedError
        If ``K0 ≠ I`` or the targets vary within a class (general data: not implemented yet).
    """
    K0 = task.K0
    dev = float(np.max(np.abs(K0 - np.eye(task.P))))
    if dev > tol:
        raise NotImplementedError(
            "the ReLU theory is implemented for the toy task only (orthogonal inputs, K0 = I): "
            f"this task has max|K0 − I| = {dev:.3g}. General data (the outlier-only theory of the "
            "paper's MNIST section, THEORY.md §2.3) is not implemented yet")
    labels, classes = np.unique(task.labels, return_inverse=True)
    rho = np.bincount(classes, minlength=labels.size) / task.P
    Yc = np.array([task.Y[classes == c][0] for c in range(labels.size)])
    spread = float(np.max(np.abs(task.Y - Yc[classes])))
    if spread > tol:
        raise NotImplementedError(
            "the ReLU theory is implemented for class-wise targets only (the toy task): targets vary "
            f"within a class by up to {spread:.3g}")
    return rho, Yc, classes


def free_energy(a, t, rho, s):
    """Bulk readout free energy (R1) and its gradient.

    Parameters
    ----------
    a : ndarray (m,)
        Readout vector.
    t : ndarray (K, m)
        Field, one row per class.
    rho : ndarray (K,)
        Class fractions.
    s : float
        ``P σ_a²`` (1 for the paper's scaling).

    Returns
    -------
    F : float
    grad : ndarray (m,)
        ``−a/s + Σ_c ρ_c g'(h_c) t_c``.
    """
    g, g1, _ = tilted_moments("relu", t @ a)
    return float(-a @ a / (2.0 * s) + rho @ g), -a / s + (rho * g1) @ t


def free_energy_hessian(a, t, rho, s):
    """Hessian ``−I/s + Σ_c ρ_c g''(h_c) t_c t_cᵀ`` of (R1)."""
    _, _, g2 = tilted_moments("relu", t @ a)
    return -np.eye(t.shape[1]) / s + (t.T * (rho * g2)) @ t


def q_function(A, t, rho, s):
    """``Q`` of (R2) for each row of ``A`` (rows are normalized first)."""
    A = np.atleast_2d(A)
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    return s * (np.maximum(A @ t.T, 0.0) ** 2) @ rho


def _critical_points(t, rho, s, eps=1e-12):
    """All critical points of Q on the unit sphere (exact for non-degenerate spectra).

    Q is C¹ and 2-homogeneous, so a critical point satisfies ``M_S â = Q â`` with
    ``M_S = s Σ_{c∈S} ρ_c t_c t_cᵀ`` and S the classes with ``t_c·â > 0``: enumerate S, take the
    eigenvectors of M_S and keep those whose sign pattern is consistent with S.
    """
    K, m = t.shape
    best_q, best_v = 0.0, None
    for k in range(1, K + 1):
        for S in itertools.combinations(range(K), k):
            S = list(S)
            M = s * (t[S].T * rho[S]) @ t[S]
            lam, V = np.linalg.eigh(M)
            for j in range(m):
                if lam[j] <= best_q:
                    continue
                for v in (V[:, j], -V[:, j]):
                    h = t @ v
                    scale = eps * max(1.0, np.max(np.abs(h)))
                    inside = np.zeros(K, bool)
                    inside[S] = True
                    if np.all(h[inside] >= -scale) and np.all(h[~inside] <= scale):
                        best_q, best_v = float(lam[j]), v
                        break
    return best_q, best_v


def max_q(t, rho, s, n_directions=2000, seed=0, iterations=500):
    """Global maximum of Q (R2) over unit directions: the bulk stability check (THEORY.md §2.3).

    Two independent searches: (i) for K ≤ 12 classes, exact enumeration of the critical points
    (:func:`_critical_points`); (ii) ``n_directions`` random unit starts, each iterated by the
    power map ``â ← ∇Q(â)/|∇Q(â)|``, which never decreases Q because Q is convex and
    2-homogeneous (``Q(∇Q/|∇Q|) ≥ Q + |∇Q| − 2Q ≥ Q``).

    Parameters
    ----------
    t : ndarray (K, m)
    rho : ndarray (K,)
    s : float
    n_directions : int
        Random starts for (ii).
    seed : int
    iterations : int
        Power-map iterations per start.

    Returns
    -------
    dict
        ``Q_max`` (the larger of both searches), ``direction`` (unit m-vector), ``Q_exact``
        (enumeration, ``nan`` if skipped) and ``Q_random`` (random starts).
    """
    K, m = t.shape
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n_directions, m))
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    for _ in range(iterations):
        G = s * (np.maximum(A @ t.T, 0.0) * rho) @ t
        norm = np.linalg.norm(G, axis=1, keepdims=True)
        A = np.where(norm > 0, G / np.where(norm > 0, norm, 1.0), A)
    q = q_function(A, t, rho, s)
    j = int(np.argmax(q))
    q_rand, v_rand = float(q[j]), A[j]
    q_exact, v_exact = (np.nan, None)
    if K <= _MAX_ENUMERATED_CLASSES:
        q_exact, v_exact = _critical_points(t, rho, s)
    if v_exact is not None and q_exact >= q_rand:
        return dict(Q_max=q_exact, direction=v_exact, Q_exact=q_exact, Q_random=q_rand)
    return dict(Q_max=q_rand, direction=v_rand, Q_exact=q_exact, Q_random=q_rand)


def bulk_global_check(a0, t, rho, s, n_starts=24, seed=0):
    """Whether ``a0`` is the global maximum of F (R1): multistart BFGS from random readouts.

    Meaningful only when max Q ≤ 1 (otherwise F is unbounded above and the bulk does not
    exist, see :func:`max_q`). A start whose iterates run off to fields where the tilted
    integral overflows is discarded.

    Returns
    -------
    dict
        ``F_a0``, ``F_best`` (best value found from the random starts), ``a_best`` and
        ``hessian_eigs`` (eigenvalues of ∇²F at a0, all negative for a strict maximum).
    """
    rng = np.random.default_rng(seed)
    F0 = free_energy(a0, t, rho, s)[0]
    best, a_best = -np.inf, None
    scale = max(1.0, float(np.linalg.norm(a0)))
    for _ in range(n_starts):
        x0 = rng.standard_normal(a0.size) * scale * rng.uniform(0.0, 2.0)
        try:
            res = optimize.minimize(lambda a: tuple(-v for v in free_energy(a, t, rho, s)), x0, jac=True,
                                    method="BFGS", options=dict(maxiter=500, gtol=1e-10))
        except ValueError:
            continue
        if -res.fun > best:
            best, a_best = -float(res.fun), res.x
    eigs = np.linalg.eigvalsh(free_energy_hessian(a0, t, rho, s))
    return dict(F_a0=F0, F_best=best, a_best=a_best, hessian_eigs=eigs)
