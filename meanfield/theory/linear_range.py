"""Linear networks on a rank-deficient input kernel: exact reduction to the range of K0.

A linear network's preactivations on the training set, in every layer, are linear in the
inputs, ``h = W X``, and ``X`` has the P − r null directions of K0 = XᵀX/N0 in its kernel.
With an orthonormal basis V (P × r) of range(K0), ``X = X̃ Vᵀ`` with ``X̃ = X V`` (N0 × r), so
the outputs on the training set are ``f = V g`` with g the outputs on the r effective inputs X̃,
and the loss splits exactly,

    |Y − V g|² = |VᵀY − g|² + |(I − V Vᵀ) Y|²,

the second term independent of every weight. The posterior of the network on (X, Y) is therefore
*identical* (any depth, width N and temperature T) to that of the same network on the reduced task
(X̃, VᵀY) with the same readout prior σ_a²: solve that and lift. On the training set the kernels
are ``K_ℓ = V K̃_ℓ Vᵀ``; the field is ``t = V t̃ + (I − VVᵀ) Y / T`` (the unfittable part of the
targets is all residual); at T = 0 the null-space part of t is infinite and only the fitted
outputs ``F = Y − T t = V F̃`` are meaningful, so ``field`` holds ``V t̃`` and
``info["unfittable"]`` the residual ``(I − VVᵀ) Y``. Test inputs need no reduction: the reduced
task's input kernel ``X̃ᵀ x / N0 = Vᵀ k0(x)`` takes inputs in the original space.

At T = 0 this is the exact T → 0 limit: ``predict(x) = k0(x)ᵀ K0⁺ Y``, the GP (NNGP) mean with the
pseudo-inverse, for every depth (docs/theory.md, "Rank-deficient inputs").
"""

import numpy as np

from ..tasks import Task
from .solution import Solution

__all__ = ["range_basis", "solve_on_range"]


def range_basis(K0, cutoff=1e-12):
    """Orthonormal basis (P × r) of the range of K0, or ``None`` if K0 has full rank.

    Eigenvalues at or below ``cutoff · λ_max`` count as zero (the relative cutoff of
    :func:`meanfield.gp_baseline`'s pseudo-inverse, so theory and GP use the same range).
    """
    d, V = np.linalg.eigh(0.5 * (K0 + K0.T))
    keep = d > cutoff * max(d[-1], 0.0)
    if keep.all():
        return None
    if not keep.any():
        raise ValueError("K0 is zero: the training inputs carry no signal")
    return V[:, keep]


def solve_on_range(task, V, solve, depth, T, N, sigma_a2, **kwargs):
    """Solve the reduced task (X V, Vᵀ Y) with ``solve`` and lift the solution to ``task``.

    Parameters
    ----------
    task : Task
        The original task (K0 rank-deficient).
    V : ndarray, shape (P, r)
        Orthonormal basis of range(K0) (:func:`range_basis`).
    solve : callable
        ``solve(reduced_task, depth=..., T=..., N=..., sigma_a2=..., **kwargs)`` → Solution.
    depth, T, N, sigma_a2
        As for :func:`meanfield.solve`; σ_a² is the original task's (it does not change with r).

    Returns
    -------
    Solution
        On the original training inputs; ``info["reduced"]`` is the reduced solution,
        ``info["rank"]`` = r, ``info["unfittable"]`` = (I − VVᵀ) Y.
    """
    P, r = V.shape
    if N is not None and depth >= 2 and N < r:
        raise ValueError(f"depth ≥ 2 at finite width needs N ≥ rank(K0) = {r} (nonsingular Wishart layer "
                         f"kernels), got N = {N}")
    red = Task(X=task.X @ V, Y=V.T @ task.Y)
    sol = solve(red, depth=depth, T=T, N=N, sigma_a2=sigma_a2, **kwargs)
    lift = lambda K: V @ K @ V.T                                        # noqa: E731
    K0 = task.K0
    kernels = (K0,) + tuple(K0 + lift(K - sol.kernels[0]) for K in sol.kernels[1:])
    unfit = task.Y - V @ (V.T @ task.Y)
    t = V @ sol.field + (unfit / T if T > 0 else 0.0)
    F = V @ sol.train_prediction

    def predict(X_new):
        return sol.predict(X_new)

    def kernel(layer, X1, X2):
        X1 = task.X if X1 is None else X1
        return sol.kernel(layer, X1, X1 if X2 is None else X2)

    def conditional(a):
        mean, cov = sol.conditional(a)
        return V @ mean, lift(cov)

    info = dict(sol.info)
    info.update(reduced=sol, rank=r, unfittable=unfit, fitted=F,
                learned=tuple(K - K0 for K in kernels[1:]))
    msg = f"reduced to range(K0) (rank {r} of P = {P}; exact, docs/theory.md): {sol.message}"
    return Solution(nonlinearity=sol.nonlinearity, depth=depth, T=T, sigma_a2=sigma_a2, field=t,
                    kernels=kernels, converged=sol.converged, residual=sol.residual, message=msg, nit=sol.nit,
                    U=sol.U, N=N, finite_P=sol.finite_P, task=task, info=info, _predict=predict,
                    _kernel=kernel, _conditional=conditional)
