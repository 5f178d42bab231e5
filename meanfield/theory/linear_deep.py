"""Deep linear networks (L ≥ 2) and the exact T = 0 reduction (docs/theory.md, "Linear networks").

Integrating the network layer by layer, the activation kernels form a Wishart
chain ``N K_ℓ ~ W_P(N, K_{ℓ−1})`` and the readout Gram matrix ``N G ~ W_m(N, σ_a² I)``;
the likelihood depends on K_{L−1} and G only (``linear.top_layer``). Per N/2 the
log density of (G, K_1 … K_{L−1}) is

    S_top(G; K_{L−1}) + Σ_{ℓ=1}^{L−1} [c_w log det K_ℓ − log det K_{ℓ−1} − tr(K_{ℓ−1}⁻¹ K_ℓ)],   (D1)

``c_w = 1 − (P+1)/N`` (1 for N → ∞). At T = 0 the chain collapses exactly onto
m × m matrices ``H_ℓ = (Yᵀ K_ℓ⁻¹ Y)⁻¹`` with ``N H_ℓ ~ W_m(N − P + m, H_{ℓ−1})`` (Muirhead
Thm 3.2.11), ``H_0 = (Yᵀ K0⁻¹ Y)⁻¹``; everything commutes with ``M = Yᵀ K0⁻¹ Y`` and the
saddle is a scalar problem per eigenvalue λ of M (:func:`solve_zero_T`).
"""
from __future__ import annotations

import numpy as np

from .linear import (_coefficients, _is_scalar_kernel, _unvech, feature_kernel, fluctuation_mean, newton,
                     scalar_maximum, spectrum, top_layer, vech_grad)

__all__ = ["solve_zero_T", "solve_deep", "deep_gradients"]


def _chain(g, lam, L, sigma_a2, cg, kappa):
    """Shoot the T = 0 stationarity equations down from G = g; returns ``[1/h_0, …, 1/h_{L−1}]`` or None.

    Equations per eigenvalue (docs/theory.md, (Z1)–(Z3)), with ``cg = 1 − (P+m+1)/N``,
    ``κ = (m+1)/N`` (both for N → ∞: 1 and 0):
    ``1/h_{L−1} = g²/σ_a² − cg g``; ``1/h_{L−2} = cg/h_{L−1} + 1/(h_{L−1}² g)``;
    ``1/h_{ℓ−1} = h_{ℓ+1}/h_ℓ² − κ/h_ℓ``; the remaining equation is ``1/h_0 = λ``.
    """
    inv = [0.0] * L
    inv[L - 1] = g * g / sigma_a2 - cg * g
    if inv[L - 1] <= 0:
        return None
    if L >= 2:
        inv[L - 2] = cg * inv[L - 1] + inv[L - 1] ** 2 / g
    for ell in range(L - 2, 0, -1):
        inv[ell - 1] = inv[ell] ** 2 / inv[ell + 1] - kappa * inv[ell]
    if min(inv) <= 0:
        return None
    return inv


