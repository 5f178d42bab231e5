"""Per-neuron loops of the fused toy-task trajectory (:mod:`~meanfield._kernels.leapfrog_identity`).

Every function here works on one neuron's row (or a pair of rows) and is inlined into the
block loops of the trajectory, so that LLVM vectorizes over the P preactivations of the row.
``which`` selects φ at compile time: ``ERF`` (float64 φ̃, exact to 1e-15), ``ERF32`` (the
float32 surrogate of the intermediate leapfrog steps, evaluated in a second, 16-lane loop over
the row), ``RELU`` or ``_GENERIC`` (any other code). Stored φ, φ' arrays may be float64 or
float32 (the surrogate steps); every other array is float64.

numba's on-disk cache keys a function on its own source file only: after editing this module
(or ``fastphi.py``) delete ``meanfield/_kernels/__pycache__/leapfrog_identity.*.nb*`` and
``network.*.nb*``, or the callers keep running the inlined old code.
"""
import numba as nb
import numpy as np

from .fastphi import erf_phi_dphi, erf_phi_dphi_f32
from .phi import ERF, RELU, dphi, phi

G = 3           # outputs per register-blocked chunk; m is padded to a multiple of G (the paper's m = 3: no padding)
_GENERIC = -1   # `which` of the loops below: ERF, RELU, ERF32 or any other code
ERF32 = -2      # float32 surrogate of the sigmoid (forces of the intermediate leapfrog steps)


@nb.njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _phi_pair(which, code, prog, v):
    """(φ(v), φ'(v)); ``which`` is a constant at every call site, so the dispatch folds away."""
    if which == ERF:
        return erf_phi_dphi(v)
    elif which == RELU:
        return (v if v > 0.0 else 0.0), (1.0 if v > 0.0 else 0.0)
    return phi(code, prog, v), dphi(code, prog, v)


@nb.njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _row_phi(which, code, prog, Ho, Do, qb, i):
    """φ, φ' of neuron i's parked preactivations ``qb`` into ``Ho[i]``, ``Do[i]`` (a loop of its own:
    the kick/drift loop never writes a φ array, so LLVM needs no alias checks between the φ arrays
    it reads and writes; for ``ERF32`` ``qb`` is float32 and the loop runs 16 lanes wide)."""
    for mu in range(qb.shape[0]):
        if which == ERF32:
            hv, dv = erf_phi_dphi_f32(qb[mu])
        else:
            hv, dv = _phi_pair(which, code, prog, qb[mu])
        Ho[i, mu] = hv
        Do[i, mu] = dv


@nb.njit(cache=True, inline="always")
def _read(apart, Xi, Xo, i, mu):
    """Element (i, μ) of the input φ array: ``Xi`` if ``apart``, else the output array ``Xo`` itself.

    In place (``Xi`` is ``Xo``) the row loop must read through the array it writes: as two
    arguments LLVM's runtime alias check finds them overlapping and runs the scalar loop (4×
    slower)."""
    if apart:
        return np.float64(Xi[i, mu])
    return np.float64(Xo[i, mu])


@nb.njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _row_out(which, park, code, prog, Ho, Do, qb, i, mu, qk):
    """The new preactivation of element (i, μ): parked in ``qb`` or its φ, φ' stored directly."""
    if park or which == ERF32:
        qb[mu] = qk
    else:
        hv, dv = _phi_pair(which, code, prog, qk)
        Ho[i, mu] = hv
        Do[i, mu] = dv


@nb.njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _row_first(which, code, prog, Pm, Qm, Gm, Ho, Do, qb, i, a, b):
    """Kick with the stored gradient, drift, φ and φ' of neuron i into ``Ho``, ``Do``; returns Σ q².

    ``ERF32`` parks the new preactivations in the float32 row ``qb`` for :func:`_row_phi`."""
    sq = 0.0
    for mu in range(Qm.shape[1]):
        pk = Pm[i, mu] - a * Gm[i, mu]
        Pm[i, mu] = pk
        qk = Qm[i, mu] + b * pk
        Qm[i, mu] = qk
        sq += qk * qk
        _row_out(which, False, code, prog, Ho, Do, qb, i, mu, qk)
    if which == ERF32:
        _row_phi(which, code, prog, Ho, Do, qb, i)
    return sq


