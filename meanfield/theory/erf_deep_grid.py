"""Grid and mode-search helpers of the two-hidden-layer sigmoid theory (docs/theory_erf_deep.md).

Generic pieces used by :mod:`.erf_deep_layers`: log-sum-exp, a batched damped Newton ascent and
the deduplication of its end points, cached tables, the quadrature settings and frozen grids of a
solve (:class:`Geometry`), and the posterior of a low-dimensional
variable on a grid around its modes (:func:`grid_posterior`).
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np


def _lse(E, axis=-1):
    mx = E.max(axis=axis, keepdims=True)
    return np.log(np.sum(np.exp(E - mx), axis=axis)) + np.squeeze(mx, axis)


def _newton_ascent(fun, X, maxiter=60, gtol=1e-7, floor=1e-3):
    """Damped Newton ascent of ``fun(X) → (F, G, H)`` from each row of X (eigenvalues of −H
    floored at ``floor``: always an ascent direction; Armijo backtracking). Used to locate modes
    for the quadrature grids, which do not need them to more than a few digits."""
    X = np.array(X, float)
    F, G, H = fun(X)[:3]
    for i in range(X.shape[0]):
        for _ in range(maxiter):
            if np.linalg.norm(G[i]) <= gtol * (1 + np.linalg.norm(X[i])):
                break
            lam, V = np.linalg.eigh(-H[i])
            D = V @ ((V.T @ G[i]) / np.maximum(lam, floor))
            step, ok = 1.0, False
            for _ in range(20):
                Fn, Gn, Hn = (q[0] for q in fun(X[i] + step * D)[:3])
                if Fn >= F[i] + 1e-4 * step * (G[i] @ D):
                    ok = True
                    break
                step *= 0.3
            if not ok or step * np.linalg.norm(D) < 1e-10 * (1 + np.linalg.norm(X[i])):
                break
            X[i] += step * D
            F[i], G[i], H[i] = Fn, Gn, Hn
    return X, F, G, H


def _dedupe(X, F, tol=1e-6):
    keep = []
    for i in np.argsort(-F, kind="stable"):
        if all(np.linalg.norm(X[i] - X[j]) > tol * (1 + np.linalg.norm(X[j])) for j in keep):
            keep.append(i)
    return np.array(keep, dtype=int)


def _modes(fun, X0, floor):
    """Distinct local maxima of ``fun`` (→ F, G, H) reached from the rows of X0, F descending."""
    X, F, G, H = _newton_ascent(fun, X0, floor=floor)
    ismax = np.linalg.eigvalsh(H)[:, -1] < 0
    if not ismax.any():                       # flat direction: keep the best end point
        ismax = F >= F.max()
    X, F, H = X[ismax], F[ismax], H[ismax]
    k = _dedupe(X, F)
    return X[k], F[k], H[k]


class _Tables:
    """Cubic-spline tables of per-class one-dimensional functions (exact values on a fine grid)."""

    def __init__(self, make, lo, hi, npts=121):
        from scipy.interpolate import CubicSpline
        self.splines = []
        for c in range(len(lo)):
            x = np.linspace(lo[c] - 1e-9, hi[c] + 1e-9, npts)
            vals = make(c, x)
            self.splines.append({k: CubicSpline(x, v) for k, v in vals.items()})

    def __call__(self, key, U):
        return np.stack([sp[key](U[:, c]) for c, sp in enumerate(self.splines)], axis=1)


class Geometry:
    """Quadrature settings and grid geometries of one solve (passed explicitly, no module state).

    Parameters
    ----------
    dy : float
        Trapezoid step in the sinh-mapped coordinates (relative accuracy ≈ 1e-5 at 0.3, docs §3).
    max_pts : int
        Largest number of points per axis.
    span : float
        Half-width of the initial box around every mode, in Laplace standard deviations.

    Notes
    -----
    While :attr:`frozen` (the context :meth:`freeze`), :func:`grid_posterior` reuses the stored grid
    of a key, so that the quadratures are smooth functions of the parameters (finite-difference
    Jacobians); otherwise it places new grids and stores them under their keys.
    """

    def __init__(self, dy=0.3, max_pts=41, span=10.0):
        self.dy, self.max_pts, self.span = float(dy), int(max_pts), float(span)
        self.frozen = False
        self.store = {}

    def get(self, key):
        """The stored entry of ``key`` while frozen, else None."""
        return self.store.get(key) if self.frozen and key is not None else None

    def put(self, key, value):
        if key is not None:
            self.store[key] = value

    @contextmanager
    def freeze(self):
        """Reuse the stored grids inside the block."""
        self.frozen = True
        try:
            yield self
        finally:
            self.frozen = False


def grid_posterior(make, Q, logdet_prior, X, H, key=None, geometry=None):
    """Exact K-dimensional average over ``p(x) ∝ N(x; 0, Q⁻¹) exp(Σ_c f_c(x_c))``.

    ``make(c, x) → dict`` tabulates ``f`` (key ``"f"``) and any other per-class function of x_c
    on a 1-D grid (cubic splines in between). Coordinates: the eigenbasis R of the Hessian ``H[0]``
    at the best mode (rows of X: the local maxima, H their Hessians), centred at X[0]; along each
    axis a sinh map ``y ↦ s_j sinh(y)`` (s_j: the Laplace s.d.) with a uniform trapezoid rule in y
    (step ``geometry.dy``): fine at the peak, coarse in the Gaussian tails, exponentially convergent.
    The box covers every mode by ±``geometry.span`` s.d. and four prior s.d. and is extended until
    the log-density on its faces is 30 below the maximum. ``geometry`` (:class:`Geometry`, default a
    fresh one) holds the settings and, under ``key``, the grid (reused while frozen).

    Returns
    -------
    dict with ``logZ`` = log E_{N(0,Q⁻¹)} exp(Σ f_c), normalized weights ``w``, points ``U``,
    and ``avg(key)`` / ``tables`` to evaluate per-class functions at the points.
    """
    geo = Geometry() if geometry is None else geometry
    span, max_pts, dy = geo.span, geo.max_pts, geo.dy
    stored = geo.get(key)
    if stored is not None:
        return _on_grid(make, Q, logdet_prior, *stored)
    K = X.shape[1]
    lam, R = np.linalg.eigh(-H[0])
    Y = (X - X[0]) @ R
    sd = []
    for h in H:
        try:
            S = np.linalg.inv(-h)
            sd.append(np.sqrt(np.clip(np.einsum("ij,jk,ki->i", R.T, S, R), 1e-300, None)))
        except np.linalg.LinAlgError:
            sd.append(1.0 / np.sqrt(np.maximum(lam, 1e-12)))
    sd = np.array(sd)
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0 / np.sqrt(np.maximum(lam, 1e-12)))
    sdp = np.sqrt(np.clip(np.einsum("ij,jk,ki->i", R.T, np.linalg.inv(Q), R), 0, None))   # prior s.d.
    s0 = sd[0]
    lo = np.minimum((Y - span * sd).min(0), -4.0 * sdp)
    hi = np.maximum((Y + span * sd).max(0), 4.0 * sdp)
    for _ in range(6):
        ylo, yhi = np.arcsinh(lo / s0), np.arcsinh(hi / s0)
        nj = np.clip(np.ceil((yhi - ylo) / dy), 15, max_pts).astype(int) | 1
        ys = [np.linspace(ylo[j], yhi[j], nj[j]) for j in range(K)]
        axes = [s0[j] * np.sinh(y) for j, y in enumerate(ys)]
        logjac = [np.log(s0[j] * np.cosh(y) * (y[1] - y[0])) for j, y in enumerate(ys)]
        G = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, K)
        LJ = sum(np.meshgrid(*logjac, indexing="ij")).ravel()
        U = X[0] + G @ R.T
        tab = _Tables(make, U.min(0), U.max(0))
        L = tab("f", U).sum(1) - 0.5 * np.einsum("ni,ij,nj->n", U, Q, U)
        Lmax = L.max()
        Lg = L.reshape(tuple(nj))
        grown = False
        for j in range(K):                    # extend each face still within 30 of the maximum
            width = hi[j] - lo[j]
            if Lg.take(0, axis=j).max() > Lmax - 30.0:
                lo[j] -= 0.5 * width
                grown = True
            if Lg.take(-1, axis=j).max() > Lmax - 30.0:
                hi[j] += 0.5 * width
                grown = True
        if not grown:
            break
    geo.put(key, (X[0], R, s0, ys))
    return _on_grid(make, Q, logdet_prior, X[0], R, s0, ys, (U, tab, L, LJ))


def _on_grid(make, Q, logdet_prior, x0, R, s0, ys, done=None):
    """Trapezoid average on the sinh-mapped grid ``x0 + R (s0 sinh y)`` (see :func:`grid_posterior`)."""
    K = len(ys)
    if done is None:
        axes = [s0[j] * np.sinh(y) for j, y in enumerate(ys)]
        logjac = [np.log(s0[j] * np.cosh(y) * (y[1] - y[0])) for j, y in enumerate(ys)]
        G = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, K)
        LJ = sum(np.meshgrid(*logjac, indexing="ij")).ravel()
        U = x0 + G @ R.T
        tab = _Tables(make, U.min(0), U.max(0))
        L = tab("f", U).sum(1) - 0.5 * np.einsum("ni,ij,nj->n", U, Q, U)
    else:
        U, tab, L, LJ = done
    L = L + LJ
    Lmax = L.max()
    w = np.exp(L - Lmax)
    Zs = w.sum()
    w /= Zs
    logZ = np.log(Zs) + Lmax - 0.5 * logdet_prior
    return dict(logZ=logZ, w=w, U=U, tables=tab, avg=lambda key: w @ tab(key, U), n=tuple(len(y) for y in ys))
