"""Run health: does a sampler run say what its samples are worth?

Every :func:`meanfield.sample` and :func:`meanfield.sample_collapsed` run ends with
:func:`assess`, which turns the run's traces and stored samples into a :class:`Health`
object: one :class:`Check` per quantity (its value, the threshold and what a violation
means). ``Health.ok`` is true when every check passes; ``Health.problems`` lists the
failures as sentences naming the quantity, its value and the threshold. A run with
problems emits one :class:`SamplerHealthWarning`, and the command line exits with
status 3. The thresholds and their reasons are in docs/sampler.md, "Run health".

The checks (production transitions only, i.e. after warm-up):

* ``finite`` — energies, training errors, readouts and the mean prediction are finite.
* ``acceptance`` — mean Metropolis acceptance (HMC only).
* ``divergent`` — fraction of transitions whose energy error is not finite (HMC only).
* ``leapfrog_cap`` — fraction of trajectories cut at ``max_leapfrog`` (HMC only).
* ``equipartition`` — output fluctuations per stiff direction in units of T/N (HMC only).
* ``train_accuracy`` — the posterior-mean predictor classifies the training inputs
  (nearest class target): the network fits its task.
* ``train_error/T`` — the mean training error |Y − f|²/(Pm) of the production run is O(T).
* ``stationarity`` — the training error of the two halves of the production run
  agrees within its Monte-Carlo error.
* ``code_drift`` — bounded φ: the code fractions of the two halves agree.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .diagnostics import integrated_time

__all__ = ["Check", "Health", "SamplerHealthWarning", "THRESHOLDS", "assess", "warn"]

#: Thresholds of the checks (docs/sampler.md, "Run health", gives the reasons).
THRESHOLDS = dict(
    min_accept=0.3,                # HMC adapted to 0.75: below 0.3 the chain barely moves
    max_divergent_fraction=0.01,   # non-finite energy errors: the step is unstable somewhere
    max_capped_fraction=0.1,       # trajectories cut at max_leapfrog: the step size collapsed
    max_equipartition=3.0,         # output variance per stiff direction ≤ T/N at equilibrium
    min_train_accuracy=0.99,       # nearest-class-target accuracy of the mean predictor
    max_train_error_over_T=20.0,   # train error = T²|t|²/(Pm) + O(T/N); |t| ≲ 20 in every solved setting
    stationarity_z=5.0,            # halves of the production run, in standard errors (z-score) ...
    stationarity_rel=0.1,          # ... fails only if the relative change also exceeds this
    code_drift_z=5.0,              # code fractions of the halves, in standard errors (z-score) ...
    code_drift_abs=0.05,           # ... fails only if the absolute change also exceeds this
)


class SamplerHealthWarning(UserWarning):
    """A sampler run failed one of its health checks (:class:`Health`)."""


@dataclass(frozen=True)
class Check:
    """One health check: ``value`` against ``threshold`` (``relation`` says which side passes)."""

    name: str
    value: float
    threshold: float
    relation: str          # "<=" or ">=": the passing side, value <relation> threshold
    ok: bool
    meaning: str           # what a violation means

    def describe(self):
        """``"acceptance = 0.012 (needs >= 0.3): the chain barely moves"``."""
        return f"{self.name} = {self.value:.4g} (needs {self.relation} {self.threshold:g}): {self.meaning}"


@dataclass(frozen=True, repr=False)
class Health:
    """Health of a sampler run: one :class:`Check` per quantity.

    Attributes
    ----------
    checks : tuple of Check
        Every check that applied to this run (the sampler kind and the task decide which).
    ok : bool
        True when every check passes.
    problems : list of str
        The failed checks, each naming the quantity, its value and the threshold.
    """

    checks: tuple

    @property
    def ok(self):
        return all(c.ok for c in self.checks)

    @property
    def problems(self):
        return [c.describe() for c in self.checks if not c.ok]

    def __getitem__(self, name):
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no health check named {name!r}; have {[c.name for c in self.checks]}")

    def table(self):
        """One line per check with PASS / FAIL, then the verdict."""
        lines = ["Run health:"]
        for c in self.checks:
            lines.append(f"  {'PASS' if c.ok else 'FAIL'}  {c.name:16s} {c.value:12.4g}   (needs {c.relation} "
                         f"{c.threshold:g})")
        lines.append("  verdict: healthy" if self.ok else
                     f"  verdict: NOT HEALTHY ({len(self.problems)} problem(s)); do not trust this run")
        return "\n".join(lines)

    def __repr__(self):
        return self.table()

    def to_dict(self):
        """JSON-ready form (stored with the samples)."""
        return dict(checks=[dict(name=c.name, value=c.value, threshold=c.threshold, relation=c.relation,
                                 ok=c.ok, meaning=c.meaning) for c in self.checks])

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`."""
        return cls(checks=tuple(Check(**c) for c in d["checks"]))


