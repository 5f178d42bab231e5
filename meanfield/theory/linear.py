"""Linear networks, one hidden layer, and the pieces every linear solver shares (THEORY.md §2.1).

Derivation: ``docs/theory.md``, section "Linear networks". For φ(z) = z the
outputs on the training set are Gaussian given the readout Gram matrix
``G = AᵀA/N``, ``vec F ~ N(0, (K ⊗ G)/N)`` with ``K`` the kernel feeding the
feature layer (``K0`` for L = 1). Integrating F against the likelihood and
``N G`` against its Wishart prior ``W_m(N, σ_a² I)`` gives the exact density of G,

    (N/2) S(G),  S = c₁ log det G − tr G/σ_a² − ν Σ_k log det(d_k G + T) − Σ_k ỹ_kᵀ (d_k G + T)⁻¹ ỹ_k,   (L1)

with ``K = V diag(d) Vᵀ``, ``ỹ_k`` the rows of ``VᵀY``, ``c₁ = 1 − (m+1)/N`` and
``ν = 1/N`` (finite width) or ``c₁ = 1, ν = 0`` (N → ∞ at fixed P, the
"finite-P" theory) or ``c₁ = ν = 0`` (leading order in P). Its stationarity
equation ``∂S/∂G = 0`` is

    c₁ G⁻¹ − σ_a⁻² − ν Σ_k d_k (d_k G + T)⁻¹ + tᵀ K t = 0,   K t G + T t = Y,           (L2)

i.e. THEORY.md's ``U⁻¹ = σ_a⁻² − tᵀK0t`` plus the O(1/N) terms. ``U = G`` at the saddle.
"""
from __future__ import annotations

import numpy as np
from scipy import optimize

from .solution import Solution

__all__ = ["solve_linear", "spectrum", "top_layer", "solve_one_layer", "scalar_maximum", "newton", "vech_grad",
           "fluctuation_mean", "make_solution"]


def spectrum(K, name="kernel"):
    """Eigendecomposition ``K = V diag(d) Vᵀ`` of a PSD kernel (round-off negatives clipped to 0)."""
    d, V = np.linalg.eigh(K)
    if d[0] < -1e-8 * max(d[-1], 1e-300):
        raise ValueError(f"{name} is not positive semi-definite (smallest eigenvalue {d[0]:.3e})")
    return np.clip(d, 0.0, None), V


def top_layer(G, d, V, Y, T, sigma_a2, c1, nu, Yv=None):
    """Objective (L1), its gradients and the field for the readout / feature-layer block.

    Parameters
    ----------
    G : ndarray (m, m)
        Readout Gram matrix (symmetric positive definite).
    d, V : ndarray
        Spectrum of the kernel K feeding the feature layer (K0 for L = 1, K_{L−1} for deep nets).
    Y : ndarray (P, m)
    T, sigma_a2, c1, nu : float
        Temperature, readout prior variance and the coefficients of (L1).
    Yv : ndarray, optional
        ``VᵀY`` if already computed.

    Returns
    -------
    S : float
        Objective (L1) (``-inf`` outside the positive-definite cone).
    dS_dG : ndarray (m, m)
        Left-hand side of (L2).
    dS_dK : ndarray (P, P)
        ``−ν Σ_rs G_rs [(K⊗G+T)⁻¹]_rs + t G tᵀ`` (the feature-kernel gradient used by deep solvers).
    t : ndarray (P, m)
        Field solving the Sylvester equation ``K t G + T t = Y`` (THEORY.md §2.1).
    """
    g, W = np.linalg.eigh(G)
    if g[0] <= 0 or not np.all(np.isfinite(g)):
        return -np.inf, None, None, None
    Yt = (V.T @ Y if Yv is None else Yv) @ W
    den = d[:, None] * g[None, :] + T
    if np.any(den <= 0):
        raise ValueError("the kernel has a zero eigenvalue at T = 0: the targets cannot be interpolated; "
                         "use T > 0 or a positive-definite input kernel")
    tt = Yt / den
    S = c1 * np.sum(np.log(g)) - np.sum(g) / sigma_a2 - nu * np.sum(np.log(den)) - np.sum(Yt * tt)
    inner = c1 / g - nu * np.sum(d[:, None] / den, axis=0)
    dG = (W * inner) @ W.T - np.eye(g.size) / sigma_a2 + W @ ((tt.T * d) @ tt) @ W.T
    t = V @ tt @ W.T
    dK = (V * (-nu * np.sum(g[None, :] / den, axis=1))) @ V.T + (t @ G) @ t.T
    return S, 0.5 * (dG + dG.T), 0.5 * (dK + dK.T), t


