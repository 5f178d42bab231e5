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


def gaussian_pair_activation(phi, m1, m2, v1, v2, c, n_nodes=24):
    """``E[φ(u₁) φ(u₂)]`` for jointly Gaussian ``(u₁, u₂)`` with means ``m1, m2``, variances ``v1, v2``
    and covariance ``c`` (all broadcast together).

    Quadrature over u₁ with the exact conditional mean of φ(u₂) given u₁ (:func:`gaussian_mean_activation`):
    Gauss–Hermite with ``n_nodes`` nodes for smooth φ, Gauss–Legendre on either side of each kink
    otherwise (Gauss–Hermite converges slowly across a kink: 2e-4 at 200 nodes for ReLU)."""
    m1, m2, v1, v2, c = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (m1, m2, v1, v2, c)))
    v1 = np.maximum(v1, 0.0)
    beta = np.where(v1 > 1e-300, c / np.where(v1 > 1e-300, v1, 1.0), 0.0)
    v21 = np.maximum(v2 - beta * c, 0.0)
    s1 = np.sqrt(v1)
    if not phi.kinks:
        x, w = np.polynomial.hermite_e.hermegauss(n_nodes)
        w = w / w.sum()
        out = np.zeros(m1.shape)
        for xk, wk in zip(x, w):
            out += wk * phi.phi(m1 + s1 * xk) * gaussian_mean_activation(phi, m2 + beta * s1 * xk, v21)
        return out
    # a kink of φ at u₁ = κ sits at x = (κ − m1)/s1: Gauss–Legendre on each side of it (|x| ≤ 10)
    g, gw = np.polynomial.legendre.leggauss(2 * n_nodes)
    safe = np.where(s1 > 0, s1, 1.0)
    edges = [np.full(m1.shape, -10.0)] + sorted(np.clip((k - m1) / safe, -10.0, 10.0) for k in phi.kinks) \
        + [np.full(m1.shape, 10.0)]
    edges = np.sort(np.stack(edges), axis=0)
    out = np.zeros(m1.shape)
    for a, b in zip(edges[:-1], edges[1:]):
        half = 0.5 * (b - a)
        for xk, wk in zip(g, gw):
            x = a + half * (xk + 1.0)
            out += wk * half * np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi) * phi.phi(m1 + s1 * x) \
                * gaussian_mean_activation(phi, m2 + beta * s1 * x, v21)
    return out


def conditional_covariance(H_train, H1, H2, width):
    """Covariance of ``z(x₁)`` and ``z(x₂)`` given ``z(X)`` (the joint form of :func:`conditional_map`):
    ``k(x₁, x₂) − k(x₁)ᵀ K⁺ k(x₂)``, shape (Q1, Q2)."""
    K = H_train.T @ H_train / width
    k1, k2 = H1.T @ H_train / width, H2.T @ H_train / width
    return H1.T @ H2 / width - k1 @ np.linalg.pinv(K, rcond=1e-10, hermitian=True) @ k2.T


def pair_kernel(phi, X, N0, X1, X2, Z, weights, chunk=64):
    """Kernel ``Σ_γ w_γ E[φ(z_γ(x₁)) φ(z_γ(x₂))]`` on new inputs of neurons with training preactivations
    ``Z`` (n × P) and weights ``w``: z_γ(x) is their joint Gaussian conditional given z_γ(X) (inputs X,
    N0 rows). Shape (Q1, Q2)."""
    X1, X2 = np.asarray(X1, dtype=np.float64), np.asarray(X2, dtype=np.float64)
    B1, v1 = conditional_map(X, X1, N0)
    B2, v2 = conditional_map(X, X2, N0)
    C12 = conditional_covariance(X, X1, X2, N0)
    M1, M2 = B1 @ Z.T, B2 @ Z.T                                      # (Q, n)
    out = np.zeros((X1.shape[1], X2.shape[1]))
    for g0 in range(0, Z.shape[0], chunk):
        g = slice(g0, g0 + chunk)
        out += np.sum(weights[g] * gaussian_pair_activation(phi, M1[:, None, g], M2[None, :, g], v1[:, None, None],
                                                            v2[None, :, None], C12[:, :, None]), axis=-1)
    return out


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