def warn(health, stacklevel=3):
    """Emit one :class:`SamplerHealthWarning` listing the problems of an unhealthy run."""
    if not health.ok:
        warnings.warn("sampler run failed its health checks:\n  " + "\n  ".join(health.problems),
                      SamplerHealthWarning, stacklevel=stacklevel)


def _check(name, value, threshold, relation, meaning, small_effect=False):
    """A :class:`Check`; ``small_effect`` passes it whatever the value (a statistically significant
    change that is too small to matter)."""
    value = float(value)
    ok = small_effect or (math.isfinite(value) and (value <= threshold if relation == "<=" else value >= threshold))
    return Check(name, value, float(threshold), relation, bool(ok), meaning)


def _half_difference_z(x):
    """``(|mean₁ − mean₂| / se, |mean₁ − mean₂| / max|mean|)`` of the two halves of a series;
    the standard error of each half's mean uses its integrated autocorrelation time."""
    h = x.size // 2
    a, b = x[:h], x[h:]
    se2 = sum(np.var(v) * integrated_time(v) / v.size for v in (a, b))
    diff = abs(a.mean() - b.mean())
    rel = diff / max(abs(a.mean()), abs(b.mean()), 1e-300)
    return (diff / math.sqrt(se2) if se2 > 0 else (0.0 if diff == 0 else math.inf)), rel


def _fit_checks(mean_prediction, Y, labels, T, train_error):
    """Nearest-class-target accuracy of the mean predictor and the mean training error in units of T."""
    classes = np.unique(labels)
    targets = np.stack([Y[labels == c].mean(axis=0) for c in classes])           # (K, m)
    d = ((mean_prediction[:, None, :] - targets[None]) ** 2).sum(axis=-1)         # (P, K)
    acc = float(np.mean(classes[np.argmin(d, axis=1)] == labels)) if np.all(np.isfinite(d)) else math.nan
    th = THRESHOLDS
    return [_check("train_accuracy", acc, th["min_train_accuracy"], ">=",
                   "the posterior-mean network does not classify its training inputs (it did not learn the task)"),
            _check("train_error/T", train_error / T, th["max_train_error_over_T"], "<=",
                   "the training error is not O(T): the network does not fit its targets")]


def _code_drift(Z, phi, labels):
    """Largest change of a code fraction between the halves of the stored samples, and its z-score."""
    from ..analysis.codes import neuron_codes
    classes, idx = np.unique(labels, return_inverse=True)
    K = classes.size
    if K > 12:
        return None
    weights = 1 << np.arange(K)
    series = np.empty((Z.shape[0], 2 ** K))
    for s in range(Z.shape[0]):
        codes = neuron_codes(phi.phi(np.asarray(Z[s], dtype=np.float64)), idx, n_classes=K)
        series[s] = np.bincount(codes @ weights, minlength=2 ** K) / Z.shape[1]
    worst = (0.0, 0.0)
    for col in series.T:
        if np.ptp(col) == 0.0:
            continue
        z, _ = _half_difference_z(col)
        h = col.size // 2
        worst = max(worst, (abs(col[:h].mean() - col[h:].mean()), z))
    return worst