def scalar_maximum(grad, obj, lo, hi, n=400):
    """Global maximum of a scalar objective on ``(lo, hi)`` via its stationary points.

    Scans ``grad`` on a log grid (extending the ends until ``grad(lo) > 0 > grad(hi)``),
    brackets every + → − sign change (a local maximum) and polishes it with
    ``brentq``; returns the root with the largest ``obj``, or ``None`` if there is none.
    """
    for _ in range(200):
        if grad(lo) > 0:
            break
        lo *= 0.5
    for _ in range(200):
        if grad(hi) < 0:
            break
        hi *= 2.0
    x = np.geomspace(lo, hi, n)
    f = np.array([grad(v) for v in x])
    best, best_obj = None, -np.inf
    for i in np.nonzero((f[:-1] > 0) & (f[1:] <= 0))[0]:
        r = x[i + 1] if f[i + 1] == 0 else optimize.brentq(grad, x[i], x[i + 1], xtol=1e-300, rtol=1e-15,
                                                           maxiter=500)
        o = obj(r)
        if o > best_obj:
            best, best_obj = r, o
    return best


def newton(eqs, x0, maxiter=100, tol=1e-15):
    """Damped Newton for a small system ``eqs(x) = 0`` (central-difference Jacobian, backtracking on |f|∞).

    ``eqs`` should return large values (e.g. 1e10) outside its domain. Returns ``(x, |f(x)|∞, nfev)``.
    """
    x = np.asarray(x0, dtype=np.float64).copy()
    f = eqs(x)
    nfev = 1
    for _ in range(maxiter):
        err = np.max(np.abs(f))
        if err <= tol:
            break
        J = np.empty((f.size, x.size))
        for j in range(x.size):
            h = 1e-6 * max(abs(x[j]), 1e-3)
            e = np.zeros_like(x)
            e[j] = h
            J[:, j] = (eqs(x + e) - eqs(x - e)) / (2 * h)
        nfev += 2 * x.size
        step = np.linalg.lstsq(J, f, rcond=None)[0]
        for _ in range(40):
            fn = eqs(x - step)
            nfev += 1
            if np.max(np.abs(fn)) < err:
                break
            step *= 0.5
        else:
            break
        x, f = x - step, fn
    return x, float(np.max(np.abs(f))), nfev


def vech_grad(D):
    """Gradient w.r.t. the upper-triangle coordinates of a symmetric matrix, from ``∂S/∂G``.

    Off-diagonal coordinates appear twice in G, so their derivative is doubled.
    """
    iu = np.triu_indices(D.shape[0])
    return D[iu] * np.where(iu[0] == iu[1], 1.0, 2.0)


