"""Lazy (NNGP) baseline for a one-hidden-layer network: the paper's "GP theory".

Model and scaling
-----------------
The paper compares the non-lazy networks with the GP theory of the *lazy* regime (Fig. 6d;
main text "Generalization"; supplement D.3, not available here). Its Methods list the three
differences between the non-lazy posterior and the lazy one: (1) readout ``1/N`` instead of
``1/√N``, (2) temperature ``T/N`` instead of ``T``, (3) σ_a² scaled down with P. The lazy
network is therefore

    f(x) = (1/√N) Σ_i a_i φ(z_i(x)),   z_i(x) = w_iᵀx/√N0,   w_i ~ N(0, I),  a_i ~ N(0, σ_a²),
    p(Θ) ∝ P0(Θ) exp(−(1/2T) Σ_μ |y_μ − f(x_μ)|²),

with an O(1) readout variance (default σ_a² = 1, the standard NNGP) and the unscaled T. For
N → ∞ each output is an independent Gaussian process with covariance σ_a² K_φ, where

    K_φ(x, x') = E[φ(u) φ(v)],   (u, v) ~ N(0, [[K0(x,x), K0(x,x')], [K0(x,x'), K0(x',x')]]),
    K0(x, x') = xᵀx'/N0,

and the Gaussian likelihood has noise variance T. Hence (THEORY.md §3, with T → T/σ_a²):

    mean(x)     = K_φ(x, X) (K_φ + (T/σ_a²) I)⁻¹ Y
    variance(x) = σ_a² [K_φ(x, x) − K_φ(x, X) (K_φ + (T/σ_a²) I)⁻¹ K_φ(X, x)]   (each output)
    ε_r         = (1/P*) Σ_μ [(y_μr − mean_r(x_μ))² + variance(x_μ)]           (bias² + variance)

At T = 0 the mean does not depend on σ_a² and the variance is proportional to it. For linear
φ, K_φ = K0 and the mean is the non-lazy linear predictor ``Yᵀ K0⁻¹ k0(x)`` (paper: "the mean
predictor is identical to the lazy case and the GP theory"). Passing the paper's non-lazy
σ_a² (:func:`meanfield.default_sigma_a2`) instead shrinks the variance by that factor.

Kernels: closed forms for "linear" (K0), "erf" (arcsine), "relu" (arc-cosine, order 1) and
"relu2" (arc-cosine, order 2); any other φ by 2-D quadrature — a Gauss–Hermite product rule
for smooth φ (softplus, tanh, …), Gauss–Legendre panels split at the kinks for φ with Max,
Abs, Heaviside, … (see :func:`_quadrature_moment`). tests/test_gp.py checks both rules
against the closed forms (erf, relu, relu2, leaky ReLU) to 1e-10 for variances in [0.1, 3]
including |correlation| = 1. The quadrature costs ≈ 4·10³ (smooth) to 2·10⁴ (kinked) φ
evaluations per kernel entry (a 100 × 1000 softplus test kernel took ≈ 25 s on 2 busy cores).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from ._validation import as_matrix, check_float
from .tasks import Task

__all__ = ["gp_baseline", "GPBaseline", "nngp_kernel", "gaussian_product_moment"]

_KAPPA2 = np.pi / 2.0            # κ² for the paper's sigmoid Φ(κz)
_INV_2PI = 1.0 / (2.0 * np.pi)
_L = 10.0                        # quadrature range of each standard normal variable
_GRID = np.linspace(-_L, _L, 9)  # fixed panel breakpoints (panels of width 2.5)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(12)
_CHUNK = 64                      # pairs per quadrature block (≈ 10⁴ nodes per pair)
_GH_BASE = 64                    # Gauss–Hermite nodes per variable for smooth φ at variance ≤ 1


def _resolve(nonlin):
    from .nonlinearities import nonlinearity
    return nonlinearity(nonlin)


def _closed_form(nl):
    """Name of the closed-form kernel for a built-in φ, else None (quadrature)."""
    from ._kernels import phi as _phik
    if nl.code == _phik.USER:
        return None
    return nl.name if nl.name in ("linear", "erf", "relu", "relu2") else None


def _panel_rule(extra):
    """Nodes and weights for E over N(0, 1), GL panels on [−L, L] split at ``extra`` (..., k)."""
    lead = extra.shape[:-1]
    br = np.concatenate([np.broadcast_to(_GRID, lead + (_GRID.size,)), np.clip(extra, -_L, _L)], axis=-1)
    br.sort(axis=-1)
    half = 0.5 * (br[..., 1:] - br[..., :-1])
    mid = 0.5 * (br[..., 1:] + br[..., :-1])
    x = mid[..., None] + half[..., None] * _GL_X
    w = half[..., None] * _GL_W * np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)
    return x.reshape(lead + (-1,)), w.reshape(lead + (-1,))


def _has_kinks(nl):
    """True if φ's expression contains a non-smooth function (Max, Abs, Heaviside, Piecewise, …)."""
    import sympy as sp
    for e in sp.preorder_traversal(nl.expr):
        if e.func in (sp.Heaviside, sp.Abs, sp.sign, sp.DiracDelta, sp.Max, sp.Min, sp.Piecewise) \
                or isinstance(e, sp.core.relational.Relational):
            return True
    return False


