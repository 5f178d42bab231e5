"""Neural-collapse metrics (Papyan, Han & Donoho, PNAS 117, 24652, 2020).

Features H are N × P (neurons × inputs; a leading sample axis S gives one value per
sample). With class means μ_c (N,), K classes, and the centre μ̄ = (1/K) Σ_c μ_c:

* Σ_W = (1/P) Σ_μ (h_μ − μ_{c(μ)})(h_μ − μ_{c(μ)})ᵀ — within-class covariance;
* Σ_B = (1/K) Σ_c (μ_c − μ̄)(μ_c − μ̄)ᵀ — between-class covariance;
* **NC1** = tr(Σ_W Σ_B⁺) / K (Σ_B⁺ the Moore–Penrose pseudo-inverse): within-class
  variability measured in units of the between-class separation; → 0 under collapse;
* **NC2** = ‖G/‖G‖_F − E/‖E‖_F‖_F with G = M̃ᵀM̃ the Gram matrix of the centred class
  means M̃ = [μ_c − μ̄] and E = I − 11ᵀ/K the Gram matrix of a simplex equiangular
  tight frame (ETF): 0 for equal-norm, maximally and equally separated class means
  (any scale and rotation); at most 2.

For balanced classes μ̄ is the global mean, Papyan et al.'s choice. For unbalanced
classes the unweighted mean of the class means is used, so that an ETF (whose vectors
sum to zero) can reach NC2 = 0 irrespective of the class sizes.

The paper's redundant and sparse schemes are close to collapse (small within-class
fluctuations, block-structured kernels) but fix the basis (codes), which NC metrics
ignore: both metrics are invariant under orthogonal transformations of neuron space.
"""
from __future__ import annotations

import numpy as np

from .scheme import _as_array, _as_labels, _class_means


def _setup(H, labels):
    A = _as_array(H, "H", (2, 3))
    lab, K = _as_labels(labels, A.shape[-1])
    if K < 2:
        raise ValueError(f"labels must contain at least 2 classes, got {K}")
    return A, lab, K


def _per_sample(fn, A, *args):
    if A.ndim == 2:
        return fn(A, *args)
    return np.array([fn(a, *args) for a in A])


def _nc1(H, lab, K):
    M = _class_means(H, lab, K)                                 # (N, K)
    Mc = M - M.mean(axis=1, keepdims=True)
    W = H - M[:, lab]                                           # within-class deviations (N, P)
    U, s, _ = np.linalg.svd(Mc, full_matrices=False)
    tol = max(Mc.shape) * np.finfo(float).eps * (s[0] if s.size else 0.0)
    keep = s > tol
    within = float(np.sum(W ** 2))
    if not np.any(keep):                                        # Σ_B = 0: no class separation
        return float("nan") if within == 0 else float("inf")
    U, s = U[:, keep], s[keep]
    # Σ_B = Mc Mcᵀ / K = U (s²/K) Uᵀ  ⇒  Σ_B⁺ = U (K/s²) Uᵀ ;  uᵀ Σ_W u = |Wᵀu|² / P
    proj = np.sum((U.T @ W) ** 2, axis=1) / H.shape[1]
    return float(np.sum(K / s ** 2 * proj) / K)


def nc1(H, labels):
    """NC1 = tr(Σ_W Σ_B⁺)/K, the within-class variability collapse (Papyan et al. 2020).

    Parameters
    ----------
    H : array_like (N, P) or (S, N, P)
        Features (e.g. activations) of N neurons on P inputs.
    labels : array_like of int (P,)
        Class of each input, 0 … K−1 (K ≥ 2).

    Returns
    -------
    float or ndarray (S,)
        NC1 ≥ 0; 0 when every feature vector equals its class mean. ``inf`` when all
        class means coincide but features vary, ``nan`` when all features are equal.

    Notes
    -----
    Computed without forming N × N matrices: with the thin SVD M̃ = U s Vᵀ of the centred
    class means, tr(Σ_W Σ_B⁺) = Σ_j (K / s_j²) u_jᵀ Σ_W u_j (singular values below the
    ``numpy.linalg.pinv`` tolerance dropped), O(N P K).
    """
    A, lab, K = _setup(H, labels)
    return _per_sample(_nc1, A, lab, K)


def _nc2(H, lab, K):
    M = _class_means(H, lab, K)
    Mc = M - M.mean(axis=1, keepdims=True)
    G = Mc.T @ Mc
    g = np.linalg.norm(G)
    if g == 0:
        return float("nan")
    E = np.eye(K) - 1.0 / K
    return float(np.linalg.norm(G / g - E / np.sqrt(K - 1.0)))


def nc2(H, labels):
    """NC2: distance of the class means' Gram matrix to a simplex ETF.

    NC2 = ‖G/‖G‖_F − E/‖E‖_F‖_F, G = M̃ᵀM̃ (K × K) for the centred class means
    M̃ = [μ_c − μ̄], E = I − 11ᵀ/K (‖E‖_F = √(K − 1)).

    Parameters
    ----------
    H : array_like (N, P) or (S, N, P)
        Features of N neurons on P inputs.
    labels : array_like of int (P,)
        Class of each input, 0 … K−1 (K ≥ 2).

    Returns
    -------
    float or ndarray (S,)
        In [0, 2]; 0 exactly for a simplex ETF (up to scale and rotation), ``nan`` if all
        class means coincide.
    """
    A, lab, K = _setup(H, labels)
    return _per_sample(_nc2, A, lab, K)


def collapse_metrics(H, labels):
    """NC1 and NC2 plus the equinorm and equiangularity parts of NC2.

    Parameters
    ----------
    H : array_like (N, P) or (S, N, P)
        Features; with a sample axis every entry is the mean over samples.
    labels : array_like of int (P,)
        Class of each input.

    Returns
    -------
    dict
        ``nc1``, ``nc2``; ``equinorm`` = std/mean of the centred class-mean norms and
        ``equiangular`` = std of their pairwise cosines (both 0 for an ETF, Papyan et
        al.'s Fig. 4–5), and ``max_angle`` = mean |cos + 1/(K−1)| (0 when every pair has
        the ETF's cosine −1/(K−1)).
    """
    A, lab, K = _setup(H, labels)
    A3 = A[None] if A.ndim == 2 else A
    en, ea, ma = [], [], []
    iu = np.triu_indices(K, 1)
    for a in A3:
        Mc = _class_means(a, lab, K)
        Mc = Mc - Mc.mean(axis=1, keepdims=True)
        n = np.linalg.norm(Mc, axis=0)
        if np.any(n == 0):
            en.append(np.nan), ea.append(np.nan), ma.append(np.nan)
            continue
        cos = (Mc.T @ Mc / np.outer(n, n))[iu]
        en.append(n.std() / n.mean())
        ea.append(cos.std())
        ma.append(np.mean(np.abs(cos + 1.0 / (K - 1))))
    return dict(nc1=float(np.mean(_per_sample(_nc1, A3, lab, K))),
                nc2=float(np.mean(_per_sample(_nc2, A3, lab, K))),
                equinorm=float(np.mean(en)), equiangular=float(np.mean(ea)),
                max_angle=float(np.mean(ma)))
