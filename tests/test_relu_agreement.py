"""ReLU networks: sparse coding, theory vs posterior samples on the toy task (issue 4, acceptance 2).

Toy task N = P = 200, N0 = 220, y₋ = −½, T = 0.01, preactivation space. The default run starts
in the theory's state (`theory_start`: stability of outliers and bulk, 400 transitions ≈ 40 s:
the outliers' curvature P z̄²/T forces ≈ 300 leapfrog steps per transition); the slow test starts
from a prior draw, where the sampler must find the outliers by itself — after 2000 transitions
it still had 6 large-readout neurons (two per class, merging slowly), after 4000 the theory's
three. Tolerances (issue 4: 10 %): outlier readouts and
activations / √N within 5 % (observed 0.2–0.7 %, docs/theory_relu.md §6), the bulk readout
within 10 % (observed −4.6 %: a finite-N (P/N = 1) shift the N → ∞ theory does not have).
"""
import numpy as np
import pytest

import meanfield as mf

N = P = 200
T = 0.01


def _setup(steps, from_theory, seed):
    task = mf.toy_task(P, P + 20, y_minus=-0.5)
    sol = mf.solve(task, "relu", T=T)
    init = mf.theory_start(sol, N, seed=seed) if from_theory else None
    s = mf.sample(task, "relu", N, T=T, steps=steps, space="preactivation", seed=seed, thin=5, progress=False,
                  init=init)
    return task, sol, s


@pytest.fixture(scope="module")
def run():
    return _setup(400, True, 1)


def _outliers(s, cut=0.2):
    a = s.readouts.mean(axis=0) / np.sqrt(N)                 # (N, m), √N-scaled
    big = np.flatnonzero(np.linalg.norm(a, axis=1) > cut)
    return big, a


def test_outlier_count_codes_and_readouts(run):
    task, sol, s = run
    big, a = _outliers(s)
    ab = sol.outliers["a_bar"]
    assert len(big) == len(ab) == 3
    for i in big:                                            # match each sampled outlier by its code
        k = int(np.argmax(a[i]))
        assert sol.outliers["codes"][k] == tuple(int(c == k) for c in range(3))
        err = np.linalg.norm(a[i] - ab[k]) / np.linalg.norm(ab[k])
        assert err < 0.05, (i, a[i], ab[k])
    rest = np.setdiff1d(np.arange(N), big)
    assert np.max(np.linalg.norm(a[rest], axis=1)) < 0.1 * np.min(np.linalg.norm(ab, axis=1))


def test_outliers_are_frozen_with_theory_activations(run):
    task, sol, s = run
    big, a = _outliers(s)
    Z = np.asarray(s.preactivations[0], dtype=np.float64) / np.sqrt(N)   # (S, N, P)
    for i in big:
        k = int(np.argmax(a[i]))
        zi = Z[:, i, :]
        on = task.labels == k
        mean_on = zi[:, on].mean()
        assert abs(mean_on - sol.outliers["z_bar_class"][k, k]) < 0.05 * sol.outliers["z_bar_class"][k, k]
        assert zi[:, on].mean(axis=1).std() < 0.05 * mean_on           # frozen: spread ≪ mean


def test_bulk_readout_and_predictor(run):
    _check_bulk(run)


def _check_bulk(run):
    task, sol, s = run
    big, _ = _outliers(s)
    rest = np.setdiff1d(np.arange(N), big)
    a0 = sol.info["a0"]
    bulk = s.readouts[:, rest].mean(axis=(0, 1))
    assert np.linalg.norm(bulk - a0) / np.linalg.norm(a0) < 0.10
    cmp = mf.compare(sol, s)
    print(cmp.table())
    assert cmp["mean predictor (train) corr"] > 0.99
    return cmp


@pytest.mark.slow
def test_from_prior_draw_sampler_finds_the_three_outliers():
    r = _setup(4000, False, 5)
    test_outlier_count_codes_and_readouts(r)
    test_outliers_are_frozen_with_theory_activations(r)
    cmp = _check_bulk(r)
    # equilibrated: t = residual/T within 5 % (docs/theory_relu.md §6: 0.5 %). The 400-transition
    # theory-started run is not there yet (bulk still drifting, t off by ≈ 8 %), so only here.
    assert cmp["field t = residual/T"] < 0.05


def test_m_minus_one_outliers_with_informative_bulk():
    # docs/theory_relu.md: ρ = [0.8, 0.1, 0.1], y₊ = 0.2, y₋ = −0.1 → outliers only for the two
    # small classes; the bulk readout carries the class-0 information (a0 ∝ (2, −1, −1))
    task = mf.toy_task(P, P + 20, ratios=(0.8, 0.1, 0.1), y_plus=0.2, y_minus=-0.1)
    sol = mf.solve(task, "relu", T=T)
    assert sol.outliers["codes"] == ((0, 1, 0), (0, 0, 1))
    s = mf.sample(task, "relu", N, T=T, steps=400, space="preactivation", seed=2, thin=5, progress=False,
                  init=mf.theory_start(sol, N, seed=2))
    big, a = _outliers(s, cut=0.1)
    assert len(big) == 2
    for i in big:
        k = int(np.argmax(a[i])) - 1
        ab = sol.outliers["a_bar"][k]
        assert np.linalg.norm(a[i] - ab) / np.linalg.norm(ab) < 0.05
    rest = np.setdiff1d(np.arange(N), big)
    a0 = sol.info["a0"]
    bulk = s.readouts[:, rest].mean(axis=(0, 1))
    assert np.linalg.norm(bulk - a0) / np.linalg.norm(a0) < 0.10
    assert a0[0] > 0 and a0[1] < 0 and a0[2] < 0          # the bulk codes class 0
