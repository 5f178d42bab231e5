"""Deep networks (issue 6): sampler steps/s for L = 2 and 3, and (``--agreement``) theory vs sampler.

Speed: a "step" is one leapfrog step (one energy gradient). Rows per configuration: ``numpy-ref`` —
the same weight-space leapfrog step of an L-layer network in plain NumPy/SciPy (full N × N0 first
layer), and ``meanfield`` — the package's kernel (first layer in the span of the inputs), both
measured in this run (best of ``--rounds`` interleaved rounds).

Agreement (``--agreement``; docs/theory.md, "Deep networks: theory vs sampler"): linear L = 2, 3 on the
toy task N = P, per layer the kernel error against the finite-N and N → ∞ theories next to the measured
Monte-Carlo floor, the learned low-rank part along the task directions and its growth across layers;
ReLU L = 3 (Fig. 3, N = P = 100, y₋ = −½): per layer scheme, outliers, codes and code switches.

Usage: python benchmarks/bench_deep.py [--quick] [--rounds 3]
       python benchmarks/bench_deep.py --agreement [--depths 2 3] [--N 200] [--steps 300] [--relu-steps 600]
                                       [--dir DIR]   (checkpoints / samples; resumable)
"""
import argparse
import math
import os
import sys
import time

import meanfield as mf  # noqa: I001  (first: thread wait policies before numpy loads BLAS)
import numpy as np
import scipy.special as sps
from meanfield.agreement.floors import batch_kernels, batch_standard_error, excess

sys.path.insert(0, os.path.dirname(__file__))
from bench_sampler import time_meanfield  # noqa: E402  (the same kernel timing, any depth)

KAPPA = math.sqrt(math.pi / 2)


def _act(Z, name):
    if name == "erf":
        return 0.5 * sps.erfc(-KAPPA * Z / math.sqrt(2)), KAPPA / math.sqrt(2 * math.pi) * np.exp(-0.5 * (KAPPA * Z) ** 2)
    if name == "relu":
        return np.maximum(Z, 0.0), (Z > 0).astype(np.float64)
    return Z, np.ones_like(Z)


def reference_grad(Ws, At, X, Y, sig_a, T, name):
    """Gradient of the weight-space energy of an L-layer network (standard-normal weights)."""
    N0 = X.shape[0]
    N = At.shape[0]
    Hs, Ds, H = [], [], X
    for ell, W in enumerate(Ws):
        Z = W @ H / math.sqrt(N0 if ell == 0 else N)
        H, D = _act(Z, name)
        Hs.append(H)
        Ds.append(D)
    R = Y - sig_a * (H.T @ At) / N
    gA = At - (sig_a / T) * (H @ R)
    dZ = -(sig_a / T) * (At @ R.T) * Ds[-1]
    gWs = [None] * len(Ws)
    for ell in range(len(Ws) - 1, -1, -1):
        prev = X if ell == 0 else Hs[ell - 1]
        scale = math.sqrt(N0 if ell == 0 else N)
        gWs[ell] = Ws[ell] + dZ @ prev.T / scale
        if ell > 0:
            dZ = (Ws[ell].T @ dZ / scale) * Ds[ell - 1]
    return gWs, gA


def time_reference(task, N, L, name, sig_a, T, reps):
    rng = np.random.default_rng(0)
    Ws = [rng.standard_normal((N, task.N0))] + [rng.standard_normal((N, N)) for _ in range(L - 1)]
    At = rng.standard_normal((N, task.m))
    pW = [np.zeros_like(W) for W in Ws]
    pA = np.zeros_like(At)
    eps = 1e-4
    g = reference_grad(Ws, At, task.X, task.Y, sig_a, T, name)
    t0 = time.perf_counter()
    for _ in range(reps):                      # leapfrog: kick, drift, gradient, (next kick merged)
        for W, p, gw in zip(Ws, pW, g[0]):
            p -= eps * gw
            W += eps * p
        pA -= eps * g[1]
        At += eps * pA
        g = reference_grad(Ws, At, task.X, task.Y, sig_a, T, name)
    return (time.perf_counter() - t0) / reps


# ----------------------------------------------------------------------------- agreement: linear
T_AGREE = 0.01


def task_directions(Y):
    """Unit eigen-directions q_r of YYᵀ in span Y (P × m, ascending eigenvalue of YᵀY)."""
    Q, _ = np.linalg.qr(Y)
    _, W = np.linalg.eigh(Q.T @ Y @ Y.T @ Q)
    return Q @ W


