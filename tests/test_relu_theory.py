"""ReLU theory on the toy task (THEORY.md §2.3; docs/theory_relu.md).

Every check recomputes something independently of the solver: the tilted integrals from
their closed forms (scipy's ndtr, not meanfield.integrators), the stability maximum of Q by
constrained optimization on the sphere, stationarity by finite differences of the free
energies, and the field equation (S2) as stationarity of the saddle-point action in t.
"""
import numpy as np
import pytest
from scipy import optimize
from scipy.special import ndtr

import meanfield as mf
from meanfield.theory.relu import solve_relu

SQ2PI = np.sqrt(2.0 * np.pi)


# --- independent closed forms for ∫Dz e^{h relu(z)} ------------------------------------------------------
def Zh(h):
    return 0.5 + np.exp(0.5 * h * h) * ndtr(h)


def g(h):
    return np.log(Zh(h))


def g1(h):
    return (h * np.exp(0.5 * h * h) * ndtr(h) + 1.0 / SQ2PI) / Zh(h)


def g2_plus_g1sq(h):        # ⟨relu(z)²⟩_h = e^{h²/2}[(1 + h²)Φ(h) + hφ(h)] / Z
    return (np.exp(0.5 * h * h) * (1 + h * h) * ndtr(h) + h / SQ2PI) / Zh(h)


def F(a, t, rho):
    return -a @ a / 2 + rho @ g(t @ a)


def Q(A, t, rho):
    A = np.atleast_2d(A)
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    return (np.maximum(A @ t.T, 0) ** 2) @ rho


def outlier_energy(abar, zc, t, rho):
    """Exponent per NP of the outlier's joint (a, z) weight at a = √N ā, z_μ = √N z̄_c (s = 1)."""
    return -abar @ abar / 2 + rho @ (-zc ** 2 / 2 + (t @ abar) * np.maximum(zc, 0))


def parts(sol):
    i = sol.info
    return i["t_class"], i["a0"], sol.outliers["a_bar"], sol.outliers["z_bar_class"], i["rho"], i["Y_class"]


@pytest.fixture(scope="module")
def paper():
    return mf.toy_task(200, 220, ratios=(0.5, 0.25, 0.25), y_plus=1.0, y_minus=-0.5, P_test=12)


@pytest.fixture(scope="module")
def sol0(paper):
    return solve_relu(paper, T=0.0)


@pytest.fixture(scope="module")
def sol1(paper):
    return solve_relu(paper, T=0.01)


# --- the paper's case --------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["sol0", "sol1"])
def test_paper_case_has_three_single_class_outliers(which, request):
    sol = request.getfixturevalue(which)
    assert sol.converged, sol.message
    t, a0, abar, zc, rho, Yc = parts(sol)
    assert sol.outliers["codes"] == ((1, 0, 0), (0, 1, 0), (0, 0, 1))
    for i in range(3):
        others = np.arange(3) != i
        assert abar[i, i] > 0 and np.all(abar[i, others] < 0)            # readout + on the coded class, − else
        assert zc[i, i] > 0.5 and np.all(zc[i, others] == 0)             # frozen activation on its class only
        np.testing.assert_allclose(abar[i] @ t[others].T, np.minimum(abar[i] @ t[others].T, 0))
    # the single-class structure of THEORY.md §2.3: ā_i ∥ t_i, ρ_i |t_i|² = 1
    for i in range(3):
        np.testing.assert_allclose(np.cross(abar[i], t[i]), 0, atol=1e-12)
        assert rho[i] * t[i] @ t[i] == pytest.approx(1.0, abs=1e-12)
    # every other scheme (one class left to the bulk) is a root of the equations but an unstable bulk
    others = [d for d in sol.info["schemes"] if len(d["codes"]) == 2]
    assert len(others) == 3 and all(not d["valid"] and d["Q_max"] > 1.19 for d in others)


