"""Sigmoid theory on general data (fluctuations of z given a neglected; docs/theory_erf.md §13)."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.theory import erf_general as eg


def gaussian_task(N0, P, seed=0, y_minus=0.5, K=3):
    return mf.random_label_task(P, N0, n_classes=K, y_plus=1.0, y_minus=y_minus, seed=seed)


@pytest.fixture(scope="module")
def small():
    task = gaussian_task(20, 30, seed=1)
    return task, mf.solve(task, "erf", T=0.02)


def test_energy_gradient_and_hessian_match_finite_differences(small):
    task, sol = small
    pr = eg.Problem(task, 0.02, 1.0)
    rng = np.random.default_rng(3)
    u = rng.standard_normal(pr.r)
    t = sol.field
    E, G = eg.energy(u[None], t, pr)[:2]
    h = 1e-6
    fd = np.array([(eg.energy((u + h * e)[None], t, pr)[0][0] - eg.energy((u - h * e)[None], t, pr)[0][0]) / (2 * h)
                   for e in np.eye(pr.r)])
    np.testing.assert_allclose(G[0], fd, rtol=1e-6, atol=1e-6)
    H = eg.hessian(u, t, pr)
    fdH = np.array([(eg.energy((u + h * e)[None], t, pr)[1][0] - eg.energy((u - h * e)[None], t, pr)[1][0]) / (2 * h)
                    for e in np.eye(pr.r)])
    np.testing.assert_allclose(H, fdH, rtol=1e-5, atol=1e-5)


def test_primal_gradient_matches_finite_differences(small):
    task, _ = small
    pr = eg.Problem(task, 0.02, 1.0)
    rng = np.random.default_rng(4)
    n = 3
    x = np.concatenate([rng.standard_normal(n * pr.r), rng.standard_normal(n)])
    J, g = eg.primal(x, pr, n)[:2]
    h = 1e-6
    idx = rng.choice(x.size, 12, replace=False)
    fd = [(eg.primal(x + h * np.eye(x.size)[i], pr, n)[0] - eg.primal(x - h * np.eye(x.size)[i], pr, n)[0]) / (2 * h)
          for i in idx]
    np.testing.assert_allclose(g[idx], fd, rtol=1e-5, atol=1e-7)


def test_equations_hold(small):
    task, sol = small
    assert sol.converged, sol.message
    assert sol.residual < 1e-8
    at = sol.info["atoms"]
    # (S2) on the training inputs, and the predictor there equals Y − T t (no conditional variance in the span)
    f = (at["weight"][:, None] * mf.nonlinearity("erf").phi(at["z"])).T @ at["a"]
    np.testing.assert_allclose(f, task.Y - sol.T * sol.field, atol=1e-8)
    np.testing.assert_allclose(sol.predict(task.X), task.Y - sol.T * sol.field, atol=1e-8)
    # every atom a stationary point with a = (s/P) tᵀφ(z), at a common (global) maximum of E
    np.testing.assert_allclose(at["a"], (mf.nonlinearity("erf").phi(at["z"]) @ sol.field) / task.P, atol=1e-8)
    assert np.ptp(at["E"]) < 1e-8 * (1 + abs(at["E"][0]))
    assert sol.info["E_best"] <= at["E"].max() + 1e-7 * (1 + abs(at["E"][0]))
    assert np.all(at["weight"] >= -1e-12) and abs(at["weight"].sum() - 1) < 1e-10
    assert abs(sol.code_fractions.sum() - 1) < 1e-10
    # the kernel on the training inputs equals kernel(1, X, X)
    np.testing.assert_allclose(sol.kernel(1, task.X, task.X), sol.kernels[1], atol=1e-10)


def test_dual_optimality(small):
    """The solution minimizes the convex dual S(t) = (T/2)|t|² − ⟨t, Y⟩ + max_u E(u; t)."""
    task, sol = small
    pr = eg.Problem(task, sol.T, 1.0)

    def S(t):
        U0 = np.vstack([sol.info["atoms"]["u"], eg.starts(t, pr, 8, np.random.default_rng(0))])
        return 0.5 * sol.T * np.sum(t * t) - np.sum(t * task.Y) + eg.find_maxima(t, pr, U0)[1][0]

    S0 = S(sol.field)
    rng = np.random.default_rng(5)
    for _ in range(4):
        d = rng.standard_normal(sol.field.shape)
        assert S(sol.field + 1e-3 * d / np.linalg.norm(d)) > S0 - 1e-9


def test_bad_input():
    task = gaussian_task(20, 30)
    with pytest.raises(ValueError, match="T must be > 0"):
        mf.solve(task, "erf", T=0.0)
    with pytest.raises(NotImplementedError, match="general data"):
        mf.solve(task, "erf", T=0.01, code_fractions={(1, 1, 0): 1.0})


def test_theory_vs_sampler_general_data():
    """Gaussian inputs N0 = 20, P = 30, 3 random classes, T = 0.02 (codes still mix): the sampled
    posterior mean predictor on training and test inputs correlates with the theory's (> 0.95, the
    issue's bound) and the redundant pair codes are the three most frequent codes on both sides.

    The fractions themselves differ by up to ≈ 0.06 (pairs 0.33/0.30/0.30 in theory vs 0.29/0.26/0.26
    sampled, single-class and 1-1-1 codes more frequent in the samples): the theory neglects the
    fluctuations of z given a and uses P → ∞ weights at P = 30 (docs/theory_erf.md §13).
    """
    from meanfield.analysis import code_fractions
    from meanfield.code_agreement import sampled_codes

    task = mf.random_label_task(30, 20, y_plus=1.0, y_minus=0.5, seed=0, P_test=50)
    sol = mf.solve(task, "erf", T=0.02)
    assert sol.converged, sol.message
    s = mf.sample(task, "erf", 200, T=0.02, steps=1500, space="preactivation", seed=1, thin=5, progress=False,
                  anneal=0.15)
    f_s, f_t = s.mean_prediction, sol.train_prediction
    assert np.corrcoef(f_s.ravel(), f_t.ravel())[0, 1] > 0.95
    assert np.corrcoef((task.Y - f_s).ravel(), (task.Y - f_t).ravel())[0, 1] > 0.95   # residuals, not just Y
    ft_test, fs_test = sol.predict(task.X_test), mf.predict_samples(s, task, task.X_test)
    assert np.corrcoef(ft_test.ravel(), fs_test.ravel())[0, 1] > 0.95
    frac_s = code_fractions(sampled_codes(s, task))
    top = lambda d: set(sorted(d, key=lambda c: -d[c])[:3])                       # noqa: E731
    frac_t = {tuple(int(b) for b in c): p for c, p in zip(sol.codes, sol.code_fractions)}
    pairs = {(0, 1, 1), (1, 0, 1), (1, 1, 0)}
    assert top(frac_t) == pairs and top(frac_s) == pairs
