"""Quantitative agreement between a theory :class:`Solution` and sampler :class:`Samples`, with a verdict.

Every judged row carries its Monte-Carlo floor, measured from the samples' own spread (batch means
over the stored samples, :mod:`meanfield.agreement.floors`; docs/theory.md, "What is compared, and
the Monte-Carlo floor" and "Verdict").
"""
from __future__ import annotations

import numpy as np

from ..nonlinearities import nonlinearity as _nonlinearity
from .floors import pass_factor, series_floor, streamed_floor
from .result import Comparison, info_row, mark_frozen, verdict_row

__all__ = ["compare", "Comparison", "rel_frobenius"]

NO_PREACTIVATIONS = "no preactivations recorded (record_preactivations=False): no floor, no verdict"


def rel_frobenius(estimate, reference):
    """``‖estimate − reference‖_F / ‖reference‖_F``."""
    estimate, reference = np.asarray(estimate), np.asarray(reference)
    return float(np.linalg.norm(estimate - reference) / max(np.linalg.norm(reference), 1e-300))


def _eig_summary(M):
    return "eig " + " ".join(f"{v:.4f}" for v in np.linalg.eigvalsh(M))


def _relative_row(key, quantity, estimate, reference, floor, **extra):
    """Relative Frobenius error judged against ``floor.se / ‖reference‖`` (``floor=None``: no verdict)."""
    err = rel_frobenius(estimate, reference)
    norm = max(float(np.linalg.norm(reference)), 1e-300)
    if floor is None:
        return verdict_row(key, quantity, "rel. Frobenius error", err, err, None, None, note=NO_PREACTIVATIONS,
                           **extra)
    return verdict_row(key, quantity, "rel. Frobenius error", err, err, floor.se / norm, pass_factor(floor.n_batches),
                       ok=floor.ok, note=floor.note(), **extra)


def per_sample_predictions(samples, task):
    """Network output on the training inputs at every stored sample, (S, P, m).

    Weight/preactivation-space HMC stores ``readouts = σ_a a`` and the preactivations, so
    ``f = φ(Z_L)ᵀ readouts / N``. The collapsed sampler's mean predictor is the conditional mean
    given the features, ``Y − T (T + (σ_a²/N) ΦᵀΦ)⁻¹ Y``, recomputed here per sample.
    ``None`` without preactivations.
    """
    if not samples.preactivations:
        return None
    cfg = samples.config
    phi = _nonlinearity(cfg["nonlinearity"]).phi
    Z, A = samples.preactivations[-1], samples.readouts
    S, N, P = Z.shape
    out = np.empty((S, P, A.shape[2]))
    for s in range(S):
        H = phi(np.asarray(Z[s], dtype=np.float64))
        if cfg.get("space") == "collapsed":
            M = cfg["T"] * np.eye(P) + (cfg["sigma_a2"] / N) * (H.T @ H)
            out[s] = task.Y - cfg["T"] * np.linalg.solve(M, task.Y)
        else:
            out[s] = H.T @ A[s] / N
    return out


def _kernel_rows(solution, samples):
    P = solution.task.P
    kernels_mean = solution.info.get("kernels_mean")   # finite N: the posterior-mean kernels, not the saddle's
    phi = _nonlinearity(samples.config["nonlinearity"]).phi
    rows = []
    for ell in range(1, solution.depth + 1):
        Kt = solution.kernels[ell] if kernels_mean is None else kernels_mean[ell]
        Ks = samples.kernels[ell]
        floor = None
        if samples.preactivations:
            Z = samples.preactivations[ell - 1]

            def kernel_of(s, Z=Z):
                H = phi(np.asarray(Z[s], dtype=np.float64))
                return H.T @ H / H.shape[0]
            floor = streamed_floor(kernel_of, Z.shape[0], probes=[Ks, Ks - Kt])
        rows.append(_relative_row(f"kernel_{ell}",
                                  f"kernel K_{ell}" + ("" if kernels_mean is None else " (posterior mean)"),
                                  Ks, Kt, floor, theory=f"tr/P {np.trace(Kt) / P:.4f}",
                                  samples=f"tr/P {np.trace(Ks) / P:.4f}"))
    return rows


def _prediction_rows(solution, samples):
    task, T = solution.task, samples.config["T"]
    f_th, f_s = solution.train_prediction, samples.mean_prediction
    t_s = (task.Y - f_s) / T
    rows = [info_row("mean_predictor_max", "mean predictor (train)", "max |Δf|", np.max(np.abs(f_th - f_s)))]
    if np.std(f_th) > 0 and np.std(f_s) > 0:
        rows.append(info_row("mean_predictor_corr", "mean predictor (train) corr", "Pearson r",
                             np.corrcoef(f_th.ravel(), f_s.ravel())[0, 1]))
    F = per_sample_predictions(samples, task)
    fl = None if F is None else series_floor(F, directions=[f_s - f_th])
    rows.append(_relative_row("mean_predictor", "mean predictor (train) rel.", f_s, f_th, fl))
    field_floor = None
    if fl is not None:           # t = (Y − ⟨f⟩)/T: the predictor's standard error over T
        field_floor = type(fl)(se=fl.se / T, tau=fl.tau, n_batches=fl.n_batches, batch_size=fl.batch_size, ok=fl.ok)
    return rows, _relative_row("field", "field t = residual/T", t_s, solution.field, field_floor)