def test_max_q_is_one_globally(sol0, sol1):
    """max over unit â of Q = Σ ρ_c relu(t_c·â)², by SLSQP on the sphere from 100 random starts."""
    for sol in (sol0, sol1):
        t, _, abar, _, rho, _ = parts(sol)
        rng = np.random.default_rng(7)
        best = 0.0
        for x0 in rng.standard_normal((100, 3)):
            r = optimize.minimize(lambda x: -Q(x, t, rho)[0], x0 / np.linalg.norm(x0), method="SLSQP",
                                  constraints=[dict(type="eq", fun=lambda x: x @ x - 1)], options=dict(ftol=1e-14))
            best = max(best, -r.fun)
        best = max(best, Q(rng.standard_normal((20000, 3)), t, rho).max())
        assert best <= 1 + 1e-8
        np.testing.assert_allclose(Q(abar, t, rho), 1.0, atol=1e-8)      # the maximum sits on the outliers
        assert abs(sol.info["Q_max"] - 1) < 1e-8


@pytest.mark.parametrize("which", ["sol0", "sol1"])
def test_field_equation_s2(which, request):
    sol = request.getfixturevalue(which)
    t, a0, abar, zc, rho, Yc = parts(sol)
    out = np.outer(g1(t @ a0), a0) + np.maximum(t @ abar.T, 0) @ abar
    np.testing.assert_allclose(Yc - sol.T * t, out, atol=1e-10, rtol=0)
    np.testing.assert_allclose(sol.train_prediction, out[sol.task.labels], atol=1e-10, rtol=0)
    assert sol.residual < 1e-10


def test_bulk_is_small_and_largely_task_agnostic(sol0):
    t, a0, abar, zc, rho, Yc = parts(sol0)
    # On the √N-scaled outlier readouts the bulk is 5.0–5.7× smaller (measured |a0| = 0.158,
    # |ā_i| = 0.90, 0.79, 0.79); the raw outlier readouts √N ā are ≥ 10× larger already at N = 4
    # and ≈ 70× at N = 200 (the sampler's scale).
    assert np.linalg.norm(a0) < 0.2 * np.linalg.norm(abar, axis=1).min()
    assert np.sqrt(200) * np.linalg.norm(abar, axis=1).min() > 50 * np.linalg.norm(a0)
    # the bulk's share of every training output is an order of magnitude below the target (measured 6.3 %)
    share = np.linalg.norm(np.outer(g1(t @ a0), a0), axis=1) / np.linalg.norm(Yc, axis=1)
    assert share.max() < 0.1


# --- T > 0 ------------------------------------------------------------------------------------------------
def test_temperature_dependence_and_continuity(paper, sol0, sol1):
    """With every class coded by an outlier, t and a0 do not depend on T and |ā_i|² = |ā_i(0)|² − T."""
    t0, a00, ab0, *_ = parts(sol0)
    t1, a01, ab1, *_ = parts(sol1)
    np.testing.assert_allclose(t1, t0, atol=1e-10)
    np.testing.assert_allclose(a01, a00, atol=1e-10)
    np.testing.assert_allclose((ab1 ** 2).sum(1) - (ab0 ** 2).sum(1), -0.01, atol=1e-10)
    for T in (1e-4, 1e-6):
        solT = solve_relu(paper, T=T, n_directions=200)
        assert solT.converged
        assert np.max(np.abs(solT.outliers["a_bar"] - ab0)) < T          # |dā/dT| ≈ 0.6
        np.testing.assert_allclose(solT.train_prediction, paper.Y - T * solT.field, atol=1e-12)


# --- stationarity by finite differences -------------------------------------------------------------------
def fd_grad(f, x, h=1e-5):
    e = np.eye(x.size)
    return np.array([(f(x + h * e[k]) - f(x - h * e[k])) / (2 * h) for k in range(x.size)])


@pytest.mark.parametrize("which", ["sol0", "sol1"])
def test_bulk_is_the_maximum_of_F(which, request):
    sol = request.getfixturevalue(which)
    t, a0, _, _, rho, _ = parts(sol)
    np.testing.assert_allclose(fd_grad(lambda a: F(a, t, rho), a0), 0, atol=1e-9)
    r = optimize.minimize(lambda a: -F(a, t, rho), np.zeros(3), method="Nelder-Mead",
                          options=dict(xatol=1e-12, fatol=1e-16, maxiter=20000))
    np.testing.assert_allclose(r.x, a0, atol=1e-6)
    assert F(a0, t, rho) > F(5 * abar_dir(sol), t, rho)                   # above the outlier asymptote


def abar_dir(sol):
    ab = sol.outliers["a_bar"][0]
    return ab / np.linalg.norm(ab)


