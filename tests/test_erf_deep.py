"""Two-hidden-layer sigmoid theory (docs/theory_erf_deep.md): building blocks, limits, the solve,
and agreement with the weight-space sampler.

Tolerances: quadrature identities 1e-7 (trapezoid grids, spectrally accurate); the one-layer limit
1e-8 (B = 1e-12 shifts F by O(B P)); sampler agreement: see the individual tests.
"""
import numpy as np
import pytest

import meanfield as mf
from meanfield.theory import erf_deep_layers as lay
from meanfield.theory import erf_toy as toy

KAPPA2 = np.pi / 2
VAR_PHI_PRIOR = np.arcsin(KAPPA2 / (1 + KAPPA2)) / (2 * np.pi)     # Var φ(z), z ~ N(0, 1)

T_ROWS = np.array([[4.7, -0.6, -0.6], [-1.7, 7.7, -0.9], [-1.7, -0.9, 7.7]])
RHO = np.array([0.5, 0.25, 0.25])


def test_one_dimensional_integrals_match_shared_quadrature():
    from meanfield.integrators import tilted_moments
    from meanfield.nonlinearities import nonlinearity
    H = np.array([-25.0, -5.0, 0.0, 3.0, 12.0, 40.0])
    g = tilted_moments(nonlinearity("erf"), H)
    mo = lay.layer1_moments(0.0, H)                      # λ = 0: the L = 1 tilted integral
    tab = lay.feature_tables(H, np.ones(6), [np.zeros(1)] * 6)   # v = 0, d = 1
    for got in (mo["psi"], np.ravel(tab["G"])):
        assert np.max(np.abs(got - g[0])) < 1e-12
    assert np.max(np.abs(mo["m"] - g[1])) < 1e-12 and np.max(np.abs(mo["var"] - g[2])) < 1e-12


def test_heat_equation_and_derivatives():
    h, d, v, e = np.array([6.0]), np.array([0.3]), np.array([0.7]), 1e-5
    t0 = lay.feature_tables(h, d, [v])
    dG_dd = (lay.feature_tables(h, d + e, [v])["G"][0] - lay.feature_tables(h, d - e, [v])["G"][0]) / (2 * e)
    dG_dv = (lay.feature_tables(h, d, [v + e])["G"][0] - lay.feature_tables(h, d, [v - e])["G"][0]) / (2 * e)
    assert abs(t0["dd"][0][0] - dG_dd[0]) < 1e-7
    assert abs(t0["dv"][0][0] - dG_dv[0]) < 1e-7
    assert abs(2 * t0["dd"][0][0] - (t0["dvv"][0][0] + t0["dv"][0][0] ** 2)) < 1e-10
    light = lay.feature_tables(h, d, [v], light=True)
    for k in ("G", "phi", "var", "dd", "dv", "dvv"):
        assert abs(light[k][0][0] - t0[k][0][0]) < 1e-12


def test_feature_layer_with_identity_kernel_is_the_one_layer_problem():
    """K1 → I (d = 1, B → 0): F2, its gradient and Hessian are the L = 1 F of (E1)."""
    prob = toy.toy_problem(RHO, np.eye(3), 1.0, 500)
    for a in ([-0.3, 1.5, 1.5], [1.6, -0.3, 1.4], [1.1, 1.3, 1.3]):
        F, g, H = toy.free_energy(np.array(a), T_ROWS, prob)
        F2, g2, H2, _ = lay.feature_free_energy(np.array(a), T_ROWS, np.ones(3), 1e-12 * np.eye(3), RHO, 500, 1.0)
        assert abs(F[0] - F2) < 1e-8
        assert np.max(np.abs(g[0] - g2)) < 1e-8 and np.max(np.abs(H[0] - H2)) < 1e-6


def test_v_grid_satisfies_stein_identity():
    """⟨v vᵀ⟩ − B = B ⟨∇f ∇fᵀ + ∇²f⟩ B for p(v) ∝ N(0, B) e^f: checks the K-dimensional grid.

    Step dy = 0.25 in the sinh-mapped coordinates: relative error ≈ 2e-6 (default 0.3: ≈ 1e-5); it
    converges exponentially (dy = 0.15: < 1e-8)."""
    B, d, n = 0.25 + 0.01 * np.eye(3), 0.05 * np.ones(3), 500 * RHO
    h = T_ROWS @ np.array([-0.3, 1.5, 1.5])
    for dy, tol in ((0.25, 1e-5), (0.15, 1e-8)):
        vp = lay.v_posterior(h, d, B, n, geometry=lay.Geometry(dy=dy, max_pts=81))
        rhs = B @ (np.outer(n, n) * vp["gv_gv"] + np.diag(n * vp["gvv"])) @ B
        assert np.max(np.abs(vp["vv"] - B - rhs)) < tol * np.max(np.abs(vp["vv"]))
        assert np.max(np.abs(vp["v_mean"] - B @ (n * vp["post"]["avg"]("dv")))) < tol * np.max(np.abs(vp["v_mean"]))


