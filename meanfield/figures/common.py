"""Shared helpers of the paper figures: arguments, Agg plotting, sampling, theory, new inputs.

Every figure module exposes ``compute(small, seed, progress) -> dict`` (the numbers behind the
figure), ``draw(data, out_dir) -> list[Path]`` and ``make(out_dir, small, seed, progress)``, the
two in a row. Sampler runs here are deliberately short (N, P ≤ 200, a few hundred transitions):
the figures show the paper's structures at CPU scale; the quantitative agreement studies live
in ``docs/`` and the benchmarks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .._validation import check_int, check_output_dir

NONLINEARITIES = ("linear", "erf", "relu")
LABEL = {"linear": "linear", "erf": "sigmoid", "relu": "ReLU"}
NA_TEXT = "theory: n/a"


# ----------------------------------------------------------------------------- arguments, files
def check_make_args(out_dir, small, seed, progress):
    """Validate the common ``make`` arguments; returns ``(Path(out_dir), bool(small), seed, progress)``.

    ``out_dir`` is created if missing and must be writable (checked here, before any computation).
    """
    if not isinstance(small, (bool, np.bool_)):
        raise TypeError(f"small must be a bool, got {small!r}")
    seed = check_int(seed, "seed", minimum=0)
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be a bool or None, got {progress!r}")
    return Path(check_output_dir(out_dir, "out_dir", create=True)), bool(small), seed, progress


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, out_dir, name, dpi=80):
    """Write ``fig`` to ``out_dir/name`` (PNG), close it and return the path."""
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def log(progress, msg):
    """Print a progress line when ``progress`` is true."""
    if progress:
        print(f"[meanfield figure] {msg}", flush=True)


# ----------------------------------------------------------------------------- theory and sampling
def try_solve(task, nonlinearity, **kw):
    """``mf.solve`` or ``None`` where the theory is not available (NotImplementedError).

    Once a solver lands for the case (e.g. sigmoid networks on general data), it is used
    automatically: nothing here special-cases which theories exist.
    """
    from ..theory import solve
    try:
        return solve(task, nonlinearity, **kw)
    except NotImplementedError:
        return None


def sample_net(task, nonlinearity, N, steps, *, depth=1, T=0.01, seed=0, progress=False, anneal=None,
               init=None, thin=2):
    """Posterior samples of a finite network (preactivation space for depth 1, weight space otherwise)."""
    from ..sampling import sample
    space = "preactivation" if depth == 1 else "weight"
    return sample(task, nonlinearity, N, depth=depth, T=T, steps=steps, seed=seed, space=space, thin=thin,
                  anneal=anneal, init=init, progress=bool(progress))


def start_from_theory(sol, N, seed=0):
    """A ``theory_start`` state for coded (sigmoid / ReLU) solutions, else ``None`` (prior draw)."""
    from ..sampling import theory_start
    if sol is None or sol.codes is None or not sol.converged:
        return None
    try:
        return theory_start(sol, N, seed=seed)
    except (ValueError, NotImplementedError):
        return None


def phi_of(name):
    """The nonlinearity object for ``name``."""
    from ..nonlinearities import nonlinearity
    return nonlinearity(name)


def activations(samples, layer=-1, index=-1):
    """φ of the stored preactivations of ``layer`` at sample ``index`` (``None``: all), float64."""
    Z = np.asarray(samples.preactivations[layer] if index is None else samples.preactivations[layer][index],
                   dtype=np.float64)
    return phi_of(samples.config["nonlinearity"]).phi(Z)


def most_active(A, k):
    """Indices of the ``k`` neurons (rows of A, (N, P)) with the largest mean squared activation."""
    return np.argsort(-np.mean(np.asarray(A) ** 2, axis=-1), kind="stable")[:k]


# ----------------------------------------------------------------------------- new inputs
def new_input_preactivations(samples, task, X_new, index=-1, seed=0):
    """Preactivations of every layer on new inputs for one stored sample, drawn layer by layer.

    Exact for the sampled posterior: given a layer's input activations, the weights enter the
    likelihood only through the training preactivations, so the new preactivations are their
    Gaussian conditional (the construction :func:`meanfield.predict_samples` uses for layer 1),
    drawn jointly over the new inputs (their conditional covariance, not only its diagonal: the
    kernel between two new inputs depends on it).

    Returns
    -------
    list of ndarray (N, Q)
    """
    from ..sampling.predict import conditional_covariance, conditional_map
    rng = np.random.default_rng(seed)
    phi = phi_of(samples.config["nonlinearity"])
    H_tr, H_new, width, out = task.X, np.asarray(X_new, dtype=np.float64), task.N0, []
    for Z in samples.preactivations:
        Zt = np.asarray(Z[index], dtype=np.float64)                  # (N, P)
        B, _ = conditional_map(H_tr, H_new, width)
        d, V = np.linalg.eigh(conditional_covariance(H_tr, H_new, H_new, width))   # joint over the new inputs
        Zn = Zt @ B.T + (rng.standard_normal((Zt.shape[0], B.shape[0])) * np.sqrt(np.maximum(d, 0.0))) @ V.T
        out.append(Zn)
        H_tr, H_new, width = phi.phi(Zt), phi.phi(Zn), Zt.shape[0]
    return out


# ----------------------------------------------------------------------------- drawing
def draw_raster(ax, A, labels, title, *, cmap=None, threshold=None, vmin=None, vmax=None):
    """Activation raster (neurons by code, inputs by class) via :func:`meanfield.analysis.plot_raster`."""
    from ..analysis import plot_raster
    kw = {} if vmin is None else dict(vmin=vmin, vmax=vmax)
    r = plot_raster(ax, A, labels, threshold=threshold, cmap=cmap or "viridis", **kw)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("input (by class)", fontsize=8)
    ax.set_ylabel("neuron", fontsize=8)
    ax.tick_params(labelsize=7)
    return r


def draw_kernel(ax, K, labels, title, cmap="magma"):
    """Kernel matrix with inputs sorted by class and white class boundaries."""
    order = np.argsort(labels, kind="stable")
    ax.imshow(np.asarray(K)[np.ix_(order, order)], cmap=cmap, interpolation="nearest")
    for b in np.flatnonzero(np.diff(np.asarray(labels)[order])) + 1:
        ax.axvline(b - 0.5, color="w", lw=0.6)
        ax.axhline(b - 0.5, color="w", lw=0.6)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_split_kernel(ax, K_samples, K_theory, labels, title):
    """Sampled kernel above the diagonal, theory below (theory ``None``: sampled only, marked n/a)."""
    K = np.array(K_samples, dtype=np.float64)
    if K_theory is not None:
        low = np.tril_indices_from(K, -1)
        K[low] = np.asarray(K_theory)[low]
    draw_kernel(ax, K, labels, title)
    note = "upper: samples, lower: theory" if K_theory is not None else f"samples; {NA_TEXT}"
    ax.text(0.02, -0.04, note, transform=ax.transAxes, fontsize=7, va="top")


def na(ax, text=NA_TEXT):
    """Mark a panel whose theory is not available."""
    ax.text(0.98, 0.02, text, transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="0.3")


def small_axes(ax, fontsize=7):
    """Compact tick labels."""
    ax.tick_params(labelsize=fontsize)


def thumbnail(src, dst, width=900, max_bytes=100_000):
    """Downscaled, palette-quantized copy of a PNG (README thumbnails, ≤ ``max_bytes`` when possible).

    Uses Pillow (a matplotlib dependency). The width is reduced in steps of 15 % until the file
    fits; returns the path written.
    """
    from PIL import Image
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        im = im.convert("RGB")
        w = min(width, im.width)
        while True:
            small = im.resize((w, round(im.height * w / im.width)), Image.LANCZOS)
            small.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)
            if dst.stat().st_size <= max_bytes or w < 300:
                return dst
            w = int(w * 0.85)
