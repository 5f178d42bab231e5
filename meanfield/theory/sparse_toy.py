"""Sparse coding beyond ReLU on the toy task: softplus and relu² outliers (docs/theory_sparse_other.md).

* softplus log(1 + eᶻ): softplus(√N z̄) = √N relu(z̄) + O(e^{−√N|z̄|}), so the outliers obey
  ReLU's equations (one per class, s ρ_c |t_c|² = 1, ā_c ∥ t_c, |ā_c|² = √(sρ_c)|u_c| − T) while
  the bulk uses softplus's tilted integral g: ``u_c = Y_c − g'(h_c) a0``, ``a0 = s Σ ρ_c g'(h_c) t_c``.
* relu² max(0, z)²: homogeneous of degree 2, outliers at a, z ∝ N^{1/3} (not √N), field t ∝ N^{−1/3};
  finite-N stationarity: a_c = s ρ_c w_c t_c with w_c = z_c² the activation on class c,
  t_c·a_c = ½, and (S2) ``Y_c − T t_c = (N − K)/N g'(t_c·a0) a0 + a_c w_c / N`` with the bulk
  ``a0 = s Σ ρ_c g'(t_c·a0) t_c``, g(h) = log ½[1 + (1 − 2h)^{−½}].

Both take the class-reduced toy problem (``rho``, class targets ``Yc`` K × m with K = m, one
single-class outlier per class) and raise ``ValueError`` (naming T, N) when the equations have no
root at the arguments given: the outlier solution exists at low T only.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import fsolve

from ..integrators import tilted_moments


def _check(res, x, what, T, N=None):
    r = float(np.max(np.abs(res(x))))
    if not r < 1e-10:
        at = f"T = {T:g}" + ("" if N is None else f", N = {N}")
        raise ValueError(f"{what}: the equations have no root at {at} (residual {r:.2e}); the outlier "
                         "solution exists at low T (and large N): lower T")
    return r


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
    r = _check(res, x, "softplus outliers", T)
    t, a0 = x[:K * m].reshape(K, m), x[K * m:]
    u = Yc - gp(t @ a0)[:, None] * a0
    abar2 = np.sqrt(s * rho) * np.linalg.norm(u, axis=1) - T
    if np.any(abar2 <= 0):
        raise ValueError(f"softplus outliers: T = {T:g} is too high, an outlier amplitude vanishes "
                         f"(the outliers need T < {float(np.min(abar2 + T)):.3g})")
    abar = np.sqrt(abar2)[:, None] * t * np.sqrt(s * rho)[:, None]
    return dict(t=t, a0=a0, abar=abar, zbar=np.sqrt(abar2 / (s * rho)), residual=r)


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
    r = _check(res, x, "relu2 outliers", T, N)
    t, a0, w = parts(x)
    return dict(t=t, a0=a0, a=(s * rho * w)[:, None] * t, z=np.sqrt(w), residual=r)


def _solution(task, name, T, sigma_a2, N, t_c, a0, abar, zbar_class, classes, message, residual):
    """Assemble a :class:`Solution` (bulk: independent tilted z given a0; outliers frozen)."""
    from ..nonlinearities import nonlinearity
    from .solution import Solution

    K = t_c.shape[0]
    nl = nonlinearity(name)
    g, g1, g2 = tilted_moments(nl, t_c @ a0)                  # bulk per class
    mean = g1[classes]
    K1 = np.outer(mean, mean)
    K1[np.diag_indices_from(K1)] = (g2 + g1 ** 2)[classes]
    zb = zbar_class[:, classes]                               # (n, P) scaled activations' preactivations
    act = np.maximum(zb, 0.0) if name == "softplus" else np.maximum(zb, 0.0) ** 2
    K1 = K1 + act.T @ act
    codes = tuple(tuple(int(k == c) for k in range(K)) for c in range(abar.shape[0]))
    return Solution(nonlinearity=name, depth=1, T=T, sigma_a2=sigma_a2, field=t_c[classes],
                    kernels=(task.K0, K1), converged=True, residual=residual, message=message, N=N,
                    codes=((0,) * K,), code_fractions=np.ones(1), readouts=a0[None],
                    outliers=dict(a_bar=abar, z_bar=zb, z_bar_class=zbar_class, codes=codes),
                    finite_P=True, task=task, info=dict(a0=a0, t_class=t_c))


def solve_sparse(task, depth=1, T=0.0, finite_P=True, N=None, *, sigma_a2=None, name="softplus"):
    """``mf.solve`` entry for softplus and relu² on the toy task (one single-class outlier per class).

    softplus: leading order in 1/√N, outliers √N-scaled (as ReLU's). relu²: needs the width N
    (outliers ∝ N^{1/3}); ``outliers`` holds them N^{1/3}-scaled, ``info["a_raw"]`` /
    ``info["z_raw"]`` raw. The bulk kernel uses independent tilted preactivations given a0.
    """
    from .relu_toy import class_reduction

    if depth != 1:
        raise NotImplementedError(f"the {name} theory is for one hidden layer, got depth = {depth}")
    rho, Yc, classes = class_reduction(task)
    K, m = Yc.shape
    if K != m:
        raise NotImplementedError(f"{name}: one outlier per class needs as many classes as outputs")
    s = task.P * (1.0 / task.P if sigma_a2 is None else sigma_a2)
    if name == "softplus":
        th = softplus_outliers(Yc, rho, s=s, T=T)
        zc = np.array([[th["zbar"][i] if c == i else min(0.0, float(th["t"][c] @ th["abar"][i]))
                        for c in range(K)] for i in range(K)])
        return _solution(task, name, T, sigma_a2, N, th["t"], th["a0"], th["abar"], zc, classes,
                         "softplus: 3 single-class outliers at √N (ReLU's outlier equations) + softplus bulk",
                         th["residual"])
    if N is None:
        raise ValueError("N: the relu2 outliers scale as N^(1/3); pass the width N")
    th = relu2_outliers(Yc, rho, N, s=s, T=T)
    c3 = N ** (1.0 / 3.0)
    zc = np.where(np.eye(K, dtype=bool), th["z"][:, None], 0.0) / c3
    sol = _solution(task, name, T, sigma_a2, N, th["t"], th["a0"], th["a"] / c3, zc, classes,
                    f"relu2: 3 single-class outliers at N^(1/3) (N = {N})", th["residual"])
    sol.info.update(a_raw=th["a"], z_raw=th["z"])
    return sol


def solve_softplus(task, depth=1, T=0.0, finite_P=True, N=None, **options):
    """:func:`solve_sparse` for softplus (``mf.solve(task, "softplus", ...)``)."""
    return solve_sparse(task, depth, T, finite_P, N, name="softplus", **options)


def solve_relu2(task, depth=1, T=0.0, finite_P=True, N=None, **options):
    """:func:`solve_sparse` for relu² (``mf.solve(task, "relu2", N=..., ...)``)."""
    return solve_sparse(task, depth, T, finite_P, N, name="relu2", **options)
