"""Shared helpers of the paper figures: arguments, Agg plotting, sampling, theory, new inputs.

Every figure module exposes ``compute(small, seed, progress) -> dict`` (the numbers behind the
figure), ``draw(data, out_dir) -> list[Path]`` and ``make(out_dir, small, seed, progress)``, the
two in a row (:func:`make_figure`). Sampler runs here are deliberately short (N, P ≤ 200, a few
hundred transitions): the figures show the paper's structures at CPU scale; the quantitative
agreement studies live in ``docs/`` and the benchmarks.

Figures only from networks that learned: every sampler run behind a panel is recorded in
``data["runs"]`` (:func:`record`: its ``Samples.health``, training error and nearest-target training
accuracy). A panel whose run is not healthy is drawn marked in red (:func:`mark_unhealthy`), and
:func:`make_figure` raises :class:`NotLearnedError` after writing the PNG, naming the panels, their
problems and what to change (``meanfield figure`` exits with status 3). docs/figures.md, "Runs that
did not learn", states the policy.
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


# ----------------------------------------------------------------------------- run health
FIT_CHECKS = ("train_accuracy", "train_error/T")      # the Samples.health checks that say "did not learn"
EXIT_STATUS = 3                                        # `meanfield figure` with a marked panel (as `sample`)


class NotLearnedError(RuntimeError):
    """A figure was written, but some of its panels come from sampler runs that failed their health checks.

    Those panels are marked in red in the PNG. Attributes: ``figure`` (name), ``paths`` (the PNGs
    written), ``runs`` (the failing run records of :func:`record`).
    """

    def __init__(self, figure, paths, runs):
        self.figure, self.paths, self.runs = figure, list(paths), list(runs)
        super().__init__(not_learned_message(figure, self.paths, self.runs))


def run_record(panel, health, train_error, *, T, N, nonlinearity, depth=1):
    """The health of one sampler run behind a panel, as plain data (see :func:`record`).

    Parameters
    ----------
    panel : str
        Which panels of the figure the run is behind ("sigmoid row").
    health : meanfield.sampling.health.Health or None
        ``Samples.health`` of the run (None: not recorded, counted as unhealthy).
    train_error : float or None
        Mean training error |Y − f|²/(Pm) of the production run (None: from the health check).
    T, N, nonlinearity, depth :
        The run's temperature, width, φ and number of hidden layers.

    Returns
    -------
    dict
        ``panel``, ``nonlinearity``, ``depth``, ``N``, ``T``, ``train_error``, ``train_accuracy``
        (nearest-target accuracy of the posterior-mean predictor), ``ok`` (every check passed),
        ``learned`` (the fit checks :data:`FIT_CHECKS` passed), ``problems`` (sentences naming value
        and threshold), ``failed`` (names of the failed checks), ``checks`` (name → value).
    """
    checks = {} if health is None else {c.name: float(c.value) for c in health.checks}
    if train_error is None and "train_error/T" in checks:
        train_error = checks["train_error/T"] * T
    problems = ["run health not recorded (samples from before Samples.health)"] if health is None \
        else list(health.problems)
    failed = set() if health is None else {c.name for c in health.checks if not c.ok}
    return dict(panel=panel, nonlinearity=nonlinearity, depth=int(depth), N=int(N), T=float(T),
                train_error=None if train_error is None else float(train_error),
                train_accuracy=checks.get("train_accuracy"), ok=health is not None and health.ok,
                learned=health is not None and not failed & set(FIT_CHECKS), problems=problems,
                failed=sorted(failed), checks=checks)


def record(data, key, samples, panel):
    """Record the health of ``samples`` (the run behind ``panel``) in ``data["runs"][key]``; returns it."""
    c = samples.config
    rec = run_record(panel, samples.health, samples.diagnostics.get("train_error"), T=c["T"], N=c["N"],
                     nonlinearity=c["nonlinearity"], depth=c["depth"])
    data.setdefault("runs", {})[key] = rec
    return rec


def unhealthy_runs(data):
    """The run records of ``data`` whose run is not healthy."""
    return [r for r in data.get("runs", {}).values() if not r["ok"]]


def _error_text(rec):
    """``"train error 0.0058 = 0.58 T"`` (empty when not recorded)."""
    e = rec["train_error"]
    return "" if e is None else f"train error {e:.3g} = {e / rec['T']:.3g} T"


def run_summary(rec):
    """One line: ``"sigmoid row: healthy, train error 0.0058 = 0.58 T, accuracy 1.00"``."""
    state = ("healthy" if rec["ok"] else "NOT LEARNED" if not rec["learned"]
             else "UNHEALTHY (" + ", ".join(rec["failed"]) + ")")
    acc = None if rec["train_accuracy"] is None else f"accuracy {rec['train_accuracy']:.2f}"
    return f"{rec['panel']}: " + ", ".join(x for x in (state, _error_text(rec), acc) if x)


def mark_text(rec):
    """Overlay text of a panel whose run is not healthy (None if it is)."""
    if rec["ok"]:
        return None
    if rec["learned"]:
        return "UNHEALTHY RUN: " + ", ".join(rec["failed"])
    bits = [_error_text(rec)] if rec["train_error"] is not None else []
    if rec["train_accuracy"] is not None:
        bits.append(f"accuracy {rec['train_accuracy']:.2f}")
    return "NOT LEARNED: " + ", ".join(bits)


def mark_unhealthy(axes, rec):
    """Mark the axes of a panel whose run is not healthy: red frame, red overlay text; no-op if healthy."""
    text = mark_text(rec)
    if text is None:
        return
    axes = list(np.ravel(axes))
    for k, ax in enumerate(axes):
        for sp in ax.spines.values():
            sp.set(color="red", linewidth=2.5, visible=True)
        head, _, detail = text.partition(": ")
        ax.text(0.5, 0.5, head + ("\n" + detail.replace(", ", "\n") if k == 0 else ""), transform=ax.transAxes,
                ha="center", va="center", color="red", fontsize=8 if k == 0 else 10, fontweight="bold", zorder=10,
                bbox=dict(facecolor="white", alpha=0.85, edgecolor="red"))


def not_learned_message(figure, paths, runs):
    """What :class:`NotLearnedError` says: the PNGs, each failing panel with its problems, what to change."""
    lines = [f"figure {figure}: {len(runs)} panel(s) from sampler runs that failed their health checks; "
             f"written with those panels marked in red (not a result): {', '.join(str(p) for p in paths)}"]
    for r in runs:
        err = f", {_error_text(r)}" if r["train_error"] is not None else ""
        lines.append(f"  {r['panel']} ({r['nonlinearity']}, depth {r['depth']}, N = {r['N']}, T = {r['T']:g}{err}):")
        lines += [f"    - {p}" for p in r["problems"]]
    lines.append(f"  what to change: the sampler settings of these panels in meanfield/figures/{_module_file(figure)} "
                 "(SCALES steps, the annealing start) — more transitions, an annealing start just above the "
                 "freezing temperature where the codes freeze in a wrong state, or another --seed "
                 "(docs/figures.md, \"Runs that did not learn\")")
    return "\n".join(lines)


def _module_file(figure):
    return "phase.py" if str(figure) == "phase" else f"fig{figure}.py"


def make_figure(figure, compute, draw, out_dir, small, seed, progress, **options):
    """Validate the arguments, compute, draw; raise :class:`NotLearnedError` (after writing the PNG) if a
    panel's run is not healthy. Returns the written PNG paths."""
    out_dir, small, seed, progress = check_make_args(out_dir, small, seed, progress)
    data = compute(small, seed, progress, **options)
    for rec in data.get("runs", {}).values():
        log(progress, f"fig {figure}, {run_summary(rec)}")
    paths = draw(data, out_dir)
    bad = unhealthy_runs(data)
    if bad:
        raise NotLearnedError(figure, paths, bad)
    return paths


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
               init=None, thin=2, max_leapfrog=512):
    """Posterior samples of a finite network (preactivation space for depth 1, weight space otherwise)."""
    from ..sampling import sample
    space = "preactivation" if depth == 1 else "weight"
    return sample(task, nonlinearity, N, depth=depth, T=T, steps=steps, seed=seed, space=space, thin=thin,
                  anneal=anneal, init=init, progress=bool(progress), max_leapfrog=max_leapfrog)


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
    ax.yaxis.get_major_locator().set_params(integer=True)       # neuron indices
    colorbar(ax, r.image, "φ")
    return r


