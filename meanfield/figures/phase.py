"""Phase diagram of the sigmoid coding scheme over (y₋, T), theory map with sampler points.

Theory: ``mf.solve(toy_task(P, P + 20, y_minus=y₋), "erf", T=T)`` (finite-P Laplace) on a grid,
through :func:`meanfield.sweeps.scheme_sweep` (one y₋ sweep per T row). Each point is classified
by its codes with fraction ≥ 1 % (:func:`scheme_label`): "pairs" (the redundant code 1-1-0, 1-0-1,
0-1-1), "pairs + 1-1-1", "pairs + 1-0-0", "1-1-1 only" (no class information: above the critical
temperature), or "other". Left: the 1-1-1 fraction; right: the scheme class. Sampler points
(annealed from max(0.15, 1.5 T), preactivation space, :func:`scheme_sweep` with ``N``) are
drawn on top in the same colours. Default P = N = 100 on a 6 × 6 grid with 3 × 2 sampler points;
``small``: P = 40 on 2 × 2 with one sampler point. Axes are the grid indices (ticks: values).
Sampler points are where the posterior-mean network classifies its training inputs (run health,
docs/figures.md): at y₋ = 0.6, T = 0.06 it does not (nearest-target accuracy ½, and the theory's
predictor neither — the targets y₊ = 1, y₋ = 0.6 are closer than the O(T) shrinkage of the output), so
the sampler points are at y₋ = 0.2, 0.4, 0.5.
"""
from __future__ import annotations

import numpy as np

from . import common as C

SCALES = dict(default=dict(P=100, y=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], T=[0.01, 0.02, 0.04, 0.06, 0.08, 0.1],
                           sample_y=[0.2, 0.4, 0.5], sample_T=[0.02, 0.06], steps=800),
              small=dict(P=40, y=[0.3, 0.5], T=[0.01, 0.04], sample_y=[0.5], sample_T=[0.04], steps=200))
MIN_FRACTION = 0.01
CLASSES = ("pairs", "pairs + 1-1-1", "pairs + 1-0-0", "1-1-1 only", "other")


def scheme_label(fractions, min_fraction=MIN_FRACTION):
    """Scheme class of a ``{code: fraction}`` table (codes below ``min_fraction`` ignored)."""
    present = {c for c, p in fractions.items() if p >= min_fraction}
    pairs = {(1, 1, 0), (1, 0, 1), (0, 1, 1)}
    if present == {(1, 1, 1)}:
        return "1-1-1 only"
    if not pairs <= present:
        return "other"
    rest = present - pairs
    return {frozenset(): "pairs", frozenset({(1, 1, 1)}): "pairs + 1-1-1",
            frozenset({(1, 0, 0)}): "pairs + 1-0-0"}.get(frozenset(rest), "other")


def compute(small=False, seed=0, progress=False):
    """Theory grid and sampler points.

    Returns
    -------
    dict
        ``y``, ``T`` (grid axes), ``f111`` (len(T), len(y)) theory 1-1-1 fraction, ``label`` (same
        shape, str), ``n_codes``, ``converged``; ``samples``: list of dicts (``y_minus``, ``T``,
        ``f111``, ``label``, ``switching_neurons``, ``run``: the run's health, :func:`common.run_record`);
        ``runs``: the same records by point.
    """
    from ..sweeps import scheme_sweep
    sc = SCALES["small" if small else "default"]
    ys, Ts = [float(v) for v in sc["y"]], [float(v) for v in sc["T"]]
    f111 = np.zeros((len(Ts), len(ys)))
    label = np.empty((len(Ts), len(ys)), dtype=object)
    n_codes = np.zeros((len(Ts), len(ys)), dtype=int)
    conv = np.zeros((len(Ts), len(ys)), dtype=bool)
    for i, T in enumerate(Ts):
        C.log(progress, f"phase: theory row T = {T}")
        for j, r in enumerate(scheme_sweep("y_minus", ys, T=T, P=sc["P"])):
            f111[i, j] = r["theory"].get((1, 1, 1), 0.0)
            label[i, j] = scheme_label(r["theory"])
            n_codes[i, j] = sum(p >= MIN_FRACTION for p in r["theory"].values())
            conv[i, j] = r["converged"]
    samples, runs = [], {}
    for T in sc["sample_T"]:
        C.log(progress, f"phase: sampler row T = {T}")
        for r in scheme_sweep("y_minus", sc["sample_y"], T=T, P=sc["P"], N=sc["P"], steps=sc["steps"], seed=seed,
                              progress=progress):
            key = f"y₋ = {r['y_minus']:g}, T = {r['T']:g}"
            runs[key] = C.run_record(f"sampler point {key}", r["health"], r["train_error"], T=r["T"], N=r["N"],
                                     nonlinearity="erf")
            samples.append(dict(y_minus=r["y_minus"], T=r["T"], f111=r["sampler"].get((1, 1, 1), 0.0),
                                label=scheme_label(r["sampler"]), theory_label=scheme_label(r["theory"]),
                                switching_neurons=r["switching_neurons"], run=runs[key]))
    return dict(y=np.array(ys), T=np.array(Ts), f111=f111, label=label, n_codes=n_codes, converged=conv,
                samples=samples, P=sc["P"], runs=runs)


