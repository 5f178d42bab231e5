"""Fused HMC trajectory for one hidden layer in preactivation space with K0 = I.

This is the paper's toy-task geometry (Figs. 1–5): the first-layer
coordinates *are* the preactivations, so a gradient needs no matrix product
and a leapfrog step is elementwise work on the N·P preactivations plus the
(P × m) output reduction. The step is bound by memory traffic and by φ, so
the trajectory is organized to touch every array once per step:

* one parallel sweep per leapfrog step. For neuron i the sweep forms the
  gradient at the current position from φ and φ' stored by the previous sweep
  and the residual ``R`` of the previous reduction, kicks and drifts the
  neuron's preactivations and readouts, evaluates φ and φ' at the new
  position (stored for the next sweep) and adds the neuron's share of the
  network output ``F = σ_a φ(Z)ᵀ Ã / N`` to a per-block partial sum;
* between sweeps, the serial reduction ``R = Y − Σ_blocks F`` (P × m).

The gradient itself is never stored except at the end of a trajectory (one
extra sweep writes it, for the final half kick and the next trajectory).
Per element and step a sweep reads and writes p, q, φ and φ' (64 bytes) where a
kick/drift pass plus a separate gradient pass moved 112; the data of one
neuron stay in L1 between the gradient, the update and φ.

The sweep is compute-bound (measured single-threaded: 3.4–3.7 ns per element
both with N = 64, P = 500, whose arrays fit in L2, and with N = P = 500, in L3);
φ̃ is about half of it, the gradient sums, kick, drift and output sum the other
half (the same sweep with ReLU: 1.6–1.9 ns). So the loops are written for the
vectorizer: the m outputs are handled in register-blocked
chunks of ``G = 4`` (one pass over a neuron's row computes all m readout
gradient sums and the preactivation gradient), the output sum F is updated for
two neurons per pass, and :func:`~meanfield._kernels.fastphi.wide_vectors` lets
LLVM use 512-bit registers. Storing φ and φ' in float32 was measured too: no
faster (the loop is not bandwidth-bound), so everything stays float64 and the
gradient is the exact gradient of the energy used in the Metropolis test.
:func:`leapfrog_identity` (one step, gradient written out) is what the tests
compare with the generic path.

All sums use a fixed blocking (``NBLK`` blocks of neurons), so results do not
depend on the number of threads.
"""
import numba as nb
import numpy as np

from .fastphi import erf_phi_dphi, wide_vectors
from .phi import ERF, RELU, dphi, phi

NBLK = 8        # fixed blocking of the reductions (thread-count independent)
G = 4           # outputs per register-blocked chunk; m is padded to a multiple of G

MODE_FIRST = 0  # gradient read from g
MODE_STEP = 1   # gradient formed from stored φ, φ' and R
MODE_GRAD = 2   # final: gradient formed, written to g, half kick, no drift
_GENERIC = -1   # `which` of the loops below: ERF, RELU or any other code


@nb.njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _phi_pair(which, code, prog, v):
    """(φ(v), φ'(v)); ``which`` is a constant at every call site, so the dispatch folds away."""
    if which == ERF:
        return erf_phi_dphi(v)
    elif which == RELU:
        return (v if v > 0.0 else 0.0), (1.0 if v > 0.0 else 0.0)
    return phi(code, prog, v), dphi(code, prog, v)


@nb.njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _row_first(which, code, prog, Pm, Qm, Gm, H, D, i, a, b):
    """Kick with the stored gradient, drift, φ and φ' of neuron i; returns Σ q²."""
    sq = 0.0
    for mu in range(Qm.shape[1]):
        pk = Pm[i, mu] - a * Gm[i, mu]
        Pm[i, mu] = pk
        qk = Qm[i, mu] + b * pk
        Qm[i, mu] = qk
        sq += qk * qk
        hv, dv = _phi_pair(which, code, prog, qk)
        H[i, mu] = hv
        D[i, mu] = dv
    return sq