def _check(solution, samples):
    from ..sampling import Samples
    from ..theory.solution import Solution

    if not isinstance(solution, Solution):
        raise TypeError(f"solution must be a meanfield Solution, got {type(solution).__name__}")
    if not isinstance(samples, Samples):
        raise TypeError(f"samples must be meanfield Samples, got {type(samples).__name__}")
    cfg = samples.config
    P, m = solution.task.P, solution.task.m
    if (cfg["P"], cfg["m"]) != (P, m):
        raise ValueError(f"samples (P = {cfg['P']}, m = {cfg['m']}) and solution (P = {P}, m = {m}) "
                         "are for different tasks")
    if cfg["depth"] != solution.depth:
        raise ValueError(f"depth differs: samples L = {cfg['depth']}, solution L = {solution.depth}")
    if samples.readouts.shape[0] == 0:
        raise ValueError("samples holds no stored samples (all transitions were warm-up)")


def compare(solution, samples):
    """Compare a theory solution with posterior samples of a finite network, row by row, with a verdict.

    Rows (where both sides have the quantity), by key: ``"U"`` readout covariance (relative
    Frobenius error; ``"U_abs"`` max absolute error; against ``info["U_mean"]``, the one-loop
    posterior mean, when a finite-N solution has it), ``"kernel_ℓ"`` the kernel of every layer
    ℓ = 1 … L on the training inputs (relative Frobenius error), ``"mean_predictor"`` the mean
    predictor on the training inputs (relative Frobenius error; ``"mean_predictor_max"`` max abs
    difference, ``"mean_predictor_corr"`` correlation) and ``"field"`` the field
    ``t = (Y − ⟨f⟩) / T`` (relative error). For coded solutions (sigmoid schemes) also
    ``"code_set"``, ``"code_fractions"``, ``"readout_per_code"``, ``"ks_density"`` (KS distance of
    p(z | a_γ) per code and class) and ``"code_switches"`` (:mod:`meanfield.agreement.codes`).

    **Floors.** Each judged row's floor is the batch-means standard error of the sampled average
    (batches ≥ 5 integrated autocorrelation times long, 5 … 20 of them), relative to the theory's
    norm where the error is relative: U from the per-sample ``AᵀA/N``; kernels from the per-sample
    ``φ(Z_ℓ)ᵀφ(Z_ℓ)/N`` recomputed from the stored preactivations; the mean predictor from the
    per-sample ``f = φ(Z_L)ᵀ readouts / N``; the field from the predictor's, divided by T; code
    fractions and readouts per code from per-sample fractions / code means; the KS distance from
    its effective sample size. Without stored preactivations the rows that need them get no floor
    and no verdict (status ``"n/a"``).

    **Pass rule.** A row PASSes iff ``error ≤ factor · floor`` (equivalently
    ``excess = √max(error² − floor², 0) ≤ √(factor² − 1) · floor``), with ``factor`` the two-sided
    Student-t quantile ``t_{B−1}(1 − α/2k)``, α = 0.01, B batches, k components for rows that take
    the worst of k separately judged components (Bonferroni); the KS row uses the Kolmogorov
    quantile. Reason: if the theory is right the error is noise, and the ratio of one Gaussian
    error component to its batch-means standard error is t-distributed with B − 1 degrees of
    freedom; a Frobenius error over d effectively independent entries has
    ``(error/floor)² ~ F(d, d(B − 1))``, which concentrates near 1 for large d, so the one-component
    quantile (≈ 3.2 for B = 10) is the conservative choice: a correct theory FAILs a row with
    probability ≤ 1 %, while any disagreement several floors large FAILs. Systematic errors of the
    theory (e.g. O(1/N) terms left out of an N = ∞ theory) are not noise and FAIL once they exceed it.

    **Frozen sampler.** For coded solutions, when fewer than 10 % of the neurons switched code
    during the stored samples the run has broken ergodicity: its code fractions are set by where
    it froze, and no batch-means floor holds. Failing rows are then marked ``"FROZEN"`` and the
    verdict says so (``Comparison.frozen``).

    Parameters
    ----------
    solution : Solution
    samples : Samples

    Returns
    -------
    Comparison
        ``passed`` is ``True`` iff no row FAILs or is FROZEN and at least one row PASSes.
    """
    _check(solution, samples)
    cfg = samples.config
    rows = []
    if solution.U is not None:
        Ut = solution.info.get("U_mean", solution.U)        # finite N: the posterior mean of U, not the saddle's
        Us, A = samples.readout_covariance(), samples.readouts
        per = np.einsum("sir,sij->srj", A, A) / A.shape[1]                     # per-sample AᵀA/N
        rows.append(_relative_row("U", "readout covariance U", Us, Ut, series_floor(per, directions=[Us - Ut]),
                                  theory=_eig_summary(Ut), samples=_eig_summary(Us)))
        rows.append(info_row("U_abs", "readout covariance U (abs)", "max |ΔU|", np.max(np.abs(Us - Ut))))
    rows += _kernel_rows(solution, samples)
    pred_rows, field_row = _prediction_rows(solution, samples)
    rows += pred_rows
    switching = None
    frozen = False
    if solution.codes is not None and solution.outliers is None and samples.preactivations:
        from .codes import code_rows
        crows, sw = code_rows(solution, samples)
        rows += crows
        switching, frozen = (sw["switching_neurons"], sw["N"]), sw["frozen"]
    rows.append(field_row)
    if frozen:
        mark_frozen(rows)
    context = dict(nonlinearity=solution.nonlinearity, depth=solution.depth, N=cfg["N"], P=solution.task.P,
                   T=cfg["T"], theory_T=solution.T, theory_N=solution.N)
    health = None if samples.health is None else tuple(samples.health.problems)
    return Comparison(rows=rows, context=context, frozen=frozen, switching=switching, health_problems=health)
