"""Sigmoid (erf) theory on the toy task (THEORY.md §2.2, §4; docs/theory_erf.md).

Independent references: the tilted integral g(h) = log ∫Dz e^{hφ(z)} by a fine trapezoid rule
(not meanfield.integrators), stationarity and the Laplace curvature by finite differences of F,
the global-maximum check by scipy BFGS from random starts, the field equation (S2) recomputed
from the returned t, a_γ, P_γ, the equilibrium as the minimum of the convex dual S(t)
(docs/theory_erf.md §3), and the saturated limit in a two-class case solved by hand.
"""
import numpy as np
import pytest
from scipy import optimize
from scipy.special import ndtr

import meanfield as mf
from meanfield.theory import erf_schemes as sch
from meanfield.theory import erf_toy as toy
from meanfield.theory.erf import solve_erf

KAPPA = np.sqrt(np.pi / 2)
ZG = np.linspace(-16.0, 16.0, 8001)
DZ = ZG[1] - ZG[0]
PHI = ndtr(KAPPA * ZG)
PAPER_CODES = {(1, 1, 0), (0, 1, 1), (1, 0, 1), (1, 1, 1)}


def g_ref(h):
    """log ∫Dz e^{hφ(z)}, ⟨φ⟩_h by the trapezoid rule on [−16, 16] (spectrally accurate here)."""
    h = np.atleast_1d(np.asarray(h, dtype=float))
    L = -0.5 * ZG ** 2 + h[..., None] * PHI
    mx = L.max(-1, keepdims=True)
    w = np.exp(L - mx)
    Z = w.sum(-1) * DZ
    return (np.log(Z) + mx[..., 0] - 0.5 * np.log(2 * np.pi)), (w * PHI).sum(-1) * DZ / Z


def F_ref(a, t, rho, s=1.0):
    return -a @ a / (2 * s) + rho @ g_ref(t @ a)[0]


def fd_grad(f, x, eps=1e-5):
    return np.array([(f(x + e) - f(x - e)) / (2 * eps) for e in eps * np.eye(x.size)])


def fd_hess(f, x, eps=1e-4):
    return np.array([(fd_grad(f, x + e) - fd_grad(f, x - e)) / (2 * eps) for e in eps * np.eye(x.size)])


def s2_residual(sol):
    """max |Y_c − T t_c − Σ_γ P_γ ⟨φ⟩_{h_cγ} a_γ| with the reference integrals."""
    i = sol.info
    t, A, P = i["t_class"], sol.readouts, sol.code_fractions
    g1 = g_ref(A @ t.T)[1]
    return np.max(np.abs(i["Y_class"] - sol.T * t - np.einsum("g,gc,gj->cj", P, g1, A)))


def codeset(sol):
    return set(map(tuple, sol.codes))


@pytest.fixture(scope="module")
def task():
    return mf.toy_task(500, 520, ratios=(0.5, 0.25, 0.25), y_plus=1.0, y_minus=0.5, P_test=6)


@pytest.fixture(scope="module")
def eq0(task):
    return solve_erf(task, T=0.0, finite_P=False)


@pytest.fixture(scope="module")
def eq01(task):
    return solve_erf(task, T=0.01, finite_P=False)


@pytest.fixture(scope="module")
def lap01(task):
    return solve_erf(task, T=0.01, finite_P=True)


def test_paper_scheme_T0(eq0):
    """Codes 1-1-0, 0-1-1, 1-0-1 (≈ 0.32, 0.33, 0.32) and 1-1-1 = 0.0376 at T = 0, P → ∞."""
    assert eq0.converged, eq0.message
    assert eq0.residual < 1e-8
    assert codeset(eq0) == PAPER_CODES
    P = dict(zip(eq0.codes, eq0.code_fractions))
    assert 0 < P[(1, 1, 1)] < 0.1
    for c in [(1, 1, 0), (0, 1, 1), (1, 0, 1)]:
        assert abs(P[c] - 0.3) < 0.04
    np.testing.assert_allclose([P[(0, 1, 1)], P[(1, 0, 1)], P[(1, 1, 0)], P[(1, 1, 1)]],
                               [0.331569, 0.315429, 0.315429, 0.037572], atol=2e-6)
    assert abs(sum(P.values()) - 1) < 1e-12
    # readouts positive on the coded classes, negative elsewhere (paper Fig. 2a) — 1-1-1 all positive
    for c, a in zip(eq0.codes, eq0.readouts):
        assert np.all((a > 0) == np.array(c, bool))