def fluctuation_mean(grad, x, N, scale=None, eps=1e-3):
    """One-loop (Laplace) mean ``E[x]`` of a density ∝ exp((N/2) S(x)) from its maximum x.

    ``E[x] − x = ½ A⁻¹ c``, ``A = −(N/2)∇²S``, ``c_b = Σ_k w_kᵀ ∇²(∂_b (N/2) S) w_k`` with ``w_k``
    the principal fluctuation directions (A⁻¹ = Σ_k w_k w_kᵀ); derivatives by central
    differences of ``grad`` (= ∇S) with steps ``1e-5 · scale`` (typical size of each coordinate,
    default ``max |x|``). The remainder is O(1/N²).
    """
    n = x.size
    g0 = grad(x)
    scale = np.full(n, np.max(np.abs(x))) if scale is None else scale
    Hs = np.empty((n, n))
    for j in range(n):
        h = 1e-5 * scale[j]
        e = np.zeros(n)
        e[j] = h
        Hs[:, j] = (grad(x + e) - grad(x - e)) / (2 * h)
    A = -0.5 * N * 0.5 * (Hs + Hs.T)
    mu, Vk = np.linalg.eigh(A)
    if mu[0] <= 0:
        raise ValueError("the saddle is not a maximum (indefinite Hessian)")
    c = np.zeros(n)
    for k in range(n):
        w = Vk[:, k] / np.sqrt(mu[k])
        c += 0.5 * N * (grad(x + eps * w) - 2 * g0 + grad(x - eps * w)) / eps ** 2
    return x + 0.5 * np.linalg.solve(A, c)


def _coefficients(finite_P, N, m):
    """``(c₁, ν)`` of (L1) for the leading-order, finite-P (N → ∞) and finite-N theories."""
    if not finite_P:
        return 0.0, 0.0
    if N is None:
        return 1.0, 0.0
    return 1.0 - (m + 1) / N, 1.0 / N


def _is_scalar_kernel(K):
    """``c`` if ``K = c I`` to round-off, else ``None``."""
    c = float(np.mean(np.diag(K)))
    return c if c > 0 and np.max(np.abs(K - c * np.eye(K.shape[0]))) <= 1e-12 * c else None


def solve_one_layer(K, Y, T, sigma_a2, c1, nu, method="auto", tol=1e-10, maxiter=2000):
    """Solve (L2) for G given the kernel K feeding the feature layer.

    ``method="scalar"`` (K = c I): G shares the eigenvectors of YᵀY and each
    eigenvalue u solves the scalar equation
    ``c₁/u − σ_a⁻² − ν P c/(c u + T) + c λ/(c u + T)² = 0`` (bracketed, global maximum of (L1)).
    ``method="general"``: maximize (L1) over a Cholesky factor (L-BFGS), then
    polish (L2) by Newton (:func:`newton`) on the symmetric entries of G.

    Returns
    -------
    G, t, residual, nit, message : the solution, its field, the max-norm of (L2) relative to σ_a⁻², iterations, status.
    """
    P, m = Y.shape
    c = _is_scalar_kernel(K)
    if method == "auto":
        method = "scalar" if c is not None else "general"
    if method == "scalar" and c is None:
        raise ValueError("method='scalar' needs a kernel proportional to the identity")
    d, V = spectrum(K)
    Yv = V.T @ Y

    def grad(G):
        return top_layer(G, d, V, Y, T, sigma_a2, c1, nu, Yv)[1]

    if method == "scalar":
        lam, W = np.linalg.eigh(Y.T @ Y)
        lam = np.clip(lam, 0.0, None)
        u = np.empty(m)
        for r, lr in enumerate(lam):
            f = lambda x, lr=lr: c1 / x - 1 / sigma_a2 - nu * P * c / (c * x + T) + c * lr / (c * x + T) ** 2
            s = lambda x, lr=lr: c1 * np.log(x) - x / sigma_a2 - nu * P * np.log(c * x + T) - lr / (c * x + T)
            root = scalar_maximum(f, s, 1e-6 * sigma_a2, 10 * sigma_a2 * (1 + np.sqrt(lr / (c * sigma_a2))))
            if root is None:
                raise ValueError(f"no positive-definite solution for the readout covariance (eigenvalue "
                                 f"λ = {lr:.4g} of YᵀY, T = {T:g}, c₁ = {c1:g}); at leading order this "
                                 "happens when T ≥ σ_a √(cλ)")
            u[r] = root
        G = (W * u) @ W.T
        nit = m
    else:
        G, nit = _general_G(K, Y, T, sigma_a2, c1, nu, grad, d, V, Yv, tol, maxiter)
    S, dG, _, t = top_layer(G, d, V, Y, T, sigma_a2, c1, nu, Yv)
    res = float(np.max(np.abs(dG))) * sigma_a2
    msg = f"{method} solve of the one-layer saddle (L2); relative residual {res:.1e}"
    return G, t, res, nit, msg


