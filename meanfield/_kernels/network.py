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

from .fastphi import activate_erf, wide_vectors
from .leapfrog_identity import alloc_identity_workspace, trajectory_identity
from .phi import ERF, dphi, phi
from .rng import fill_normal, stream_key, uniform_at

STREAM_MOMENTUM = 1
STREAM_ACCEPT = 2


_NBLK = 64      # fixed reduction blocking: sums do not depend on the thread count


@nb.njit(cache=True)
def _activate(code, prog, Z, H, D, scale):
    """H = φ(scale·Z), D = φ'(scale·Z); Z itself is not modified."""
    if code == ERF:
        activate_erf(Z, H, D, scale)
    else:
        _activate_generic(code, prog, Z, H, D, scale)


@nb.njit(cache=True, parallel=True, fastmath=True)
def _activate_generic(code, prog, Z, H, D, scale):
    n0, n1 = Z.shape
    for i in nb.prange(n0):
        for j in range(n1):
            z = Z[i, j] * scale
            H[i, j] = phi(code, prog, z)
            D[i, j] = dphi(code, prog, z)


@nb.njit(cache=True, parallel=True, fastmath=True)
def _sumsq(x):
    """Deterministic Σ x² of a flat array."""
    n = x.shape[0]
    part = np.zeros(_NBLK)
    step = (n + _NBLK - 1) // _NBLK
    for b in nb.prange(_NBLK):
        s = 0.0
        for k in range(b * step, min(n, (b + 1) * step)):
            s += x[k] * x[k]
        part[b] = s
    return part.sum()


@nb.njit(cache=True, parallel=True, fastmath=True)
def _kick_drift(p, q, g, a, b):
    """p ← p − a·g; q ← q + b·p (one fused pass); returns Σq² of the new q."""
    n = q.shape[0]
    part = np.zeros(_NBLK)
    step = (n + _NBLK - 1) // _NBLK
    for blk in nb.prange(_NBLK):
        s = 0.0
        for k in range(blk * step, min(n, (blk + 1) * step)):
            pk = p[k] - a * g[k]
            p[k] = pk
            qk = q[k] + b * pk
            q[k] = qk
            s += qk * qk
        part[blk] = s
    return part.sum()


@nb.njit(cache=True, parallel=True, fastmath=True)
def _kick(p, g, a):
    """p ← p − a·g; returns Σp² of the new p."""
    n = p.shape[0]
    part = np.zeros(_NBLK)
    step = (n + _NBLK - 1) // _NBLK
    for blk in nb.prange(_NBLK):
        s = 0.0
        for k in range(blk * step, min(n, (blk + 1) * step)):
            pk = p[k] - a * g[k]
            p[k] = pk
            s += pk * pk
        part[blk] = s
    return part.sum()


@nb.njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _readout_row(row, a, Rt, coef):
    """``row[μ] = coef · Σ_k a[k] Rt[k, μ]`` — one pass per output over the row, which vectorizes."""
    row[:] = 0.0
    for k in range(a.shape[0]):
        c = coef * a[k]
        rk = Rt[k]
        for mu in range(row.shape[0]):
            row[mu] += c * rk[mu]


@nb.njit(cache=True, parallel=True, fastmath=True, error_model="numpy")
def _top_delta(At, R, D, coef, dZ):
    """Feature-layer backprop dZ[i, μ] = coef · Σ_r Ã[i, r] R[μ, r] · φ'(Z_L)[i, μ]."""
    N, P = D.shape
    Rt = np.ascontiguousarray(R.T)          # m passes over a row (in L1) vectorize; a loop over r per μ does not
    for i in nb.prange(N):
        wide_vectors()
        row = dZ[i]
        _readout_row(row, At[i], Rt, coef)
        d = D[i]
        for mu in range(P):
            row[mu] *= d[mu]


@nb.njit(cache=True, parallel=True, fastmath=True, error_model="numpy")
def _top_delta_fused(At, R, D, coef, base, out):
    """``out = base + δ`` with δ as in :func:`_top_delta` (identity geometry, prior term included)."""
    N, P = D.shape
    Rt = np.ascontiguousarray(R.T)
    for i in nb.prange(N):
        wide_vectors()
        row = out[i]
        _readout_row(row, At[i], Rt, coef)
        d, b = D[i], base[i]
        for mu in range(P):
            row[mu] = b[mu] + row[mu] * d[mu]


