"""Block structure of a kernel: centred kernel–target alignment (Cortes, Mohri & Rostamizadeh, JMLR 13, 795, 2012).

For a kernel K on n inputs with class labels, the ideal block kernel is ``Y Yᵀ`` (Y the one-hot
label matrix). With the centring ``H = I − 11ᵀ/n``,

    A(K) = ⟨HKH, H YYᵀ H⟩_F / (‖HKH‖_F ‖H YYᵀ H‖_F)  ∈ [−1, 1],

1 for a kernel that is exactly block-constant by class (any positive scale, any constant
offset), ≈ 0 for a kernel with no class structure (e.g. the identity on many inputs, or the
input kernel of random data). Centring removes the uninformative constant part that every
positive kernel (e.g. of sigmoid activations) carries.
"""
from __future__ import annotations

import numpy as np


def kernel_alignment(K, labels, n_classes=None):
    """Centred kernel–target alignment of ``K`` (n × n) with the class labels (n,); see the module docstring.

    Parameters
    ----------
    K : array_like (n, n)
        Symmetric kernel on n inputs.
    labels : array_like of int (n,)
        Class of each input.
    n_classes : int, optional
        Number of classes (default ``max(labels) + 1``).

    Returns
    -------
    float
    """
    K = np.asarray(K, dtype=np.float64)
    labels = np.asarray(labels)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be a square matrix, got shape {K.shape}")
    if labels.shape != (K.shape[0],) or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(f"labels must be {K.shape[0]} non-negative integers, got shape {labels.shape}")
    if not np.all(np.isfinite(K)):
        raise ValueError("K must be finite")
    k = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    Y = np.eye(k)[labels]
    Kc = K - K.mean(axis=0) - K.mean(axis=1)[:, None] + K.mean()
    Yc = Y - Y.mean(axis=0)
    T = Yc @ Yc.T
    den = np.linalg.norm(Kc) * np.linalg.norm(T)
    if den == 0.0:
        raise ValueError("alignment undefined: the centred kernel or the centred label kernel vanishes")
    return float(np.sum(Kc * T) / den)
