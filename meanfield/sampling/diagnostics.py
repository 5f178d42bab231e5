"""Equilibration and mixing diagnostics for sampler runs."""
from __future__ import annotations

import numpy as np


def autocorrelation(x):
    """Normalized autocorrelation function of a 1-D series (FFT, biased estimator)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    x = x - x.mean()
    if n < 2 or not np.any(x):
        return np.ones(1)
    f = np.fft.rfft(x, n=2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n]
    return acf / acf[0]


def integrated_time(x, c=5.0):
    """Integrated autocorrelation time with Sokal's automatic window (as in emcee)."""
    rho = autocorrelation(x)
    taus = 2.0 * np.cumsum(rho) - 1.0
    window = np.arange(taus.size) < c * taus
    idx = np.argmin(window) if not window.all() else taus.size - 1
    return max(float(taus[idx]), 1.0)


def effective_sample_size(x):
    """``len(x) / τ_int``."""
    x = np.asarray(x)
    return x.size / integrated_time(x)


def equilibration_report(traces, warmup, N, T, P, m, readouts=None, mean_residual_sq=0.0):
    """Diagnostics of a run: acceptance, divergences, training error and stationarity.

    The training error ``|Y − f|² / (P m)`` at equilibrium is ``O(T)``: the
    output fluctuations contribute about ``T / N`` per entry (equipartition over
    the P·m stiff output directions) on top of the squared mean residual
    ``mean_residual_sq = |Y − ⟨f⟩|² / (P m)``. ``equipartition`` is
    ``N (⟨|Y − f|²⟩/(P m) − mean_residual_sq) / T``, ≈ 1 when the output
    fluctuations are equilibrated; ``stationarity_*`` compare the two halves of the
    production run (relative change; small means stationary).
    """
    prod = slice(warmup, None)
    te = traces["train_error"][prod]
    out = {}
    if te.size == 0:
        return out
    out["accept_rate"] = float(np.mean(traces["accept_prob"][prod]))
    out["divergences"] = int(np.sum(traces["divergent"][prod]))
    out["step_size"] = float(traces["step_size"][prod][-1])
    out["n_leapfrog(mean)"] = float(np.mean(traces["n_leapfrog"][prod]))
    out["train_error"] = float(np.mean(te))
    out["train_error/T"] = float(np.mean(te) / T)
    out["mean_residual_sq"] = float(mean_residual_sq)
    out["equipartition"] = float((np.mean(te) - mean_residual_sq) * N / T)
    half = te.size // 2
    if half >= 2:
        a, b = te[:half].mean(), te[half:].mean()
        out["stationarity_train_error"] = float(abs(a - b) / max(abs(a), abs(b), 1e-300))
        out["tau_train_error"] = integrated_time(te)
    if readouts is not None and readouts.shape[0] >= 4:
        h = readouts.shape[0] // 2
        U1 = np.einsum("sir,sij->rj", readouts[:h], readouts[:h]) / (h * readouts.shape[1])
        U2 = np.einsum("sir,sij->rj", readouts[h:], readouts[h:]) / ((readouts.shape[0] - h) * readouts.shape[1])
        out["stationarity_readout_cov"] = float(np.linalg.norm(U1 - U2) / max(np.linalg.norm(U2), 1e-300))
        gram = np.einsum("sir,sir->s", readouts, readouts) / readouts.shape[1]
        out["ess_readout_norm"] = effective_sample_size(gram)
    return out
