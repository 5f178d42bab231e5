"""Thread count of the numba kernels for a given problem size."""
from __future__ import annotations

import contextlib

import numba

# Below this many preactivations per layer (N·P) a parallel region costs more to launch
# (≈ 50 µs with OMP_WAIT_POLICY=PASSIVE) than its work; run the kernels on one thread.
SERIAL_BELOW = 60_000


@contextlib.contextmanager
def kernel_threads(work):
    """Use one numba thread for small problems (``work = N·P``), all threads otherwise."""
    old = numba.get_num_threads()
    numba.set_num_threads(1 if work < SERIAL_BELOW else old)
    try:
        yield
    finally:
        numba.set_num_threads(old)
