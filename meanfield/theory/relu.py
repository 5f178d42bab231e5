"""ReLU networks, one hidden layer: sparse coding by a bulk and O(√N) outliers (THEORY.md §2.3).

Derivation and conventions: ``docs/theory_relu.md``. Toy task (``K0 = I``, class-wise
targets; :mod:`meanfield.theory.relu_toy`), classes c with fractions ρ_c, class targets
``Y_c`` (rows), field rows ``t_c``, ``s = P σ_a²`` (1 for the paper's σ_a² = 1/P):

* bulk: every neuron but O(1) of them has readout ``a0`` (a Dirac, O(1)) and independent
  preactivations ``p(z_μ | a0) ∝ exp(−z²/2 + h_c relu(z))``, ``h_c = t_c·a0``;
* outlier i: readout ``a = √N ā_i`` and frozen preactivation ``z = √N z̄_i`` with
  ``z̄_iμ = relu(t_c·ā_i)`` on an input of class c.

Self-consistency (unknowns t, a0, ā_1..ā_n; as many equations as unknowns):

    Y_c − T t_c = g'(h_c) a0 + Σ_i relu(t_c·ā_i) ā_i          (S2)
    a0 = s Σ_c ρ_c g'(h_c) t_c                                (bulk: ∇F(a0) = 0)
    ā_i = s Σ_c ρ_c relu(t_c·ā_i) t_c                          (outlier: marginal, Q(ā_i) = 1)

plus the inequalities that make it a posterior: max Q ≤ 1 over all directions, a0 the
global maximum of F, and every outlier active exactly on its code.
"""
from __future__ import annotations

import itertools
import numbers

import numpy as np
from scipy import optimize
from scipy.special import ndtr

from .._validation import as_matrix, check_float, check_int
from ..integrators import tilted_expectation, tilted_moments
from . import relu_toy
from .solution import Solution

__all__ = ["solve_relu", "residuals"]

_INV_SQRT2PI = 1.0 / np.sqrt(2.0 * np.pi)


def residuals(t, a0, abar, Yc, rho, s, T):
    """Residuals of the three equation blocks of the module docstring.

    Parameters
    ----------
    t : ndarray (K, m)
        Field, one row per class.
    a0 : ndarray (m,)
        Bulk readout.
    abar : ndarray (n, m)
        Outlier readouts (√N-scaled).
    Yc : ndarray (K, m)
        Class targets.
    rho : ndarray (K,)
        Class fractions.
    s : float
        ``P σ_a²``.
    T : float
        Temperature.

    Returns
    -------
    s2 : ndarray (K, m)
        ``Y_c − T t_c − g'(h_c) a0 − Σ_i relu(t_c·ā_i) ā_i``.
    bulk : ndarray (m,)
        ``a0 − s Σ_c ρ_c g'(h_c) t_c``.
    outlier : ndarray (n, m)
        ``ā_i − s Σ_c ρ_c relu(t_c·ā_i) t_c``.
    """
    _, g1, _ = tilted_moments("relu", t @ a0)
    act = np.maximum(t @ abar.T, 0.0)                  # K × n: relu(t_c·ā_i) = z̄_i on class c
    s2 = Yc - T * t - np.outer(g1, a0) - act @ abar
    bulk = a0 - s * (rho * g1) @ t
    outlier = abar - s * (act * rho[:, None]).T @ t
    return s2, bulk, outlier


def _pack(t, a0, abar):
    return np.concatenate([t.ravel(), a0, abar.ravel()])


def _unpack(x, K, m, n):
    return x[:K * m].reshape(K, m), x[K * m:K * m + m], x[K * m + m:].reshape(n, m)


