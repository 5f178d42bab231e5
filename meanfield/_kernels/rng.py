"""Counter-based random numbers for the sampler (numba).

Every random number is a pure function of ``(seed, stream, index)``: the
SplitMix64 finalizer of a hashed counter. The sampler's whole RNG state is
therefore the pair (seed, iteration), which makes checkpoints exact and the
draws independent of the number of threads.
"""
import math

import numba as nb
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_PI = 2.0 * math.pi
_INV_2_53 = 1.0 / 9007199254740992.0


@nb.njit(cache=True, inline="always")
def mix64(x):
    """SplitMix64 finalizer of ``x + golden`` (a bijection of uint64)."""
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@nb.njit(cache=True)
def stream_key(seed, stream, counter):
    """Key of the random stream ``(seed, stream, counter)``."""
    return mix64(mix64(mix64(np.uint64(seed)) ^ np.uint64(stream)) ^ np.uint64(counter))


@nb.njit(cache=True, inline="always")
def uniform_at(key, index):
    """Uniform in (0, 1) from ``key`` and ``index``."""
    return ((mix64(key ^ mix64(np.uint64(index))) >> _S11) + 0.5) * _INV_2_53


@nb.njit(cache=True, inline="always")
def normal_at(key, index):
    """Standard normal from the uniforms at ``index`` and ``index + 1`` of ``key`` (Box–Muller, cosine branch)."""
    u1 = uniform_at(key, index)
    u2 = uniform_at(key, index + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)


@nb.njit(cache=True, parallel=True)
def fill_normal(out, key):
    """Fill the flat array ``out`` with standard normals (Box–Muller), deterministic in ``key``."""
    n = out.shape[0]
    half = (n + 1) // 2
    for k in nb.prange(half):
        u1 = uniform_at(key, 2 * k)
        u2 = uniform_at(key, 2 * k + 1)
        r = math.sqrt(-2.0 * math.log(u1))
        out[2 * k] = r * math.cos(_TWO_PI * u2)
        if 2 * k + 1 < n:
            out[2 * k + 1] = r * math.sin(_TWO_PI * u2)


@nb.njit(cache=True)
def uniform_draw(seed, stream, counter, index):
    """Uniform in (0, 1) of ``(seed, stream, counter, index)`` (callable from Python)."""
    return uniform_at(stream_key(seed, stream, counter), index)


def normal_fill(out, seed, stream, counter):
    """Fill ``out`` with standard normals of stream ``(seed, stream, counter)`` (callable from Python).

    Plain Python on purpose: as a cached njit caller of the parallel :func:`fill_normal`, compiled in
    a process that had loaded ``fill_normal`` from numba's cache, it segfaulted in every process that
    loaded it afterwards (numba 0.68.1; docs/sampler.md).
    """
    fill_normal(out, np.uint64(stream_key(seed, stream, counter)))
