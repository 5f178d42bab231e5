"""Linear-network theory (THEORY.md §2.1; docs/theory.md "Linear networks").

Every check compares the solver with something computed independently here:
closed forms, the stationarity equations written out from scratch, brute-force
quadrature of the exact finite-N density of the readout Gram matrix, and
importance sampling of the raw network / the prior Wishart chain.
"""
import numpy as np
import pytest
from scipy import integrate, linalg, optimize, special

import meanfield as mf
from meanfield.theory.solution import Solution


def random_task(P, N0, m=3, seed=0, P_test=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N0, P))
    Y = rng.standard_normal((P, m))
    kw = {}
    if P_test:
        kw = dict(X_test=rng.standard_normal((N0, P_test)), Y_test=rng.standard_normal((P_test, m)))
    return mf.Task(X=X, Y=Y, **kw)


@pytest.fixture(scope="module")
def toy():
    return mf.toy_task(60, 80, y_minus=0.0, P_test=10)


@pytest.fixture(scope="module")
def rtask():
    return random_task(30, 45, P_test=7)


def M_of(task):
    return task.Y.T @ np.linalg.solve(task.K0, task.Y)


# --- (a) leading order ---------------------------------------------------------------------------------

@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("which", ["toy", "random"])
def test_leading_order_closed_form(L, which, toy, rtask):
    """U^{L+1} = σ_a^{2L} YᵀK0⁻¹Y to 1e-12 (the paper's σ_a² is σ_a^{2L}; they agree for L = 1),
    and the paper's kernels K_ℓ = K0 + σ_a^{2(L−ℓ)} Y U^{−(L−ℓ+1)} Yᵀ at T = 0."""
    task = toy if which == "toy" else rtask
    s = mf.solve(task, "linear", depth=L, finite_P=False)
    s2 = task.P ** (-1.0 / L)
    assert s.sigma_a2 == pytest.approx(s2, rel=1e-15)
    target = s2 ** L * M_of(task)
    assert np.max(np.abs(np.linalg.matrix_power(s.U, L + 1) - target)) <= 1e-12 * np.max(np.abs(target))
    if L == 1:
        assert np.allclose(s.U, linalg.sqrtm(target).real, rtol=0, atol=1e-12)
    Ui = np.linalg.inv(s.U)
    for ell in range(1, L + 1):
        K = task.K0 + s2 ** (L - ell) * task.Y @ np.linalg.matrix_power(Ui, L - ell + 1) @ task.Y.T
        assert np.max(np.abs(s.kernels[ell] - K)) <= 1e-10 * np.max(np.abs(K))


def test_leading_order_finite_T_one_layer(toy, rtask):
    """L = 1, T > 0: σ_a⁻² = tᵀK0t, K0tU + Tt = Y; for K0 = I per eigenvalue u = √(σ_a²λ) − T."""
    T = 0.05
    s = mf.solve(toy, "linear", T=T, finite_P=False)
    lam, W = np.linalg.eigh(toy.Y.T @ toy.Y)
    assert np.allclose(s.U, (W * (np.sqrt(s.sigma_a2 * lam) - T)) @ W.T, rtol=0, atol=1e-12)
    s = mf.solve(rtask, "linear", T=T, finite_P=False)
    t, U, K0 = s.field, s.U, rtask.K0
    assert np.max(np.abs(K0 @ t @ U + T * t - rtask.Y)) < 1e-12
    assert np.max(np.abs(t.T @ K0 @ t - np.eye(3) / s.sigma_a2)) * s.sigma_a2 < 1e-12


# --- (b) finite P (N → ∞) ------------------------------------------------------------------------------