def _initial_guess(Yc, rho, s, codes, rng, jitter):
    """Outliers only, each class row along its target (the T = 0 root for single-class codes without bulk)."""
    K, m = Yc.shape
    norms = np.linalg.norm(Yc, axis=1)
    t = np.where(norms[:, None] > 0, Yc / np.where(norms > 0, norms, 1.0)[:, None], 0.0) / np.sqrt(s * rho)[:, None]
    abar = np.zeros((codes.shape[0], m))
    for i, code in enumerate(codes):
        S = code.astype(bool)
        d = t[S].sum(axis=0)
        amp = np.sqrt(norms[S].mean() * np.sqrt(s * rho[S].sum()))      # |ā|² t_c = Y_c, |t_c| = 1/√(sρ_c)
        abar[i] = amp * d / max(np.linalg.norm(d), 1e-300)
    x = _pack(t, np.zeros(m), abar)
    if jitter:
        x = x + jitter * rng.standard_normal(x.size) * np.maximum(np.abs(x), 0.1)
    return x


def _solve_scheme(Yc, rho, s, T, codes, tol, maxiter, restarts, rng):
    """Levenberg–Marquardt on the full system for one outlier code assignment; first good root wins."""
    K, m = Yc.shape
    n = codes.shape[0]

    def fun(x):
        return np.concatenate([r.ravel() for r in residuals(*_unpack(x, K, m, n), Yc, rho, s, T)])

    best, nfev = None, 0
    for k in range(restarts + 1):
        x0 = _initial_guess(Yc, rho, s, codes, rng, 0.0 if k == 0 else 0.3)
        sol = optimize.least_squares(fun, x0, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=maxiter)
        nfev += sol.nfev
        t, a0, abar = _unpack(sol.x, K, m, n)
        res = float(np.max(np.abs(fun(sol.x))))
        good = res <= tol and _codes_of(t, abar).tolist() == codes.tolist()
        if best is None or (good, -res) > (best[0], -best[1]):
            best = (good, res, t, a0, abar)
        if good:
            break
    return best[1], best[2], best[3], best[4], nfev


def _codes_of(t, abar, eps=1e-9):
    """0/1 code of each outlier: the classes on which its frozen activation is positive."""
    H = abar @ t.T
    return (H > eps * np.maximum(1.0, np.abs(H).max(axis=1, keepdims=True))).astype(int)


def _check(t, a0, abar, codes, res, rho, s, tol, n_directions, seed):
    """Posterior conditions of a root: codes, max Q ≤ 1, a0 the global maximum of F."""
    problems = []
    if res > tol:
        problems.append(f"equations not solved (residual {res:.2e} > tol {tol:.0e})")
    if abar.size and np.min(np.linalg.norm(abar, axis=1)) < 1e-8:
        problems.append("an outlier readout vanished (fewer outliers than the scheme asks for)")
    if _codes_of(t, abar).tolist() != codes.tolist():
        problems.append(f"outlier codes {_codes_of(t, abar).tolist()} differ from the scheme {codes.tolist()}")
    stab = relu_toy.max_q(t, rho, s, n_directions=n_directions, seed=seed)
    if stab["Q_max"] > 1.0 + 1e-8:
        problems.append(f"bulk unstable: max Q = {stab['Q_max']:.6f} > 1 in direction "
                        f"{np.array2string(stab['direction'], precision=4)}")
    if problems:        # F is unbounded above or the root is not the scheme's: no bulk to check
        eigs = np.linalg.eigvalsh(relu_toy.free_energy_hessian(a0, t, rho, s))
        return problems, stab, dict(F_a0=relu_toy.free_energy(a0, t, rho, s)[0], F_best=np.nan, a_best=None,
                                    hessian_eigs=eigs)
    glob = relu_toy.bulk_global_check(a0, t, rho, s, seed=seed)
    if glob["hessian_eigs"].max() >= 0:
        problems.append(f"a0 is not a maximum of F (Hessian eigenvalues {glob['hessian_eigs']})")
    if glob["F_best"] > glob["F_a0"] + 1e-9:
        problems.append(f"a0 is not the global maximum of F (F(a0) = {glob['F_a0']:.6g} < "
                        f"{glob['F_best']:.6g} at a = {np.array2string(glob['a_best'], precision=4)})")
    return problems, stab, glob


def _as_tuples(C):
    return tuple(tuple(int(v) for v in c) for c in C)


