"""One-dimensional Gaussian integrals the theory needs (one home for each integral).

* :func:`gauss_hermite` — nodes and weights for expectations over N(0, 1).
* :func:`tilted_moments` — g(h) = log ∫Dz e^{hφ(z)}, g'(h) = ⟨φ⟩_h, g''(h) = Var_h[φ]
  (THEORY.md §2.2: the toy-task readout free energy F(a) = −|a|²/2 + Σ_c ρ_c g(h_c)).
* :func:`tilted_expectation` — ⟨f(z)⟩_h under the tilted density ∝ Dz e^{hφ(z)}.

The kernels live in :mod:`meanfield._kernels.gauss` (closed forms for linear, ReLU and relu2;
Gauss–Legendre panels placed on the level sets of the tilted log-density otherwise).
Measured accuracy against 30-digit mpmath quadrature over 1e-3 ≤ |h| ≤ 1e3
(tests/test_integrals.py): ≤ 2.5e-14 relative on g, g', g'' for the built-ins; ≤ 7e-13 for
the user φ tanh, |z| and leaky ReLU (worst: ⟨tanh⟩ at h = ∓1e-3, a mean that nearly cancels,
and Var_h|z| at h = 1e3, two modes).

Quadrature limits (user φ): contributions more than e^{-50} below the largest are dropped;
modes of the tilted density are found on a 129-point grid over the bracket, so a secondary
mode much narrower than the grid spacing can be missed.
"""
from __future__ import annotations

import functools

import numpy as np

from ._kernels import gauss as _gk
from ._validation import check_int

__all__ = ["gauss_hermite", "tilted_moments", "tilted_expectation"]

_SERIAL_BELOW = 16      # a parallel launch costs ≈ 50 µs; one tilted integral costs 10–40 µs


@functools.lru_cache(maxsize=64)
def _hermite(n):
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / np.sqrt(2.0 * np.pi)
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


def gauss_hermite(n):
    """Gauss–Hermite rule for expectations over a standard normal variable.

    Parameters
    ----------
    n : int
        Number of nodes (1 ≤ n ≤ 1000); the rule is exact for polynomials of degree ≤ 2n − 1.

    Returns
    -------
    nodes, weights : ndarray (read-only)
        ``E[f(Z)] ≈ Σ weights * f(nodes)`` for ``Z ~ N(0, 1)``; the weights sum to 1.
    """
    return _hermite(check_int(n, "n", minimum=1, maximum=1000))


def _resolve(nonlin):
    from .nonlinearities import nonlinearity
    try:
        return nonlinearity(nonlin)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"nonlin: {exc}") from None


def _fields(h):
    if h is None or isinstance(h, (str, bytes, bool)):
        raise TypeError(f"h must be a real number or array, got {type(h).__name__}")
    try:
        arr = np.asarray(h, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"h must be a real number or array, got {type(h).__name__}") from exc
    if not np.all(np.isfinite(arr)):
        raise ValueError("h must be finite")
    return arr


def _check(nl, h, g, g1):
    bad = ~np.isfinite(g) | ~np.isfinite(g1)
    if not bad.any():
        return
    h0 = float(np.asarray(h).ravel()[np.argmax(bad.ravel())])
    if np.isposinf(np.asarray(g).ravel()[np.argmax(bad.ravel())]):
        limit = " (relu2 needs h < 1/2)" if nl.name == "relu2" else ""
        raise ValueError(f"h: ∫Dz exp(h φ(z)) diverges for φ = {nl.name} at h = {h0:g}{limit}")
    raise ValueError(f"nonlin: the tilted integral of φ = {nl.name} is undefined at h = {h0:g} "
                     "(φ must be finite on the whole real line)")


def tilted_moments(nonlin, h):
    """Tilted Gaussian integral g(h) = log ∫Dz e^{hφ(z)} and its first two derivatives.

    Parameters
    ----------
    nonlin : Nonlinearity or str or sympy expression
        φ (anything :func:`meanfield.nonlinearity` accepts).
    h : float or array_like
        Field(s); any shape.

    Returns
    -------
    g, g1, g2 : float or ndarray
        g(h), g'(h) = ⟨φ⟩_h and g''(h) = Var_h[φ], with the shape of ``h``.

    Raises
    ------
    ValueError
        ``h`` not finite, or the integral diverges (relu2 for h ≥ ½; φ growing faster than z²).
    """
    nl = _resolve(nonlin)
    arr = _fields(h)
    flat = np.ascontiguousarray(arr.ravel())
    if flat.size < _SERIAL_BELOW:
        out = np.array([_gk.tilted_moments(nl.code, nl.prog, x) for x in flat]).reshape(flat.size, 3).T
        g, g1, g2 = out[0], out[1], out[2]
    else:
        g, g1, g2 = _gk.tilted_moments_array(nl.code, nl.prog, flat)
    _check(nl, flat, g, g1)
    if arr.ndim == 0:
        return float(g[0]), float(g1[0]), float(g2[0])
    return g.reshape(arr.shape), g1.reshape(arr.shape), g2.reshape(arr.shape)


def tilted_expectation(nonlin, h, f):
    """⟨f(z)⟩_h = ∫Dz e^{hφ(z)} f(z) / ∫Dz e^{hφ(z)} for a scalar field ``h``.

    Parameters
    ----------
    nonlin : Nonlinearity or str or sympy expression
        φ.
    h : float
        Field.
    f : callable
        Vectorized function of a 1-D array of z values (e.g. ``np.cos`` or ``nl.dphi``).

    Returns
    -------
    float
        Accurate to ≈ 1e-13 relative for f smooth between the kinks of φ; the rule has
        ≈ 350 nodes per mode of the tilted density, so the cost is that of f on those points.
    """
    nl = _resolve(nonlin)
    arr = _fields(h)
    if arr.ndim != 0:
        raise ValueError(f"h must be a scalar, got shape {arr.shape}")
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    z, w, status = _gk.tilted_rule(nl.code, nl.prog, float(arr))
    if status != _gk.OK:
        inf = np.array([np.inf if status == _gk.DIVERGENT else np.nan])
        _check(nl, arr.reshape(1), inf, inf)
    values = np.asarray(f(z), dtype=np.float64)
    if values.shape != z.shape:
        raise ValueError(f"f must map an array of shape {z.shape} to the same shape, got {values.shape}")
    return float(w @ values)