def _general_G(K, Y, T, sigma_a2, c1, nu, grad, d, V, Yv, tol, maxiter):
    P, m = Y.shape
    cbar = max(float(np.mean(d)), 1e-12)
    try:  # start from the K = c̄ I solution
        G0 = solve_one_layer(cbar * np.eye(P), Y, T, sigma_a2, c1, nu, "scalar")[0]
    except ValueError:
        G0 = sigma_a2 * np.eye(m)
    tril = np.tril_indices(m)

    def fun(x):
        Lc = np.zeros((m, m))
        Lc[tril] = x
        S, dG, _, _ = top_layer(Lc @ Lc.T, d, V, Y, T, sigma_a2, c1, nu, Yv)
        if not np.isfinite(S):
            return 1e300, np.zeros_like(x)
        return -S, -(2 * dG @ Lc)[tril]

    r = optimize.minimize(fun, np.linalg.cholesky(G0)[tril], jac=True, method="L-BFGS-B",
                          options=dict(maxiter=maxiter, gtol=1e-14, ftol=1e-16))
    Lc = np.zeros((m, m))
    Lc[tril] = r.x
    G = Lc @ Lc.T
    iu = np.triu_indices(m)

    def eqs(x):
        Gx = np.zeros((m, m))
        Gx[iu] = x
        Gx = Gx + np.triu(Gx, 1).T
        if np.linalg.eigvalsh(Gx)[0] <= 0:
            return np.full(x.size, 1e10)
        return grad(Gx)[iu] * sigma_a2

    x, _, nfev = newton(eqs, G[iu])
    G = np.zeros((m, m))
    G[iu] = x
    return G + np.triu(G, 1).T, r.nit + nfev


def feature_kernel(K, F, G, T, N):
    """Posterior-mean feature-layer kernel given the kernel K below it (exact given G; docs/theory.md).

    ``K_L = K + F G⁻¹ Fᵀ − (1/N) V diag(d_k² tr[G (d_k G + T)⁻¹]) Vᵀ`` with ``F = Y − T t = K t G``
    the training prediction; the last term is the O(1/N) reduction of the
    conditional covariance (absent for N = ∞). At T = 0: ``(1 − m/N) K + Y G⁻¹ Yᵀ``.
    """
    KL = K + F @ np.linalg.solve(G, F.T)
    if N is not None:
        d, V = spectrum(K)
        g = np.linalg.eigvalsh(G)
        KL -= (V * (d ** 2 * np.sum(g[None, :] / (d[:, None] * g[None, :] + T), axis=1))) @ V.T / N
    return 0.5 * (KL + KL.T)