@pytest.mark.parametrize("L", [1, 2, 3])
def test_finite_P_approaches_leading_order_at_rate_sigma2(L):
    """Per eigenvalue u of the leading-order U, the finite-P (N → ∞) value is u(1 + ε) with
    ε = σ_a²/((L+1)u) (1 + O(σ_a²/u)) (docs/theory.md): the gap closes like σ_a² = P^(−1/L).
    Asserted: |ε (L+1) u/σ_a² − 1| ≤ 0.5 σ_a²/u (the observed coefficient is 1/4, ≈ 0.34, ≈ 0.40 for
    L = 1, 2, 3) on toy tasks and random non-orthogonal K0, and the gap shrinks with P."""
    rng = np.random.default_rng(1)
    for kind in ("toy", "random"):
        prev = np.inf
        for P in (50, 100, 200):
            task = mf.toy_task(P, P + 20, y_minus=0.0) if kind == "toy" else \
                mf.Task(X=rng.standard_normal((2 * P, P)), Y=rng.standard_normal((P, 3)))
            a = mf.solve(task, "linear", depth=L, finite_P=False)
            b = mf.solve(task, "linear", depth=L)
            w, W = np.linalg.eigh(a.U)
            eps = np.diag(W.T @ b.U @ W) / w - 1
            assert np.allclose(W.T @ b.U @ W, np.diag(np.diag(W.T @ b.U @ W)), atol=1e-12)  # U commutes with M
            x = a.sigma_a2 / w
            assert np.all(np.abs(eps * (L + 1) / x - 1) <= 0.5 * x), (P, eps, x)
            gap = np.linalg.norm(b.U - a.U) / np.linalg.norm(a.U)
            assert gap < prev
            prev = gap


@pytest.mark.parametrize("L", [1, 2, 3])
def test_finite_P_T0_closed_form(L, toy, rtask):
    """N → ∞, T = 0, any depth: U^L (U − σ_a²) = σ_a^{2L} YᵀK0⁻¹Y (docs/theory.md (Z5); L = 1 is
    THEORY.md's σ_a⁻²U² = U + YᵀK0⁻¹Y), and the layer kernels form the geometric chain
    Yᵀ K_ℓ⁻¹ Y = M (σ_a² U⁻¹)^ℓ (exact at N → ∞, T = 0)."""
    for task in (toy, rtask):
        s = mf.solve(task, "linear", depth=L)
        U, s2, M = s.U, s.sigma_a2, M_of(task)
        lhs = np.linalg.matrix_power(U, L) @ (U - s2 * np.eye(3))
        assert np.max(np.abs(lhs - s2 ** L * M)) < 1e-12 * np.max(np.abs(s2 ** L * M))
        for ell in range(1, L):
            Q = task.Y.T @ np.linalg.solve(s.kernels[ell], task.Y)
            target = M @ np.linalg.matrix_power(s2 * np.linalg.inv(U), ell)
            assert np.max(np.abs(Q - target)) < 1e-10 * np.max(np.abs(target))


@pytest.mark.parametrize("T", [1e-3, 0.05, 0.5])
def test_one_layer_finite_T_equations(T, toy, rtask):
    """U⁻¹ = σ_a⁻² − tᵀK0t and K0 t U + T t = Y to 1e-12 (THEORY.md §2.1), toy and general K0."""
    for task in (toy, rtask):
        s = mf.solve(task, "linear", T=T)
        t, U, K0 = s.field, s.U, task.K0
        assert s.converged and s.residual < 1e-12
        assert np.max(np.abs(K0 @ t @ U + T * t - task.Y)) < 1e-12
        assert np.max(np.abs(np.linalg.inv(U) - np.eye(task.m) / s.sigma_a2 + t.T @ K0 @ t)) * s.sigma_a2 < 1e-12


def test_one_layer_K0_identity_quartic(toy):
    """K0 = I: per eigenvalue λ of YᵀY, (u/σ_a² − 1)(u + T)² = λ u (THEORY.md §2.1)."""
    T = 0.02
    s = mf.solve(toy, "linear", T=T)
    lam, W = np.linalg.eigh(toy.Y.T @ toy.Y)
    u = np.diag(W.T @ s.U @ W)
    assert np.allclose(W.T @ s.U @ W, np.diag(u), atol=1e-13)
    assert np.max(np.abs((u / s.sigma_a2 - 1) * (u + T) ** 2 - lam * u) / (lam * u)) < 1e-12


@pytest.mark.parametrize("L", [1, 2, 3])
def test_T_to_zero_continuity(L, toy, rtask):
    for task in (toy, rtask):
        U0 = mf.solve(task, "linear", depth=L).U
        for T, tol in [(1e-6, 1e-4), (1e-9, 1e-7)]:
            assert np.max(np.abs(mf.solve(task, "linear", depth=L, T=T).U - U0)) < tol