def test_first_layer_without_tilt_is_the_prior():
    """Λ → 0: u ≡ 0, p(z¹) = N(0, 1): d = Var φ, B = ¼ 11ᵀ, independent fair code bits."""
    out = lay.layer1_posterior(np.zeros(3), 1e-10 * np.eye(3), RHO, 400)
    assert np.max(np.abs(out["d"] - VAR_PHI_PRIOR)) < 1e-8
    assert np.max(np.abs(out["B"] - 0.25)) < 1e-8
    fr = np.array(list(out["code_fractions"].values()))
    assert np.max(np.abs(fr - 1 / 8)) < 1e-6
    z = np.linspace(-6, 6, 481)
    from meanfield.theory.erf_deep_assemble import _layer1_density
    dens = _layer1_density(0.0, 0, out["post"], z)
    assert np.max(np.abs(dens - np.exp(-z ** 2 / 2) / np.sqrt(2 * np.pi))) < 1e-8


def test_unsupported_cases_raise():
    task = mf.toy_task(40, 60, y_minus=0.5)
    with pytest.raises(NotImplementedError):
        mf.solve(task, "erf", depth=3, T=0.04)
    with pytest.raises(ValueError):
        mf.solve(task, "erf", depth=2, T=0.0)
    rng = np.random.default_rng(0)
    general = mf.Task(X=rng.standard_normal((30, 20)), Y=np.eye(3)[rng.integers(0, 3, 20)])
    with pytest.raises(NotImplementedError):
        mf.solve(general, "erf", depth=2, T=0.04)


# ------------------------------------------------------------------------------------------ the solve
@pytest.fixture(scope="module")
def solved100():
    task = mf.toy_task(100, 120, y_minus=0.5)
    # the saturated branch (feature modes of the start only): the state a finite-N run with frozen feature
    # codes hosts; the global search finds a 1-0-0 mode of weight 1.4e-3 that N = 100 cannot (docs §7)
    return task, mf.solve(task, "erf", depth=2, T=0.04, global_search=False)


@pytest.mark.slow
def test_solution_is_internally_consistent(solved100):
    task, sol = solved100
    assert sol.converged, sol.message
    assert sol.residual <= 1e-5
    info = sol.info
    # (S2): class outputs + residual = targets; the predictor on the training set
    assert np.max(np.abs(info["class_output"] + sol.T * info["t_class"] - task.Y[[list(task.labels).index(c)
                                                                                 for c in range(3)]])) < 1e-5
    # kernels: K1 = diag(d) + E B Eᵀ, positive semidefinite, same-class off-diagonal = B_cc
    K1, K2 = sol.kernels[1], sol.kernels[2]
    lab = task.labels
    d, B = info["layer1"]["d"], info["layer1"]["B"]
    assert np.allclose(np.diag(K1), d[lab] + B[lab, lab])
    assert np.linalg.eigvalsh(K1)[0] > -1e-12 and np.linalg.eigvalsh(K2)[0] > -1e-12
    # first-layer code fractions are a distribution; densities normalized
    fr = np.array(list(info["layer1"]["code_fractions"].values()))
    assert abs(fr.sum() - 1) < 1e-10 and fr.min() >= 0
    z = info["layer1"]["z"]
    for dens in info["layer1"]["density"]:
        assert abs(np.trapezoid(dens, z) - 1) < 1e-6
    for per_code in info["feature"]["density"]:
        for dens in per_code:
            assert abs(np.trapezoid(dens, z) - 1) < 1e-4          # z-grid [−6, 6] cuts the far tail
    # Λ is the Stein form: C is a second moment (PSD)
    assert np.linalg.eigvalsh(info["C"])[0] > 0