@nb.njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _row_step(which, park, code, prog, Pm, Qm, Hi, Di, Ho, Do, qb, i, gb, Rt, rl, c0, c1, c2, a, b):
    """Gradient from the stored φ, φ' (``Hi``, ``Di``) and R, kick, drift, new φ and φ' of neuron i.

    The new φ, φ' go to ``Ho``, ``Do``. Unless ``park`` (or ``ERF32``) they are ``Hi``, ``Di``,
    read and written in place in the same loop (see :func:`_read`); with ``park``
    the new preactivations wait in ``qb`` (float32 for ``ERF32``) for :func:`_row_phi`. Returns
    (Σ q², Σ_μ φ R_r for the G outputs ``rl … rl + 2`` of the last chunk);
    ``gb`` holds the earlier chunks' share of the preactivation gradient (zeros when m ≤ G).
    """
    sq = 0.0
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    for mu in range(Qm.shape[1]):
        apart = park or which == ERF32
        ho = _read(apart, Hi, Ho, i, mu)
        r0, r1, r2 = Rt[rl, mu], Rt[rl + 1, mu], Rt[rl + 2, mu]
        s0 += ho * r0
        s1 += ho * r1
        s2 += ho * r2
        gv = gb[mu] + c0 * r0 + c1 * r1 + c2 * r2
        qo = Qm[i, mu]
        pk = Pm[i, mu] - a * (qo + _read(apart, Di, Do, i, mu) * gv)
        Pm[i, mu] = pk
        qk = qo + b * pk
        Qm[i, mu] = qk
        sq += qk * qk
        _row_out(which, park, code, prog, Ho, Do, qb, i, mu, qk)
    if park or which == ERF32:
        _row_phi(which, code, prog, Ho, Do, qb, i)
    return sq, s0, s1, s2


@nb.njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _row_grad(Pm, Qm, Gm, H, D, i, gb, Rt, rl, c0, c1, c2, a):
    """Gradient of neuron i written to ``Gm`` and kick ``p ← p − a g``; returns (Σ p², chunk sums)."""
    sp = 0.0
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    for mu in range(Qm.shape[1]):
        ho = H[i, mu]
        r0, r1, r2 = Rt[rl, mu], Rt[rl + 1, mu], Rt[rl + 2, mu]
        s0 += ho * r0
        s1 += ho * r1
        s2 += ho * r2
        gv = Qm[i, mu] + D[i, mu] * (gb[mu] + c0 * r0 + c1 * r1 + c2 * r2)
        Gm[i, mu] = gv
        pk = Pm[i, mu] - a * gv
        Pm[i, mu] = pk
        sp += pk * pk
    return sp, s0, s1, s2


@nb.njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _early_chunks(H, i, gb, Rt, A, ga, coef, nch):
    """m > G: all chunks but the last: readout gradient into ``ga``, preactivation share into ``gb``."""
    for k in range(nch - 1):
        r = G * k
        c0, c1, c2 = coef * A[i, r], coef * A[i, r + 1], coef * A[i, r + 2]
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        for mu in range(H.shape[1]):
            ho = np.float64(H[i, mu])
            r0, r1, r2 = Rt[r, mu], Rt[r + 1, mu], Rt[r + 2, mu]
            s0 += ho * r0
            s1 += ho * r1
            s2 += ho * r2
            v = c0 * r0 + c1 * r1 + c2 * r2
            gb[mu] = v if k == 0 else gb[mu] + v
        ga[r] = A[i, r] + coef * s0
        ga[r + 1] = A[i, r + 1] + coef * s1
        ga[r + 2] = A[i, r + 2] + coef * s2


@nb.njit(cache=True, inline="always")
def _coefs(A, i, rl, coef):
    """coef · Ã[i, rl … rl + 2], zero beyond the last output (padding of the last chunk)."""
    m = A.shape[1]
    c0 = coef * A[i, rl] if rl < m else 0.0
    c1 = coef * A[i, rl + 1] if rl + 1 < m else 0.0
    c2 = coef * A[i, rl + 2] if rl + 2 < m else 0.0
    return c0, c1, c2


@nb.njit(cache=True, inline="always")
def _readout_grad(A, i, ga, coef, rl, s0, s1, s2):
    """Readout gradient of the last chunk: ∂E/∂Ã_ir = Ã_ir + coef Σ_μ φ_iμ R_rμ."""
    m = A.shape[1]
    sl = (s0, s1, s2)
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
        a00, a01, a02 = _coefs(A, i0, G * k, 1.0)
        a10, a11, a12 = _coefs(A, i1, G * k, 1.0 if two else 0.0)
        r = G * k
        for mu in range(H.shape[1]):
            x0 = np.float64(H[i0, mu])
            x1 = np.float64(H[i1, mu])
            F[r, mu] += x0 * a00 + x1 * a10
            F[r + 1, mu] += x0 * a01 + x1 * a11
            F[r + 2, mu] += x0 * a02 + x1 * a12


@nb.njit(cache=True, inline="always")
def _split(x, N, P):
    """(N × P preactivation part, N × m readout part) views of a packed vector (no per-row views:
    a view per neuron costs two atomic reference-count updates, and with two threads on the same
    arrays those cache lines bounce between the cores)."""
    nA = N * P
    return x[:nA].reshape((N, P)), x[nA:].reshape((N, (x.shape[0] - nA) // N))

