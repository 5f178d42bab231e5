"""Quantitative agreement between a theory :class:`Solution` and sampler :class:`Samples`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def rel_frobenius(estimate, reference):
    """``‖estimate − reference‖_F / ‖reference‖_F``."""
    estimate, reference = np.asarray(estimate), np.asarray(reference)
    return float(np.linalg.norm(estimate - reference) / max(np.linalg.norm(reference), 1e-300))


@dataclass(frozen=True, repr=False)
class Comparison:
    """Agreement metrics, one row per compared quantity.

    Attributes
    ----------
    rows : list of dict
        Each row has ``quantity``, ``metric``, ``value`` and optionally
        ``theory`` / ``samples`` summaries.
    context : dict
        Run and solution parameters the rows refer to.
    """

    rows: list
    context: dict = field(default_factory=dict)

    @property
    def metrics(self):
        """``{quantity: value}`` of every row."""
        return {r["quantity"]: r["value"] for r in self.rows}

    def __getitem__(self, quantity):
        return self.metrics[quantity]

    def table(self):
        """Readable agreement table."""
        c = self.context
        head = (f"Theory vs samples: {c.get('nonlinearity')}, L = {c.get('depth')}, N = {c.get('N')}, "
                f"P = {c.get('P')}, T = {c.get('T')}")
        w = max(len(r["quantity"]) for r in self.rows) if self.rows else 10
        lines = [head, f"  {'quantity':{w}s}  {'metric':28s} {'value':>12s}   theory | samples"]
        for r in self.rows:
            extra = f"   {r['theory']} | {r['samples']}" if "theory" in r else ""
            lines.append(f"  {r['quantity']:{w}s}  {r['metric']:28s} {r['value']:12.4e}{extra}")
        return "\n".join(lines)

    def __repr__(self):
        return self.table()


def _eig_summary(M):
    return "eig " + " ".join(f"{v:.4f}" for v in np.linalg.eigvalsh(M))


def compare(solution, samples):
    """Compare a theory solution with posterior samples of a finite network.

    Rows (where both sides have the quantity): readout covariance ``U``
    (relative Frobenius error and max absolute error), the kernel of every layer
    ℓ = 1 … L on the training inputs (relative Frobenius error), the mean
    predictor on the training inputs (correlation and max abs difference) and
    the field ``t = (Y − ⟨f⟩) / T`` (relative error). For coded solutions
    (sigmoid schemes) also: the code set, code fractions, readout per code, the
    KS distance of p(z | a_γ) per code and class, and the code-switch count
    (:mod:`meanfield.code_agreement`).

    Parameters
    ----------
    solution : Solution
    samples : Samples

    Returns
    -------
    Comparison
    """
    from .sampling import Samples
    from .theory.solution import Solution

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
    rows = []
    if solution.U is not None:
        Us = samples.readout_covariance()
        rows.append(dict(quantity="readout covariance U", metric="rel. Frobenius error",
                         value=rel_frobenius(Us, solution.U), theory=_eig_summary(solution.U),
                         samples=_eig_summary(Us)))
        rows.append(dict(quantity="readout covariance U (abs)", metric="max |ΔU|",
                         value=float(np.max(np.abs(Us - solution.U)))))
    kernels_mean = solution.info.get("kernels_mean")   # finite N: the posterior-mean kernels, not the saddle's
    for ell in range(1, solution.depth + 1):
        Kt = solution.kernels[ell] if kernels_mean is None else kernels_mean[ell]
        Ks = samples.kernels[ell]
        rows.append(dict(quantity=f"kernel K_{ell}" + ("" if kernels_mean is None else " (posterior mean)"),
                         metric="rel. Frobenius error",
                         value=rel_frobenius(Ks, Kt), theory=f"tr/P {np.trace(Kt) / P:.4f}",
                         samples=f"tr/P {np.trace(Ks) / P:.4f}"))
    f_th, f_s = solution.train_prediction, samples.mean_prediction
    rows.append(dict(quantity="mean predictor (train)", metric="max |Δf|",
                     value=float(np.max(np.abs(f_th - f_s)))))
    if np.std(f_th) > 0 and np.std(f_s) > 0:
        rows.append(dict(quantity="mean predictor (train) corr", metric="Pearson r",
                         value=float(np.corrcoef(f_th.ravel(), f_s.ravel())[0, 1])))
    if solution.codes is not None and solution.outliers is None and samples.preactivations:
        from .code_agreement import code_rows
        rows.extend(code_rows(solution, samples))
    t_s = (solution.task.Y - f_s) / cfg["T"]
    rows.append(dict(quantity="field t = residual/T", metric="rel. Frobenius error",
                     value=rel_frobenius(t_s, solution.field)))
    context = dict(nonlinearity=solution.nonlinearity, depth=solution.depth, N=cfg["N"], P=P,
                   T=cfg["T"], theory_T=solution.T, theory_N=solution.N)
    return Comparison(rows=rows, context=context)
