"""Figure 1 — lazy vs non-lazy: network sketch, feature space, kernels and activations.

Paper: one hidden layer, one output (m = 1), binary task (classes with probability ½,
targets ±1), N = P = 500, N0 = 510; panels c/e show the feature-layer kernel and the
activations for linear, sigmoid and ReLU networks in the lazy (c) and non-lazy (e) regime.

Here (default / ``small``): N = P = 150 / 40, N0 = P + 10, classes in ratio ½ : ½, y = ±1,
T = 0.01. Non-lazy: the exact-posterior sampler (sigmoid annealed from T = 0.15; ReLU started
in the theory's outlier state where the toy theory solves the task). Lazy: the lazy posterior
is the prior up to 1/N corrections (paper, Introduction), so its activations are a prior draw
and its kernel is the NNGP kernel (:func:`meanfield.gp.nngp_kernel`).
"""
from __future__ import annotations

import numpy as np

from . import common as C

SCALES = dict(default=dict(P=150, N=150, steps=dict(linear=300, erf=600, relu=300)),
              small=dict(P=40, N=40, steps=dict(linear=120, erf=240, relu=120)))
T = 0.01
N_RELU_SHOWN = 20


def binary_task(P, seed=0):
    """The paper's Fig. 1 task: orthogonal inputs (N0 = P + 10), two balanced classes, one output y = ±1."""
    from ..tasks import Task, toy_task
    t = toy_task(P, P + 10, ratios=(0.5, 0.5), y_plus=1.0, y_minus=-1.0, seed=seed)
    return Task(X=t.X, Y=t.Y[:, :1], labels=t.labels, name="binary toy")


def _nonlazy(task, nl, N, steps, seed, progress):
    sol = None
    if nl == "relu":          # outliers form and merge slowly from a prior draw: start where the theory is
        try:
            sol = C.try_solve(task, nl, T=T)
        except ValueError:
            sol = None
    anneal = 0.15 if nl == "erf" else None
    return C.sample_net(task, nl, N, steps, T=T, seed=seed, progress=progress, anneal=anneal,
                        init=C.start_from_theory(sol, N, seed))


def compute(small=False, seed=0, progress=False):
    """Samples (non-lazy) and prior draws (lazy) for the three nonlinearities.

    Returns
    -------
    dict
        ``labels``; per nonlinearity ``lazy`` / ``nonlazy`` dicts with ``activations`` (N, P),
        ``kernel`` (P, P) and, for the non-lazy samples, ``readouts`` and ``scheme``
        (:func:`meanfield.analysis.scheme_type` verdict and diagnostics).
    """
    from ..analysis import scheme_type
    from ..gp import nngp_kernel
    sc = SCALES["small" if small else "default"]
    task = binary_task(sc["P"], seed)
    rng = np.random.default_rng(seed)
    Z0 = rng.standard_normal((sc["N"], task.P)) @ np.linalg.cholesky(task.K0 + 1e-12 * np.eye(task.P)).T
    out = dict(labels=task.labels, scale=sc, T=T)
    for nl in C.NONLINEARITIES:
        phi = C.phi_of(nl)
        C.log(progress, f"fig1: {nl}")
        s = _nonlazy(task, nl, sc["N"], sc["steps"][nl], seed, progress)
        C.record(out, nl, s, f"non-lazy {C.LABEL[nl]} panels (e)")
        A = C.activations(s)
        verdict = scheme_type(C.activations(s, index=None), task.labels, s.readouts)
        out[nl] = dict(lazy=dict(activations=phi.phi(Z0), kernel=nngp_kernel(nl, task.X)),
                       nonlazy=dict(activations=A, kernel=s.kernel(1), readouts=s.readouts[-1],
                                    scheme=verdict, train_error=s.diagnostics.get("train_error")))
    return out