def test_s2_and_stationarity_independent(eq0, eq01, lap01):
    """(S2) to 1e-8 and ∇F(a_γ) = 0 (finite differences of F with reference integrals)."""
    for sol in (eq0, eq01, lap01):
        assert s2_residual(sol) < 1e-8
        t, rho = sol.info["t_class"], sol.info["rho"]
        for a in sol.readouts:
            grad = fd_grad(lambda x: F_ref(x, t, rho), a)
            assert np.max(np.abs(grad)) < 1e-7
            assert np.linalg.eigvalsh(fd_hess(lambda x: F_ref(x, t, rho), a)).max() < -0.1


def test_degenerate_global_maxima(eq0, eq01):
    """|F_γ − F_γ'| < 1e-8, and scipy BFGS from 60 random starts finds nothing higher."""
    rng = np.random.default_rng(7)
    for sol in (eq0, eq01):
        t, rho = sol.info["t_class"], sol.info["rho"]
        Fg = np.array([F_ref(a, t, rho) for a in sol.readouts])
        assert np.ptp(Fg) < 1e-8
        best = -np.inf
        for _ in range(60):
            x0 = rng.standard_normal(3) * rng.uniform(0, 3)
            r = optimize.minimize(lambda a: -F_ref(a, t, rho), x0, method="BFGS")
            best = max(best, -r.fun)
        assert best < Fg.max() + 1e-8
        assert sol.info["validation"]["F_best"] < Fg.max() + 1e-9


def test_equilibrium_minimizes_convex_dual(eq01):
    """S(t) = (T/2)Σρ|t_c|² − Σρ t_c·Y_c + max_a F(a; t) is convex in t; t* must be its minimum."""
    i = eq01.info
    t0, rho, Y, T = i["t_class"], i["rho"], i["Y_class"], eq01.T

    def S(t):
        best = max(-optimize.minimize(lambda a: -F_ref(a, t, rho), a0, method="BFGS").fun for a0 in eq01.readouts)
        return 0.5 * T * rho @ np.sum(t * t, 1) - np.sum(rho[:, None] * t * Y) + best

    S0 = S(t0)
    rng = np.random.default_rng(3)
    for _ in range(8):
        d = rng.standard_normal(t0.shape)
        assert S(t0 + 1e-3 * d / np.linalg.norm(d)) > S0 - 1e-10


def test_saturated_limit_closed_form():
    """Two classes, ρ = (½, ½), Y = [[1, y], [y, 1]], step-function φ (docs/theory_erf.md §5).

    y ≤ √3 − 2: codes 1-0, 0-1 with P = ½, t_1 = 4(1, y). Above: plus 1-1 with
    q = (y − r)/((y − r) + 2(1 + r)(1 − y)), r = √3 − 2, and t_1 = u(1, r), u = 2/(p + q(1 + r)).
    """
    r = np.sqrt(3) - 2
    for y in (-0.5, 0.0, 0.4):
        prob = toy.toy_problem([0.5, 0.5], [[1, y], [y, 1]], 1.0, 100)
        t, C, P, A = toy.saturated_dual(prob, 0.0)
        got = {tuple(c): p for c, p in zip(C, P)}
        if y <= r:
            assert set(got) == {(1, 0), (0, 1)}
            np.testing.assert_allclose(t[0], [4, 4 * y], atol=1e-6)
            np.testing.assert_allclose(got[(1, 0)], 0.5, atol=1e-6)
        else:
            q = (y - r) / ((y - r) + 2 * (1 + r) * (1 - y))
            p = (1 - q) / 2
            u = 2 / (p + q * (1 + r))
            assert set(got) == {(1, 0), (0, 1), (1, 1)}
            np.testing.assert_allclose(got[(1, 1)], q, atol=1e-6)
            np.testing.assert_allclose(t[0], [u, u * r], atol=1e-5)


def test_fixed_fractions(task, eq01):
    """Frozen state: (S2) to 1e-8 with the given fractions; the equilibrium fractions give back the equilibrium."""
    frac = {(1, 1, 0): 0.27, (0, 1, 1): 0.27, (1, 0, 1): 0.27, (1, 1, 1): 0.19}    # THEORY.md §5 frozen state
    sol = solve_erf(task, T=0.01, code_fractions=frac)
    assert sol.converged, sol.message
    assert s2_residual(sol) < 1e-8
    assert np.ptp(sol.info["F"]) > 1e-4                       # degeneracy dropped
    assert dict(zip(sol.codes, sol.code_fractions)) == pytest.approx(frac, abs=1e-15)
    eqf = {c: p for c, p in zip(eq01.codes, eq01.code_fractions)}
    back = solve_erf(task, T=0.01, code_fractions=eqf)
    assert back.converged, back.message
    np.testing.assert_allclose(back.info["t_class"], eq01.info["t_class"], atol=1e-7)
    order = [back.codes.index(c) for c in eq01.codes]
    np.testing.assert_allclose(back.readouts[order], eq01.readouts, atol=1e-7)