@pytest.mark.parametrize("L", [2, 3])
@pytest.mark.parametrize("T", [0.01, 0.3])
def test_deep_saddle_equations(L, T, toy, rtask):
    """N → ∞ deep saddle written out from (D1): G⁻¹ − σ_a⁻² + tᵀK_{L−1}t = 0, K_{L−1}tG + Tt = Y,
    K_{L−1}⁻¹ − K_{L−2}⁻¹ + tGtᵀ = 0 and the geometric chain K_{ℓ+1} = K_ℓ K_{ℓ−1}⁻¹ K_ℓ."""
    for task in (toy, rtask):
        s = mf.solve(task, "linear", depth=L, T=T)
        G, t, K = s.U, s.field, s.kernels
        assert s.converged and s.residual < 1e-11
        assert np.max(np.abs(np.linalg.inv(G) - np.eye(3) / s.sigma_a2 + t.T @ K[L - 1] @ t)) * s.sigma_a2 < 1e-11
        assert np.max(np.abs(K[L - 1] @ t @ G + T * t - task.Y)) < 1e-11
        D = np.linalg.inv(K[L - 1]) - np.linalg.inv(K[L - 2]) + t @ G @ t.T
        assert np.max(np.abs(D)) < 1e-9 * np.max(np.abs(np.linalg.inv(K[L - 1])))
        for ell in range(1, L - 1):
            Kn = K[ell] @ np.linalg.solve(K[ell - 1], K[ell])
            assert np.max(np.abs(Kn - K[ell + 1])) < 1e-9 * np.max(np.abs(Kn))
        F = task.Y - T * t
        assert np.allclose(K[L], K[L - 1] + F @ np.linalg.solve(G, F.T), atol=1e-10)


def test_general_solvers_agree_with_per_eigenvalue_solvers():
    """Matrix solvers (Newton / m × m reductions) = scalar per-eigenvalue roots on the toy task (K0 = I)."""
    task = mf.toy_task(40, 60, y_minus=0.0)
    for kw in [dict(T=0.01), dict(T=0.3), dict(T=0.01, N=50), dict(T=0.2, N=300)]:
        a = mf.solve(task, "linear", method="scalar", **kw)
        b = mf.solve(task, "linear", method="general", **kw)
        assert b.converged and np.max(np.abs(a.U - b.U)) < 1e-12
        assert np.max(np.abs(a.field - b.field)) < 1e-10
    for L in (2, 3):
        for T in (0.01, 0.3, 1.0):
            a = mf.solve(task, "linear", depth=L, T=T, method="scalar")
            b = mf.solve(task, "linear", depth=L, T=T, method="general")
            assert b.converged and np.max(np.abs(a.U - b.U)) < 1e-12
            assert max(np.max(np.abs(x - y)) for x, y in zip(a.kernels, b.kernels)) < 1e-11


def test_one_layer_general_matches_closed_form_at_T0(rtask):
    """The general (L-BFGS + Newton) solver at T = 0 reproduces the per-eigenvalue closed form of σ_a⁻²U² = U + M."""
    a = mf.solve(rtask, "linear")
    b = mf.solve(rtask, "linear", T=0.0, method="general")
    U = a.U
    assert np.max(np.abs(U @ U / a.sigma_a2 - U - M_of(rtask))) < 1e-10 * np.max(np.abs(M_of(rtask)))
    # the general path at T = 0 goes through the same closed form; force the matrix solver via tiny T
    c = mf.solve(rtask, "linear", T=1e-12, method="general")
    assert np.max(np.abs(c.U - U)) < 1e-9 and np.max(np.abs(b.U - U)) < 1e-14


# --- kernels, predictor, conditional -------------------------------------------------------------------

