"""Deep networks (issue 6): sampler steps/s for L = 2 and 3 against a plain-NumPy weight-space step.

A "step" is one leapfrog step (one energy gradient). Rows per configuration: ``numpy-ref`` — the
same weight-space leapfrog step of an L-layer network in plain NumPy/SciPy (full N × N0 first
layer), and ``meanfield`` — the package's kernel (first layer in the span of the inputs), both
measured in this run (best of ``--rounds`` interleaved rounds).

Usage: python benchmarks/bench_deep.py [--quick] [--rounds 3]
"""
import argparse
import math
import os
import sys
import time

import meanfield as mf  # noqa: I001  (first: thread wait policies before numpy loads BLAS)
import numpy as np
import scipy.special as sps

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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
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


if __name__ == "__main__":
    main()