def draw(data, out_dir):
    """Write ``phase.png``; returns ``[path]``."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw=dict(wspace=0.3))
    y, T = data["y"], data["T"]
    ext = [-0.5, y.size - 0.5, -0.5, T.size - 0.5]
    im = axes[0].imshow(data["f111"], origin="lower", aspect="auto", extent=ext, cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(im, ax=axes[0], label="1-1-1 fraction")
    cls = np.vectorize(CLASSES.index)(data["label"])
    cols = ["#4c72b0", "#55a868", "#c44e52", "#8c8c8c", "#dd8452"]
    axes[1].imshow(cls, origin="lower", aspect="auto", extent=ext, cmap=ListedColormap(cols), vmin=-0.5,
                   vmax=len(CLASSES) - 0.5)
    for i in range(T.size):
        for j in range(y.size):
            if not data["converged"][i, j]:
                axes[1].text(j, i, "×", ha="center", va="center", fontsize=9, color="w")
    for s in data["samples"]:
        xx, yy = np.interp(s["y_minus"], y, np.arange(y.size)), np.interp(s["T"], T, np.arange(T.size))
        axes[0].scatter(xx, yy, c=[s["f111"]], cmap="viridis", vmin=0, vmax=1, s=140, edgecolors="w",
                        linewidths=1.5)
        axes[1].scatter(xx, yy, color=cols[CLASSES.index(s["label"])], s=140, edgecolors="w", linewidths=1.5)
        if not s["run"]["ok"]:           # a sampler point from an unhealthy run: red ring and label
            for ax in axes:
                ax.scatter(xx, yy, s=320, facecolors="none", edgecolors="red", linewidths=2.5)
                ax.annotate(C.mark_text(s["run"]), (xx, yy), xytext=(0, 14), textcoords="offset points",
                            ha="center", fontsize=7, color="red", fontweight="bold")
    for ax in axes:
        ax.set_xticks(np.arange(y.size), [f"{v:g}" for v in y])
        ax.set_yticks(np.arange(T.size), [f"{t:g}" for t in T])
        ax.set(xlabel="y₋", ylabel="T")
    axes[0].set_title("1-1-1 fraction: theory (map), sampler (circles)", fontsize=9)
    axes[1].set_title("coding scheme: theory (map, × unconverged), sampler (circles)", fontsize=9)
    axes[1].legend(handles=[Patch(color=c, label=n) for c, n in zip(cols, CLASSES)], fontsize=7,
                   loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"Sigmoid coding-scheme phase diagram, toy task P = N = {data['P']} (codes ≥ {MIN_FRACTION:.0%})",
                 fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.86, bottom=0.12)
    return [C.save(fig, out_dir, "phase.png")]


def make(out_dir, small=False, seed=0, progress=True):
    """Compute and draw the phase diagram; returns the written PNG paths."""
    return C.make_figure("phase", compute, draw, out_dir, small, seed, progress)