def solve_zero_T(task, L, sigma_a2, N, with_mean=True):
    """Exact-reduction saddle at T = 0 for any depth, any K0 ≻ 0 and N finite or infinite.

    Per eigenvalue λ of ``M = YᵀK0⁻¹Y`` maximizes
    ``Φ = cg log g − g/σ_a² − 1/(h_{L−1} g) − (m/N) log h_{L−1}
    + Σ_ℓ [(1 − (P+1)/N) log h_ℓ − (1 − (P−m)/N) log h_{ℓ−1} − h_ℓ/h_{ℓ−1}]``
    (bracketed scalar root of the shooting residual, :func:`_chain`). Kernels are the
    posterior means ``K_ℓ = (1 − m/N) K_{ℓ−1} + Y [H_ℓ − (1 − P/N) H_{ℓ−1}] Yᵀ`` and
    ``K_L = (1 − m/N) K_{L−1} + Y U⁻¹ Yᵀ`` (N → ∞: ``K_ℓ = K0 + Y(H_ℓ − H_0)Yᵀ``). For L ≥ 2 at
    finite N and ``with_mean``, ``extra["U_mean"]`` and ``extra["kernels_mean"]`` are the one-loop
    means of G and of the kernels (:func:`_finite_N`).
    """
    K0, Y = task.K0, task.Y
    P, m = Y.shape
    d0, V0 = spectrum(K0, "K0")
    if d0[0] <= 1e-12 * d0[-1]:
        raise ValueError("K0 is singular: at T = 0 the targets cannot be interpolated in general; use T > 0")
    if N is not None and L >= 2 and N < P:
        raise ValueError(f"depth ≥ 2 at finite width needs N ≥ P (nonsingular Wishart layer kernels), "
                         f"got N = {N} < P = {P}")
    M = Y.T @ ((V0 / d0) @ V0.T) @ Y
    lam, W = np.linalg.eigh(0.5 * (M + M.T))
    lam = np.clip(lam, 0.0, None)
    inf = N is None
    cg = 1.0 if inf else 1.0 - (P + m + 1) / N
    kappa = 0.0 if inf else (m + 1) / N
    aw, bw, e = (1.0, 1.0, 0.0) if inf else (1 - (P + 1) / N, 1 - (P - m) / N, m / N)
    g, h, res = np.empty(m), np.empty((L, m)), 0.0
    if L == 1:  # σ_a⁻² u² = cg u + λ
        if np.any(lam <= 0) and cg <= 0:
            raise ValueError(f"no positive-definite saddle: YᵀK0⁻¹Y is singular and 1 − (P+m+1)/N = {cg:.3g} ≤ 0")
        g = 0.5 * sigma_a2 * (cg + np.sqrt(cg * cg + 4 * lam / sigma_a2))
    elif np.any(lam <= 0):
        raise ValueError("YᵀK0⁻¹Y is singular (linearly dependent target columns): deep networks at T = 0, "
                         "at finite N or with K0 ≠ c I need it invertible")
    for r, lr in enumerate(lam if L > 1 else []):
        def resid(x, lr=lr):
            inv = _chain(x, lr, L, sigma_a2, cg, kappa)
            return 1e300 if inv is None else (lr - inv[0]) / max(lr, 1.0)

        def phi(x, lr=lr):
            hh = 1.0 / np.array(_chain(x, lr, L, sigma_a2, cg, kappa))
            out = cg * np.log(x) - x / sigma_a2 - 1.0 / (hh[-1] * x) - e * np.log(hh[-1])
            return out + sum(aw * np.log(hh[l]) - bw * np.log(hh[l - 1]) - hh[l] / hh[l - 1] for l in range(1, L))

        lo = max(cg, 0.0) * sigma_a2 * (1 + 1e-12) + 1e-14 * sigma_a2
        root = scalar_maximum(resid, phi, lo, 10 * sigma_a2 * (1 + np.sqrt(lr / sigma_a2)))
        if root is None:
            raise ValueError(f"no positive-definite saddle for eigenvalue λ = {lr:.4g} of YᵀK0⁻¹Y "
                             f"(N = {N}, P = {P}, m = {m})")
        g[r] = root
        h[:, r] = 1.0 / np.array(_chain(root, lr, L, sigma_a2, cg, kappa))
        res = max(res, abs(resid(root)))
    U = (W * g) @ W.T
    H = [np.linalg.inv(M)] + [(W * h[l]) @ W.T for l in range(1, L)] if L > 1 else []
    t = np.linalg.solve(_likelihood_kernel(K0, Y, H, N), Y) @ np.linalg.inv(U) if L > 1 else \
        np.linalg.solve(K0, Y) @ np.linalg.inv(U)
    kernels = mean_kernels(K0, Y, H, U, Y, 0.0, N)
    msg = (f"exact T = 0 reduction (m × m Wishart chain), per-eigenvalue bracketed roots; "
           f"relative residual {res:.1e}")
    extra = dict(H=tuple(H[1:]), M_eigenvalues=lam)
    if N is not None and with_mean and L > 1:
        out = _finite_N(K0, Y, 0.0, sigma_a2, N, L, U, H[1:], 1)
        extra.update(U_mean=out[5], kernels_mean=out[6])
    return U, t, kernels, res, L * m, msg, extra