@pytest.mark.parametrize("which", ["sol0", "sol1"])
def test_outliers_are_marginal_stationary_points(which, request):
    sol = request.getfixturevalue(which)
    t, _, abar, zc, rho, _ = parts(sol)
    for i in range(abar.shape[0]):
        assert outlier_energy(abar[i], zc[i], t, rho) == pytest.approx(0.0, abs=1e-12)     # marginal
        np.testing.assert_allclose(fd_grad(lambda a: outlier_energy(a, zc[i], t, rho), abar[i]), 0, atol=1e-9)
        on = zc[i] > 0
        grad_z = fd_grad(lambda z: outlier_energy(abar[i], z, t, rho), zc[i], h=1e-6)
        np.testing.assert_allclose(grad_z[on], 0, atol=1e-8)
        for c in np.flatnonzero(~on):                                      # kink at 0: a maximum from both sides
            for dz in (1e-4, -1e-4):
                z = zc[i].copy()
                z[c] += dz
                assert outlier_energy(abar[i], z, t, rho) < 0


def test_s2_is_stationarity_of_the_action_in_t(sol1):
    """∂/∂t_c of Φ(t) = (T/2)Σρ|t_c|² − Σρ t_c·Y_c + max_a F(a; t) + Σ_i E_i(ā_i, z̄_i; t) vanishes.

    max_a F is recomputed by BFGS for every perturbed t (envelope theorem for the bulk), the
    outliers are held at their stationary (ā, z̄).
    """
    t, a0, abar, zc, rho, Yc = parts(sol1)
    T = sol1.T

    def action(x):
        tt = x.reshape(3, 3)
        r = optimize.minimize(lambda a: -F(a, tt, rho), a0, method="BFGS", options=dict(gtol=1e-13))
        outl = sum(outlier_energy(abar[i], zc[i], tt, rho) for i in range(3))
        return T / 2 * rho @ (tt ** 2).sum(1) - rho @ (tt * Yc).sum(1) - r.fun + outl

    np.testing.assert_allclose(fd_grad(action, t.ravel(), h=1e-5), 0, atol=1e-7)


# --- kernels, predictor, conditional ----------------------------------------------------------------------
def test_kernel_predictor_and_conditional(paper, sol1):
    t, a0, abar, zc, rho, Yc = parts(sol1)
    lab = paper.labels
    h = t @ a0
    K1 = sol1.kernels[1]
    mu, nu = np.flatnonzero(lab == 1)[:2]
    np.testing.assert_allclose(K1[mu, nu], g1(h[1]) ** 2 + zc[1, 1] ** 2, rtol=1e-12)
    np.testing.assert_allclose(K1[mu, mu], g2_plus_g1sq(h[1]) + zc[1, 1] ** 2, rtol=1e-10)
    lam = np.flatnonzero(lab == 0)[0]
    np.testing.assert_allclose(K1[mu, lam], g1(h[1]) * g1(h[0]), rtol=1e-12)
    np.testing.assert_allclose(sol1.kernels[0], np.eye(paper.P), atol=1e-12)
    # training inputs: the mean predictor is Y − T t; fresh orthogonal inputs: only the bulk, E relu(N(0,1))
    np.testing.assert_allclose(sol1.predict(paper.X), sol1.train_prediction, atol=1e-10)
    np.testing.assert_allclose(sol1.predict(paper.X_test), np.tile(a0 / SQ2PI, (12, 1)), atol=1e-12)
    # conditional of the bulk: ⟨z⟩ = h e^{h²/2}Φ(h) / Z
    mean, cov = sol1.conditional(a0)
    np.testing.assert_allclose(mean, (h * np.exp(h * h / 2) * ndtr(h) / Zh(h))[lab], rtol=1e-10)
    assert cov.shape == (paper.P, paper.P) and np.all(np.diag(cov) > 0)
    assert sol1.outliers["z_bar"].shape == (3, paper.P) and sol1.readouts.shape == (1, 3)
    np.testing.assert_allclose(sol1.outliers["z_bar"], zc[:, lab])


