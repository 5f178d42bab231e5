"""Bad input fails before any work and never loses work (issue 18, item 5).

Every case measured on the old main gets a test: output / checkpoint / figure paths checked up
front (CLI and API), the sampler's memory need refused up front, corrupt / truncated / foreign
``.npz`` files named with a remedy (never the ``allow_pickle`` advice), ``.npy`` data, toy tasks
with empty classes, labels beyond m, and non-binary codes. "No work" is asserted by replacing the
work (sampler, solver, geometry) with a function that fails the test if it is called.
"""
import os
import tracemalloc

import numpy as np
import pytest

import meanfield as mf
import meanfield.figures
import meanfield.sweeps
import meanfield._validation as V
import meanfield.sampling as sampling_pkg
import meanfield.sampling.collapsed as collapsed_mod
import meanfield.sampling.hmc as hmc_mod
from meanfield import cli
from meanfield._kernels import network as nw
from meanfield.analysis import code_fractions
from meanfield.sampling.memory import collapsed_memory_bytes, hmc_memory_bytes
from meanfield.sampling.storage import RunState


def _no_work(*args, **kwargs):
    raise AssertionError("work started although the input was bad")


@pytest.fixture
def no_sampler(monkeypatch):
    """Sampler, solver, sweep and figure work all fail the test if reached."""
    monkeypatch.setattr(sampling_pkg, "sample", _no_work)
    monkeypatch.setattr(mf.theory, "solve", _no_work)
    monkeypatch.setattr(mf.sweeps, "scheme_sweep", _no_work)
    monkeypatch.setattr(mf.figures, "make", _no_work)


# ----------------------------------------------------------------------------- output paths, CLI
TINY = ["--P", "6", "--N0", "8", "--N", "3", "--steps", "4", "-q"]


@pytest.mark.parametrize("argv, option", [
    (["sample", *TINY, "--out", "{missing}/s.npz"], "--out"),
    (["sample", *TINY, "--checkpoint", "{missing}/c.npz"], "--checkpoint"),
    (["compare", *TINY, "--out", "{missing}/m.json"], "--out"),
    (["compare", *TINY, "--checkpoint", "{missing}/c.npz"], "--checkpoint"),
    (["solve", "--P", "6", "--N0", "8", "--out", "{missing}/sol.npz"], "--out"),
    (["sweep", "--values", "0.1", "--png", "{missing}/sweep.png"], "--png"),
    (["sample", *TINY, "--out", "{dir}"], "--out"),                 # the target is a directory
    (["figure", "1", "--small", "-q", "--out-dir", "{file}"], "--out-dir"),   # out-dir is a file
])
def test_cli_checks_output_paths_before_any_work(tmp_path, capsys, no_sampler, argv, option):
    (tmp_path / "file").write_text("x")
    subst = dict(missing=tmp_path / "missing", dir=tmp_path, file=tmp_path / "file")
    argv = [a.format(**subst) for a in argv]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert option in err and ("does not exist" in err or "directory" in err), err
    assert not (tmp_path / "missing").exists()


def test_cli_figure_creates_missing_out_dir_before_work(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(mf.figures, "make", lambda name, out_dir, **kw: made.append(os.path.isdir(out_dir)) or [])
    assert cli.main(["figure", "2", "--small", "-q", "--out-dir", str(tmp_path / "a" / "b")]) == 0
    assert made == [True]


def test_cli_read_only_directory_refused(tmp_path, capsys, no_sampler):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        assert cli.main(["sample", *TINY, "--out", str(ro / "s.npz")]) == 1
        assert "not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


# ----------------------------------------------------------------------------- output paths, API
@pytest.fixture
def task():
    return mf.toy_task(6, 8)


def test_sample_checks_checkpoint_before_any_work(tmp_path, monkeypatch, task):
    monkeypatch.setattr(hmc_mod, "first_layer_geometry", _no_work)
    monkeypatch.setattr(collapsed_mod, "first_layer_geometry", _no_work)
    with pytest.raises(ValueError, match=r"checkpoint .*missing.* does not exist"):
        mf.sample(task, "erf", N=3, steps=4, checkpoint=tmp_path / "missing" / "c.npz")
    with pytest.raises(ValueError, match="checkpoint .* is a directory"):
        mf.sample(task, "erf", N=3, steps=4, checkpoint=tmp_path)
    with pytest.raises(TypeError, match="checkpoint must be a file path"):
        mf.sample(task, "erf", N=3, steps=4, checkpoint=3)
    with pytest.raises(ValueError, match=r"checkpoint .*missing.* does not exist"):
        mf.sample_collapsed(task, "erf", N=3, sweeps=4, checkpoint=tmp_path / "missing" / "c.npz")


def test_samples_save_sweep_png_and_figure_out_dir_checked(tmp_path, task):
    s = mf.sample(task, "linear", N=3, steps=4, progress=False)
    with pytest.raises(ValueError, match="path .* does not exist"):
        s.save(tmp_path / "missing" / "s.npz")
    with pytest.raises(ValueError, match="path .* does not exist"):
        mf.sweeps.plot_scheme_sweep([], tmp_path / "missing" / "s.png")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="out_dir .* is not a directory"):
        mf.figures.make("2", tmp_path / "f", small=True)
    with pytest.raises(TypeError, match="out_dir"):
        mf.figures.make("2", 5, small=True)
    assert list(tmp_path.iterdir()) == [tmp_path / "f"]


