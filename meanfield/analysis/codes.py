"""Single-neuron codes: which classes a neuron responds to, and how often that changes.

A neuron's *code* is a 0/1 vector over classes: bit c is 1 when the neuron's mean
activation over the inputs of class c exceeds a threshold. The default threshold is
the midpoint of φ's range — ½ for the sigmoid, whose activations saturate at 0 and 1
in the redundant code; it is the same rule the sigmoid theory uses to label its readout
Diracs (``1[⟨φ⟩_c > ½]``, docs/theory_erf.md §2), so sampled and theoretical codes are
comparable by construction.
"""
from __future__ import annotations

import numpy as np


def format_code(code):
    """``(1, 0, 1)`` → ``"1-0-1"``."""
    return "-".join(str(int(b)) for b in code)


def _class_index(labels, n_classes):
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError("labels must be a 1-D integer array of class indices")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be non-negative class indices")
    K = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    return labels, K


def neuron_codes(activations, labels, threshold=0.5, n_classes=None):
    """Code of every neuron: class-mean activation above ``threshold``.

    Parameters
    ----------
    activations : array_like (..., N, P)
        Activations φ(z) of N neurons on P inputs (leading axes, e.g. samples, are kept).
    labels : array_like of int (P,)
        Class of each input.
    threshold : float
        Activation level separating "on" from "off" (default ½, the sigmoid's midpoint).
    n_classes : int, optional
        Number of classes (default ``max(labels) + 1``).

    Returns
    -------
    ndarray of int8 (..., N, K)
    """
    A = np.asarray(activations, dtype=np.float64)
    labels, K = _class_index(labels, n_classes)
    if A.ndim < 2 or A.shape[-1] != labels.size:
        raise ValueError(f"activations must have shape (..., N, P) with P = {labels.size}, got {A.shape}")
    out = np.empty(A.shape[:-1] + (K,), dtype=np.int8)
    for c in range(K):
        sel = labels == c
        if not np.any(sel):
            raise ValueError(f"class {c} has no inputs in labels")
        out[..., c] = A[..., sel].mean(axis=-1) > threshold
    return out


def code_fractions(codes):
    """Fraction of neurons per code, averaged over any leading (sample) axes.

    Parameters
    ----------
    codes : array_like (..., N, K)
        Binary codes (0/1 or bool entries, e.g. from :func:`neuron_codes`); anything else
        (activations, probabilities) is a ``ValueError``: threshold it first.

    Returns
    -------
    dict
        ``{code tuple: fraction}``, largest first.
    """
    C = np.asarray(codes)
    if C.ndim < 2:
        raise ValueError(f"codes must have shape (..., N, K), got shape {C.shape}")
    if C.dtype.kind not in "biuf" or not np.all((C == 0) | (C == 1)):
        raise ValueError("codes must be binary (0/1 or bool), e.g. from neuron_codes; got values other than 0 "
                         "and 1 (threshold activations first)")
    C = C.reshape(-1, C.shape[-1])
    uniq, counts = np.unique(C, axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {tuple(int(b) for b in uniq[k]): counts[k] / C.shape[0] for k in order}


def code_switching(codes):
    """How often neurons change code between consecutive samples.

    Parameters
    ----------
    codes : array_like (S, N, K)
        Codes of N neurons at S successive samples.

    Returns
    -------
    dict
        ``switches`` (total code changes), ``switching_neurons`` (neurons that changed
        at least once), ``rate`` (changes per neuron per sample interval) and
        ``per_neuron`` (changes of each neuron).
    """
    C = np.asarray(codes)
    if C.ndim != 3:
        raise ValueError(f"codes must have shape (S, N, K), got {C.shape}")
    changed = np.any(C[1:] != C[:-1], axis=-1)          # (S-1, N)
    per = changed.sum(axis=0)
    S, N = C.shape[0], C.shape[1]
    return dict(switches=int(per.sum()), switching_neurons=int(np.count_nonzero(per)),
                rate=float(per.sum() / max(N * (S - 1), 1)), per_neuron=per)
