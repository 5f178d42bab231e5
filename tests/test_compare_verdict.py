"""Verdicts of `mf.compare` (issue 18, item 2): Monte-Carlo floors from batch means, PASS / FAIL / FROZEN.

* The batch-means floor against series with a known standard error of the mean (iid and AR(1)).
* A small healthy linear run passes every judged row; the same samples against a wrong theory
  (U × 1.3; a solution at 3 T) FAIL — the assertions can fail.
* A frozen sigmoid run (N = P = 100, theory-started at T = 0.01: 5 of 100 neurons switch code)
  compared with a theory whose code fractions are moved by 0.1 is reported FROZEN, not FAIL.
"""
import dataclasses
import json
import math

import numpy as np
import pytest

import meanfield as mf
from meanfield.agreement import floors
from meanfield.agreement.result import FAIL, FROZEN, PASS

N = P = 60
T = 0.01


def _ar1(rng, n, d, rho):
    """d independent AR(1) series of length n, unit stationary variance."""
    x = np.empty((n, d))
    x[0] = rng.standard_normal(d)
    e = rng.standard_normal((n, d)) * math.sqrt(1 - rho * rho)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + e[t]
    return x


def test_floor_of_iid_series_is_the_standard_error_of_the_mean():
    rng = np.random.default_rng(0)
    n, d, sigma = 2000, 400, 0.7
    x = sigma * rng.standard_normal((n, d))
    fl = floors.series_floor(x)
    exact = sigma * math.sqrt(d / n)                   # Frobenius se of the mean of d iid entries
    assert fl.ok and fl.tau < 1.5
    assert abs(fl.se / exact - 1) < 0.05               # B = 20 batches × 400 entries: ≈ 1 % noise


def test_floor_of_ar1_series_accounts_for_autocorrelation():
    rng = np.random.default_rng(1)
    n, d, rho = 4000, 300, 0.8
    x = _ar1(rng, n, d, rho)
    tau = (1 + rho) / (1 - rho)                          # 9: integrated autocorrelation time
    exact = math.sqrt(d * tau / n)                       # var of the mean ≈ τ / n per entry
    fl = floors.series_floor(x)
    assert abs(fl.tau / tau - 1) < 0.25
    assert fl.batch_size >= floors.BATCH_TAU * tau * 0.75
    assert abs(fl.se / exact - 1) < 0.10                 # batches of ≥ 5 τ: bias ≲ τ / batch ≈ 5 %
    naive = x.std() * math.sqrt(d / n)                    # ignoring autocorrelation: √τ = 3 × too small
    assert fl.se > 2.5 * naive


def test_floor_marks_a_chain_too_short_for_batches():
    x = _ar1(np.random.default_rng(2), 100, 50, 0.95)   # τ ≈ 39 > S / (5 · 5)
    assert not floors.series_floor(x).ok


def test_pass_factor_and_excess():
    assert floors.pass_factor(10) == pytest.approx(3.2498, abs=1e-3)     # t_9(0.995)
    assert floors.pass_factor(10, components=5) > floors.pass_factor(10)
    assert floors.excess(0.05, 0.03) == pytest.approx(0.04)
    assert floors.excess(0.02, 0.03) == 0.0


@pytest.fixture(scope="module")
def linear_run():
    task = mf.toy_task(P, P + 20, seed=0)
    s = mf.sample(task, "linear", N, T=T, steps=600, space="preactivation", seed=0, progress=False)
    return task, s


def test_healthy_linear_run_passes(linear_run):
    task, s = linear_run
    sol = mf.solve(task, "linear", T=T, N=N)
    cmp = mf.compare(sol, s)
    print(cmp.table())
    judged = [r for r in cmp.rows if r["status"] in (PASS, FAIL, FROZEN)]
    assert {r["key"] for r in judged} >= {"U", "kernel_1", "mean_predictor", "field"}
    for r in judged:
        assert r["status"] == PASS, r
        assert 0 < r["floor"] < 0.2 and r["error"] <= r["factor"] * r["floor"]
    assert cmp.passed and not cmp.frozen
    assert cmp["kernel_1"] == cmp["kernel K_1"] == cmp.metrics["kernel K_1"] == cmp.row("kernel_1")["error"]
    assert "VERDICT: PASS" in cmp.table()
    d = json.loads(json.dumps(cmp.to_dict()))
    assert d["passed"] is True and {r["key"]: r["status"] for r in d["rows"]}["U"] == PASS


def test_wrong_theory_fails(linear_run):
    task, s = linear_run
    sol = mf.solve(task, "linear", T=T, N=N)
    info = {k: (1.3 * v if k == "U_mean" else v) for k, v in sol.info.items()}      # compared with U_mean if set
    bad_u = mf.compare(dataclasses.replace(sol, U=1.3 * sol.U, info=info), s)
    r = bad_u.row("U")
    assert r["status"] == FAIL and r["error"] > r["factor"] * r["floor"]
    assert not bad_u.passed and "VERDICT: FAIL" in bad_u.verdict()
    bad_t = mf.compare(mf.solve(task, "linear", T=3 * T, N=N), s)       # the posterior at another temperature
    print(bad_t.table())
    assert [r["key"] for r in bad_t.rows if r["status"] == FAIL] == ["U", "kernel_1", "mean_predictor"]
    assert not bad_t.passed


def test_rows_without_preactivations_get_no_verdict(linear_run):
    task, s = linear_run
    bare = dataclasses.replace(s, preactivations=[])
    cmp = mf.compare(mf.solve(task, "linear", T=T, N=N), bare)
    assert cmp.row("kernel_1")["status"] == "n/a" and "preactivations" in cmp.row("kernel_1")["note"]
    assert cmp.row("field")["status"] == "n/a" and cmp.row("U")["status"] == PASS


def test_frozen_sigmoid_run_is_flagged():
    n = 100                                              # at N = P = 60 the codes still switch at T = 0.01
    task = mf.toy_task(n, n + 20, y_minus=0.5, seed=0)
    sol = mf.solve(task, "erf", T=T, finite_P=True)
    s = mf.sample(task, "erf", n, T=T, steps=300, space="preactivation", seed=1, thin=3, progress=False,
                  init=mf.theory_start(sol, n, seed=1))
    shift = np.zeros(len(sol.code_fractions))
    shift[:2] = 0.1, -0.1                                # theory fractions moved by 0.1 between two codes
    other = dataclasses.replace(sol, code_fractions=sol.code_fractions + shift)
    cmp = mf.compare(other, s)
    print(cmp.table())
    assert cmp.frozen
    k, n = cmp.switching
    assert k < 0.1 * n and f"sampler frozen ({k} of {n} neurons switched)" in cmp.verdict()
    assert cmp.row("code_fractions")["status"] == FROZEN
    assert FAIL not in [r["status"] for r in cmp.rows] and not cmp.passed


def test_sweep_table_marks_a_frozen_sampler_point():
    from meanfield.sweeps import sweep_table
    row = dict(value=0.01, T=0.01, y_minus=0.5, converged=True, theory={(1, 1, 1): 0.097, (0, 1, 1): 0.3},
               sampler={(1, 1, 1): 0.172, (0, 1, 1): 0.3}, switching_neurons=3, N=200, frozen=True)
    txt = sweep_table([row, dict(row, value=0.03, frozen=False, switching_neurons=150)])
    lines = [ln for ln in txt.splitlines() if "sampler" in ln]
    assert "sampler frozen: 3 of 200 neurons switched" in lines[0]
    assert "frozen" not in lines[1] and "150 neurons switched" in lines[1]