# ----------------------------------------------------------------------------- memory
def test_memory_need_refused_up_front(monkeypatch, task):
    monkeypatch.setattr(V, "available_memory_bytes", lambda: 2 ** 20)        # 1 MiB
    monkeypatch.setattr(hmc_mod.RunState, "new", _no_work)
    with pytest.raises(ValueError, match=r"needs about .* MiB .* only 1.0 MiB is available.*thin.*smaller N"):
        mf.sample(task, "erf", N=200, steps=400, progress=False)
    with pytest.raises(ValueError, match=r"needs about .* only 1.0 MiB is available"):
        mf.sample_collapsed(task, "erf", N=400, sweeps=400, progress=False)


def test_memory_estimate_of_the_measured_case():
    # meanfield sample --N 1000000 --P 200 (defaults: 600 steps, 300 stored): the float32
    # preactivations alone are 300 × 10⁶ × 200 × 4 B = 2.4e11 B; the readouts add 7.2e9 B and the
    # work arrays (≈ 12 float64 + 2 float32 N × P matrices) 3.2e10 B
    need = hmc_memory_bytes(10 ** 6, 200, 3, 1, 200, 600, 300)
    assert 2.75e11 < need < 2.85e11
    assert V.available_memory_bytes() > 0


def _nbytes(obj):
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (tuple, list)):
        return sum(_nbytes(o) for o in obj)
    if isinstance(obj, dict):
        return sum(_nbytes(o) for o in obj.values())
    return 0


@pytest.mark.parametrize("name, depth, space, pre", [("erf", 1, "preactivation", True),
                                                    ("erf", 1, "weight", True),
                                                    ("relu", 2, "weight", False),
                                                    ("erf", 1, "preactivation", False)])
def test_hmc_memory_estimate_equals_allocated_arrays(monkeypatch, name, depth, space, pre):
    """The estimate is exact: it equals the bytes of every array the run holds (state + work)."""
    task = mf.Task(np.random.default_rng(0).standard_normal((4, 7)), np.eye(3)[[0, 1, 2, 0, 1, 2, 0]]) \
        if space == "weight" else mf.toy_task(7, 9)
    seen = {}
    real_run = hmc_mod._run

    def spy(state, ctx, *args):
        seen.update(state=state, ctx=ctx)
        return real_run(state, ctx, *args)

    monkeypatch.setattr(hmc_mod, "_run", spy)
    mf.sample(task, name, N=5, depth=depth, steps=9, thin=2, space=space, record_preactivations=pre,
              progress=False)
    st, ctx = seen["state"], seen["ctx"]
    held = _nbytes([st.q, st.g, st.traces, st.readouts, st.preactivations, st.kernel_sums, st.prediction_sum,
                    ctx.ws, ctx.scratch])
    r = int(ctx.dims[1])
    assert hmc_memory_bytes(5, task.P, task.m, depth, r, 9, len(range(4, 9, 2)), pre, True) == held


def test_collapsed_memory_estimate_matches_traced_peak():
    """Against the peak of numpy allocations (tracemalloc) of a real run: within 25 %.

    Measured 0.85-0.90 over N = 20-60, 200-800 sweeps (the rest is transient: eigen/Cholesky work
    arrays, the codes of the stored samples)."""
    task = mf.toy_task(20, 25)
    mf.sample_collapsed(task, "erf", N=4, sweeps=4, progress=False)          # compile outside the trace
    tracemalloc.start()
    try:
        mf.sample_collapsed(task, "erf", N=40, sweeps=400, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    est = collapsed_memory_bytes(40, 20, 3, 20, 400, 200, 200, 3 + 3)
    assert 0.75 < est / peak < 1.25, (est, peak)


# ----------------------------------------------------------------------------- unreadable files
def _bad_files(tmp_path):
    np.savez(tmp_path / "good.npz", q=np.zeros(10 ** 5))
    raw = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(0).bytes(300))
    np.savez(tmp_path / "foreign.npz", Z=np.zeros(2))
    np.save(tmp_path / "array.npy", np.zeros(3))
    np.savez(tmp_path / "badmeta.npz", **{k: np.zeros(2) for k in
                                          ("config", "scalars", "q", "g", "adapt", "readouts", "kernel_sums",
                                           "prediction_sum", "meta", "kernels", "mean_prediction",
                                           "iterations", "final_state")},
             **{"trace_" + k: np.zeros(2) for k in mf.sampling.storage.TRACE_KEYS})
    return ["truncated.npz", "random.npz", "foreign.npz", "array.npy", "badmeta.npz"]


