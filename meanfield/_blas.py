"""BLAS thread control for solvers made of many small dense operations."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def serial_blas():
    """Run the block with one BLAS thread (if ``threadpoolctl`` is installed; else unchanged).

    Optimizers such as L-BFGS-B make thousands of level-1/2 BLAS calls on vectors of a few
    thousand entries; a threaded BLAS synchronizes its threads on every call, which costs more
    than the work (measured 3–18× slower for the general-data sigmoid solve on 2 cores, worse on
    a loaded machine). ``threadpoolctl`` is optional: it ships with scikit-learn.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:          # pragma: no cover - optional
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
