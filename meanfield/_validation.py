"""Argument checks shared by the public API.

Every public function validates its input with these helpers, so that bad
input raises a ``ValueError`` / ``TypeError`` that names the argument and says
what was expected.
"""
from __future__ import annotations

import numbers

import numpy as np


def as_matrix(value, name, *, rows=None, cols=None, allow_none=False):
    """Return ``value`` as a finite float64 C-contiguous 2-D array.

    Parameters
    ----------
    value : array_like
        Input to convert.
    name : str
        Argument name used in error messages.
    rows, cols : int, optional
        Required shape along each axis.
    allow_none : bool
        Pass ``None`` through.
    """
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{name} is required, got None")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}") from exc
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if rows is not None and arr.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows, got shape {arr.shape}")
    if cols is not None and arr.shape[1] != cols:
        raise ValueError(f"{name} must have {cols} columns, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (nan or inf)")
    return np.ascontiguousarray(arr)


def check_int(value, name, *, minimum=None, maximum=None):
    """Return ``value`` as an ``int`` after checking its type and range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_float(value, name, *, minimum=None, strict=False, maximum=None):
    """Return ``value`` as a finite ``float`` after checking its range.

    ``strict=True`` makes ``minimum`` exclusive.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None:
        if strict and value <= minimum:
            raise ValueError(f"{name} must be > {minimum}, got {value}")
        if not strict and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_choice(value, name, choices):
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value
