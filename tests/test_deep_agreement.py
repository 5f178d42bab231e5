"""Deep networks: theory vs posterior samples (issue 6, acceptance 1 and 3).

Linear networks, toy task N = P (N0 = P + 20, y₋ = 0), T = 0.01, weight-space HMC from a prior draw,
against the finite-N theory (``solve(..., N=N)``, docs/theory.md §4 and "Deep networks: theory vs
sampler"). Per layer ℓ:

* the full kernel K_ℓ: its relative Frobenius error is dominated by Monte-Carlo noise, whose floor
  (batch means, ≈ √(P/(N n_eff))) is measured in the same run; the test bounds the *excess*
  √(err² − floor²) — the part noise cannot explain — and the raw error at the acceptance's 10 %;
* the learned low-rank part λ_ℓ,r = q_rᵀ(K_ℓ − K0)q_r along the task directions (noise ≈ 0.5 %),
  and the bulk level tr[(1 − QQᵀ)K_ℓ]/(P − m);
* the growth of λ across layers (slope β of log λ_ℓ vs ℓ).

The N → ∞ theory misses the finite-N shifts by 5–12 % at N = 60, so these tolerances discriminate.
Default: L = 2 and 3 at N = P = 60. Slow: L = 2, 3 at N = P = 200 and the ReLU L = 3 run of Fig. 3
(sparse feature layer).
"""
import os
import sys

import numpy as np
import pytest

import meanfield as mf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import bench_deep as bd  # noqa: E402

# Slow runs checkpoint (and resume from) here if set, e.g. the directory of `bench_deep.py --agreement --dir`.
RUN_DIR = os.environ.get("MEANFIELD_RUN_DIR")


def _check_linear(res, excess_tol, lam_tol, bulk_tol, slope_tol, err_tol=0.10):
    print(bd.format_linear(res))
    for ell, r in enumerate(res["layers"], 1):
        assert r["err_N"] <= err_tol, (ell, r["err_N"])
        assert r["excess"] <= excess_tol, (ell, r["err_N"], r["floor"])
        assert r["err_N"] < r["err_inf"], ell
        assert np.max(np.abs(r["lam_s"] / r["lam_N"] - 1)) <= lam_tol, (ell, r["lam_s"], r["lam_N"])
        assert abs(r["bulk_s"] / r["bulk_N"] - 1) <= bulk_tol, (ell, r["bulk_s"], r["bulk_N"])
    s = res["slopes"]
    assert np.max(np.abs(s["s"] / s["N"] - 1)) <= slope_tol, (s["s"], s["N"])
    assert np.max(np.abs(res["U_s"] / res["U_N_mean"] - 1)) <= 0.03, (res["U_s"], res["U_N_mean"])


@pytest.mark.parametrize("depth", [2, 3])
def test_kernels_mean_is_a_one_loop_correction(depth):
    """info["kernels_mean"] − kernels (mean − saddle) is O(1/N): N·‖Δ_ℓ‖/‖K_ℓ‖ at N = 400 and 1600
    agree within 5 % (observed ≤ 1.5 %; the O(1/N²) remainder), and it is nonzero."""
    task = mf.toy_task(60, 80, y_minus=0.0)
    scaled = []
    for N in (400, 1600):
        sol = mf.solve(task, "linear", depth=depth, T=0.01, N=N)
        scaled.append([N * np.linalg.norm(sol.info["kernels_mean"][ell] - sol.kernels[ell])
                       / np.linalg.norm(sol.kernels[ell]) for ell in range(1, depth + 1)])
    scaled = np.array(scaled)
    assert np.all(scaled > 0.05), scaled
    assert np.max(np.abs(scaled[0] / scaled[1] - 1)) < 0.05, scaled


