"""Theory-vs-sampler rows for coded solutions (sigmoid schemes): codes, fractions, readouts, densities.

Each judged row takes the worst of several components (codes; code × class for the densities),
each tested against its own Monte-Carlo floor from batch means over the stored samples
(:mod:`meanfield.agreement.floors`); the row reports the component with the largest
``error / (factor · floor)``.
"""
from __future__ import annotations

import numpy as np

from ..analysis.codes import code_fractions, code_switching, format_code, neuron_codes
from ..nonlinearities import nonlinearity as _nonlinearity
from ..sampling.theory_start import grid_cdf
from .floors import KS_MEAN, ks_pass_factor, pass_factor, series_floor
from .result import FROZEN_SWITCH_FRACTION, info_row, verdict_row

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


def _worst(components):
    """The component (label, error, floor, factor, ok) with the largest error / (factor · floor)."""
    def score(c):
        _, err, flo, fac, _ = c
        if flo is None or not np.isfinite(flo):
            return -1.0
        return err / (fac * flo) if flo > 0 else (np.inf if err > 0 else 0.0)
    return max(components, key=score)


def _judged(key, quantity, metric, value, components, **extra):
    """Row judged on its worst component; no verdict if any component's floor is unreliable."""
    label, err, flo, fac, _ = _worst(components)
    bad = [c[0] for c in components if not c[4]]
    note = f"worst: {label}" + (f"; no reliable floor for {', '.join(bad)}" if bad else "")
    return verdict_row(key, quantity, metric, value, err, flo, fac, ok=not bad, note=note, **extra)


def _fraction_row(C, union, frac_s, frac_t, fmt):
    """Code fractions: per-sample fraction of each code, batch means per code."""
    comps = []
    for code in union:
        per = np.all(C == np.array(code, dtype=np.int8), axis=-1).mean(axis=1)      # (S,)
        fl = series_floor(per)
        err = abs(frac_s.get(code, 0.0) - frac_t.get(code, 0.0))
        comps.append((format_code(code), err, fl.se, pass_factor(fl.n_batches, len(union)), fl.ok))
    dP = max(abs(frac_s.get(c, 0.0) - frac_t.get(c, 0.0)) for c in union)
    return _judged("code_fractions", "code fractions", "|ΔP_γ|, worst γ", dP, comps,
                   theory=fmt(frac_t), samples=fmt(frac_s))


def _readout_component(A, sel, a_t, label):
    """Readout of one code: per-sample mean over its neurons, weighted by their number."""
    counts = sel.sum(axis=1)                                                      # (S,)
    per = np.einsum("si,sir->sr", sel.astype(np.float64), A) / np.maximum(counts, 1)[:, None]        # (S, m)
    a_s = A[sel].mean(axis=0)
    norm = float(np.linalg.norm(a_t))
    fl = series_floor(per, directions=[a_s - a_t], weights=counts)
    return (label, float(np.linalg.norm(a_s - a_t)) / norm, fl.se / norm, fl.n_batches, fl.ok)


def _ks_component(Zc, sel, zgrid, dens, label):
    """KS distance of one (code, class) and its floor ``KS_MEAN/√n_eff``.

    n_eff = F(1 − F)/se² at the theory's median (F = ½), se the batch-means standard error of the
    per-sample fraction of values below that median: the effective number of independent values
    behind the empirical CDF, correlations between neurons, inputs and samples included.
    """
    vals = Zc[sel].ravel()
    if vals.size > KS_MAX_VALUES:
        vals = vals[np.linspace(0, vals.size - 1, KS_MAX_VALUES).astype(np.int64)]
    ks = _ks_distance(vals, zgrid, dens)
    z_med = float(np.interp(0.5, grid_cdf(zgrid, dens), zgrid))
    below = np.einsum("si,si->s", sel.astype(np.float64), (Zc < z_med).sum(axis=-1).astype(np.float64))   # (S,)
    counts = sel.sum(axis=1) * Zc.shape[-1]
    frac = below / np.maximum(counts, 1)
    fl = series_floor(frac, weights=counts)
    return (label, ks, 2.0 * KS_MEAN * fl.se, fl.ok)


def code_rows(solution, samples):
    """Agreement rows for a solution with ``codes`` (see :func:`meanfield.compare`).

    Returns
    -------
    rows : list of dict
    switching : dict
        :func:`meanfield.analysis.code_switching` of the sampled codes, plus ``frozen`` (fewer than
        ``FROZEN_SWITCH_FRACTION`` of the N neurons switched code) and ``N``.
    """
    task = solution.task
    C = sampled_codes(samples, task)
    S, N, K = C.shape
    frac_s = code_fractions(C)
    frac_t = {tuple(int(b) for b in c): float(p) for c, p in zip(solution.codes, solution.code_fractions)}
    union = sorted(set(frac_s) | set(frac_t), key=lambda c: -frac_t.get(c, 0.0))
    fmt = lambda d: " ".join(f"{format_code(c)}:{d.get(c, 0.0):.3f}" for c in union)   # noqa: E731
    present = lambda d: {c for c, p in d.items() if p >= 0.01}                        # noqa: E731
    rows = [info_row("code_set", "code set", "codes only on one side", len(present(frac_s) ^ present(frac_t))),
            _fraction_row(C, union, frac_s, frac_t, fmt)]
    A = samples.readouts                                        # (S, N, m)
    Z = samples.preactivations[-1]
    a_comps, z_comps = [], []
    for k, code in enumerate(solution.codes):
        code = tuple(int(b) for b in code)
        sel = np.all(C == np.array(code, dtype=np.int8), axis=-1)    # (S, N)
        if frac_s.get(code, 0.0) < 0.01 or frac_t[code] < 0.01:
            continue
        a_comps.append(_readout_component(A, sel, solution.readouts[k], format_code(code)))
        try:
            zgrid, dens = solution.conditional_density(k)
        except NotImplementedError:         # general-data theory: z given a is not resolved (neglected)
            continue
        for c in range(K):
            Zc = np.asarray(Z[:, :, task.labels == c], dtype=np.float64)
            z_comps.append(_ks_component(Zc, sel, zgrid, dens[c], f"{format_code(code)}, class {c}"))
    if a_comps:
        comps = [(lab, e, f, pass_factor(B, len(a_comps)), ok) for lab, e, f, B, ok in a_comps]
        rows.append(_judged("readout_per_code", "readout a_γ per code", "rel. error, worst γ",
                            max(c[1] for c in a_comps), comps))
    if z_comps:
        fac = ks_pass_factor(len(z_comps))
        rows.append(_judged("ks_density", "p(z | a_γ) per code, class", "KS distance, worst",
                            max(c[1] for c in z_comps), [(lab, e, f, fac, ok) for lab, e, f, ok in z_comps]))
    sw = code_switching(C)
    rows.append(info_row("code_switches", "code switches", "neurons that switched", sw["switching_neurons"],
                         theory="0 (frozen)", samples=f"{sw['switches']} switches over {S} samples"))
    sw = dict(sw, N=N, frozen=bool(sw["switching_neurons"] < FROZEN_SWITCH_FRACTION * N))
    return rows, sw
