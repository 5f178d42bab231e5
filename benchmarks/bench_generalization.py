"""Generalization on digits 0/1/2 (issue 5): theory vs sampler vs the lazy GP baseline.

For linear, sigmoid (erf) and ReLU one-hidden-layer networks on scikit-learn's digits (classes
0, 1, 2, P = N = 100, 400 test inputs, y₊ = 1, y₋ = −½, T = 0.01; the numbers behind
``meanfield figure 6``, :func:`meanfield.figures.fig6.compute`) prints

* the correlation and mean absolute difference of the theory's and the sampled posterior mean
  predictor on the test inputs (target: corr > 0.95);
* the class-wise generalization error of the sampler (bias² + posterior variance), of the theory
  (bias² of its mean predictor: the predictor variance vanishes in the non-lazy limit) and of the
  GP baseline, with the relative theory–sampler difference (target: within 15 %) and whether the
  non-lazy error is below the GP's for every class;
* the centred kernel–target alignment (block-structure score) of the test kernel, sampled and
  theory (:func:`meanfield.analysis.kernel_alignment`), and the theory's test kernel against the
  sampled one (relative Frobenius difference, ``K rel Δ``);
* for the linear net, max |theory mean − GP mean| on the test inputs (target: 1e-8);
* with ``--theory-start``: the same errors for the sampler started in the theory's state
  (sigmoid, ReLU) — a stability check of the theory's state, as in the sigmoid toy comparison.

* with ``--anneal-sweep STEPS:T0 ...``: only the sigmoid, the annealed HMC sampler (seeds 0, 1) for each
  run length and starting temperature against the theory, each followed by the readout-collapsed
  sampler started in the state HMC froze in (docs/figures.md);
* with ``--collapsed-starts``: only the sigmoid, the collapsed sampler from a prior draw, from the
  frozen annealed-HMC state and from the theory's state (seeds 0, 1), with code fractions per half.

The sigmoid row of the main table samples with :func:`meanfield.sample_collapsed` (HMC freezes on
digits out of equilibrium; docs/sampler.md), linear and ReLU with preactivation-space HMC.

Usage: python benchmarks/bench_generalization.py [--small] [--theory-start] [--collapsed-starts]
       [--anneal-sweep 3000:0.15 ...]
"""
import argparse
import time

import meanfield as mf  # noqa: I001  (first: thread wait policies before numpy loads BLAS)
import numpy as np

from meanfield.analysis import kernel_alignment
from meanfield.figures import fig6


def theory_started(small):
    """Stability check: the sampler started in the theory's state (sigmoid, ReLU), same steps and T.

    The annealed runs above freeze (broken ergodicity): which coded state they reach depends on the
    annealing history. Started in the theory's state, the finite network stays there if the state is
    a posterior mode at this N; the printed errors then compare theory and sampler in the same state.
    """
    sc = fig6.SCALES["small" if small else "default"]
    task = fig6.digits_task(small)
    print(f"\ntheory-started sampler (N = {sc['P']}, {sc['steps']} transitions, T = {fig6.T}):")
    print(f"{'φ':7s} {'corr':>7s}  {'error sampler | theory (per class)':40s} {'max rel Δ':>9s} {'t rel':>7s}")
    for nl in ("erf", "relu"):
        sol = mf.solve(task, nl, T=fig6.T)
        s = mf.sample(task, nl, sc["P"], T=fig6.T, steps=sc["steps"], seed=0, space="preactivation", thin=2,
                      init=mf.theory_start(sol, sc["P"]), progress=False)
        mean, es = fig6.sampled_error(s, task, sc["n_var"])
        ft = sol.predict(task.X_test)
        et = np.mean((task.Y_test - ft) ** 2, axis=0)
        t_s = (task.Y - s.mean_prediction) / fig6.T
        errs = " ".join(f"{v:.4f}" for v in es) + " | " + " ".join(f"{v:.4f}" for v in et)
        print(f"{nl:7s} {np.corrcoef(ft.ravel(), mean.ravel())[0, 1]:7.4f}  {errs:40s} "
              f"{np.max(np.abs(et - es) / es):9.3f} {np.linalg.norm(sol.field - t_s) / np.linalg.norm(t_s):7.3f}")
        if nl == "relu":
            print(f"        |t| theory {np.linalg.norm(sol.field):.1f}, sampler {np.linalg.norm(t_s):.1f}; "
                  f"{len(sol.outliers['a_bar'])} outliers, certificate λ_max = {sol.info['lam_max']:.4f}")
        if not sol.converged:
            print(f"        theory: {sol.message}")