def _sketch_network(ax):
    """Panel a: two hidden layers, two outputs."""
    xs, sizes = [0, 1, 2, 3], [4, 6, 6, 2]
    pos = [[(x, y - (n - 1) / 2) for y in range(n)] for x, n in zip(xs, sizes)]
    for l in range(3):
        for p in pos[l]:
            for q in pos[l + 1]:
                ax.plot([p[0], q[0]], [p[1], q[1]], color="0.75", lw=0.4, zorder=1)
    for l, layer in enumerate(pos):
        ax.scatter(*zip(*layer), s=60, color=["C0", "C2", "C2", "C3"][l], zorder=2)
    for x, name in zip(xs, ["x", "z¹, φ", "z², φ", "f"]):
        ax.text(x, -3.8, name, ha="center", fontsize=8)
    ax.text(2.5, 3.3, "readout a / N", ha="center", fontsize=8)
    ax.set_xlim(-0.5, 3.5)
    ax.set_ylim(-4.3, 3.8)
    ax.axis("off")
    ax.set_title("a  network (L = 2, m = 2)", fontsize=9, loc="left")


def _sketch_features(ax, aligned, seed):
    """Panels b/d: feature vectors (grey) relative to the readout vector (black)."""
    rng = np.random.default_rng(seed)
    ang = rng.normal(0.0, 0.25, 12) if aligned else rng.uniform(0, 2 * np.pi, 12)
    ang = ang + (np.pi / 4 if aligned else 0.0)
    for a in ang:
        ax.annotate("", xy=(np.cos(a), np.sin(a)), xytext=(0, 0),
                    arrowprops=dict(arrowstyle="->", color="0.6", lw=0.8))
    ax.annotate("", xy=(1.2 * np.cos(np.pi / 4), 1.2 * np.sin(np.pi / 4)), xytext=(0, 0),
                arrowprops=dict(arrowstyle="->", color="k", lw=2))
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(("d  non-lazy: learned features aligned with a" if aligned
                  else "b  lazy: random features, nearly orthogonal to a"), fontsize=9, loc="left")


def draw(data, out_dir):
    """Write ``fig1.png`` to ``out_dir``; returns ``[path]``."""
    plt = C.pyplot()
    fig = plt.figure(figsize=(14, 7.6))
    gs = fig.add_gridspec(3, 6, height_ratios=[0.9, 1, 1], hspace=0.5, wspace=0.75, left=0.07, right=0.96,
                          top=0.9, bottom=0.08)
    _sketch_network(fig.add_subplot(gs[0, 0:2]))
    _sketch_features(fig.add_subplot(gs[0, 2:4]), False, 1)
    _sketch_features(fig.add_subplot(gs[0, 4:6]), True, 1)
    lab = data["labels"]
    for row, regime, tag in ((1, "lazy", "c"), (2, "nonlazy", "e")):
        for k, nl in enumerate(C.NONLINEARITIES):
            d = data[nl][regime]
            axk = fig.add_subplot(gs[row, 2 * k])
            C.draw_kernel(axk, d["kernel"], lab, f"{tag}  {C.LABEL[nl]}: kernel")
            A = d["activations"]
            if nl == "relu":
                A = A[C.most_active(A, N_RELU_SHOWN)]
            ax = fig.add_subplot(gs[row, 2 * k + 1])
            C.draw_raster(ax, A, lab, "activations" + (f" (top {N_RELU_SHOWN})" if nl == "relu" else ""))
            if k == 0:                       # the regime names the row
                axk.text(-0.12, 0.5, "lazy" if regime == "lazy" else "non-lazy", transform=axk.transAxes,
                         rotation=90, ha="right", va="center", fontsize=10, fontweight="bold")
            if regime == "nonlazy":
                axk.set_xlabel(f"scheme_type: {d['scheme'].scheme}", fontsize=8)
                C.mark_unhealthy([axk, ax], data["runs"][nl])
    sc = data["scale"]
    fig.suptitle(f"Fig. 1 — lazy vs non-lazy (binary task, N = P = {sc['N']}, T = {data['T']}; paper N = P = 500)",
                 fontsize=10)
    return [C.save(fig, out_dir, "fig1.png")]


def make(out_dir, small=False, seed=0, progress=True):
    """Compute and draw Figure 1; returns the written PNG paths."""
    return C.make_figure("1", compute, draw, out_dir, small, seed, progress)
