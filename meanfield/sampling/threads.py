"""Thread count of the sampler's numba kernels and BLAS calls for a given problem size."""
from __future__ import annotations

import contextlib

import numba

from .._blas import serial_blas

# Below this many preactivations per layer (N·P) a parallel region costs more to launch
# (≈ 50 µs with OMP_WAIT_POLICY=PASSIVE) than its work; run the kernels on one thread.
# The same holds for the GEMMs of such a problem (N × r × P with N, P ≲ 250): a two-thread
# OpenBLAS GEMM waits at its end for both threads, and on a busy machine one of them is
# often descheduled for a whole time slice. docs/sampler.md, "Small problems on a busy
# machine"; benchmarks/bench_load.py.
SERIAL_BELOW = 60_000


@contextlib.contextmanager
def kernel_threads(work):
    """One numba thread and one BLAS thread for small problems (``work = N·P < SERIAL_BELOW``).

    Larger problems keep numba's current thread count and BLAS's own choice.
    """
    old = numba.get_num_threads()
    small = work < SERIAL_BELOW
    numba.set_num_threads(1 if small else old)
    try:
        with serial_blas() if small else contextlib.nullcontext():
            yield
    finally:
        numba.set_num_threads(old)
