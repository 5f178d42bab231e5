"""Monte-Carlo floors of sampled averages: batch means over the stored samples (docs/theory.md).

A sampled average ``Q̂ = (1/S) Σ_s Q_s`` (a kernel, the readout covariance, the mean predictor, a
code fraction, …) carries a Monte-Carlo error. It is measured in the run itself: the S stored
samples are cut into B consecutive batches, each much longer than the integrated
autocorrelation time τ of the series, so that the batch means ``Q_b`` are nearly independent;
the standard error of ``Q̂`` (summed over all entries) is

    se = [Σ_b ‖Q_b − Q̄‖²_F / (B (B − 1))]^{1/2},

and the **floor** of a relative Frobenius error is ``se / ‖Q_theory‖_F``. If the theory is right,
``err ≈ floor``; the **excess** ``√max(err² − floor², 0)`` is the part of the error that noise
does not explain.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..sampling.diagnostics import integrated_time

BATCH_TAU = 5.0        # batches at least this many integrated autocorrelation times long
MIN_BATCHES = 5        # fewer batches than this: no floor (the chain is too short for one)
MAX_BATCHES = 20       # more batches only shorten them (closer to τ) without gaining much
ALPHA = 0.01           # false-FAIL probability of one row when the theory is right


@dataclass(frozen=True)
class Floor:
    """Batch-means standard error of a sampled average.

    Attributes
    ----------
    se : float
        Standard error of the mean, summed over all entries (Frobenius).
    tau : float
        Integrated autocorrelation time (in stored samples) of the slowest probe of the series.
    n_batches, batch_size : int
        Batches used and their length (stored samples).
    ok : bool
        ``False`` when the chain is too short for ``MIN_BATCHES`` batches of ``BATCH_TAU`` τ
        each: then ``se`` is an underestimate and no verdict should rest on it.
    """

    se: float
    tau: float
    n_batches: int
    batch_size: int
    ok: bool

    def note(self):
        """Why the floor is unreliable ('' if it is reliable)."""
        if self.ok:
            return ""
        return (f"no floor: τ ≈ {self.tau:.1f} stored samples, {self.n_batches} batches of {self.batch_size} "
                f"(needs ≥ {MIN_BATCHES} batches of ≥ {BATCH_TAU:g} τ)")


def batch_layout(S, tau):
    """Number and length of batches for ``S`` stored samples with autocorrelation time ``tau``.

    Returns
    -------
    n_batches, batch_size : int
    ok : bool
        Whether ``n_batches ≥ MIN_BATCHES`` batches of at least ``BATCH_TAU · tau`` fit.
    """
    size = max(int(math.ceil(BATCH_TAU * tau)), 1)
    B = min(S // size, MAX_BATCHES)
    ok = B >= MIN_BATCHES
    B = max(B, min(MIN_BATCHES, S))
    return B, S // max(B, 1), ok


def batch_means(values, n_batches, weights=None):
    """Means of ``values`` (S, ...) over ``n_batches`` consecutive blocks (the first S mod B dropped).

    Parameters
    ----------
    values : ndarray (S, ...)
    n_batches : int
    weights : ndarray (S,), optional
        Per-sample weights (e.g. the number of neurons a per-sample value averages over).
        Batches of zero total weight are left out.

    Returns
    -------
    ndarray (B', ...)
        One mean per batch (B' ≤ B with weights).
    """
    x = np.asarray(values, dtype=np.float64)
    S = x.shape[0]
    size = S // n_batches
    if size < 1:
        raise ValueError(f"{S} samples are too few for {n_batches} batches")
    x = x[S - size * n_batches:].reshape((n_batches, size) + x.shape[1:])
    if weights is None:
        return x.mean(axis=1)
    w = np.asarray(weights, dtype=np.float64)[S - size * n_batches:].reshape(n_batches, size)
    tot = w.sum(axis=1)
    keep = tot > 0
    wx = np.einsum("bs,bs...->b...", w, x)
    return wx[keep] / tot[keep].reshape((-1,) + (1,) * (x.ndim - 2))


def batch_standard_error(batches):
    """``[Σ_b ‖Q_b − Q̄‖² / (B (B − 1))]^{1/2}`` of batch means ``batches`` (B, ...)."""
    b = np.asarray(batches, dtype=np.float64)
    B = b.shape[0]
    if B < 2:
        return float("nan")
    se = float(np.sqrt(np.sum((b - b.mean(axis=0)) ** 2) / (B * (B - 1))))
    return 0.0 if se <= 1e-13 * float(np.max(np.abs(b))) else se     # rounding of a constant series


def probe_tau(values, directions=(), weights=None):
    """Integrated autocorrelation time of a multivariate series: the largest over scalar probes.

    The probes are the series projected on its mean, on each of ``directions`` (e.g. the error
    ``Q̂ − Q_theory``, whose noise the verdict tests) and, for at most 16 entries, each entry. (Not
    the first principal component: in many dimensions the sample's top component is the
    direction that happened to fluctuate slowest, which overstates τ.)
    """
    x = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    if weights is not None:                               # a sample without members carries no value
        w = np.asarray(weights, dtype=np.float64)
        x = x[w > 0]
    if x.shape[0] < 4:
        return 1.0
    xc = x - x.mean(axis=0)
    dirs = [x.mean(axis=0)] + [np.ravel(d) for d in directions]
    if x.shape[1] <= 16:                                  # few entries: every entry is a probe too
        dirs += list(np.eye(x.shape[1]))
    taus = [integrated_time(xc @ d) for d in dirs if np.any(d)]
    return max(taus + [1.0])


def series_floor(values, directions=(), weights=None):
    """:class:`Floor` of the average of a per-sample series ``values`` (S, ...).

    The batch length is ``BATCH_TAU`` times the series' integrated autocorrelation time
    (:func:`probe_tau`), with ``MIN_BATCHES`` … ``MAX_BATCHES`` batches.
    """
    S = len(values)
    tau = probe_tau(values, directions, weights)
    B, size, ok = batch_layout(S, tau)
    if B < 2:
        return Floor(se=float("nan"), tau=tau, n_batches=B, batch_size=size, ok=False)
    bm = batch_means(values, B, weights)
    return Floor(se=batch_standard_error(bm), tau=tau, n_batches=bm.shape[0], batch_size=size,
                 ok=ok and bm.shape[0] >= MIN_BATCHES)


def streamed_floor(per_sample, S, probes):
    """:class:`Floor` of ``(1/S) Σ_s per_sample(s)`` without holding all S values in memory.

    Parameters
    ----------
    per_sample : callable
        ``s ↦ ndarray`` (the value of one stored sample, e.g. a P × P kernel).
    S : int
        Number of stored samples.
    probes : sequence of ndarray
        Directions (shaped like one value) whose projections set τ (:func:`probe_tau`).
    """
    proj = np.empty((S, len(probes)))
    for s in range(S):
        v = per_sample(s)
        proj[s] = [np.vdot(v, d) for d in probes]
    tau = max([integrated_time(proj[:, k]) for k in range(len(probes))] + [1.0])
    B, size, ok = batch_layout(S, tau)
    if B < 2:
        return Floor(se=float("nan"), tau=tau, n_batches=B, batch_size=size, ok=False)
    first = S - size * B
    bm = [np.mean([per_sample(s) for s in range(first + b * size, first + (b + 1) * size)], axis=0)
          for b in range(B)]
    return Floor(se=batch_standard_error(np.stack(bm)), tau=tau, n_batches=B, batch_size=size, ok=ok)


def excess(error, floor):
    """``√max(error² − floor², 0)``: the part of an error that Monte-Carlo noise does not explain."""
    return float(math.sqrt(max(error * error - floor * floor, 0.0)))


def pass_factor(n_batches, components=1, alpha=ALPHA):
    """Largest ``error / floor`` that passes: the two-sided Student-t quantile ``t_{B−1}(1 − α/(2k))``.

    With B batch means the ratio of one Gaussian error component to its batch-means standard
    error is Student-t with B − 1 degrees of freedom; a Frobenius error over d effectively
    independent components has ``(err/floor)² ~ F(d, d(B − 1))``, whose quantile falls towards 1 as
    d grows, so d = 1 is the conservative case. ``components`` k > 1 (a row that takes the worst
    of k separately tested components) gets the Bonferroni level α/k.
    """
    return float(stats.t.ppf(1.0 - alpha / (2.0 * max(components, 1)), max(n_batches - 1, 1)))


def ks_pass_factor(components=1, alpha=ALPHA):
    """Largest KS distance / floor that passes, floor = ``KS_MEAN / √n_eff`` (the KS mean).

    The Kolmogorov distribution's quantile ``K_{1−α/k}`` over its mean ``KS_MEAN = √(π/2) ln 2``.
    """
    return float(stats.kstwobign.isf(alpha / max(components, 1)) / KS_MEAN)


KS_MEAN = math.sqrt(math.pi / 2.0) * math.log(2.0)     # E sup|B(t)| of a Brownian bridge


def batch_kernels(preactivations, n_batches, phi=None):
    """Batch-mean kernels of every layer from stored preactivations.

    Parameters
    ----------
    preactivations : list of ndarray (S, N, P)
        Per layer ℓ = 1 … L (``Samples.preactivations``).
    n_batches : int
        Number B of consecutive blocks; the last S mod B samples are dropped.
    phi : callable, optional
        Activation φ (default: identity, linear networks).

    Returns
    -------
    list of ndarray (B, P, P)
        Per layer the mean of φ(Z)ᵀφ(Z)/N over each block.
    """
    if not preactivations:
        raise ValueError("batch means need the preactivations (record_preactivations=True)")
    S = preactivations[0].shape[0]
    if S < 2 * n_batches:
        raise ValueError(f"{S} stored samples are too few for {n_batches} batches")
    size = S // n_batches
    out = []
    for Z in preactivations:
        N, P = Z.shape[1:]
        Kb = np.empty((n_batches, P, P))
        for b in range(n_batches):
            H = np.asarray(Z[b * size:(b + 1) * size], dtype=np.float64)
            H = (H if phi is None else phi(H)).reshape(-1, P)
            Kb[b] = H.T @ H / (N * size)
        out.append(Kb)
    return out
