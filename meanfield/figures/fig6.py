"""Figure 6 — generalization of one-hidden-layer networks on handwritten digits.

Paper: MNIST digits 0, 1, 2 (N0 = 784), N = P = 100, y₊ = 1, y₋ = −½, one hidden layer; panels:
a activations on 100 test inputs of one weight sample (ReLU: ten most active neurons); b
posterior-averaged kernel on 100 test inputs; c mean predictor for class 0 from sampling (grey)
and theory (black dashed); d class-wise generalization error on 1000 test inputs: sampling
(bars), theory (circles), GP theory (triangles).

Here scikit-learn's bundled 8 × 8 digits (offline, N0 = 64, :func:`meanfield.datasets.digits`),
classes 0, 1, 2, P = N = 100 and 400 test inputs (``small``: P = N = 45, 90 test inputs), T = 0.01;
preactivation-space HMC for linear and ReLU, the readout-collapsed Gibbs sampler
(:func:`meanfield.sampling.collapsed.sample_collapsed`) for the sigmoid, whose HMC chains freeze out of
equilibrium on digits (docs/figures.md). Test preactivations of a sample are drawn from their exact Gaussian
conditional given the training ones (:func:`common.new_input_preactivations`); the sampled mean
predictor is :func:`meanfield.predict_samples`, its generalization error bias² + posterior
variance (over stored samples); the GP baseline is :func:`meanfield.gp_baseline`. Theory: whatever
``mf.solve(task, φ, T=...)`` provides on general data (mean predictor and test kernel: linear
exact, sigmoid the paper's MNIST theory, ReLU the outliers plus the arc-cosine bulk); where a theory
is not computed the panel says "theory: n/a". The theory's error is bias² of its mean predictor.
``small`` uses the linear theory only (the general-data ReLU outlier search takes minutes on 2 cores).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import common as C

T = 0.01
SCALES = dict(default=dict(P=100, P_test=400, steps=300, sweeps=1200, n_var=30, n_show=100,
                           theory=C.NONLINEARITIES),
              small=dict(P=45, P_test=90, steps=100, sweeps=1200, n_var=10, n_show=45, theory=("linear",)))
COLLAPSED = ("erf",)
# ReLU on digits adapts its HMC step to ≈ 0.002 at T = 0.01 (the stiff outlier directions), so a trajectory
# of the sampler's length 1.5 takes ≈ 700 leapfrog steps: at the default cap of 512 every trajectory was
# cut (run health: leapfrog_cap = 1). The cap only bounds the trajectory; the cost is what it needs.
MAX_LEAPFROG = 2048
N_RELU_SHOWN = 10


def digits_task(small=False, seed=0):
    """Digits 0, 1, 2 with the figure's P and test-set size (targets y₊ = 1, y₋ = −½)."""
    from ..datasets import digits
    sc = SCALES["small" if small else "default"]
    return digits(classes=(0, 1, 2), P=sc["P"], P_test=sc["P_test"], seed=seed)


def _theory(task, nl, Xs):
    """Theory mean predictor on the test set and kernel on the shown test inputs (None if unavailable)."""
    try:
        sol = C.try_solve(task, nl, T=T)
    except ValueError:
        sol = None
    if sol is None:
        return None, None, None
    pred = kern = None
    try:
        pred = sol.predict(task.X_test)
    except NotImplementedError:
        pass
    try:
        kern = sol.kernel(1, Xs, Xs)
    except NotImplementedError:
        pass
    return sol, pred, kern


def _stored(s, n):
    """Indices of (at most) n stored samples spread over the run."""
    S = s.readouts.shape[0]
    return np.unique(np.linspace(0, S - 1, min(n, S)).astype(int))


def sampled_error(s, task, n_var=10):
    """Sampled posterior mean predictor on the test inputs and its class-wise generalization error
    bias² + posterior variance (the variance over ``n_var`` stored samples)."""
    from ..sampling import predict_samples
    per = np.array([predict_samples(dataclasses.replace(s, readouts=s.readouts[i:i + 1],
                                                        preactivations=[s.preactivations[0][i:i + 1]]),
                                    task, task.X_test) for i in _stored(s, n_var)])
    mean = predict_samples(s, task, task.X_test)
    return mean, np.mean((task.Y_test - mean) ** 2, axis=0) + np.mean(per.var(axis=0), axis=0)