def deep_gradients(Ks, G, Y, T, sigma_a2):
    """Objective (D1) for N → ∞ and its gradients ``∂/∂K_ℓ`` (ℓ = 1 … L−1), ``∂/∂G``; returns (Φ, [D_ℓ], D_G, t)."""
    L = len(Ks)
    spec = [spectrum(K) for K in Ks]
    if min(s[0][0] for s in spec) <= 0:
        return -np.inf, None, None, None
    inv = [(V / d) @ V.T for d, V in spec]
    logdet = [np.sum(np.log(d)) for d, _ in spec]
    S, dG, dK, t = top_layer(G, *spec[-1], Y, T, sigma_a2, 1.0, 0.0)
    if not np.isfinite(S):
        return -np.inf, None, None, None
    D = []
    for ell in range(1, L):
        S += logdet[ell] - logdet[ell - 1] - np.sum(inv[ell - 1] * Ks[ell])
        Dl = inv[ell] - inv[ell - 1]
        if ell < L - 1:
            Dl = Dl - inv[ell] + inv[ell] @ Ks[ell + 1] @ inv[ell]
        else:
            Dl = Dl + dK
        D.append(0.5 * (Dl + Dl.T))
    return S, D, dG, t


def _per_mode(K0, c, Y, L, T, sigma_a2):
    """N → ∞, K0 = c I: per singular mode of Y, ``x = (g/σ_a²)^{L−1}`` and
    ``1/g − 1/σ_a² + c x λ/(c x g + T)² = 0`` (docs/theory.md, (D3))."""
    P, m = Y.shape
    Vy, s, Wyt = np.linalg.svd(Y, full_matrices=False)
    g, x = np.empty(m), np.empty(m)
    for r, lr in enumerate(s ** 2):
        xs = lambda u: (u / sigma_a2) ** (L - 1)
        f = lambda u, lr=lr: 1 / u - 1 / sigma_a2 + c * xs(u) * lr / (c * xs(u) * u + T) ** 2
        phi = lambda u, lr=lr: ((L - 1) * np.log(u / sigma_a2) - (L - 1) * u / sigma_a2 + np.log(u) - u / sigma_a2
                                - lr / (c * xs(u) * u + T))
        root = sigma_a2 if lr <= 0 else scalar_maximum(f, phi, sigma_a2 * (1 + 1e-13),
                                                       10 * sigma_a2 * (1 + (lr / sigma_a2) ** 0.5))
        if root is None:
            raise ValueError(f"no positive-definite saddle for the mode λ = {lr:.4g} of YᵀY")
        g[r], x[r] = root, xs(root)
    G = (Wyt.T * g) @ Wyt
    Ks = [K0] + [K0 + c * (Vy * (x ** (ell / (L - 1)) - 1)) @ Vy.T for ell in range(1, L)]
    return G, Ks


def _likelihood_kernel(K0, Y, H, N):
    """K_{L−1} seen by the likelihood: ``ā K0 + Y (H_{L−1} − ā H_0) Yᵀ``, ā = (1 − m/N)^{L−1}.

    Woodbury gives ``Yᵀ K⁻¹ Y = H_{L−1}⁻¹`` for any ā, so at T = 0 the likelihood is
    exactly the reduced one; the bulk level ā (its posterior mean) matters only at T > 0.
    """
    L, m = len(H), Y.shape[1]
    abar = 1.0 if N is None else (1.0 - m / N) ** (L - 1)
    K = abar * K0 + Y @ (H[-1] - abar * H[0]) @ Y.T
    return 0.5 * (K + K.T)


def mean_kernels(K0, Y, H, G, F, T, N):
    """Posterior-mean kernels from the m × m chain (docs/theory.md, (Z4)).

    ``K_ℓ = (1 − m/N) K_{ℓ−1} + Y [H_ℓ − (1 − P/N) H_{ℓ−1}] Yᵀ`` for ℓ < L (exact given the
    H_ℓ: conditional Wishart means), then the feature layer by :func:`feature_kernel`.
    """
    P, m = Y.shape
    keep, shrink = (1.0, 1.0) if N is None else (1.0 - m / N, 1.0 - P / N)
    kernels = [K0]
    for ell in range(1, len(H)):
        K = keep * kernels[-1] + Y @ (H[ell] - shrink * H[ell - 1]) @ Y.T
        kernels.append(0.5 * (K + K.T))
    kernels.append(feature_kernel(kernels[-1], F, G, T, N))
    return kernels