def colorbar(ax, image, label=None):
    """A slim colorbar next to ``ax`` for ``image`` (every heatmap of the figures has one)."""
    cb = ax.figure.colorbar(image, ax=ax, fraction=0.05, pad=0.03)
    cb.ax.tick_params(labelsize=6)
    if label:
        cb.set_label(label, fontsize=7, labelpad=1)
    return cb


def draw_kernel(ax, K, labels, title, cmap="magma"):
    """Kernel matrix with inputs sorted by class, white class boundaries and a colorbar."""
    order = np.argsort(labels, kind="stable")
    im = ax.imshow(np.asarray(K)[np.ix_(order, order)], cmap=cmap, interpolation="nearest")
    for b in np.flatnonzero(np.diff(np.asarray(labels)[order])) + 1:
        ax.axvline(b - 0.5, color="w", lw=0.6)
        ax.axhline(b - 0.5, color="w", lw=0.6)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    colorbar(ax, im)


def draw_split_kernel(ax, K_samples, K_theory, labels, title):
    """Sampled kernel above the diagonal, theory below (theory ``None``: sampled only, marked n/a)."""
    K = np.array(K_samples, dtype=np.float64)
    if K_theory is not None:
        low = np.tril_indices_from(K, -1)
        K[low] = np.asarray(K_theory)[low]
    draw_kernel(ax, K, labels, title)
    note = "upper: samples, lower: theory" if K_theory is not None else f"samples; {NA_TEXT}"
    ax.text(0.02, -0.04, note, transform=ax.transAxes, fontsize=7, va="top")


def na(ax, text=NA_TEXT, top=False):
    """Mark a panel whose theory is not available (bottom right, or top right with ``top``)."""
    ax.text(0.98, 0.97 if top else 0.02, text, transform=ax.transAxes, ha="right", va="top" if top else "bottom",
            fontsize=8, color="0.3")


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
