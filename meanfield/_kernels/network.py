"""Energy, gradient and HMC/MALA trajectories of the network posterior (numba).

Parameters are packed in one flat vector ``q`` = [C | W_2 … W_L | Ã]:

* ``C`` (N × r): first-layer weights in the coordinates of ``B`` (r × P), so
  that the first-layer preactivations are ``Z_1 = C B`` (weight space:
  ``B = Sᵣ Vᵣᵀ / √N0`` from the SVD of X; preactivation space: a factor of K0;
  ``identity=True`` when ``B = I``).
* ``W_ℓ`` (N × N), ℓ = 2 … L: hidden weights, ``Z_ℓ = W_ℓ φ(Z_{ℓ−1}) / √N``.
* ``Ã = A / σ_a`` (N × m): readouts in prior units.

All coordinates have a standard-normal prior. The energy (negative log
posterior, THEORY.md §1) is ``E = ½|q|² + (N / 2T) |Y − F|²`` with
``F = σ_a φ(Z_L)ᵀ Ã / N``.
"""
import math

import numba as nb
import numpy as np

from .phi import dphi, phi
from .rng import fill_normal, stream_key, uniform_at

STREAM_MOMENTUM = 1
STREAM_ACCEPT = 2


@nb.njit(cache=True, parallel=True)
def _activate(code, prog, Z, H, D, scale):
    """In place: Z *= scale; H = φ(Z); D = φ'(Z)."""
    n0, n1 = Z.shape
    for i in nb.prange(n0):
        for j in range(n1):
            z = Z[i, j] * scale
            Z[i, j] = z
            H[i, j] = phi(code, prog, z)
            D[i, j] = dphi(code, prog, z)


@nb.njit(cache=True, parallel=True)
def _sumsq(x):
    """Deterministic Σ x² of a flat array (fixed blocking, independent of threads)."""
    n = x.shape[0]
    nb_blocks = 64
    part = np.zeros(nb_blocks)
    step = (n + nb_blocks - 1) // nb_blocks
    for b in nb.prange(nb_blocks):
        s = 0.0
        for k in range(b * step, min(n, (b + 1) * step)):
            s += x[k] * x[k]
        part[b] = s
    return part.sum()


@nb.njit(cache=True)
def unpack(q, N, r, L, m):
    """Views (C, Wh, At) into the packed parameter vector."""
    nc = N * r
    nw = (L - 1) * N * N
    C = q[:nc].reshape((N, r))
    Wh = q[nc:nc + nw].reshape((L - 1, N, N))
    At = q[nc + nw:nc + nw + N * m].reshape((N, m))
    return C, Wh, At


@nb.njit(cache=True)
def forward(code, prog, q, B, identity, dims, sig_a, Z, H, D, F):
    """Forward pass: fills Z, H, D (L × N × P) and F (P × m) for parameters ``q``."""
    N, r, L, m = dims[0], dims[1], dims[2], dims[3]
    C, Wh, At = unpack(q, N, r, L, m)
    if identity:
        Z[0][:, :] = C
    else:
        np.dot(C, B, Z[0])
    _activate(code, prog, Z[0], H[0], D[0], 1.0)
    inv_sqrt_n = 1.0 / math.sqrt(N)
    for ell in range(1, L):
        np.dot(Wh[ell - 1], H[ell - 1], Z[ell])
        _activate(code, prog, Z[ell], H[ell], D[ell], inv_sqrt_n)
    np.dot(H[L - 1].T, At, F)
    F *= sig_a / N


@nb.njit(cache=True, parallel=True)
def _top_delta(At, R, D, coef, dZ):
    """dZ[i, μ] = coef · Σ_r Ã[i, r] R[μ, r] · D[i, μ] (the feature-layer backprop)."""
    N, P = dZ.shape
    m = At.shape[1]
    for i in nb.prange(N):
        for mu in range(P):
            s = 0.0
            for k in range(m):
                s += At[i, k] * R[mu, k]
            dZ[i, mu] = coef * s * D[i, mu]


@nb.njit(cache=True, parallel=True)
def _mul_inplace(X, D):
    n0, n1 = X.shape
    for i in nb.prange(n0):
        for j in range(n1):
            X[i, j] *= D[i, j]