def test_one_layer_kernel_T0(toy, rtask):
    for task in (toy, rtask):
        s = mf.solve(task, "linear")
        assert np.allclose(s.kernels[1], task.K0 + task.Y @ np.linalg.solve(s.U, task.Y.T), atol=1e-12)
        s = mf.solve(task, "linear", N=150)  # finite N: (1 − m/N) K0 + Y U⁻¹ Yᵀ
        assert np.allclose(s.kernels[1], (1 - 3 / 150) * task.K0 + task.Y @ np.linalg.solve(s.U, task.Y.T),
                           atol=1e-12)


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("N", [None, 200])
def test_predict_kernel_conditional(L, N, rtask):
    T = 0.05
    s = mf.solve(rtask, "linear", depth=L, T=T, N=N)
    assert isinstance(s, Solution) and s.converged
    assert np.allclose(s.predict(rtask.X), rtask.Y - T * s.field, atol=1e-10)
    assert np.allclose(s.predict(rtask.X), s.train_prediction, atol=1e-10)
    for ell in range(L + 1):
        assert np.allclose(s.kernel(ell, rtask.X, rtask.X), s.kernels[ell], atol=1e-9)
    a = np.array([0.3, -1.0, 0.5])
    mean, cov = s.conditional(a)
    F = rtask.Y - T * s.field
    assert np.allclose(mean, s.kernels[L - 1] @ s.field @ a if (L == 1 or N is None) else F @ np.linalg.solve(s.U, a),
                       atol=1e-9)
    assert np.allclose(mean, F @ np.linalg.solve(s.U, a), atol=1e-9)
    if N is None:
        assert np.allclose(cov, s.kernels[L - 1], atol=1e-12)
    else:
        assert np.all(np.linalg.eigvalsh(s.kernels[L - 1] - cov) > -1e-12)


@pytest.mark.parametrize("L", [1, 2, 3])
def test_test_inputs_T0(L, rtask):
    """T = 0: GP predictor Yᵀ K0⁻¹ k0(x) and the paper's test kernel
    K0(x1,x2) + σ_a^{2(L−ℓ)} f(x1)ᵀ U^{−(L−ℓ+1)} f(x2) (leading order; exact for L = 1 at finite P)."""
    Xt = rtask.X_test
    k0 = rtask.X.T @ Xt / rtask.N0
    gp = k0.T @ np.linalg.solve(rtask.K0, rtask.Y)
    for fp in (True, False):
        s = mf.solve(rtask, "linear", depth=L, finite_P=fp)
        f = s.predict(Xt)
        assert np.allclose(f, gp, atol=1e-10)
        if fp and L > 1:
            continue
        Ui = np.linalg.inv(s.U)
        for ell in range(1, L + 1):
            K = Xt.T @ Xt / rtask.N0 + s.sigma_a2 ** (L - ell) * f @ np.linalg.matrix_power(Ui, L - ell + 1) @ f.T
            assert np.allclose(s.kernel(ell, Xt), K, atol=1e-9)
        mean, cov = s.conditional(np.array([1.0, 0.0, -2.0]))  # paper: E[z | a] = Y U⁻¹ a
        assert np.allclose(mean, rtask.Y @ Ui @ np.array([1.0, 0.0, -2.0]), atol=1e-9)


# --- (c) finite width ----------------------------------------------------------------------------------

def test_finite_N_one_layer_equations(rtask):
    """T = 0: σ_a⁻²U² = (1 − (P+m+1)/N) U + YᵀK0⁻¹Y (THEORY.md); T > 0: the general equation written
    out with an explicit sum over the eigenvalues d_k of K0 and the rows ỹ_k of VᵀY."""
    P, m, N = rtask.P, rtask.m, 40
    s = mf.solve(rtask, "linear", N=N)
    U = s.U
    assert np.max(np.abs(U @ U / s.sigma_a2 - (1 - (P + m + 1) / N) * U - M_of(rtask))) < 1e-10 * P
    d, V = np.linalg.eigh(rtask.K0)
    Yt = V.T @ rtask.Y
    for T in (0.01, 0.4):
        G = mf.solve(rtask, "linear", N=N, T=T).U
        R = (1 - (m + 1) / N) * np.linalg.inv(G) - np.eye(m) / s.sigma_a2
        for dk, yk in zip(d, Yt):
            Ai = np.linalg.inv(dk * G + T * np.eye(m))
            R += -dk * Ai / N + dk * Ai @ np.outer(yk, yk) @ Ai
        assert np.max(np.abs(R)) * s.sigma_a2 < 1e-12


@pytest.mark.parametrize("L, T", [(1, 0.0), (1, 0.02), (2, 0.0), (2, 0.02), (3, 0.0), (3, 0.02)])
def test_finite_N_tends_to_infinite_N(L, T):
    """‖U_N − U_∞‖ = O(1/N): N·(U_N − U_∞) converges (N = 10⁴ vs 10⁵ within 2 %)."""
    task = mf.toy_task(40, 60, y_minus=0.0)
    U = mf.solve(task, "linear", depth=L, T=T).U
    c = [N * (mf.solve(task, "linear", depth=L, T=T, N=N).U - U) for N in (10 ** 4, 10 ** 5)]
    assert np.max(np.abs(c[0] - c[1])) < 0.02 * np.max(np.abs(c[1]))
    assert np.max(np.abs(c[1])) > 1e-3  # the correction is really there (≈ −(P/N) σ_a²/2 per eigenvalue)


