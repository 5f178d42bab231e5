"""Which coding scheme a layer implements: analog, redundant or sparse.

The paper (van Meegen & Sompolinsky) finds one scheme per nonlinearity in the feature
layer: **analog** (linear φ: graded class means, Gaussian readouts), **redundant**
(sigmoid, φ ∈ (0, 1): a few discrete codes each shared by O(N) neurons, class means
saturated near 0/1) and **sparse** (ReLU: n = O(1) outlier neurons with O(√N) readouts
and activations carry the task, the bulk is task agnostic). :func:`scheme_type` tells
them apart and returns the numbers behind the verdict; :func:`outliers` finds the O(√N)
neurons; :func:`activation_raster` orders a neurons × inputs matrix for display.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_float, check_int
from .codes import code_fractions


# ----------------------------------------------------------------------------- validation
def _as_array(value, name, ndims):
    """``value`` as a finite float64 array with one of the allowed ``ndims``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a real numeric array, got {type(value).__name__}") from exc
    if arr.ndim not in ndims or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty array with {' or '.join(map(str, ndims))} "
                         f"dimensions, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values")
    return arr


def _as_labels(labels, P, name="labels"):
    """Labels as int64 (P,), every class 0 … K−1 present; returns ``(labels, K)``."""
    lab = np.asarray(labels)
    if lab.ndim != 1 or not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == bool):
        raise TypeError(f"{name} must be a 1-D integer array of class indices, got dtype "
                        f"{lab.dtype} and shape {lab.shape}")
    if lab.size != P:
        raise ValueError(f"{name} must have P = {P} entries (one per input), got {lab.size}")
    if lab.min() < 0:
        raise ValueError(f"{name} must be non-negative class indices, got min {lab.min()}")
    lab, K = lab.astype(np.int64), int(lab.max()) + 1
    missing = np.setdiff1d(np.arange(K), lab)
    if missing.size:
        raise ValueError(f"{name}: classes {missing.tolist()} have no inputs (labels must be 0 … K−1)")
    return lab, K


def _class_means(A, labels, K):
    """Class-mean activations, shape ``A.shape[:-1] + (K,)``."""
    onehot = (labels[:, None] == np.arange(K)).astype(np.float64)
    return (A @ onehot) / onehot.sum(axis=0)


def _readout_norms(readouts):
    """‖a_i‖ per sample, shape (S, N); readouts (N,), (N, m) or (S, N, m)."""
    R = _as_array(readouts, "readouts", (1, 2, 3))
    n = np.linalg.norm(R[:, None] if R.ndim == 1 else R, axis=-1)
    return n if R.ndim == 3 else n[None]


def _combine(x, y, xname, yname):
    """Product of two (S, N) per-sample arrays (S may be 1 on either side)."""
    if x.shape[1] != y.shape[1] or (x.shape[0] != y.shape[0] and 1 not in (x.shape[0], y.shape[0])):
        raise ValueError(f"{xname} and {yname} disagree on (samples, neurons): "
                         f"{x.shape} vs {y.shape}")
    return x * y


def _ratios_to_median(score):
    """score / median(score); with a zero median every positive score gets ratio inf."""
    med = float(np.median(score))
    return score / med if med > 0 else np.where(score > 0, np.inf, 0.0)


def _select(ratios, factor):
    """Indices with ratio > factor, largest first, and their ratios."""
    idx = np.flatnonzero(ratios > factor)
    idx = idx[np.argsort(-ratios[idx], kind="stable")]
    return idx, ratios[idx]


