"""Sparse coding beyond ReLU on the toy task: softplus and relu² outliers (docs/theory_sparse_other.md).

* softplus log(1 + eᶻ): softplus(√N z̄) = √N relu(z̄) + O(e^{−√N|z̄|}), so the outliers obey
  ReLU's equations (one per class, s ρ_c |t_c|² = 1, ā_c ∥ t_c, |ā_c|² = √(sρ_c)|u_c| − T) while
  the bulk uses softplus's tilted integral g: ``u_c = Y_c − g'(h_c) a0``, ``a0 = s Σ ρ_c g'(h_c) t_c``.
* relu² max(0, z)²: homogeneous of degree 2, outliers at a, z ∝ N^{1/3} (not √N), field t ∝ N^{−1/3};
  finite-N stationarity: a_c = s ρ_c w_c t_c with w_c = z_c² the activation on class c,
  t_c·a_c = ½, and (S2) ``Y_c − T t_c = (N − K)/N g'(t_c·a0) a0 + a_c w_c / N`` with the bulk
  ``a0 = s Σ ρ_c g'(t_c·a0) t_c``, g(h) = log ½[1 + (1 − 2h)^{−½}].

Both take the class-reduced toy problem (``rho``, class targets ``Yc`` K × m with K = m, one
single-class outlier per class) and raise ``RuntimeError`` if the root is not found.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import fsolve

from ..integrators import tilted_moments


def _check(res, x, what):
    r = float(np.max(np.abs(res(x))))
    if not r < 1e-10:
        raise RuntimeError(f"{what}: no root found (residual {r:.2e})")


def softplus_outliers(Yc, rho, s=1.0, T=0.01):
    """Leading-order softplus theory: dict with field ``t`` (K × m), bulk ``a0``, outliers ``abar``
    (√N-scaled, one row per class) and ``zbar`` (√N-scaled preactivation on the coded class)."""
    Yc, rho = np.asarray(Yc, dtype=float), np.asarray(rho, dtype=float)
    K, m = Yc.shape

    def gp(h):
        return tilted_moments("softplus", np.asarray(h, dtype=float))[1]

    def res(x):
        t, a0 = x[:K * m].reshape(K, m), x[K * m:]
        g1 = gp(t @ a0)
        u = Yc - g1[:, None] * a0
        tn = u / np.linalg.norm(u, axis=1)[:, None] / np.sqrt(s * rho)[:, None]
        return np.concatenate([(t - tn).ravel(), a0 - s * (rho * g1) @ t])

    x0 = np.concatenate([(Yc / np.linalg.norm(Yc, axis=1)[:, None] / np.sqrt(s * rho)[:, None]).ravel(), np.zeros(m)])
    x = fsolve(res, x0, xtol=1e-13)
    _check(res, x, "softplus outliers")
    t, a0 = x[:K * m].reshape(K, m), x[K * m:]
    u = Yc - gp(t @ a0)[:, None] * a0
    abar2 = np.sqrt(s * rho) * np.linalg.norm(u, axis=1) - T
    if np.any(abar2 <= 0):
        raise RuntimeError("softplus outliers: T too high, an outlier amplitude vanishes")
    abar = np.sqrt(abar2)[:, None] * t * np.sqrt(s * rho)[:, None]
    return dict(t=t, a0=a0, abar=abar, zbar=np.sqrt(abar2 / (s * rho)))


def relu2_outliers(Yc, rho, N, s=1.0, T=0.01):
    """Finite-N relu² theory: dict with field ``t`` (K × m), bulk ``a0``, raw outlier readouts ``a``
    (one row per class) and raw preactivations ``z`` on the coded class (∝ N^{1/3})."""
    Yc, rho = np.asarray(Yc, dtype=float), np.asarray(rho, dtype=float)
    K, m = Yc.shape

    def gp(h):
        return 0.5 * (1 - 2 * h) ** -1.5 / (0.5 * (1 + (1 - 2 * h) ** -0.5))

    fac = (N - K) / N

    def parts(x):
        t, a0 = x[:K * m].reshape(K, m), x[K * m:]
        return t, a0, 1 / (2 * s * rho * np.sum(t ** 2, axis=1))

    def res(x):
        t, a0, w = parts(x)
        g1 = gp(t @ a0)
        out = (s * rho * w ** 2 / N)[:, None] * t
        return np.concatenate([(Yc - fac * g1[:, None] * a0 - T * t - out).ravel(), a0 - s * (rho * g1) @ t])

    t0 = (4 * N * s * rho * np.linalg.norm(Yc, axis=1)) ** (-1 / 3)
    x = fsolve(res, np.concatenate([(Yc / np.linalg.norm(Yc, axis=1)[:, None] * t0[:, None]).ravel(), np.zeros(m)]),
               xtol=1e-13)
    _check(res, x, "relu2 outliers")
    t, a0, w = parts(x)
    return dict(t=t, a0=a0, a=(s * rho * w)[:, None] * t, z=np.sqrt(w))
