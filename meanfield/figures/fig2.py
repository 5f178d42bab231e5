"""Figure 2 — coding schemes of one-hidden-layer networks on the toy task (linear, sigmoid, ReLU).

Paper: m = 3, classes in ratios ½ : ¼ : ¼; linear N = P = 200 (y₋ = 0), sigmoid N = P = 500
(y₋ = ½), ReLU N = P = 500 (y₋ = −½). Panels: a readout weights of one sample, b activations on
all training inputs, c network output of that sample. Here N = P = 200 (ReLU 100) by default,
40 (ReLU 30) with ``small``; T = 0.01. The sigmoid run is annealed from T = 0.15, the ReLU run starts in the
theory's outlier state; theory overlays: per-code readouts a_γ (sigmoid), outlier readouts √N ā
(ReLU), ±1 sd of the Gaussian readout posterior (linear), and the theory's mean predictor.
"""
from __future__ import annotations

import numpy as np

from . import common as C

Y_MINUS = {"linear": 0.0, "erf": 0.5, "relu": -0.5}
SCALES = dict(default=dict(P=dict(linear=200, erf=200, relu=100), steps=dict(linear=300, erf=600, relu=200)),
              small=dict(P=dict(linear=40, erf=40, relu=30), steps=dict(linear=80, erf=160, relu=60)))
T = 0.01
ANNEAL = {"erf": 0.15}
N_RELU_SHOWN = 9


def toy_run(nl, P, steps, seed=0, progress=False, thin=2):
    """Toy task (N = P, N0 = P + 20, the paper's y₋ for ``nl``), theory and samples.

    Returns ``(task, solution or None, samples)``; ReLU starts in the theory's state.
    """
    from ..tasks import toy_task
    task = toy_task(P, P + 20, y_minus=Y_MINUS[nl], seed=seed)
    sol = C.try_solve(task, nl, T=T, N=P if nl == "linear" else None)
    init = C.start_from_theory(sol, P, seed) if nl == "relu" else None
    s = C.sample_net(task, nl, P, steps, T=T, seed=seed, progress=progress, anneal=ANNEAL.get(nl), init=init,
                     thin=thin)
    return task, sol, s


def compute(small=False, seed=0, progress=False):
    """One sample (readouts, activations, output) per nonlinearity, with the theory's values.

    Returns
    -------
    dict
        Per nonlinearity: ``labels``, ``Y``, ``readouts`` (N, m), ``activations`` (N, P),
        ``output`` (P, m) of the last sample, ``theory_output`` (P, m) or None,
        ``theory_readouts`` (list of m-vectors: per code / outlier) or None, ``readout_sd``
        (linear: √diag U), ``scheme`` (scheme_type of all stored samples), ``code_fractions``.
    """
    from ..analysis import code_fractions, neuron_codes, scheme_type
    sc = SCALES["small" if small else "default"]
    out = dict(T=T, scale=sc)
    for nl in C.NONLINEARITIES:
        C.log(progress, f"fig2: {nl}")
        task, sol, s = toy_run(nl, sc["P"][nl], sc["steps"][nl], seed, progress)
        C.record(out, nl, s, f"{C.LABEL[nl]} row")
        A, a = C.activations(s), s.readouts[-1]
        d = dict(labels=task.labels, Y=task.Y, readouts=a, activations=A, output=A.T @ a / A.shape[0],
                 theory_output=None if sol is None else sol.train_prediction, theory_readouts=None,
                 readout_sd=None, scheme=scheme_type(C.activations(s, index=None), task.labels, s.readouts),
                 code_fractions=code_fractions(neuron_codes(A, task.labels)), N=s.N)
        if sol is not None and nl == "linear":
            d["readout_sd"] = np.sqrt(np.diag(sol.U))
        elif sol is not None and nl == "erf":
            d["theory_readouts"] = dict(zip(sol.codes, sol.readouts))
        elif sol is not None and sol.outliers is not None:
            d["theory_readouts"] = np.sqrt(s.N) * np.atleast_2d(sol.outliers["a_bar"])
        out[nl] = d
    return out


def _readout_panel(ax, d, order):
    """Readouts of the sample (neurons in raster order) with the theory's values dashed."""
    a = d["readouts"][order]
    for r in range(a.shape[1]):
        ax.plot(a[:, r], ".", ms=3, color=f"C{r}", label=f"class {r}")
    if d["readout_sd"] is not None:
        for r, sd in enumerate(d["readout_sd"]):
            ax.axhline(sd, color=f"C{r}", ls="--", lw=0.7)
            ax.axhline(-sd, color=f"C{r}", ls="--", lw=0.7)
    elif d["theory_readouts"] is not None:
        th = d["theory_readouts"]
        for av in (th.values() if isinstance(th, dict) else th):
            for v in av:
                ax.axhline(v, color="k", ls="--", lw=0.5)
    else:
        C.na(ax)
    ax.set_xlabel("neuron (as in b)", fontsize=8)
    ax.set_ylabel("readout $a_i^r$", fontsize=8)
    C.small_axes(ax)


def draw(data, out_dir):
    """Write ``fig2.png``; returns ``[path]``."""
    from ..analysis import activation_raster
    plt = C.pyplot()
    fig, axes = plt.subplots(3, 3, figsize=(11, 8.4), gridspec_kw=dict(hspace=0.5, wspace=0.3))
    for row, nl in enumerate(C.NONLINEARITIES):
        d = data[nl]
        A, lab = d["activations"], d["labels"]
        rows = C.most_active(A, N_RELU_SHOWN) if nl == "relu" else np.arange(A.shape[0])
        r = activation_raster(A[rows], lab)
        order = rows[r.neuron_order]
        _readout_panel(axes[row, 0], d, order)
        axes[row, 0].set_title(f"a  {C.LABEL[nl]}: readouts (dashed: theory)", fontsize=9, loc="left")
        C.draw_raster(axes[row, 1], r, None, f"b  activations — {d['scheme'].scheme} code"
                      + (f" (top {N_RELU_SHOWN})" if nl == "relu" else ""))
        ax = axes[row, 2]
        io = np.argsort(lab, kind="stable")
        for k in range(d["output"].shape[1]):
            ax.plot(d["output"][io, k], color=f"C{k}", lw=0.8, label=f"f_{k}")
            ax.plot(d["Y"][io, k], color=f"C{k}", lw=0.5, ls=":")
            if d["theory_output"] is not None:
                ax.plot(d["theory_output"][io, k], "k--", lw=0.5)
        if d["theory_output"] is None:
            C.na(ax)
        ax.set_title("c  output of this sample (dashed: theory)", fontsize=9, loc="left")
        ax.set_xlabel("input (by class)", fontsize=8)
        C.small_axes(ax)
        if row == 0:
            ax.legend(fontsize=7, loc="center right")
            axes[row, 0].legend(fontsize=7, markerscale=2)
        C.mark_unhealthy(axes[row], data["runs"][nl])
    P = {nl: data[nl]["N"] for nl in C.NONLINEARITIES}
    fig.suptitle(f"Fig. 2 — feature-layer coding schemes, toy task (N = P = {P['linear']}/{P['erf']}/{P['relu']}, "
                 f"T = {data['T']}; paper 200/500/500)", fontsize=10)
    return [C.save(fig, out_dir, "fig2.png")]


def make(out_dir, small=False, seed=0, progress=True):
    """Compute and draw Figure 2; returns the written PNG paths."""
    return C.make_figure("2", compute, draw, out_dir, small, seed, progress)