# ------------------------------------------------------------------------------ theory vs sampler
@pytest.mark.slow
def test_sampler_agreement_first_layer_switches_feature_layer_frozen(solved100):
    """N = P = 100, T = 0.04, weight space, annealed from 0.15 (2000 transitions, ≈ 11 s since the
    surrogate forces; with the theory solve the two slow saturated-branch tests take ≈ 6 min; the run
    of docs/theory_erf_deep.md §6–7, where every first-layer fraction agreed within 0.005).

    Tolerances from the sampling error (100 neurons × 200 correlated samples; first-layer codes
    decorrelate within a few samples, so per-code fractions have s.e. ≈ √(p(1−p)/(100·20)) ≈ 0.01)
    plus O(1/N) finite-width corrections (the theory is N → ∞): fractions 0.05, KS of the pooled
    first-layer preactivations 0.03, first-layer kernel blocks 5 %, feature readouts and field 5 %.
    """
    import sys
    import pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_erf_deep import layer_comparison
    task, sol = solved100
    s = mf.sample(task, "erf", 100, depth=2, T=0.04, steps=2000, seed=1, space="weight", thin=5, anneal=0.15,
                  progress=False)
    cmp = layer_comparison(sol, s, task)
    l1, l2 = cmp[1], cmp[2]
    assert l1["switching_neurons"] >= 90                     # first-layer neurons switch codes
    assert l2["switching_neurons"] == 0                      # feature-layer neurons never do
    assert l1["max_fraction_error"] < 0.05
    assert max(l1["ks"]) < 0.03
    assert np.max(np.abs(l1["B"][0] - l1["B"][1])) < 0.05 * np.max(np.abs(l1["B"][0]))
    assert np.max(np.abs(l1["d"][0] - l1["d"][1])) < 0.05 * np.max(l1["d"][0])
    assert l2["max_fraction_error"] < 0.05
    assert max(cmp["readout_rel_error"].values()) < 0.05 and cmp["t_rel_error"] < 0.05


def test_geometric_step_of_the_coded_iteration():
    """C^½ (C^-½ G C^-½)^w C^½: w = 0 → C, w = 1 → G, PSD in between, log-distance of the eigenvalues."""
    from meanfield.theory.erf_deep import _geometric_step
    C = np.array([[2.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 0.5]])
    G = np.diag([1e3, 1.0, 1e-2]) + 0.1
    for w, target in ((0.0, C), (1.0, G)):
        assert np.max(np.abs(_geometric_step(C, G, w)[0] - target)) < 1e-9 * np.max(np.abs(target))
    half, dist = _geometric_step(C, G, 0.5)
    assert np.linalg.eigvalsh(half)[0] > 0
    lm = np.linalg.eigvals(np.linalg.solve(C, G)).real                # eig(C⁻¹G) = eig(C^-½ G C^-½)
    assert abs(dist - np.max(np.abs(np.log(lm)))) < 1e-9
    # the midpoint is the matrix geometric mean: half C⁻¹ half = G
    assert np.max(np.abs(half @ np.linalg.solve(C, half) - G)) < 1e-8 * np.max(np.abs(G))


@pytest.mark.slow
def test_coded_regime_sampler_first_layer_switches_feature_layer_frozen():
    """N = P = 100, T = 0.02 (docs §8; ≈ 100 s): the finite network is in the coded regime — a coded
    feature layer (≥ 3 codes above 5 %) whose neurons (almost) never switch, and a class-structured first
    layer (fractions far from the prior ⅛, 1-1-1 below 5 %) whose neurons all switch. Thresholds from the
    run in docs §8 (3 of 100 feature neurons switched once in 200 samples; 11 839 first-layer switches)."""
    import sys
    import pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_erf_deep import sampler_layers
    task = mf.toy_task(100, 120, y_minus=0.5)
    s = mf.sample(task, "erf", 100, depth=2, T=0.02, steps=20000, seed=1, space="weight", thin=50, anneal=0.15,
                  progress=False)
    r = sampler_layers(s, task)
    assert r[1]["switching_neurons"] >= 90 and r[1]["switches"] > 1000
    assert r[2]["switching_neurons"] <= 10
    assert sum(p > 0.05 for p in r[2]["fractions"].values()) >= 3
    fr1 = r[1]["fractions"]
    assert fr1.get((1, 1, 1), 0.0) < 0.05 and max(fr1.values()) > 0.18


