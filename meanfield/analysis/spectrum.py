"""Eigenspectrum of the activation covariance and its power-law decay exponent α.

Following the coding-theory view of polysemanticity (arXiv:2401.17975, after Stringer
et al., Nature 571, 361, 2019), a layer's code is summarised by the PCA spectrum of its
activations: each input μ is one observation of the N-dimensional population vector
h_μ, and the covariance *across inputs*

    C = 1/(P − 1) Σ_μ (h_μ − h̄)(h_μ − h̄)ᵀ        (N × N, neurons × neurons)

has eigenvalues λ_1 ≥ λ_2 ≥ … Their decay λ_k ∝ k^(−α) measures redundancy: a steep
decay (α > 1) means few directions matter — a smooth, redundant, interpretable code —
while α < 1 means variance spread over many directions (dense, efficient, less
interpretable). That paper writes λ_k ∝ k^α with α ≤ −1 for the redundant case; here α
is the positive decay rate, i.e. minus theirs, and α = 1 is the boundary.

With a leading sample axis S the covariance is averaged over samples (the posterior
mean of C; each sample centred on its own input mean).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scheme import _as_array


def eigenspectrum(H, center=True):
    """Eigenvalues of the activation covariance across inputs, largest first.

    Parameters
    ----------
    H : array_like (N, P) or (S, N, P)
        Activations of N neurons on P inputs (S posterior samples: the covariance is
        averaged over them).
    center : bool
        Subtract each neuron's mean over inputs (covariance, default). False: the
        uncentred second moment (1/P) Σ_μ h_μ h_μᵀ.

    Returns
    -------
    ndarray (min(N, S·P),)
        Eigenvalues of the N × N covariance in decreasing order (≥ 0; the remaining
        N − S·P eigenvalues, if any, are zero).

    Notes
    -----
    With X the N × S·P matrix of centred activations, λ are the eigenvalues of the
    smaller of X Xᵀ and XᵀX divided by S (P − 1) (absolute accuracy ≈ 1e-16 λ_1, ample
    for power-law fits; an SVD of a wide X is much slower).
    """
    if not isinstance(center, (bool, np.bool_)):
        raise TypeError(f"center must be a bool, got {center!r}")
    A = _as_array(H, "H", (2, 3))
    A = A[None] if A.ndim == 2 else A
    S, N, P = A.shape
    if center:
        if P < 2:
            raise ValueError(f"H needs at least 2 inputs (P ≥ 2) for a covariance, got P = {P}")
        A = A - A.mean(axis=-1, keepdims=True)
        norm = S * (P - 1)
    else:
        norm = S * P
    X = np.moveaxis(A, 1, 0).reshape(N, S * P)
    G = X @ X.T if N <= S * P else X.T @ X                      # the smaller Gram matrix
    lam = np.clip(np.linalg.eigvalsh(G), 0.0, None) / norm
    return lam[::-1]


@dataclass
class PowerLawFit:
    """Result of :func:`powerlaw_exponent`.

    Attributes
    ----------
    alpha : float
        Decay exponent, λ_k ≈ c k^(−α).
    r2 : float
        Coefficient of determination of the log–log fit (1 for an exact power law).
    prefactor : float
        c.
    fit_range : tuple of int
        (k_min, k_max), 1-based inclusive ranks used.
    """

    alpha: float
    r2: float
    prefactor: float
    fit_range: tuple

    def __float__(self):
        return self.alpha


def powerlaw_exponent(eigs, fit_range=None):
    """Power-law exponent α of a spectrum, λ_k ∝ k^(−α), by least squares in log–log.

    Fits log λ_k = log c − α log k over ranks k = k_min … k_max (1-based, inclusive),
    unweighted ordinary least squares.

    Parameters
    ----------
    eigs : array_like (n,)
        Eigenvalues (sorted here in decreasing order).
    fit_range : (int, int), optional
        (k_min, k_max). Default (1, max(2, n₊ // 2)) with n₊ the number of eigenvalues
        above 1e-12 λ_1: the lower half of the non-zero spectrum is left out because
        finite sampling (few inputs, P ≲ N) bends its tail down (Marchenko–Pastur edge).
        For a trained network the top K − 1 or so ranks are task modes (low-rank kernel
        spikes) rather than part of a power law; pass e.g. (K, …) to exclude them.

    Returns
    -------
    PowerLawFit
        ``alpha``, ``r2``, ``prefactor``, ``fit_range``; ``float(fit)`` gives α.
    """
    lam = _as_array(eigs, "eigs", (1,))
    lam = np.sort(lam)[::-1]
    n = lam.size
    if lam[0] <= 0:
        raise ValueError("eigs must contain a positive eigenvalue")
    if fit_range is None:
        n_pos = int(np.count_nonzero(lam > 1e-12 * lam[0]))
        k_min, k_max = 1, max(2, n_pos // 2)
    else:
        try:
            k_min, k_max = fit_range
        except (TypeError, ValueError) as exc:
            raise TypeError(f"fit_range must be a pair of ints (k_min, k_max), got {fit_range!r}") from exc
        for v in (k_min, k_max):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"fit_range must be a pair of ints (k_min, k_max), got {fit_range!r}")
        k_min, k_max = int(k_min), int(k_max)
    if not 1 <= k_min < k_max <= n:
        raise ValueError(f"fit_range must satisfy 1 <= k_min < k_max <= {n} (number of eigs), "
                         f"got ({k_min}, {k_max})")
    y = lam[k_min - 1:k_max]
    if np.any(y <= 0):
        raise ValueError(f"eigs must be positive over fit_range ({k_min}, {k_max}); "
                         "shrink the range to the non-zero part of the spectrum")
    x = np.log(np.arange(k_min, k_max + 1, dtype=np.float64))
    ly = np.log(y)
    X = np.stack([np.ones_like(x), x], axis=1)
    coef, *_ = np.linalg.lstsq(X, ly, rcond=None)
    res = ly - X @ coef
    ss_tot = float(np.sum((ly - ly.mean()) ** 2))
    r2 = 1.0 - float(np.sum(res ** 2)) / ss_tot if ss_tot > 0 else 1.0
    return PowerLawFit(alpha=float(-coef[1]), r2=r2, prefactor=float(np.exp(coef[0])),
                       fit_range=(k_min, k_max))