# --- bulk with task information: m − 1 outliers -----------------------------------------------------------
def test_m_minus_one_outliers_when_the_bulk_codes_the_majority_class():
    """ρ = [0.8, 0.1, 0.1], y₊ = 0.2, y₋ = −0.1: the bulk fits class 0 alone, two outliers code 1 and 2."""
    task = mf.toy_task(100, 100, ratios=(0.8, 0.1, 0.1), y_plus=0.2, y_minus=-0.1)
    sol = solve_relu(task, T=0.0)
    assert sol.converged, sol.message
    t, a0, abar, zc, rho, Yc = parts(sol)
    assert sol.outliers["codes"] == ((0, 1, 0), (0, 0, 1))
    np.testing.assert_allclose(g1(t[0] @ a0) * a0, Yc[0], atol=1e-10)          # bulk alone fits class 0
    act = g1(t @ a0)
    assert act[0] > 2.5 * act[1] and act[1] == pytest.approx(act[2], rel=1e-10)  # measured 0.587 vs 0.192
    assert rho[0] * t[0] @ t[0] < 0.95                                          # class 0 is not marginal
    assert max(Q(np.random.default_rng(0).standard_normal((20000, 3)), t, rho)) <= 1 + 1e-8
    full = [d for d in sol.info["schemes"] if len(d["codes"]) == 3][0]
    assert not full["valid"]                  # no root with a class-0 outlier (it vanishes at y₊ = 0.283)
    # above y₊ ≈ 0.283 (y₋ = −y₊/2) the class-0 outlier reappears
    above = solve_relu(mf.toy_task(100, 100, ratios=(0.8, 0.1, 0.1), y_plus=0.35, y_minus=-0.175),
                       n_directions=200)
    assert above.converged and above.outliers["codes"] == ((1, 0, 0), (0, 1, 0), (0, 0, 1))


@pytest.mark.parametrize("T, codes", [(0.7, ((1, 0, 0),)), (1.0, ())])
def test_outliers_disappear_at_their_temperatures(paper, sol0, T, codes):
    """Outlier c vanishes at T_c = |ā_c(0)|² (0.626 for classes 1, 2; 0.812 for class 0); the bulk takes over."""
    Tc = (sol0.outliers["a_bar"] ** 2).sum(1)
    assert Tc[1] < 0.7 < Tc[0] < 1.0
    sol = solve_relu(paper, T=T, n_directions=200)
    assert sol.converged and sol.outliers["codes"] == codes
    t, a0, abar, zc, rho, Yc = parts(sol)
    out = np.outer(g1(t @ a0), a0) + np.maximum(t @ abar.T, 0) @ abar
    np.testing.assert_allclose(Yc - T * t, out, atol=1e-10, rtol=0)
    assert sol.info["Q_max"] <= 1 + 1e-8


def test_unstable_scheme_is_flagged(paper):
    sol = solve_relu(paper, codes=[(0, 1, 0), (0, 0, 1)], n_directions=200)
    assert not sol.converged
    assert "bulk unstable" in sol.message and sol.info["Q_max"] == pytest.approx(1.19386, abs=1e-4)


# --- bad input --------------------------------------------------------------------------------------------
def test_bad_input(paper):
    with pytest.raises(TypeError, match="task"):
        solve_relu("toy")
    with pytest.raises(NotImplementedError, match="depth"):
        solve_relu(paper, depth=2)
    with pytest.raises(ValueError, match="T"):
        solve_relu(paper, T=-0.1)
    with pytest.raises(ValueError, match="codes"):
        solve_relu(paper, codes=[(1, 0)])
    with pytest.raises(ValueError, match="codes"):
        solve_relu(paper, codes=[(0, 0, 0)])
    with pytest.raises(TypeError, match="sigma_a2"):
        solve_relu(paper, sigma_a2="big")
    with pytest.raises(TypeError, match="finite_P"):
        solve_relu(paper, finite_P="yes")
    rng = np.random.default_rng(0)
    general = mf.Task(X=rng.standard_normal((50, 30)), Y=np.eye(3)[rng.integers(0, 3, 30)])
    with pytest.raises(ValueError, match="T must be > 0"):       # general data: outlier theory needs T > 0
        solve_relu(general)
    with pytest.raises(ValueError, match="codes"):
        solve_relu(general, T=0.05, codes=[(1, 0, 0)])
    with pytest.raises(ValueError, match="X_new"):
        solve_relu(paper, n_directions=50).predict(np.ones((3, 2)))


def test_dispatch_through_solve(paper, sol0):
    sol = mf.solve(paper, "relu", T=0.0)
    assert sol.converged and sol.nonlinearity == "relu"
    np.testing.assert_allclose(sol.outliers["a_bar"], sol0.outliers["a_bar"], atol=1e-12)
