"""Posterior mean predictor of sampled networks on new inputs (one hidden layer)."""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from .._validation import as_matrix
from ..nonlinearities import nonlinearity as _nonlinearity

_KAPPA = np.sqrt(np.pi / 2.0)


def gaussian_mean_activation(phi, mean, var, n_nodes=40):
    """``E[φ(u)]`` for ``u ~ N(mean, var)`` (elementwise): closed forms for linear, erf, relu;
    Gauss–Hermite with ``n_nodes`` nodes otherwise."""
    mean = np.asarray(mean, dtype=np.float64)
    var = np.maximum(np.asarray(var, dtype=np.float64), 0.0)
    if phi.name == "linear":
        return mean
    if phi.name == "erf":
        return ndtr(_KAPPA * mean / np.sqrt(1.0 + _KAPPA ** 2 * var))
    sd = np.sqrt(var)
    if phi.name == "relu":
        safe = np.where(sd > 0, sd, 1.0)
        r = mean / safe
        out = mean * ndtr(r) + sd * np.exp(-0.5 * r * r) / np.sqrt(2.0 * np.pi)
        return np.where(sd > 0, out, np.maximum(mean, 0.0))
    x, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    w = w / w.sum()
    return np.tensordot(phi.phi(mean[..., None] + sd[..., None] * x), w, axes=([-1], [0]))


def conditional_map(H_train, H_new, width):
    """Gaussian conditional of the next preactivations on new inputs given those on training inputs.

    With layer input activations ``H_train`` (n_in × P) and ``H_new`` (n_in × Q), the weights'
    posterior depends on the training preactivations only, so ``z(x) | z(X)`` is Gaussian with mean
    ``k(x)ᵀ K⁺ z(X)`` and variance ``k(x, x) − k(x)ᵀ K⁺ k(x)``, K = HᵀH / width.
    """
    K = H_train.T @ H_train / width
    k = H_new.T @ H_train / width                                   # (Q, P)
    B = k @ np.linalg.pinv(K, rcond=1e-10, hermitian=True)
    var = np.maximum(np.sum(H_new * H_new, axis=0) / width - np.sum(B * k, axis=1), 0.0)
    return B, var


def predict_samples(samples, task, X_new, batch=16):
    """Posterior mean predictor ``⟨f(x)⟩`` of the sampled networks on new inputs, shape (P_new, m).

    Given the stored training preactivations z_i of a one-hidden-layer network, a new input's
    preactivation is Gaussian, ``z_i(x) ~ N(k0(x)ᵀK0⁺z_i, k0(x,x) − k0(x)ᵀK0⁺k0(x))`` (THEORY.md §3),
    so ``⟨f(x)⟩ = ⟨(1/N) Σ_i a_i E[φ(z_i(x))]⟩`` over the stored samples — exact for the sampled
    posterior (no theory enters).

    Parameters
    ----------
    samples : Samples
        Depth-1 samples with preactivations recorded.
    task : Task
        The training task the samples are for.
    X_new : array_like (N0, P_new)
        New inputs as columns.
    batch : int
        Samples processed at a time (memory).
    """
    cfg = samples.config
    if cfg["depth"] != 1:
        raise ValueError(f"predict_samples handles depth 1, got depth = {cfg['depth']}")
    if not samples.preactivations:
        raise ValueError("samples hold no preactivations (sample with record_preactivations=True)")
    if (cfg["P"], cfg["m"]) != (task.P, task.m):
        raise ValueError("samples and task differ in P or m")
    X_new = as_matrix(X_new, "X_new")
    if X_new.shape[0] != task.N0:
        raise ValueError(f"X_new must have N0 = {task.N0} rows (inputs as columns), got {X_new.shape[0]}")
    phi = _nonlinearity(cfg["nonlinearity"])
    B, var = conditional_map(task.X, X_new, task.N0)     # conditional-mean map and variance
    Z = samples.preactivations[0]
    A = samples.readouts
    S, N = A.shape[0], A.shape[1]
    f = np.zeros((X_new.shape[1], task.m))
    for s0 in range(0, S, batch):
        Zb = np.asarray(Z[s0:s0 + batch], dtype=np.float64)            # (b, N, P)
        M = np.einsum("tp,bnp->bnt", B, Zb)                            # (b, N, P_new)
        H = gaussian_mean_activation(phi, M, np.broadcast_to(var, M.shape))
        f += np.einsum("bnt,bnr->tr", H, A[s0:s0 + batch])
    return f / (S * N)
