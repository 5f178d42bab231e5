"""Figure 4 — feature-layer dynamics: readout and preactivation posteriors, freezing over sampling time.

Paper: the Fig. 2 networks (one hidden layer, toy task; linear N = P = 200, sigmoid and ReLU
N = P = 500). Panels: a readout posterior on the first class, theory dashed; b readout dynamics of
selected neurons; c preactivation posterior on class-0 inputs, theory dashed (sigmoid and ReLU:
conditioned on selected codes); d preactivation dynamics of the same neurons.

Here N = P = 100 (ReLU 60) by default, 40 with ``small``; T = 0.01; every transition stored.
Theory: linear a ~ N(0, U) and z | a ~ N(K0 t a, K0) (mixture over a); sigmoid the Laplace mixture
Σ_γ P_γ N(a_γ, Σ_γ) and p(z | a_γ) per code; ReLU the bulk Laplace Gaussian and the √N ā, √N z̄
outlier values (the bulk p(z | a₀) is drawn from its mean and variance).
"""
from __future__ import annotations

import numpy as np

from . import common as C
from .fig2 import toy_run

SCALES = dict(default=dict(P=dict(linear=100, erf=100, relu=60), steps=dict(linear=300, erf=800, relu=300)),
              small=dict(P=dict(linear=40, erf=40, relu=30), steps=dict(linear=100, erf=240, relu=100)))
N_TRACE = 3


def _gauss(x, mu, var):
    return np.exp(-0.5 * (x - mu) ** 2 / var) / np.sqrt(2 * np.pi * var)


def _theory_curves(nl, sol, N, a_grid, z_grid, seed):
    """Theory densities of a¹ (first class) and of z on a class-0 input (None where unavailable)."""
    if sol is None:
        return None, None
    rng = np.random.default_rng(seed)
    if nl == "linear":
        pa = _gauss(a_grid, 0.0, sol.U[0, 0])
        draws = rng.multivariate_normal(np.zeros(sol.U.shape[0]), sol.U, 200)
        mu0 = int(np.flatnonzero(sol.task.labels == 0)[0])
        pz = np.mean([_gauss(z_grid, m[mu0], c[mu0, mu0]) for m, c in (sol.conditional(a) for a in draws)], axis=0)
        return {"all": pa}, {"all": pz}
    if nl == "erf":
        cov = sol.info.get("readout_covariances")
        pa, pz = {}, {}
        for k, (code, f, a) in enumerate(zip(sol.codes, sol.code_fractions, sol.readouts)):
            var = cov[k][0, 0] if cov is not None and np.isfinite(cov[k][0, 0]) else 1e-4
            pa[code] = f * _gauss(a_grid, a[0], var)
            pz[code] = sol.conditional_density(k, z_grid)[1][0]
        return pa, pz
    bulk_var = sol.info.get("bulk_covariance", np.full((3, 3), 1e-4))[0, 0]
    n_out = np.atleast_2d(sol.outliers["a_bar"]).shape[0]
    mz, vz = sol.conditional(sol.readouts[0])
    mu0 = int(np.flatnonzero(sol.task.labels == 0)[0])
    return ({"bulk": (N - n_out) / N * _gauss(a_grid, sol.readouts[0][0], bulk_var),
             "outliers": np.sqrt(N) * np.atleast_2d(sol.outliers["a_bar"])[:, 0]},
            {"bulk": _gauss(z_grid, mz[mu0], vz[mu0, mu0]),
             "outliers": np.sqrt(N) * np.atleast_2d(sol.outliers["z_bar"])[:, mu0]})


def _selected(nl, sol, s, codes):
    """Neurons to follow: one per theory code (sigmoid), the outliers (ReLU), the first three (linear)."""
    if nl == "erf":
        picks = []
        for code in (sol.codes if sol is not None else []):
            hit = np.flatnonzero(np.all(codes[0] == np.array(code), axis=-1))
            if hit.size:
                picks.append(int(hit[0]))
        return picks[:N_TRACE + 1] or list(range(N_TRACE))
    if nl == "relu":
        from ..analysis import outliers
        idx, _ = outliers(s.readouts)
        bulk = [i for i in range(s.N) if i not in set(idx.tolist())][:1]
        return list(idx[:N_TRACE]) + bulk
    return list(range(N_TRACE))


