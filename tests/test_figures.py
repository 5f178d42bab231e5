"""``meanfield figure N``: every figure is written as a valid PNG at the tiny scale, with the data behind it.

The CLI tests run the ``small`` scale (a few seconds each); the quantitative checks use the figure
modules' ``compute`` at the same scale, so every assertion is about what the PNG shows.
"""
import struct
from pathlib import Path

import numpy as np
import pytest

from meanfield import cli
from meanfield.figures import FIGURES, make, module

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_size=(200, 150)):
    """A real PNG: signature, IHDR chunk, plausible size, nonzero bytes."""
    data = Path(path).read_bytes()
    assert len(data) > 1000
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    assert w >= min_size[0] and h >= min_size[1]


@pytest.fixture(scope="module")
def fig1_data():
    return module(1).compute(small=True, seed=0)


@pytest.mark.parametrize("name", ["1", "5", "7"])
def test_cli_writes_png(tmp_path, name, capsys):
    assert cli.main(["figure", name, "--small", "--quiet", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    png = tmp_path / ("phase.png" if name == "phase" else f"fig{name}.png")
    assert f"saved {png}" in out
    assert_png(png)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["2", "3", "4", "6", "phase"])
def test_cli_writes_png_slow(tmp_path, name):
    assert cli.main(["figure", name, "--small", "--quiet", "--out-dir", str(tmp_path)]) == 0
    assert_png(tmp_path / ("phase.png" if name == "phase" else f"fig{name}.png"))


def test_cli_rejects_unknown_figure(tmp_path, capsys):
    assert cli.main(["figure", "8", "--small", "--quiet", "--out-dir", str(tmp_path)]) == 1
    assert "unknown figure '8'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_make_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown figure"):
        module("fig9")
    with pytest.raises(ValueError, match="unknown option"):
        make("2", tmp_path, small=True, data_path="x")
    with pytest.raises(TypeError, match="small must be a bool"):
        module(2).make(tmp_path, small="yes")
    with pytest.raises(ValueError):
        module(2).make(tmp_path, small=True, seed=-1)
    assert set(FIGURES) == {"1", "2", "3", "4", "5", "6", "7", "phase"}


def test_fig1_schemes_per_nonlinearity(fig1_data, tmp_path):
    """The non-lazy activations shown in Fig. 1 are analog / redundant / sparse; the lazy ones carry no code."""
    assert {nl: fig1_data[nl]["nonlazy"]["scheme"].scheme for nl in ("linear", "erf", "relu")} == \
        dict(linear="analog", erf="redundant", relu="sparse")
    lab = fig1_data["labels"]
    for nl in ("linear", "erf", "relu"):
        K_lazy = fig1_data[nl]["lazy"]["kernel"]
        K = fig1_data[nl]["nonlazy"]["kernel"]
        same = (lab[:, None] == lab[None, :]) & ~np.eye(lab.size, dtype=bool)
        diff = lab[:, None] != lab[None, :]
        # non-lazy kernels carry the task (same-class ≫ different-class), lazy ones do not
        assert K[same].mean() - K[diff].mean() > 0.3 * np.mean(np.diag(K))
        assert abs(K_lazy[same].mean() - K_lazy[diff].mean()) < 1e-8
    assert_png(module(1).draw(fig1_data, tmp_path)[0])


def test_every_heatmap_has_a_colorbar(fig1_data, tmp_path, monkeypatch):
    """Every image drawn in Fig. 1 (kernels and activation rasters, lazy and non-lazy) has a colorbar."""
    from meanfield.figures import common
    drawn = []
    save = common.save
    monkeypatch.setattr(common, "save", lambda fig, *a, **k: (drawn.append(fig), save(fig, *a, **k))[1])
    module(1).draw(fig1_data, tmp_path)
    images = [im for ax in drawn[0].axes for im in ax.images]
    assert len(images) == 12                                   # 3 nonlinearities x (kernel, raster) x 2 regimes
    assert all(im.colorbar is not None for im in images)