def test_fixed_fractions_unsolvable_is_flagged(task):
    """One code cannot interpolate full-rank targets at T = 0: converged=False, never silent."""
    sol = solve_erf(task, T=0.0, code_fractions={(1, 1, 1): 1.0})
    assert not sol.converged
    assert "NOT solved" in sol.message
    # past a fold the 1-0-1 / 1-1-1 maxima do not both exist: flagged, with the culprit named
    sol = solve_erf(task, T=0.01, code_fractions={(1, 1, 0): 0.3, (0, 1, 1): 0.3, (1, 0, 1): 0.2, (1, 1, 1): 0.2})
    assert not sol.converged and "not a local maximum of F for code(s)" in sol.message


def test_finite_P_laplace_weights(lap01, eq01):
    """P_γ ∝ exp(P F_γ) det(−∇²F_γ)^(−1/2) (FD Hessian), and the 1-1-1 share at T = 0.01, P = 500."""
    t, rho = lap01.info["t_class"], lap01.info["rho"]
    Pn = lap01.task.P
    logw = []
    for a in lap01.readouts:
        Hs = fd_hess(lambda x: F_ref(x, t, rho), a)
        logw.append(Pn * F_ref(a, t, rho) - 0.5 * np.linalg.slogdet(-Hs)[1])
    w = np.exp(np.array(logw) - max(logw))
    np.testing.assert_allclose(lap01.code_fractions, w / w.sum(), atol=1e-6)
    assert codeset(lap01) == PAPER_CODES
    P = dict(zip(lap01.codes, lap01.code_fractions))
    Pe = dict(zip(eq01.codes, eq01.code_fractions))
    np.testing.assert_allclose(P[(1, 1, 1)], 0.09245, atol=2e-4)
    np.testing.assert_allclose(Pe[(1, 1, 1)], 0.08887, atol=2e-4)
    cov = lap01.info["readout_covariances"]
    ref = np.linalg.inv(-Pn * fd_hess(lambda x: F_ref(x, t, rho), lap01.readouts[0]))
    np.testing.assert_allclose(cov[0], ref, atol=1e-5 * np.abs(ref).max())    # nested-FD Hessian: ~1e-7 relative


def test_laplace_tends_to_equilibrium(eq01):
    """With P → ∞ (P = 1e7) the Laplace fractions approach the degenerate ones (differences O(1/P))."""
    i = eq01.info
    prob = toy.toy_problem(i["rho"], i["Y_class"], 1.0, 10 ** 7)
    start = sch.Scheme(np.array(eq01.codes), i["t_class"], eq01.readouts, eq01.code_fractions)
    lap = sch.active_set(prob, 0.01, start, "laplace", n_starts=32)
    np.testing.assert_allclose(lap.P, eq01.code_fractions, atol=1e-5)


def test_jacobians_match_finite_differences(eq01):
    i = eq01.info
    prob = toy.toy_problem(i["rho"], i["Y_class"], 1.0, 500)
    n = len(eq01.codes)
    for mode in sch.MODES:
        x = sch._pack(i["t_class"] * 1.05, eq01.readouts * 0.95, eq01.code_fractions + 0.01, mode)
        r, J = sch.residuals(x, prob, 0.01, n, mode, P_fixed=eq01.code_fractions, jac=True)
        f = lambda x: sch.residuals(x, prob, 0.01, n, mode, P_fixed=eq01.code_fractions)
        Jn = np.array([(f(x + e) - f(x - e)) / 2e-6 for e in 1e-6 * np.eye(x.size)]).T
        assert np.max(np.abs(J - Jn)) < 1e-6 * max(1, np.abs(J).max())


