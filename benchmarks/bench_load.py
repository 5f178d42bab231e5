"""Weight-space HMC on a busy machine: BLAS threads of a small problem, idle against busy cores.

One weight-space leapfrog step of a small network (toy task, linear φ, N = P, depth 2 by default:
the setting of ``tests/test_linear_agreement.py::test_depth2_weight_space_matches_theory``, which
took 81 s on an idle 2-core machine and 1086 s on a busy one) is a handful of N × N × P GEMMs
and elementwise kernels. The sampler runs the numba kernels of such a problem on one thread
(``sampling/threads.py``, N·P < ``SERIAL_BELOW``). Rows, all measured in this run:

* ``blas-all``: OpenBLAS with all its threads (the sampler before this benchmark; also what a
  process gets when numpy is imported before meanfield, so OPENBLAS_THREAD_TIMEOUT is not set);
* ``blas-1``: OpenBLAS on one thread (what ``kernel_threads`` now chooses for a small problem).

Each row runs idle and again with ``--busy`` busy-loop processes (``python -c "while True: pass"``,
killed at the end), interleaved over ``--rounds``; the best time per leapfrog step is kept. The
table prints ms per step (wall and process CPU time) and the ratios busy / idle and
blas-all / blas-1 from this run.

Usage: python benchmarks/bench_load.py [--N 100] [--depth 2] [--busy 2] [--rounds 2] [--steps 200] [--numpy-first]
"""
import argparse
import contextlib
import os
import subprocess
import sys
import time

if "--numpy-first" in sys.argv:   # as in the test files: OpenBLAS loads before meanfield sets OPENBLAS_THREAD_TIMEOUT
    import numpy  # noqa: F401

import meanfield as mf  # noqa: E402  (otherwise first: OpenMP/OpenBLAS wait policies before numpy loads BLAS)
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from meanfield._kernels import network as nw
from meanfield.nonlinearities import nonlinearity
from meanfield.sampling.geometry import first_layer_geometry
from meanfield.sampling.threads import SERIAL_BELOW, kernel_threads


def _setup(N, depth, T=0.01):
    task = mf.toy_task(N, N + 20, y_minus=0.0)
    phi = nonlinearity("linear")
    B, identity, _ = first_layer_geometry(task, "weight", True)
    Bt = np.ascontiguousarray(B.T)
    dims = np.array([N, B.shape[0], depth, task.m], dtype=np.int64)
    n = N * B.shape[0] + (depth - 1) * N * N + N * task.m
    q = 0.1 * np.random.default_rng(1).standard_normal(n)
    g = np.empty(n)
    sig_a = float(np.sqrt(phi.sigma_a2(task.P, depth)))
    ep, el = nw.energy_grad(phi.code, phi.prog, q, g, B, Bt, identity, dims, task.Y, sig_a, T,
                            *nw.alloc_scratch(dims, task.P))
    ws = nw.alloc_workspace(dims, task.P, n, True)
    args = (phi.code, phi.prog, q, g, ep, el, B, Bt, identity, dims, task.Y, sig_a, T, 1e-6)
    return args, ws, N * task.P


def _time(args, ws, work, steps, blas):
    """(wall, CPU) seconds per leapfrog step of one trajectory of ``steps`` steps; ``blas`` threads."""
    with kernel_threads(work), threadpool_limits(limits=blas, user_api="blas"):   # inner limit wins
        nw.hmc_trajectory(*args, 2, 0, 0, ws)
        c0, t0 = time.process_time(), time.perf_counter()
        nw.hmc_trajectory(*args, steps, 0, 1, ws)
        return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


@contextlib.contextmanager
def busy(k):
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)]
    try:
        time.sleep(0.5 if k else 0.0)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=100, help="width N = P (default 100)")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--busy", type=int, default=2, help="busy-loop processes of the loaded runs (default 2)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=200, help="leapfrog steps per timed trajectory")
    ap.add_argument("--numpy-first", action="store_true",
                    help="import numpy before meanfield (as the test files do): OpenBLAS keeps its default "
                         "spin of 2^28 cycles after each call instead of OPENBLAS_THREAD_TIMEOUT=4")
    a = ap.parse_args(argv)
    args, ws, work = _setup(a.N, a.depth)
    libs = [(d["internal_api"], d["num_threads"]) for d in threadpool_info() if d["user_api"] == "blas"]
    timeout = "default (numpy first)" if a.numpy_first else os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    print(f"N = P = {a.N}, depth {a.depth}, weight space; N·P = {work} "
          f"({'<' if work < SERIAL_BELOW else '≥'} SERIAL_BELOW = {SERIAL_BELOW}); BLAS libraries {libs}; "
          f"{os.cpu_count()} CPUs; busy processes {a.busy}; "
          f"OPENBLAS_THREAD_TIMEOUT {timeout}")
    best = {}
    for _ in range(a.rounds):
        for k in (0, a.busy):
            with busy(k):
                for blas in ("all", 1):
                    w, c = _time(args, ws, work, a.steps, os.cpu_count() if blas == "all" else 1)
                    key = (k, blas)
                    old = best.get(key, (np.inf, np.inf))
                    best[key] = (min(old[0], w), min(old[1], c))
    print(f"{'row':10s} {'busy':>5s} {'ms/step wall':>13s} {'ms/step CPU':>12s}")
    for (k, blas), (w, c) in sorted(best.items(), key=lambda kv: (str(kv[0][1]), kv[0][0])):
        print(f"blas-{blas!s:5s} {k:5d} {1e3 * w:13.3f} {1e3 * c:12.3f}")
    for blas in ("all", 1):
        print(f"blas-{blas}: busy / idle wall {best[(a.busy, blas)][0] / best[(0, blas)][0]:.2f}×")
    for k in (0, a.busy):
        print(f"busy {k}: blas-all / blas-1 wall {best[(k, 'all')][0] / best[(k, 1)][0]:.2f}×")


if __name__ == "__main__":
    main()
