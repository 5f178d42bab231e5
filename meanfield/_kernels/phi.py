"""Pointwise nonlinearities as numba kernels, dispatched on an integer code.

Every kernel that needs φ takes ``(code, prog)``: ``code`` selects a built-in
nonlinearity; ``code == USER`` evaluates a user expression compiled from sympy
into the stack program ``prog`` (see :mod:`meanfield._kernels.program`).
Dispatching on an integer (rather than passing jitted functions around) keeps
every kernel cacheable with ``cache=True``.
"""
import math

import numba as nb
import numpy as np

from .program import NAN_PROGRAM, run_program

LINEAR = 0
ERF = 1
RELU = 2
SOFTPLUS = 3
RELU2 = 4
USER = 5

KAPPA = math.sqrt(math.pi / 2.0)        # φ_erf(z) = ½[1 + erf(√π z / 2)] = Φ(κ z)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)

EMPTY_PROG = NAN_PROGRAM      # placeholder program carried by built-ins (never run)


@nb.njit(cache=True, inline="always")
def phi(code, prog, z):
    """φ(z)."""
    if code == LINEAR:
        return z
    elif code == ERF:
        return 0.5 * math.erfc(-KAPPA * z * _INV_SQRT2)
    elif code == RELU:
        return z if z > 0.0 else 0.0
    elif code == SOFTPLUS:
        if z > 0.0:
            return z + math.log1p(math.exp(-z))
        return math.log1p(math.exp(z))
    elif code == RELU2:
        return z * z if z > 0.0 else 0.0
    return run_program(prog, 0, z)


@nb.njit(cache=True, inline="always")
def dphi(code, prog, z):
    """φ'(z)."""
    if code == LINEAR:
        return 1.0
    elif code == ERF:
        u = KAPPA * z
        return KAPPA * _INV_SQRT2PI * math.exp(-0.5 * u * u)
    elif code == RELU:
        return 1.0 if z > 0.0 else 0.0
    elif code == SOFTPLUS:
        if z > 0.0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)
    elif code == RELU2:
        return 2.0 * z if z > 0.0 else 0.0
    return run_program(prog, 1, z)


@nb.njit(cache=True, inline="always")
def d2phi(code, prog, z):
    """φ''(z) (zero at the kinks of ReLU-type functions)."""
    if code == LINEAR:
        return 0.0
    elif code == ERF:
        u = KAPPA * z
        return -KAPPA * KAPPA * u * _INV_SQRT2PI * math.exp(-0.5 * u * u)
    elif code == RELU:
        return 0.0
    elif code == SOFTPLUS:
        e = math.exp(-abs(z))           # σ(z)σ(−z), without the cancellation of 1 − σ(z)
        return e / ((1.0 + e) * (1.0 + e))
    elif code == RELU2:
        return 2.0 if z > 0.0 else 0.0
    return run_program(prog, 2, z)


@nb.njit(cache=True, inline="always")
def phi_which(code, prog, z, which):
    """φ (which=0), φ' (1) or φ'' (2) at ``z``."""
    if which == 0:
        return phi(code, prog, z)
    elif which == 1:
        return dphi(code, prog, z)
    return d2phi(code, prog, z)


@nb.njit(cache=True, parallel=True)
def apply_phi(code, prog, Z, which):
    """Elementwise φ (which=0), φ' (1) or φ'' (2) of a 2-D array."""
    out = np.empty_like(Z)
    n0, n1 = Z.shape
    for i in nb.prange(n0):
        for j in range(n1):
            out[i, j] = phi_which(code, prog, Z[i, j], which)
    return out


@nb.njit(cache=True)
def apply_phi_1d(code, prog, z, which):
    """Serial elementwise φ, φ' or φ'' of a 1-D array (no thread launch for small inputs)."""
    out = np.empty_like(z)
    for i in range(z.shape[0]):
        out[i] = phi_which(code, prog, z[i], which)
    return out