def _reduced_parts(K0, Y, T, sigma_a2, N, L):
    """Reduced objective (D4) on x = (vech G, vech H_1, …, vech H_{L−1}).

    Returns ``parts(x) → (S, [∂S/∂G, ∂S/∂H_1, …], t, [H_0 … H_{L−1}])`` or None outside the PD cone.
    """
    P, m = Y.shape
    c1, nu = _coefficients(True, N, m)
    aw, bw = 1 - (P + 1) / N, 1 - (P - m) / N
    n = m * (m + 1) // 2
    Hfix = np.linalg.inv(Y.T @ np.linalg.solve(K0, Y))

    def parts(x):
        mats = [_unvech(x[i * n:(i + 1) * n], m) for i in range(L)]
        G, H = mats[0], [Hfix] + mats[1:]
        if min(np.linalg.eigvalsh(A)[0] for A in mats) <= 0:
            return None
        S, dG, dK, t = top_layer(G, *spectrum(_likelihood_kernel(K0, Y, H, N)), Y, T, sigma_a2, c1, nu)
        inv = [np.linalg.inv(A) for A in H]
        dH = []
        for ell in range(1, L):
            S += (aw * np.linalg.slogdet(H[ell])[1] - bw * np.linalg.slogdet(H[ell - 1])[1]
                  - np.sum(inv[ell - 1] * H[ell]))
            D = aw * inv[ell] - inv[ell - 1]
            D = D + (-bw * inv[ell] + inv[ell] @ H[ell + 1] @ inv[ell] if ell < L - 1 else Y.T @ dK @ Y)
            dH.append(0.5 * (D + D.T))
        return S, [dG] + dH, t, H

    return parts


def _finite_N(K0, Y, T, sigma_a2, N, L, G0, Hs0, maxiter):
    """Finite N: solve the stationarity of (D4) by Newton from (G0, H_1 … ) and add one-loop means.

    Exact reduction at T = 0; at T > 0 the likelihood is evaluated on :func:`_likelihood_kernel`
    (bulk at its mean, learned part in span Y). Returns (G, [H_0 … H_{L−1}], t, residual, nit,
    U_mean, kernels_mean): the one-loop means of G and of the kernels (:func:`_one_loop_kernels`).
    """
    m = Y.shape[1]
    iu = np.triu_indices(m)
    n = iu[0].size
    parts = _reduced_parts(K0, Y, T, sigma_a2, N, L)
    x0 = np.concatenate([A[iu] for A in [G0] + list(Hs0)])
    scale = [sigma_a2] + [float(np.max(np.abs(A))) for A in Hs0]

    def eqs(x):
        p = parts(x)
        if p is None:
            return np.full(x.size, 1e10)
        return np.concatenate([D[iu] * s for D, s in zip(p[1], scale)])

    x, res, nfev = newton(eqs, x0, maxiter) if T > 0 else (x0, float(np.max(np.abs(eqs(x0)))), 1)
    _, _, t, H = parts(x)
    grad = lambda z: np.concatenate([vech_grad(D) for D in parts(z)[1]])
    typical = np.repeat([np.max(np.abs(A)) for A in [G0] + list(Hs0)], n)
    x_mean = fluctuation_mean(grad, x, N, typical)

    def kernels_at(z):
        p = parts(z)
        return None if p is None else mean_kernels(K0, Y, p[3], _unvech(z[:n], m), Y - T * p[2], T, N)

    kmean = _one_loop_kernels(kernels_at, grad, x, x_mean, N, typical)
    return _unvech(x[:n], m), H, t, res, nfev, _unvech(x_mean[:n], m), kmean