def anneal_sweep(specs, small=False):
    """Sigmoid: the annealed sampler's class errors against the theory for several anneals."""
    sc = fig6.SCALES["small" if small else "default"]
    task = fig6.digits_task(small)
    sol = mf.solve(task, "erf", T=fig6.T)
    ft = sol.predict(task.X_test)
    et = np.mean((task.Y_test - ft) ** 2, axis=0)
    print(f"sigmoid theory class errors {np.round(et, 4).tolist()} ({sol.message})")
    for spec in specs:
        steps, t0 = spec.split(":")
        steps, t0 = int(steps), float(t0)
        for seed in (0, 1):
            tic = time.perf_counter()
            s = mf.sample(task, "erf", sc["P"], T=fig6.T, steps=steps, seed=seed, space="preactivation",
                          thin=max(1, steps // 300), anneal=t0, progress=False)
            mean, es = fig6.sampled_error(s, task, sc["n_var"])
            print(f"  {steps} transitions from T = {t0}, seed {seed}: {time.perf_counter() - tic:.0f} s, "
                  f"errors {np.round(es, 4).tolist()}, max rel Δ {np.max(np.abs(et - es) / es):.3f}, "
                  f"corr {np.corrcoef(ft.ravel(), mean.ravel())[0, 1]:.4f}")
            _collapsed_line("    then the collapsed sampler from that state", task, s, seed, et, ft, sc)


def _collapsed_line(label, task, init, seed, et, ft, sc):
    """Run :func:`sample_collapsed` (sigmoid, Fig. 6 size) from ``init``; print its errors against the theory's."""
    tic = time.perf_counter()
    s = mf.sample_collapsed(task, "erf", sc["P"], T=fig6.T, sweeps=2 * sc["sweeps"], seed=seed, thin=4, init=init,
                            progress=False)
    mean, es = fig6.sampled_error(s, task, sc["n_var"])
    d = s.diagnostics
    print(f"{label}, seed {seed}: {time.perf_counter() - tic:.0f} s, errors {np.round(es, 4).tolist()}, "
          f"max rel Δ {np.max(np.abs(et - es) / es):.3f}, corr {np.corrcoef(ft.ravel(), mean.ravel())[0, 1]:.4f}, "
          f"jump acceptance {d['jump_acceptance']:.4f}\n      codes (class|readout signs), 1st half: "
          f"{d['code_fractions_first_half']}\n      2nd half: {d['code_fractions_second_half']}")


def collapsed_starts(small=False):
    """Sigmoid: the collapsed sampler from a prior draw, the frozen annealed-HMC state and the theory's state."""
    from meanfield.sampling.theory_start import _general_erf_state
    sc = fig6.SCALES["small" if small else "default"]
    task = fig6.digits_task(small)
    sol = mf.solve(task, "erf", T=fig6.T)
    ft = sol.predict(task.X_test)
    et = np.mean((task.Y_test - ft) ** 2, axis=0)
    print(f"sigmoid theory class errors {np.round(et, 4).tolist()}, codes "
          + " ".join(f"{''.join(map(str, c))}:{p:.3f}" for c, p in zip(sol.codes, sol.code_fractions)))
    h = mf.sample(task, "erf", sc["P"], T=fig6.T, steps=sc["steps"], seed=0, space="preactivation", thin=2,
                  anneal=0.15, progress=False)
    _, eh = fig6.sampled_error(h, task, sc["n_var"])
    from meanfield.analysis import code_fractions
    from meanfield.agreement.codes import sampled_codes
    fr = code_fractions(sampled_codes(h, task)[-1:])
    print(f"annealed HMC ({sc['steps']} transitions from T = 0.15): errors {np.round(eh, 4).tolist()}, "
          f"max rel Δ {np.max(np.abs(et - eh) / eh):.3f}, codes at the last sample "
          + " ".join(f"{''.join(map(str, c))}:{p:.2f}" for c, p in sorted(fr.items(), key=lambda kv: -kv[1])))
    starts = dict(prior=None, frozen_hmc=h, theory=_general_erf_state(sol, sc["P"], np.random.default_rng(1))[1])
    for name, init in starts.items():
        for seed in (0, 1):
            _collapsed_line(f"collapsed from {name}", task, init, seed, et, ft, sc)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="tiny scale (P = 45)")
    ap.add_argument("--theory-start", action="store_true",
                    help="also run the sampler started in the theory's state (sigmoid, ReLU)")
    ap.add_argument("--collapsed-starts", action="store_true",
                    help="only the sigmoid: the collapsed sampler from three kinds of start against the theory")
    ap.add_argument("--anneal-sweep", nargs="+", metavar="STEPS:T0",
                    help="only the sigmoid: annealed sampler vs theory for these run lengths / start temperatures")
    a = ap.parse_args(argv)
    if a.collapsed_starts:
        collapsed_starts(a.small)
        return
    if a.anneal_sweep:
        anneal_sweep(a.anneal_sweep, a.small)
        return
    t0 = time.perf_counter()
    d = fig6.compute(small=a.small, progress=True)
    print(f"computed in {time.perf_counter() - t0:.0f} s (P = {d['scale']['P']}, {d['Y_test'].shape[0]} test inputs)")
    lab = d["labels_test"]
    print(f"\n{'φ':7s} {'corr':>7s} {'MAD':>7s}  {'error sampler | theory | GP (per class)':58s} "
          f"{'max rel Δ':>9s} {'< GP':>5s} {'align s/t':>11s} {'K rel Δ':>8s}")
    for nl in ("linear", "erf", "relu"):
        r = d[nl]
        es, et, eg = r["error"], r["theory_error"], r["gp_error"]
        if r["theory_prediction"] is not None:
            ft, fs = r["theory_prediction"], r["mean_prediction"]
            corr = np.corrcoef(ft.ravel(), fs.ravel())[0, 1]
            mad = np.mean(np.abs(ft - fs))
            rel = np.max(np.abs(et - es) / es)
        else:
            corr = mad = rel = np.nan
        al_s = kernel_alignment(r["test_kernel"], lab)
        al_t = np.nan if r["theory_kernel"] is None else kernel_alignment(r["theory_kernel"], lab)
        k_rel = np.nan if r["theory_kernel"] is None else \
            np.linalg.norm(r["theory_kernel"] - r["test_kernel"]) / np.linalg.norm(r["test_kernel"])
        errs = " ".join(f"{v:.4f}" for v in es) + " | " + ("n/a" if et is None else " ".join(f"{v:.4f}" for v in et)) \
            + " | " + " ".join(f"{v:.4f}" for v in eg)
        print(f"{nl:7s} {corr:7.4f} {mad:7.4f}  {errs:58s} {rel:9.3f} {str(bool(np.all(es < eg))):>5s} "
              f"{al_s:5.3f}/{al_t:5.3f} {k_rel:8.3f}")
        if r["theory"]:
            print(f"        theory: {r['theory']}")
    if a.theory_start:
        theory_started(a.small)
    # the linear non-lazy mean predictor is the GP mean at T = 0 (at finite T their regularizations differ by
    # O(T/λ_min)); digits 0/1/2 have rank K0 = 50 < P = 100: both are solved on range(K0), exactly
    task = fig6.digits_task(a.small)
    print("\nlinear: max |theory mean − GP mean| on the test inputs; class errors theory vs GP − GP variance")
    for T in (fig6.T, 1e-4, 1e-6, 0.0):
        sol, gp = mf.solve(task, "linear", T=T), mf.gp_baseline(task, "linear", T=T)
        f = sol.predict(task.X_test)
        line = f"  P = {task.P} (rank K0 = {np.linalg.matrix_rank(task.K0)}), T = {T:g}: " \
               f"{np.max(np.abs(f - gp.mean(task.X_test))):.2e}"
        if T == 0:
            eps = np.mean((task.Y_test - f) ** 2, axis=0)
            _, var = gp.bias_variance()
            line += f"; ε_theory − (ε_GP − var_GP) = {np.max(np.abs(eps - gp.generalization_error() + var)):.1e}"
        print(line)

if __name__ == "__main__":
    main()