@nb.njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _row_step(which, code, prog, Pm, Qm, H, D, i, gb, Rt, rl, c0, c1, c2, c3, a, b):
    """Gradient from the stored φ, φ' and R, kick, drift, new φ and φ' of neuron i.

    Returns (Σ q², Σ_μ φ R_r for the G outputs ``rl … rl + 3`` of the last chunk); ``gb``
    holds the earlier chunks' share of the preactivation gradient (zeros when m ≤ G).
    """
    sq = 0.0
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for mu in range(Qm.shape[1]):
        ho = H[i, mu]
        r0, r1, r2, r3 = Rt[rl, mu], Rt[rl + 1, mu], Rt[rl + 2, mu], Rt[rl + 3, mu]
        s0 += ho * r0
        s1 += ho * r1
        s2 += ho * r2
        s3 += ho * r3
        gv = gb[mu] + c0 * r0 + c1 * r1 + c2 * r2 + c3 * r3
        qo = Qm[i, mu]
        pk = Pm[i, mu] - a * (qo + D[i, mu] * gv)
        Pm[i, mu] = pk
        qk = qo + b * pk
        Qm[i, mu] = qk
        sq += qk * qk
        hv, dv = _phi_pair(which, code, prog, qk)
        H[i, mu] = hv
        D[i, mu] = dv
    return sq, s0, s1, s2, s3


@nb.njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _row_grad(Pm, Qm, Gm, H, D, i, gb, Rt, rl, c0, c1, c2, c3, a):
    """Gradient of neuron i written to ``Gm`` and kick ``p ← p − a g``; returns (Σ p², chunk sums)."""
    sp = 0.0
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for mu in range(Qm.shape[1]):
        ho = H[i, mu]
        r0, r1, r2, r3 = Rt[rl, mu], Rt[rl + 1, mu], Rt[rl + 2, mu], Rt[rl + 3, mu]
        s0 += ho * r0
        s1 += ho * r1
        s2 += ho * r2
        s3 += ho * r3
        gv = Qm[i, mu] + D[i, mu] * (gb[mu] + c0 * r0 + c1 * r1 + c2 * r2 + c3 * r3)
        Gm[i, mu] = gv
        pk = Pm[i, mu] - a * gv
        Pm[i, mu] = pk
        sp += pk * pk
    return sp, s0, s1, s2, s3


@nb.njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _early_chunks(H, i, gb, Rt, A, ga, coef, nch):
    """m > G: all chunks but the last: readout gradient into ``ga``, preactivation share into ``gb``."""
    for k in range(nch - 1):
        r = G * k
        c0, c1, c2, c3 = coef * A[i, r], coef * A[i, r + 1], coef * A[i, r + 2], coef * A[i, r + 3]
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for mu in range(H.shape[1]):
            ho = H[i, mu]
            r0, r1, r2, r3 = Rt[r, mu], Rt[r + 1, mu], Rt[r + 2, mu], Rt[r + 3, mu]
            s0 += ho * r0
            s1 += ho * r1
            s2 += ho * r2
            s3 += ho * r3
            v = c0 * r0 + c1 * r1 + c2 * r2 + c3 * r3
            gb[mu] = v if k == 0 else gb[mu] + v
        ga[r] = A[i, r] + coef * s0
        ga[r + 1] = A[i, r + 1] + coef * s1
        ga[r + 2] = A[i, r + 2] + coef * s2
        ga[r + 3] = A[i, r + 3] + coef * s3


@nb.njit(cache=True, inline="always")
def _coefs(A, i, rl, coef):
    """coef · Ã[i, rl … rl + 3], zero beyond the last output (padding of the last chunk)."""
    m = A.shape[1]
    c0 = coef * A[i, rl] if rl < m else 0.0
    c1 = coef * A[i, rl + 1] if rl + 1 < m else 0.0
    c2 = coef * A[i, rl + 2] if rl + 2 < m else 0.0
    c3 = coef * A[i, rl + 3] if rl + 3 < m else 0.0
    return c0, c1, c2, c3