def _one_loop_kernels(kernels_at, grad, x, x_mean, N, scale):
    """One-loop posterior means of the kernels, ``E[K_ℓ] ≈ K_ℓ(E x) + ½ Σ_k w_kᵀ ∇²K_ℓ w_k``.

    x = (vech G, vech H_1, …) has density ∝ exp((N/2) S(x)); ``w_k`` are the principal
    fluctuation directions (``Σ_k w_k w_kᵀ = A⁻¹``, ``A = −(N/2)∇²S`` at the mode x), so the
    second term is the Laplace covariance contracted with the curvature of x ↦ K_ℓ, by a
    ±w_k (one standard deviation) central difference. Together with the one-loop shift of
    the mean (``x_mean``, :func:`fluctuation_mean`) this is E[K_ℓ] to O(1/N²); K_1 … K_{L−1}
    are linear in the H_ℓ (Z4), so for them only the shift acts. Returns None if a ±w_k
    step leaves the positive-definite cone.
    """
    n = x.size
    Hs = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1e-5 * scale[j]
        Hs[:, j] = (grad(x + e) - grad(x - e)) / (2 * e[j])
    mu, Vk = np.linalg.eigh(-0.25 * N * (Hs + Hs.T))
    if mu[0] <= 0:
        return None
    base = kernels_at(x_mean)
    if base is None:
        return None
    out = [K.copy() for K in base]
    for k in range(n):
        w = Vk[:, k] / np.sqrt(mu[k])
        kp, km = kernels_at(x_mean + w), kernels_at(x_mean - w)
        if kp is None or km is None:
            return None
        for ell in range(len(out)):
            out[ell] += 0.5 * (kp[ell] - 2 * base[ell] + km[ell])
    return tuple(0.5 * (K + K.T) for K in out)


def _sym_fun(A, fun):
    w, V = np.linalg.eigh(0.5 * (A + A.T))
    return (V * fun(w)) @ V.T


def _reduced(K0, Y, T, sigma_a2, L, G, Gam):
    """N → ∞, any K0: residuals of the m × m reduction (docs/theory.md, (D5)) and the field t.

    With ``R = Γ⁻¹(σ_a⁻² − G⁻¹)``: ``K0 t (R G) + T t = Y``, ``Γ = tᵀ K0 t`` and
    ``R̃⁻¹ − R̃^{(2−L)/(L−1)} + Γ^{1/2} G Γ^{1/2} = 0`` for ``R̃ = Γ^{−1/2}(σ_a⁻² − G⁻¹)Γ^{−1/2}``.
    """
    m = G.shape[0]
    q = (2.0 - L) / (L - 1.0)
    Gi = np.linalg.inv(G)
    C = np.eye(m) / sigma_a2 - Gi
    Gh = _sym_fun(Gam, np.sqrt)
    Ghi = np.linalg.inv(Gh)
    Rt = Ghi @ C @ Ghi
    if np.linalg.eigvalsh(0.5 * (Rt + Rt.T))[0] <= 0:
        return None
    E1 = _sym_fun(Rt, lambda x: 1 / x - x ** q) + Gh @ G @ Gh
    R = np.linalg.solve(Gam, C)
    d, V = spectrum(K0)
    A = R @ G
    Yv = V.T @ Y
    tv = np.linalg.solve(d[:, None, None] * A.T[None] + T * np.eye(m)[None], Yv[:, :, None])[:, :, 0]
    t = V @ tv
    E2 = tv.T @ (d[:, None] * tv) - Gam
    return E1, E2, t, R