@pytest.mark.parametrize("L", [2, 3])
def test_finite_N_deep_T_to_zero(L):
    """The T > 0 finite-N solver (approximate bulk) is continuous with the exact T = 0 reduction."""
    task = mf.toy_task(40, 60, y_minus=0.0)
    a = mf.solve(task, "linear", depth=L, N=60)
    b = mf.solve(task, "linear", depth=L, N=60, T=1e-8)
    assert b.converged and np.max(np.abs(a.U - b.U)) < 1e-6


def _g_density(d, yt, N, T, s2):
    """Exact log density of g = |a|²/N for L = 1, m = 1 (Wishart × Gaussian marginal likelihood)."""
    def logp(g):
        den = d * g + T
        return (N - 2) / 2 * np.log(g) - N * g / (2 * s2) - 0.5 * np.sum(np.log(den)) - N / 2 * np.sum(yt ** 2 / den)
    return logp


def test_exact_g_density_by_importance_sampling():
    """The exact density of g (derivation of (L1)) against the raw network: draw (a, z) from the prior,
    weight by exp(−(N/2T)|Y − f|²); E[g] agrees with quadrature within 4 standard errors."""
    rng = np.random.default_rng(0)
    P, N0, N, T, s2 = 2, 3, 4, 0.5, 0.5
    X = rng.standard_normal((N0, P))
    K0, Y = X.T @ X / N0, np.array([0.8, -0.5])
    d, V = np.linalg.eigh(K0)
    logp = _g_density(d, V.T @ Y, N, T, s2)
    Z = integrate.quad(lambda g: np.exp(logp(g)), 0, 50, limit=400)[0]
    Eg = integrate.quad(lambda g: g * np.exp(logp(g)), 0, 50, limit=400)[0] / Z
    n = 1_000_000
    a = rng.standard_normal((n, N)) * np.sqrt(s2)
    z = rng.standard_normal((n, N, P)) @ np.linalg.cholesky(K0).T
    f = np.einsum("nip,ni->np", z, a) / N
    w = np.exp(-(N / (2 * T)) * np.sum((Y - f) ** 2, axis=1))
    g = np.sum(a * a, axis=1) / N
    est = np.sum(w * g) / np.sum(w)
    se = np.sqrt(np.sum(w ** 2 * (g - est) ** 2)) / np.sum(w)
    assert abs(est - Eg) < 4 * se and se < 2e-3


@pytest.mark.parametrize("T", [0.0, 0.05])
def test_finite_N_saddle_is_exact_mode_and_one_loop_mean_is_exact_mean(T):
    """m = 1, L = 1: brute-force quadrature of the exact density of g. The solver's U is its mode
    (1e-7); its exact mean differs from the mode at O(1/N) (the (m+1)/N-order ambiguity of a saddle),
    and info['U_mean'] (one-loop) reproduces the mean to O(1/N²): N²·|error| < 0.01, N·|error| shrinking."""
    rng = np.random.default_rng(3)
    P = 20
    task = mf.Task(X=rng.standard_normal((30, P)), Y=np.sign(rng.standard_normal((P, 1))))
    d, V = np.linalg.eigh(task.K0)
    errs = []
    for N in (40, 160, 640):
        s = mf.solve(task, "linear", T=T, N=N)
        logp = _g_density(d, (V.T @ task.Y)[:, 0], N, T, s.sigma_a2)
        g = s.U[0, 0]
        mode = optimize.minimize_scalar(lambda x: -logp(x), bracket=(0.9 * g, g, 1.1 * g), tol=1e-12).x
        assert abs(mode - g) < 1e-7
        q = lambda k: integrate.quad(lambda x: x ** k * np.exp(logp(x) - logp(g)), 0, 20 * g, points=[g],
                                     limit=400, epsabs=0, epsrel=1e-13)[0]
        Eg = q(1) / q(0)
        assert 0.05 < N * (Eg - g) < 0.1  # mode ≠ mean at O(1/N)
        errs.append(abs(Eg - s.info["U_mean"][0, 0]))
        assert N * N * errs[-1] < 0.01
    assert errs[2] < errs[0] / 8