@nb.njit(cache=True, parallel=True, fastmath=True)
def _add_scaled(out, base, X, c):
    """out = base + c·X."""
    n0, n1 = out.shape
    for i in nb.prange(n0):
        for j in range(n1):
            out[i, j] = base[i, j] + c * X[i, j]


@nb.njit(cache=True, parallel=True, fastmath=True)
def _scaled_product(out, X, D, c):
    """out = c · X ⊙ D."""
    n0, n1 = out.shape
    for i in nb.prange(n0):
        for j in range(n1):
            out[i, j] = c * X[i, j] * D[i, j]


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
def forward(code, prog, q, B, identity, dims, sig_a, Z, H, D, F, keep_z):
    """Forward pass: fills H, D (L × N × P), F (P × m) and, with ``keep_z``, the preactivations Z.

    Without ``keep_z`` the identity geometry reads the first-layer
    preactivations straight from ``q`` and does not write ``Z[0]``; hidden
    layers keep ``√N Z_ℓ`` in ``Z[ℓ]``.
    """
    N, r, L, m = dims[0], dims[1], dims[2], dims[3]
    C, Wh, At = unpack(q, N, r, L, m)
    if identity:
        if keep_z:
            Z[0][:, :] = C
        _activate(code, prog, C, H[0], D[0], 1.0)
    else:
        np.dot(C, B, Z[0])
        _activate(code, prog, Z[0], H[0], D[0], 1.0)
    inv_sqrt_n = 1.0 / math.sqrt(N)
    for ell in range(1, L):
        np.dot(Wh[ell - 1], H[ell - 1], Z[ell])
        _activate(code, prog, Z[ell], H[ell], D[ell], inv_sqrt_n)
        if keep_z:
            Z[ell] *= inv_sqrt_n
    np.dot(H[L - 1].T, At, F)
    F *= sig_a / N


@nb.njit(cache=True)
def lik_grad(code, prog, q, g, B, Bt, identity, dims, Y, sig_a, T, Z, H, D, F, dZ, tmp, tmpw, tmpc):
    """``E_lik = (N / 2T)|Y − F|²`` at ``q``; writes the full gradient ∇E = q + ∇E_lik into ``g``."""
    N, r, L, m = dims[0], dims[1], dims[2], dims[3]
    forward(code, prog, q, B, identity, dims, sig_a, Z, H, D, F, False)
    R = Y - F
    e_lik = 0.5 * N / T * np.sum(R * R)
    gC, gW, gA = unpack(g, N, r, L, m)
    C, Wh, At = unpack(q, N, r, L, m)
    # readouts: ∂E/∂Ã = Ã − (σ_a / T) φ(Z_L) R
    HR = np.dot(H[L - 1], R)
    for i in range(N):
        for k in range(m):
            gA[i, k] = At[i, k] - (sig_a / T) * HR[i, k]
    coef = -sig_a / T
    if L == 1 and identity:
        _top_delta_fused(At, R, D[0], coef, C, gC)
        return e_lik
    _top_delta(At, R, D[L - 1], coef, dZ)
    inv_sqrt_n = 1.0 / math.sqrt(N)
    for ell in range(L - 1, 0, -1):
        np.dot(dZ, H[ell - 1].T, tmpw)
        _add_scaled(gW[ell - 1], Wh[ell - 1], tmpw, inv_sqrt_n)
        np.dot(Wh[ell - 1].T, dZ, tmp)
        _scaled_product(dZ, tmp, D[ell - 1], inv_sqrt_n)
    if identity:
        _add_scaled(gC, C, dZ, 1.0)
    else:
        np.dot(dZ, Bt, tmpc)
        _add_scaled(gC, C, tmpc, 1.0)
    return e_lik


@nb.njit(cache=True)
def energy_grad(code, prog, q, g, B, Bt, identity, dims, Y, sig_a, T, Z, H, D, F, dZ, tmp, tmpw, tmpc):
    """Energy ``(E_prior, E_lik)`` at ``q``; writes ∇E into ``g``. Scratch arrays are overwritten."""
    e_lik = lik_grad(code, prog, q, g, B, Bt, identity, dims, Y, sig_a, T, Z, H, D, F, dZ, tmp, tmpw, tmpc)
    return 0.5 * _sumsq(q), e_lik