def test_sweep_title_names_T_P_N():
    from meanfield.sweeps import _sweep_title
    rows = [dict(value=0.3, T=0.01, y_minus=0.3, P=40, N=30, theory={}, sampler={}),
            dict(value=0.5, T=0.01, y_minus=0.5, P=40, N=30, theory={}, sampler={})]
    assert "at T = 0.01, P = 40, N = 30" in _sweep_title(rows, "y_minus")
    rows_T = [dict(r, T=t, y_minus=0.5, N=None) for r, t in zip(rows, (0.01, 0.04))]
    assert "along T at y₋ = 0.5, P = 40" in _sweep_title(rows_T, "T") and "N =" not in _sweep_title(rows_T, "T")


def test_fig7_substitute_and_missing_cifar(tmp_path):
    d = module(7).compute(small=True, seed=0)
    assert d["source"] == "digits"
    assert d["train_accuracy"] > 0.9                  # the sample interpolates the training set
    assert d["test_accuracy"] > 0.5                   # and generalizes (10 classes: chance 0.1)
    assert len(d["train"]) == 2 and d["test"][1].shape == (d["train"][1].shape[0], d["labels_test"].size)
    with pytest.raises(FileNotFoundError, match="CIFAR-10"):
        module(7).compute(small=True, data_path=tmp_path / "missing")
    assert cli.main(["figure", "7", "--small", "--quiet", "--out-dir", str(tmp_path),
                     "--data-path", str(tmp_path / "missing")]) == 1


SIX_CODES = {(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1)}


def test_fig3_sigmoid_network_learned_its_six_code_scheme():
    """The data behind Fig. 3's sigmoid row (small scale, P = N = 40, depth 3, y₋ = −½): the network fits its
    task and every layer carries the paper's scheme — the six one- and two-class codes, each held by ≥ 1 % of
    the neurons, and no other. Annealed from T = 0.15 (the old schedule) the same run froze with classes 1
    and 2 merged (seed 1: train error 20 T, accuracy 0.75, codes 8 / 2 / 2; seed 0: 6 / 6 / 3 codes; default
    scale: 0.19 = 19 T, accuracy 0.75, 8 / 2 / 2); from 0.03 the error is 0.57 T and the codes 6 / 6 / 6."""
    d = module(3).compute(small=True, seed=0)
    run = d["runs"]["erf"]
    assert run["ok"], run["problems"]
    assert run["train_accuracy"] == 1.0
    assert run["train_error"] / run["T"] < 2.0                       # O(T); the merged state had 19-20 T
    assert d["erf"]["n_codes"] == [6, 6, 6]
    for fr in d["erf"]["code_fractions"]:
        assert {c for c, p in fr.items() if p >= 0.01} == SIX_CODES
    assert all(d["runs"][nl]["ok"] for nl in ("linear", "relu"))


def test_unhealthy_panel_is_marked_and_cli_exits_3(tmp_path, capsys, monkeypatch):
    """Policy (docs/figures.md, "Runs that did not learn"): a panel from a run that failed its health checks is
    drawn marked in red, ``make`` raises NotLearnedError after writing the PNG, the CLI names the panel and its
    problems and exits 3. Fig. 5 at T = 1e-4 (10 transitions) fails its checks."""
    from meanfield import SamplerHealthWarning
    from meanfield.figures import NotLearnedError, fig5
    from meanfield.figures.common import mark_text
    monkeypatch.setattr(fig5, "SCALES", dict(default=fig5.SCALES["default"], small=dict(P=20, steps=10)))
    monkeypatch.setattr(fig5, "T", 1e-4)
    with pytest.warns(SamplerHealthWarning):
        d = fig5.compute(small=True, seed=0)
    rec = d["runs"]["erf"]
    assert not rec["ok"] and rec["problems"] and mark_text(rec).startswith(("NOT LEARNED", "UNHEALTHY RUN"))
    with pytest.raises(NotLearnedError, match="all panels") as exc, pytest.warns(SamplerHealthWarning):
        fig5.make(tmp_path / "api", small=True, progress=False)
    assert_png(exc.value.paths[0])
    with pytest.warns(SamplerHealthWarning):
        assert cli.main(["figure", "5", "--small", "--quiet", "--out-dir", str(tmp_path)]) == 3
    cap = capsys.readouterr()
    assert f"saved {tmp_path / 'fig5.png'}" in cap.out and "marked in red" in cap.out
    assert "all panels (erf, depth 2, N = 20, T = 0.0001" in cap.err and "what to change" in cap.err
    assert_png(tmp_path / "fig5.png")