# ----------------------------------------------------------------------------- outliers
def outliers(readouts, activations=None, factor=10.0):
    """Outlier neurons: a per-neuron norm more than ``factor`` × the median norm.

    In the sparse (ReLU) scheme n = O(1) neurons have O(√N) readouts and activations,
    the bulk O(1) ones. The reference is the **median** norm, not the mean: the median is
    set by the bulk and barely moves when a few neurons are huge, whereas a mean (or
    standard deviation) is inflated by the very outliers it should expose — three neurons
    at 30× the bulk out of N = 100 make the mean ≈ 1.9× the bulk value, and a "10× the
    mean" rule would miss a neuron 15× the bulk.

    Parameters
    ----------
    readouts : array_like (N,), (N, m) or (S, N, m), or None
        Readout weights a_i (with a leading sample axis S they are time-averaged: the
        norm is averaged over samples). None: use the activations alone.
    activations : array_like (N, P) or (S, N, P), optional
        Activations φ_i on P inputs. If given, a neuron's norm is its contribution to the
        output, ⟨‖a_i‖ · ‖φ_i‖/√P⟩ over samples (‖φ_i‖/√P alone when ``readouts`` is None).
    factor : float
        Ratio to the median above which a neuron is an outlier (> 1; default 10).

    Returns
    -------
    indices, ratios : ndarray
        Outlier neurons, largest first, and their norm / median norm (inf if the median is 0).
    """
    factor = check_float(factor, "factor", minimum=1.0, strict=True)
    if readouts is None and activations is None:
        raise ValueError("readouts and activations cannot both be None")
    score = None if readouts is None else _readout_norms(readouts)
    if activations is not None:
        H = _as_array(activations, "activations", (2, 3))
        hn = np.sqrt(np.mean(H.reshape((-1,) + H.shape[-2:]) ** 2, axis=-1))     # (S, N)
        score = hn if score is None else _combine(score, hn, "readouts", "activations")
    return _select(_ratios_to_median(score.mean(axis=0)), factor)


# ----------------------------------------------------------------------------- scheme type
@dataclass
class SchemeResult:
    """Verdict of :func:`scheme_type` and the diagnostics behind it.

    Attributes
    ----------
    scheme, reason : str
        ``"analog"``, ``"redundant"`` or ``"sparse"``, and the test that decided.
    outliers, outlier_ratios : ndarray
        Neurons with discriminative norm > ``outlier_factor`` × median (largest first),
        and their ratios to the median; ``max_ratio`` is the largest ratio of any neuron.
    max_outliers, n_carry : int
        Allowed number of carriers; fewest neurons carrying ``min_share`` of the
        discriminative variance (``outlier_share``: the outliers' share of it).
    saturation : float
        Fraction of bulk class means with |μ − mid| > w/4 (pooled over samples).
    bimodality : float
        Sarle's coefficient (skew² + 1)/kurtosis of the bulk class means: 1 for two-valued,
        1/3 for Gaussian data, > 5/9 suggests bimodality (diagnostic only).
    value_range : tuple of float
        (lo, hi) giving mid = (lo + hi)/2 and w = hi − lo.
    codes : dict
        Bulk code fractions (class mean > mid), largest first; ``n_major_codes`` of them
        hold ≥ ``min_code_fraction`` each, ``major_coverage`` in total.
    """

    scheme: str
    reason: str
    outliers: np.ndarray
    outlier_ratios: np.ndarray
    max_ratio: float
    max_outliers: int
    outlier_share: float
    n_carry: int
    saturation: float
    bimodality: float
    value_range: tuple
    codes: dict = field(repr=False)
    n_major_codes: int = 0
    major_coverage: float = 0.0

    def __str__(self):
        return (f"{self.scheme}: {self.reason} [outliers {len(self.outliers)}, max ratio {self.max_ratio:.3g}, "
                f"n_carry {self.n_carry}, saturation {self.saturation:.3f}, bimodality {self.bimodality:.3f}, "
                f"major codes {self.n_major_codes} covering {self.major_coverage:.3f}]")