@nb.njit(cache=True)
def alloc_scratch(dims, P):
    """Scratch arrays (Z, H, D, F, dZ, tmp, tmpw, tmpc) for :func:`energy_grad`."""
    N, r, L, m = dims[0], dims[1], dims[2], dims[3]
    Z = np.empty((L, N, P))
    H = np.empty((L, N, P))
    D = np.empty((L, N, P))
    F = np.empty((P, m))
    dZ = np.empty((N, P))
    tmp = np.empty((N, P))
    tmpw = np.empty((N, N)) if L > 1 else np.empty((1, 1))
    tmpc = np.empty((N, r))
    return Z, H, D, F, dZ, tmp, tmpw, tmpc


@nb.njit(cache=True)
def alloc_workspace(dims, P, n, surrogate=True):
    """Every array a trajectory needs, allocated once per run (fresh pages cost more than the math).

    For one hidden layer with r = P (possibly the identity geometry) this includes the
    work arrays of the fused trajectory (:mod:`meanfield._kernels.leapfrog_identity`);
    ``surrogate=False`` turns off its float32 surrogate forces (sigmoid only; benchmarks).
    """
    N, r, L, m = dims[0], dims[1], dims[2], dims[3]
    Z, H, D, F, dZ, tmp, tmpw, tmpc = alloc_scratch(dims, P)
    if L == 1 and r == P:
        iws = alloc_identity_workspace(N, P, m, surrogate)
    else:
        iws = alloc_identity_workspace(1, 1, m, False)
    return (Z, H, D, F, dZ, tmp, tmpw, tmpc, np.zeros(n), np.zeros(n), np.zeros(n), iws)


@nb.njit(cache=True)
def hmc_trajectory(code, prog, q, g, e_prior, e_lik, B, Bt, identity, dims, Y, sig_a, T,
                   eps, n_leap, seed, it, ws):
    """One Metropolis-adjusted HMC transition (MALA when ``n_leap == 1``).

    ``q`` and ``g`` (gradient at q) are updated in place on acceptance; ``ws``
    is the workspace from :func:`alloc_workspace`.
    Returns ``(accepted, accept_prob, e_prior, e_lik, delta_H)``; a non-finite
    energy counts as a divergence (rejected, ``delta_H = inf``).
    """
    Z, H, D, F, dZ, tmp, tmpw, tmpc, p, q1, g1, iws = ws
    fill_normal(p, stream_key(seed, STREAM_MOMENTUM, it))
    h0 = e_prior + e_lik + 0.5 * _sumsq(p)
    q1[:] = q
    g1[:] = g
    if dims[2] == 1 and identity:
        # toy-task geometry: one fused sweep per leapfrog step (leapfrog_identity.py)
        ok, ep, el, kin = trajectory_identity(code, prog, p, q1, g1, eps, n_leap, Y, sig_a, T, dims[0], iws)
        if not ok:
            return False, 0.0, e_prior, e_lik, math.inf
    else:
        ep, el = e_prior, e_lik
        for s in range(n_leap):
            # leapfrog: half kick + drift merged with the previous step's closing half kick
            a = (0.5 if s == 0 else 1.0) * eps
            ep = 0.5 * _kick_drift(p, q1, g1, a, eps)
            el = lik_grad(code, prog, q1, g1, B, Bt, identity, dims, Y, sig_a, T,
                          Z, H, D, F, dZ, tmp, tmpw, tmpc)
            if not (math.isfinite(ep) and math.isfinite(el)):
                return False, 0.0, e_prior, e_lik, math.inf
        kin = 0.5 * _kick(p, g1, 0.5 * eps)
    dh = ep + el + kin - h0
    if not math.isfinite(dh):
        return False, 0.0, e_prior, e_lik, math.inf
    acc_prob = 1.0 if dh <= 0.0 else math.exp(-dh)
    u = uniform_at(stream_key(seed, STREAM_ACCEPT, it), 0)
    if u < acc_prob:
        q[:] = q1
        g[:] = g1
        return True, acc_prob, ep, el, dh
    return False, acc_prob, e_prior, e_lik, dh