def lowrank(K, K0, D):
    """Learned part along the task directions: ``λ_r = q_rᵀ (K − K0) q_r`` (last axes P × P)."""
    return np.einsum("pr,...pq,qr->...r", D, K - K0, D)


def bulk_level(K, D):
    """Mean kernel eigenvalue orthogonal to span Y: ``(tr K − Σ_r q_rᵀKq_r)/(P − m)``."""
    P, m = D.shape
    return (np.trace(K, axis1=-2, axis2=-1) - np.einsum("pr,...pq,qr->...", D, K, D)) / (P - m)


def growth_slopes(lam):
    """Slopes β_r of the least-squares fit ``log λ_ℓ,r = α_r + β_r ℓ`` over ℓ = 1 … L (lam: (..., L, m))."""
    lam = np.asarray(lam)
    L = lam.shape[-2]
    ell = np.arange(1, L + 1) - 0.5 * (L + 1)
    return np.einsum("l,...lr->...r", ell, np.log(lam)) / np.sum(ell ** 2)


def _n_eff(B, D, N):
    """Effective number of independent samples behind batch means B (n_b, P, P) of the bulk.

    The bulk block Π K Π (Π = 1 − DDᵀ) of one sample is Wishart-like, E‖ΔK‖² = [(tr ΠKΠ)² +
    tr (ΠKΠ)²]/N, so n_eff = that / (squared batch-means standard error of the mean).
    """
    Pi = np.eye(D.shape[0]) - D @ D.T
    Bb = Pi @ B @ Pi
    se2 = batch_standard_error(Bb) ** 2
    Kb = Bb.mean(axis=0)
    return float((np.trace(Kb) ** 2 + np.sum(Kb * Kb)) / (N * se2))


def linear_agreement(task, samples, n_batches=10):
    """Per-layer agreement of a deep linear run with the finite-N and N → ∞ theories.

    The finite-N reference is the one-loop posterior mean of the kernels
    (``solve(..., N=N).info["kernels_mean"]``); the saddle-point kernels (``.kernels``) are
    reported next to it (they are the mode, off by O(1/N)).

    Parameters
    ----------
    task : Task
    samples : Samples
        Weight-space run of a linear network with recorded preactivations.
    n_batches : int
        Batches for the Monte-Carlo errors (batch means).

    Returns
    -------
    dict
        ``layers``: per layer ℓ = 1 … L a dict with ``err_N``, ``err_saddle``, ``err_inf`` (rel.
        Frobenius error of the sampled kernel against the finite-N mean, the finite-N saddle and
        the N → ∞ theory), ``floor`` (batch-means standard error of the sampled kernel relative to
        the theory's norm, :func:`meanfield.agreement.floors.batch_standard_error` of
        :func:`~meanfield.agreement.floors.batch_kernels`), ``excess`` (√max(err_N² − floor², 0): the
        error noise does not explain, :func:`~meanfield.agreement.floors.excess`),
        ``n_eff`` (effective independent samples of the bulk, :func:`_n_eff`),
        ``lam_N``, ``lam_saddle``, ``lam_inf``, ``lam_s``, ``lam_se`` (learned part per task
        direction), ``bulk_N``, ``bulk_inf``, ``bulk_s``, ``bulk_se``. Also ``U_s``, ``U_N``,
        ``U_N_mean``, ``U_inf`` (eigenvalues), ``slopes`` (β per direction for ``N``, ``saddle``,
        ``inf``, ``s`` and its batch error ``se``), ``kappa`` (β / log(u_r/σ_a²), 1 at leading
        order) and ``kappa_sigma`` (β / log σ_a⁻²: the exponent of the paper's σ_a^{2(L−ℓ)}),
        ``sigma_a2``, ``n_stored``.
    """
    cfg = samples.config
    L, N, T = cfg["depth"], cfg["N"], cfg["T"]
    sol_N = mf.solve(task, "linear", depth=L, T=T, N=N)
    sol_inf = mf.solve(task, "linear", depth=L, T=T)
    kmean = sol_N.info.get("kernels_mean") or sol_N.kernels
    K0, Y = task.K0, task.Y
    D = task_directions(Y)
    Kb = batch_kernels(samples.preactivations, n_batches)
    rel = lambda A, B: float(np.linalg.norm(A - B) / np.linalg.norm(B))
    layers = []
    for ell in range(1, L + 1):
        Ks, KN, Ki, B = samples.kernels[ell], kmean[ell], sol_inf.kernels[ell], Kb[ell - 1]
        err_N, floor = rel(Ks, KN), float(batch_standard_error(B) / np.linalg.norm(KN))
        lb, bb = lowrank(B, K0, D), bulk_level(B, D)
        layers.append(dict(err_N=err_N, err_saddle=rel(Ks, sol_N.kernels[ell]), err_inf=rel(Ks, Ki), floor=floor,
                           excess=excess(err_N, floor), lam_N=lowrank(KN, K0, D),
                           n_eff=_n_eff(B, D, N),
                           lam_saddle=lowrank(sol_N.kernels[ell], K0, D), lam_inf=lowrank(Ki, K0, D),
                           lam_s=lowrank(Ks, K0, D), lam_se=lb.std(axis=0, ddof=1) / np.sqrt(n_batches),
                           bulk_N=float(bulk_level(KN, D)), bulk_inf=float(bulk_level(Ki, D)),
                           bulk_s=float(bulk_level(Ks, D)), bulk_se=float(bb.std(ddof=1) / np.sqrt(n_batches))))
    lam_b = np.stack([lowrank(B, K0, D) for B in Kb], axis=1)          # (batches, L, m)
    slopes = {k: growth_slopes([r["lam_" + k] for r in layers]) for k in ("N", "saddle", "inf", "s")}
    slopes["se"] = growth_slopes(lam_b).std(axis=0, ddof=1) / np.sqrt(n_batches)
    sig2 = cfg["sigma_a2"]
    V = Y.T @ D                                                        # readout-space direction of each q_r
    V /= np.linalg.norm(V, axis=0)
    u = np.einsum("ar,ab,br->r", V, sol_N.U, V)
    main = ("N", "saddle", "inf", "s")
    return dict(layers=layers, slopes=slopes, kappa={k: slopes[k] / np.log(u / sig2) for k in main},
                kappa_sigma={k: slopes[k] / np.log(1 / sig2) for k in main}, u=u, sigma_a2=sig2,
                U_s=np.linalg.eigvalsh(samples.readout_covariance()), U_N=np.linalg.eigvalsh(sol_N.U),
                U_N_mean=np.linalg.eigvalsh(sol_N.info["U_mean"]), U_inf=np.linalg.eigvalsh(sol_inf.U),
                n_stored=int(samples.readouts.shape[0]), n_batches=n_batches, L=L, N=N, P=task.P, T=T)


