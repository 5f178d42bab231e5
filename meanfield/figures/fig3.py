"""Figure 3 — representations across the layers of three-hidden-layer networks (toy task).

Paper: L = 3, m = 3, ratios ½ : ¼ : ¼, y₊ = 1, y₋ = −½; linear and sigmoid N = P = 200, ReLU
N = P = 100. Panels a–c: activations of layers 1–3 for one weight sample; d–f: posterior-averaged
kernels of layers 1–3. Here the weight-space sampler at N = P = 80 by default (40 with ``small``),
T = 0.01; the sigmoid run is annealed from T = 0.15. Theory: the deep linear kernels
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
              small=dict(P=dict(linear=30, erf=30, relu=30), steps=dict(linear=60, erf=100, relu=60)))
ANNEAL = {"erf": 0.15}
THEORY = ("linear",)           # nonlinearities whose deep theory is overlaid
N_RELU_SHOWN = 9


def compute(small=False, seed=0, progress=False):
    """Per nonlinearity: activations of every layer (last sample), sampled and theory kernels.

    Returns
    -------
    dict
        Per nonlinearity: ``labels``, ``activations`` (list of L arrays (N, P)), ``kernels``
        (sampled, L arrays (P, P)), ``theory_kernels`` (list or None), ``kernel_task_alignment``
        (per layer: correlation of the sampled kernel with Y Yᵀ, off-diagonal entries).
    """
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
        YY = task.Y @ task.Y.T
        off = ~np.eye(P, dtype=bool)
        out[nl] = dict(labels=task.labels, N=s.N,
                       activations=[C.activations(s, layer=l) for l in range(DEPTH)],
                       kernels=[s.kernel(l) for l in range(1, DEPTH + 1)],
                       theory_kernels=None if sol is None else [sol.kernel(l) for l in range(1, DEPTH + 1)],
                       kernel_task_alignment=[float(np.corrcoef(s.kernel(l)[off], YY[off])[0, 1])
                                              for l in range(1, DEPTH + 1)])
    return out


def draw(data, out_dir):
    """Write ``fig3.png``; returns ``[path]``."""
    plt = C.pyplot()
    fig, axes = plt.subplots(3, 2 * DEPTH, figsize=(14, 7.4), gridspec_kw=dict(hspace=0.45, wspace=0.3))
    for row, nl in enumerate(C.NONLINEARITIES):
        d = data[nl]
        for l in range(DEPTH):
            A = d["activations"][l]
            if nl == "relu":
                A = A[C.most_active(A, N_RELU_SHOWN)]
            C.draw_raster(axes[row, l], A, d["labels"],
                          f"{'abc'[l]}  {C.LABEL[nl]} layer {l + 1}" + (" (top 9)" if nl == "relu" else ""))
            th = None if d["theory_kernels"] is None else d["theory_kernels"][l]
            C.draw_split_kernel(axes[row, DEPTH + l], d["kernels"][l], th, d["labels"],
                                f"{'def'[l]}  kernel layer {l + 1} (align {d['kernel_task_alignment'][l]:.2f})")
    N = [data[nl]["N"] for nl in C.NONLINEARITIES]
    fig.suptitle(f"Fig. 3 — three hidden layers, toy task (N = P = {N[0]}/{N[1]}/{N[2]}, T = {data['T']}; "
                 "paper 200/200/100)", fontsize=10)
    return [C.save(fig, out_dir, "fig3.png")]


def make(out_dir, small=False, seed=0, progress=True):
    """Compute and draw Figure 3; returns the written PNG paths."""
    out_dir, small, seed, progress = C.check_make_args(out_dir, small, seed, progress)
    return draw(compute(small, seed, progress), out_dir)
