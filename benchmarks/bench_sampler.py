"""Sampler throughput against a plain-NumPy weight-space HMC step, measured in the same run.

A "step" is one leapfrog step: one energy gradient plus the position/momentum
updates (a MALA transition is one step; an HMC transition is n_leapfrog steps).

Rows:
* ``numpy-ref``: the same weight-space leapfrog step in plain NumPy/SciPy
  (full N × N0 first-layer weights, scipy.special.erf), the reference.
* ``weight``: meanfield, weight space (first layer in the span of the inputs).
* ``weight-full``: meanfield, weight space without the span projection.
* ``preact``: meanfield, preactivation space (K0 factor; identity for the toy task). On the toy
  task a trajectory's intermediate kicks use float32 surrogate forces for the sigmoid (the end
  points, hence the energies of the Metropolis test, stay exact; docs/sampler.md).
* ``preact-f64``: the same with every force from the float64 φ̃ (the previous reference path).
* ``phi-floor``: only φ and φ' of the N·P preactivations (the vectorized float64
  sigmoid the preactivation step evaluates once per step).
* ``mem-floor``: only the memory traffic of a fused preactivation step: one
  read-modify-write pass over four N·P float64 arrays (p, q, φ, φ'), 64 bytes per
  preactivation, with one multiply-add per element; the table prints its GB/s.
  A preactivation step does both (φ and this traffic), so ``vs ref`` of the two
  floors bounds what the step can reach on this machine.

``GEMM GF/s`` counts only the matrix-product flops of the weight-space step
(2 products of N × r × P per gradient, plus 3 N × N × P per extra layer), and
``roofline`` = (those flops at this machine's float64 GEMM rate, measured now on
the same shapes) / (measured step time): 1.0 would be pure GEMM speed.

Usage: python benchmarks/bench_sampler.py [--quick] [--rounds R] [--threads T [--cpu-time]]

``--threads 1`` runs everything (OpenBLAS and numba) on one thread: on a loaded
machine multi-threaded GEMM collapses (threads waiting for each other), and the
single-thread ratios are then the meaningful comparison. ``--threads 1 --cpu-time``
times by process CPU time: on a shared machine a single-threaded run may get only
a third of a core, so wall times are inflated by a varying factor while CPU time
measures the work itself.
"""
import argparse
import math
import os
import sys
import time

if "--threads" in sys.argv:       # before numpy / numba read their thread settings
    _t = sys.argv[sys.argv.index("--threads") + 1]
    for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[_v] = _t

import meanfield as mf  # first: it sets the OpenMP/OpenBLAS wait policies before numpy loads BLAS
import numba as nb
import numpy as np
import scipy.special as sps

from meanfield._kernels import network as nw
from meanfield._kernels.fastphi import activate_erf
from meanfield.nonlinearities import nonlinearity
from meanfield.sampling.geometry import first_layer_geometry
from meanfield.sampling.threads import kernel_threads


CLOCK = time.perf_counter      # --cpu-time: time.process_time (one thread only)


def numpy_reference_step(state, X, Y, sig_a, T, eps, name):
    """One leapfrog step of weight-space HMC in plain NumPy (reference implementation)."""
    W, At, pW, pA = state
    N0 = X.shape[0]
    N = W.shape[0]

    def grad(W, At):
        Z = W @ X / math.sqrt(N0)
        if name == "erf":
            kz = math.sqrt(math.pi / 2) * Z
            H = 0.5 * sps.erfc(-kz / math.sqrt(2))
            D = math.sqrt(math.pi / 2) / math.sqrt(2 * math.pi) * np.exp(-0.5 * kz * kz)
        elif name == "relu":
            H, D = np.maximum(Z, 0.0), (Z > 0).astype(np.float64)
        else:
            H, D = Z, np.ones_like(Z)
        F = sig_a * (H.T @ At) / N
        R = Y - F
        gA = At - (sig_a / T) * (H @ R)
        dZ = -(sig_a / T) * (At @ R.T) * D
        gW = W + dZ @ X.T / math.sqrt(N0)
        return gW, gA

    gW, gA = grad(W, At)
    pW -= 0.5 * eps * gW
    pA -= 0.5 * eps * gA
    W += eps * pW
    At += eps * pA
    gW, gA = grad(W, At)
    pW -= 0.5 * eps * gW
    pA -= 0.5 * eps * gA


