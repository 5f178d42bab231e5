"""Collapsed Gibbs sweep of a one-hidden-layer network with the readout integrated out (numba).

Target (the network posterior of THEORY.md §1 with the Gaussian readout ``A`` integrated out)::

    p(C) ∝ Π_i N(c_i; 0, I_r) · det(M)^{−m/2} · exp(−(N/2) tr Yᵀ M⁻¹ Y),
    M = T I_P + c Φᵀ Φ,   c = σ_a² / N,   Φ_i = φ(z_i),   z_i = B c_i   (B: P × r, B Bᵀ = K0).

Neuron i given the others sees ``W = M_{−i}⁻¹`` (a rank-one downdate of ``M⁻¹``) and the
log-likelihood (up to a constant)

    ℓ_i(z) = −(m/2) log(1 + c q) + (σ_a²/2) |Yᵀ v|² / (1 + c q),   v = W φ(z),  q = φ(z)ᵀ v.

Each neuron gets one elliptical slice step (exact for its conditional) and ``n_jump``
independence Metropolis–Hastings proposals from a fixed Gaussian mixture in c-space (mode jumps:
a neuron moves between the separated modes of its conditional, which local moves cannot cross).
``M⁻¹`` is updated by Sherman–Morrison after each neuron. Random numbers are counter-based.
"""
import math

import numba as nb
import numpy as np

from .phi import phi as _phi
from .rng import normal_at, stream_key, uniform_at
from .tempered_ess import ellipse_direction

_TWO_PI = 2.0 * math.pi
STREAM = 11


@nb.njit(cache=True)
def _sym_apply(A, x, out):
    """out = A x (A symmetric P × P); returns xᵀ A x."""
    P = x.shape[0]
    q = 0.0
    for mu in range(P):
        acc = 0.0
        for nu in range(P):
            acc += A[mu, nu] * x[nu]
        out[mu] = acc
        q += x[mu] * acc
    return q


@nb.njit(cache=True)
def _loglik(code, prog, z, W, Y, c, sig2, f, v):
    """ℓ(z) of the module docstring; fills f = φ(z) and v = W f."""
    P, m = Y.shape
    for mu in range(P):
        f[mu] = _phi(code, prog, z[mu])
    q = _sym_apply(W, f, v)
    g2 = 0.0
    for j in range(m):
        acc = 0.0
        for mu in range(P):
            acc += Y[mu, j] * v[mu]
        g2 += acc * acc
    d = 1.0 + c * q
    return -0.5 * m * math.log(d) + 0.5 * sig2 * g2 / d


@nb.njit(cache=True)
def _log_mixture(x, mus, Linv, logw, logdet, tmp):
    """log Σ_k w_k N(x; μ_k, Σ_k) up to −(r/2) log 2π; ``Linv`` are the inverse Cholesky factors,
    ``logdet`` the log-determinants of the Cholesky factors."""
    K, r = mus.shape
    best = -np.inf
    for k in range(K):
        s = 0.0
        for a in range(r):
            acc = 0.0
            for b in range(a + 1):
                acc += Linv[k, a, b] * (x[b] - mus[k, b])
            s += acc * acc
        tmp[k] = logw[k] - logdet[k] - 0.5 * s
        if tmp[k] > best:
            best = tmp[k]
    tot = 0.0
    for k in range(K):
        tot += math.exp(tmp[k] - best)
    return best + math.log(tot)


