"""Replica-exchange elliptical slice sampling of a Gaussian tilted by a bounded quadratic form (numba).

Target (one sigmoid neuron of the general-data theory, the readout integrated out)::

    p_β(z) ∝ N(z; 0, B Bᵀ) exp(β L(z)),   L(z) = (c/2) |Wᵀ φ(z)|²,   φ(z) = Φ(κ z),

with B (P × r), W (P × m), c > 0; the state is z itself (P-dimensional, in the range of B). Each of
``n_sys`` independent systems holds a ladder of replicas at inverse temperatures ``betas`` (increasing, ``betas[-1] = 1``); a sweep makes one elliptical
slice step (Murray, Adams & MacKay 2010) per replica — exact i.i.d. draws at β = 0 — and then
attempts swaps of neighbouring replicas (even pairs on even sweeps, odd pairs on odd sweeps),
accepted with probability ``min(1, exp((β_k+1 − β_k)(L_k − L_k+1)))``. Random numbers are
counter-based (:mod:`.rng`): results depend on ``seed`` only, not on the number of threads.
"""
import math

import numba as nb
import numpy as np

from .fastphi import erf_phi_dphi, wide_vectors
from .rng import normal_at, stream_key, uniform_at

_TWO_PI = 2.0 * math.pi


@nb.njit(cache=True)
def ellipse_direction(key, B, xi, nu):
    """The auxiliary draw of an elliptical slice step: ξ ~ N(0, I_r) from ``key`` (indices 0, 2, …),
    ν = B ξ (P × r times r). Returns the next unused index of ``key``."""
    P, r = B.shape
    idx = 0
    for k in range(r):
        xi[k] = normal_at(key, idx)
        idx += 2
    for mu in range(P):
        acc = 0.0
        for k in range(r):
            acc += B[mu, k] * xi[k]
        nu[mu] = acc
    return idx


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _activate(z, f):
    """f = φ(z), vectorized (the branch-free φ of :mod:`.fastphi`)."""
    wide_vectors()
    for mu in range(z.shape[0]):
        f[mu] = erf_phi_dphi(z[mu])[0]


@nb.njit(cache=True)
def tilt(z, W, c, f, w):
    """L = (c/2)|Wᵀφ(z)|²; fills f = φ(z) and w = Wᵀf (work arrays)."""
    P = z.shape[0]
    m = W.shape[1]
    _activate(z, f)
    out = 0.0
    for j in range(m):
        acc = 0.0
        for mu in range(P):
            acc += W[mu, j] * f[mu]
        w[j] = acc
        out += acc * acc
    return 0.5 * c * out


@nb.njit(cache=True)
def _ess_step(z, Lz, beta, B, W, c, key, xi, nu, prop, f, w, max_shrink):
    """One elliptical slice step at inverse temperature β on z ~ N(0, B Bᵀ) tilted by e^{βL(z)}.

    The auxiliary draw ν = B ξ costs the only matrix-vector product of the step; every point
    on the ellipse z cos θ + ν sin θ is then O(P). Returns (L of the new state, evaluations).
    """
    P = B.shape[0]
    idx = ellipse_direction(key, B, xi, nu)
    if beta == 0.0:                       # the prior itself: an exact independent draw
        for mu in range(P):
            z[mu] = nu[mu]
        return tilt(z, W, c, f, w), 1
    logy = beta * Lz + math.log(uniform_at(key, idx))
    idx += 1
    theta = _TWO_PI * uniform_at(key, idx)
    idx += 1
    lo, hi = theta - _TWO_PI, theta
    for it in range(max_shrink):
        ct, st = math.cos(theta), math.sin(theta)
        for mu in range(P):
            prop[mu] = z[mu] * ct + nu[mu] * st
        Lp = tilt(prop, W, c, f, w)
        if beta * Lp > logy:
            for mu in range(P):
                z[mu] = prop[mu]
            return Lp, it + 1
        if theta < 0.0:
            lo = theta
        else:
            hi = theta
        theta = lo + (hi - lo) * uniform_at(key, idx)
        idx += 1
    return Lz, max_shrink                 # bracket collapsed onto the current state: stay


