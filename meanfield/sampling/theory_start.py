"""Start a sampler run in the state a theory solution describes (stability checks of frozen codes)."""
from __future__ import annotations

import numpy as np

from .._validation import check_choice, check_int
from .geometry import first_layer_geometry


def grid_cdf(zgrid, density):
    """Normalized CDF (trapezoid rule) of a density tabulated on ``zgrid``."""
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(zgrid))])
    return cdf / cdf[-1]


def _draw_from_grid(zgrid, density, u):
    """Inverse-CDF draws from a density tabulated on ``zgrid`` at uniforms ``u``."""
    return np.interp(u, grid_cdf(zgrid, density), zgrid)


def theory_start(solution, N, space="preactivation", project=True, seed=0):
    """Packed sampler state of N neurons drawn from a coded theory solution (one hidden layer).

    Neurons are split over the solution's codes in proportion to ``code_fractions``
    (largest remainders); each gets its code's readout a_γ plus a draw of the finite-P
    Laplace width when the solution has one, and preactivations drawn independently
    from ``p(z_μ | a_γ)`` (exact on the toy task). Sigmoid on general data: neurons sit on
    the atoms (z_γ, a_γ) of the theory without fluctuations, or are drawn from the samples of
    p(z | t) of the theory with them (readout from its exact Gaussian conditional). Pass the result as
    ``meanfield.sample(..., init=...)`` with the same ``space``/``project`` and the
    solution's σ_a².

    Parameters
    ----------
    solution : Solution
        A solution with ``codes`` (sigmoid schemes), depth 1.
    N : int
        Width of the sampled network.
    space, project :
        The sampler coordinates the state is for (see :func:`meanfield.sample`).
    seed : int
        Seed of the draws.

    Returns
    -------
    dict
        ``{"q": packed state, "codes": (N, K) int array}``.
    """
    if solution.codes is None or solution.depth != 1:
        raise ValueError("theory_start needs a one-hidden-layer solution with codes (sigmoid or ReLU scheme)")
    N = check_int(N, "N", minimum=1)
    check_choice(space, "space", {"weight", "preactivation"})
    task = solution.task
    rng = np.random.default_rng(seed)
    if solution.info.get("general") and solution.outliers is None:
        A, Z, codes = _general_erf_state(solution, N, rng)
        return dict(q=_pack(task, A, Z, solution.sigma_a2, space, project), codes=codes)
    if solution.outliers is not None:
        A, Z = _outlier_state(solution, N, rng)
        codes = np.zeros((N, task.m), dtype=np.int8)
        codes[:len(solution.outliers["codes"])] = solution.outliers["codes"]
        return dict(q=_pack(task, A, Z, solution.sigma_a2, space, project), codes=codes)
    which = _split(solution.code_fractions, N)
    counts = np.bincount(which, minlength=len(solution.codes))
    covs = solution.info.get("readout_covariances")
    A = np.empty((N, task.m))
    Z = np.empty((N, task.P))
    for k in range(len(counts)):
        sel = which == k
        n = int(sel.sum())
        if n == 0:
            continue
        A[sel] = solution.readouts[k]
        if covs is not None:
            A[sel] += rng.multivariate_normal(np.zeros(task.m), covs[k], size=n)
        zgrid, dens = solution.conditional_density(k)
        for c in range(task.m):
            cols = np.flatnonzero(task.labels == c)
            Z[np.ix_(sel, cols)] = _draw_from_grid(zgrid, dens[c], rng.random((n, cols.size)))
    codes = np.array([solution.codes[k] for k in which], dtype=np.int8)
    return dict(q=_pack(task, A, Z, solution.sigma_a2, space, project), codes=codes)


def _split(weights, N):
    """N neurons over components in proportion to ``weights`` (largest remainders)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum() * N
    counts = np.floor(w).astype(np.int64)
    counts[np.argsort(-(w - counts))[:N - counts.sum()]] += 1
    return np.repeat(np.arange(len(counts)), counts)


def _general_erf_state(solution, N, rng):
    """Sigmoid on general data: neurons on the atoms (z_γ, a_γ) of the theory without fluctuations,
    or, with them kept, N of the theory's samples z of p(z | t) with a ~ N((s/P) tᵀφ(z), (s/P) I)."""
    from ..analysis.codes import neuron_codes
    from ..nonlinearities import nonlinearity
    task, phi = solution.task, nonlinearity(solution.nonlinearity)
    if solution.info.get("mode") == "fluctuations":
        pool = solution.info["samples_z"]
        Z = pool[rng.choice(pool.shape[0], size=N, replace=N > pool.shape[0])]
        c = solution.sigma_a2
        A = c * phi.phi(Z) @ solution.field + np.sqrt(c) * rng.standard_normal((N, task.m))
    else:
        atoms = solution.info["atoms"]
        which = _split(atoms["weight"], N)
        Z, A = atoms["z"][which], atoms["a"][which]
    return A, Z, neuron_codes(phi.phi(Z), task.labels, n_classes=task.m)


def _pack(task, A, Z, sigma_a2, space, project):
    B, _, _ = first_layer_geometry(task, space, project)
    C = np.linalg.lstsq(B.T, Z.T, rcond=None)[0].T           # C B = Z (Z lies in the range of B)
    return np.concatenate([C.ravel(), (A / np.sqrt(sigma_a2)).ravel()])


def _outlier_state(solution, N, rng):
    """ReLU: n outliers at √N ā_i, √N z̄_i; the bulk from the Laplace Gaussian around a0 and
    p(z_μ | a) ∝ N(z; 0, 1) exp(h_μ φ(z)), h_μ = t_μ·a (docs/theory_relu.md)."""
    from ..nonlinearities import nonlinearity
    task, out = solution.task, solution.outliers
    n = out["a_bar"].shape[0]
    if n >= N:
        raise ValueError(f"N = {N} must exceed the number of outliers ({n})")
    A = np.empty((N, task.m))
    Z = np.empty((N, task.P))
    A[:n], Z[:n] = np.sqrt(N) * out["a_bar"], np.sqrt(N) * out["z_bar"]
    cov = solution.info.get("bulk_covariance")
    A[n:] = solution.info["a0"]
    if cov is not None:
        A[n:] += rng.multivariate_normal(np.zeros(task.m), cov, size=N - n)
    phi = nonlinearity(solution.nonlinearity)
    H = A[n:] @ solution.field.T                              # (N − n, P) tilts
    zgrid = np.linspace(-10.0, 10.0 + max(0.0, float(H.max())), 4001)
    base = -0.5 * zgrid ** 2
    pz = phi.phi(zgrid)
    for i in range(N - n):
        for mu in range(task.P):
            logd = base + H[i, mu] * pz
            Z[n + i, mu] = _draw_from_grid(zgrid, np.exp(logd - logd.max()), rng.random())
    return A, Z
