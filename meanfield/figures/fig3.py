"""Figure 3 — representations across the layers of three-hidden-layer networks (toy task).

Paper: L = 3, m = 3, ratios ½ : ¼ : ¼, y₊ = 1, y₋ = −½; linear and sigmoid N = P = 200, ReLU
N = P = 100. Panels a–c: activations of layers 1–3 for one weight sample; d–f: posterior-averaged
kernels of layers 1–3. Here the weight-space sampler at N = P = 80 / 80 / 60 by default (30 / 40 / 30
with ``small``), T = 0.01. The sigmoid run is annealed from T = 0.03, just above the temperature where
its codes freeze: from T = 0.15 the chain passes through a state with classes 1 and 2 merged (two
codes per deeper layer) and freezes there — training error 0.19 ≈ 19 T, nearest-target accuracy ¾ at
the default scale — instead of the paper's six codes per layer (every one- and two-class code for
y₋ = −½), which the anneal from 0.03 reaches (docs/figures.md). Theory: the deep linear kernels
(``mf.solve(task, "linear", depth=3)``) are drawn below the diagonal of the sampled ones; the deep
sigmoid and ReLU theories are not used here (samples only, marked "theory: n/a"); add a name to
``THEORY`` to overlay a deep solver once :func:`meanfield.solve` provides one.
"""
from __future__ import annotations

import numpy as np

from . import common as C

DEPTH = 3
Y_MINUS = -0.5
T = 0.01
SCALES = dict(default=dict(P=dict(linear=80, erf=80, relu=60), steps=dict(linear=200, erf=300, relu=200)),
              small=dict(P=dict(linear=30, erf=40, relu=30), steps=dict(linear=60, erf=120, relu=60)))
ANNEAL = {"erf": 0.03}         # from 0.15 the sigmoid network freezes with classes 1 and 2 merged (module doc)
MIN_CODE_FRACTION = 0.01       # codes held by fewer neurons (over all stored samples) are not counted
THEORY = ("linear",)           # nonlinearities whose deep theory is overlaid
N_RELU_SHOWN = 9


def compute(small=False, seed=0, progress=False):
    """Per nonlinearity: activations of every layer (last sample), sampled and theory kernels.

    Returns
    -------
    dict
        Per nonlinearity: ``labels``, ``activations`` (list of L arrays (N, P)), ``kernels``
        (sampled, L arrays (P, P)), ``theory_kernels`` (list or None), ``kernel_task_alignment``
        (per layer: correlation of the sampled kernel with Y Yᵀ, off-diagonal entries); sigmoid only (else
        None): ``code_fractions`` (per layer, over all stored samples; :func:`meanfield.analysis.code_fractions`)
        and ``n_codes`` (per layer, codes held by ≥ ``MIN_CODE_FRACTION`` of the neurons). ``runs``: the
        health of each nonlinearity's run (:func:`common.record`).
    """
    from ..analysis import code_fractions, neuron_codes
    from ..tasks import toy_task
    sc = SCALES["small" if small else "default"]
    out = dict(T=T, scale=sc)
    for nl in C.NONLINEARITIES:
        C.log(progress, f"fig3: {nl}")
        P = sc["P"][nl]
        task = toy_task(P, P + 20, y_minus=Y_MINUS, seed=seed)
        sol = C.try_solve(task, nl, depth=DEPTH, T=T) if nl in THEORY else None
        s = C.sample_net(task, nl, P, sc["steps"][nl], depth=DEPTH, T=T, seed=seed, progress=progress,
                         anneal=ANNEAL.get(nl))
        C.record(out, nl, s, f"{C.LABEL[nl]} row")
        YY = task.Y @ task.Y.T
        off = ~np.eye(P, dtype=bool)
        fr = n_codes = None
        if nl == "erf":                   # codes of the bounded φ only
            fr = [code_fractions(neuron_codes(C.activations(s, layer=l, index=None), task.labels))
                  for l in range(DEPTH)]
            n_codes = [int(sum(p >= MIN_CODE_FRACTION for p in f.values())) for f in fr]
            C.log(progress, f"fig3: {C.LABEL[nl]} codes per layer (≥ {MIN_CODE_FRACTION:.0%} of the neurons): "
                  + " / ".join(map(str, n_codes)))
        out[nl] = dict(labels=task.labels, N=s.N, code_fractions=fr, n_codes=n_codes,
                       activations=[C.activations(s, layer=l) for l in range(DEPTH)],
                       kernels=[s.kernel(l) for l in range(1, DEPTH + 1)],
                       theory_kernels=None if sol is None else [sol.kernel(l) for l in range(1, DEPTH + 1)],
                       kernel_task_alignment=[float(np.corrcoef(s.kernel(l)[off], YY[off])[0, 1])
                                              for l in range(1, DEPTH + 1)])
    return out


def draw(data, out_dir):
    """Write ``fig3.png``; returns ``[path]``."""
    plt = C.pyplot()
    fig, axes = plt.subplots(3, 2 * DEPTH, figsize=(16, 7.6), gridspec_kw=dict(hspace=0.45, wspace=0.5))
    fig.subplots_adjust(left=0.04, right=0.96, top=0.9, bottom=0.07)
    for row, nl in enumerate(C.NONLINEARITIES):
        d = data[nl]
        for l in range(DEPTH):
            A = d["activations"][l]
            if nl == "relu":
                A = A[C.most_active(A, N_RELU_SHOWN)]
            note = {"relu": f" (top {N_RELU_SHOWN})", "erf": f": {d['n_codes'][l]} codes" if d["n_codes"] else ""}
            C.draw_raster(axes[row, l], A, d["labels"], f"{'abc'[l]}  {C.LABEL[nl]} layer {l + 1}" + note.get(nl, ""))
            th = None if d["theory_kernels"] is None else d["theory_kernels"][l]
            C.draw_split_kernel(axes[row, DEPTH + l], d["kernels"][l], th, d["labels"],
                                f"{'def'[l]}  kernel layer {l + 1} (align {d['kernel_task_alignment'][l]:.2f})")
        C.mark_unhealthy(axes[row], data["runs"][nl])
    N = [data[nl]["N"] for nl in C.NONLINEARITIES]
    fig.suptitle(f"Fig. 3 — three hidden layers, toy task (N = P = {N[0]}/{N[1]}/{N[2]}, T = {data['T']}; "
                 "paper 200/200/100)", fontsize=10)
    return [C.save(fig, out_dir, "fig3.png")]


def make(out_dir, small=False, seed=0, progress=True):
    """Compute and draw Figure 3; returns the written PNG paths."""
    return C.make_figure("3", compute, draw, out_dir, small, seed, progress)