def time_reference(task, N, name, sig_a, T, reps):
    rng = np.random.default_rng(0)
    state = (rng.standard_normal((N, task.N0)), rng.standard_normal((N, task.m)),
             rng.standard_normal((N, task.N0)), rng.standard_normal((N, task.m)))
    numpy_reference_step(state, task.X, task.Y, sig_a, T, 1e-4, name)   # warm caches
    t0 = CLOCK()
    for _ in range(reps):
        numpy_reference_step(state, task.X, task.Y, sig_a, T, 1e-4, name)
    # the reference recomputes the gradient at the start of each step; HMC reuses it,
    # so one reference step = two gradients; report per *leapfrog step with one gradient*
    return (CLOCK() - t0) / reps / 2


def time_meanfield(task, N, name, sig_a, T, space, project, reps, depth=1, surrogate=True):
    phi = nonlinearity(name)
    B, identity, _ = first_layer_geometry(task, space, project)
    Bt = np.ascontiguousarray(B.T)
    r = B.shape[0]
    dims = np.array([N, r, depth, task.m], dtype=np.int64)
    n = N * r + (depth - 1) * N * N + N * task.m
    q = 0.1 * np.random.default_rng(1).standard_normal(n)
    g = np.empty(n)
    ep, el = nw.energy_grad(phi.code, phi.prog, q, g, B, Bt, identity, dims, task.Y, sig_a, T,
                            *nw.alloc_scratch(dims, task.P))
    ws = nw.alloc_workspace(dims, task.P, n, surrogate)
    with kernel_threads(N * task.P):          # the sampler's own thread choice
        nw.hmc_trajectory(phi.code, phi.prog, q, g, ep, el, B, Bt, identity, dims, task.Y, sig_a, T, 1e-6, 2, 0, 0,
                          ws)
        t0 = CLOCK()
        nw.hmc_trajectory(phi.code, phi.prog, q, g, ep, el, B, Bt, identity, dims, task.Y, sig_a, T, 1e-6, reps, 0, 1,
                          ws)
        return (CLOCK() - t0) / reps, r


def time_phi(N, P, reps):
    """φ and φ' of N·P preactivations alone (the floor of a preactivation-space step)."""
    Z = np.random.default_rng(2).standard_normal((N, P))
    H, D = np.empty_like(Z), np.empty_like(Z)
    with kernel_threads(N * P):
        activate_erf(Z, H, D, 1.0)
        t0 = CLOCK()
        for _ in range(reps):
            activate_erf(Z, H, D, 1.0)
        return (CLOCK() - t0) / reps


@nb.njit(parallel=True, fastmath=True)
def _stream(p, q, h, d, c):
    n0, n1 = p.shape
    for i in nb.prange(n0):
        for j in range(n1):
            p[i, j] += c * d[i, j]
            q[i, j] += c * p[i, j]
            h[i, j] *= 1.0 - c
            d[i, j] *= 1.0 + c


def time_stream(N, P, reps):
    """Read and write p, q, φ, φ' once (64 bytes per preactivation): the memory floor of a fused step."""
    arrs = [np.random.default_rng(k).standard_normal((N, P)) for k in range(4)]
    with kernel_threads(N * P):
        _stream(*arrs, 1e-9)
        t0 = CLOCK()
        for _ in range(reps):
            _stream(*arrs, 1e-9)
        return (CLOCK() - t0) / reps