def test_kernel_predict_conditional(task, eq01):
    sol = eq01
    K1 = sol.kernels[1]
    cls = sol.info["classes"]
    assert np.allclose(K1, K1.T) and np.linalg.eigvalsh(K1).min() > -1e-10
    # diagonal: Σ_γ P_γ ⟨φ²⟩ with the reference rule
    H = sol.info["fields"]
    phi2 = np.array([[np.sum(np.exp(-0.5 * ZG ** 2 + h * PHI - g_ref(h)[0]) * PHI ** 2) * DZ / np.sqrt(2 * np.pi)
                      for h in row] for row in H])
    np.testing.assert_allclose(np.diag(K1), (sol.code_fractions @ phi2)[cls], atol=1e-9)
    # mean predictor on the training inputs is Y − T t (S2); on orthogonal inputs Σ P_γ a_γ / 2
    np.testing.assert_allclose(sol.predict(task.X[:, :20]), sol.train_prediction[:20], atol=1e-8)
    np.testing.assert_allclose(sol.predict(task.X_test), np.tile(0.5 * sol.code_fractions @ sol.readouts, (6, 1)),
                               atol=1e-12)
    # per-code conditional densities are normalized, with the reported means
    z, dens = sol.conditional_density(0)
    np.testing.assert_array_equal(sol.conditional_density(sol.codes[0], z[:5])[1], dens[:, :5])
    with pytest.raises(ValueError, match="code"):
        sol.conditional_density((0, 0, 1))
    for c in range(3):
        assert abs(np.trapezoid(dens[c], z) - 1) < 1e-6
        assert abs(np.trapezoid(z * dens[c], z) - sol.info["conditionals"]["z_mean"][0, c]) < 1e-6
    mean, cov = sol.conditional(sol.readouts[0])
    np.testing.assert_allclose(mean, sol.info["conditionals"]["z_mean"][0][cls])


def test_all_schemes_ranked(task):
    sols = solve_erf(task, all_schemes=True, finite_P=False)
    assert codeset(sols[0]) == PAPER_CODES and sols[0].converged
    others = sols[1:]
    assert {frozenset(codeset(s)) for s in others} == {frozenset({(1, 1, 0), (0, 1, 1), (1, 0, 1)})}
    assert not others[0].converged and "not an equilibrium" in others[0].message
    assert sols[0].info["dual"] < others[0].info["dual"]


def test_y_minus_continuation(eq0):
    """Continuation in y₋ from ½ reaches the same (unique) equilibrium as a direct solve."""
    task = mf.toy_task(500, 520, y_minus=0.45)
    direct = solve_erf(task, finite_P=False)
    cont = solve_erf(task, finite_P=False, y_minus=0.5)
    assert cont.converged and codeset(cont) == codeset(direct)
    np.testing.assert_allclose(cont.info["t_class"], direct.info["t_class"], atol=1e-7)


def test_dispatch_and_bad_input(task):
    sol = mf.solve(task, "erf", T=0.0, finite_P=False)
    assert sol.converged and codeset(sol) == PAPER_CODES
    with pytest.raises(TypeError, match="task"):
        solve_erf("task")
    with pytest.raises(NotImplementedError, match="depth"):
        solve_erf(task, depth=2)
    general = mf.Task(X=np.random.default_rng(0).standard_normal((20, 30)), Y=task.Y[:30])
    with pytest.raises(ValueError, match="T must be > 0"):
        solve_erf(general)                       # general data: the fluctuation-neglecting theory needs T > 0
    with pytest.raises(NotImplementedError, match="general data"):
        solve_erf(general, T=0.01, all_schemes=True)
    with pytest.raises(ValueError, match="T"):
        solve_erf(task, T=-1.0)
    with pytest.raises(ValueError, match="sigma_a2"):
        solve_erf(task, sigma_a2=0.0)
    with pytest.raises(ValueError, match="code_fractions"):
        solve_erf(task, code_fractions={(1, 1): 1.0})
    with pytest.raises(ValueError, match="code_fractions"):
        solve_erf(task, code_fractions={(1, 1, 0): 0.5, (0, 1, 1): 0.4})
    with pytest.raises(ValueError, match="code_fractions"):
        solve_erf(task, code_fractions={(0, 0, 0): 1.0})
    with pytest.raises(TypeError, match="code_fractions"):
        solve_erf(task, code_fractions=[(1, 1, 0)])
    with pytest.raises(TypeError, match="finite_P"):
        solve_erf(task, finite_P="yes")
    with pytest.raises(TypeError, match="all_schemes"):
        solve_erf(task, all_schemes=1)
    odd = mf.Task(X=task.X, Y=task.Y * np.where(task.labels == 0, 2.0, 1.0)[:, None], labels=task.labels)
    with pytest.raises(ValueError, match="y_minus"):
        solve_erf(odd, y_minus=0.4)
