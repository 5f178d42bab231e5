"""Run health (meanfield.sampling.health): broken runs are named as such, healthy runs pass."""
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import meanfield as mf
from meanfield.cli import main
from meanfield.sampling.compile import cold, precompiled
from meanfield.sampling.health import THRESHOLDS, Health, SamplerHealthWarning, assess


@pytest.fixture(scope="module")
def tiny():
    return mf.toy_task(20, 30)


def _failed(health):
    return {c.name for c in health.checks if not c.ok}


def test_tiny_temperature_is_flagged_at_the_leapfrog_cap(tiny):
    # T = 1e-12: the adapted step collapses, every trajectory hits max_leapfrog and the output
    # fluctuations are ~10⁶ T/N (measured 1.8e6): the run must say so and warn.
    with pytest.warns(SamplerHealthWarning, match="leapfrog_cap"):
        s = mf.sample(tiny, "linear", N=10, T=1e-12, steps=40, progress=False)
    assert not s.health.ok
    assert {"leapfrog_cap", "equipartition"} <= _failed(s.health)
    assert s.health["leapfrog_cap"].value == 1.0
    assert any(p.startswith("leapfrog_cap = 1 (needs <= 0.1)") for p in s.health.problems)


def test_far_too_large_fixed_step_is_flagged(tiny):
    # no warm-up, so no adaptation: ε = 5 with 5 leapfrog steps diverges on every transition
    with pytest.warns(SamplerHealthWarning):
        s = mf.sample(tiny, "linear", N=10, T=0.01, steps=40, warmup=0, step_size=5.0, n_leapfrog=5,
                      progress=False)
    assert {"acceptance", "divergent", "train_accuracy", "train_error/T"} <= _failed(s.health)
    assert s.health["acceptance"].value == 0.0 and s.health["divergent"].value == 1.0


def test_healthy_linear_run_passes_and_round_trips(tmp_path):
    # the README's main job at a third of its size (P = N = 60, 300 transitions)
    task = mf.toy_task(60, 80)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplerHealthWarning)
        s = mf.sample(task, "linear", N=60, T=0.01, steps=300, space="preactivation", progress=False)
    assert s.health.ok, s.health.problems
    assert 0.5 < s.health["equipartition"].value < 1.5      # ≈ 1 at equilibrium
    assert s.health["train_accuracy"].value == 1.0
    s.save(tmp_path / "s.npz")
    back = mf.Samples.load(tmp_path / "s.npz")
    assert back.health.to_dict() == s.health.to_dict()
    assert "verdict: healthy" in back.table()


def test_cli_exits_3_on_an_unhealthy_run(capsys):
    with pytest.warns(SamplerHealthWarning):
        status = main(["sample", "--N", "10", "--P", "20", "--steps", "40", "--T", "1e-12", "-q"])
    assert status == 3
    err = capsys.readouterr().err
    assert "failed its health checks" in err and "leapfrog_cap" in err


def test_fit_checks_catch_a_network_that_did_not_learn():
    # synthetic run: stationary, finite, but the mean predictor merges classes 1 and 2
    task = mf.toy_task(40, 60, y_minus=-0.5)
    rng = np.random.default_rng(0)
    S, N = 20, 8
    f = task.Y.copy()
    f[task.labels == 2] = task.Y[task.labels == 1][0]              # class 2 answered as class 1
    traces = dict(train_error=np.full(S, np.mean((task.Y - f) ** 2)) + 1e-6 * rng.standard_normal(S))
    cfg = dict(warmup=0, T=0.01, N=N, space="collapsed")
    h = assess(traces, cfg, rng.standard_normal((S, N, 3)), f, task.Y, task.labels)
    assert h["train_accuracy"].value == pytest.approx(np.mean(task.labels != 2))
    assert {"train_accuracy", "train_error/T"} <= _failed(h)
    h_ok = assess(dict(train_error=np.full(S, 1e-4)), cfg, rng.standard_normal((S, N, 3)), task.Y, task.Y,
                  task.labels)
    assert h_ok.ok


