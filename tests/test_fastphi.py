"""The sampler's vectorized sigmoid (``_kernels/fastphi.py``) and fused toy-task trajectory.

The sampler's Metropolis step uses φ̃ (this approximation) in the energy, so it samples exactly
the posterior of the network with activation φ̃; these tests bound |φ̃ − φ| over the whole real
line so that the difference from the exact sigmoid's posterior is negligible:

* φ̃ against mpmath (50 digits) at points spread over the range and the extremes, and against
  ``scipy.special.ndtr`` on a dense grid of z ∈ [−60, 60]: ≤ 1e-15 absolute;
* φ̃' against exp at the same points: ≤ 1e-15 (1 + u²) relative (u = κz; u² is the condition
  number of exp(−u²/2)) where φ' > 1e-300, and underflow to 0 below; against numpy's exp of the
  same float64 u on the dense grid: ≤ 1e-14 relative;
* the exp kernel alone: ≤ 1e-15 relative wherever exp(y) > 1e-300, subnormals and 0 below.

The fused trajectory (``_kernels/leapfrog_identity.py``) must equal the same leapfrog steps done
with the generic gradient path to floating-point reassociation (1e-11 relative over 7 steps),
for one and several register-blocked output chunks (m = 1, 3, 6, 9), an odd number of neurons,
and every kind of nonlinearity dispatch (erf, relu, a generic one); and it must not depend on
the number of threads.
"""
import mpmath as mp
import numba
import numpy as np
import pytest
from scipy.special import ndtr

from meanfield._kernels import leapfrog_identity as li
from meanfield._kernels import network as nw
from meanfield._kernels.fastphi import DPHI_ERF, KAPPA, activate_erf, erf_phi_dphi_f32, exp_neg
from meanfield.nonlinearities import nonlinearity


@numba.njit(error_model="numpy")
def _exp_neg_array(y):
    out = np.empty_like(y)
    for k in range(y.shape[0]):
        out[k] = exp_neg(y[k])
    return out


def _activate(z):
    z = np.asarray(z, dtype=np.float64).reshape(1, -1)
    H, D = np.empty_like(z), np.empty_like(z)
    activate_erf(z, H, D, 1.0)
    return H[0], D[0]


def test_exp_kernel_relative_error_and_underflow():
    y = -np.concatenate([np.linspace(0.0, 760.0, 1_000_001), np.geomspace(1e-300, 1.0, 10_001)])
    got = _exp_neg_array(y)
    exact = np.exp(y)
    normal = exact > 1e-300
    assert np.max(np.abs(got[normal] - exact[normal]) / exact[normal]) <= 1e-15
    assert np.all(got[y < -745.2] == 0.0)
    assert np.max(np.abs(got[~normal] - exact[~normal])) <= 1e-300      # subnormal range: absolute
    assert _exp_neg_array(np.array([0.0]))[0] == 1.0


def test_sigmoid_against_mpmath_over_the_whole_range():
    extremes = [-1e300, -1e6, -40.0, -7.0, -1e-300, 0.0, 1e-300, 7.0, 1e6, 1e300]
    zs = np.concatenate([np.linspace(-60, 60, 2401), extremes])
    H, D = _activate(zs)
    with mp.workdps(50):
        _check_against_mpmath(zs, H, D)


def _check_against_mpmath(zs, H, D):
    for z, h, d in zip(zs, H, D):
        u = mp.mpf(KAPPA) * mp.mpf(float(z))
        if abs(z) < 100:
            h_exact, d_exact = mp.ncdf(u), mp.mpf(DPHI_ERF) * mp.exp(-u * u / 2)
        else:                                    # Φ(∓125) = 0 / 1 to 1e-3000
            h_exact, d_exact = mp.mpf(1 if z > 0 else 0), mp.mpf(0)
        assert abs(mp.mpf(h) - h_exact) <= 1e-15, z
        if d_exact > 1e-300:
            # relative condition number of exp(−u²/2) in z is u²: the float64 product κz alone
            # costs u² · 1.1e-16 relative (≈ 1.5e-13 at the largest u where φ' > 1e-300)
            assert abs(mp.mpf(d) - d_exact) <= 1e-15 * (1 + u * u) * d_exact, z
        else:
            assert 0.0 <= d <= 1e-300, z