def assess(traces, config, readouts, mean_prediction, Y, labels, preactivations=(), phi=None):
    """Health of a finished run (see the module docstring for the checks).

    Parameters
    ----------
    traces : dict of ndarray
        The run's per-transition traces (``meanfield.sampling.storage.TRACE_KEYS``).
    config : dict
        The run's configuration (``warmup``, ``T``, ``N``, ``space``, ``max_leapfrog``, …).
    readouts : ndarray (S, N, m)
        Stored readouts.
    mean_prediction : ndarray (P, m)
        Posterior mean of the outputs on the training inputs.
    Y : ndarray (P, m)
        Training targets.
    labels : ndarray of int (P,)
        Class of each training input.
    preactivations : sequence of ndarray (S, N, P)
        Stored preactivations per layer (may be empty).
    phi : Nonlinearity, optional
        φ of the network (code drift is checked for bounded φ).

    Returns
    -------
    Health
    """
    th = THRESHOLDS
    warm, T, N = config["warmup"], config["T"], config["N"]
    hmc = config.get("space") != "collapsed"
    prod = slice(warm, None)
    te = np.asarray(traces["train_error"][prod], dtype=np.float64)
    arrays = [te, readouts, mean_prediction] + ([traces["energy"][prod]] if hmc else [])
    n_bad = sum(int(np.size(a) - np.count_nonzero(np.isfinite(a))) for a in arrays)
    checks = [_check("non-finite", n_bad, 0, "<=", "energies, training errors, readouts or predictions are NaN/inf")]
    if hmc and te.size:
        n_leap = traces["n_leapfrog"][prod]
        checks += [
            _check("acceptance", np.mean(traces["accept_prob"][prod]), th["min_accept"], ">=",
                   "the chain barely moves (step size too large, or a non-finite posterior)"),
            _check("divergent", np.mean(traces["divergent"][prod]), th["max_divergent_fraction"], "<=",
                   "trajectories with a non-finite energy error (an unstable step)"),
            _check("leapfrog_cap", np.mean(n_leap >= config["max_leapfrog"]) if config.get("n_leapfrog") is None
                   else 0.0, th["max_capped_fraction"], "<=",
                   "trajectories cut at max_leapfrog: the adapted step size collapsed (T far too small?)"),
        ]
        if readouts.shape[0]:
            mres = float(np.mean((Y - mean_prediction) ** 2))
            checks.append(_check("equipartition", (np.mean(te) - mres) * N / T, th["max_equipartition"], "<=",
                                 "output fluctuations far above T/N: the run is not equilibrated"))
    if readouts.shape[0]:
        err = np.mean(te) if te.size else np.mean((Y - mean_prediction) ** 2)
        checks += _fit_checks(mean_prediction, Y, np.asarray(labels), T, err)
    if te.size >= 8 and np.all(np.isfinite(te)):
        z, rel = _half_difference_z(te)
        checks.append(_check("stationarity", z, th["stationarity_z"], "<=",
                             f"the training error changed by {100 * rel:.0f} % between the halves of the "
                             "production run (not equilibrated)", small_effect=rel <= th["stationarity_rel"]))
    if phi is not None and phi.bounded and len(preactivations) and preactivations[-1].shape[0] >= 8:
        drift = _code_drift(preactivations[-1], phi, np.asarray(labels))
        if drift is not None:
            dP, z = drift
            checks.append(_check("code_drift", z, th["code_drift_z"], "<=",
                                 f"a code fraction changed by {dP:.3f} between the halves of the production run "
                                 "(codes still drifting)", small_effect=dP <= th["code_drift_abs"]))
    return Health(checks=tuple(checks))