def _code_str(C):
    return "[" + ", ".join("-".join(str(int(v)) for v in c) for c in C) + "]"


def _parse_codes(codes, K):
    """Candidate outlier code matrices, grouped by number of outliers (largest first)."""
    if codes is None:
        # single-class outliers on every subset of the classes; the others are left to the bulk
        eye = np.eye(K, dtype=int)
        return [[eye[list(S)] for S in itertools.combinations(range(K), n)] for n in range(K, -1, -1)]
    try:
        C = np.array(codes, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"codes must be a sequence of 0/1 tuples of length {K}, got {codes!r}") from exc
    C = np.atleast_2d(C) if C.size else C.reshape(0, K)
    if C.ndim != 2 or C.shape[1] != K or not np.all((C == 0) | (C == 1)) or np.any(C.sum(axis=1) == 0):
        raise ValueError(f"codes must be a sequence of non-zero 0/1 tuples of length K = {K} (one per class), "
                         f"got {codes!r}")
    return [[C.astype(int)]]


def _tilted_z_moments(h):
    """Mean and variance of z under ``∝ exp(−z²/2 + h relu(z))`` for each field in ``h``."""
    m1 = np.array([tilted_expectation("relu", float(x), lambda z: z) for x in h])
    m2 = np.array([tilted_expectation("relu", float(x), np.square) for x in h])
    return m1, np.maximum(m2 - m1 ** 2, 0.0)


def _gauss_relu_mean(mu, var):
    """``E relu(mu + √var ξ)`` for ξ ~ N(0, 1) (elementwise)."""
    sd = np.sqrt(np.maximum(var, 0.0))
    if sd == 0.0:
        return np.maximum(mu, 0.0)
    u = mu / sd
    return mu * ndtr(u) + sd * _INV_SQRT2PI * np.exp(-0.5 * u * u)


def _make_predict(task, classes, h, a0, abar, zbar):
    """Mean predictor on new inputs (THEORY.md §3): bulk average + frozen outlier activations.

    Given the training preactivations z, a test preactivation is Gaussian with mean
    ``wᵀz`` (``w = K0⁻¹k0(x)``) and variance ``v = k0(x,x) − k0ᵀK0⁻¹k0``. The bulk average
    ``⟨relu(wᵀz + √v ξ)⟩`` over the independent tilted ``z_μ`` treats the largest ``|w_μ|``
    term exactly and the rest by the central limit theorem: exact for training inputs
    (one-hot w) and for inputs orthogonal to the training set (w = 0).
    """
    mz, vz = _tilted_z_moments(h)
    mz, vz = mz[classes], vz[classes]

    def predict(X_new):
        Xn = as_matrix(X_new, "X_new", rows=task.N0)
        k = task.X.T @ Xn / task.N0
        W = np.linalg.solve(task.K0, k)
        v = np.maximum(np.sum(Xn * Xn, axis=0) / task.N0 - np.sum(W * k, axis=0), 0.0)
        bulk = np.empty(Xn.shape[1])
        for j in range(Xn.shape[1]):
            w = W[:, j]
            mu = int(np.argmax(np.abs(w)))
            m_rest = w @ mz - w[mu] * mz[mu]
            v_rest = (w * w) @ vz - w[mu] ** 2 * vz[mu] + v[j]
            bulk[j] = tilted_expectation("relu", float(h[classes[mu]]),
                                         lambda z: _gauss_relu_mean(w[mu] * z + m_rest, v_rest))
        return np.outer(bulk, a0) + np.maximum(W.T @ zbar.T, 0.0) @ abar

    return predict