def test_deep_linear_L2_small_finite_N():
    """N = P = 60, L = 2, 300 transitions (150 stored, 10 batches), ≈ 30 s.

    Observed (seed 0): excess 1.5 % / 0.3 %, λ within 0.5 %, bulk within 1.2 %, slopes within 0.3 %; the
    N → ∞ theory is off by 12 % in λ and 5–10 % in the bulk."""
    task = mf.toy_task(60, 80, y_minus=0.0)
    s = mf.sample(task, "linear", N=60, depth=2, T=0.01, steps=300, space="weight", seed=0, progress=False)
    res = bd.linear_agreement(task, s, n_batches=10)
    _check_linear(res, excess_tol=0.03, lam_tol=0.02, bulk_tol=0.02, slope_tol=0.015)


def test_deep_linear_L3_small_finite_N():
    """N = P = 60, L = 3, 300 transitions (150 stored, 10 batches), ≈ 5–9 s: the default run's linear × depth 3
    agreement test (the N = 200 one is slow).

    Observed (seed 0): raw kernel errors 7.4 / 4.8 / 2.3 % against batch-means floors 7.2 / 4.5 / 2.3 %, so
    excess ≤ 1.9 %; λ within 1.3 / 2.3 / 1.9 % with standard errors 0.9 / 1.0 / 1.2 % (the rest is the O(1/N²)
    remainder of the one-loop theory); bulk within 0.1 / 0.8 / 0.6 % (s.e. 0.3 / 0.4 / 0.7 %); slopes within
    1.2 % (s.e. ≤ 0.5 %); U within 0.7 %. Tolerances: excess 3 % (as at L = 2); λ 4 % (≈ 3 s.e. plus the
    remainder); bulk 2 % (3 s.e. of the deepest layer); slopes 2.5 % (≈ 2× observed, 5 s.e.). They
    discriminate: the N → ∞ theory is off by 15–34 % in λ and 5–15 % in the bulk."""
    task = mf.toy_task(60, 80, y_minus=0.0)
    s = mf.sample(task, "linear", N=60, depth=3, T=0.01, steps=300, space="weight", seed=0, progress=False)
    res = bd.linear_agreement(task, s, n_batches=10)
    _check_linear(res, excess_tol=0.03, lam_tol=0.04, bulk_tol=0.02, slope_tol=0.025)


@pytest.mark.slow
@pytest.mark.parametrize("depth", [2, 3])
def test_deep_linear_N200(depth):
    """N = P = 200, 300 transitions (150 stored): L = 2 377 s, L = 3 1309 s (single-threaded, loaded machine).

    Observed (seed 1): excess ≤ 0.6 %, λ within 0.6 %, bulk within 0.15 %, slopes within 0.15 %; the
    N → ∞ theory is off by 6–21 % in λ and 1.5–4.4 % in the bulk."""
    task, s = bd.run_linear(200, depth, 300, 1, RUN_DIR)
    res = bd.linear_agreement(task, s, n_batches=10)
    _check_linear(res, excess_tol=0.05, lam_tol=0.02, bulk_tol=0.005, slope_tol=0.015)


@pytest.mark.slow
def test_deep_relu_L3_sparse_feature_layer():
    """Fig. 3 ReLU setting: the feature layer is sparse, with single-class outliers covering every class.

    The L = 1 theory (docs/theory_relu.md §4: y₋ = −½ < 0.2165, T ≪ T_c ≈ 0.63) has exactly m = 3
    single-class outliers. From a prior draw the sampler first holds ≈ 10 proto-outliers that merge
    slowly (§6); after 3000 transitions (≈ 15 min) the second half of the run is sparse with 4–5
    outliers. Required: "sparse", ≥ m outliers, every outlier's (sample-averaged) code a single
    class, every class coded. Not required: frozen outliers (this run's weaker outliers still
    fluctuate, docs/theory.md "Deep networks: theory vs sampler" §5).
    """
    task, s = bd.run_relu(3000, 1, RUN_DIR)
    rows = bd.relu_layers(task, s, burn=s.readouts.shape[0] // 2)
    print(bd.format_relu(rows))
    top = rows[-1]
    assert top["scheme"].scheme == "sparse", str(top["scheme"])
    codes = top["outlier_codes"]
    assert len(codes) >= task.m
    assert all(sum(c) == 1 for c in codes), codes
    assert {int(np.argmax(c)) for c in codes} == set(range(task.m)), codes