def _general_inf(K0, Y, T, sigma_a2, L, G0, t0, maxiter):
    """N → ∞, general K0: solve (D5) for (G, Γ) by Newton and rebuild the kernels
    ``K_ℓ = K0 + (K0 t)(R^{ℓ/(L−1)} − I) Γ⁻¹ (K0 t)ᵀ``."""
    m = G0.shape[0]
    iu = np.triu_indices(m)
    n = iu[0].size

    def eqs(x):
        G, Gam = _unvech(x[:n], m), _unvech(x[n:], m)
        if min(np.linalg.eigvalsh(G)[0], np.linalg.eigvalsh(Gam)[0]) <= 0:
            return np.full(2 * n, 1e10)
        out = _reduced(K0, Y, T, sigma_a2, L, G, Gam)
        if out is None:
            return np.full(2 * n, 1e10)
        return np.concatenate([out[0][iu] / np.max(np.abs(Gam)) / np.max(np.abs(G)),
                               out[1][iu] / np.max(np.abs(Gam))])

    x, _, nfev = newton(eqs, np.concatenate([G0[iu], (t0.T @ K0 @ t0)[iu]]), maxiter)
    G, Gam = _unvech(x[:n], m), _unvech(x[n:], m)
    if _reduced(K0, Y, T, sigma_a2, L, G, Gam) is None:
        raise ValueError("no positive-definite solution of the deep N → ∞ saddle found (general K0)")
    t = _reduced(K0, Y, T, sigma_a2, L, G, Gam)[2]
    Gh = _sym_fun(Gam, np.sqrt)
    Rt = np.linalg.solve(Gh, np.linalg.solve(Gh, np.eye(m) / sigma_a2 - np.linalg.inv(G)).T)
    Kt = K0 @ t @ np.linalg.inv(Gh)  # R^p = Γ^{−1/2} R̃^p Γ^{1/2}, so (R^p − I)Γ⁻¹ = Γ^{−1/2}(R̃^p − I)Γ^{−1/2}
    Ks = [K0]
    for ell in range(1, L):
        K = K0 + Kt @ (_sym_fun(Rt, lambda x: x ** (ell / (L - 1.0))) - np.eye(m)) @ Kt.T
        Ks.append(0.5 * (K + K.T))
    return Ks, G, nfev


def solve_deep(task, L, T, sigma_a2, N, method="auto", tol=1e-10, maxiter=2000):
    """Saddle at T > 0 for L ≥ 2 (docs/theory.md, (D1), (D3)–(D5)).

    N → ∞: per-mode scalar roots when K0 = c I (:func:`_per_mode`), otherwise the
    exact m × m reduction (:func:`_general_inf`); the residual is that of the full
    P × P stationarity equations of (D1).
    Finite N: the reduced m × m objective (:func:`_finite_N`), exact at T = 0 and an
    approximation at T > 0 (bulk of K_{L−1} at its mean, no Marchenko–Pastur spread). The
    kernels are those of the saddle; ``extra["kernels_mean"]`` holds their one-loop posterior
    means (docs/theory.md, "Deep networks: theory vs sampler" §2), the sampler's reference.
    """
    K0, Y = task.K0, task.Y
    P, m = Y.shape
    d0, _ = spectrum(K0, "K0")
    if d0[0] <= 1e-12 * d0[-1]:
        raise ValueError("deep linear networks need a positive-definite K0 (log det of the layer kernels)")
    c = _is_scalar_kernel(K0)
    if method == "scalar" and (c is None or N is not None):
        raise ValueError("method='scalar' for deep networks needs K0 = c I and N = None")
    if N is not None:
        G0, _, _, _, _, _, extra0 = solve_zero_T(task, L, sigma_a2, N, with_mean=False)
        G, H, t, res, nit, U_mean, kmean = _finite_N(K0, Y, T, sigma_a2, N, L, G0, extra0["H"], maxiter)
        kernels = mean_kernels(K0, Y, H, G, Y - T * t, T, N)
        msg = f"reduced m × m saddle at finite N (approximate at T > 0, docs/theory.md §4); residual {res:.1e}"
        return G, t, kernels, res, nit, msg, dict(H=tuple(H[1:]), U_mean=U_mean, kernels_mean=kmean)
    if method in ("auto", "scalar") and c is not None:
        G, Ks = _per_mode(K0, c, Y, L, T, sigma_a2)
        nit, how = L * m, "per-mode scalar roots (K0 = c I)"
    else:
        G0, t0, *_ = solve_zero_T(task, L, sigma_a2, None, with_mean=False)
        Ks, G, nit = _general_inf(K0, Y, T, sigma_a2, L, G0, t0, maxiter)
        how = "m × m reduction (G, Γ = tᵀK0t) solved by Newton"
    S, D, dG, t = deep_gradients(Ks, G, Y, T, sigma_a2)
    res = max([float(np.max(np.abs(dG))) * sigma_a2] +
              [float(np.max(np.abs(Dl))) / float(np.max(np.abs(np.linalg.inv(K)))) for Dl, K in zip(D, Ks[1:])])
    kernels = list(Ks) + [feature_kernel(Ks[-1], Y - T * t, G, T, None)]
    return G, t, kernels, res, nit, f"{how}; relative residual {res:.1e}", {}