@nb.njit(cache=True, inline="always")
def _readout_grad(A, i, ga, coef, rl, s0, s1, s2, s3):
    """Readout gradient of the last chunk: ∂E/∂Ã_ir = Ã_ir + coef Σ_μ φ_iμ R_rμ."""
    m = A.shape[1]
    sl = (s0, s1, s2, s3)
    for j in range(min(G, m - rl)):
        ga[rl + j] = A[i, rl + j] + coef * sl[j]


@nb.njit(cache=True, inline="always")
def _readouts(Pa, A, i, ga, a, b, drift):
    """Kick (and drift) neuron i's readouts; returns Σ Ã² after the drift, or Σ p_Ã² without it."""
    s = 0.0
    for r in range(A.shape[1]):
        pk = Pa[i, r] - a * ga[r]
        Pa[i, r] = pk
        if drift:
            qk = A[i, r] + b * pk
            A[i, r] = qk
            s += qk * qk
        else:
            s += pk * pk
    return s


@nb.njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _output_sum(A, H, F, i0, hi, nch):
    """F[r] += φ_i Ã_ir for neurons i0 and (if < hi) i0 + 1: one read-modify-write of F per pair."""
    two = i0 + 1 < hi
    i1 = i0 + 1 if two else i0
    for k in range(nch):
        a00, a01, a02, a03 = _coefs(A, i0, G * k, 1.0)
        a10, a11, a12, a13 = _coefs(A, i1, G * k, 1.0 if two else 0.0)
        r = G * k
        for mu in range(H.shape[1]):
            x0 = H[i0, mu]
            x1 = H[i1, mu]
            F[r, mu] += x0 * a00 + x1 * a10
            F[r + 1, mu] += x0 * a01 + x1 * a11
            F[r + 2, mu] += x0 * a02 + x1 * a12
            F[r + 3, mu] += x0 * a03 + x1 * a13


