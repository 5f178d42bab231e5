"""Sigmoid (erf) networks, one hidden layer: redundant coding (THEORY.md §2, §2.2, §4).

``solve_erf`` solves the class-reduced toy-task equations (:mod:`.erf_toy`, :mod:`.erf_schemes`)
and returns a :class:`Solution` (:mod:`.erf_assemble`). Derivation, scalings and the meaning of
every option: ``docs/theory_erf.md``. In short (s = P σ_a², raw readouts a, ``T t`` = residual):

    a_γ = s Σ_c ρ_c g'(h_cγ) t_c,   Y_c − T t_c = Σ_γ P_γ g'(h_cγ) a_γ,   h_cγ = t_c·a_γ,

with the fractions fixed by degenerate global maxima of F (P → ∞), by the Laplace weights of
the modes of exp(P F) (finite P), or given (frozen states). The field equations are the
stationarity condition of a convex dual in t, so the equilibrium is unique; the scheme search
is a way to find it and to list the other solutions of the equations (non-equilibria).
"""
from __future__ import annotations

import itertools
import numbers

import numpy as np

from .._validation import check_float, check_int
from . import erf_schemes as sch
from . import erf_toy as toy
from . import relu_toy
from .erf_assemble import assemble

__all__ = ["solve_erf"]


def _parse_fractions(code_fractions, K):
    if not isinstance(code_fractions, dict) or not code_fractions:
        raise TypeError(f"code_fractions must be a non-empty dict {{code tuple: fraction}}, got {code_fractions!r}")
    codes, P = [], []
    for code, frac in code_fractions.items():
        c = tuple(code) if isinstance(code, (tuple, list, np.ndarray)) else None
        if c is None or len(c) != K or any(v not in (0, 1) for v in c) or not any(c):
            raise ValueError(f"code_fractions: each code must be a nonzero 0/1 tuple of length K = {K}, got {code!r}")
        if c in codes:
            raise ValueError(f"code_fractions: code {code!r} is given twice")
        codes.append(c)
        P.append(check_float(frac, f"code_fractions[{code!r}]", minimum=0.0, strict=True))
    if abs(sum(P) - 1.0) > 1e-8:
        raise ValueError(f"code_fractions must sum to 1, got {sum(P)!r}")
    return np.array(codes, dtype=np.int64), np.array(P) / sum(P)


def _one_hot_levels(Yc):
    K, m = Yc.shape
    off = ~np.eye(K, m, dtype=bool)
    if K != m or np.ptp(np.diag(Yc)) > 1e-12 or np.ptp(Yc[off]) > 1e-12:
        raise ValueError("y_minus: continuation in y₋ needs one-hot targets (y₊ on the class's own output, "
                         "y₋ on the others, as toy_task makes them)")
    return float(Yc[0, 0]), float(Yc[off][0])


def _with_targets(prob, Yc, P=None):
    return toy.ToyProblem(prob.rho, Yc, prob.s, prob.P if P is None else P, prob.nl)


