"""Two-hidden-layer sigmoid networks on the toy task: theory vs weight-space sampler (issue 6).

    python benchmarks/bench_erf_deep.py --agreement [--N 500] [--T 0.04] [--steps 1000] [--anneal 0.15]
    python benchmarks/bench_erf_deep.py --coded [--N 100] [--T 0.02] [--steps 20000] [--theory] [--samples run.npz]

Paper Fig. 5 setting: N = P = 500, N0 = 520, ρ = [½, ¼, ¼], y₊ = 1, y₋ = ½. Weight space is the only
sampler for depth 2 and it is slow (N = P = 100: ≈ 0.3 s per transition on a shared core); the
default scale here is N = P = 100. Prints per layer: code fractions, switching neurons, kernel class
blocks (d, B), KS distance of the first-layer preactivation distribution per class, and for the
feature layer the readouts per code and the field t. Numbers: docs/theory_erf_deep.md §6.
``--coded``: the coded regime (lower T, docs §8): sampler table per layer (code fractions, switches,
kernel blocks, pooled preactivation histograms per class, readouts per feature code, field), and with
``--theory`` the theory's coded branch next to it: the sampler's feature code fractions (frozen: its
feature neurons do not switch) imposed, everything else solved (``erf_deep_frozen.solve_frozen``).

No comparison on a run that is not healthy: the run's ``Samples.health`` (computed from the stored run
for samples saved before health was recorded) is printed after the sampler table; if it has problems
— e.g. a network that does not classify its training inputs, as the N = P = 500 run of docs §9 — the
theory-vs-sampler comparison is not printed and the script exits with status 3.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from scipy.special import ndtr

import meanfield as mf
from meanfield.analysis import code_fractions, code_switching, neuron_codes

KAPPA = np.sqrt(np.pi / 2)


def _ks(samples, z, density):
    """Kolmogorov–Smirnov distance between pooled samples and a density tabulated on ``z``."""
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(z))])
    cdf /= cdf[-1]
    x = np.sort(np.ravel(samples))
    emp = np.arange(1, x.size + 1) / x.size
    th = np.interp(x, z, cdf)
    return float(max(np.max(np.abs(emp - th)), np.max(np.abs(emp - 1.0 / x.size - th))))


def kernel_blocks(Z, labels, K):
    """Class-reduced kernel ``(d, B)`` of the activations φ(Z) (samples × N × P), as in the theory."""
    A = ndtr(KAPPA * np.asarray(Z, float))
    Kmat = np.einsum("snp,snq->pq", A, A) / (A.shape[0] * A.shape[1])
    B = np.empty((K, K))
    for c in range(K):
        for e in range(K):
            blk = Kmat[np.ix_(labels == c, labels == e)]
            B[c, e] = blk[~np.eye(blk.shape[0], dtype=bool)].mean() if c == e else blk.mean()
    d = np.array([np.diag(Kmat)[labels == c].mean() - B[c, c] for c in range(K)])
    return d, B


def layer_comparison(sol, samples, task):
    """Theory vs samples, layer by layer. Returns a dict of numbers (see docs §6)."""
    lab, K = task.labels, sol.info["rho"].size
    out = {}
    for layer, key in ((1, "layer1"), (2, "feature")):
        Z = np.asarray(samples.preactivations[layer - 1], float)
        C = neuron_codes(ndtr(KAPPA * Z), lab, n_classes=K)
        fr = code_fractions(C)
        sw = code_switching(C)
        if layer == 1:
            th = sol.info["layer1"]["code_fractions"]
            z, dens = sol.info["layer1"]["z"], sol.info["layer1"]["density"]
            ks = [_ks(Z[:, :, lab == c], z, dens[c]) for c in range(K)]
            d_th, B_th = sol.info["layer1"]["d"], sol.info["layer1"]["B"]
        else:
            th = {c: float(p) for c, p in zip(sol.codes, sol.code_fractions)}
            ks = None
            d_th, B_th = sol.info["feature"]["d"], sol.info["feature"]["B"]
        d_s, B_s = kernel_blocks(Z, lab, K)
        codes = sorted(set(th) | set(fr))
        out[layer] = dict(fractions={c: (th.get(c, 0.0), fr.get(c, 0.0)) for c in codes},
                          max_fraction_error=max(abs(th.get(c, 0.0) - fr.get(c, 0.0)) for c in codes),
                          switching_neurons=sw["switching_neurons"], switches=sw["switches"], ks=ks,
                          d=(d_th, d_s), B=(B_th, B_s))
    a_err = {}
    C2 = neuron_codes(ndtr(KAPPA * np.asarray(samples.preactivations[1], float)), lab, n_classes=K)
    for k, code in enumerate(sol.codes):
        sel = np.all(C2 == np.array(code, dtype=np.int8), axis=-1)
        if sel.sum() >= 0.01 * sel.size:
            a = samples.readouts[sel].mean(axis=0)
            a_err[code] = float(np.linalg.norm(a - sol.readouts[k]) / np.linalg.norm(sol.readouts[k]))
    out["readout_rel_error"] = a_err
    t_s = (task.Y - samples.mean_prediction) / sol.T
    out["t_rel_error"] = float(np.linalg.norm(t_s - sol.field) / np.linalg.norm(sol.field))
    return out


def print_comparison(cmp):
    fmt = lambda c: "-".join(map(str, c))
    for layer in (1, 2):
        r = cmp[layer]
        print(f"layer {layer}: switching neurons {r['switching_neurons']}, switches {r['switches']}, "
              f"max |ΔP| {r['max_fraction_error']:.3f}")
        for c, (th, s) in r["fractions"].items():
            print(f"   {fmt(c)}: theory {th:.3f}  sampler {s:.3f}")
        print(f"   d theory {np.round(r['d'][0], 4)} sampler {np.round(r['d'][1], 4)}")
        print(f"   B theory {np.round(r['B'][0], 4).tolist()}\n     sampler {np.round(r['B'][1], 4).tolist()}")
        if r["ks"] is not None:
            print(f"   KS of p(z¹) per class: {np.round(r['ks'], 4)}")
    print(f"readouts (rel. error per code): { {fmt(c): round(e, 4) for c, e in cmp['readout_rel_error'].items()} }")
    print(f"field t rel. error: {cmp['t_rel_error']:.4f}")


def run_health(samples, task):
    """The run's ``Samples.health``; assessed from the stored run for samples saved before it was recorded."""
    if samples.health is not None:
        return samples.health
    from meanfield.sampling.health import assess
    return assess(samples.traces, samples.config, samples.readouts, samples.mean_prediction, task.Y, task.labels,
                  samples.preactivations, mf.nonlinearity(samples.config["nonlinearity"]))


