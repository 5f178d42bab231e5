"""Sparse coding for softplus log(1 + e^z) and relu2 max(0, z)² (issue 4, acceptance 4).

Toy task (ρ = ½, ¼, ¼; y₊ = 1, y₋ = −½), N0 = P + 20, T = 0.01, preactivation space, default
readout prior σ_a² = 1/P, runs from a **prior draw** (no theory start, no annealing).
docs/theory_sparse_other.md has the derivations and the numbers quoted here.

What the sampler does (P = 100; seeds 1, 2, 3 at N = 100, seed 1 at N = 50, 200):

* both φ: exactly three outliers, one per class, formed within the first ≈ 100–200
  transitions (ReLU under the same settings still has ≈ 10 proto-outliers after 300).
  Outlier time-averaged |a| / median over neurons: softplus 28–63 (N = 50 … 200), relu2
  69–219; the largest bulk neuron ≤ 2.2× the median. Thresholds used: outlier ⇔ > 10× median;
  exactly 3 outliers.
* codes: mean φ on the coded class / largest mean φ on another class: softplus ≥ 39
  (8.8 / 0.23 at N = 50, 12.3 / 0.19 at N = 100), relu2 ≥ 300 (25–79 / ≤ 0.13). Threshold: 10.
* frozen: sample-to-sample sd of an outlier's class-mean preactivation / its mean ≤ 1.7 %
  (softplus 0.5–1.1 %, relu2 0.7–1.7 %). Threshold: 5 %.
* softplus = ReLU's outlier equations with softplus's bulk (leading order in 1/√N):
  theory ā_0 = (0.7005, −0.3503, −0.3503), z̄ = 1.2134 / 1.6015, bulk a0 = (0.1563, −0.0782,
  −0.0782); sampled at N = 100: ā within 0.2–0.7 %, z̄ +1.2 % / +0.8 %, bulk ⟨a⟩ within 1.4 %
  (N = 50: ā within 1 %, z̄ +2.3 %, bulk 4.7 %; only N = 100 is tested).
  Tolerances: ā 5 %, z̄ 5 %, bulk 10 %.
* relu2: outliers at a = N^{1/3} ā, z = N^{1/3} z̄ (not √N), field t = O(N^{-1/3}); the
  finite-N stationarity equations give |a| = 3.121 / 2.484, z = 6.242 / 7.026 at N = 100;
  sampled (seeds 1–3) 3.07–3.10 / 2.44–2.48 and 6.27–6.29 / 7.03–7.09 (≤ 1.7 %); N = 50 (seed 1):
  ≤ 2.1 % (|a_1| 1.931 vs 1.972). Tolerance 5 %.
* N-scaling of the outlier readout, N = 50 → 100 (P = 100): relu2 ratio 1.264 (theory 1.260,
  √2 would be 1.414), softplus 1.415 (theory √2: ā is N-independent at leading order). Tolerance 3 %.

Runtime: ≈ 9 s per N = 100 run, 4–6 s per N = 50 run (400 transitions, 200 warm-up);
the slow test (N = 200, ≈ 80 s per φ) checks the scaling over a factor 4.
"""
import numpy as np
import pytest
import meanfield as mf
from meanfield.theory.sparse_toy import relu2_outliers, softplus_outliers

P = 100
T = 0.01
RHO = np.array([0.5, 0.25, 0.25])
Y = np.full((3, 3), -0.5)
np.fill_diagonal(Y, 1.0)
S_PRIOR = 1.0                                              # s = P σ_a² (σ_a² = 1/P)


# --- theory (meanfield/theory/sparse_toy.py) ---------------------------------------------------

def softplus_theory(T=T, s=S_PRIOR):
    return softplus_outliers(Y, RHO, s=s, T=T)


def relu2_theory(N, T=T, s=S_PRIOR):
    return relu2_outliers(Y, RHO, N, s=s, T=T)


# --- sampler runs -----------------------------------------------------------------------------

def _run(nl, N, steps=400, seed=1):
    task = mf.toy_task(P, P + 20, ratios=(0.5, 0.25, 0.25), y_plus=1.0, y_minus=-0.5, seed=0)
    s = mf.sample(task, nl, N, T=T, steps=steps, space="preactivation", seed=seed, thin=5, progress=False)
    return task, s


def _analyse(task, s, nl):
    """Outliers (time-averaged |a| > 10× the median), their codes, activations and spreads."""
    N = s.readouts.shape[1]
    a = s.readouts.mean(axis=0)                              # (N, m), raw
    norm = np.linalg.norm(a, axis=1)
    med = np.median(norm)
    big = np.flatnonzero(norm > 10 * med)
    Z = np.asarray(s.preactivations[0], dtype=np.float64)    # (S, N, P)
    phi = mf.nonlinearity(nl).phi
    out = []
    for i in big:
        zi = Z[:, i, :]
        act = np.array([phi(zi[:, task.labels == c]).mean() for c in range(3)])
        zc = np.array([zi[:, task.labels == c].mean(axis=1) for c in range(3)])   # (3, S)
        k = int(np.argmax(act))
        out.append(dict(i=int(i), k=k, a=a[i], ratio=norm[i] / med, act=act,
                        z=zc[k].mean(), z_rel_sd=zc[k].std() / zc[k].mean()))
    rest = np.setdiff1d(np.arange(N), big)
    return dict(out=sorted(out, key=lambda o: o["k"]), med=med, rest_max=norm[rest].max() / med,
                bulk_a=s.readouts[:, rest].mean(axis=(0, 1)), N=N)