# ------------------------------------------------------- the coded branch: frozen feature population
# Sampler, N = P = 100, T = 0.02 (docs §8): feature code fractions (frozen), first-layer code fractions,
# kernel blocks and class field of the run; N = 400 numbers in the comments.
CODED_FEATURE = {(1, 1, 1): 0.568, (0, 1, 1): 0.123, (1, 1, 0): 0.110, (1, 0, 1): 0.108, (1, 0, 0): 0.090}
CODED_LAYER1 = {(0, 1, 1): 0.246, (1, 0, 0): 0.204, (1, 0, 1): 0.179, (1, 1, 0): 0.176, (0, 1, 0): 0.095,
                (0, 0, 1): 0.094, (1, 1, 1): 0.005, (0, 0, 0): 0.001}      # N = 400: 0.253 0.206 0.174 0.173 …
CODED_D = np.array([0.0852, 0.0670, 0.0669])                                # N = 400: (0.0859, 0.0686, 0.0686)
CODED_B = np.array([[0.2973, 0.2416, 0.2419], [0.2416, 0.3157, 0.2516], [0.2419, 0.2516, 0.3161]])
CODED_T = np.array([[3.74, -1.02, -1.02], [-1.98, 8.43, -2.77], [-1.97, -2.75, 8.44]])


def _check_coded_agreement(sol, fr1, d, B, t, fr_tol, k_tol, t_tol):
    l1 = sol.info["layer1"]
    for code, p in fr1.items():
        assert abs(l1["code_fractions"][code] - p) < fr_tol, (code, l1["code_fractions"][code], p)
    assert np.max(np.abs(l1["d"] - d)) < k_tol * np.max(d)
    assert np.max(np.abs(l1["B"] - B)) < k_tol * np.max(B)
    assert np.max(np.abs(sol.info["t_class"] - t)) < t_tol * np.max(np.abs(t))


@pytest.mark.slow
def test_coded_branch_frozen_population_vs_sampler():
    """N = P = 100, T = 0.02 (docs §8): sampler (≈ 100 s), then the theory with the run's frozen feature
    code fractions imposed, started from the run's K1 and t (``start="frozen"``; 676 s in all, shared machine).

    The theory must converge (relative residual on fresh quadrature grids ≤ 1e-4) and reproduce what it does not
    take from the run: the first-layer code fractions (switching neurons, sampling s.e. ≈ 0.01, and
    N = 100 vs 400 differ by ≤ 0.007: tolerance 0.03), the first-layer kernel blocks d and B (within 5 % of
    their largest entry: N = 100 vs 400 differ by 2.4 % in d), the field t and every code's readout (5 %).
    """
    import sys
    import pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_erf_deep import sampler_layers, layer_comparison
    task = mf.toy_task(100, 120, y_minus=0.5)
    s = mf.sample(task, "erf", 100, depth=2, T=0.02, steps=20000, seed=1, space="weight", thin=50, anneal=0.15,
                  progress=False)
    r = sampler_layers(s, task)
    classes = [list(task.labels).index(c) for c in range(3)]
    d, B = r[1]["blocks"]
    fr2 = {c: p for c, p in r[2]["fractions"].items() if p >= 0.01 and any(c)}
    sol = mf.solve(task, "erf", depth=2, T=0.02, start="frozen",
                   frozen=dict(fractions=fr2, d0=d, B0=B, t0=r["field"][classes] / 0.02))
    assert sol.converged, sol.message
    fr1 = {c: p for c, p in r[1]["fractions"].items()}
    _check_coded_agreement(sol, fr1, 0.5 * (d + d[[0, 2, 1]]), 0.5 * (B + B[[0, 2, 1]][:, [0, 2, 1]]),
                           r["field"][classes] / 0.02, fr_tol=0.03, k_tol=0.05, t_tol=0.05)
    cmp = layer_comparison(sol, s, task)
    assert cmp[1]["switching_neurons"] >= 90 and cmp[2]["switching_neurons"] <= 10
    assert max(cmp["readout_rel_error"].values()) < 0.05 and cmp["t_rel_error"] < 0.05


# converged frozen-population saddle at P = 100, T = 0.02 (t: 5 symmetric parameters, λ0, λ1, and P·C in the
# basis e0, (e1 + e2)/√2, (e1 − e2)/√2: S00, S01, S11, S22), from a solve started at the run's K1 and t
CODED_X = np.array([3.762620600446491, -1.025337039513242, -1.9820845060151053, 8.432473860418122,
                    -2.7521380195174423, -0.4800625943895222, -0.8565186673652294, 11.822361660524297,
                    -14.49439515131747, 25.234894011089892, 47.6495998677558])