def test_sigmoid_against_scipy_on_a_dense_grid():
    z = np.linspace(-60, 60, 2_400_001)
    H, D = _activate(z)
    assert np.max(np.abs(H - ndtr(KAPPA * z))) <= 1e-15
    d_exact = DPHI_ERF * np.exp(-0.5 * (KAPPA * z) ** 2)
    mask = d_exact > 1e-300
    assert np.max(np.abs(D[mask] - d_exact[mask]) / d_exact[mask]) <= 1e-14
    assert np.all(H[1:] >= H[:-1])                         # monotone (no seams between the pieces)


def test_sigmoid_non_finite_inputs():
    H, D = _activate([np.inf, -np.inf, np.nan])
    assert H[0] == 1.0 and D[0] == 0.0
    assert H[1] == 0.0 and D[1] == 0.0
    assert np.isnan(H[2]) and np.isnan(D[2])


def _generic_trajectory(phi, p, q, g, eps, n_leap, Y, sig_a, T, N):
    """The same trajectory through the generic gradient path (energy_grad with B = I)."""
    P, m = Y.shape
    dims = np.array([N, P, 1, m], dtype=np.int64)
    scratch = nw.alloc_scratch(dims, P)
    eye = np.eye(P)
    ep = el = 0.0
    for s in range(n_leap):
        p -= (0.5 if s == 0 else 1.0) * eps * g
        q += eps * p
        ep, el = nw.energy_grad(phi.code, phi.prog, q, g, eye, eye, False, dims, Y, sig_a, T, *scratch)
    p -= 0.5 * eps * g
    return ep, el, 0.5 * float(p @ p)


@pytest.mark.parametrize("name,m", [("erf", 3), ("erf", 1), ("erf", 6), ("relu", 9), ("softplus", 3)])
def test_fused_trajectory_equals_generic_leapfrog(name, m):
    rng = np.random.default_rng(1)
    phi = nonlinearity(name)
    N, P = 13, 11
    n = N * P + N * m
    Y = rng.standard_normal((P, m))
    q = rng.standard_normal(n)
    p = rng.standard_normal(n)
    sig_a, T, eps, n_leap = 0.3, 0.05, 0.01, 7
    g = np.empty(n)
    dims = np.array([N, P, 1, m], dtype=np.int64)
    nw.energy_grad(phi.code, phi.prog, q, g, np.eye(P), np.eye(P), False, dims, Y, sig_a, T,
                   *nw.alloc_scratch(dims, P))
    p_ref, q_ref, g_ref = p.copy(), q.copy(), g.copy()
    ep_ref, el_ref, kin_ref = _generic_trajectory(phi, p_ref, q_ref, g_ref, eps, n_leap, Y, sig_a, T, N)
    iws = li.alloc_identity_workspace(N, P, m, False)       # no surrogate forces: the same steps exactly
    ok, ep, el, kin = li.trajectory_identity(phi.code, phi.prog, p, q, g, eps, n_leap, Y, sig_a, T, N, iws)
    assert ok
    for got, ref in ((ep, ep_ref), (el, el_ref), (kin, kin_ref)):
        assert abs(got - ref) <= 1e-11 * abs(ref)
    for got, ref in ((q, q_ref), (p, p_ref), (g, g_ref)):
        assert np.max(np.abs(got - ref)) <= 1e-11 * np.max(np.abs(ref))


@numba.njit(error_model="numpy")
def _f32_array(z):
    h, d = np.empty_like(z), np.empty_like(z)
    for k in range(z.shape[0]):
        h[k], d[k] = erf_phi_dphi_f32(z[k])
    return h, d


def test_float32_surrogate_sigmoid_absolute_error():
    z = np.concatenate([np.linspace(-60, 60, 1_200_001), [-1e30, -1e6, 0.0, 1e6, 1e30]]).astype(np.float32)
    h, d = _f32_array(z)
    assert h.dtype == np.float32 and d.dtype == np.float32
    u = KAPPA * z.astype(np.float64)
    assert np.max(np.abs(h - ndtr(u))) <= 3e-7
    assert np.max(np.abs(d - DPHI_ERF * np.exp(-0.5 * u * u))) <= 1e-7
    assert np.all((h >= 0) & (h <= 1) & (d >= 0))


def _trajectory_setup(m=3, seed=3):
    rng = np.random.default_rng(seed)
    phi = nonlinearity("erf")
    N, P = 13, 11
    n = N * P + N * m
    Y = rng.standard_normal((P, m))
    q, p, g = rng.standard_normal(n), rng.standard_normal(n), np.empty(n)
    dims = np.array([N, P, 1, m], dtype=np.int64)
    scratch = nw.alloc_scratch(dims, P)
    eye = np.eye(P)

    def energy_grad(x, grad):
        return nw.energy_grad(phi.code, phi.prog, x, grad, eye, eye, False, dims, Y, 0.3, 0.05, *scratch)
    energy_grad(q, g)
    return phi, N, P, m, Y, q, p, g, energy_grad


