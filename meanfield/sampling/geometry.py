"""First-layer coordinates of the sampler: weight space (span of the inputs) or preactivation space."""
from __future__ import annotations

import numpy as np


def first_layer_geometry(task, space, project=True, rtol=1e-10):
    """Return ``(B, identity, basis)`` with first-layer preactivations ``Z_1 = C B``.

    ``BᵀB = K0`` in every case, so ``C`` with a standard-normal prior gives
    preactivations ``z_i ~ N(0, K0)`` exactly.

    * weight space, ``project=True``: ``X = U S Vᵀ`` (thin SVD, rank r); the
      first-layer weights are ``W_1 = C Uᵀ + W_⊥`` and ``B = S Vᵀ / √N0``.
      ``W_⊥`` (the component orthogonal to the inputs) never feels the
      likelihood: under the Langevin dynamics it is an Ornstein–Uhlenbeck
      process whose stationary law is the prior, so it is not simulated.
      ``basis = U`` (N0 × r) reconstructs weights if needed.
    * weight space, ``project=False``: ``B = X / √N0`` (the full weight matrix).
    * preactivation space: ``B = (V √d)ᵀ`` from ``K0 = V diag(d) Vᵀ``
      (range of K0 only); ``identity=True`` when ``K0 = I``.
    """
    X = task.X
    N0, P = X.shape
    if space == "preactivation":
        K0 = task.K0
        if np.allclose(K0, np.eye(P), rtol=0.0, atol=rtol * 10):
            return np.eye(P), True, None
        d, V = np.linalg.eigh(K0)
        keep = d > rtol * d.max()
        return np.ascontiguousarray((V[:, keep] * np.sqrt(d[keep])).T), False, None
    if not project:
        return np.ascontiguousarray(X / np.sqrt(N0)), False, np.eye(N0)
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    keep = S > rtol * S.max()
    B = S[keep, None] * Vt[keep] / np.sqrt(N0)
    return np.ascontiguousarray(B), False, np.ascontiguousarray(U[:, keep])