@nb.njit(cache=True)
def collapsed_sweep(code, prog, C, Z, Phi, Minv, B, Y, c, sig2, mus, L, Linv, logw, logdet, n_jump, seed, sweep,
                    max_shrink, stats):
    """One Gibbs sweep over the neurons (in place on C, Z, Phi, Minv); ``stats`` accumulates
    [likelihood evaluations, jump proposals, accepted jumps]."""
    N, r = C.shape
    P, m = Y.shape
    K = mus.shape[0]
    W = np.empty((P, P))
    f = np.empty(P)
    v = np.empty(P)
    w = np.empty(P)
    zp = np.empty(P)
    nu = np.empty(P)
    cp = np.empty(r)
    xi = np.empty(r)
    tmp = np.empty(max(K, 1))
    cumw = np.empty(max(K, 1))
    acc = 0.0
    for k in range(K):
        acc += math.exp(logw[k])
        cumw[k] = acc
    for i in range(N):
        key = stream_key(seed, STREAM, sweep * N + i)
        # W = M_{-i}^{-1} = M^{-1} + c w wᵀ / (1 − c φᵢᵀ w),  w = M^{-1} φᵢ
        d = c / (1.0 - c * _sym_apply(Minv, Phi[i], w))
        for mu in range(P):
            for nu_ in range(P):
                W[mu, nu_] = Minv[mu, nu_] + d * w[mu] * w[nu_]
        lcur = _loglik(code, prog, Z[i], W, Y, c, sig2, f, v)
        stats[0] += 1
        # elliptical slice step on c_i ~ N(0, I) tilted by exp(ℓ)
        idx = ellipse_direction(key, B, xi, nu)
        logy = lcur + math.log(uniform_at(key, idx))
        idx += 1
        theta = _TWO_PI * uniform_at(key, idx)
        idx += 1
        lo, hi = theta - _TWO_PI, theta
        for it in range(max_shrink):
            ct, st = math.cos(theta), math.sin(theta)
            for mu in range(P):
                zp[mu] = Z[i, mu] * ct + nu[mu] * st
            lp = _loglik(code, prog, zp, W, Y, c, sig2, f, v)
            stats[0] += 1
            if lp > logy:
                for mu in range(P):
                    Z[i, mu] = zp[mu]
                for k in range(r):
                    C[i, k] = C[i, k] * ct + xi[k] * st
                lcur = lp
                break
            if theta < 0.0:
                lo = theta
            else:
                hi = theta
            theta = lo + (hi - lo) * uniform_at(key, idx)
            idx += 1
        # independence MH from the mixture (mode jumps)
        for j in range(n_jump):
            uk = uniform_at(key, idx) * cumw[K - 1]
            idx += 1
            k = 0
            while k < K - 1 and cumw[k] < uk:
                k += 1
            for a in range(r):
                xi[a] = normal_at(key, idx)
                idx += 2
            for a in range(r):
                s = mus[k, a]
                for b in range(a + 1):
                    s += L[k, a, b] * xi[b]
                cp[a] = s
            for mu in range(P):
                s = 0.0
                for a in range(r):
                    s += B[mu, a] * cp[a]
                zp[mu] = s
            lp = _loglik(code, prog, zp, W, Y, c, sig2, f, v)
            stats[0] += 1
            stats[1] += 1
            pc = 0.0
            pp = 0.0
            for a in range(r):
                pc += C[i, a] * C[i, a]
                pp += cp[a] * cp[a]
            log_alpha = (lp - 0.5 * pp) - (lcur - 0.5 * pc) \
                + _log_mixture(C[i], mus, Linv, logw, logdet, tmp) - _log_mixture(cp, mus, Linv, logw, logdet, tmp)
            if math.log(uniform_at(key, idx)) < log_alpha:
                for mu in range(P):
                    Z[i, mu] = zp[mu]
                for a in range(r):
                    C[i, a] = cp[a]
                lcur = lp
                stats[2] += 1
            idx += 1
        # Φᵢ ← φ(zᵢ);  M^{-1} = W − c v vᵀ / (1 + c q),  v = W φᵢ
        for mu in range(P):
            Phi[i, mu] = _phi(code, prog, Z[i, mu])
        d = c / (1.0 + c * _sym_apply(W, Phi[i], v))
        for mu in range(P):
            for nu_ in range(P):
                Minv[mu, nu_] = W[mu, nu_] - d * v[mu] * v[nu_]