CODED_READOUTS = {(1, 1, 1): [0.877, 0.898, 0.903], (0, 1, 1): [-0.887, 1.364, 1.359],
                  (1, 1, 0): [1.324, 1.548, -1.110], (1, 0, 1): [1.335, -1.110, 1.553], (1, 0, 0): [1.779, -0.441, -0.433]}


def test_coded_branch_stored_solution_matches_sampler():
    """The frozen-population saddle (docs §8) at a stored solution: one evaluation on fresh grids (≈ 25 s)
    must satisfy the equations (relative residual ≤ 1e-4, so no Newton round is needed) and its outputs
    must match the N = P = 100 sampler (docs §8 numbers): first-layer code fractions within 0.02 (sampling
    s.e. ≈ 0.01), d and B within 3 % of their largest entry (N = 100 vs 400 differ by 2.4 % in d), t and
    the per-code readouts within 3 %."""
    from meanfield.theory import erf_deep_frozen as co
    task = mf.toy_task(100, 120, y_minus=0.5)
    lam, C = co._lamC(CODED_X[5:], co._sym_basis(3), 100)
    l1 = lay.layer1_posterior(lam, C, RHO, 100)
    sol = mf.solve(task, "erf", depth=2, T=0.02, start="frozen",
                   frozen=dict(fractions=CODED_FEATURE, d0=l1["d"], B0=l1["B"], t0=co._t_sym(CODED_X[:5]), lam0=lam,
                               C0=C))
    assert sol.converged and sol.info["history"] == [], sol.message
    _check_coded_agreement(sol, CODED_LAYER1, CODED_D, CODED_B, CODED_T, fr_tol=0.02, k_tol=0.03, t_tol=0.03)
    for code, a in zip(sol.codes, sol.readouts):
        assert np.linalg.norm(a - CODED_READOUTS[code]) < 0.03 * np.linalg.norm(CODED_READOUTS[code])
    # the first layer is near-critical in the class contrast: the largest eigenvalue of P·C is along (0, 1, −1)
    w, V = np.linalg.eigh(100 * sol.info["C"])
    assert abs(abs(V[:, -1] @ np.array([0, 1, -1])) / np.sqrt(2) - 1) < 1e-8


def test_stein_lambda_class_reduction():
    """``erf_deep_coded.stein_lambda`` (class blocks of Λ2 from samples) against the P × P Stein form (D2)."""
    import types
    from meanfield.theory import erf_deep_coded as co
    from meanfield.theory.erf_general import Problem
    rng = np.random.default_rng(3)
    P, m, classes = 9, 3, np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    pr = Problem(types.SimpleNamespace(K0=np.eye(P), Y=np.eye(m)[classes], labels=classes), 0.05, 1.0)
    Z, t = rng.standard_normal((3, 7, P)), rng.standard_normal((P, m))
    lam, C = co.stein_lambda(pr, t, Z, classes, 3)[:2]
    c = pr.s / pr.P
    F, dF, d2F = pr.f(Z), pr.df(Z), pr.d2f(Z)
    Hb = (c * F @ t) @ t.T
    L = np.einsum("snp,snq->pq", Hb * dF, Hb * dF) + c * (t @ t.T) * np.einsum("snp,snq->pq", dF, dF)
    L = (L + np.diag(np.sum(Hb * d2F, axis=(0, 1)))) / (Z.shape[0] * Z.shape[1])
    for a in range(3):
        for b in range(3):
            blk = L[np.ix_(classes == a, classes == b)]
            off = blk[~np.eye(blk.shape[0], blk.shape[1], dtype=bool)] if a == b else blk.ravel()
            assert abs(C[a, b] - off.mean()) < 1e-12
        assert abs(lam[a] - (np.diag(L)[classes == a].mean() - C[a, a])) < 1e-12


# ------------------------------------------------- Fig. 5 setting (P = 500): the 1 <-> 2-symmetric sub-branch
# Sampler N = P = 500, T = 0.02, 3000 transitions annealed from 0.15 (docs §9): every feature neuron frozen in
# 1-1-1 (0 switches), all 500 first-layer neurons switch; class blocks rounded to the digits printed.
FIG5_LAYER1 = {(1, 0, 0): 0.220, (1, 1, 0): 0.202, (1, 0, 1): 0.196, (1, 1, 1): 0.181, (0, 0, 0): 0.055,
               (0, 1, 0): 0.051, (0, 0, 1): 0.050, (0, 1, 1): 0.046}