def _continue(start, end, scheme, mode, opts, first_step=0.25):
    """Follow a solution from ``start`` to ``end`` — each ``(problem, T, P_fixed)`` — linearly in the
    targets, T and (mode "fixed") the fractions, and in log P (mode "laplace"), halving the step on
    failure (down to 1/64).

    Intermediate points are validated with a quarter of the starts. Returns the last scheme (the
    failed one, to be flagged, if the continuation stalls) and the residual evaluations used.
    """
    (p0, T0, P0), (p1, T1, P1) = start, end
    cur, lam, step, nfev = scheme, 0.0, first_step, 0
    while lam < 1.0:
        x = min(1.0, lam + step)
        prob = _with_targets(p1, (1.0 - x) * p0.Yc + x * p1.Yc, p0.P ** (1.0 - x) * p1.P ** x)
        P_fixed = None if P0 is None else (1.0 - x) * P0 + x * P1
        n_starts = opts["n_starts"] if x >= 1.0 else max(8, opts["n_starts"] // 4)
        sol = sch.active_set(prob, (1.0 - x) * T0 + x * T1, cur, mode, P_fixed=P_fixed, n_starts=n_starts,
                             seed=opts["seed"])
        nfev += sol.nfev
        v = sol.info.get("validation", {})
        ok = v.get("ok_max", False) and v.get("ok_codes", False) if mode == "fixed" else v.get("ok", False)
        if sol.residual <= opts["tol"] and ok:
            cur, lam = sol, x
        elif step > 1.0 / 64:
            step *= 0.5
        else:
            return sol, nfev
    return cur, nfev


def _equilibrium(prob, start, T, opts):
    """P → ∞ equilibrium at (prob, T): saturated dual → active set at T = 0 on ``start``'s targets,
    continuation in the targets (y₋) to ``prob``, then in T."""
    t, C, P, A = toy.saturated_dual(start, 0.0)
    sol = sch.active_set(start, 0.0, sch.Scheme(C, t, A, P), "equilibrium", n_starts=opts["n_starts"],
                         seed=opts["seed"])
    nfev = sol.nfev
    if start is not prob:
        sol, k = _continue((start, 0.0, None), (prob, 0.0, None), sol, "equilibrium", opts)
        nfev += k
    if T > 0:
        sol, k = _continue((prob, 0.0, None), (prob, T, None), sol, "equilibrium", opts, first_step=1.0)
        nfev += k
    return sol, nfev


def _fixed(prob, T, codes, P, opts):
    """Frozen state with fractions P: LM from the saturated start; if that root is not made of
    self-consistent local maxima, continuation in the fractions from the equilibrium at T (codes
    absent there enter with their local maximum of F, codes absent from ``codes`` leave at P = 0)."""
    t, _, A = toy.saturated_scheme(prob, T, codes, P)
    sol = sch.active_set(prob, T, sch.Scheme(codes, t, A, P), "fixed", P_fixed=P, n_starts=opts["n_starts"],
                         seed=opts["seed"])
    v = sol.info["validation"]
    if sol.residual <= opts["tol"] and v["ok_max"] and v["ok_codes"]:
        return sol, sol.nfev
    eq, nfev = _equilibrium(prob, prob, T, opts)
    Fm, Am, _ = eq.info["validation"]["maxima"]
    found = toy.codes_of(Am, eq.t, prob)
    allc = np.unique(np.vstack([eq.codes, codes]), axis=0)
    A0, P0, P1 = np.zeros((len(allc), prob.m)), np.zeros(len(allc)), np.zeros(len(allc))
    for k, c in enumerate(allc):
        hit = np.flatnonzero((eq.codes == c).all(1))
        if hit.size:
            A0[k], P0[k] = eq.A[hit[0]], eq.P[hit[0]]
        else:
            hit = np.flatnonzero((found == c).all(1))
            A0[k] = Am[hit[0]] if hit.size else prob.s * (c * prob.rho) @ eq.t
        hit = np.flatnonzero((codes == c).all(1))
        P1[k] = P[hit[0]] if hit.size else 0.0
    sol, k = _continue((prob, T, P0), (prob, T, P1), sch.Scheme(allc, eq.t, A0, P0), "fixed", opts)
    keep = np.array([(codes == c).all(1).any() for c in allc])
    order = [int(np.flatnonzero((allc[keep] == c).all(1))[0]) for c in codes]
    out = sch.Scheme(codes, sol.t, sol.A[keep][order], P)
    return sch.active_set(prob, T, out, "fixed", P_fixed=P, n_starts=opts["n_starts"], seed=opts["seed"]), nfev + k


def _laplace(prob, T, eq, opts):
    """Finite-P Laplace mixture from the equilibrium ``eq``: directly, else by continuation in
    log P from P = 1e4·P (where the Laplace weights are nearly the degenerate fractions)."""
    sol = sch.active_set(prob, T, eq, "laplace", n_starts=opts["n_starts"], seed=opts["seed"])
    if sol.residual <= opts["tol"] and sol.info["validation"]["ok"]:
        return sol, sol.nfev
    big = _with_targets(prob, prob.Yc, 1e4 * prob.P)
    out, k = _continue((big, T, None), (prob, T, None), eq, "laplace", opts, first_step=0.125)
    return out, sol.nfev + k


def _enumerate(prob, T, max_codes, opts):
    """Every code set up to ``max_codes`` codes whose equations have a root with P_γ > 0 and
    self-consistent codes (P → ∞ equations), validated and ranked by the dual value."""
    C = toy.all_codes(prob.K)
    rank_Y = np.linalg.matrix_rank(prob.Yc) if T == 0 else 1
    out, seen = [], set()
    for n in range(max(1, rank_Y), max_codes + 1):
        for subset in itertools.combinations(range(len(C)), n):
            codes = C[list(subset)]
            t, P, A = toy.saturated_scheme(prob, T, codes)
            sol = sch.solve_scheme(prob, T, sch.Scheme(codes, t, A, np.where(P > 0, P, 1.0 / n)), "equilibrium",
                                   max_nfev=100)
            if sol.residual > opts["tol"] or sol.P.min() <= 1e-12:
                continue
            if not np.array_equal(toy.codes_of(sol.A, sol.t, prob), codes):
                continue
            key = tuple(map(tuple, codes))
            if key in seen:
                continue
            seen.add(key)
            sol.info["validation"] = sch.validate(prob, sol, "equilibrium", n_starts=opts["n_starts"], seed=opts["seed"])
            out.append(sol)
    return out


def _dual(prob, T, sol):
    return toy.dual_value(sol.t, prob, T, sol.info["validation"]["F_best"])


def _message(sol, mode, tol):
    v = sol.info.get("validation", {})
    probs = []
    if not sol.residual <= tol:
        probs.append(f"residual {sol.residual:.2e} > tol {tol:.1e}")
    name = lambda c: "-".join(str(int(x)) for x in c)
    if v and not v["ok_max"]:
        bad = [name(c) for c, e in zip(sol.codes, v["hessian_max_eig"]) if not e < 0]
        probs.append(f"a_γ is not a local maximum of F for code(s) {', '.join(bad)}")
    if v and not v["ok_codes"]:
        bad = [f"{name(c)} → {name(f)}" for c, f in zip(sol.codes, v["codes_found"]) if not np.array_equal(c, f)]
        probs.append(f"codes not self-consistent (label → code from g'(h) > ½: {', '.join(bad)})")
    if v and not v["ok_P"]:
        probs.append("negative code fraction")
    if v and mode != "fixed" and not v["ok_global"]:
        probs.append(f"not a global maximum: F_best = {v['F_best']:.10g} > max F_γ = {np.max(v['F']):.10g}")
    return probs


def solve_erf(task, depth=1, T=0.0, finite_P=True, N=None, *, sigma_a2=None, y_minus=None, code_fractions=None,
              all_schemes=False, max_codes=4, n_starts=32, seed=0, tol=1e-10, fluctuations=False,
              fluct_options=None):
    """Solve the sigmoid (erf) mean-field theory on the toy task (THEORY.md §2.2, docs/theory_erf.md).

    Parameters
    ----------
    task : Task
        Toy task (``K0 = I`` to 1e-10, targets constant within each class): the exact class-reduced
        theory. Any other data (needs T > 0): by default the general-data theory with the
        fluctuations of z given a neglected (the paper's MNIST theory, :mod:`.erf_general`, P → ∞
        equations); with ``fluctuations=True`` the exact finite-P theory with them kept
        (:mod:`.erf_fluct`, Monte Carlo).
    depth : int
        Must be 1.
    T : float
        Rescaled temperature ≥ 0; reached by continuation from T = 0.
    finite_P : bool
        ``False``: P → ∞ equations (fractions from degenerate global maxima). ``True``: fractions
        from the Laplace weights ``∝ exp(P F_γ) det(−∇²F_γ)^(−1/2)`` at the task's P, all local
        maxima of F with relative weight > 1e-8 included; positions stay the maxima of F and
        (S2) uses the Dirac positions (O(1/P) width terms dropped). The Laplace covariances
        ``(−P ∇²F_γ)⁻¹`` are reported in ``info["readout_covariances"]`` either way. Ignored for
        ``code_fractions`` (fractions given) and ``all_schemes`` (P → ∞ equations).
    N : int, optional
        Stored on the Solution; no finite-width corrections are applied.
    sigma_a2 : float, optional
        Readout prior variance (default ``1/P``); enters through ``s = P σ_a²``.
    y_minus : float, optional
        Start a continuation in y₋ from this value at T = 0 (one-hot targets only): solve there,
        then follow the solution to the task's targets, then in T.
    code_fractions : dict, optional
        ``{code tuple: P_γ}``: fixed-fraction (frozen) solution — stationarity and (S2) with the
        fractions given, degeneracy dropped (THEORY.md §4).
    all_schemes : bool
        Return a list of Solutions: every code set of up to ``max_codes`` codes whose P → ∞
        equations have a root with positive fractions and self-consistent codes, ranked (valid
        posteriors first, then by the dual value ``info["dual"]``, lowest first).
    max_codes : int
        Largest code set tried by ``all_schemes``.
    n_starts : int
        Random starts of the global-maximum search of F.
    seed : int
        Seed of that search.
    tol : float
        Max-norm tolerance on the equations for ``converged``.
    fluctuations : bool
        Solve the exact N → ∞ theory at the task's P by Monte Carlo (:func:`.erf_fluct.solve_erf_fluct`:
        replica-exchange sampling of the single-neuron posterior inside a stochastic Newton
        iteration; ``converged`` means the equations hold within Monte-Carlo error), on any task.
        On general data it keeps the fluctuations of z given a that the default neglects — needed
        when that theory does not close (random labels with P > N0). On the toy task it gives the
        exact finite-P fractions that ``finite_P=True`` approximates by Laplace weights.
    fluct_options : dict, optional
        Keyword arguments for :func:`.erf_fluct.solve_erf_fluct` (``n_sys``, ``sweeps``, ``seed``, ...).

    Returns
    -------
    Solution or list of Solution
        ``codes``, ``code_fractions`` P_γ, ``readouts`` a_γ (n × m, raw), ``field`` t (P × m),
        ``kernels = (K0, K1)``, ``predict``, ``conditional``; ``info`` holds the class-reduced
        field ``t_class``, fields ``h_cγ``, mean activations, F per code, the global-search result,
        per-code conditional densities on a grid (``info["conditionals"]``, and
        ``Solution.conditional_density(code, z)``), Laplace covariances and weights, the dual value.
        ``converged`` is False (reasons in ``message``) unless the residual is ≤ tol and the
        posterior checks pass.
    """
    from ..tasks import Task
    if not isinstance(task, Task):
        raise TypeError(f"task must be a meanfield.Task, got {type(task).__name__}")
    depth = check_int(depth, "depth", minimum=1)
    if depth != 1:
        raise NotImplementedError(f"the sigmoid theory is implemented for one hidden layer, got depth = {depth}")
    T = check_float(T, "T", minimum=0.0)
    if not isinstance(finite_P, (bool, np.bool_, numbers.Integral)) or finite_P not in (0, 1):
        raise TypeError(f"finite_P must be a bool, got {finite_P!r}")
    N = None if N is None else check_int(N, "N", minimum=1)
    sigma_a2 = 1.0 / task.P if sigma_a2 is None else check_float(sigma_a2, "sigma_a2", minimum=0.0, strict=True)
    if not isinstance(all_schemes, (bool, np.bool_)):
        raise TypeError(f"all_schemes must be a bool, got {all_schemes!r}")
    if not isinstance(fluctuations, (bool, np.bool_)):
        raise TypeError(f"fluctuations must be a bool, got {fluctuations!r}")
    opts = dict(n_starts=check_int(n_starts, "n_starts", minimum=4), seed=check_int(seed, "seed", minimum=0),
                tol=check_float(tol, "tol", minimum=0.0, strict=True))
    max_codes = check_int(max_codes, "max_codes", minimum=1)
    if fluctuations:
        if code_fractions is not None or all_schemes or y_minus is not None:
            raise NotImplementedError("fluctuations=True: code_fractions, all_schemes and y_minus are not available "
                                      "in the Monte-Carlo theory")
        from .erf_fluct import solve_erf_fluct
        return solve_erf_fluct(task, T, sigma_a2, **dict(dict(seed=opts["seed"]), **(fluct_options or {})))
    try:
        rho, Yc, classes = relu_toy.class_reduction(task, tol=1e-10)
    except NotImplementedError:
        if code_fractions is not None or all_schemes or y_minus is not None:
            raise NotImplementedError("general data: code_fractions, all_schemes and y_minus need the toy task "
                                      "(K0 = I, class-wise targets)") from None
        from .erf_general import solve_erf_general
        return solve_erf_general(task, T, sigma_a2, n_starts=min(opts["n_starts"], 16), seed=opts["seed"])
    if rho.size > toy.MAX_CLASSES:
        raise NotImplementedError(f"the code search is exponential in the number of classes; K ≤ {toy.MAX_CLASSES}, "
                                  f"got K = {rho.size}")
    prob = toy.toy_problem(rho, Yc, task.P * sigma_a2, task.P)
    args = (task, prob, classes)

    if code_fractions is not None:
        if all_schemes or y_minus is not None:
            raise ValueError("code_fractions cannot be combined with all_schemes or y_minus")
        codes, P = _parse_fractions(code_fractions, prob.K)
        sol, nfev = _fixed(prob, T, codes, P, opts)
        probs = _message(sol, "fixed", opts["tol"])
        F = sol.info["validation"]["F"]
        msg = ("fixed fractions " if not probs else "fixed fractions, NOT solved: " + "; ".join(probs) + "; ") + \
              f"F_γ spread {np.ptp(F):.3g} (degeneracy dropped)"
        return assemble(*args, sol, T, sigma_a2, finite_P, N, not probs, msg, nfev,
                        dict(mode="fixed", validation=sol.info["validation"]))

    start = prob
    if y_minus is not None:
        y_plus, _ = _one_hot_levels(Yc)
        y0 = check_float(y_minus, "y_minus")
        start = _with_targets(prob, np.where(np.eye(*Yc.shape, dtype=bool), y_plus, y0))
    if all_schemes:
        found = _enumerate(prob, T, max_codes, opts)
        ranked = sorted(found, key=lambda s_: (not s_.info["validation"]["ok"], _dual(prob, T, s_)))
        out = []
        for r, s_ in enumerate(ranked, 1):
            probs = _message(s_, "equilibrium", opts["tol"])
            msg = (f"scheme rank {r}/{len(ranked)}: " + ("valid equilibrium" if not probs else
                   "solves the equations but is not an equilibrium: " + "; ".join(probs)))
            out.append(assemble(*args, s_, T, sigma_a2, finite_P, N, not probs, msg, s_.nfev,
                                dict(mode="equilibrium", rank=r, valid=not probs, dual=_dual(prob, T, s_),
                                     validation=s_.info["validation"])))
        return out

    sol, nfev = _equilibrium(prob, start, T, opts)
    mode = "equilibrium"
    if finite_P:
        mode = "laplace"
        sol, k = _laplace(prob, T, sol, opts)
        nfev += k
    probs = _message(sol, mode, opts["tol"])
    what = (f"Laplace mixture at P = {task.P}" if finite_P else "degenerate global maxima (P → ∞)")
    msg = f"{len(sol.codes)} codes, {what}" if not probs else f"NOT converged ({what}): " + "; ".join(probs)
    return assemble(*args, sol, T, sigma_a2, finite_P, N, not probs, msg, nfev,
                    dict(mode=mode, validation=sol.info["validation"], dual=_dual(prob, T, sol)))