def compute(small=False, seed=0, progress=False):
    """Sampled readout / preactivation posteriors and their dynamics, theory densities.

    Returns
    -------
    dict
        Per nonlinearity: ``a0`` (S, N) readouts on class 0, ``z0`` (S, N, P0) preactivations on the
        class-0 inputs, ``codes`` (S, N, K), ``selected`` neurons, ``theory_a`` / ``theory_z`` dicts of
        densities on ``a_grid`` / ``z_grid`` (None without theory), ``switching`` (code_switching of the
        stored samples), ``sign_flips`` (fraction of neurons whose class-0 readout changes sign),
        ``outlier_spread`` (ReLU: largest sd/|mean| of an outlier's class-0 readout, else None).
    """
    from ..analysis import code_switching, neuron_codes
    sc = SCALES["small" if small else "default"]
    out = dict(scale=sc)
    for nl in C.NONLINEARITIES:
        C.log(progress, f"fig4: {nl}")
        task, sol, s = toy_run(nl, sc["P"][nl], sc["steps"][nl], seed, progress, thin=1)
        C.record(out, nl, s, f"{C.LABEL[nl]} row")
        cls0 = np.flatnonzero(task.labels == 0)
        Z = np.asarray(s.preactivations[0], dtype=np.float64)
        codes = neuron_codes(C.phi_of(nl).phi(Z), task.labels)
        a0 = s.readouts[:, :, 0]
        a_grid = np.linspace(a0.min() - 0.2 * np.ptp(a0), a0.max() + 0.2 * np.ptp(a0), 400)
        z0 = Z[:, :, cls0]
        z_grid = np.linspace(np.percentile(z0, 0.1) - 1, np.percentile(z0, 99.9) + 1, 400)
        ta, tz = _theory_curves(nl, sol, s.N, a_grid, z_grid, seed)
        out[nl] = dict(a0=a0, z0=z0, codes=codes, sol_codes=None if sol is None else sol.codes,
                       selected=_selected(nl, sol, s, codes), a_grid=a_grid, z_grid=z_grid, theory_a=ta,
                       theory_z=tz, switching=code_switching(codes),
                       sign_flips=float(np.mean(np.any(np.sign(a0) != np.sign(a0[:1]), axis=0))), N=s.N)
        sel = out[nl]["selected"][:-1] if nl == "relu" else []
        out[nl]["outlier_spread"] = (float(np.max(a0[:, sel].std(axis=0) / np.abs(a0[:, sel].mean(axis=0))))
                                     if len(sel) else None)
    return out


def _hist_panel(ax, nl, d, which):
    vals = d["a0"] if which == "a" else d["z0"]
    grid, th = (d["a_grid"], d["theory_a"]) if which == "a" else (d["z_grid"], d["theory_z"])
    if nl == "erf" and which == "z" and th is not None:
        for k, code in enumerate(list(th)[:2]):
            sel = np.all(d["codes"] == np.array(code), axis=-1)          # (S, N)
            if sel.any():
                ax.hist(vals[sel].ravel(), bins=60, density=True, alpha=0.45, color=f"C{k}",
                        label="-".join(map(str, code)))
            ax.plot(grid, th[code], "k--", lw=0.8)
        ax.legend(fontsize=6)
    elif nl == "relu" and th is not None:
        out = sorted(int(i) for i in d["selected"][:-1])
        bulk = np.setdiff1d(np.arange(vals.shape[1]), out)
        ax.hist(vals[:, bulk].ravel(), bins=60, density=True, color="0.5", alpha=0.6, label="bulk")
        ax.plot(grid, th["bulk"], "k--", lw=0.8)
        for v in vals[:, out].mean(axis=0).reshape(len(out), -1).mean(axis=1):
            ax.axvline(v, color="C3", lw=2, alpha=0.6)
        for v in np.ravel(th["outliers"]):
            ax.axvline(v, color="k", ls="--", lw=0.8)
        ax.set_xlabel("red: sampled outliers\ndashed: theory √N ā, √N z̄", fontsize=7)
    else:
        ax.hist(vals.ravel(), bins=60, density=True, color="0.5", alpha=0.6)
        if th is not None:
            ax.plot(grid, sum(v for v in th.values() if np.ndim(v) and np.size(v) == grid.size), "k--", lw=0.8)
        else:
            C.na(ax)
    C.small_axes(ax)


def _motion(nl, d):
    """How much the followed neurons move: code switches (sigmoid), sign flips (linear), outlier spread (ReLU)."""
    if nl == "erf":
        return f"{d['switching']['switching_neurons']}/{d['N']} switched code"
    if nl == "linear":
        return f"{d['sign_flips']:.0%} flipped sign"
    sp = d["outlier_spread"]
    return "no outliers" if sp is None else f"outliers sd/mean {sp:.1%}"


def draw(data, out_dir):
    """Write ``fig4.png``; returns ``[path]``."""
    plt = C.pyplot()
    fig, axes = plt.subplots(3, 4, figsize=(13, 8), gridspec_kw=dict(hspace=0.5, wspace=0.3))
    for row, nl in enumerate(C.NONLINEARITIES):
        d = data[nl]
        _hist_panel(axes[row, 0], nl, d, "a")
        axes[row, 0].set_title(f"a  {C.LABEL[nl]}: readout $a^1$ posterior", fontsize=9, loc="left")
        for k, i in enumerate(d["selected"]):
            axes[row, 1].plot(d["a0"][:, i], lw=0.8, color=f"C{k}")
            axes[row, 3].plot(d["z0"][:, i, 0], lw=0.8, color=f"C{k}")
        axes[row, 1].set_title(f"b  $a^1$ over time: {_motion(nl, d)}", fontsize=8, loc="left")
        _hist_panel(axes[row, 2], nl, d, "z")
        axes[row, 2].set_title("c  preact. posterior (class 0)", fontsize=9, loc="left")
        axes[row, 3].set_title("d  preact. over time (one class-0 input)", fontsize=9, loc="left")
        for ax in (axes[row, 1], axes[row, 3]):
            ax.set_xlabel("stored sample", fontsize=8)
            C.small_axes(ax)
        C.mark_unhealthy(axes[row], data["runs"][nl])
    N = [data[nl]["N"] for nl in C.NONLINEARITIES]
    fig.suptitle(f"Fig. 4 — feature-layer posteriors and dynamics (N = P = {N[0]}/{N[1]}/{N[2]}; "
                 "paper 200/500/500; dashed: theory)", fontsize=10)
    return [C.save(fig, out_dir, "fig4.png")]


def make(out_dir, small=False, seed=0, progress=True):
    """Compute and draw Figure 4; returns the written PNG paths."""
    return C.make_figure("4", compute, draw, out_dir, small, seed, progress)