def _bimodality(x):
    x = np.ravel(x)
    n = x.size
    if n < 4 or np.ptp(x) == 0:
        return float("nan")
    d = x - x.mean()
    m2 = np.mean(d ** 2)
    g = np.mean(d ** 3) / m2 ** 1.5
    k = np.mean(d ** 4) / m2 ** 2 - 3.0
    return float((g ** 2 + 1.0) / (k + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def scheme_type(activations, labels, readouts=None, *, outlier_factor=10.0, max_outliers=None,
                min_share=0.8, min_saturation=0.8, min_code_fraction=0.05, min_coverage=0.8,
                value_range=None):
    """Classify a layer's coding scheme as ``"analog"``, ``"redundant"`` or ``"sparse"``.

    Criterion (applied in this order; class means μ_ic = mean of φ_i over class c):

    1. **sparse** — a few outlier neurons carry the task. A neuron's *discriminative
       norm* is its between-class standard deviation d_i = [Σ_c p_c (μ_ic − μ̄_i)²]^½
       (p_c the class fractions) — times ‖a_i‖ if ``readouts`` are given, i.e. the class
       signal it sends to the output — averaged over samples; its discriminative
       variance is ⟨d_i²⟩. Outliers have d_i > ``outlier_factor`` × median(d) (median:
       robust to the outliers, see :func:`outliers`). With n_carry the smallest number of
       neurons (largest first) carrying ``min_share`` of the total discriminative
       variance, the scheme is sparse if n_carry ≤ ``max_outliers`` (default
       max(2K, ⌈0.05 N⌉): O(1) — the paper's n = m − 1 or m — never O(N)) and all of
       these n_carry neurons are outliers.
    2. **redundant** — discrete, saturated codes shared by many neurons. On the bulk
       (non-outlier neurons), with value range [lo, hi] (default: min and max of the bulk
       class means; pass φ's range, e.g. (0, 1), to fix it), midpoint mid and width w:
       the *saturation* — fraction of class means with |μ − mid| > w/4 — is at least
       ``min_saturation`` (class means bimodal, piled up at the ends of the range), and
       the codes 1[μ_ic > mid] form ≥ 2 *major* codes (each ≥ ``min_code_fraction`` of
       the neurons, not all of them constant all-on/all-off codes) covering ≥
       ``min_coverage`` of the neurons.
    3. **analog** otherwise: graded class means without outliers or discrete codes.

    With a sample axis, the outlier test uses sample-averaged norms (outliers are frozen)
    while saturation and codes are pooled over samples without averaging (sigmoid codes
    switch between samples; averaging would blur saturated values towards the middle).

    Parameters
    ----------
    activations : array_like (N, P) or (S, N, P)
        Feature-layer activations φ(z) of N neurons on P inputs (S posterior samples).
    labels : array_like of int (P,)
        Class of each input, 0 … K−1.
    readouts : array_like (N,), (N, m) or (S, N, m), optional
        Readout weights; weight the discriminative norm by ‖a_i‖.
    outlier_factor, max_outliers, min_share : float, int or None, float
        Sparse test (defaults 10, max(2K, ⌈0.05 N⌉), 0.8), see above.
    min_saturation, min_code_fraction, min_coverage : float
        Redundant test (defaults 0.8, 0.05, 0.8), see above.
    value_range : (float, float), optional
        (lo, hi) of φ, e.g. ``mf.nonlinearity("erf").range``; default from the data.

    Returns
    -------
    SchemeResult
        ``.scheme`` and the diagnostics (``print(result)`` shows them).
    """
    H = _as_array(activations, "activations", (2, 3))
    H = H[None] if H.ndim == 2 else H
    S, N, P = H.shape
    lab, K = _as_labels(labels, P)
    if K < 2:
        raise ValueError(f"labels must contain at least 2 classes, got {K}")
    outlier_factor = check_float(outlier_factor, "outlier_factor", minimum=1.0, strict=True)
    max_outliers = (max(2 * K, math.ceil(0.05 * N)) if max_outliers is None
                    else check_int(max_outliers, "max_outliers", minimum=1))
    min_share, min_saturation, min_code_fraction, min_coverage = (
        check_float(v, k, minimum=0.0, maximum=1.0) for k, v in dict(
            min_share=min_share, min_saturation=min_saturation, min_code_fraction=min_code_fraction,
            min_coverage=min_coverage).items())

    p = np.bincount(lab, minlength=K) / P
    M = _class_means(H, lab, K)                                 # (S, N, K)
    var = ((M - (M @ p)[..., None]) ** 2) @ p                   # between-class variance (S, N)
    if readouts is not None:
        var = _combine(var, _readout_norms(readouts) ** 2, "activations", "readouts")
    d = np.sqrt(var).mean(axis=0)
    ratios = _ratios_to_median(d)
    out, out_r = _select(ratios, outlier_factor)
    v = var.mean(axis=0)
    tot, top = v.sum(), np.argsort(-v, kind="stable")
    share = float(v[out].sum() / tot) if tot > 0 else 0.0
    n_carry = int(np.searchsorted(np.cumsum(v[top]) / tot, min_share * (1 - 1e-12)) + 1) if tot > 0 else N
    carriers_are_outliers = bool(np.all(ratios[top[:n_carry]] > outlier_factor))

    Mb = M[:, np.setdiff1d(np.arange(N), out), :]             # bulk class means
    if value_range is None:
        lo, hi = float(Mb.min()), float(Mb.max())
    else:
        vr = _as_array(value_range, "value_range", (1,))
        lo, hi = (float(vr[0]), float(vr[-1])) if vr.size == 2 else (0.0, 0.0)
        if not hi > lo:
            raise ValueError(f"value_range must be a pair (lo, hi) with lo < hi, got {value_range!r}")
    mid, w = 0.5 * (lo + hi), hi - lo
    saturation = float(np.mean(np.abs(Mb - mid) > w / 4)) if w > 0 else 0.0
    codes = code_fractions((Mb > mid).astype(np.int8))
    major = {c: f for c, f in codes.items() if f >= min_code_fraction}
    coverage = float(sum(major.values()))
    informative = any(0 < sum(c) < K for c in major)
    res = dict(outliers=out, outlier_ratios=out_r, max_ratio=float(ratios.max()), max_outliers=max_outliers,
               outlier_share=share, n_carry=n_carry, saturation=saturation, bimodality=_bimodality(Mb),
               value_range=(lo, hi), codes=codes, n_major_codes=len(major), major_coverage=coverage)
    if n_carry <= max_outliers and carriers_are_outliers:
        return SchemeResult("sparse", f"{n_carry} outlier(s) > {outlier_factor:g}× median carry "
                            f"≥ {min_share:.0%} of the class-discriminative variance", **res)
    if saturation >= min_saturation and len(major) >= 2 and informative and coverage >= min_coverage:
        return SchemeResult("redundant", f"{saturation:.0%} of class means saturated; {len(major)} "
                            f"major codes hold {coverage:.0%} of the neurons", **res)
    return SchemeResult("analog", f"neither a few outlier carriers (n_carry {n_carry}) nor saturated "
                        f"discrete codes (saturation {saturation:.0%}, {len(major)} major codes)", **res)


# ----------------------------------------------------------------------------- raster
@dataclass
class Raster:
    """Neurons × inputs activation matrix, neurons grouped by code, inputs by class.

    Attributes
    ----------
    matrix : ndarray (N, P)
        ``activations[neuron_order][:, input_order]``.
    neuron_order, input_order : ndarray of int
        The orderings applied.
    codes, preferred, labels : ndarray
        Per row: code (N, K) and preferred class; per column: class.
    code_boundaries, class_boundaries : ndarray of int
        Rows / columns where a new code / class starts; ``threshold`` is the code threshold.
    """

    matrix: np.ndarray
    neuron_order: np.ndarray
    input_order: np.ndarray
    codes: np.ndarray
    preferred: np.ndarray
    labels: np.ndarray
    code_boundaries: np.ndarray
    class_boundaries: np.ndarray
    threshold: float


def activation_raster(activations, labels, sample=-1, threshold=None):
    """Sort a neurons × inputs activation matrix by neural code and by class.

    Inputs are ordered by class (stable). Neurons are grouped by code (class mean above
    ``threshold``), groups ordered by size (largest first, ties by code), and inside a
    group by preferred class, then by decreasing class-mean activation on it.

    Parameters
    ----------
    activations : array_like (N, P) or (S, N, P)
        Activations of N neurons on P inputs.
    labels : array_like of int (P,)
        Class of each input.
    sample : int or None
        With a sample axis: the sample to show (default the last), or None for the
        sample average.
    threshold : float, optional
        Code threshold (default: midpoint of the range of the class means).

    Returns
    -------
    Raster
    """
    A = _as_array(activations, "activations", (2, 3))
    if A.ndim == 3:
        A = (A.mean(axis=0) if sample is None
             else A[check_int(sample, "sample", minimum=-A.shape[0], maximum=A.shape[0] - 1)])
    N, P = A.shape
    lab, K = _as_labels(labels, P)
    M = _class_means(A, lab, K)
    thr = 0.5 * (M.min() + M.max()) if threshold is None else check_float(threshold, "threshold")
    C = (M > thr).astype(np.int8)
    pref = np.argmax(M, axis=1)
    uniq, inv, counts = np.unique(C, axis=0, return_inverse=True, return_counts=True)
    inv = np.ravel(inv)
    keys = tuple(-uniq[:, j].astype(np.int64) for j in range(K - 1, -1, -1)) + (-counts,)
    key_group = np.argsort(np.lexsort(keys))[inv]             # largest group first, ties by code
    neuron_order = np.lexsort((-M[np.arange(N), pref], pref, key_group))
    input_order = np.argsort(lab, kind="stable")
    g, ls = key_group[neuron_order], lab[input_order]
    return Raster(matrix=A[neuron_order][:, input_order], neuron_order=neuron_order,
                  input_order=input_order, codes=C[neuron_order], preferred=pref[neuron_order],
                  labels=ls, code_boundaries=np.flatnonzero(np.diff(g)) + 1,
                  class_boundaries=np.flatnonzero(np.diff(ls)) + 1, threshold=float(thr))


def plot_raster(ax, activations, labels=None, *, sample=-1, threshold=None, cmap="viridis",
                boundaries=True, colorbar=False, **imshow_kwargs):
    """Draw an activation raster on a matplotlib ``ax`` (matplotlib is used only through ``ax``).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    activations : array_like or Raster
        As for :func:`activation_raster` (with ``labels``, ``sample``, ``threshold``), or a Raster.
    cmap, boundaries, colorbar : str, bool, bool
        Colormap; white lines between classes (columns) and codes (rows); add a colorbar.
    **imshow_kwargs
        Passed to ``ax.imshow``.

    Returns
    -------
    Raster
        The raster shown; its ``image`` attribute holds the AxesImage.
    """
    if not hasattr(ax, "imshow"):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    if not isinstance(activations, Raster) and labels is None:
        raise ValueError("labels are required when activations is not a Raster")
    r = activations if isinstance(activations, Raster) else activation_raster(activations, labels, sample, threshold)
    im = ax.imshow(r.matrix, **{"aspect": "auto", "interpolation": "nearest", "cmap": cmap, **imshow_kwargs})
    if boundaries:
        for b in r.class_boundaries:
            ax.axvline(b - 0.5, color="w", lw=0.8)
        for b in r.code_boundaries:
            ax.axhline(b - 0.5, color="w", lw=0.5, ls=":")
    ax.set(xlabel="input (sorted by class)", ylabel="neuron (sorted by code)")
    if colorbar:
        ax.figure.colorbar(im, ax=ax)
    r.image = im
    return r
