"""Build the :class:`Solution` of the sigmoid toy theory: kernel, predictor, conditionals.

THEORY.md §2.2 (per-code preactivation posteriors), §3 (test inputs); conventions in
``docs/theory_erf.md``. Given the readout a_γ, the training preactivations are independent,
``p(z_μ | a_γ) ∝ exp(−z²/2 + h_cγ φ(z))`` with ``h_cγ = t_c·a_γ`` on an input of class c.
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from .._validation import as_matrix
from ..integrators import tilted_expectation, tilted_moments
from .._kernels.phi import KAPPA
from . import erf_toy as toy
from .solution import Solution

__all__ = ["tilted_z_moments", "conditional_density", "assemble"]

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def tilted_z_moments(nl, H):
    """Mean and variance of z under ``∝ exp(−z²/2 + h φ(z))`` for every field in ``H`` (any shape)."""
    H = np.asarray(H, dtype=np.float64)
    m1 = np.array([tilted_expectation(nl, float(h), lambda z: z) for h in H.ravel()])
    m2 = np.array([tilted_expectation(nl, float(h), np.square) for h in H.ravel()])
    return m1.reshape(H.shape), np.maximum(m2 - m1 ** 2, 0.0).reshape(H.shape)


def conditional_density(nl, h, z):
    """Normalized density ``exp(−z²/2 + h φ(z) − g(h)) / √(2π)`` of a preactivation given its field h."""
    z = np.asarray(z, dtype=np.float64)
    g = tilted_moments(nl, float(h))[0]
    return np.exp(-0.5 * z * z + h * nl.phi(z) - g - _LOG_SQRT_2PI)


def _make_predict(task, classes, H, P, A, nl):
    """Mean predictor on new inputs (THEORY.md §3) for the mixture of codes.

    Given the training preactivations z, a test preactivation is Gaussian with mean ``wᵀz``
    (``w = K0⁻¹k0(x)``) and variance ``v = k0(x,x) − k0ᵀK0⁻¹k0``, and
    ``E Φ(κ u) = Φ(κ m / √(1 + κ² s²))`` for u ~ N(m, s²). The average over the independent tilted
    ``z_μ`` treats the largest ``|w_μ|`` term exactly (quadrature) and the rest by the central
    limit theorem: exact for training inputs (one-hot w) and for inputs orthogonal to the training
    set (w = 0), approximate in between.
    """
    mz, vz = tilted_z_moments(nl, H)                     # n × K

    def predict(X_new):
        Xn = as_matrix(X_new, "X_new", rows=task.N0)
        k = task.X.T @ Xn / task.N0
        W = np.linalg.solve(task.K0, k)
        v = np.maximum(np.sum(Xn * Xn, axis=0) / task.N0 - np.sum(W * k, axis=0), 0.0)
        out = np.zeros((Xn.shape[1], A.shape[1]))
        for j in range(Xn.shape[1]):
            w = W[:, j]
            mu = int(np.argmax(np.abs(w)))
            for gam in range(len(P)):
                mzg, vzg = mz[gam][classes], vz[gam][classes]
                m_rest = w @ mzg - w[mu] * mzg[mu]
                scale = np.sqrt(1.0 + KAPPA ** 2 * (v[j] + (w * w) @ vzg - w[mu] ** 2 * vzg[mu]))
                mean_phi = tilted_expectation(nl, float(H[gam, classes[mu]]),
                                              lambda z: ndtr(KAPPA * (w[mu] * z + m_rest) / scale))
                out[j] += P[gam] * mean_phi * A[gam]
        return out

    return predict


def assemble(task, prob, classes, scheme, T, sigma_a2, finite_P, N, converged, message, nit, extra):
    """The :class:`Solution` for a solved scheme (see :func:`meanfield.theory.erf.solve_erf`).

    ``extra`` is merged into ``info``. Computes the feature kernel
    ``K1_μν = Σ_γ P_γ [g'_μγ g'_νγ + δ_μν g''_μγ]``, per-code conditional moments and densities
    on a grid (``Solution.conditional_density``), the Laplace covariances ``(−P ∇²F(a_γ))⁻¹`` and log-weights.
    """
    nl, t, A, P = prob.nl, scheme.t, scheme.A, scheme.P
    H = A @ t.T                                          # n × K fields h_cγ
    g, g1, g2 = prob.moments(H)
    F, _, hess = toy.free_energy(A, t, prob)
    G1 = g1[:, classes]                                  # n × P
    K1 = (G1.T * P) @ G1
    K1[np.diag_indices(task.P)] += P @ g2[:, classes]
    mz, vz = tilted_z_moments(nl, H)
    zgrid = np.linspace(-6.0, 6.0 + float(max(0.0, np.max(H))) * 0.5, 401)
    dens = np.array([[conditional_density(nl, h, zgrid) for h in row] for row in H])
    cov = np.full((len(P), prob.m, prob.m), np.nan)
    ok = np.linalg.eigvalsh(hess)[:, -1] < 0
    cov[ok] = np.linalg.inv(-task.P * hess[ok])
    from .erf_schemes import laplace_logweights
    codes = tuple(tuple(int(v) for v in c) for c in scheme.codes)
    info = dict(t_class=t, classes=classes, rho=prob.rho, Y_class=prob.Yc, s=prob.s, fields=H,
                mean_activation=g1, activation_variance=g2, F=F, hessian=hess, readout_covariances=cov,
                laplace_logweights=laplace_logweights(t, A, prob),
                conditionals=dict(z=zgrid, density=dens, z_mean=mz, z_var=vz, phi_mean=g1, phi_var=g2),
                class_output=np.einsum("g,gc,gj->cj", P, g1, A))
    info.update(extra)

    def conditional(a):
        a = np.asarray(a, dtype=np.float64).ravel()
        if a.size != prob.m:
            raise ValueError(f"a must have m = {prob.m} entries, got {a.size}")
        mean, var = tilted_z_moments(nl, t @ a)
        return mean[classes], np.diag(var[classes])

    def density(gamma, z=None):
        if isinstance(gamma, tuple) and gamma in codes:
            gamma = codes.index(gamma)
        if isinstance(gamma, (bool, np.bool_)) or not isinstance(gamma, (int, np.integer)) or not 0 <= gamma < len(P):
            raise ValueError(f"code must be an index in [0, {len(P)}) or one of {codes}, got {gamma!r}")
        z = zgrid if z is None else np.asarray(z, dtype=np.float64)
        return z, np.array([conditional_density(nl, h, z) for h in H[gamma]])

    return Solution(nonlinearity="erf", depth=1, T=T, sigma_a2=sigma_a2, field=t[classes],
                    kernels=(task.K0, K1), converged=bool(converged), residual=float(scheme.residual),
                    message=message, nit=int(nit), U=np.einsum("g,gi,gj->ij", P, A, A), codes=codes,
                    code_fractions=np.array(P, dtype=np.float64), readouts=np.array(A), N=N,
                    finite_P=bool(finite_P), task=task, info=info,
                    _predict=_make_predict(task, classes, H, P, A, nl), _conditional=conditional,
                    _density=density)
