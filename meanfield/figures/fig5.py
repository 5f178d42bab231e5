"""Figure 5 — lower-layer code switching in a two-hidden-layer sigmoid network.

Paper: L = 2, m = 3, N = P = 500, N0 = 520, ratios ½ : ¼ : ¼, y₊ = 1, y₋ = ½. Panels: a
preactivation dynamics of selected first-layer neurons on the first training input; b, c
activations of all first-layer neurons at the first and last weight sample (same neuron order);
d the last sample reordered by code. Here N = P = 80 by default (30 with ``small``), T = 0.01,
weight-space sampler annealed from T = 0.15. Added panel e: code switches per layer
(:func:`meanfield.analysis.code_switching`): first-layer neurons keep switching codes while the
feature layer is frozen (paper, "Weight space dynamics"). Samples only (the deep sigmoid theory
is not used here).
"""
from __future__ import annotations

import numpy as np

from . import common as C

DEPTH = 2
Y_MINUS = 0.5
T = 0.01
SCALES = dict(default=dict(P=80, steps=400), small=dict(P=30, steps=160))
N_TRACE = 4


def compute(small=False, seed=0, progress=False):
    """Sampled first-layer dynamics and per-layer code switching.

    Returns
    -------
    dict
        ``labels``; ``z1_first_input`` (S, N) first-layer preactivations on input 0;
        ``act1_first`` / ``act1_last`` (N, P) first-layer activations at the first / last stored
        sample; ``switching`` (list per layer of :func:`code_switching` dicts); ``selected`` neurons.
    """
    from ..analysis import code_switching, neuron_codes
    from ..tasks import toy_task
    sc = SCALES["small" if small else "default"]
    task = toy_task(sc["P"], sc["P"] + 20, y_minus=Y_MINUS, seed=seed)
    C.log(progress, "fig5: erf, depth 2")
    s = C.sample_net(task, "erf", sc["P"], sc["steps"], depth=DEPTH, T=T, seed=seed, progress=progress,
                     anneal=0.15)
    runs = {}
    C.record(runs, "erf", s, "all panels")
    phi = C.phi_of("erf")
    acts = [phi.phi(np.asarray(Z, dtype=np.float64)) for Z in s.preactivations]
    switching = [code_switching(neuron_codes(A, task.labels)) for A in acts]
    per = switching[0]["per_neuron"]
    selected = list(np.argsort(-per, kind="stable")[:N_TRACE])
    return dict(labels=task.labels, N=s.N, T=T, z1_first_input=np.asarray(s.preactivations[0][:, :, 0]),
                act1_first=acts[0][0], act1_last=acts[0][-1], switching=switching, selected=selected,
                n_samples=acts[0].shape[0], runs=runs["runs"])


def draw(data, out_dir):
    """Write ``fig5.png``; returns ``[path]``."""
    from ..analysis import activation_raster
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.6), gridspec_kw=dict(wspace=0.45))
    for k, i in enumerate(data["selected"]):
        axes[0].plot(data["z1_first_input"][:, i], lw=0.8, color=f"C{k}")
    axes[0].set(xlabel="stored sample", ylabel="preactivation $z^1_i(x_1)$")
    axes[0].set_title("a  first-layer preact. dynamics", fontsize=9, loc="left")
    lab = data["labels"]
    first = activation_raster(data["act1_first"], lab, threshold=0.5)
    io = first.input_order
    for ax, A, t in ((axes[1], data["act1_first"], "b  layer 1, first sample"),
                     (axes[2], data["act1_last"], "c  layer 1, last sample (order of b)")):
        im = ax.imshow(A[first.neuron_order][:, io], aspect="auto", interpolation="nearest", vmin=0, vmax=1)
        C.colorbar(ax, im, "φ")
        ax.set_title(t, fontsize=9, loc="left")
        ax.set(xlabel="input (by class)", ylabel="neuron")
    C.draw_raster(axes[3], data["act1_last"], lab, "d  last sample, reordered", threshold=0.5, vmin=0, vmax=1)
    sw = data["switching"]
    x = np.arange(len(sw))
    axes[4].bar(x, [w["switching_neurons"] / data["N"] for w in sw], color=["C0", "C1"])
    for k, w in enumerate(sw):
        axes[4].text(k, w["switching_neurons"] / data["N"], f"{w['switches']} switches", ha="center",
                     va="bottom", fontsize=8)
    axes[4].set_xticks(x, [f"layer {k + 1}" for k in x])
    axes[4].set_ylim(0, 1.1)
    axes[4].set_ylabel("fraction of neurons that switched code")
    axes[4].set_title(f"e  code switches over {data['n_samples']} samples", fontsize=9, loc="left")
    for ax in axes:
        C.small_axes(ax)
    fig.suptitle(f"Fig. 5 — two-hidden-layer sigmoid network (N = P = {data['N']}, T = {data['T']}; "
                 "paper 500)", fontsize=10)
    fig.subplots_adjust(top=0.82, bottom=0.16, left=0.05, right=0.98)
    C.mark_unhealthy(axes, data["runs"]["erf"])
    return [C.save(fig, out_dir, "fig5.png")]


def make(out_dir, small=False, seed=0, progress=True):
    """Compute and draw Figure 5; returns the written PNG paths."""
    return C.make_figure("5", compute, draw, out_dir, small, seed, progress)