def _quadrature_moment(nl, a, b, c, kinked=None):
    """E[φ(u)φ(v)] by 2-D quadrature; a, b, c are 1-D arrays of equal length.

    Smooth φ: Gauss–Hermite product rule with ``ceil(64 √max(1, a, b))`` nodes per variable
    (≤ 256; per block of pairs): error ≤ 1e-11 for the sigmoid up to variance 3, ≈ 1e-16 at
    variance 1 (steeper integrands need more nodes, so very large variances lose accuracy). φ with kinks:
    Gauss–Legendre panels on [−L, L] for u = √a x and, given x, for v = √b (ρx + √(1−ρ²) y),
    split at φ's kinks; the outer panels are graded around the point where the inner mean
    crosses a kink (a smoothed kink of width √(1−ρ²)/|ρ|, sharp when |ρ| → 1).
    """
    kinked = _has_kinks(nl) if kinked is None else kinked
    kinks = np.asarray(nl.kinks if kinked else (), dtype=np.float64)
    grade = np.array([-8.0, -2.0, -0.5, 0.0, 0.5, 2.0, 8.0])
    out = np.empty(a.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        for s0 in range(0, a.size, _CHUNK):
            sl = slice(s0, s0 + _CHUNK)
            sa, sb = np.sqrt(a[sl]), np.sqrt(b[sl])
            ab = sa * sb
            rho = np.where(ab > 0, np.clip(c[sl] / np.where(ab > 0, ab, 1.0), -1.0, 1.0), 0.0)
            srho = np.sqrt(1.0 - rho * rho)
            if not kinked:
                x, w = _gh(max(1.0, a[sl].max(), b[sl].max()))
                phiu = nl.phi(sa[:, None] * x)                                        # (p, n)
                v = sb[:, None, None] * (rho[:, None, None] * x[:, None] + srho[:, None, None] * x)
                inner = nl.phi(v) @ w                                                 # (p, n)
                out[sl] = (phiu * inner) @ w
                continue
            big = np.full((sa.size, 1), _L)
            ext = [np.where(sa[:, None] > 0, kinks[None, :] / sa[:, None], _L)]
            x0 = kinks[None, :] / (sb * rho)[:, None]                                # inner mean = kink
            width = (srho / np.abs(rho))[:, None, None]
            pts = (x0[..., None] + width * grade).reshape(sa.size, -1)
            ext.append(np.where(np.isfinite(pts), pts, big))
            xo, wo = _panel_rule(np.concatenate(ext, axis=1))                       # u = √a x
            phiu = nl.phi(sa[:, None] * xo)
            mv = (sb * rho)[:, None] * xo                                             # v = mv + sd y
            sd = (sb * srho)[:, None, None]
            ext = np.where(sd > 0, (kinks - mv[..., None]) / np.where(sd > 0, sd, 1.0), _L)
            xi, wi = _panel_rule(ext)
            inner = np.einsum("pij,pij->pi", wi, nl.phi(mv[..., None] + sd * xi))
            out[sl] = np.einsum("pi,pi,pi->p", wo, phiu, inner)
    return out


def _gh(var_max):
    from .integrators import gauss_hermite
    return gauss_hermite(int(min(256, np.ceil(_GH_BASE * np.sqrt(var_max)))))


def gaussian_product_moment(nonlinearity, a, b, c):
    """E[φ(u) φ(v)] for zero-mean Gaussian (u, v) with Var u = a, Var v = b, Cov = c.

    Parameters
    ----------
    nonlinearity : str, sympy.Expr or Nonlinearity
        Anything :func:`meanfield.nonlinearity` accepts.
    a, b, c : array_like
        Broadcastable arrays with a, b ≥ 0 and c² ≤ ab (up to rounding).

    Returns
    -------
    ndarray
        Closed form for linear (c), erf (¼ + arcsin(κ²c/√((1+κ²a)(1+κ²b)))/2π), relu
        (√(ab)/2π (sin θ + (π−θ) cos θ)) and relu2 (ab/2π (3 sin θ cos θ + (π−θ)(1 + 2cos²θ))),
        cos θ = c/√(ab); 2-D quadrature otherwise.
    """
    nl = _resolve(nonlinearity)
    a, b, c = (np.asarray(v, dtype=np.float64) for v in (a, b, c))
    a, b, c = np.broadcast_arrays(a, b, c)
    if np.any(a < 0) or np.any(b < 0):
        raise ValueError("a and b (variances) must be non-negative")
    kind = _closed_form(nl)
    if kind == "linear":
        return c.copy()
    if kind == "erf":
        r = _KAPPA2 * c / np.sqrt((1.0 + _KAPPA2 * a) * (1.0 + _KAPPA2 * b))
        return 0.25 + _INV_2PI * np.arcsin(np.clip(r, -1.0, 1.0))
    if kind in ("relu", "relu2"):
        ab = np.sqrt(a * b)
        cos = np.clip(np.divide(c, ab, out=np.zeros_like(c), where=ab > 0), -1.0, 1.0)
        th = np.arccos(cos)
        sin = np.sqrt(1.0 - cos * cos)
        if kind == "relu":
            return _INV_2PI * ab * (sin + (np.pi - th) * cos)
        return _INV_2PI * ab * ab * (3.0 * sin * cos + (np.pi - th) * (1.0 + 2.0 * cos * cos))
    return _quadrature_moment(nl, a.ravel(), b.ravel(), c.ravel()).reshape(a.shape)


def nngp_kernel(nonlinearity, X1, X2=None):
    """NNGP feature kernel K_φ between column inputs (K0 = x·x'/N0).

    Parameters
    ----------
    nonlinearity : str, sympy.Expr or Nonlinearity
    X1 : array_like, shape (N0, P1)
    X2 : array_like, shape (N0, P2), optional
        Defaults to ``X1`` (the result is then exactly symmetric).

    Returns
    -------
    ndarray, shape (P1, P2)
    """
    nl = _resolve(nonlinearity)
    X1 = as_matrix(X1, "X1")
    sym = X2 is None
    X2 = X1 if sym else as_matrix(X2, "X2", rows=X1.shape[0])
    N0 = X1.shape[0]
    a = np.einsum("ip,ip->p", X1, X1) / N0
    b = a if sym else np.einsum("ip,ip->p", X2, X2) / N0
    C = X1.T @ X2 / N0
    if sym and _closed_form(nl) is None:
        iu, ju = np.triu_indices(a.size)   # quadrature: only the upper triangle
        vals = gaussian_product_moment(nl, a[iu], a[ju], C[iu, ju])
        K = np.empty_like(C)
        K[iu, ju] = vals
        K[ju, iu] = vals
        return K
    K = gaussian_product_moment(nl, a[:, None], b[None, :], C)
    return 0.5 * (K + K.T) if sym else K


def _kernel_diag(nl, X):
    a = np.einsum("ip,ip->p", X, X) / X.shape[0]
    return gaussian_product_moment(nl, a, a, a)


@dataclass(frozen=True, eq=False)
class GPBaseline:
    """Result of :func:`gp_baseline`: the lazy-limit GP posterior of the network outputs.

    Attributes
    ----------
    task : Task
    nonlinearity : Nonlinearity
    T : float
        Temperature = likelihood noise variance.
    sigma_a2 : float
        Readout prior variance; the output prior covariance is ``sigma_a2 * K_φ``.
    K : ndarray, shape (P, P)
        NNGP feature kernel K_φ on the training inputs.
    alpha : ndarray, shape (P, m)
        ``(K + (T/σ_a²) I)⁻¹ Y`` (pseudo-inverse if the matrix is singular at T = 0).
    factor : tuple
        ``("cholesky", L)`` or ``("eigh", V, 1/λ)`` (kept eigenpairs) of ``K + (T/σ_a²) I``.
    info : dict
        ``{"pinv": bool, "rank": int}`` — whether the pseudo-inverse was needed.
    """

    task: Task = field(repr=False)
    nonlinearity: object
    T: float
    sigma_a2: float
    K: np.ndarray = field(repr=False, compare=False)
    alpha: np.ndarray = field(repr=False, compare=False)
    factor: tuple = field(repr=False, compare=False)
    info: dict = field(default_factory=dict, compare=False)

    def _solve(self, B):
        """``(K + (T/σ_a²) I)⁻¹ B`` (Cholesky, or the pseudo-inverse from the eigenbasis)."""
        return _apply_factor(self.factor, B)

    def kernel(self, X1, X2=None):
        """NNGP feature kernel ``K_φ(X1, X2)`` (P1 × P2) between column inputs (no σ_a²)."""
        X1 = as_matrix(X1, "X1", rows=self.task.N0)
        X2 = None if X2 is None else as_matrix(X2, "X2", rows=self.task.N0)
        return nngp_kernel(self.nonlinearity, X1, X2)

    def _inputs(self, X):
        if X is None:
            if self.task.X_test is None:
                raise ValueError("X is required: the task has no test inputs")
            return self.task.X_test
        return as_matrix(X, "X", rows=self.task.N0)

    def predict(self, X=None):
        """GP mean (P_new, m) and variance (P_new,) from one evaluation of the cross kernel."""
        X = self._inputs(X)
        k = nngp_kernel(self.nonlinearity, self.task.X, X)            # P × P_new
        q = np.einsum("pn,pn->n", k, self._solve(k))
        var = np.maximum(self.sigma_a2 * (_kernel_diag(self.nonlinearity, X) - q), 0.0)
        return k.T @ self.alpha, var

    def mean(self, X=None):
        """GP mean predictor, shape (P_new, m); ``X`` (N0 × P_new) defaults to the test inputs."""
        X = self._inputs(X)
        return nngp_kernel(self.nonlinearity, X, self.task.X) @ self.alpha

    def variance(self, X=None):
        """GP predictor variance per input (the same for every output), shape (P_new,), ≥ 0.

        Round-off below zero (e.g. on training inputs at T = 0) is clipped to 0.
        """
        return self.predict(X)[1]

    def bias_variance(self, X=None, Y=None):
        """Class-wise bias² (shape (m,)) and the mean variance (float) on inputs ``X``, targets ``Y``."""
        if (X is None) != (Y is None):
            raise ValueError("X and Y must be given together (or neither, for the task's test set)")
        X = self._inputs(X)
        Y = self.task.Y_test if Y is None else as_matrix(Y, "Y", rows=X.shape[1], cols=self.task.m)
        mean, var = self.predict(X)
        return np.mean((Y - mean) ** 2, axis=0), float(np.mean(var))

    def generalization_error(self, X=None, Y=None):
        """Class-wise error ε_r = mean over inputs of (y_r − mean_r)² + variance, shape (m,)."""
        bias2, var = self.bias_variance(X, Y)
        return bias2 + var


def gp_baseline(task, nonlinearity, T=0.0, sigma_a2=None):
    """GP theory (lazy / NNGP limit) of a one-hidden-layer network on ``task``.

    Parameters
    ----------
    task : Task
    nonlinearity : str, sympy.Expr or Nonlinearity
    T : float
        Temperature ≥ 0 (noise variance of the Gaussian likelihood). At T = 0 a singular
        kernel matrix is handled by the pseudo-inverse (relative cutoff 1e-12).
    sigma_a2 : float, optional
        Readout prior variance of the lazy network (> 0); default 1.0 (module docstring).

    Returns
    -------
    GPBaseline
    """
    if not isinstance(task, Task):
        raise TypeError(f"task must be a meanfield.Task, got {type(task).__name__}")
    nl = _resolve(nonlinearity)
    T = check_float(T, "T", minimum=0.0)
    sigma_a2 = 1.0 if sigma_a2 is None else check_float(sigma_a2, "sigma_a2", minimum=0.0, strict=True)
    K = nngp_kernel(nl, task.X)
    A = K + (T / sigma_a2) * np.eye(task.P)
    factor = _factorize(A)
    info = {"pinv": factor[0] == "eigh", "rank": int(factor[1].shape[1]) if factor[0] == "eigh" else task.P}
    return GPBaseline(task=task, nonlinearity=nl, T=T, sigma_a2=sigma_a2, K=K,
                      alpha=_apply_factor(factor, task.Y), factor=factor, info=info)


def _factorize(A):
    """Cholesky of A, or (if A is numerically singular) its eigenpairs above 1e-12 λ_max."""
    try:
        L = linalg.cholesky(A, lower=True, check_finite=False)
        if np.min(np.diag(L)) ** 2 >= 1e-13 * np.max(np.diag(A)):
            return ("cholesky", L)
    except linalg.LinAlgError:
        pass
    lam, V = np.linalg.eigh(A)
    keep = lam > 1e-12 * max(lam.max(), 0.0)
    return ("eigh", V[:, keep], 1.0 / lam[keep])


def _apply_factor(factor, B):
    if factor[0] == "cholesky":
        return linalg.cho_solve((factor[1], True), B, check_finite=False)
    _, V, inv = factor
    return V @ (inv[:, None] * (V.T @ B))