def _assert_clear(exc, path, *words):
    msg = str(exc.value)
    assert type(exc.value) is ValueError
    assert str(path) in msg and "pickle" not in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def test_corrupt_checkpoints_name_the_file_and_the_remedy(tmp_path, task):
    for f in _bad_files(tmp_path):
        p = tmp_path / f
        with pytest.raises(ValueError) as exc:
            mf.sample(task, "linear", N=3, steps=4, checkpoint=p, progress=False)
        _assert_clear(exc, p, "checkpoint", "Delete it", "q, g")
        with pytest.raises(ValueError) as exc:
            RunState.load(p)
        _assert_clear(exc, p, "checkpoint", "Delete it")
        with pytest.raises(ValueError) as exc:
            mf.Samples.load(p)
        _assert_clear(exc, p, "samples file", "Regenerate", "readouts")
        with pytest.raises(ValueError) as exc:
            mf.sample_collapsed(task, "erf", N=3, sweeps=4, checkpoint=p, progress=False)
        _assert_clear(exc, p, "checkpoint", "Delete it", "mix_mus")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        mf.Samples.load(tmp_path / "missing.npz")


def test_truncated_real_checkpoint(tmp_path, task):
    ckpt = tmp_path / "c.npz"
    mf.sample(task, "linear", N=3, steps=4, checkpoint=ckpt, progress=False)
    raw = ckpt.read_bytes()
    ckpt.write_bytes(raw[:-100])
    with pytest.raises(ValueError, match=r"truncated, corrupt.*Delete it to restart"):
        mf.sample(task, "linear", N=3, steps=4, checkpoint=ckpt, progress=False)
    assert ckpt.read_bytes() == raw[:-100]          # never overwritten by a failed start


def test_bad_data_files(tmp_path, capsys):
    names = _bad_files(tmp_path)
    for f in names:
        with pytest.raises(ValueError) as exc:
            mf.Task.load(tmp_path / f)
        _assert_clear(exc, tmp_path / f, "data file", "X, Y", "np.savez")
    assert cli.main(["solve", "--data", str(tmp_path / "array.npy")]) == 1
    err = capsys.readouterr().err
    assert ".npy array, not an .npz archive" in err and "context manager" not in err
    assert cli.main(["sample", "--data", str(tmp_path / "random.npz"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "random.npz" in err and "pickle" not in err


def test_saved_files_still_load(tmp_path, task):
    s = mf.sample(task, "linear", N=3, steps=6, progress=False)
    s.save(tmp_path / "s.npz")
    back = mf.Samples.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.readouts, s.readouts)
    task.save(tmp_path / "t.npz")
    np.testing.assert_array_equal(mf.Task.load(tmp_path / "t.npz").labels, task.labels)


# ----------------------------------------------------------------------------- tasks and codes
def test_toy_task_refuses_empty_classes():
    with pytest.raises(ValueError, match=r"P = 2 and ratios \[0.5, 0.25, 0.25\].*class\(es\) \[2\]"):
        mf.toy_task(2, 5)
    with pytest.raises(ValueError, match="ratios"):
        mf.toy_task(10, 12, ratios=(0.96, 0.02, 0.02))
    assert np.bincount(mf.toy_task(3, 5).labels).tolist() == [1, 1, 1]


def test_task_labels_checked_against_m():
    X, Y = np.eye(4)[:, :3], np.eye(3)
    with pytest.raises(ValueError, match=r"labels must be class indices in 0 … m − 1 = 2 .*got 7"):
        mf.Task(X, Y, labels=[7, 0, 1])
    with pytest.raises(ValueError, match="labels must be non-negative"):
        mf.Task(X, Y, labels=[-1, 0, 1])
    with pytest.raises(TypeError, match="labels must be integer class indices"):
        mf.Task(X, Y, labels=[0.5, 0, 1])
    with pytest.raises(ValueError, match="labels_test"):
        mf.Task(X, Y, X_test=X, Y_test=Y, labels_test=[0, 1, 3])
    # one output shared by several classes (the binary task of Fig. 1) keeps its class labels
    assert mf.Task(X, Y[:, :1], labels=[0, 1, 2]).labels.tolist() == [0, 1, 2]


def test_code_fractions_refuses_non_binary():
    with pytest.raises(ValueError, match="codes must be binary"):
        code_fractions(np.random.default_rng(0).random((5, 3)))
    with pytest.raises(ValueError, match="codes must have shape"):
        code_fractions(np.array([0, 1]))
    fr = code_fractions(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    assert fr == {(1, 0): 0.75, (0, 1): 0.25}


def test_alloc_sizes_used_by_the_estimate_are_the_kernels():
    # the estimate's scratch formula against the numba allocator itself (depth 2, r ≠ P)
    dims = np.array([4, 3, 2, 2], dtype=np.int64)
    from meanfield.sampling.memory import _scratch_bytes
    assert _scratch_bytes(4, 5, 3, 2, 2) == _nbytes(nw.alloc_scratch(dims, 5))