@pytest.fixture(scope="module")
def runs():
    res = {}
    for nl in ("softplus", "relu2"):
        for N in (100, 50):
            task, s = _run(nl, N)
            res[nl, N] = (task, s, _analyse(task, s, nl))
    return res


@pytest.mark.parametrize("nl", ["softplus", "relu2"])
def test_three_frozen_single_class_outliers(runs, nl):
    for N in (100, 50):
        task, s, r = runs[nl, N]
        d = s.diagnostics
        assert d["accept_rate"] > 0.6 and d["divergences"] == 0
        assert len(r["out"]) == 3, [(o["i"], o["ratio"]) for o in r["out"]]
        assert [o["k"] for o in r["out"]] == [0, 1, 2]       # one outlier per class
        assert r["rest_max"] < 5                              # gap: bulk ≤ 2.2× median observed
        for o in r["out"]:
            others = np.delete(o["act"], o["k"])
            assert o["act"][o["k"]] > 10 * others.max(), o    # codes one class
            assert o["z_rel_sd"] < 0.05, o                    # frozen
            assert np.argmax(o["a"]) == o["k"]                # readout positive on its class


def test_softplus_outliers_follow_relu_equations_with_softplus_bulk(runs):
    th = softplus_theory()
    task, s, r = runs["softplus", 100]
    N = r["N"]
    for o in r["out"]:
        k = o["k"]
        abar = o["a"] / np.sqrt(N)
        assert np.linalg.norm(abar - th["abar"][k]) < 0.05 * np.linalg.norm(th["abar"][k]), (abar, th["abar"][k])
        assert abs(o["z"] / np.sqrt(N) - th["zbar"][k]) < 0.05 * th["zbar"][k], (o["z"], th["zbar"][k])
    # the bulk is softplus's, not ReLU's: a0 = 0.156 (ReLU's toy bulk: 0.129)
    assert np.linalg.norm(r["bulk_a"] - th["a0"]) < 0.10 * np.linalg.norm(th["a0"]), (r["bulk_a"], th["a0"])


def test_relu2_outliers_scale_as_cube_root_of_N(runs):
    for N in (100, 50):
        th = relu2_theory(N)
        task, s, r = runs["relu2", N]
        for o in r["out"]:
            k = o["k"]
            assert np.linalg.norm(o["a"] - th["a"][k]) < 0.05 * np.linalg.norm(th["a"][k]), (N, o["a"], th["a"][k])
            assert abs(o["z"] - th["z"][k]) < 0.05 * th["z"][k], (N, o["z"], th["z"][k])
            cos = o["a"] @ Y[k] / np.linalg.norm(o["a"]) / np.linalg.norm(Y[k])
            assert cos > 0.995                                # readout ∥ target row (bulk ≈ prior)


@pytest.mark.parametrize("nl", ["softplus", "relu2"])
def test_outlier_readout_ratio_between_N50_and_N100(runs, nl):
    """|a| ratio N = 100 / 50: √2 for softplus (ReLU-like), 2^{1/3} for relu2 (finite-N theory)."""
    r1, r2 = runs[nl, 50][2], runs[nl, 100][2]
    obs = np.mean([np.linalg.norm(o2["a"]) / np.linalg.norm(o1["a"]) for o1, o2 in zip(r1["out"], r2["out"])])
    if nl == "softplus":
        pred = np.sqrt(2.0)
    else:
        pred = np.mean(np.linalg.norm(relu2_theory(100)["a"], axis=1) / np.linalg.norm(relu2_theory(50)["a"], axis=1))
    assert abs(obs / pred - 1) < 0.03, (obs, pred)


@pytest.mark.slow
@pytest.mark.parametrize("nl", ["softplus", "relu2"])
def test_outlier_scaling_exponent_N50_to_N200(runs, nl):
    """Fit |a|, z ∝ N^γ over N = 50, 100, 200 (P = 100): γ = ½ (softplus), ⅓ (relu2).

    Observed (seed 1, 1000 transitions): softplus γ_a = 0.494, γ_z = 0.487; relu2 0.341, 0.330.
    """
    task, s = _run(nl, 200, steps=1000)
    r200 = _analyse(task, s, nl)
    assert len(r200["out"]) == 3
    r50, r100 = runs[nl, 50][2], runs[nl, 100][2]
    logN = np.log([50, 100, 200])
    for k in range(3):
        an = [np.linalg.norm(r["out"][k]["a"]) for r in (r50, r100, r200)]
        zn = [r["out"][k]["z"] for r in (r50, r100, r200)]
        ga = np.polyfit(logN, np.log(an), 1)[0]
        gz = np.polyfit(logN, np.log(zn), 1)[0]
        target = 0.5 if nl == "softplus" else 1 / 3
        assert abs(ga - target) < 0.04 and abs(gz - target) < 0.04, (k, ga, gz)


def test_solve_dispatch_softplus_and_relu2():
    task = mf.toy_task(P, P + 20, y_minus=-0.5)
    sp = mf.solve(task, "softplus", T=T)
    ref = softplus_theory()
    assert sp.converged and sp.residual < 1e-10
    np.testing.assert_allclose(sp.outliers["a_bar"], ref["abar"], atol=1e-12)
    np.testing.assert_allclose(sp.info["a0"], ref["a0"], atol=1e-12)
    assert sp.outliers["codes"] == ((1, 0, 0), (0, 1, 0), (0, 0, 1))
    r2 = mf.solve(task, "relu2", T=T, N=100)
    np.testing.assert_allclose(r2.info["z_raw"], relu2_theory(100)["z"], rtol=1e-12)
    with pytest.raises(ValueError, match="N"):
        mf.solve(task, "relu2", T=T)
