"""Command-line front end: ``meanfield solve | sample | compare | sweep | figure``.

Examples
--------
meanfield compare --nonlinearity linear --P 200 --N 200 --T 0.01 --steps 600
meanfield sweep --parameter y_minus --values 0.1 0.3 0.5 --T 0.01 --N 200 --png sweep.png
meanfield figure 2 --out-dir figures [--small]
meanfield sample --data mydata.npz --nonlinearity erf --N 100 --T 0.01 --checkpoint run.npz --out samples.npz
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _task_args(p):
    g = p.add_argument_group("task (the paper's toy task unless --data is given)")
    g.add_argument("--data", help=".npz with X (N0 × P) and Y (P × m) [X_test, Y_test optional]")
    g.add_argument("--P", type=int, default=200, help="toy task: training inputs")
    g.add_argument("--N0", type=int, default=None, help="toy task: input dimension (default P + 20)")
    g.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.25, 0.25], help="toy task: class fractions")
    g.add_argument("--y-plus", type=float, default=1.0)
    g.add_argument("--y-minus", type=float, default=0.0)
    g.add_argument("--task-seed", type=int, default=0)
    p.add_argument("--nonlinearity", "-f", default="linear",
                   help="linear | erf | relu | softplus | relu2 | an expression in z, e.g. 'tanh(z)' "
                        "(grammar: docs/nonlinearities.md)")
    p.add_argument("--depth", "-L", type=int, default=1)
    p.add_argument("--T", type=float, default=0.01, help="rescaled temperature")
    p.add_argument("--sigma-a2", type=float, default=None, help="readout prior variance (default: paper scaling)")


def _sample_args(p):
    p.add_argument("--N", type=int, default=200, help="width")
    p.add_argument("--steps", type=int, default=600, help="HMC transitions (warm-up included)")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--space", choices=["weight", "preactivation"], default="weight")
    p.add_argument("--thin", type=int, default=1)
    p.add_argument("--n-leapfrog", type=int, default=None, help="fixed leapfrog steps (1 = MALA)")
    p.add_argument("--checkpoint", default=None, help="resumable checkpoint file (.npz)")
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--no-preactivations", action="store_true", help="do not store preactivations")
    p.add_argument("--anneal", type=float, default=None,
                   help="start temperature of simulated annealing during warm-up (> T)")


def _check_paths(a):
    """Check every output / checkpoint path of the command before any work (ValueError naming the option)."""
    from ._validation import check_output_dir, check_output_path
    for opt in ("out", "checkpoint", "png"):
        if getattr(a, opt, None) is not None:
            check_output_path(getattr(a, opt), "--" + opt)
    if getattr(a, "out_dir", None) is not None:
        check_output_dir(a.out_dir, "--out-dir", create=True)


def _task(a):
    from .tasks import Task, toy_task
    if a.data:
        return Task.load(a.data)
    return toy_task(a.P, a.N0 if a.N0 is not None else a.P + 20, ratios=tuple(a.ratios),
                    y_plus=a.y_plus, y_minus=a.y_minus, seed=a.task_seed)


def _solve(a, task, N=None):
    from .theory import solve
    kw = {} if a.sigma_a2 is None else {"sigma_a2": a.sigma_a2}
    return solve(task, a.nonlinearity, depth=a.depth, T=a.T, finite_P=not a.leading_order, N=N, **kw)


def _sample(a, task):
    from .sampling import sample
    return sample(task, a.nonlinearity, N=a.N, depth=a.depth, T=a.T, steps=a.steps, warmup=a.warmup,
                  seed=a.seed, space=a.space, thin=a.thin, checkpoint=a.checkpoint,
                  checkpoint_every=a.checkpoint_every, sigma_a2=a.sigma_a2, n_leapfrog=a.n_leapfrog,
                  record_preactivations=not a.no_preactivations, progress=None if not a.quiet else False,
                  anneal=a.anneal)


def _save_solution(sol, path):
    arrays = dict(field=sol.field, kernels=np.stack(sol.kernels), converged=sol.converged,
                  residual=sol.residual, T=sol.T, sigma_a2=sol.sigma_a2, depth=sol.depth)
    for k in ("U", "code_fractions", "readouts"):
        if getattr(sol, k) is not None:
            arrays[k] = getattr(sol, k)
    np.savez(path, **arrays)


EXIT_UNHEALTHY = 3     # a sampler run failed its health checks (meanfield.sampling.health)
EXIT_DISAGREE = 4      # meanfield compare: a row beyond its Monte-Carlo floor, or a frozen sampler


def _health_status(cmd, samples):
    """0 for a healthy run; else print its problems on stderr and return :data:`EXIT_UNHEALTHY`."""
    if samples.health is None or samples.health.ok:
        return 0
    print(f"meanfield {cmd}: the sampler run failed its health checks (exit status {EXIT_UNHEALTHY}):\n  "
          + "\n  ".join(samples.health.problems), file=sys.stderr)
    return EXIT_UNHEALTHY


def _sweep(a):
    from .sweeps import plot_scheme_sweep, scheme_sweep, sweep_table
    try:
        _check_paths(a)
        rows = scheme_sweep(a.parameter, a.values, T=a.T, y_minus=a.y_minus, P=a.P, N=a.N, steps=a.steps,
                            anneal=a.anneal, seed=a.seed, progress=None if not a.quiet else False)
    except (ValueError, TypeError, NotImplementedError) as exc:
        print(f"meanfield sweep: error: {exc}", file=sys.stderr)
        return 1
    print(sweep_table(rows, a.parameter))
    if a.png:
        print(f"saved {plot_scheme_sweep(rows, a.png, a.parameter)}")
    return 0


def _figure(a):
    """Draw the figures; exit status 1 on bad input, 3 if a panel's sampler run failed its health checks
    (the PNG is still written, that panel marked in red; docs/figures.md, "Runs that did not learn")."""
    from .figures import NotLearnedError, make
    from .figures.common import EXIT_STATUS
    opts = {} if a.data_path is None else {"data_path": a.data_path}
    status = 0
    try:
        _check_paths(a)
        for name in a.which:
            t0 = time.perf_counter()
            try:
                paths, note = make(name, a.out_dir, small=a.small, seed=a.seed, progress=not a.quiet, **opts), ""
            except NotLearnedError as exc:
                paths, note, status = exc.paths, " — panels from unhealthy runs marked in red", EXIT_STATUS
                print(f"meanfield figure: {exc}", file=sys.stderr)
            for path in paths:
                print(f"saved {path} ({time.perf_counter() - t0:.1f} s){note}")
    except (ValueError, TypeError, NotImplementedError, OSError) as exc:
        print(f"meanfield figure: error: {exc}", file=sys.stderr)
        return 1
    return status


def main(argv=None):
    """Entry point of the ``meanfield`` console script."""
    ap = argparse.ArgumentParser(prog="meanfield", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ps = sub.add_parser("solve", help="solve the mean-field equations")
    _task_args(ps)
    ps.add_argument("--width", type=int, default=None, help="finite-width correction at this N")
    ps.add_argument("--leading-order", action="store_true", help="leading order in 1/P")
    ps.add_argument("--out", default=None, help="save the solution (.npz)")
    pm = sub.add_parser("sample", help="sample the posterior of a finite network")
    _task_args(pm)
    _sample_args(pm)
    pm.add_argument("--out", default=None, help="save the samples (.npz)")
    pc = sub.add_parser("compare", help="solve, sample and print the agreement table with its verdict "
                        "(exit status 0: every judged row within its Monte-Carlo floor; 4: a row FAILs, the "
                        "sampler is frozen, or no row has a floor)")
    _task_args(pc)
    _sample_args(pc)
    pc.add_argument("--finite-width", action="store_true", help="theory with the finite-width correction at N")
    pc.add_argument("--leading-order", action="store_true")
    pc.add_argument("--out", default=None, help="save the agreement rows (error, floor, verdict) and metrics (.json)")
    pw = sub.add_parser("sweep", help="sigmoid coding scheme along y- or T: theory and sampler, table and PNG")
    pw.add_argument("--parameter", choices=["y_minus", "T"], default="y_minus")
    pw.add_argument("--values", type=float, nargs="+", required=True)
    pw.add_argument("--T", type=float, default=0.01)
    pw.add_argument("--y-minus", type=float, default=0.5)
    pw.add_argument("--P", type=int, default=200)
    pw.add_argument("--N", type=int, default=None, help="sample a network of this width at every point")
    pw.add_argument("--steps", type=int, default=2000)
    pw.add_argument("--anneal", type=float, default=0.15)
    pw.add_argument("--seed", type=int, default=0)
    pw.add_argument("--png", default=None, help="write the plot here")
    pf = sub.add_parser("figure", help="reproduce paper figures 1-7 or the phase diagram as PNG (docs/figures.md)")
    pf.add_argument("which", nargs="+", metavar="N", help="1 ... 7 or 'phase' (several allowed)")
    pf.add_argument("--out-dir", default=".", help="directory for the PNG(s)")
    pf.add_argument("--small", action="store_true", help="tiny scale (seconds; for tests)")
    pf.add_argument("--seed", type=int, default=0)
    pf.add_argument("--data-path", default=None, help="figure 7: directory with the CIFAR-10 python batches")
    for p in (ps, pm, pc, pw, pf):
        p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    if a.cmd == "sweep":
        return _sweep(a)
    if a.cmd == "figure":
        return _figure(a)
    try:
        _check_paths(a)
        task = _task(a)
        if a.cmd == "solve":
            sol = _solve(a, task, a.width)
            print(sol.table())
            if a.out:
                _save_solution(sol, a.out)
                print(f"saved {a.out}")
            return 0 if sol.converged else 2
        if a.cmd == "sample":
            s = _sample(a, task)
            print(s.table())
            if a.out:
                s.save(a.out)
                print(f"saved {a.out}")
            return _health_status(a.cmd, s)
        from .agreement import compare
        sol = _solve(a, task, a.N if a.finite_width else None)
        print(sol.table())
        s = _sample(a, task)
        print(s.table())
        cmp = compare(sol, s)
        print(cmp.table())
        if a.out:
            with open(a.out, "w") as fh:
                json.dump(dict(cmp.to_dict(), diagnostics=s.diagnostics), fh, indent=2)
            print(f"saved {a.out}")
        return _health_status(a.cmd, s) or (0 if cmp.passed else EXIT_DISAGREE)
    except (ValueError, TypeError, NotImplementedError, OSError) as exc:
        print(f"meanfield {a.cmd}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