def test_deep_T0_reduction_by_importance_sampling():
    """L = 2, m = 1, T = 0: the m × m Wishart-chain reduction (Muirhead 3.2.11 + determinant telescoping)
    against importance sampling of the prior chain K1 ~ W_P(N, K0)/N, G ~ σ_a² χ²_N/N with the exact
    T = 0 likelihood det(K1 G)^(−1/2) exp(−N YᵀK1⁻¹Y/2G); the solver's U is the mode of the reduced density."""
    rng = np.random.default_rng(1)
    P, N, s2 = 3, 8, 0.5
    X = rng.standard_normal((5, P))
    K0, Y = X.T @ X / 5, np.array([0.7, -0.4, 0.2])
    h0 = 1 / (Y @ np.linalg.solve(K0, Y))

    def logp(g, h):  # reduced density of (g, h1), h1 = (YᵀK1⁻¹Y)⁻¹
        return ((N - 2 - P) / 2 * np.log(g) - N * g / (2 * s2) + ((N - P - 1) / 2 - 0.5) * np.log(h)
                - N * h / (2 * h0) - N / (2 * h * g))

    r = optimize.minimize(lambda v: -logp(*np.exp(v)), [0.0, np.log(h0)], tol=1e-14)
    s = mf.solve(mf.Task(X=X, Y=Y), "linear", depth=2, N=N, sigma_a2=s2)
    assert s.U[0, 0] == pytest.approx(np.exp(r.x[0]), rel=1e-6)
    lg0, lh0 = r.x
    f = lambda lh, lg, k: np.exp(k * lg + logp(np.exp(lg), np.exp(lh)) + r.fun + lg + lh)
    q = lambda k: integrate.dblquad(lambda lh, lg: f(lh, lg, k), lg0 - 8, lg0 + 8, lh0 - 10, lh0 + 10,
                                    epsabs=0, epsrel=1e-10)[0]
    Eg = q(1) / q(0)
    n = 400_000
    Z = np.linalg.cholesky(K0) @ rng.standard_normal((n, P, N))
    K1 = Z @ Z.transpose(0, 2, 1) / N
    # g integrated out given K1 (Rao–Blackwell): ∫ g^{p−1} e^{−Ng/2σ² − Nq/2g} dg ∝ (qσ²)^{p/2} K_p(z)
    q = np.einsum("p,npq,q->n", Y, np.linalg.inv(K1), Y)
    p, z = (N - P) / 2, N * np.sqrt(q / s2)
    logw = -0.5 * np.linalg.slogdet(K1)[1] + p / 2 * np.log(q * s2) + np.log(special.kve(p, z)) - z
    g = np.sqrt(q * s2) * special.kve(p + 1, z) / special.kve(p, z)  # E[g | K1]
    w = np.exp(logw - logw.max())
    est = np.sum(w * g) / np.sum(w)
    se = np.sqrt(np.sum(w ** 2 * (g - est) ** 2)) / np.sum(w)
    # power: dropping the det(K1)^(−1/2) → det(H1)^(−1/2) tilt of the reduction shifts E[g] by 0.018
    assert abs(est - Eg) < 4 * se and se < 2e-3


def test_wishart_projection_mean():
    """Muirhead 3.2.11 (used by the deep reduction): E[(YᵀK1⁻¹Y)⁻¹] = ((N − P + m)/N)(YᵀK0⁻¹Y)⁻¹."""
    rng = np.random.default_rng(2)
    P, N, m, n = 4, 9, 2, 100_000
    X = rng.standard_normal((6, P))
    K0, Y = X.T @ X / 6, rng.standard_normal((P, m))
    Z = np.linalg.cholesky(K0) @ rng.standard_normal((n, P, N))
    K1 = Z @ Z.transpose(0, 2, 1) / N
    H = np.linalg.inv(np.einsum("pa,npq,qb->nab", Y, np.linalg.inv(K1), Y))
    H0 = np.linalg.inv(Y.T @ np.linalg.solve(K0, Y))
    se = H.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(H.mean(axis=0) - (N - P + m) / N * H0) < 4 * se)


# --- API and bad input ---------------------------------------------------------------------------------