def solve_relu(task, depth=1, T=0.0, finite_P=True, N=None, *, sigma_a2=None, codes=None, tol=1e-11,
               maxiter=4000, restarts=6, n_directions=2000, seed=0):
    """Solve the ReLU mean-field theory (bulk + outliers) on the toy task (THEORY.md §2.3).

    Parameters
    ----------
    task : Task
        Toy task: ``K0 = I`` and targets constant within each class (else NotImplementedError).
    depth : int
        Must be 1 (the paper's ReLU theory is for one hidden layer).
    T : float
        Rescaled temperature ≥ 0; the residual ``T t`` enters (S2).
    finite_P : bool
        The equations are leading order in 1/P either way; with ``True`` the finite-P Laplace
        covariance of the bulk readout, ``(−P ∇²F(a0))⁻¹``, is reported in ``info["bulk_covariance"]``.
    N : int, optional
        Width, used only to report raw-scale outlier values (``info["a_raw"] = √N ā``,
        ``info["z_raw_class"]``); no finite-N corrections are applied.
    sigma_a2 : float, optional
        Readout prior variance (default ``1/P``); enters through ``s = P σ_a²``.
    codes : sequence of 0/1 tuples, optional
        Outlier code assignment (one tuple of length K per outlier; ``[]`` for a bulk alone).
        Default: single-class outliers on every subset of the classes, the other classes left to
        the bulk: K outliers, then the K schemes with K − 1, then (only while none is valid)
        fewer; the first valid posterior is returned and every attempt is listed in
        ``info["schemes"]``.
    tol : float
        Max-norm tolerance of the equations.
    maxiter : int
        Residual evaluations per Levenberg–Marquardt run.
    restarts : int
        Extra jittered starts per scheme if the first does not give a valid root.
    n_directions : int
        Random directions in the global ``max Q ≤ 1`` check (besides exact enumeration).
    seed : int
        Seed of the restarts and of the stability checks.

    Returns
    -------
    Solution
        ``readouts = a0[None]`` (the bulk Dirac), ``codes = (bulk code,)`` with
        ``code_fractions = [1]``, ``outliers = {"a_bar": n×m, "z_bar": n×P, "z_bar_class": n×K,
        "codes": n tuples}``, ``kernels = (K0, K1)``, ``field`` (P × m), ``predict``, ``conditional``.
        ``converged`` is False (with the reasons in ``message``) if no scheme satisfies the
        equations and the posterior conditions (max Q ≤ 1, a0 the global maximum of F).
    """
    from ..tasks import Task
    if not isinstance(task, Task):
        raise TypeError(f"task must be a meanfield.Task, got {type(task).__name__}")
    depth = check_int(depth, "depth", minimum=1)
    if depth != 1:
        raise NotImplementedError(f"the ReLU theory is for one hidden layer (depth = 1), got depth = {depth}; "
                                  "the paper treats deeper ReLU networks only empirically")
    T = check_float(T, "T", minimum=0.0)
    if not isinstance(finite_P, (bool, np.bool_, numbers.Integral)) or finite_P not in (0, 1):
        raise TypeError(f"finite_P must be a bool, got {finite_P!r}")
    if N is not None:
        N = check_int(N, "N", minimum=1)
    P = task.P
    sigma_a2 = 1.0 / P if sigma_a2 is None else check_float(sigma_a2, "sigma_a2", minimum=0.0, strict=True)
    tol = check_float(tol, "tol", minimum=0.0, strict=True)
    maxiter = check_int(maxiter, "maxiter", minimum=1)
    restarts = check_int(restarts, "restarts", minimum=0)
    n_directions = check_int(n_directions, "n_directions", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    try:
        rho, Yc, classes = relu_toy.class_reduction(task)
    except NotImplementedError:
        if codes is not None:
            raise ValueError("codes: the general-data ReLU theory uses one single-class outlier per class; "
                             "codes cannot be chosen") from None
        from .relu_general import solve_relu_general
        return solve_relu_general(task, T, sigma_a2, seed=seed)
    K, m = Yc.shape
    s = P * sigma_a2
    schemes = _parse_codes(codes, K)

    rng = np.random.default_rng(seed)
    tried, results, nit = [], [], 0
    for level, group in enumerate(schemes):
        if level >= 2 and any(d["valid"] for d in tried):
            break          # K and K − 1 outliers are always tried; fewer only while nothing is valid
        for C in group:
            res, t, a0, abar, nfev = _solve_scheme(Yc, rho, s, T, C, tol, maxiter, restarts, rng)
            nit += nfev
            problems, stab, glob = _check(t, a0, abar, C, res, rho, s, tol, n_directions, seed)
            tried.append(dict(codes=_as_tuples(C), valid=not problems, residual=res, problems=problems,
                              Q_max=stab["Q_max"]))
            results.append((C, res, t, a0, abar, stab, glob, problems))
    valid = [j for j, d in enumerate(tried) if d["valid"]]
    # the first valid scheme; if there is none, the one with the smallest residual, flagged
    chosen = results[valid[0]] if valid else results[int(np.argmin([d["residual"] for d in tried]))]
    C, res, t, a0, abar, stab, glob, problems = chosen
    converged = not problems
    if converged:
        message = f"{abar.shape[0]} outlier(s) with codes {_code_str(C)} + bulk; max Q = {stab['Q_max']:.12f}"
        if len(valid) > 1:
            message += f"; {len(valid)} schemes are valid posteriors, returned the first (see info['schemes'])"
    else:
        message = "no valid ReLU scheme: " + "; ".join(f"outliers {_code_str(d['codes'])}: {', '.join(d['problems'])}"
                                                      for d in tried)
    return _assemble(task, T, sigma_a2, s, finite_P, N, rho, Yc, classes, t, a0, abar, stab, glob,
                     converged, res, message, nit, tried)


def _assemble(task, T, sigma_a2, s, finite_P, N, rho, Yc, classes, t, a0, abar, stab, glob,
              converged, res, message, nit, tried):
    """Build the :class:`Solution` (kernels, predictor, conditional, diagnostics)."""
    P = task.P
    h = t @ a0
    _, g1, g2 = tilted_moments("relu", h)
    zc = np.maximum(abar @ t.T, 0.0)                      # n × K frozen activations per class
    zbar = zc[:, classes]                                 # n × P
    gp = g1[classes]
    K1 = np.outer(gp, gp)
    K1[np.diag_indices(P)] = (g2 + g1 ** 2)[classes]      # ⟨relu(z)²⟩ = Var + mean²
    K1 += zbar.T @ zbar
    info = dict(scheme_codes=_as_tuples(_codes_of(t, abar)), schemes=tried, rho=rho, Y_class=Yc,
                t_class=t, a0=a0, h_bulk=h, bulk_activation=g1, bulk_variance=g2,
                bulk_output=np.outer(g1, a0), Q_max=stab["Q_max"], Q_direction=stab["direction"],
                Q_exact=stab["Q_exact"], Q_random=stab["Q_random"], F_bulk=glob["F_a0"],
                F_best_random=glob["F_best"], bulk_hessian_eigs=glob["hessian_eigs"], s=s)
    if finite_P:
        info["bulk_covariance"] = np.linalg.inv(-P * relu_toy.free_energy_hessian(a0, t, rho, s))
    if N is not None:
        info["a_raw"] = np.sqrt(N) * abar
        info["z_raw_class"] = np.sqrt(N) * zc
    outliers = dict(a_bar=abar, z_bar=zbar, z_bar_class=zc, codes=_as_tuples(_codes_of(t, abar)))

    def conditional(a):
        a = as_matrix(a, "a").ravel()
        if a.size != t.shape[1]:
            raise ValueError(f"a must have m = {t.shape[1]} entries, got {a.size}")
        mz, vz = _tilted_z_moments(t @ a)
        return mz[classes], np.diag(vz[classes])

    return Solution(nonlinearity="relu", depth=1, T=T, sigma_a2=sigma_a2, field=t[classes], kernels=(task.K0, K1),
                    converged=converged, residual=res, message=message, nit=nit, U=None,
                    codes=(tuple(int(v) for v in (h > 0)),), code_fractions=np.array([1.0]), readouts=a0[None, :],
                    outliers=outliers, N=N, finite_P=bool(finite_P), task=task, info=info,
                    _predict=_make_predict(task, classes, h, a0, abar, zbar), _conditional=conditional)
