"""Memory a sampler run will allocate, estimated up front so that a run too large for the machine
is refused before any work (instead of a ``MemoryError`` after the first minutes).

The estimates are pure functions of the run's sizes; ``tests/test_validation.py`` checks them
against the arrays :func:`meanfield.sample` and :func:`meanfield.sample_collapsed` really allocate.
"""
from __future__ import annotations

from .._kernels.leapfrog_identity import NBLK
from .._kernels.leapfrog_rows import G
from .._validation import check_memory
from .storage import TRACE_KEYS

F64, F32 = 8, 4


def _scratch_bytes(N, P, r, L, m):
    """Bytes of :func:`meanfield._kernels.network.alloc_scratch` (Z, H, D, F, dZ, tmp, tmpw, tmpc)."""
    return F64 * (3 * L * N * P + P * m + 2 * N * P + (N * N if L > 1 else 1) + N * r)


def _identity_workspace_bytes(N, P, m, surrogate):
    """Bytes of :func:`meanfield._kernels.leapfrog_identity.alloc_identity_workspace`."""
    mp = G * ((m + G - 1) // G)
    ns = N if surrogate else 0
    return (F64 * (2 * N * P + NBLK * P + NBLK * mp * P + mp * P + NBLK * 2 + NBLK * P)
            + F32 * (2 * ns * P + NBLK * P))


def hmc_memory_bytes(N, P, m, depth, r, steps, n_store, record_preactivations=True, surrogate=True):
    """Bytes :func:`meanfield.sample` allocates for a run of these sizes.

    Stored samples (preactivations ``n_store × N × P × L`` float32, readouts ``n_store × N × m``),
    traces, kernel sums, the parameter vector q and its gradient, and the work arrays (two sets of
    :func:`~meanfield._kernels.network.alloc_scratch` arrays, the trajectory's momentum and
    proposal vectors and, for one hidden layer with ``r = P``, the fused trajectory's workspace).

    Parameters
    ----------
    N, P, m, depth, r : int
        Width, training inputs, outputs, hidden layers L, first-layer coordinates (rank of the inputs).
    steps, n_store : int
        Transitions (traces) and stored samples.
    record_preactivations, surrogate : bool
        As in :func:`meanfield.sample` (``surrogate_forces``).

    Returns
    -------
    int
    """
    L = depth
    n = N * r + (L - 1) * N * N + N * m
    state = (F64 * (len(TRACE_KEYS) * steps + n_store * N * m + L * P * P + P * m + 2 * n)
             + (F32 * L * n_store * N * P if record_preactivations else 0))
    iws = _identity_workspace_bytes(N, P, m, surrogate) if (L == 1 and r == P) \
        else _identity_workspace_bytes(1, 1, m, False)
    work = 2 * _scratch_bytes(N, P, r, L, m) + F64 * 3 * n + iws
    return state + work


def collapsed_memory_bytes(N, P, m, r, sweeps, warmup, n_store, n_code_bits):
    """Bytes :func:`meanfield.sample_collapsed` allocates for a run of these sizes.

    Stored readouts (``n_store × N × m``) and preactivations (``n_store × N × P`` float32), the
    coordinates, preactivations and activations (C, Z, Φ), the P × P matrices (M⁻¹ and its
    factorization, the kernel sum), the N × N readout precision, the traces, and the warm-up
    history of coordinates and codes the jump proposal is fitted to, counted three times (the list
    kept, its concatenation and the per-code groups while the mixture is fitted).
    """
    history = (warmup - warmup // 2) * N * (F64 * r + n_code_bits)
    return (F64 * (n_store * N * m + N * r + 2 * N * P + 3 * P * P + 2 * N * N + 2 * P * m
                   + len(TRACE_KEYS) * sweeps)
            + F32 * n_store * N * P + 3 * history)


def refuse_if_too_large(need, record_preactivations=True):
    """``ValueError`` (estimate, available memory, what to change) when ``need`` bytes do not fit."""
    pre = "record_preactivations=False (--no-preactivations), " if record_preactivations else ""
    check_memory(need, "this sampler run",
                 f"store fewer samples (larger thin, fewer steps), {pre}or use a smaller N or P")