def test_api_accepts_name_objects_and_reports(toy):
    class Phi:
        name = "Linear"
    s = mf.solve(toy, Phi(), depth=2, T=0.01)
    assert s.nonlinearity == "linear" and s.depth == 2 and s.converged and "residual" in s.message
    assert s.info["U_eigenvalues"].shape == (3,) and len(s.info["learned"]) == 2
    assert np.allclose(s.info["learned"][0], s.kernels[1] - toy.K0)
    assert "readout covariance U" in repr(s)
    s = mf.solve(toy, "linear", sigma_a2=0.1)
    assert s.sigma_a2 == 0.1


def test_bad_input_raises(toy):
    with pytest.raises(TypeError, match="task"):
        mf.solve(toy.X, "linear")
    with pytest.raises(ValueError, match="T"):
        mf.solve(toy, "linear", T=-0.1)
    with pytest.raises(ValueError, match="depth"):
        mf.solve(toy, "linear", depth=0)
    with pytest.raises(TypeError, match="depth"):
        mf.solve(toy, "linear", depth=1.5)
    with pytest.raises(ValueError, match="N"):
        mf.solve(toy, "linear", N=0)
    with pytest.raises(TypeError, match="N"):
        mf.solve(toy, "linear", N=10.0)
    with pytest.raises(ValueError, match="nonlinearity"):
        mf.solve(toy, "tanh")
    with pytest.raises(TypeError, match="nonlinearity"):
        mf.solve(toy, 3)
    with pytest.raises(ValueError, match="sigma_a2"):
        mf.solve(toy, "linear", sigma_a2=-1.0)
    with pytest.raises(TypeError, match="unknown option"):
        mf.solve(toy, "linear", damping=0.5)
    with pytest.raises(ValueError, match="method"):
        mf.solve(toy, "linear", method="newton")
    with pytest.raises(TypeError, match="finite_P"):
        mf.solve(toy, "linear", finite_P="yes")
    s = mf.solve(toy, "linear")
    with pytest.raises(ValueError, match="a must"):
        s.conditional([1.0, 2.0])
    with pytest.raises(ValueError, match="layer"):
        s.kernel(2)
    big = mf.Task(X=np.random.default_rng(0).standard_normal((5, 10)), Y=np.ones((10, 1)))
    s0 = mf.solve(big, "linear")  # K0 rank 5 < P = 10: T = 0 is solved on range(K0), Y is not interpolated
    assert s0.converged and s0.info["rank"] == 5 and np.abs(s0.info["unfittable"]).max() > 0.1
    assert mf.solve(big, "linear", T=0.1).converged
    with pytest.raises(ValueError, match="N ≥ P"):
        mf.solve(toy, "linear", depth=2, N=10)
    with pytest.raises(ValueError, match="no positive-definite"):
        mf.solve(toy, "linear", T=5.0, finite_P=False)  # leading order needs T < σ_a √λ


def test_other_nonlinearities_dispatch(toy):
    import importlib.util
    for name in ("erf", "relu"):
        if importlib.util.find_spec(f"meanfield.theory.{name}") is None:
            with pytest.raises(NotImplementedError, match=name):
                mf.solve(toy, name)


def test_random_label_task():
    """Gaussian inputs with uniform random labels: shapes, one-hot targets, test split drawn with the
    training inputs (same seed → same task), clear errors."""
    t = mf.random_label_task(30, 20, n_classes=4, y_plus=1.0, y_minus=-0.5, seed=3, P_test=10)
    assert t.X.shape == (20, 30) and t.Y.shape == (30, 4) and t.X_test.shape == (20, 10)
    assert np.all(np.sort(t.Y, axis=1)[:, :-1] == -0.5) and np.all(t.Y.max(axis=1) == 1.0)
    assert np.array_equal(t.labels, np.argmax(t.Y, axis=1))
    assert np.array_equal(mf.random_label_task(30, 20, n_classes=4, seed=3, P_test=10).X, t.X)
    assert abs(np.linalg.eigvalsh(t.K0).min()) < 1e-10            # P > N0: K0 has rank N0
    with pytest.raises(ValueError, match="n_classes"):
        mf.random_label_task(10, 5, n_classes=0)
    with pytest.raises(TypeError, match="P_test"):
        mf.random_label_task(10, 5, P_test=1.5)
