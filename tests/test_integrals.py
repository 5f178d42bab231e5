"""Tilted Gaussian integrals g(h) = log ∫Dz e^{hφ}, g' = ⟨φ⟩_h, g'' = Var_h[φ] (THEORY.md §2.2).

Reference: mpmath quadrature at 30 digits (Gauss–Legendre, degree raised until mpmath's error
estimate is below 1e-20 relative; 1e-24 absolute for a mean that vanishes), split at the mode,
the kinks and the points where the tilted log-density falls by 2, 8, 18, 32, 50, 72 below its
maximum (found on a fine float grid with numpy/scipy versions of φ — nothing from meanfield),
truncated where it is 90 below.

Tolerance: 1e-10 relative on each of g, g', g''; 1e-14 absolute only where the exact value is 0
(g(0), and g'(0) for odd φ). Measured worst cases: 2.5e-14 (built-ins), 7e-13 (user φ).
"""
import math

import mpmath as mp
import numpy as np
import pytest
from scipy.special import erf as sp_erf

from meanfield._kernels import gauss
from meanfield.integrators import gauss_hermite, tilted_expectation, tilted_moments
from meanfield.nonlinearities import nonlinearity

RTOL, ATOL_ZERO = 1e-10, 1e-14
H_GRID = [0.0, 1e-3, -1e-3, 0.1, -0.1, 1.0, -1.0, 10.0, -10.0, 100.0, -100.0, 1e3, -1e3]
H_RELU2 = [0.0, 1e-3, -1e-3, 0.1, -0.1, 0.3, 0.49, -1.0, -10.0, -100.0, -1e3]

# name: (numpy φ, mpmath φ, kinks, φ odd)
PHI = {
    "linear": (lambda z: z, lambda z: z, (), True),
    "erf": (lambda z: 0.5 * (1 + sp_erf(math.sqrt(math.pi) * z / 2)),
            lambda z: (1 + mp.erf(mp.sqrt(mp.pi) * z / 2)) / 2, (), False),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: z if z > 0 else mp.mpf(0), (0.0,), False),
    "softplus": (lambda z: np.logaddexp(0.0, z), lambda z: mp.log1p(mp.exp(z)), (), False),
    "relu2": (lambda z: np.maximum(z, 0.0) ** 2, lambda z: z * z if z > 0 else mp.mpf(0), (0.0,), False),
    "tanh(z)": (np.tanh, mp.tanh, (), True),
    # user φ with a kink away from the mode (leaky ReLU) and with two modes for h > 0 (|z|)
    "Max(0.1*z, z)": (lambda z: np.maximum(0.1 * z, z), lambda z: z if z > 0 else z / 10, (0.0,), False),
    "Abs(z)": (np.abs, abs, (0.0,), False),
}
H_SHORT = [1e-3, -1e-3, 1.0, -1.0, 10.0, -10.0, 1e3, -1e3]
CASES = [(name, h) for name in PHI
         for h in (H_RELU2 if name == "relu2" else H_SHORT if name in ("Max(0.1*z, z)", "Abs(z)") else H_GRID)]


def _quad(f, pts, floor=0):
    value, err = mp.quad(f, pts, method="gauss-legendre", error=True)
    assert err <= mp.mpf(10) ** -20 * abs(value) + floor, (value, err)
    return value


def mpmath_reference(name, h):
    """(g, g', g'') by 30-digit quadrature."""
    f_np, f_mp, kinks, _ = PHI[name]
    width = 60.0 / math.sqrt(1.0 - 2.0 * h) if (name == "relu2" and h > 0) else 60.0
    zg = np.linspace(-width - 1.5 * abs(h), width + 1.5 * abs(h), 400001)
    with np.errstate(all="ignore"):
        psi = -0.5 * zg ** 2 + h * f_np(zg)
    k = int(np.argmax(psi))
    inside = np.nonzero(psi > psi[k] - 90.0)[0]
    pts = {zg[max(inside[0] - 1, 0)], zg[min(inside[-1] + 1, zg.size - 1)], zg[k]}
    pts.update(x for x in kinks if min(pts) < x < max(pts))
    for level in (2.0, 8.0, 18.0, 32.0, 50.0, 72.0):
        crossings = np.nonzero(np.diff(np.sign(psi - (psi[k] - level))))[0]
        pts.update(zg[crossings])
    pts = sorted(pts)
    with mp.workdps(30):
        hm, zm = mp.mpf(h), mp.mpf(zg[k])
        psim = -zm * zm / 2 + hm * f_mp(zm)

        def w(x):
            return mp.exp(-x * x / 2 + hm * f_mp(x) - psim)

        i0 = _quad(w, pts)
        mean = _quad(lambda x: f_mp(x) * w(x), pts, floor=i0 * mp.mpf(10) ** -24) / i0
        var = _quad(lambda x: (f_mp(x) - mean) ** 2 * w(x), pts) / i0
        g = psim + mp.log(i0) - mp.log(2 * mp.pi) / 2
        return float(g), float(mean), float(var)


@pytest.fixture(scope="module")
def nonlins():
    return {name: nonlinearity(name) for name in PHI}


@pytest.mark.parametrize("name,h", CASES)
def test_tilted_moments_match_mpmath(nonlins, name, h):
    got = tilted_moments(nonlins[name], h)
    ref = mpmath_reference(name, h)
    odd = PHI[name][3]
    for which, (a, b) in enumerate(zip(got, ref)):
        exact_zero = h == 0.0 and (which == 0 or (which == 1 and odd))
        if exact_zero:
            assert abs(a) <= ATOL_ZERO, (which, a)
        else:
            assert abs(a - b) <= RTOL * abs(b), (which, a, b, abs(a - b) / abs(b))


