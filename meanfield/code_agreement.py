"""Theory-vs-sampler rows for coded solutions (sigmoid schemes): codes, fractions, readouts, densities."""
from __future__ import annotations

import numpy as np

from .analysis.codes import code_fractions, code_switching, format_code, neuron_codes
from .nonlinearities import nonlinearity as _nonlinearity
from .sampling.theory_start import grid_cdf

KS_MAX_VALUES = 20000     # sampled preactivations per (code, class) entering a KS distance


def sampled_codes(samples, task, phi=None):
    """Codes of every neuron at every stored sample, shape (S, N, K) (feature layer)."""
    if not samples.preactivations:
        raise ValueError("samples hold no preactivations (sample with record_preactivations=True)")
    phi = _nonlinearity(samples.config["nonlinearity"] if phi is None else phi)
    Z = samples.preactivations[-1]
    return neuron_codes(phi.phi(np.asarray(Z, dtype=np.float64)), task.labels, n_classes=task.m)


def _ks_distance(values, zgrid, density):
    """Kolmogorov–Smirnov distance between an empirical sample and a density on a grid."""
    cdf = grid_cdf(zgrid, density)
    v = np.sort(values)
    F = np.interp(v, zgrid, cdf)
    n = v.size
    return float(max(np.max(np.arange(1, n + 1) / n - F), np.max(F - np.arange(n) / n)))


def code_rows(solution, samples):
    """Agreement rows for a solution with ``codes`` (see :func:`meanfield.compare`)."""
    task = solution.task
    C = sampled_codes(samples, task)
    S, N, K = C.shape
    frac_s = code_fractions(C)
    frac_t = {tuple(int(b) for b in c): float(p) for c, p in zip(solution.codes, solution.code_fractions)}
    union = sorted(set(frac_s) | set(frac_t), key=lambda c: -frac_t.get(c, 0.0))
    dP = max(abs(frac_s.get(c, 0.0) - frac_t.get(c, 0.0)) for c in union)
    fmt = lambda d: " ".join(f"{format_code(c)}:{d.get(c, 0.0):.3f}" for c in union)   # noqa: E731
    rows = [dict(quantity="code set", metric="codes only on one side",
                 value=float(len(set(c for c, p in frac_s.items() if p >= 0.01) ^
                                 set(c for c, p in frac_t.items() if p >= 0.01))),
                 theory=fmt(frac_t), samples=fmt(frac_s)),
            dict(quantity="code fractions", metric="max |ΔP_γ|", value=dP)]
    A = samples.readouts                                        # (S, N, m)
    worst, zs = 0.0, []
    for k, code in enumerate(solution.codes):
        code = tuple(int(b) for b in code)
        sel = np.all(C == np.array(code, dtype=np.int8), axis=-1)    # (S, N)
        if frac_s.get(code, 0.0) < 0.01 or frac_t[code] < 0.01:
            continue
        a_s = A[sel].mean(axis=0)
        worst = max(worst, float(np.linalg.norm(a_s - solution.readouts[k]) / np.linalg.norm(solution.readouts[k])))
        try:
            zgrid, dens = solution.conditional_density(k)
        except NotImplementedError:         # general-data theory: z given a is not resolved (neglected)
            continue
        Z = samples.preactivations[-1]
        for c in range(K):
            vals = np.asarray(Z[:, :, task.labels == c], dtype=np.float64)[sel].ravel()
            if vals.size > KS_MAX_VALUES:
                vals = vals[np.linspace(0, vals.size - 1, KS_MAX_VALUES).astype(np.int64)]
            zs.append(_ks_distance(vals, zgrid, dens[c]))
    if worst or zs:
        rows.append(dict(quantity="readout a_γ per code", metric="max rel. error", value=worst))
    if zs:
        rows.append(dict(quantity="p(z | a_γ) per code, class", metric="max KS distance", value=max(zs)))
    sw = code_switching(C)
    rows.append(dict(quantity="code switches", metric="neurons that switched", value=float(sw["switching_neurons"]),
                     theory="0 (frozen)", samples=f"{sw['switches']} switches over {S} samples"))
    return rows
