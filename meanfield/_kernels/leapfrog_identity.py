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
chunks of ``G = 3`` (one pass over a neuron's row computes all m readout
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

from .fastphi import wide_vectors
from .leapfrog_rows import (ERF32, G, _GENERIC, _coefs, _early_chunks, _output_sum, _readout_grad, _readouts,
                            _row_first, _row_grad, _row_step, _split)
from .phi import ERF, RELU

NBLK = 8        # fixed blocking of the reductions (thread-count independent)

MODE_FIRST = 0  # gradient read from g
MODE_STEP = 1   # gradient formed from stored φ, φ' and R
MODE_GRAD = 2   # final: gradient formed, written to g, half kick, no drift


@nb.njit(cache=True, inline="always")
def _which(code, fast):
    """``which`` of the row loops: the float32 surrogate for the sigmoid's intermediate steps."""
    if code == ERF:
        return ERF32 if fast else ERF
    return RELU if code == RELU else _GENERIC


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _block_first(code, prog, fast, p, q, g, a, b, Ho, Do, qb, QB, F, lo, hi):
    """MODE_FIRST for neurons ``lo ≤ i < hi``; returns (Σ q², Σ Ã²) of the block.

    ``qb`` / ``QB``: float32 / float64 row buffers for the new preactivations (surrogate / φ̃)."""
    wide_vectors()
    N, P = Ho.shape
    Pm, Pa = _split(p, N, P)
    Qm, A = _split(q, N, P)
    Gm, Ga = _split(g, N, P)
    nch = (A.shape[1] + G - 1) // G
    which = _which(code, fast)
    sq = 0.0
    sa = 0.0
    F[:, :] = 0.0
    for i0 in range(lo, hi, 2):
        for i in range(i0, min(i0 + 2, hi)):
            sa += _readouts(Pa, A, i, Ga[i], a, b, True)
            if which == ERF32:
                sq += _row_first(ERF32, code, prog, Pm, Qm, Gm, Ho, Do, qb, i, a, b)
            elif which == ERF:
                sq += _row_first(ERF, code, prog, Pm, Qm, Gm, Ho, Do, QB, i, a, b)
            elif which == RELU:
                sq += _row_first(RELU, code, prog, Pm, Qm, Gm, Ho, Do, QB, i, a, b)
            else:
                sq += _row_first(_GENERIC, code, prog, Pm, Qm, Gm, Ho, Do, QB, i, a, b)
        _output_sum(A, Ho, F, i0, hi, nch)
    return sq, sa


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _block_step(code, prog, fast, park, p, q, a, b, coef, Rt, Hi, Di, Ho, Do, qb, QB, F, gb, lo, hi):
    """MODE_STEP for neurons ``lo ≤ i < hi``; returns (Σ q², Σ Ã²) of the block.

    ``park``: (Hi, Di) are not (Ho, Do) (the float32 surrogate is read, φ̃ written)."""
    wide_vectors()
    N, P = Ho.shape
    Pm, Pa = _split(p, N, P)
    Qm, A = _split(q, N, P)
    m = A.shape[1]
    nch = (m + G - 1) // G
    rl = G * (nch - 1)                 # first output of the last chunk
    which = _which(code, fast)
    ga = np.empty(m)
    sq = 0.0
    sa = 0.0
    F[:, :] = 0.0
    for i0 in range(lo, hi, 2):
        for i in range(i0, min(i0 + 2, hi)):
            if nch > 1:
                _early_chunks(Hi, i, gb, Rt, A, ga, coef, nch)
            c0, c1, c2 = _coefs(A, i, rl, coef)
            if which == ERF32:
                v, s0, s1, s2 = _row_step(ERF32, True, code, prog, Pm, Qm, Hi, Di, Ho, Do, qb, i, gb, Rt, rl,
                                              c0, c1, c2, a, b)
            elif which == ERF and park:
                v, s0, s1, s2 = _row_step(ERF, True, code, prog, Pm, Qm, Hi, Di, Ho, Do, QB, i, gb, Rt, rl,
                                              c0, c1, c2, a, b)
            elif which == ERF:
                v, s0, s1, s2 = _row_step(ERF, False, code, prog, Pm, Qm, Hi, Di, Ho, Do, QB, i, gb, Rt, rl,
                                              c0, c1, c2, a, b)
            elif which == RELU:
                v, s0, s1, s2 = _row_step(RELU, False, code, prog, Pm, Qm, Hi, Di, Ho, Do, QB, i, gb, Rt, rl,
                                              c0, c1, c2, a, b)
            else:
                v, s0, s1, s2 = _row_step(_GENERIC, False, code, prog, Pm, Qm, Hi, Di, Ho, Do, QB, i, gb, Rt,
                                              rl, c0, c1, c2, a, b)
            sq += v
            _readout_grad(A, i, ga, coef, rl, s0, s1, s2)
            sa += _readouts(Pa, A, i, ga, a, b, True)
        _output_sum(A, Ho, F, i0, hi, nch)
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
        c0, c1, c2 = _coefs(A, i, rl, coef)
        v, s0, s1, s2 = _row_grad(Pm, Qm, Gm, H, D, i, gb, Rt, rl, c0, c1, c2, a)
        sq += v
        _readout_grad(A, i, ga, coef, rl, s0, s1, s2)
        sa += _readouts(Pa, A, i, ga, a, 0.0, False)
    return sq, sa


@nb.njit(cache=True, parallel=True)
def _sweep(code, prog, mode, fast_in, fast_out, p, q, g, a, b, coef, Rt, H, D, H32, D32, qbuf, QBUF, Fpart, sums,
           gbuf):
    """One pass over all neurons (see the module docstring); ``mode`` is one of ``MODE_*``.

    Kick ``p ← p − a∇E``; drift ``q ← q + b p`` (not in ``MODE_GRAD``). ``sums[blk]``
    gets (Σ q², Σ Ã²) of the block after the drift, or (Σ p², Σ p_Ã²) in ``MODE_GRAD``.
    The gradient is formed from φ, φ' in (H32, D32) if ``fast_in`` else (H, D); the new φ, φ'
    are the float32 surrogate in (H32, D32) if ``fast_out`` else φ̃ in (H, D).
    ``MODE_GRAD`` always reads (H, D).
    """
    N = H.shape[0]
    rows = (N + NBLK - 1) // NBLK
    for blk in nb.prange(NBLK):
        lo, hi = blk * rows, min(N, (blk + 1) * rows)
        F, gb, qb, QB = Fpart[blk], gbuf[blk], qbuf[blk], QBUF[blk]
        if mode == MODE_FIRST and fast_out:
            sq, sa = _block_first(code, prog, True, p, q, g, a, b, H32, D32, qb, QB, F, lo, hi)
        elif mode == MODE_FIRST:
            sq, sa = _block_first(code, prog, False, p, q, g, a, b, H, D, qb, QB, F, lo, hi)
        elif mode == MODE_STEP and fast_in and fast_out:
            sq, sa = _block_step(code, prog, True, False, p, q, a, b, coef, Rt, H32, D32, H32, D32, qb, QB, F, gb,
                                 lo, hi)
        elif mode == MODE_STEP and fast_in:
            sq, sa = _block_step(code, prog, False, True, p, q, a, b, coef, Rt, H32, D32, H, D, qb, QB, F, gb,
                                 lo, hi)
        elif mode == MODE_STEP:
            sq, sa = _block_step(code, prog, False, False, p, q, a, b, coef, Rt, H, D, H, D, qb, QB, F, gb,
                                 lo, hi)
        else:
            sq, sa = _block_grad(p, q, g, a, coef, Rt, H, D, gb, lo, hi)
        sums[blk, 0] = sq
        sums[blk, 1] = sa


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _residual(Yt, Fpart, scale, Rt):
    """``Rt[:m] = Yt − scale Σ_blk Fpart[blk]`` with ``Yt = Yᵀ`` (m × P, contiguous: a strided Y
    keeps the loop scalar); returns Σ R² (fixed summation order)."""
    m, P = Yt.shape
    e = 0.0
    for r in range(m):
        for mu in range(P):
            f = 0.0
            for blk in range(NBLK):
                f += Fpart[blk, r, mu]
            v = Yt[r, mu] - scale * f
            Rt[r, mu] = v
            e += v * v
    return e


@nb.njit(cache=True)
def alloc_identity_workspace(N, P, m, surrogate=True):
    """Work arrays of :func:`trajectory_identity`: (H, D, H32, D32, qbuf, QBUF, Fpart, Rt, sums, gbuf).

    The output dimension is padded to a multiple of ``G``; padding rows (and ``gbuf``
    when m ≤ G) stay zero. ``surrogate=False`` allocates no float32 arrays: every leapfrog
    step then uses the float64 φ̃ (the reference the surrogate is tested and benchmarked against).
    """
    mp = G * ((m + G - 1) // G)
    ns = N if surrogate else 0
    return (np.zeros((N, P)), np.zeros((N, P)), np.zeros((ns, P), np.float32), np.zeros((ns, P), np.float32),
            np.zeros((NBLK, P), np.float32), np.zeros((NBLK, P)), np.zeros((NBLK, mp, P)), np.zeros((mp, P)), np.zeros((NBLK, 2)),
            np.zeros((NBLK, P)))


@nb.njit(cache=True)
def trajectory_identity(code, prog, p, q, g, eps, n_leap, Y, sig_a, T, N, iws):
    """``n_leap`` leapfrog steps from (q, p) with gradient ``g`` at q, and the final half kick.

    Step s: ``p ← p − a_s F_s; q ← q + ε p`` with ``a_0 = ε/2``, ``a_s = ε``; after the
    last step ∇E(q) is written to ``g`` and ``p ← p − (ε/2) g``. The two half kicks use the
    exact gradient ∇E; for the sigmoid with a surrogate workspace the n_leap − 1 full kicks in
    between use the float32 surrogate force F_s(q) ≈ −∇E(q) (see the module docstring: still
    reversible and volume-preserving, so the Metropolis test with the exact energy keeps the
    posterior exact). Returns ``(ok, E_prior, E_lik, E_kin)`` at the end point (exact);
    ``ok`` is False (and the trajectory stops) as soon as an energy is not finite.
    """
    H, D, H32, D32, qbuf, QBUF, Fpart, Rt, sums, buf = iws
    P, m = Y.shape
    fast = code == ERF and H32.shape[0] == N
    Yt = np.ascontiguousarray(Y.T)
    coef = -sig_a / T
    scale = sig_a / N
    ep = 0.0
    el = 0.0
    for s in range(n_leap):
        mode = MODE_FIRST if s == 0 else MODE_STEP
        a = 0.5 * eps if s == 0 else eps
        _sweep(code, prog, mode, fast and s > 0, fast and s < n_leap - 1, p, q, g, a, eps, coef, Rt, H, D, H32, D32,
               qbuf, QBUF, Fpart, sums, buf)
        ep = 0.5 * (sums[:, 0].sum() + sums[:, 1].sum())
        el = 0.5 * N / T * _residual(Yt, Fpart, scale, Rt)
        if not (np.isfinite(ep) and np.isfinite(el)):
            return False, ep, el, np.inf
    _sweep(code, prog, MODE_GRAD, False, False, p, q, g, 0.5 * eps, 0.0, coef, Rt, H, D, H32, D32, qbuf, QBUF, Fpart,
           sums, buf)
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
    _, _, H32, D32, qbuf, QBUF, Fp, Rt, sums, buf = alloc_identity_workspace(1, P, m, False)
    coef = -sig_a / T
    _sweep(code, prog, MODE_FIRST, False, False, p, q, g, a, b, coef, Rt, H, D, H32, D32, qbuf, QBUF, Fp, sums, buf)
    ep = 0.5 * (sums[:, 0].sum() + sums[:, 1].sum())
    el = 0.5 * N / T * _residual(np.ascontiguousarray(Y.T), Fp, sig_a / N, Rt)
    _sweep(code, prog, MODE_GRAD, False, False, p, q, g, 0.0, 0.0, coef, Rt, H, D, H32, D32, qbuf, QBUF, Fp, sums, buf)
    return ep, el