def compute(small=False, seed=0, progress=False):
    """Samples, test activations/kernels, predictors and generalization errors per nonlinearity.

    Returns
    -------
    dict
        ``labels_test`` (shown inputs), ``Y_test``; per nonlinearity ``test_activations`` (N, n_show),
        ``test_kernel`` and ``theory_kernel`` (n_show × n_show or None), ``mean_prediction`` and
        ``theory_prediction`` ((P_test, m) or None), ``error`` / ``theory_error`` / ``gp_error``
        (class-wise, (m,)), ``accuracy`` of the sampled mean predictor.
    """
    from ..gp import gp_baseline
    sc = SCALES["small" if small else "default"]
    task = digits_task(small, seed)
    Xs = task.X_test[:, :sc["n_show"]]
    out = dict(labels_test=task.labels_test[:sc["n_show"]], Y_test=task.Y_test, scale=sc, T=T)
    for nl in C.NONLINEARITIES:
        C.log(progress, f"fig6: {nl}")
        sol, pred_t, kern_t = _theory(task, nl, Xs) if nl in sc["theory"] else (None, None, None)
        if nl in COLLAPSED:      # HMC freezes out of equilibrium on digits (docs/figures.md); this sampler does not
            from ..sampling.collapsed import sample_collapsed
            s = sample_collapsed(task, nl, sc["P"], T=T, sweeps=sc["sweeps"], seed=seed, thin=2,
                                 progress=bool(progress))
        else:
            s = C.sample_net(task, nl, sc["P"], sc["steps"], T=T, seed=seed, progress=progress,
                             max_leapfrog=MAX_LEAPFROG)
        C.record(out, nl, s, f"{C.LABEL[nl]} row")
        idx = _stored(s, sc["n_var"])
        phi = C.phi_of(nl)
        Hs = [phi.phi(C.new_input_preactivations(s, task, Xs, index=i, seed=seed + i)[0]) for i in idx]
        mean, error = sampled_error(s, task, sc["n_var"])
        Yt = task.Y_test
        out[nl] = dict(test_activations=Hs[-1], test_kernel=np.mean([H.T @ H for H in Hs], axis=0) / s.N,
                       theory_kernel=kern_t, mean_prediction=mean, theory_prediction=pred_t,
                       error=error,
                       theory_error=None if pred_t is None else np.mean((Yt - pred_t) ** 2, axis=0),
                       gp_error=gp_baseline(task, nl, T=T).generalization_error(),
                       accuracy=float(np.mean(np.argmax(mean, axis=1) == task.labels_test)),
                       theory=None if sol is None else sol.message, N=s.N)
    return out


def draw(data, out_dir):
    """Write ``fig6.png``; returns ``[path]``."""
    plt = C.pyplot()
    fig, axes = plt.subplots(3, 4, figsize=(14, 8.4), gridspec_kw=dict(hspace=0.5, wspace=0.45))
    fig.subplots_adjust(left=0.05, right=0.87, top=0.9, bottom=0.07)
    lab = data["labels_test"]
    order = np.argsort(lab, kind="stable")
    m = data["Y_test"].shape[1]
    for row, nl in enumerate(C.NONLINEARITIES):
        d = data[nl]
        A = d["test_activations"]
        if nl == "relu":
            A = A[C.most_active(A, N_RELU_SHOWN)]
        C.draw_raster(axes[row, 0], A, lab, f"a  {C.LABEL[nl]}: test activations"
                      + (f" (top {N_RELU_SHOWN})" if nl == "relu" else ""))
        C.draw_split_kernel(axes[row, 1], d["test_kernel"], d["theory_kernel"], lab, "b  test kernel")
        ax = axes[row, 2]
        ax.plot(d["mean_prediction"][:len(lab)][order, 0], color="0.5", lw=1.0, label="sampling")
        ax.plot(data["Y_test"][:len(lab)][order, 0], color="k", lw=0.5, ls=":", label="target")
        if d["theory_prediction"] is not None:
            ax.plot(d["theory_prediction"][:len(lab)][order, 0], "k--", lw=0.8, label="theory")
        else:
            C.na(ax, top=True)
        ax.set_title(f"c  mean predictor, class 0 (acc. {d['accuracy']:.2f})", fontsize=9, loc="left")
        ax.set_xlabel("test input (by class)", fontsize=8)
        if row == 0:
            ax.legend(fontsize=7, loc="upper right")
        ax = axes[row, 3]
        x = np.arange(m)
        ax.bar(x, d["error"], color="0.6", label="sampling")
        if d["theory_error"] is not None:
            ax.plot(x, d["theory_error"], "ko", mfc="none", label="theory (bias²)")
        else:
            C.na(ax, top=True)
        ax.plot(x, d["gp_error"], "k^", label="GP theory")
        ax.set_xticks(x, [f"class {k}" for k in x])
        ax.set_title("d  generalization error", fontsize=9, loc="left")
        top = max(np.max(v) for v in (d["error"], d["gp_error"], d["theory_error"]) if v is not None)
        ax.set_ylim(0, 1.35 * top)
        if row == 0:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
        for a in axes[row, 2:]:
            C.small_axes(a)
        C.mark_unhealthy(axes[row], data["runs"][nl])
    sc = data["scale"]
    fig.suptitle(f"Fig. 6 — generalization on digits 0/1/2 (sklearn 8×8, N = P = {sc['P']}, "
                 f"{sc['P_test']} test inputs, T = {data['T']}; paper MNIST N = P = 100)", fontsize=10)
    return [C.save(fig, out_dir, "fig6.png")]


def make(out_dir, small=False, seed=0, progress=True):
    """Compute and draw Figure 6; returns the written PNG paths."""
    return C.make_figure("6", compute, draw, out_dir, small, seed, progress)