def _v(x, f="{:.4f}"):
    return " ".join(f.format(v) for v in np.ravel(x))


def format_linear(res):
    """Readable per-layer table of :func:`linear_agreement`."""
    out = [f"linear L = {res['L']}, N = {res['N']}, P = {res['P']}, T = {res['T']}: {res['n_stored']} stored samples, "
           f"{res['n_batches']} batches; σ_a² = {res['sigma_a2']:.4f}",
           f"  U eig: samples {_v(res['U_s'])} | theory N: one-loop mean {_v(res['U_N_mean'])}, saddle "
           f"{_v(res['U_N'])} | N=∞ {_v(res['U_inf'])}",
           "  kernel rel. Frobenius error vs theory (N: one-loop mean; saddle; ∞), noise floor, excess = √(err² − floor²)",
           f"  {'ℓ':>2s} {'vs N':>7s} {'saddle':>7s} {'vs ∞':>7s} {'floor':>7s} {'n_eff':>6s} {'excess':>7s}   "
           f"{'bulk: N | ∞ | samples ± se':34s}"]
    for ell, r in enumerate(res["layers"], 1):
        out.append(f"  {ell:2d} {r['err_N']:7.4f} {r['err_saddle']:7.4f} {r['err_inf']:7.4f} {r['floor']:7.4f} {r['n_eff']:6.0f} "
                   f"{r['excess']:7.4f}   {r['bulk_N']:.4f} | {r['bulk_inf']:.4f} | {r['bulk_s']:.4f} ± {r['bulk_se']:.4f}")
    out.append("  learned part λ_ℓ,r = q_rᵀ(K_ℓ − K0)q_r per task direction r: N | saddle | ∞ | samples ± se")
    for ell, r in enumerate(res["layers"], 1):
        out.append(f"  {ell:2d} {_v(r['lam_N'], '{:.3f}')} | {_v(r['lam_saddle'], '{:.3f}')} | "
                   f"{_v(r['lam_inf'], '{:.3f}')} | " + " ".join(f"{a:.3f}±{b:.3f}" for a, b in zip(r["lam_s"], r["lam_se"])))
    s, k, ks = res["slopes"], res["kappa"], res["kappa_sigma"]
    out.append(f"  growth log λ_ℓ = α + βℓ: β N {_v(s['N'])} | saddle {_v(s['saddle'])} | ∞ {_v(s['inf'])} | samples "
               + " ".join(f"{a:.4f}±{b:.4f}" for a, b in zip(s["s"], s["se"])))
    out.append(f"  κ = β/log(u/σ_a²) (leading order 1): N {_v(k['N'])} | ∞ {_v(k['inf'])} | samples {_v(k['s'])}")
    out.append(f"  exponent of σ_a^(2(L−ℓ)), β/log σ_a⁻²: N {_v(ks['N'])} | ∞ {_v(ks['inf'])} | samples {_v(ks['s'])}")
    return "\n".join(out)