def gemm_rate(N, r, P, reps=20):
    a, b = np.random.rand(N, r), np.random.rand(r, P)
    out = np.empty((N, P))
    np.dot(a, b, out=out)
    t0 = CLOCK()
    for _ in range(reps):
        np.dot(a, b, out=out)
    return 2.0 * N * r * P / ((CLOCK() - t0) / reps)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds (best is kept)")
    ap.add_argument("--threads", type=int, default=None, help="threads for BLAS and numba (default: all)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time by process CPU time instead of wall time (needs --threads 1): on a machine shared "
                         "with other jobs this measures the work, not the share of the CPU the run was given")
    a = ap.parse_args(argv)
    if a.cpu_time:
        if a.threads != 1:
            ap.error("--cpu-time needs --threads 1 (process time adds up all threads)")
        global CLOCK
        CLOCK = time.process_time
    reps = 20 if a.quick else 100
    configs = [("Fig. 2 (erf)", mf.toy_task(500, 520, y_minus=0.5), 500, "erf"),
               ("MNIST shape", None, 100, "erf")]
    rng = np.random.default_rng(0)
    Xm = np.abs(rng.standard_normal((784, 100)))           # MNIST-like: N0 = 784 > P = 100
    Xm *= math.sqrt(784) / np.linalg.norm(Xm, axis=0)
    lab = rng.integers(0, 3, 100)
    Ym = np.full((100, 3), -0.5)
    Ym[np.arange(100), lab] = 1.0
    configs[1] = ("MNIST shape", mf.Task(Xm, Ym), 100, "erf")
    print(f"threads: numba {nb.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, cores={os.cpu_count()}")
    print(f"{'config':14s} {'impl':12s} {'steps/s':>9s} {'vs ref':>7s} {'GEMM GF/s':>10s} {'roofline':>9s}")
    for label, task, N, name in configs:
        T, sig_a = 0.01, math.sqrt(1.0 / task.P)
        impls = (("weight", "weight", True, True), ("weight-full", "weight", False, True),
                 ("preact", "preactivation", True, True), ("preact-f64", "preactivation", True, False))
        best = {}
        for _ in range(a.rounds):          # interleaved rounds, best time of each: robust to machine noise
            t = time_reference(task, N, name, sig_a, T, max(3, reps // 4))
            best["numpy-ref"] = (min(t, best.get("numpy-ref", (np.inf,))[0]), task.N0)
            for impl, space, project, surrogate in impls:
                if impl == "preact-f64" and not np.allclose(task.K0, np.eye(task.P)):
                    continue                         # the surrogate is used by the toy-task geometry only
                t, r = time_meanfield(task, N, name, sig_a, T, space, project, reps, surrogate=surrogate)
                best[impl] = (min(t, best.get(impl, (np.inf,))[0]), r)
            if name == "erf":
                t = time_phi(N, task.P, reps)
                best["phi-floor"] = (min(t, best.get("phi-floor", (np.inf,))[0]), 0)
                t = time_stream(N, task.P, reps)
                best["mem-floor"] = (min(t, best.get("mem-floor", (np.inf,))[0]), 0)
        t_ref = best["numpy-ref"][0]
        for impl, (t, r) in best.items():
            flops = 4.0 * N * r * task.P
            gemm = impl not in ("phi-floor", "mem-floor") and \
                (not impl.startswith("preact") or not np.allclose(task.K0, np.eye(task.P)))
            if gemm:
                rate = max(gemm_rate(N, r, task.P) for _ in range(3))
                gf = f"{flops / t / 1e9:10.1f} {(flops / rate) / t:9.2f}"
            elif impl == "mem-floor":
                gf = f"{64.0 * N * task.P / t / 1e9:8.1f}GB/s {'-':>9s}"
            else:
                gf = f"{'-':>10s} {'-':>9s}"
            print(f"{label:14s} {impl:12s} {1 / t:9.1f} {t_ref / t:7.2f} {gf}")
        sys.stdout.flush()

if __name__ == "__main__":
    main()