def test_code_drift_and_stationarity_checks():
    task = mf.toy_task(30, 40, y_minus=0.5)
    rng = np.random.default_rng(1)
    S, N, P = 40, 50, task.P
    on = np.where(task.labels == 0, 4.0, -4.0)                      # code 1-0-0 for every neuron
    Z = np.broadcast_to(on, (S, N, P)).copy() + 0.1 * rng.standard_normal((S, N, P))
    Z[S // 2:, : N // 2] = 4.0                                     # half the neurons move to 1-1-1
    cfg = dict(warmup=0, T=0.01, N=N, space="collapsed")
    te = np.r_[np.full(S // 2, 1e-4), np.full(S - S // 2, 2e-4)] * (1 + 0.01 * rng.standard_normal(S))
    h = assess(dict(train_error=te), cfg, np.ones((S, N, 3)), task.Y, task.Y, task.labels, [Z], mf.nonlinearity("erf"))
    assert {"code_drift", "stationarity"} <= _failed(h)
    Z[S // 2:, : N // 2] = on                                      # stationary codes
    h2 = assess(dict(train_error=np.full(S, 1e-4) * (1 + 0.01 * rng.standard_normal(S))), cfg, np.ones((S, N, 3)),
                task.Y, task.Y, task.labels, [Z], mf.nonlinearity("erf"))
    assert h2.ok, h2.problems
    assert THRESHOLDS["code_drift_abs"] < 0.5      # the drift above (0.5) is far over the threshold


def test_health_dict_round_trip():
    h = assess(dict(train_error=np.full(10, 1e-4)), dict(warmup=0, T=0.01, N=4, space="collapsed"),
               np.ones((10, 4, 1)), np.ones((4, 1)), np.ones((4, 1)), np.zeros(4, dtype=np.int64))
    assert Health.from_dict(h.to_dict()) == h


def test_cold_compile_is_announced_once(tmp_path, capsys):
    (tmp_path / "mf_cold_probe.py").write_text(textwrap.dedent("""
        import numba
        @numba.njit(cache=True)
        def f(x):
            return x + 1.0
    """))
    sys.path.insert(0, str(tmp_path))
    try:
        import mf_cold_probe
        assert cold([mf_cold_probe.f])
        with precompiled([mf_cold_probe.f], "probe", 1) as info:
            mf_cold_probe.f(1.0)
        assert info["cold"] and "compiling probe once" in capsys.readouterr().err
        assert not cold([mf_cold_probe.f])                        # cached on disk now
        with precompiled([mf_cold_probe.f], "probe", 1):
            pass
        assert capsys.readouterr().err == ""
    finally:
        sys.path.remove(str(tmp_path))


def test_sampling_loop_compiles_nothing_after_the_warm_up_compile():
    # in a fresh process: the tiny-problem compile covers every signature the run uses,
    # so the timed loop (and the reported rate) contains no compilation
    code = textwrap.dedent("""
        import meanfield as mf
        from meanfield._kernels import network as nw
        from meanfield.sampling.hmc import _compile_kernels
        from meanfield.sampling.geometry import first_layer_geometry
        phi = mf.nonlinearity("erf")
        for depth, space in ((1, "preactivation"), (2, "weight")):
            task = mf.toy_task(12, 16)
            identity = first_layer_geometry(task, space, True)[1]
            _compile_kernels(phi.code, phi.prog, depth, task.m, identity, True)
            ds = (nw.energy_grad, nw.hmc_trajectory, nw.forward, nw.alloc_workspace, nw.alloc_scratch)
            before = [len(d.signatures) for d in ds]
            mf.sample(task, phi, N=6, depth=depth, T=0.05, steps=6, space=space, progress=False)
            assert [len(d.signatures) for d in ds] == before, (depth, before, [len(d.signatures) for d in ds])
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