FIG5_D = np.array([0.104, 0.1046, 0.1046])
FIG5_B = np.array([[0.2679, 0.258, 0.2578], [0.258, 0.2484, 0.2482], [0.2578, 0.2482, 0.248]])
FIG5_T = np.array([[13.2, -5.65, -5.65], [-11.74, 19.39, -5.61], [-11.74, -5.6, 19.4]])
FIG5_READOUT = np.array([0.739, 0.615, 0.615])


def test_fig5_setting_theory_converges_and_matches_sampler():
    """P = 500, T = 0.02, feature population 1-1-1 (≈ 15 s). The solve starts from the run's (rounded) K1 and t,
    made positive definite; only the feature code fractions are taken from the run. It must converge on the
    1 <-> 2-symmetric sub-branch (residual ≤ 1e-4 on fresh grids; before the sub-branch it stalled at 3.6e-2) and
    reproduce the N = 500 run: first-layer code fractions within 0.02 (sampling s.e. ≈ 0.01), d and B within
    1 % of their largest entry, t and the readout within 1 %."""
    task = mf.toy_task(500, 520, y_minus=0.5)
    B0 = np.array([[0.2686, 0.2582, 0.2582], [0.2582, 0.2484, 0.2483], [0.2582, 0.2483, 0.2484]])   # PSD
    sol = mf.solve(task, "erf", depth=2, T=0.02, start="frozen",
                   frozen=dict(fractions={(1, 1, 1): 1.0}, d0=FIG5_D, B0=B0, t0=FIG5_T))
    assert sol.converged and sol.info["symmetric_subbranch"], sol.message
    _check_coded_agreement(sol, FIG5_LAYER1, FIG5_D, FIG5_B, FIG5_T, fr_tol=0.02, k_tol=0.01, t_tol=0.01)
    assert np.linalg.norm(sol.readouts[0] - FIG5_READOUT) < 0.01 * np.linalg.norm(FIG5_READOUT)
    # on the sub-branch classes 1 and 2 are exactly equal, in the first layer and in the feature layer
    assert np.max(np.abs(sol.info["C"] @ np.array([0, 1, -1]))) == 0.0
    assert sol.info["layer1"]["B"][1, 1] == sol.info["layer1"]["B"][1, 2]


def test_symmetric_subbranch_is_the_limit_of_the_full_quadrature():
    """:mod:`erf_deep_merged` (classes 1, 2 merged, exactly singular B and C) against the full 3-class quadratures
    with a small antisymmetric variance ε = 1e-7: the v-average and the first-layer posterior agree to 1e-6. (The
    difference falls ∝ ε: 5e-5 in log Z at ε = 1e-4, 5e-6 at 1e-5; below ≈ 1e-8 the 3-class quadrature itself
    loses digits to the conditioning of B⁻¹ — why the unconstrained solve could not sit on the sub-branch.)"""
    from meanfield.theory import erf_deep_merged as mg
    n = 200 * RHO
    B = np.array([[0.268, 0.258, 0.258], [0.258, 0.2485, 0.2485], [0.258, 0.2485, 0.2485]])   # PSD, rank 2
    e = np.array([0.0, 1.0, -1.0]) / np.sqrt(2)
    h, d = np.array([2.8, -0.2, -0.2]), np.array([0.104, 0.105, 0.105])
    full = lay.v_posterior(h, d, B + 1e-7 * np.outer(e, e), n)
    sub = mg.v_posterior(h, d, B, n)
    for k in ("logZ", "phi", "var", "gvv", "gv_gv", "cov_phi", "v_mean"):
        assert np.max(np.abs(full[k] - sub[k])) < 1e-6 * (1 + np.max(np.abs(sub[k]))), k
    lam, C = np.array([-0.11, 0.01, 0.01]), np.array([[1.0, -0.08, -0.08], [-0.08, 0.007, 0.007],
                                                      [-0.08, 0.007, 0.007]]) / 200
    full = lay.layer1_posterior(lam, C + 1e-7 * np.outer(e, e) / 200, RHO, 200)
    sub = mg.layer1_posterior(lam, C, RHO, 200)
    assert np.max(np.abs(full["B"] - sub["B"])) < 1e-6 and np.max(np.abs(full["d"] - sub["d"])) < 1e-6
    assert max(abs(full["code_fractions"][c] - p) for c, p in sub["code_fractions"].items()) < 1e-6
    with pytest.raises(ValueError, match="h_1 = h_2"):
        mg.v_posterior(np.array([2.8, -0.2, 0.3]), d, B, n)