@nb.njit(cache=True, inline="always")
def _split(x, N, P):
    """(N × P preactivation part, N × m readout part) views of a packed vector (no per-row views:
    a view per neuron costs two atomic reference-count updates, and with two threads on the same
    arrays those cache lines bounce between the cores)."""
    nA = N * P
    return x[:nA].reshape((N, P)), x[nA:].reshape((N, (x.shape[0] - nA) // N))


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _block_first(code, prog, p, q, g, a, b, H, D, F, lo, hi):
    """MODE_FIRST for neurons ``lo ≤ i < hi``; returns (Σ q², Σ Ã²) of the block."""
    wide_vectors()
    N, P = H.shape
    Pm, Pa = _split(p, N, P)
    Qm, A = _split(q, N, P)
    Gm, Ga = _split(g, N, P)
    nch = (A.shape[1] + G - 1) // G
    sq = 0.0
    sa = 0.0
    F[:, :] = 0.0
    for i0 in range(lo, hi, 2):
        for i in range(i0, min(i0 + 2, hi)):
            sa += _readouts(Pa, A, i, Ga[i], a, b, True)
            if code == ERF:
                sq += _row_first(ERF, code, prog, Pm, Qm, Gm, H, D, i, a, b)
            elif code == RELU:
                sq += _row_first(RELU, code, prog, Pm, Qm, Gm, H, D, i, a, b)
            else:
                sq += _row_first(_GENERIC, code, prog, Pm, Qm, Gm, H, D, i, a, b)
        _output_sum(A, H, F, i0, hi, nch)
    return sq, sa


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _block_step(code, prog, p, q, a, b, coef, Rt, H, D, F, gb, lo, hi):
    """MODE_STEP for neurons ``lo ≤ i < hi``; returns (Σ q², Σ Ã²) of the block."""
    wide_vectors()
    N, P = H.shape
    Pm, Pa = _split(p, N, P)
    Qm, A = _split(q, N, P)
    m = A.shape[1]
    nch = (m + G - 1) // G
    rl = G * (nch - 1)                 # first output of the last chunk
    ga = np.empty(m)
    sq = 0.0
    sa = 0.0
    F[:, :] = 0.0
    for i0 in range(lo, hi, 2):
        for i in range(i0, min(i0 + 2, hi)):
            if nch > 1:
                _early_chunks(H, i, gb, Rt, A, ga, coef, nch)
            c0, c1, c2, c3 = _coefs(A, i, rl, coef)
            if code == ERF:
                v, s0, s1, s2, s3 = _row_step(ERF, code, prog, Pm, Qm, H, D, i, gb, Rt, rl, c0, c1, c2, c3, a, b)
            elif code == RELU:
                v, s0, s1, s2, s3 = _row_step(RELU, code, prog, Pm, Qm, H, D, i, gb, Rt, rl, c0, c1, c2, c3, a, b)
            else:
                v, s0, s1, s2, s3 = _row_step(_GENERIC, code, prog, Pm, Qm, H, D, i, gb, Rt, rl,
                                              c0, c1, c2, c3, a, b)
            sq += v
            _readout_grad(A, i, ga, coef, rl, s0, s1, s2, s3)
            sa += _readouts(Pa, A, i, ga, a, b, True)
        _output_sum(A, H, F, i0, hi, nch)
    return sq, sa


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _block_grad(p, q, g, a, coef, Rt, H, D, gb, lo, hi):
    """MODE_GRAD for neurons ``lo ≤ i < hi``; returns (Σ p², Σ p_Ã²) of the block."""
    wide_vectors()
    N, P = H.shape
    Pm, Pa = _split(p, N, P)
    Qm, A = _split(q, N, P)
    Gm, Ga = _split(g, N, P)
    m = A.shape[1]
    nch = (m + G - 1) // G
    rl = G * (nch - 1)
    sq = 0.0
    sa = 0.0
    for i in range(lo, hi):
        ga = Ga[i]
        if nch > 1:
            _early_chunks(H, i, gb, Rt, A, ga, coef, nch)
        c0, c1, c2, c3 = _coefs(A, i, rl, coef)
        v, s0, s1, s2, s3 = _row_grad(Pm, Qm, Gm, H, D, i, gb, Rt, rl, c0, c1, c2, c3, a)
        sq += v
        _readout_grad(A, i, ga, coef, rl, s0, s1, s2, s3)
        sa += _readouts(Pa, A, i, ga, a, 0.0, False)
    return sq, sa


@nb.njit(cache=True, parallel=True)
def _sweep(code, prog, mode, p, q, g, a, b, coef, Rt, H, D, Fpart, sums, gbuf):
    """One pass over all neurons (see the module docstring); ``mode`` is one of ``MODE_*``.

    Kick ``p ← p − a∇E``; drift ``q ← q + b p`` (not in ``MODE_GRAD``). ``sums[blk]``
    gets (Σ q², Σ Ã²) of the block after the drift, or (Σ p², Σ p_Ã²) in ``MODE_GRAD``.
    """
    N = H.shape[0]
    rows = (N + NBLK - 1) // NBLK
    for blk in nb.prange(NBLK):
        lo, hi = blk * rows, min(N, (blk + 1) * rows)
        if mode == MODE_FIRST:
            sq, sa = _block_first(code, prog, p, q, g, a, b, H, D, Fpart[blk], lo, hi)
        elif mode == MODE_STEP:
            sq, sa = _block_step(code, prog, p, q, a, b, coef, Rt, H, D, Fpart[blk], gbuf[blk], lo, hi)
        else:
            sq, sa = _block_grad(p, q, g, a, coef, Rt, H, D, gbuf[blk], lo, hi)
        sums[blk, 0] = sq
        sums[blk, 1] = sa


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _residual(Y, Fpart, scale, Rt):
    """``Rt[:m] = (Y − scale Σ_blk Fpart[blk])ᵀ``; returns Σ R² (fixed summation order)."""
    P, m = Y.shape
    e = 0.0
    for r in range(m):
        rr = Rt[r]
        for mu in range(P):
            f = 0.0
            for blk in range(NBLK):
                f += Fpart[blk, r, mu]
            v = Y[mu, r] - scale * f
            rr[mu] = v
            e += v * v
    return e


@nb.njit(cache=True)
def alloc_identity_workspace(N, P, m):
    """Work arrays of :func:`trajectory_identity`: (H, D, Fpart, Rt, sums, gbuf).

    The output dimension is padded to a multiple of ``G``; padding rows (and ``gbuf``
    when m ≤ G) stay zero.
    """
    mp = G * ((m + G - 1) // G)
    return (np.zeros((N, P)), np.zeros((N, P)), np.zeros((NBLK, mp, P)), np.zeros((mp, P)), np.zeros((NBLK, 2)),
            np.zeros((NBLK, P)))


@nb.njit(cache=True)
def trajectory_identity(code, prog, p, q, g, eps, n_leap, Y, sig_a, T, N, iws):
    """``n_leap`` leapfrog steps from (q, p) with gradient ``g`` at q, and the final half kick.

    Step s: ``p ← p − a_s ∇E(q); q ← q + ε p`` with ``a_0 = ε/2``, ``a_s = ε``; after the
    last step ∇E(q) is written to ``g`` and ``p ← p − (ε/2) g``. Returns
    ``(ok, E_prior, E_lik, E_kin)`` at the end point; ``ok`` is False (and the
    trajectory stops) as soon as an energy is not finite.
    """
    H, D, Fpart, Rt, sums, buf = iws
    P, m = Y.shape
    coef = -sig_a / T
    scale = sig_a / N
    ep = 0.0
    el = 0.0
    for s in range(n_leap):
        mode = MODE_FIRST if s == 0 else MODE_STEP
        a = 0.5 * eps if s == 0 else eps
        _sweep(code, prog, mode, p, q, g, a, eps, coef, Rt, H, D, Fpart, sums, buf)
        ep = 0.5 * (sums[:, 0].sum() + sums[:, 1].sum())
        el = 0.5 * N / T * _residual(Y, Fpart, scale, Rt)
        if not (np.isfinite(ep) and np.isfinite(el)):
            return False, ep, el, np.inf
    _sweep(code, prog, MODE_GRAD, p, q, g, 0.5 * eps, 0.0, coef, Rt, H, D, Fpart, sums, buf)
    kin = 0.5 * (sums[:, 0].sum() + sums[:, 1].sum())
    return True, ep, el, kin


@nb.njit(cache=True)
def leapfrog_identity(code, prog, p, q, g, a, b, Y, sig_a, T, N, H, D, Fpart, sq):
    """One step ``p ← p − a∇E; q ← q + b p``, then ∇E at the new q into ``g``. Returns ``(E_prior, E_lik)``.

    The same sweeps as :func:`trajectory_identity` with the gradient written out,
    compared with the generic path by the tests. Parameter layout as in
    :mod:`meanfield._kernels.network` with L = 1, r = P. ``Fpart`` and ``sq``
    are not used (kept for the signature).
    """
    P, m = Y.shape
    _, _, Fp, Rt, sums, buf = alloc_identity_workspace(1, P, m)
    coef = -sig_a / T
    _sweep(code, prog, MODE_FIRST, p, q, g, a, b, coef, Rt, H, D, Fp, sums, buf)
    ep = 0.5 * (sums[:, 0].sum() + sums[:, 1].sum())
    el = 0.5 * N / T * _residual(Y, Fp, sig_a / N, Rt)
    _sweep(code, prog, MODE_GRAD, p, q, g, 0.0, 0.0, coef, Rt, H, D, Fp, sums, buf)
    return ep, el
