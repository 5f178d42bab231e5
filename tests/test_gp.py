"""GP (lazy / NNGP) baseline: kernels against quadrature, linear mean predictor, variance."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.gp import GPBaseline, _quadrature_moment, gaussian_product_moment, gp_baseline, nngp_kernel
from meanfield.integrators import gauss_hermite


def random_cov(n, seed=0, lo=0.1, hi=3.0):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(lo, hi, n), rng.uniform(lo, hi, n)
    c = rng.uniform(-1, 1, n) * np.sqrt(a * b)
    c[:4] = np.sqrt(a * b)[:4]        # |ρ| = 1: the hardest case for quadrature
    c[4:8] = -np.sqrt(a * b)[4:8]
    c[8] = 0.0
    return a, b, c


def brute_gh(phi, a, b, c, n=160):
    """Independent 2-D Gauss–Hermite product rule (no code shared with meanfield.gp)."""
    x, w = gauss_hermite(n)
    out = []
    for ai, bi, ci in zip(a, b, c):
        r = ci / np.sqrt(ai * bi)
        u = np.sqrt(ai) * x[:, None]
        v = np.sqrt(bi) * (r * x[:, None] + np.sqrt(max(1 - r * r, 0.0)) * x[None, :])
        out.append(np.sum(w[:, None] * w[None, :] * phi(u) * phi(v)))
    return np.array(out)


def test_arcsine_kernel_vs_quadrature():
    # closed form ¼ + arcsin(κ²c/√((1+κ²a)(1+κ²b)))/2π vs the 2-D Gauss–Hermite path: ≤ 1e-10
    a, b, c = random_cov(60)
    nl = mf.nonlinearity("erf")
    closed = gaussian_product_moment(nl, a, b, c)
    np.testing.assert_allclose(_quadrature_moment(nl, a, b, c, kinked=False), closed, rtol=0, atol=1e-10)
    # and against an independent high-order rule at unit variance (inputs with |x|² = N0)
    u = np.ones(20)
    cc = np.linspace(-1, 1, 20)
    np.testing.assert_allclose(brute_gh(nl.phi, u, u, cc), gaussian_product_moment(nl, u, u, cc),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["relu", "relu2"])
def test_arccos_kernels_vs_panel_quadrature(name):
    # arc-cosine kernels (orders 1 and 2) vs Gauss–Legendre panels split at the kink: ≤ 1e-10
    a, b, c = random_cov(60, seed=1)
    nl = mf.nonlinearity(name)
    np.testing.assert_allclose(_quadrature_moment(nl, a, b, c, kinked=True),
                               gaussian_product_moment(nl, a, b, c), rtol=0, atol=1e-10)


def test_arccos_kernel_monte_carlo():
    # an independent check of the formula itself: 4e5 samples, tolerance 5 standard errors
    rng = np.random.default_rng(5)
    a, b, c = 1.3, 0.7, -0.4
    L = np.linalg.cholesky([[a, c], [c, b]])
    uv = L @ rng.standard_normal((2, 400_000))
    prod = np.maximum(uv[0], 0) * np.maximum(uv[1], 0)
    val = gaussian_product_moment("relu", a, b, c)
    assert abs(prod.mean() - val) < 5 * prod.std() / np.sqrt(prod.size)


def test_user_and_smooth_kernels():
    a, b, c = random_cov(12, seed=2, hi=2.0)
    # leaky ReLU = relu(z) − 0.1 relu(−z): closed form from the arc-cosine kernel with c → −c
    J = lambda cc: gaussian_product_moment("relu", a, b, cc)   # noqa: E731
    leaky = J(c) + 0.01 * J(c) - 0.1 * (J(-c) + J(-c))
    np.testing.assert_allclose(gaussian_product_moment("Max(0.1*z, z)", a, b, c), leaky, rtol=0, atol=1e-10)
    sp = mf.nonlinearity("softplus")
    np.testing.assert_allclose(gaussian_product_moment(sp, a, b, c), brute_gh(sp.phi, a, b, c),
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose(gaussian_product_moment("linear", a, b, c), c, rtol=0, atol=0)


def test_nngp_kernel_matrix():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 9))
    X2 = rng.standard_normal((30, 4))
    K0 = X.T @ X / 30
    np.testing.assert_allclose(nngp_kernel("linear", X), K0, atol=1e-15)
    for name in ("erf", "softplus"):
        K = nngp_kernel(name, X)
        np.testing.assert_array_equal(K, K.T)
        assert np.linalg.eigvalsh(K).min() > -1e-12
        np.testing.assert_allclose(nngp_kernel(name, X, X2)[:, :2], nngp_kernel(name, X, X2[:, :2]), atol=1e-14)
        d = np.diag(K0)
        np.testing.assert_allclose(np.diag(K), gaussian_product_moment(name, d, d, d), atol=1e-13)


def linear_task(P=30, N0=50, P_test=20, seed=0):
    rng = np.random.default_rng(seed)
    toy = mf.toy_task(P, P + P_test, P_test=P_test, seed=seed, y_minus=-0.5)   # labels only
    return mf.Task(X=rng.standard_normal((N0, P)), Y=toy.Y, X_test=rng.standard_normal((N0, P_test)),
                   Y_test=toy.Y_test)


def test_linear_gp_mean_is_mean_field_predictor():
    task = linear_task()
    k0 = task.input_kernel(task.X, task.X_test)
    ref = (task.Y.T @ np.linalg.solve(task.K0, k0)).T           # f(x) = Yᵀ K0⁻¹ k0(x)
    for s2 in (None, 0.3):
        g = gp_baseline(task, "linear", T=0.0, sigma_a2=s2)
        assert isinstance(g, GPBaseline)
        np.testing.assert_allclose(g.mean(), ref, rtol=0, atol=1e-8)
    np.testing.assert_allclose(g.kernel(task.X), task.K0, atol=1e-14)


@pytest.mark.parametrize("name", ["linear", "erf", "relu"])
def test_variance_nonnegative_and_zero_on_training(name):
    task = linear_task(seed=1)
    g = gp_baseline(task, name, T=0.0)
    assert np.all(g.variance() >= 0) and g.variance().max() > 1e-3
    assert np.max(g.variance(task.X)) < 1e-8
    np.testing.assert_allclose(g.mean(task.X), task.Y, atol=1e-8)    # interpolation at T = 0
    gT = gp_baseline(task, name, T=0.1)
    assert np.all(gT.variance(task.X) > 0)


def test_finite_T_and_sigma_a2_scaling():
    task = linear_task(seed=2)
    T, s2 = 0.05, 0.5
    g = gp_baseline(task, "erf", T=T, sigma_a2=s2)
    K = nngp_kernel("erf", task.X)
    k = nngp_kernel("erf", task.X_test, task.X)
    A = K + (T / s2) * np.eye(task.P)
    np.testing.assert_allclose(g.mean(), k @ np.linalg.solve(A, task.Y), atol=1e-10)
    kss = gaussian_product_moment("erf", *(np.sum(task.X_test ** 2, 0) / task.N0,) * 3)
    var = s2 * (kss - np.einsum("ij,ji->i", k, np.linalg.solve(A, k.T)))
    np.testing.assert_allclose(g.variance(), var, atol=1e-10)
    # at T = 0 the mean does not depend on σ_a² and the variance is proportional to it
    g1, g2 = gp_baseline(task, "relu", sigma_a2=1.0), gp_baseline(task, "relu", sigma_a2=0.25)
    np.testing.assert_allclose(g1.mean(), g2.mean(), atol=1e-12)
    np.testing.assert_allclose(g2.variance(), 0.25 * g1.variance(), rtol=1e-10, atol=1e-14)


def test_generalization_error_bias_plus_variance():
    task = linear_task(seed=3)
    g = gp_baseline(task, "erf", T=0.01)
    eps = g.generalization_error()
    assert eps.shape == (task.m,)
    expect = np.mean((task.Y_test - g.mean()) ** 2, axis=0) + np.mean(g.variance())
    np.testing.assert_allclose(eps, expect, rtol=1e-12)
    np.testing.assert_allclose(g.generalization_error(task.X_test, task.Y_test), eps, rtol=1e-12)
    bias2, var = g.bias_variance()
    np.testing.assert_allclose(bias2 + var, eps, rtol=1e-12)


def test_singular_kernel_uses_pseudo_inverse():
    # P > N0 linear: K0 has rank N0; the T = 0 GP still returns finite predictions
    task = linear_task(P=40, N0=10, seed=4)
    g = gp_baseline(task, "linear")
    assert g.info["pinv"] and g.info["rank"] == 10
    assert np.all(np.isfinite(g.mean())) and np.all(g.variance() >= 0)


def test_bad_inputs():
    task = linear_task(seed=5)
    with pytest.raises(ValueError, match="T"):
        gp_baseline(task, "erf", T=-1.0)
    with pytest.raises(ValueError, match="sigma_a2"):
        gp_baseline(task, "erf", sigma_a2=0.0)
    with pytest.raises(TypeError, match="task"):
        gp_baseline(task.X, "erf")
    with pytest.raises(ValueError, match="name"):
        gp_baseline(task, "nonsense")
    g = gp_baseline(task, "relu")
    with pytest.raises(ValueError, match="X"):
        g.mean(np.ones((task.N0 + 1, 3)))
    with pytest.raises(ValueError, match="X2"):
        g.kernel(task.X, np.ones((3, 3)))
    with pytest.raises(ValueError, match="Y"):
        g.generalization_error(task.X_test, np.ones((task.X_test.shape[1], task.m + 1)))
    with pytest.raises(ValueError, match="X and Y"):
        g.generalization_error(task.X_test)
    with pytest.raises(ValueError, match="a and b"):
        gaussian_product_moment("erf", -1.0, 1.0, 0.0)
    no_test = mf.Task(X=task.X, Y=task.Y)
    with pytest.raises(ValueError, match="X is required"):
        gp_baseline(no_test, "relu").generalization_error()


def test_linear_mean_field_equals_gp_on_rank_deficient_digits():
    # issue 5 acc. 2: digits 0/1/2, P = 100 > N0 = 64 (K0 has rank 50). The non-lazy linear theory is solved
    # exactly on range(K0) (meanfield.theory.linear_range); at T = 0 its mean predictor is the GP mean
    # k0ᵀK0⁺Y to 1e-8, so the class-wise errors differ by the GP variance alone (the mean-field predictor's
    # posterior variance is O(1/N)).
    task = mf.datasets.digits(classes=(0, 1, 2), P=100, P_test=400, seed=0)
    sol = mf.solve(task, "linear", T=0.0)
    g = gp_baseline(task, "linear", T=0.0)
    assert sol.converged and sol.info["rank"] == g.info["rank"] == 50
    f = sol.predict(task.X_test)
    np.testing.assert_allclose(f, g.mean(), rtol=0, atol=1e-8)
    bias2, var = g.bias_variance()
    eps_nonlazy = np.mean((task.Y_test - f) ** 2, axis=0)
    # difference of errors = GP variance (1.5e-5 at σ_a² = 1/P); the means agree to ~1e-12, so the
    # bias² terms cancel to ~1e-13, i.e. ≤ 1e-6 of the variance
    np.testing.assert_allclose(g.generalization_error() - eps_nonlazy, var, rtol=1e-6)
    assert var > 1e-6                                      # the difference is not trivially zero
    # training inputs: the fitted outputs are the projection of Y on range(K0), the rest is unfittable
    np.testing.assert_allclose(sol.train_prediction + sol.info["unfittable"], task.Y, atol=1e-10)
    np.testing.assert_allclose(sol.train_prediction, g.mean(task.X), atol=1e-8)


def test_range_reduction_is_exact_at_finite_T():
    # the reduction to range(K0) leaves the posterior unchanged: at T > 0 the reduced solve lifted back
    # agrees with the direct one-layer solve on the singular K0 (U, field, kernels, predictor)
    from meanfield.theory.linear import solve_one_layer
    task = linear_task(P=40, N0=10, seed=6)
    T, s2 = 0.05, 0.4
    sol = mf.solve(task, "linear", T=T, sigma_a2=s2)
    assert sol.converged and sol.info["rank"] == 10
    U, t, *_ = solve_one_layer(task.K0, task.Y, T, s2, 1.0, 0.0, "general", 1e-12, 5000)
    np.testing.assert_allclose(sol.U, U, rtol=1e-8)
    np.testing.assert_allclose(sol.field, t, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(sol.train_prediction, task.Y - T * t, atol=1e-8)
    k0 = task.input_kernel(task.X, task.X_test)
    np.testing.assert_allclose(sol.predict(task.X_test), k0.T @ np.linalg.pinv(task.K0, rcond=1e-12) @ (task.Y - T * t),
                               atol=1e-8)
