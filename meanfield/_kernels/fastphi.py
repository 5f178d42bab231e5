"""Branch-free, SIMD-vectorizable φ and φ' for the sampler's hot loop.

The sampler evaluates φ and φ' on N·P preactivations per gradient; with libm's
``erfc`` and ``exp`` (scalar calls) the sigmoid alone costs ≈ 20 ns per element.
These kernels use only arithmetic, so LLVM vectorizes them (≈ 15× faster):

* ``exp_neg(x)`` (x ≤ 0): scaling and squaring, ``(Σ_{k≤16} (x/1024)^k / k!)^(2^10)``;
  relative error ≤ 3e-13, exact underflow to 0 below −745.
* ``normal_tail(x, e)``: Φ(−x) for x ≥ 0 given ``e = exp(−x²/2)``, Hart's
  rational approximation for x < 7.07 (W. J. Cody / J. F. Hart 1968 as given
  by G. West, Wilmott 2005) and the asymptotic series beyond, selected without
  a branch so that one division serves both.

Accuracy for the paper's sigmoid φ(z) = Φ(κz), checked in
``tests/test_sampler.py`` against scipy: |φ̃ − φ| ≤ 1e-13 absolute, φ̃' within
1e-12 relative. The sampler's Metropolis step uses the same φ̃ for the energy,
so it samples exactly the posterior of φ̃ — a network whose activation differs
from the exact sigmoid by less than 1e-13.
"""
import math

import numba as nb

KAPPA = math.sqrt(math.pi / 2.0)
DPHI_ERF = KAPPA / math.sqrt(2.0 * math.pi)
_INV_1024 = 1.0 / 1024.0
_SQRT_2PI = math.sqrt(2.0 * math.pi)


@nb.njit(cache=True, inline="always", fastmath=True)
def exp_neg(x):
    """exp(x) for x ≤ 0 without libm (vectorizable)."""
    y = max(x, -746.0) * _INV_1024
    p = 1.0 / 20922789888000.0
    p = p * y + 1.0 / 1307674368000.0
    p = p * y + 1.0 / 87178291200.0
    p = p * y + 1.0 / 6227020800.0
    p = p * y + 1.0 / 479001600.0
    p = p * y + 1.0 / 39916800.0
    p = p * y + 1.0 / 3628800.0
    p = p * y + 1.0 / 362880.0
    p = p * y + 1.0 / 40320.0
    p = p * y + 1.0 / 5040.0
    p = p * y + 1.0 / 720.0
    p = p * y + 1.0 / 120.0
    p = p * y + 1.0 / 24.0
    p = p * y + 1.0 / 6.0
    p = p * y + 0.5
    p = p * y + 1.0
    p = p * y + 1.0
    for _ in range(10):
        p = p * p
    return p


@nb.njit(cache=True, inline="always", fastmath=True)
def normal_tail(x, e):
    """Φ(−x) for x ≥ 0, given ``e = exp(−x²/2)``; one division (branch-free select)."""
    n = 3.52624965998911e-02 * x + 0.700383064443688
    n = n * x + 6.37396220353165
    n = n * x + 33.912866078383
    n = n * x + 112.079291497871
    n = n * x + 221.213596169931
    n = n * x + 220.206867912376
    d = 8.83883476483184e-02 * x + 1.75566716318264
    d = d * x + 16.064177579207
    d = d * x + 86.7807322029461
    d = d * x + 296.564248779674
    d = d * x + 637.333633378831
    d = d * x + 793.826512519948
    d = d * x + 440.413735824752
    # x ≥ 7.07: asymptotic series √(2π)Φ(−x)/e = (x¹⁰ − x⁸ + 3x⁶ − 15x⁴ + 105x² − 945)/x¹¹,
    # truncation error < 3e-6 relative there, i.e. < 3e-18 absolute
    y = min(x, 40.0)
    s = y * y
    an = s - 1.0
    an = an * s + 3.0
    an = an * s - 15.0
    an = an * s + 105.0
    an = an * s - 945.0
    s2 = s * s
    ad = s2 * s2 * s * y * _SQRT_2PI
    big = x >= 7.07106781186547
    return e * (an if big else n) / (ad if big else d)


@nb.njit(cache=True, parallel=True, fastmath=True)
def activate_erf(Z, H, D, scale):
    """H = φ(scale·Z), D = φ'(scale·Z) for φ(z) = Φ(κz), vectorized."""
    n0, n1 = Z.shape
    for i in nb.prange(n0):
        for j in range(n1):
            u = KAPPA * scale * Z[i, j]
            x = abs(u)
            e = exp_neg(-0.5 * x * x)
            c = normal_tail(x, e)
            H[i, j] = 1.0 - c if u > 0.0 else c
            D[i, j] = DPHI_ERF * e