# ----------------------------------------------------------------------------- agreement: ReLU
def relative_codes(H, labels, K, frac=0.5):
    """ReLU codes, scale-free: class c is on when its mean activation exceeds ``frac`` × the neuron's
    largest class mean (a silent neuron has code 0…0). H: (S, N, P) → (S, N, K) int8."""
    M = np.stack([H[..., labels == c].mean(axis=-1) for c in range(K)], axis=-1)
    top = M.max(axis=-1, keepdims=True)
    return ((M > frac * top) & (top > 0)).astype(np.int8)


def relu_layers(task, samples, factor=10.0, burn=0):
    """Coding scheme of every layer of a ReLU run (:mod:`meanfield.analysis`).

    Parameters
    ----------
    task : Task
    samples : Samples
        Run with recorded preactivations.
    factor : float
        Outlier threshold: a neuron's class-discriminative norm (between-class s.d. of its class-mean
        activations, × ‖a_i‖ in the feature layer) > ``factor`` × the median
        (:func:`meanfield.analysis.scheme_type`, whose outliers these are).
    burn : int
        Stored samples to discard at the start (burn-in).

    Returns
    -------
    list of dict
        Per layer ℓ = 1 … L: ``scheme`` (SchemeResult), ``outliers`` (indices), ``ratios``,
        ``outlier_codes`` (sample-averaged activations, :func:`relative_codes`), ``outlier_activation``
        (class-mean activation/√N per outlier), ``readout`` (feature layer: ⟨a_i⟩/√N per outlier),
        ``bulk_codes`` (code fractions of the other neurons, pooled over samples), ``bulk_mean``
        (their class-mean activation), ``switches_outliers`` / ``switches_bulk``
        (:func:`meanfield.analysis.code_switching` totals).
    """
    from meanfield import analysis as an
    lab, K = task.labels, task.m
    L, N = samples.config["depth"], samples.config["N"]
    out, A = [], samples.readouts[burn:]
    for ell, Z in enumerate(samples.preactivations, 1):
        H = np.maximum(np.asarray(Z[burn:], dtype=np.float64), 0.0)
        a = A if ell == L else None
        scheme = an.scheme_type(H, lab, a, outlier_factor=factor)
        idx, ratios = scheme.outliers, scheme.outlier_ratios
        codes, bulk, Hm = relative_codes(H, lab, K), np.setdiff1d(np.arange(N), idx), H.mean(axis=0)
        cm = np.stack([Hm[:, lab == c].mean(axis=-1) for c in range(K)], axis=-1)
        row = dict(scheme=scheme, outliers=idx, ratios=ratios,
                   outlier_codes=[tuple(int(b) for b in c) for c in relative_codes(Hm[None], lab, K)[0][idx]],
                   outlier_activation=cm[idx] / np.sqrt(N), bulk_codes=an.code_fractions(codes[:, bulk]),
                   bulk_mean=cm[bulk].mean(axis=0),
                   switches_outliers=an.code_switching(codes[:, idx])["switches"] if idx.size else 0,
                   switches_bulk=an.code_switching(codes[:, bulk]), n_samples=H.shape[0])
        if a is not None:
            row["readout"] = A.mean(axis=0)[idx] / np.sqrt(N)
        out.append(row)
    return out


def format_relu(rows):
    """Readable per-layer summary of :func:`relu_layers`."""
    fmt = mf.analysis.format_code
    lines = []
    for ell, r in enumerate(rows, 1):
        sw = r["switches_bulk"]
        lines.append(f"  layer {ell}: {r['scheme'].scheme} ({r['scheme'].reason}); {len(r['outliers'])} outlier(s), "
                     f"codes {[fmt(c) for c in r['outlier_codes']]}, ratio to median {_v(r['ratios'], '{:.1f}')}")
        for k, i in enumerate(r["outliers"]):
            extra = f", readout/√N {_v(r['readout'][k])}" if "readout" in r else ""
            lines.append(f"      neuron {i}: class-mean activation/√N {_v(r['outlier_activation'][k])}{extra}")
        top = ", ".join(f"{fmt(c)}: {f:.3f}" for c, f in list(r["bulk_codes"].items())[:5])
        lines.append(f"      bulk codes {top}; bulk class-mean activation {_v(r['bulk_mean'])}")
        lines.append(f"      code switches over {r['n_samples']} samples: outliers {r['switches_outliers']}, "
                     f"bulk {sw['switches']} ({sw['switching_neurons']} neurons, rate {sw['rate']:.4f})")
    return "\n".join(lines)


