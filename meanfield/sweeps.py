"""Coding-scheme sweeps of the sigmoid network: theory along a parameter, sampler points on top.

``scheme_sweep`` solves the toy task along y₋ (or T) and, where asked, samples a finite
network at the same point (annealed from the mixing phase, so that the dynamics — not the
start — selects the state) and records both code tables; ``plot_scheme_sweep`` draws the
code fractions along the sweep (theory lines, sampler markers).
"""
from __future__ import annotations

import numpy as np

from ._validation import check_output_path
from .analysis.codes import code_fractions, code_switching, format_code
from .agreement.result import FROZEN_SWITCH_FRACTION
from .tasks import toy_task


def scheme_sweep(parameter, values, *, T=0.01, y_minus=0.5, P=200, N=None, steps=2000, anneal=0.15, seed=0,
                 nonlinearity="erf", progress=False):
    """Theory (and sampler) coding schemes along ``y_minus`` or ``T``.

    Parameters
    ----------
    parameter : {"y_minus", "T"}
        The swept parameter; the other one is fixed by ``T`` / ``y_minus``.
    values : sequence of float
    T, y_minus : float
        Fixed values of the parameter not swept.
    P : int
        Training inputs of the toy task (N0 = P + 20, ratios ½, ¼, ¼, y₊ = 1).
    N : int, optional
        Width of the sampled network; ``None`` skips the sampler.
    steps, anneal, seed :
        Sampler transitions (half warm-up), annealing start temperature (``None``: no
        annealing; raised to 1.5 T when T is higher), seed.

    Returns
    -------
    list of dict
        Per point: ``value``, ``T``, ``y_minus``, ``P``, ``N``, ``theory`` ``{code: fraction}``, ``converged``,
        and when sampled ``sampler`` ``{code: fraction}``, ``switching_neurons``, ``frozen`` (fewer than
        ``FROZEN_SWITCH_FRACTION`` of the N neurons switched code: the sampled fractions are those
        of the state the run froze in, not equilibrium fractions to hold the theory to), ``health``
        (the run's ``Samples.health``) and ``train_error``.
    """
    from .agreement.codes import sampled_codes
    from .sampling import sample
    from .theory import solve

    if parameter not in ("y_minus", "T"):
        raise ValueError(f"parameter must be 'y_minus' or 'T', got {parameter!r}")
    rows = []
    for v in values:
        Tv, yv = (float(v), y_minus) if parameter == "T" else (T, float(v))
        task = toy_task(P, P + 20, y_minus=yv)
        sol = solve(task, nonlinearity, T=Tv, finite_P=True)
        row = dict(value=float(v), T=Tv, y_minus=yv, P=P, N=N, converged=bool(sol.converged),
                   theory={tuple(int(b) for b in c): float(p) for c, p in zip(sol.codes, sol.code_fractions)})
        if N is not None:
            an = None if anneal is None else max(anneal, 1.5 * Tv)
            s = sample(task, nonlinearity, N, T=Tv, steps=steps, space="preactivation", anneal=an, seed=seed,
                       thin=5, progress=progress)
            C = sampled_codes(s, task)
            row["sampler"] = code_fractions(C)
            row["switching_neurons"] = code_switching(C)["switching_neurons"]
            row["health"], row["train_error"] = s.health, s.diagnostics.get("train_error")
            row["frozen"] = bool(row["switching_neurons"] < FROZEN_SWITCH_FRACTION * N)
        rows.append(row)
    return rows


def sweep_table(rows, parameter="y_minus", min_fraction=0.005):
    """Readable table of :func:`scheme_sweep` rows (codes below ``min_fraction`` omitted)."""
    lines = [f"{parameter:>8s}  {'side':8s} codes (fraction)"]
    for r in rows:
        for side in ("theory", "sampler"):
            if side not in r:
                continue
            txt = " ".join(f"{format_code(c)}:{p:.3f}" for c, p in sorted(r[side].items(), key=lambda kv: -kv[1])
                           if p >= min_fraction)
            flag = "" if side != "theory" or r["converged"] else "  [unconverged]"
            sw = ""
            if side == "sampler":
                sw = f"  [{r['switching_neurons']} neurons switched]"
                if r.get("frozen"):
                    sw = (f"  [sampler frozen: {r['switching_neurons']} of {r['N']} neurons switched; "
                          "the fractions are those of a frozen state, not the theory's equilibrium]")
                h = r.get("health")
                if h is not None and not h.ok:
                    sw += f"  [run UNHEALTHY: {'; '.join(h.problems)}]"
            lines.append(f"{r['value']:8.3f}  {side:8s} {txt}{flag}{sw}")
    return "\n".join(lines)


def plot_scheme_sweep(rows, path, parameter="y_minus", min_fraction=0.005):
    """Code fractions along the sweep: theory lines, sampler markers; written to ``path`` (PNG).

    The title names the fixed parameter (T or y₋), P and the sampled width N (from the rows of
    :func:`scheme_sweep`)."""
    path = check_output_path(path, "path")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    codes = sorted({c for r in rows for side in ("theory", "sampler") for c, p in r.get(side, {}).items()
                    if p >= min_fraction})
    x = np.array([r["value"] for r in rows])
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, c in enumerate(codes):
        col = f"C{k % 10}"
        ax.plot(x, [r["theory"].get(c, 0.0) for r in rows], "-", color=col, label=format_code(c))
        if any("sampler" in r for r in rows):
            xs = [r["value"] for r in rows if "sampler" in r]
            ax.plot(xs, [r["sampler"].get(c, 0.0) for r in rows if "sampler" in r], "o", color=col, mfc="none")
    ax.set_xlabel({"y_minus": "y₋", "T": "T"}[parameter])
    ax.set_ylabel("fraction of neurons")
    ax.set_title(_sweep_title(rows, parameter), fontsize=9)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _sweep_title(rows, parameter):
    """Plot title: the swept parameter, the fixed one, P and N (e.g. "… along y₋ at T = 0.01, P = 200, N = 100")."""
    r0 = rows[0] if rows else {}
    fixed = f"T = {r0['T']:g}" if parameter == "y_minus" and "T" in r0 else \
        (f"y₋ = {r0['y_minus']:g}" if "y_minus" in r0 else "")
    size = ", ".join(f"{k} = {r0[k]}" for k in ("P", "N") if r0.get(k) is not None)
    sampled = any("sampler" in r for r in rows)
    where = ", ".join(x for x in (fixed, size) if x)
    return (f"sigmoid coding scheme along {'y₋' if parameter == 'y_minus' else 'T'}"
            + (f" at {where}" if where else "") + "\ntheory (lines)" + (", sampler (circles)" if sampled else ""))