def report_health(samples, task):
    """Print the run's health; returns ``health.ok``. An unhealthy run gets no theory-vs-sampler verdict."""
    h = run_health(samples, task)
    if h.ok:
        print("run health: ok (" + ", ".join(f"{c.name} {c.value:.3g}" for c in h.checks
                                            if c.name in ("train_accuracy", "train_error/T")) + ")")
        return True
    print("run health: NOT OK — no theory-vs-sampler comparison on this run (it is not a network that learned "
          "its task, or not an equilibrated one):")
    for problem in h.problems:
        print(f"   - {problem}")
    return False


def agreement(N=100, T=0.04, steps=1000, anneal=0.15, seed=1, P=None):
    """Theory vs sampler at N, P (default P = N), T (annealed from ``anneal``); prints and returns numbers
    (``cmp`` is None, nothing compared, when the run is not healthy)."""
    P = N if P is None else P
    task = mf.toy_task(P, P + 20, y_minus=0.5)
    t0 = time.time()
    sol = mf.solve(task, "erf", depth=2, T=T)
    t_theory = time.time() - t0
    print(f"theory: {t_theory:.0f} s, {sol.message}")
    t0 = time.time()
    s = mf.sample(task, "erf", N, depth=2, T=T, steps=steps, seed=seed, space="weight", thin=max(1, steps // 400),
                  anneal=anneal, progress=False)
    print(f"sampler: {time.time() - t0:.0f} s ({steps} transitions, annealed from {anneal})")
    if not report_health(s, task):
        return sol, s, None
    cmp = layer_comparison(sol, s, task)
    print_comparison(cmp)
    return sol, s, cmp


def sampler_layers(samples, task, K=3, bins=np.linspace(-5.0, 5.0, 21)):
    """Per-layer numbers of a depth-2 run: code fractions, switches, kernel blocks, class histograms."""
    lab = task.labels
    out = {}
    for layer in (1, 2):
        Z = np.asarray(samples.preactivations[layer - 1], float)
        C = neuron_codes(ndtr(KAPPA * Z), lab, n_classes=K)
        sw = code_switching(C)
        hist = [np.histogram(Z[:, :, lab == c], bins=bins, density=True)[0] for c in range(K)]
        out[layer] = dict(fractions=code_fractions(C), switching_neurons=sw["switching_neurons"],
                          switches=sw["switches"], blocks=kernel_blocks(Z, lab, K), hist=hist, bins=bins, codes=C)
    C2 = out[2]["codes"]
    out["readouts"] = {}
    for code in out[2]["fractions"]:
        sel = np.all(C2 == np.array(code, dtype=np.int8), axis=-1)
        out["readouts"][code] = samples.readouts[sel].mean(axis=0)
    out["field"] = (task.Y - samples.mean_prediction)
    return out


def print_sampler_layers(r, T, classes):
    fmt = lambda c: "-".join(map(str, c))
    for layer in (1, 2):
        q = r[layer]
        fr = sorted(q["fractions"].items(), key=lambda kv: -kv[1])
        print(f"layer {layer}: switching neurons {q['switching_neurons']}, switches {q['switches']}")
        print("   fractions " + ", ".join(f"{fmt(c)} {p:.3f}" for c, p in fr))
        d, B = q["blocks"]
        print(f"   d {np.round(d, 4).tolist()}  B {np.round(B, 4).tolist()}")
        mid = 0.5 * (q["bins"][1:] + q["bins"][:-1])
        print("   p(z) per class on z = " + " ".join(f"{z:5.1f}" for z in mid))
        for c, h in enumerate(q["hist"]):
            print(f"     class {c}:          " + " ".join(f"{v:5.3f}" for v in h))
    for code, a in r["readouts"].items():
        print(f"readout {fmt(code)}: {np.round(a, 3).tolist()}")
    print(f"field t per class: {np.round(r['field'][classes] / T, 2).tolist()}")


def coded(N=100, T=0.02, steps=20000, anneal=0.15, seed=1, theory=False, P=None, samples=None):
    """The coded regime (docs §8): sampler per layer (P = N unless given); with ``theory`` the
    frozen-population theory (:func:`coded_theory`) and the layer-by-layer comparison. ``samples``:
    an ``.npz`` path; loaded if it exists (the sampler is skipped), else the run checkpoints to
    ``samples + ".ckpt"`` (resumable) and is saved there. Returns ``(samples, layers, healthy)``; the
    comparison is skipped on an unhealthy run."""
    P = N if P is None else P
    task = mf.toy_task(P, P + 20, y_minus=0.5)
    t0 = time.time()
    loaded = samples is not None and os.path.exists(samples)
    if loaded:
        s = mf.Samples.load(samples)
        if (s.N, s.T, s.config["steps"], s.config["seed"]) != (N, T, steps, seed):
            raise ValueError(f"samples {samples} are of another run (N, T, steps, seed = {s.N}, {s.T}, "
                             f"{s.config['steps']}, {s.config['seed']})")
    else:
        s = mf.sample(task, "erf", N, depth=2, T=T, steps=steps, seed=seed, space="weight",
                      thin=max(1, steps // 400), anneal=anneal, progress=False,
                      checkpoint=None if samples is None else samples + ".ckpt")
        if samples is not None:
            s.save(samples)
    err = float(np.mean((task.Y - s.mean_prediction) ** 2))
    how = f"loaded from {samples}, run took {s.wall_time:.0f} s" if loaded else f"{time.time() - t0:.0f} s"
    print(f"sampler N = {N}, P = {P}, T = {T}: {how} ({steps} transitions, annealed from {anneal}); "
          f"train error/T {err / T:.3f}")
    classes = [list(task.labels).index(c) for c in range(3)]
    r = sampler_layers(s, task)
    print_sampler_layers(r, T, classes)
    healthy = report_health(s, task)
    if theory and healthy:
        sol = coded_theory(task, T, r, classes)
        print_comparison(layer_comparison(sol, s, task))
    return s, r, healthy


def coded_theory(task, T, r, classes, progress=True):
    """The theory's coded branch with the sampler's *frozen* feature population (docs §8): the
    feature code fractions of the run are imposed, t, K1 and Λ solved, started from the run's K1 and t."""
    from meanfield.theory.erf_deep_frozen import solve_frozen
    d, B = r[1]["blocks"]
    t0 = time.time()
    fr = {c: p for c, p in r[2]["fractions"].items() if p >= 0.01 and any(c)}
    sol = solve_frozen(task, T, fr, d, B, r["field"][classes] / T, progress=progress)
    print(f"theory (frozen feature population {fr}): {time.time() - t0:.0f} s, {sol.message}")
    return sol


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agreement", action="store_true", help="theory vs sampler (the Fig. 5 setting at --N)")
    ap.add_argument("--N", type=int, default=100)
    ap.add_argument("--P", type=int, default=None)
    ap.add_argument("--T", type=float, default=0.04)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--anneal", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--coded", action="store_true", help="the coded regime (sampler table; --theory adds the solve)")
    ap.add_argument("--theory", action="store_true")
    ap.add_argument("--samples", default=None, help="--coded: .npz of the run (loaded if present, else written)")
    args = ap.parse_args()
    if args.coded:
        _, _, healthy = coded(args.N, args.T, args.steps, args.anneal, args.seed, args.theory, P=args.P,
                              samples=args.samples)
        sys.exit(0 if healthy else 3)
    elif args.agreement:
        _, _, cmp = agreement(args.N, args.T, args.steps, args.anneal, args.seed, args.P)
        sys.exit(0 if cmp is not None else 3)
    else:
        task = mf.toy_task(args.P or args.N, (args.P or args.N) + 20, y_minus=0.5)
        t0 = time.time()
        sol = mf.solve(task, "erf", depth=2, T=args.T)
        print(f"theory solve: {time.time() - t0:.1f} s; {sol.message}")
        print(sol.info["layer1"]["code_fractions"])


if __name__ == "__main__":
    main()