def run_linear(N, L, steps, seed, directory):
    """The linear agreement run (toy task N = P, N0 = P + 20, y₋ = 0), resumable from ``directory``."""
    task = mf.toy_task(N, N + 20, y_minus=0.0)
    ck = None if directory is None else os.path.join(directory, f"linear_L{L}_N{N}_steps{steps}_seed{seed}.npz")
    s = mf.sample(task, "linear", N=N, depth=L, T=T_AGREE, steps=steps, space="weight", seed=seed, checkpoint=ck)
    return task, s


def run_relu(steps, seed, directory, N=100, L=3):
    """The Fig. 3 ReLU run (N = P = 100, N0 = 120, y₋ = −½, L = 3) from a prior draw, resumable.

    100 warm-up transitions, ≈ 300 of the rest stored (drop a burn-in at analysis time);
    trajectories of 0.5 prior units (≈ 200 leapfrog steps at the ≈ 0.0026 step the outliers force).
    """
    task = mf.toy_task(N, N + 20, y_minus=-0.5)
    ck = None if directory is None else os.path.join(directory, f"relu_L{L}_N{N}_steps{steps}_seed{seed}.npz")
    s = mf.sample(task, "relu", N=N, depth=L, T=T_AGREE, steps=steps, warmup=100, thin=max(2, steps // 300),
                  space="weight", seed=seed, checkpoint=ck, checkpoint_every=50, trajectory_length=0.5)
    return task, s


def speed(a):
    reps = 10 if a.quick else 40
    configs = [("toy N=P=200, linear", 200, "linear", 0.0), ("Fig. 5 N=P=500, erf", 500, "erf", 0.5),
               ("Fig. 3 N=P=100, relu", 100, "relu", -0.5)]
    print(f"{'config':24s} {'L':>2s} {'impl':10s} {'steps/s':>9s} {'vs ref':>7s}")
    for label, N, name, ym in configs:
        task = mf.toy_task(N, N + 20, y_minus=ym)
        for L in (2, 3):
            sig_a = math.sqrt(mf.default_sigma_a2(name, task.P, L))
            best = {"numpy-ref": math.inf, "meanfield": math.inf}
            for _ in range(a.rounds):
                best["numpy-ref"] = min(best["numpy-ref"], time_reference(task, N, L, name, sig_a, 0.01, max(3, reps // 4)))
                t_mf = time_meanfield(task, N, name, sig_a, 0.01, "weight", True, reps, depth=L)[0]
                best["meanfield"] = min(best["meanfield"], t_mf)
            for impl, t in best.items():
                print(f"{label:24s} {L:2d} {impl:10s} {1 / t:9.1f} {best['numpy-ref'] / t:7.2f}", flush=True)


def agreement(a):
    for L in a.depths:
        t0 = time.perf_counter()
        task, s = run_linear(a.N, L, a.steps, a.seed, a.dir)
        print(format_linear(linear_agreement(task, s, a.batches)))
        print(f"  ({time.perf_counter() - t0:.0f} s; sampler diagnostics: accept {s.diagnostics['accept_rate']:.3f}, "
              f"equipartition {s.diagnostics['equipartition']:.3f})\n", flush=True)
    if a.relu_steps:
        task, s = run_relu(a.relu_steps, a.seed, a.dir)
        burn = s.readouts.shape[0] // 2                 # analyse the second half of the stored samples
        print(f"ReLU L = 3, N = P = 100, y₋ = −½, T = {T_AGREE}: {a.relu_steps} transitions, "
              f"{s.readouts.shape[0] - burn} samples analysed")
        print(format_relu(relu_layers(task, s, burn=burn)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--agreement", action="store_true", help="theory vs sampler instead of speed")
    ap.add_argument("--depths", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--N", type=int, default=200)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--relu-steps", type=int, default=600, help="0: skip the ReLU run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", default=None, help="directory for resumable checkpoints")
    a = ap.parse_args(argv)
    agreement(a) if a.agreement else speed(a)


if __name__ == "__main__":
    main()