@nb.njit(cache=True)
def energy_grad(code, prog, q, g, B, Bt, identity, dims, Y, sig_a, T, Z, H, D, F, dZ, tmp, tmpw):
    """Energy ``(E_prior, E_lik)`` at ``q``; writes ∇E into ``g``. Scratch arrays are overwritten."""
    N, r, L, m = dims[0], dims[1], dims[2], dims[3]
    forward(code, prog, q, B, identity, dims, sig_a, Z, H, D, F)
    R = Y - F
    e_lik = 0.5 * N / T * np.sum(R * R)
    e_prior = 0.5 * _sumsq(q)
    g[:] = q
    gC, gW, gA = unpack(g, N, r, L, m)
    C, Wh, At = unpack(q, N, r, L, m)
    # readouts: ∂E/∂Ã = Ã − (σ_a / T) φ(Z_L) R
    HR = np.dot(H[L - 1], R)
    gA -= (sig_a / T) * HR
    # feature layer: ∂E/∂Z_L = −(σ_a / T) (Ã Rᵀ) ⊙ φ'(Z_L)
    _top_delta(At, R, D[L - 1], -sig_a / T, dZ)
    inv_sqrt_n = 1.0 / math.sqrt(N)
    for ell in range(L - 1, 0, -1):
        np.dot(dZ, H[ell - 1].T, tmpw)
        gW[ell - 1] += inv_sqrt_n * tmpw
        np.dot(Wh[ell - 1].T, dZ, tmp)
        dZ[:, :] = tmp
        dZ *= inv_sqrt_n
        _mul_inplace(dZ, D[ell - 1])
    if identity:
        gC += dZ
    else:
        gC += np.dot(dZ, Bt)
    return e_prior, e_lik


@nb.njit(cache=True)
def alloc_scratch(dims, P):
    """Scratch arrays (Z, H, D, F, dZ, tmp, tmpw) for :func:`energy_grad`."""
    N, L, m = dims[0], dims[2], dims[3]
    Z = np.empty((L, N, P))
    H = np.empty((L, N, P))
    D = np.empty((L, N, P))
    F = np.empty((P, m))
    dZ = np.empty((N, P))
    tmp = np.empty((N, P))
    tmpw = np.empty((N, N)) if L > 1 else np.empty((1, 1))
    return Z, H, D, F, dZ, tmp, tmpw


@nb.njit(cache=True)
def hmc_trajectory(code, prog, q, g, e_prior, e_lik, B, Bt, identity, dims, Y, sig_a, T,
                   eps, n_leap, seed, it):
    """One Metropolis-adjusted HMC transition (MALA when ``n_leap == 1``).

    ``q`` and ``g`` (gradient at q) are updated in place on acceptance.
    Returns ``(accepted, accept_prob, e_prior, e_lik, delta_H)``; a non-finite
    or huge energy error counts as a divergence (rejected, ``delta_H = inf``).
    """
    P = Y.shape[0]
    n = q.shape[0]
    Z, H, D, F, dZ, tmp, tmpw = alloc_scratch(dims, P)
    p = np.empty(n)
    fill_normal(p, stream_key(seed, STREAM_MOMENTUM, it))
    h0 = e_prior + e_lik + 0.5 * _sumsq(p)
    q1 = q.copy()
    g1 = g.copy()
    ep, el = e_prior, e_lik
    finite = True
    for s in range(n_leap):
        p -= 0.5 * eps * g1
        q1 += eps * p
        ep, el = energy_grad(code, prog, q1, g1, B, Bt, identity, dims, Y, sig_a, T,
                             Z, H, D, F, dZ, tmp, tmpw)
        if not (math.isfinite(ep) and math.isfinite(el)):
            finite = False
            break
        p -= 0.5 * eps * g1
    if not finite:
        return False, 0.0, e_prior, e_lik, math.inf
    h1 = ep + el + 0.5 * _sumsq(p)
    dh = h1 - h0
    if not math.isfinite(dh):
        return False, 0.0, e_prior, e_lik, math.inf
    acc_prob = 1.0 if dh <= 0.0 else math.exp(-dh)
    u = uniform_at(stream_key(seed, STREAM_ACCEPT, it), 0)
    if u < acc_prob:
        q[:] = q1
        g[:] = g1
        return True, acc_prob, ep, el, dh
    return False, acc_prob, e_prior, e_lik, dh
