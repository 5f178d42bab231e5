"""Compile the sampler's numba kernels before a run, and say so when it takes long.

numba compiles a kernel on its first call and caches the machine code on disk
(``cache=True``), so only the first run in a fresh environment pays for it (about
about 160 s for the HMC kernels on a 2-core machine). :func:`precompiled` runs the
kernels once on a tiny problem of the same numba types *before* the sampler's clock
starts: the reported sampling rate then excludes compilation, and, when numba's cache
holds no code for a kernel, a one-line notice on stderr says what is being compiled
and roughly how long it takes.
"""
from __future__ import annotations

import contextlib
import sys
import time

__all__ = ["cold", "precompiled"]


def cold(dispatchers):
    """True when numba's on-disk cache holds no valid code for one of ``dispatchers``.

    Reads numba's cache index (missing, or stale after a source edit, means a compile).
    Returns False when the numba version keeps its cache elsewhere (then no notice is shown).
    """
    try:
        return any(not d._cache._cache_file._load_index() for d in dispatchers)
    except (AttributeError, OSError, EOFError, ValueError):
        return False


@contextlib.contextmanager
def precompiled(dispatchers, what, typical_seconds, stream=None):
    """Context manager around a warm-up call of ``dispatchers``; announces a cold compile.

    Parameters
    ----------
    dispatchers : sequence of numba dispatchers
        The kernels the block compiles (the notice is shown if any of them is not cached).
    what : str
        What is compiled, for the notice (``"sampler kernels"``).
    typical_seconds : float
        Typical cold compile time on a 2-core machine, for the notice.
    stream : file, optional
        Where the notice goes (default ``sys.stderr``).

    Yields
    ------
    dict
        ``{"seconds": wall time of the block, "cold": whether a compile was announced}``,
        filled in when the block ends.
    """
    stream = sys.stderr if stream is None else stream
    info = {"cold": cold(dispatchers), "seconds": 0.0}
    if info["cold"]:
        print(f"meanfield: compiling {what} once (about {typical_seconds:.0f} s; cached for later runs) ...",
              file=stream, flush=True)
    t0 = time.perf_counter()
    yield info
    info["seconds"] = time.perf_counter() - t0
    if info["cold"]:
        print(f"meanfield: compiled {what} in {info['seconds']:.0f} s", file=stream, flush=True)