@nb.njit(cache=True, parallel=True)
def tempered_ess(B, W, c, betas, Z, L, seed, sweep0, n_sweeps, thin, Zout, Lout, swaps, evals, ids, last, trips):
    """Run ``n_sweeps`` sweeps of every system; store the β = 1 replica every ``thin`` sweeps.

    Parameters
    ----------
    B, W : (P, r), (P, m) float64
        Factor of the prior covariance (z = B u, u ~ N(0, I_r)) and the tilt's field.
    c : float
        Prefactor of the tilt.
    betas : (n_lev,) float64, increasing, last = 1.
    Z : (n_sys, n_lev, P) float64
        Replica states (preactivations), updated in place.
    L : (n_sys, n_lev) float64
        Their tilts L(z) (kept consistent with Z), updated in place.
    seed, sweep0 : int
        RNG seed and the global index of the first sweep (so that continued runs draw new numbers).
    Zout : (n_sys, n_sweeps // thin, P) float64
        States of the β = 1 replica, written.
    Lout : (n_sys, n_sweeps // thin, n_lev) float64
        Tilts of every level at the stored sweeps (thermodynamic integration), written.
    swaps : (n_sys, n_lev - 1, 2) int64
        Accumulated [attempts, acceptances] per neighbouring pair.
    evals : (n_sys,) int64
        Accumulated tilt evaluations.
    ids, last : (n_sys, n_lev) int64
        Identity of the replica at each level (it moves with the state on a swap), and per replica
        the end of the ladder it visited last (0 none, 1 β = 0, 2 β = 1); updated in place.
    trips : (n_sys,) int64
        Accumulated round trips (a replica that last visited β = 1 reaching β = 0): the number of
        independent passes through the mixing end of the ladder, the equilibration diagnostic.
    """
    n_sys, n_lev, P = Z.shape
    r = B.shape[1]
    m = W.shape[1]
    for s in nb.prange(n_sys):
        xi = np.empty(r)
        nu = np.empty(P)
        prop = np.empty(P)
        f = np.empty(P)
        w = np.empty(m)
        for it in range(n_sweeps):
            g = sweep0 + it
            for l in range(n_lev):
                key = stream_key(seed, s * 65536 + l, g)
                Ln, ne = _ess_step(Z[s, l], L[s, l], betas[l], B, W, c, key, xi, nu, prop, f, w, 200)
                L[s, l] = Ln
                evals[s] += ne
            key = stream_key(seed, s * 65536 + 65535, g)
            for l in range(g % 2, n_lev - 1, 2):
                swaps[s, l, 0] += 1
                la = (betas[l + 1] - betas[l]) * (L[s, l] - L[s, l + 1])
                if la >= 0.0 or math.log(uniform_at(key, l)) < la:
                    swaps[s, l, 1] += 1
                    for mu in range(P):
                        tmp = Z[s, l, mu]
                        Z[s, l, mu] = Z[s, l + 1, mu]
                        Z[s, l + 1, mu] = tmp
                    tmp = L[s, l]
                    L[s, l] = L[s, l + 1]
                    L[s, l + 1] = tmp
                    k = ids[s, l]
                    ids[s, l] = ids[s, l + 1]
                    ids[s, l + 1] = k
            k = ids[s, 0]
            if last[s, k] == 2:
                trips[s] += 1
            last[s, k] = 1
            last[s, ids[s, n_lev - 1]] = 2
            if (it + 1) % thin == 0:
                j = (it + 1) // thin - 1
                for mu in range(P):
                    Zout[s, j, mu] = Z[s, n_lev - 1, mu]
                for l in range(n_lev):
                    Lout[s, j, l] = L[s, l]