def make_solution(task, depth, T, sigma_a2, N, finite_P, U, t, kernels, converged, residual, message, nit,
                  info):
    """Assemble the :class:`Solution` with ``predict``, ``kernel`` and ``conditional`` (THEORY.md §2.1, §3).

    * ``predict(x) = (Y − T t)ᵀ K0⁺ k0(x)``: exact for any depth/width, since a linear
      network's output on x is its output on the projection of x onto the training
      inputs plus a zero-mean part; at T = 0 the GP predictor ``Yᵀ K0⁻¹ k0(x)``.
    * ``kernel(ℓ, x1, x2) = K0(x1, x2) + α1ᵀ (K_ℓ − K0) α2`` with ``α = K0⁺ k0(x)``
      (= the paper's ``K0 + σ_a^{2(L−ℓ)} f(x1)ᵀ U^{−(L−ℓ+1)} f(x2)`` at leading order).
    * ``conditional(a)``: ``z | a ~ N(K t a, K − (1/N) V diag(d_k² aᵀ(d_k U + T)⁻¹a) Vᵀ)``
      with K = K_{L−1} and ``K t a = (Y − T t) U⁻¹ a`` by the Sylvester equation.
    """
    K0 = kernels[0]
    Y = task.Y
    m = Y.shape[1]
    F = Y - T * t
    d0, V0 = spectrum(K0, "K0")
    inv0 = np.where(d0 > 1e-12 * d0[-1], 1.0 / np.where(d0 > 0, d0, 1.0), 0.0)
    learned = tuple(K - K0 for K in kernels)
    Ktop = kernels[depth - 1] if depth > 1 else K0
    dtop, Vtop = spectrum(Ktop)

    def alpha(X):
        return V0 @ (inv0[:, None] * (V0.T @ task.input_kernel(task.X, X)))

    def predict(X_new):
        return alpha(X_new).T @ F

    def kernel(layer, X1, X2):
        X1 = task.X if X1 is None else X1
        X2 = X1 if X2 is None else X2
        k12 = task.input_kernel(X1, X2)
        return k12 if layer == 0 else k12 + alpha(X1).T @ learned[layer] @ alpha(X2)

    def conditional(a):
        if a.shape != (m,):
            raise ValueError(f"a must be a readout vector of length m = {m}, got shape {a.shape}")
        mean = F @ np.linalg.solve(U, a)
        cov = Ktop.copy()
        if N is not None:
            g, W = np.linalg.eigh(U)
            aw = W.T @ a
            cov -= (Vtop * (dtop ** 2 * np.sum(aw ** 2 / (dtop[:, None] * g[None, :] + T), axis=1))) @ Vtop.T / N
        return mean, cov

    info = dict(info)
    info.setdefault("U_eigenvalues", np.linalg.eigvalsh(U))
    info.setdefault("learned", learned[1:])
    return Solution(nonlinearity="linear", depth=depth, T=T, sigma_a2=sigma_a2, field=t, kernels=tuple(kernels),
                    converged=converged, residual=residual, message=message, nit=nit, U=U, N=N,
                    finite_P=finite_P, task=task, info=info, _predict=predict, _kernel=kernel,
                    _conditional=conditional)


def _unvech(x, m):
    A = np.zeros((m, m))
    A[np.triu_indices(m)] = x
    return A + np.triu(A, 1).T


def _matrix_power(M, p):
    """``M^p`` for a symmetric positive-definite matrix via its eigendecomposition."""
    w, W = np.linalg.eigh(M)
    return (W * w ** p) @ W.T


def leading_order(task, depth, T, sigma_a2, method="auto", tol=1e-10, maxiter=2000):
    """Leading order in P (``finite_P=False``; THEORY.md §2.1, paper).

    ``U^{L+1} = σ_a^{2L} Yᵀ K0⁻¹ Y`` (the paper prints σ_a² for σ_a^{2L}; the two agree
    for L = 1, and only σ_a^{2L} is consistent with the paper's kernels and its
    σ_a² = P^{−1/L} — see docs/theory.md), ``K_ℓ = K0 + σ_a^{2(L−ℓ)} F U^{−(L−ℓ+1)} Fᵀ``
    with F = Y − T t. At T > 0 and L = 1 the U⁻¹ term of (L2) is dropped
    (``σ_a⁻² = tᵀK0t``, ``K0 t U + T t = Y``); for L ≥ 2 T drops out of U at leading order
    (the residual T t is suppressed by the learned eigenvalues ~ P^{(L−1)/L} of K_{L−1}).
    """
    K0, Y = task.K0, task.Y
    L = depth
    msg = "leading order in P"
    res, nit = 0.0, 0
    if L == 1 and T > 0:
        U, t, res, nit, m2 = solve_one_layer(K0, Y, T, sigma_a2, 0.0, 0.0, method, tol, maxiter)
        msg += f" (finite-T equation without the U⁻¹ term): {m2}"
    else:
        d0, V0 = spectrum(K0, "K0")
        if d0[0] <= 1e-12 * d0[-1]:
            raise ValueError("K0 is singular: the leading-order theory needs YᵀK0⁻¹Y (use T > 0 with depth 1)")
        M = Y.T @ ((V0 / d0) @ V0.T) @ Y
        w = np.linalg.eigvalsh(M)
        if w[0] <= 1e-12 * w[-1]:
            raise ValueError("YᵀK0⁻¹Y is singular (linearly dependent target columns): the leading-order U "
                             "is singular; use finite_P=True")
        U = _matrix_power(sigma_a2 ** L * M, 1.0 / (L + 1))
        K_below = K0 + (sigma_a2 * Y @ _matrix_power(U, -2.0) @ Y.T if L > 1 else 0.0)
        _, _, _, t = top_layer(U, *spectrum(K_below), Y, T, sigma_a2, 0.0, 0.0)
    F = Y - T * t
    kernels = [K0] + [K0 + sigma_a2 ** (L - ell) * F @ _matrix_power(U, -(L - ell + 1.0)) @ F.T
                      for ell in range(1, L + 1)]
    return U, t, kernels, res, nit, msg


