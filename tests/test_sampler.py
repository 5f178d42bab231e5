"""The sampler itself: gradients, determinism, exact resume after SIGKILL, space equivalence, errors."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import meanfield as mf
from _kill import kill_at_checkpoint
from meanfield._kernels import network as nw
from meanfield.nonlinearities import nonlinearity


@pytest.mark.parametrize("name", ["linear", "erf", "relu", "softplus", "relu2"])
@pytest.mark.parametrize("L", [1, 2, 3])
def test_energy_gradient_matches_finite_differences(name, L):
    # central differences, h = 1e-6: truncation ~h² and round-off ~1e-16/h ≈ 1e-10 relative
    rng = np.random.default_rng(L)
    phi = nonlinearity(name)
    N, P, r, m = 5, 4, 6, 2
    B = rng.standard_normal((r, P))
    Y = rng.standard_normal((P, m))
    dims = np.array([N, r, L, m], dtype=np.int64)
    n = N * r + (L - 1) * N * N + N * m
    q = rng.standard_normal(n) + 0.3
    g = np.empty(n)
    sc = nw.alloc_scratch(dims, P)

    def energy(x):
        return sum(nw.energy_grad(phi.code, phi.prog, x, np.empty(n), B, B.T.copy(), False, dims, Y,
                                  0.4, 0.3, *sc))

    nw.energy_grad(phi.code, phi.prog, q, g, B, B.T.copy(), False, dims, Y, 0.4, 0.3, *sc)
    h = 1e-6
    num = np.array([(energy(q + h * e) - energy(q - h * e)) / (2 * h) for e in np.eye(n)])
    assert np.max(np.abs(num - g)) / np.max(np.abs(g)) < 1e-7


def _small_task():
    return mf.toy_task(12, 16, y_minus=0.0, seed=1)


def test_same_seed_same_chain_and_different_seed_differs():
    task = _small_task()
    kw = dict(N=10, T=0.05, steps=40, seed=3, progress=False)
    a = mf.sample(task, "erf", **kw)
    b = mf.sample(task, "erf", **kw)
    c = mf.sample(task, "erf", **{**kw, "seed": 4})
    assert np.array_equal(a.final_state, b.final_state)
    assert np.array_equal(a.readouts, b.readouts)
    assert not np.array_equal(a.final_state, c.final_state)


CHILD = textwrap.dedent("""
    import meanfield as mf, sys
    task = mf.toy_task(12, 16, y_minus=0.0, seed=1)
    mf.sample(task, "erf", N=10, depth=2, T=0.05, steps={steps}, seed=5, thin=7, anneal=0.2,
              checkpoint=sys.argv[1], checkpoint_every=25, progress=False)
""")


def test_sigkill_and_resume_reproduces_uninterrupted_run(tmp_path):
    # killed inside the annealing phase (transitions < 1500): T(it) and the energies at it are
    # recomputed from the checkpoint, so the resumed run is bit-identical
    steps = 6000
    ckpt = str(tmp_path / "run.npz")
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(steps=steps), ckpt])
    killed_at = kill_at_checkpoint(proc, ckpt, 2, 100)          # scalars[2]: the iteration
    assert killed_at is not None and killed_at < steps, "the child finished before it could be killed"
    task = _small_task()
    kw = dict(N=10, depth=2, T=0.05, steps=steps, seed=5, thin=7, anneal=0.2, progress=False)
    resumed = mf.sample(task, "erf", checkpoint=ckpt, checkpoint_every=25, **kw)
    clean = mf.sample(task, "erf", **kw)
    assert np.array_equal(resumed.final_state, clean.final_state)
    assert np.array_equal(resumed.readouts, clean.readouts)
    assert np.array_equal(resumed.preactivations[1], clean.preactivations[1])
    for k in clean.traces:
        assert np.array_equal(resumed.traces[k], clean.traces[k]), k


CACHED_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from meanfield._kernels.rng import fill_normal, normal_fill, stream_key, uniform_draw
    q = np.empty(7)
    if sys.argv[1] == "kernel":         # compiles only the parallel kernel into the cache
        fill_normal(q, np.uint64(stream_key(3, 0, 0)))
    else:
        normal_fill(q, 3, 0, 0)
    print(repr(q.tolist()), repr(float(uniform_draw(3, 1, 2, 0))))
""")


def test_rng_kernels_loaded_from_the_numba_cache_in_a_new_process(tmp_path):
    """Regression: ``normal_fill`` was a cached njit caller of the parallel ``fill_normal``. Compiled in
    a process that had loaded ``fill_normal`` from numba's cache, it segfaulted in every later process
    that loaded it (numba 0.68.1): this sequence, on a fresh cache directory, crashed the third child.
    All children must agree bit for bit with this process."""
    from meanfield._kernels.rng import normal_fill, uniform_draw
    q = np.empty(7)
    normal_fill(q, 3, 0, 0)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    for mode in ("kernel", "wrapper", "wrapper"):
        r = subprocess.run([sys.executable, "-c", CACHED_CHILD, mode], capture_output=True, text=True, timeout=300,
                           env=env)
        assert r.returncode == 0, (mode, r.returncode, r.stderr[-2000:])
        assert r.stdout == f"{q.tolist()!r} {float(uniform_draw(3, 1, 2, 0))!r}\n"


def test_checkpoint_of_another_run_is_refused(tmp_path):
    task = _small_task()
    ckpt = str(tmp_path / "c.npz")
    mf.sample(task, "erf", N=6, T=0.1, steps=4, checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match="different run"):
        mf.sample(task, "erf", N=7, T=0.1, steps=4, checkpoint=ckpt, progress=False)