@pytest.mark.parametrize("name", ["linear", "relu", "relu2"])
def test_quadrature_agrees_with_closed_forms(nonlins, name):
    # the generic quadrature path on the φ with closed forms: kinks at the mode (ReLU, h < 0),
    # modes far out (h = 1e3), wide tilts (relu2 near h = ½)
    nl = nonlins[name]
    hs = H_RELU2 if name == "relu2" else H_GRID
    for h in hs:
        closed = gauss.tilted_moments(nl.code, nl.prog, h)
        quad = gauss._quadrature_moments(nl.code, nl.prog, h)
        for a, b in zip(quad, closed):
            assert abs(a - b) <= RTOL * abs(b) + (ATOL_ZERO if b == 0 else 0.0), (h, quad, closed)


@pytest.mark.parametrize("name", list(PHI)[:6])
def test_finite_and_consistent_on_dense_grid(nonlins, name):
    nl = nonlins[name]
    mag = np.logspace(-4, 3, 60)
    hs = np.concatenate((-mag, [0.0], mag[mag < 0.5] if name == "relu2" else mag))
    g, g1, g2 = tilted_moments(nl, hs)
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(g1)) and np.all(np.isfinite(g2))
    assert np.all(g2 > 0)
    lo, hi = nl.range
    assert np.all(g1 > lo) and np.all(g1 < hi)
    # g is convex: g' non-decreasing in h
    order = np.argsort(hs)
    assert np.all(np.diff(g1[order]) >= -1e-12 * np.abs(g1[order][1:]))
    # the parallel array kernel equals the scalar kernel bit for bit
    for h, a, b, c in zip(hs, g, g1, g2):
        assert gauss.tilted_moments(nl.code, nl.prog, h) == (a, b, c)


def test_relu2_diverges_at_one_half(nonlins):
    nl = nonlins["relu2"]
    assert gauss.tilted_moments(nl.code, nl.prog, 0.5)[0] == math.inf
    assert gauss._quadrature_moments(nl.code, nl.prog, 0.7)[0] == math.inf
    with pytest.raises(ValueError, match="h"):
        tilted_moments(nl, 0.5)
    with pytest.raises(ValueError, match="h"):
        tilted_moments("relu2", np.array([0.1, 0.6]))


def test_bad_arguments():
    with pytest.raises(TypeError, match="h"):
        tilted_moments("relu", "1.0")
    with pytest.raises(ValueError, match="h"):
        tilted_moments("relu", [0.0, math.nan])
    with pytest.raises(ValueError, match="nonlin"):
        tilted_moments("tanhh", 1.0)
    with pytest.raises(TypeError, match="nonlin"):
        tilted_moments(3, 1.0)
    with pytest.raises(ValueError, match="nonlin"):
        tilted_moments("sqrt(z)", 1.0)        # φ undefined for z < 0
    with pytest.raises(ValueError, match="diverges"):
        tilted_moments("z**3", 0.1)
    with pytest.raises(ValueError, match="h"):
        tilted_expectation("erf", [1.0, 2.0], np.cos)
    with pytest.raises(TypeError, match="f"):
        tilted_expectation("erf", 1.0, 3.0)


def test_shapes():
    g, g1, g2 = tilted_moments("erf", 0.5)
    assert all(isinstance(x, float) for x in (g, g1, g2))
    hs = np.linspace(-2, 2, 40).reshape(5, 8)
    out = tilted_moments("erf", hs)
    assert all(x.shape == (5, 8) for x in out)
    small = tilted_moments("erf", hs[0, :3])
    assert np.array_equal(small[1], out[1][0, :3])


@pytest.mark.parametrize("name,h", [("erf", 3.0), ("erf", -40.0), ("softplus", -7.0), ("tanh(z)", 2.5),
                                    ("relu", -3.0), ("relu2", 0.3)])
def test_tilted_expectation(nonlins, name, h):
    nl = nonlins[name]
    g, g1, g2 = tilted_moments(nl, h)
    assert abs(tilted_expectation(nl, h, np.ones_like) - 1.0) <= 1e-14
    assert abs(tilted_expectation(nl, h, nl.phi) - g1) <= 1e-12 * abs(g1)
    var = tilted_expectation(nl, h, lambda z: (nl.phi(z) - g1) ** 2)
    assert abs(var - g2) <= 1e-12 * g2
    # Stein's identity for the tilted density ∝ e^{−z²/2 + hφ}: ⟨z⟩_h = h ⟨φ'(z)⟩_h
    lhs = tilted_expectation(nl, h, lambda z: z)
    rhs = h * tilted_expectation(nl, h, nl.dphi)
    assert abs(lhs - rhs) <= 1e-11 * max(abs(lhs), 1e-3)


def test_gauss_hermite():
    x, w = gauss_hermite(20)
    assert abs(w.sum() - 1.0) <= 1e-14
    for k, moment in [(2, 1.0), (4, 3.0), (10, 945.0), (38, float(math.prod(range(1, 38, 2))))]:
        assert abs(w @ x ** k - moment) <= 1e-12 * moment
    assert abs(w @ x ** 7) <= 1e-12
    assert not x.flags.writeable
    with pytest.raises(ValueError, match="n"):
        gauss_hermite(0)
    with pytest.raises(TypeError, match="n"):
        gauss_hermite(2.5)