def solve_linear(task, depth=1, T=0.0, finite_P=True, N=None, sigma_a2=None, method="auto", tol=1e-10,
                 maxiter=2000):
    """Mean-field solution of a linear network (THEORY.md §2.1; docs/theory.md "Linear networks").

    Arguments are validated by :func:`meanfield.theory.solve`. ``method`` chooses the
    solver: ``"auto"`` (per-eigenvalue scalar roots when K0 = c I, matrix solvers
    otherwise), ``"scalar"`` or ``"general"``.
    """
    from . import linear_deep
    from .linear_range import range_basis, solve_on_range

    V = range_basis(task.K0)
    if V is not None:  # rank-deficient K0: exact reduction to its range (any T, depth, N)
        return solve_on_range(task, V, solve_linear, depth, T, N, sigma_a2, finite_P=finite_P, method=method,
                              tol=tol, maxiter=maxiter)
    Y, m = task.Y, task.m
    info = dict(method=method)
    if not finite_P:
        U, t, kernels, res, nit, msg = leading_order(task, depth, T, sigma_a2, method, tol, maxiter)
        if N is not None:
            msg += f"; N = {N} ignored (width enters below leading order)"
        return make_solution(task, depth, T, sigma_a2, N, False, U, t, kernels, res <= tol, res, msg, nit, info)
    if depth == 1 and T > 0:
        c1, nu = _coefficients(True, N, m)
        U, t, res, nit, msg = solve_one_layer(task.K0, Y, T, sigma_a2, c1, nu, method, tol, maxiter)
        kernels = [task.K0, feature_kernel(task.K0, Y - T * t, U, T, N)]
    elif T == 0:
        U, t, kernels, res, nit, msg, extra = linear_deep.solve_zero_T(task, depth, sigma_a2, N)
        info.update(extra)
    else:
        U, t, kernels, res, nit, msg, extra = linear_deep.solve_deep(task, depth, T, sigma_a2, N, method, tol,
                                                                     maxiter)
        info.update(extra)
    if depth == 1 and N is not None:  # one-loop mean of G from the exact density (L1)
        c1, nu = _coefficients(True, N, m)
        d, V = spectrum(task.K0)
        grad = lambda x: vech_grad(top_layer(_unvech(x, m), d, V, Y, T, sigma_a2, c1, nu)[1])
        info["U_mean"] = _unvech(fluctuation_mean(grad, U[np.triu_indices(m)], N), m)
    converged = bool(res <= tol)
    if not converged:
        msg = f"NOT CONVERGED (relative residual {res:.1e} > tol {tol:g}): {msg}"
    return make_solution(task, depth, T, sigma_a2, N, True, U, t, kernels, converged, res, msg, nit, info)
