"""Figure 7 — two-hidden-layer sigmoid network on ten classes: training vs test representations.

Paper: full CIFAR-10 (P = 50 000, N0 = 3072, m = 10), L = 2, N = 1000, y₊ = 1, y₋ = −1/10.
Panels: activations of 100 random first (a, d) and second (b, e) layer neurons on 1000 random
training (a, b) and test (d, e) inputs for one weight sample; c readout weights of those neurons;
f predictor for the first class of that sample (grey) and the test target (black).

That run is far beyond a CPU budget of minutes. Two reduced versions:

* ``data_path`` given (directory with the CIFAR-10 python batches, read by
  :func:`meanfield.datasets.cifar10`): all ten classes, P = 400 training and 400 test inputs
  (``small``: 100 / 100), N = 80 (40), weight-space sampler, T = 0.01, annealed from 0.15.
* no ``data_path``: the documented substitute — scikit-learn's digits (all ten classes, N0 = 64,
  offline), P = 200 / 300 test (``small``: 100 / 100), same network and sampler.

Test-input preactivations are drawn layer by layer from their exact Gaussian conditional given
the training ones (:func:`common.new_input_preactivations`). Samples only (no deep sigmoid theory).
"""
from __future__ import annotations

import os

import numpy as np

from . import common as C

DEPTH = 2
T = 0.01
Y_MINUS = -0.1
_SMALL = dict(P=100, P_test=100, N=40, steps=80)
SCALES = dict(cifar=dict(default=dict(P=400, P_test=400, N=80, steps=200), small=_SMALL),
              digits=dict(default=dict(P=200, P_test=300, N=80, steps=250), small=_SMALL))
N_SHOWN = 100


def load_task(data_path=None, small=False, seed=0):
    """The ten-class task: CIFAR-10 from ``data_path``, or the digits substitute without it.

    Returns ``(task, source)``; FileNotFoundError (naming the path) if ``data_path`` lacks the batches.
    """
    from .. import datasets
    source = "digits" if data_path is None else "cifar"
    sc = SCALES[source]["small" if small else "default"]
    kw = dict(classes=tuple(range(10)), P=sc["P"], P_test=sc["P_test"], seed=seed, y_minus=Y_MINUS)
    if data_path is None:
        return datasets.digits(**kw), source
    if not os.path.isdir(os.fspath(data_path)):
        raise FileNotFoundError(f"--data-path {data_path}: not a directory (expected the CIFAR-10 python batches "
                                "data_batch_1 … data_batch_5, test_batch)")
    return datasets.cifar10(data_path, **kw), source


def compute(small=False, seed=0, progress=False, data_path=None):
    """Train/test activations of both layers for one sample, readouts, test predictor.

    Returns
    -------
    dict
        ``source`` ("cifar" | "digits"), ``labels`` / ``labels_test``, ``train`` / ``test`` (lists of two
        (n_shown, P) activation arrays), ``readouts`` (n_shown, m), ``prediction_test`` (P_test, m) of the
        sample, ``Y_test``, ``train_accuracy`` / ``test_accuracy`` of the sample's predictor.
    """
    task, source = load_task(data_path, small, seed)
    sc = SCALES[source]["small" if small else "default"]
    C.log(progress, f"fig7: {source}, erf depth 2, P = {task.P}, N = {sc['N']}")
    s = C.sample_net(task, "erf", sc["N"], sc["steps"], depth=DEPTH, T=T, seed=seed, progress=progress, anneal=0.15)
    runs = {}
    C.record(runs, "erf", s, "all panels")
    phi = C.phi_of("erf")
    tr = [phi.phi(np.asarray(Z[-1], dtype=np.float64)) for Z in s.preactivations]
    te = [phi.phi(Z) for Z in C.new_input_preactivations(s, task, task.X_test, seed=seed)]
    a = s.readouts[-1]
    f_tr, f_te = tr[-1].T @ a / s.N, te[-1].T @ a / s.N
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(s.N, size=min(N_SHOWN, s.N), replace=False))
    return dict(source=source, N=s.N, P=task.P, T=T, labels=task.labels, labels_test=task.labels_test,
                train=[A[pick] for A in tr], test=[A[pick] for A in te], readouts=a[pick], Y_test=task.Y_test,
                prediction_test=f_te, train_accuracy=float(np.mean(np.argmax(f_tr, 1) == task.labels)),
                test_accuracy=float(np.mean(np.argmax(f_te, 1) == task.labels_test)), runs=runs["runs"])


def draw(data, out_dir):
    """Write ``fig7.png``; returns ``[path]``."""
    from ..analysis import activation_raster
    plt = C.pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(12, 7), gridspec_kw=dict(hspace=0.4, wspace=0.3))
    # neurons ordered by their second-layer training code, the same order in every panel
    r2 = activation_raster(data["train"][1], data["labels"], threshold=0.5)
    order = r2.neuron_order
    for col, l in enumerate((0, 1)):
        for row, (split, lab) in enumerate((("train", data["labels"]), ("test", data["labels_test"]))):
            io = np.argsort(lab, kind="stable")
            ax = axes[row, col]
            C.colorbar(ax, ax.imshow(data[split][l][order][:, io], aspect="auto", interpolation="nearest", vmin=0,
                                     vmax=1), "φ")
            for b in np.flatnonzero(np.diff(lab[io])) + 1:
                ax.axvline(b - 0.5, color="w", lw=0.4)
            ax.set_title(f"{'adbe'[2 * col + row]}  layer {l + 1}, {split} inputs", fontsize=9, loc="left")
            ax.set(xlabel="input (by class)", ylabel="neuron")
    ax = axes[0, 2]
    a = data["readouts"][order]
    lim = np.abs(a).max()
    C.colorbar(ax, ax.imshow(a, aspect="auto", interpolation="nearest", cmap="RdBu_r", vmin=-lim, vmax=lim), "$a_i^r$")
    ax.set_title("c  readout weights", fontsize=9, loc="left")
    ax.set(xlabel="class", ylabel="neuron")
    ax = axes[1, 2]
    io = np.argsort(data["labels_test"], kind="stable")
    ax.plot(data["prediction_test"][io, 0], color="0.5", lw=0.8, label="sample")
    ax.plot(data["Y_test"][io, 0], "k", lw=0.8, label="target")
    ax.set_title(f"f  class-0 predictor, test (acc. {data['test_accuracy']:.2f})", fontsize=9, loc="left")
    ax.set_xlabel("test input (by class)")
    ax.legend(fontsize=7)
    for ax in axes.ravel():
        C.small_axes(ax)
    C.mark_unhealthy(axes, data["runs"]["erf"])
    src = "CIFAR-10" if data["source"] == "cifar" else "digits (substitute for CIFAR-10)"
    fig.suptitle(f"Fig. 7 — L = 2 sigmoid, 10 classes, {src}: P = {data['P']}, N = {data['N']}, T = {data['T']} "
                 "(paper: CIFAR-10, P = 50 000, N = 1000)", fontsize=10)
    return [C.save(fig, out_dir, "fig7.png")]


def make(out_dir, small=False, seed=0, progress=True, data_path=None):
    """Compute and draw Figure 7 (CIFAR-10 from ``data_path``, else the digits substitute)."""
    return C.make_figure("7", compute, draw, out_dir, small, seed, progress, data_path=data_path)