@pytest.mark.parametrize("m", [3, 6])
def test_surrogate_trajectory_ends_with_exact_energy_and_gradient(m):
    """Surrogate forces in the n − 1 full kicks only: the end point's energies and gradient are exact,
    and the end point is within the surrogate's error of the exact-force trajectory."""
    phi, N, P, m, Y, q0, p0, g0, energy_grad = _trajectory_setup(m)
    out = {}
    for surrogate in (False, True):
        p, q, g = p0.copy(), q0.copy(), g0.copy()
        ok, ep, el, kin = li.trajectory_identity(phi.code, phi.prog, p, q, g, 0.01, 9, Y, 0.3, 0.05, N,
                                                 li.alloc_identity_workspace(N, P, m, surrogate))
        assert ok
        out[surrogate] = (p, q, g, ep, el, kin)
    p, q, g, ep, el, kin = out[True]
    g_exact = np.empty_like(g)
    ep_exact, el_exact = energy_grad(q, g_exact)
    assert abs(ep - ep_exact) <= 1e-11 * abs(ep_exact) and abs(el - el_exact) <= 1e-11 * abs(el_exact)
    assert np.max(np.abs(g - g_exact)) <= 1e-11 * np.max(np.abs(g_exact))
    assert abs(kin - 0.5 * p @ p) <= 1e-11 * kin
    q_ref = out[False][1]
    dq = np.max(np.abs(q - q_ref)) / np.max(np.abs(q_ref - q0))
    assert 0.0 < dq <= 1e-5            # differs (the surrogate is used) but only at its 1e-7 error


def test_surrogate_trajectory_is_reversible():
    """Run forward, flip the momentum, run back: the start point is recovered to rounding error,
    the property (with volume preservation) that keeps the Metropolis-corrected chain exact."""
    phi, N, P, m, Y, q0, p0, g0, _ = _trajectory_setup()
    iws = li.alloc_identity_workspace(N, P, m, True)
    p, q, g = p0.copy(), q0.copy(), g0.copy()
    li.trajectory_identity(phi.code, phi.prog, p, q, g, 0.02, 12, Y, 0.3, 0.05, N, iws)
    assert np.max(np.abs(q - q0)) > 1e-2
    p = -p
    li.trajectory_identity(phi.code, phi.prog, p, q, g, 0.02, 12, Y, 0.3, 0.05, N, iws)
    assert np.max(np.abs(q - q0)) <= 1e-12 * np.max(np.abs(q0))
    assert np.max(np.abs(p + p0)) <= 1e-12 * np.max(np.abs(p0))
    assert np.max(np.abs(g - g0)) <= 1e-11 * np.max(np.abs(g0))


def test_fused_trajectory_does_not_depend_on_the_thread_count():
    rng = np.random.default_rng(2)
    phi = nonlinearity("erf")
    N, P, m = 37, 29, 3
    n = N * P + N * m
    Y = rng.standard_normal((P, m))
    q0, p0, g0 = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)
    results = []
    old = numba.get_num_threads()
    try:
        for threads in sorted({1, old}):
            numba.set_num_threads(threads)
            p, q, g = p0.copy(), q0.copy(), g0.copy()
            out = li.trajectory_identity(phi.code, phi.prog, p, q, g, 0.01, 5, Y, 0.3, 0.05, N,
                                         li.alloc_identity_workspace(N, P, m))
            results.append((out, p, q, g))
    finally:
        numba.set_num_threads(old)
    for out, p, q, g in results[1:]:
        assert out == results[0][0]
        assert np.array_equal(p, results[0][1]) and np.array_equal(q, results[0][2])
        assert np.array_equal(g, results[0][3])


def test_divergent_trajectory_is_reported():
    phi = nonlinearity("erf")
    N, P, m = 4, 5, 2
    n = N * P + N * m
    q = np.zeros(n)
    q[0] = np.inf
    ok, *_ = li.trajectory_identity(phi.code, phi.prog, np.zeros(n), q, np.zeros(n), 0.01, 3,
                                    np.ones((P, m)), 0.3, 0.05, N, li.alloc_identity_workspace(N, P, m))
    assert not ok