def test_weight_and_preactivation_space_sample_the_same_posterior():
    # Same posterior in two parametrizations: readout second moments must agree within
    # their Monte-Carlo error (estimated from the spread over independent seeds).
    task = mf.toy_task(30, 40, y_minus=0.0, seed=2)
    stats = {}
    for space in ("weight", "preactivation"):
        vals = []
        for seed in range(3):
            s = mf.sample(task, "erf", N=30, T=0.05, steps=500, seed=seed, space=space, progress=False,
                          record_preactivations=False)
            vals.append(np.linalg.eigvalsh(s.readout_covariance()))
        stats[space] = np.array(vals)
    mw, mp = stats["weight"].mean(0), stats["preactivation"].mean(0)
    se = np.sqrt(stats["weight"].var(0, ddof=1) / 3 + stats["preactivation"].var(0, ddof=1) / 3)
    assert np.all(np.abs(mw - mp) < 4 * se + 1e-3 * np.abs(mp)), (mw, mp, se)
    assert np.all(np.abs(mw - mp) / mp < 0.05)


@pytest.mark.parametrize("kwargs, match", [
    (dict(T=0.0), "T"), (dict(T=-1.0), "T"), (dict(N=0), "N"), (dict(depth=0), "depth"),
    (dict(space="z"), "space"), (dict(steps=0), "steps"), (dict(thin=0), "thin"),
    (dict(space="preactivation", depth=2), "depth"), (dict(sigma_a2=-1.0), "sigma_a2"),
    (dict(anneal=0.05), "anneal"), (dict(anneal=0.5, steps=2, warmup=1), "anneal"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, match):
    task = _small_task()
    base = dict(N=4, T=0.1, steps=2, progress=False)
    with pytest.raises(ValueError, match=match):
        mf.sample(task, "linear", **{**base, **kwargs})


def test_unknown_nonlinearity_and_wrong_task_type():
    task = _small_task()
    with pytest.raises(ValueError, match="name"):
        mf.sample(task, "tanhh", N=4, T=0.1, steps=2)
    with pytest.raises(TypeError, match="task"):
        mf.sample(task.X, "linear", N=4, T=0.1, steps=2)


@pytest.mark.parametrize("name", ["linear", "erf", "relu"])
def test_fused_identity_leapfrog_equals_generic_path(name):
    # The toy-task fast path (L = 1, K0 = I) must compute the same energy and gradient as the
    # generic GEMM path with B = I; only floating-point reassociation differs (≤ 1e-12 relative).
    from meanfield._kernels.leapfrog_identity import NBLK, leapfrog_identity
    rng = np.random.default_rng(0)
    phi = nonlinearity(name)
    N, P, m = 9, 7, 3
    dims = np.array([N, P, 1, m], dtype=np.int64)
    n = N * P + N * m
    Y = rng.standard_normal((P, m))
    q = rng.standard_normal(n)
    p = rng.standard_normal(n)
    g0 = rng.standard_normal(n)
    a, b = 0.01, 0.02
    # generic: kick, drift, gradient
    p_ref = p - a * g0
    q_ref = q + b * p_ref
    g_ref = np.empty(n)
    ep_ref, el_ref = nw.energy_grad(phi.code, phi.prog, q_ref, g_ref, np.eye(P), np.eye(P), False, dims, Y,
                                    0.3, 0.05, *nw.alloc_scratch(dims, P))
    H, D = np.empty((N, P)), np.empty((N, P))
    g = g0.copy()
    ep, el = leapfrog_identity(phi.code, phi.prog, p, q, g, a, b, Y, 0.3, 0.05, N, H, D,
                               np.empty((NBLK, m, P)), np.empty(NBLK))
    assert np.allclose(q, q_ref, rtol=1e-14, atol=1e-14)
    assert np.allclose(p, p_ref, rtol=1e-14, atol=1e-14)
    assert abs(ep - ep_ref) <= 1e-12 * abs(ep_ref)
    assert abs(el - el_ref) <= 1e-12 * abs(el_ref)
    assert np.max(np.abs(g - g_ref)) <= 1e-12 * np.max(np.abs(g_ref))


def test_fast_sigmoid_matches_scipy():
    # the sampler's vectorized φ_erf: 1e-13 absolute on φ, 1e-12 relative on φ' (see fastphi.py)
    from scipy.special import ndtr
    from meanfield._kernels.fastphi import KAPPA, activate_erf
    z = np.linspace(-60, 60, 240001).reshape(1, -1)
    H, D = np.empty_like(z), np.empty_like(z)
    activate_erf(z, H, D, 1.0)
    assert np.max(np.abs(H - ndtr(KAPPA * z))) < 1e-13
    d_exact = KAPPA / np.sqrt(2 * np.pi) * np.exp(-0.5 * (KAPPA * z) ** 2)
    mask = d_exact > 1e-300
    assert np.max(np.abs(D[mask] - d_exact[mask]) / d_exact[mask]) < 1e-12


def test_annealing_schedule():
    # geometric from `anneal` to T over the first half of the warm-up, then T; energies follow T
    task = _small_task()
    kw = dict(N=6, T=0.02, steps=40, warmup=20, anneal=0.2, seed=5, progress=False)
    s = mf.sample(task, "erf", **kw)
    Tt = s.traces["temperature"]
    assert Tt[0] == pytest.approx(0.2) and np.all(Tt[10:] == 0.02)
    assert np.allclose(np.diff(np.log(Tt[:11])), np.log(0.1) / 10)