def test_fig5_lower_layer_switches_more():
    d = module(5).compute(small=True, seed=0)
    sw = [w["switching_neurons"] for w in d["switching"]]
    assert sw[0] > sw[1]                              # layer 1 keeps switching, the feature layer freezes
    assert sw[0] >= 0.5 * d["N"]


def test_new_input_preactivations_reproduce_training_inputs():
    """The layer-wise Gaussian conditional returns the stored preactivations on training inputs."""
    from meanfield import sample, toy_task
    from meanfield.figures.common import new_input_preactivations
    task = toy_task(20, 30, seed=1)
    s = sample(task, "erf", 15, depth=2, T=0.05, steps=6, progress=False)
    Z = new_input_preactivations(s, task, task.X[:, :5], index=-1, seed=0)
    for l in range(2):
        np.testing.assert_allclose(Z[l], s.preactivations[l][-1][:, :5], atol=2e-4)


@pytest.mark.slow
def test_fig6_errors_below_gp():
    d = module(6).compute(small=True, seed=0)
    for nl in ("linear", "erf", "relu"):
        assert d[nl]["accuracy"] > 0.8
        assert np.mean(d[nl]["error"]) < np.mean(d[nl]["gp_error"])     # paper Fig. 6d
    assert d["linear"]["theory_prediction"] is not None


@pytest.mark.slow
def test_phase_theory_map():
    d = module("phase").compute(small=True, seed=0)
    lab = {(float(T), float(y)): d["label"][i, j] for i, T in enumerate(d["T"]) for j, y in enumerate(d["y"])}
    assert lab[(0.01, 0.3)] == "pairs"
    assert lab[(0.04, 0.5)] == "pairs + 1-1-1"
    assert d["samples"][0]["label"] == "pairs + 1-1-1"         # the annealed sampler finds the same scheme
    assert d["f111"][1, 1] > d["f111"][0, 1]          # the 1-1-1 share grows with T


def _fake_cifar(directory, per_class_batch=2, per_class_test=10, seed=0):
    """CIFAR-10 python batches (pickled dicts of numpy arrays) with random images."""
    import pickle
    rng = np.random.default_rng(seed)
    directory.mkdir()

    def batch(n_per_class):
        labels = np.repeat(np.arange(10), n_per_class)
        return {b"data": rng.integers(0, 256, (labels.size, 3072), dtype=np.uint8), b"labels": labels.tolist()}
    for name, n in [(f"data_batch_{i}", per_class_batch) for i in range(1, 6)] + [("test_batch", per_class_test)]:
        with open(directory / name, "wb") as fh:
            pickle.dump(batch(n), fh)


def test_fig7_reads_cifar_batches(tmp_path):
    _fake_cifar(tmp_path / "cifar")
    d = module(7).compute(small=True, seed=0, data_path=tmp_path / "cifar")
    assert d["source"] == "cifar" and d["P"] == 100 and d["labels_test"].size == 100
    assert d["train_accuracy"] > 0.9                  # random images are still interpolated
    assert_png(module(7).draw(d, tmp_path)[0])
