"""Sigmoid networks on general data with the fluctuations of z given a kept (exact as N → ∞ at any P).

Single neuron (docs/theory_erf.md §14): readout a ∈ R^m with prior N(0, s/P), preactivations
z = B u on the training inputs (``K0 = B Bᵀ``, u ~ N(0, I_r)), weight ``exp(Σ_μ (t_μ·a) φ(z_μ))``.
The readout is Gaussian given u, ``a | u ~ N((s/P) tᵀφ(z), (s/P) I)``; integrating it out leaves

    p(u | t) ∝ N(u; 0, I) exp(L(u)),   L(u) = (s/2P) |tᵀφ(Bu)|²,                         (F1)

and every readout average follows from the kernel ``K1(t) = ⟨φ(z)φ(z)ᵀ⟩`` (Rao–Blackwell):
``⟨φ(z) aᵀ⟩ = (s/P) K1 t``, ``U = ⟨a aᵀ⟩ = (s/P) I + (s/P)² tᵀ⟨φφᵀ⟩ t``. (S2) becomes

    Y − T t = (s/P) K1(t) t,                                                              (F2)

the stationarity condition of the convex ``S(t) = (T/2)|t|² − ⟨t, Y⟩ + log E_u e^{L(u)}``. Averages
over (F1) — multimodal in u, one mode per code — come from replica-exchange elliptical slice
sampling (:mod:`meanfield._kernels.tempered_ess`) with a ladder in the tilt strength β ∈ [0, 1]
spaced evenly in thermodynamic length; S is minimized by stochastic Newton steps (Hessian
``T + (s/P) K1 ⊗ I + Cov(∇_t L)`` from the same samples) until the gradient is zero within its
Monte-Carlo error (batch means over independent ladders).
"""
from __future__ import annotations

import numpy as np
from scipy import linalg

from .._kernels.tempered_ess import tempered_ess
from .._validation import check_int
from ..analysis.codes import neuron_codes
from ..sampling.predict import conditional_map, gaussian_mean_activation, pair_kernel
from .erf_general import Problem

_trapezoid = getattr(np, "trapezoid", None) or np.trapz


class TiltedEnsemble:
    """Independent replica-exchange ladders sampling (F1) for a given field t.

    Parameters
    ----------
    pr : Problem
        Data (factor B of K0, s, P).
    n_sys, n_lev : int
        Independent ladders (one per batch mean) and replicas per ladder.
    seed : int
        RNG seed; the sweep counter advances across calls so that every call draws new numbers.
    """

    def __init__(self, pr, n_sys=8, n_lev=16, seed=0):
        if pr.phi.name != "erf":
            raise ValueError(f"the fluctuation theory is implemented for phi='erf', got {pr.phi.name!r}")
        self.pr, self.seed, self.sweep = pr, int(seed), 0
        self.c = pr.s / pr.P
        rng = np.random.default_rng(seed)
        self.Z = rng.standard_normal((n_sys, n_lev, pr.r)) @ pr.B.T
        self.betas = np.linspace(0.0, 1.0, n_lev) ** 2
        self.swaps = np.zeros((n_sys, n_lev - 1, 2), dtype=np.int64)
        self.evals = np.zeros(n_sys, dtype=np.int64)
        self.trips = np.zeros(n_sys, dtype=np.int64)
        self._labels(n_lev)

    def _labels(self, n_lev):
        n_sys = self.Z.shape[0]
        self.ids = np.tile(np.arange(n_lev, dtype=np.int64), (n_sys, 1))
        self.last = np.zeros((n_sys, n_lev), dtype=np.int64)

    def tilts(self, t):
        F = self.pr.f(self.Z)                                      # (n_sys, n_lev, P)
        return 0.5 * self.c * np.sum((F @ t) ** 2, axis=-1)

    def run(self, t, n_sweeps, thin=2):
        """Sweep every ladder at field t; returns z samples (n_sys, n_keep, P) and level tilts."""
        t = np.ascontiguousarray(t, dtype=np.float64)
        L = self.tilts(t)
        n_sys, n_lev, _ = self.Z.shape
        n_keep = n_sweeps // thin
        Z = np.empty((n_sys, n_keep, self.pr.P))
        Lout = np.empty((n_sys, n_keep, n_lev))
        tempered_ess(self.pr.B, t, self.c, self.betas, self.Z, L, self.seed, self.sweep, n_sweeps, thin,
                     Z, Lout, self.swaps, self.evals, self.ids, self.last, self.trips)
        self.sweep += n_sweeps
        return Z, Lout

    def respace(self, Lout, spacing=0.8, max_lev=64):
        """Re-space the ladder to equal thermodynamic length ``∫ sd_β(L) dβ`` between neighbours.

        The number of levels follows the total length Λ (≈ ``Λ / spacing`` levels, neighbour swap
        acceptance ≈ erfc(spacing/2) ≈ 0.57); replicas are carried to the nearest new level.
        """
        sd = Lout.reshape(-1, Lout.shape[-1]).std(axis=0) + 1e-12
        b = self.betas
        length = np.concatenate([[0.0], np.cumsum(0.5 * (sd[1:] + sd[:-1]) * np.diff(b))])
        n_new = int(np.clip(np.ceil(length[-1] / spacing) + 1, 4, max_lev))
        new = np.interp(np.linspace(0.0, length[-1], n_new), length, b)
        new[0], new[-1] = 0.0, 1.0
        new = np.maximum.accumulate(new)
        src = np.abs(b[None, :] - new[:, None]).argmin(axis=1)
        src[-1] = b.size - 1
        self.Z = np.ascontiguousarray(self.Z[:, src])
        self.betas = new
        self.swaps = np.zeros((self.Z.shape[0], n_new - 1, 2), dtype=np.int64)
        self._labels(n_new)
        return length[-1]

    def swap_rates(self):
        s = self.swaps.sum(axis=0)
        return s[:, 1] / np.maximum(s[:, 0], 1)


def _moments(pr, t, Z, T):
    """Gradient of S at temperature T (mean over ladders), its standard error, the Cholesky factor of
    the Hessian, the kernel and the expected squared Newton decrement of the gradient's noise,
    tr(H⁻¹ Cov(ḡ)) (batch means)."""
    c = pr.s / pr.P
    F = pr.f(Z)                                                    # (n_sys, n, P)
    K1s = np.einsum("snp,snq->spq", F, F) / F.shape[1]
    grads = T * t - pr.Y + c * K1s @ t                             # (n_sys, P, m)
    K1 = K1s.mean(axis=0)
    flat = F.reshape(-1, pr.P)
    flat = flat[::max(1, flat.shape[0] // 20000)]                   # the Hessian needs no more samples
    G = c * flat[:, :, None] * (flat @ t)[:, None, :]               # ∇_t L per sample (n, P, m)
    G = G.reshape(G.shape[0], -1)
    H = T * np.eye(pr.P * pr.m) + c * np.kron(K1, np.eye(pr.m)) + np.cov(G, rowvar=False)
    cf = linalg.cho_factor(H)
    d = (grads - grads.mean(axis=0)).reshape(grads.shape[0], -1)
    noise2 = float(np.sum(d.T * linalg.cho_solve(cf, d.T))) / (grads.shape[0] * (grads.shape[0] - 1))
    return grads.mean(axis=0), grads.std(axis=0, ddof=1) / np.sqrt(grads.shape[0]), cf, K1, noise2


def _measure(ens, pr, t, T, n_sweeps):
    """Burn in at t (then re-space the ladder), run ``n_sweeps`` and estimate the equations there."""
    _, Lout = ens.run(t, max(n_sweeps // 2, 20))
    ens.respace(Lout)
    trips0 = int(ens.trips.sum())
    Z, Lout = ens.run(t, n_sweeps)
    g, se, cf, K1, noise2 = _moments(pr, t, Z, T)
    return dict(Z=Z, Lout=Lout, g=g, cf=cf, K1=K1, noise2=noise2, trips=int(ens.trips.sum()) - trips0,
                res=float(np.max(np.abs(g))),
                zscore=float(np.sqrt(np.mean(g * g) / max(np.mean(se * se), 1e-300))))


def _schedule(T, T_start, factor=0.6):
    """Temperatures from T_start down to T (geometric), ending exactly at T."""
    temps = [T]
    while T_start is not None and temps[-1] / factor < T_start:
        temps.append(temps[-1] / factor)
    return temps[::-1]


def solve_fluct(pr, *, t0=None, n_sys=8, n_lev=16, sweeps=(200, 400, 800, 1600), max_iter=30, seed=0,
                z_tol=2.0, T_start=None, max_step=0.25, n_average=4, progress=None):
    """Minimize S(t) by stochastic Newton steps, annealed in T; returns a dict with t, samples and diagnostics.

    Without ``t0`` the field starts from the lazy kernel at ``T_start`` (default ``max(1, T)``) and is
    carried down a geometric temperature schedule to ``pr.T`` — the theory's counterpart of
    annealing the sampler — with a few Newton steps per stage. Steps are capped at ``max_step``
    times ``max(|t|∞, 1)``. Convergence at the final T: the root-mean-square of gradient / (its
    batch-means standard error) ≤ ``z_tol`` on a run of ``sweeps[-1]`` sweeps — the equations hold
    within their Monte-Carlo error. After every 6 iterations at the longest runs without convergence
    the runs double (up to 8 × ``sweeps[-1]``): slow mode mixing makes successive estimates correlated.
    The returned t is the mean of that iterate and the next
    ``n_average`` Newton iterates (Polyak averaging of the Monte-Carlo noise), and the returned
    samples come from a final run of twice the length at that t.
    """
    ens = TiltedEnsemble(pr, n_sys=n_sys, n_lev=n_lev, seed=seed)
    c = pr.s / pr.P
    T_start = max(1.0, pr.T) if (t0 is None and T_start is None) else T_start
    temps = _schedule(pr.T, T_start)
    if t0 is None:                                                 # lazy start: K1 of the prior
        Z, _ = ens.run(np.zeros((pr.P, pr.m)), 50, thin=1)
        F = pr.f(Z.reshape(-1, pr.P))
        t0 = np.linalg.solve(temps[0] * np.eye(pr.P) + c * F.T @ F / F.shape[0], pr.Y)
    t = np.array(t0, dtype=np.float64)
    history, done, it, tail, stalled = [], False, 0, [], 0
    for T in temps:
        final = T == temps[-1]
        n_sw = sweeps[0]
        for k in range(max_iter if final else 3):
            ms = _measure(ens, pr, t, T, n_sw)
            g, zscore = ms["g"], ms["zscore"]
            step = -linalg.cho_solve(ms["cf"], g.ravel()).reshape(t.shape)
            decrement = float(np.sqrt(max(-np.sum(step * g), 0.0)))    # Newton decrement √(gᵀH⁻¹g)
            noise = float(np.sqrt(ms["noise2"]))                      # its value for a pure-noise gradient
            step /= 1.0 + decrement                                   # damped Newton (self-concordant step)
            cap = max_step * max(np.max(np.abs(t)), 1.0)
            if np.max(np.abs(step)) > cap:
                step *= cap / np.max(np.abs(step))
            history.append(dict(it=it, T=T, sweeps=n_sw, residual=ms["res"], zscore=zscore,
                                step=float(np.max(np.abs(step))), decrement=decrement, noise_decrement=noise,
                                round_trips=ms["trips"], levels=int(ens.betas.size),
                                swap_min=float(ens.swap_rates().min())))
            it += 1
            if progress is not None:
                progress(history[-1])
            if final and zscore <= z_tol and decrement ** 2 <= 1.0 + 2.0 * noise ** 2 and n_sw >= sweeps[-1]:
                done = True
            stalled = stalled + 1 if final and n_sw >= sweeps[-1] and not done else 0
            if stalled >= 6 and n_sw < 8 * sweeps[-1]:             # slow mode mixing: longer runs
                n_sw, stalled = 2 * n_sw, 0
            if done:
                tail.append(t.copy())
                if len(tail) > n_average:
                    break
            elif final and k == max_iter - 1:
                break                                              # unconverged: keep t where it was evaluated
            t = t + step
            if final and zscore <= 2.0 * z_tol and n_sw < sweeps[-1]:   # at the noise level: lengthen the runs
                n_sw = next(s for s in sweeps if s > n_sw)
    if tail:                                                       # Polyak average of the converged iterates
        t = np.mean(tail, axis=0)
        ms = _measure(ens, pr, t, pr.T, 2 * n_sw)
        history.append(dict(it=it, T=pr.T, sweeps=2 * n_sw, residual=ms["res"], zscore=ms["zscore"],
                            averaged=len(tail), round_trips=ms["trips"]))
        done = ms["zscore"] <= 1.5 * z_tol
    logZ = float(_trapezoid(ms["Lout"].mean(axis=(0, 1)), ens.betas))   # thermodynamic integration
    S = 0.5 * pr.T * np.sum(t * t) - np.sum(t * pr.Y) + logZ
    return dict(t=t, Z=ms["Z"], K1=ms["K1"], residual=ms["res"], zscore=ms["zscore"], converged=done,
                history=history, S=S, round_trips=ms["trips"],
                swap_rates=ens.swap_rates(), betas=ens.betas, evals=int(ens.evals.sum()))


def solve_erf_fluct(task, T, sigma_a2, *, seed=0, n_sys=32, n_lev=16, sweeps=(200, 400, 800, 1600), max_iter=30,
                    t0=None, max_predict_samples=20000, progress=None):
    """General-data sigmoid theory with the fluctuations of z given a kept → :class:`Solution`.

    ``codes``/``code_fractions`` are the frequencies of the sampled neurons' codes (class-mean
    activation above ½, as for sampled networks), ``readouts`` the mean E[a | u] per code; ``U``,
    ``kernels[1]``, ``predict`` and ``kernel`` are averages over the samples of (F1) at the solution.
    ``info["code_fraction_se"]`` and ``info["U_se"]`` hold standard errors (batch means over the ladders);
    ``info["round_trips"]`` counts the ladders' round trips β = 1 → 0 → 1 in the final run (each one an
    independent pass through the mixing end of the ladder: fractions are trustworthy when there are
    many per ladder).
    ``converged`` means the equations (F2) hold within Monte-Carlo error (``info["zscore"]`` ≤ 2);
    ``residual`` is their max-norm value, ``info["history"]`` the Newton iterations.
    """
    from .solution import Solution

    if T <= 0:
        raise ValueError(f"T must be > 0 for the general-data sigmoid theory (t = residual/T), got {T}")
    n_sys = check_int(n_sys, "n_sys", minimum=2)
    n_lev = check_int(n_lev, "n_lev", minimum=2)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    sweeps = tuple(check_int(v, "sweeps", minimum=20) for v in sweeps)
    if not sweeps or any(b <= a for a, b in zip(sweeps, sweeps[1:])):
        raise ValueError(f"sweeps must be a non-empty increasing sequence of run lengths, got {sweeps}")
    pr = Problem(task, T, task.P * sigma_a2)
    r = solve_fluct(pr, t0=t0, n_sys=n_sys, n_lev=n_lev, sweeps=sweeps, max_iter=max_iter, seed=seed,
                    progress=progress)
    t, c = r["t"], pr.s / pr.P
    Zs = r["Z"].reshape(-1, pr.P)
    F = pr.f(Zs)
    A = c * F @ t                                                  # E[a | u] per sample
    cod = neuron_codes(F, pr.labels, n_classes=pr.K)
    keys = [tuple(int(v) for v in row) for row in cod]
    uniq, counts = np.unique(np.array(keys).reshape(len(keys), -1), axis=0, return_counts=True)
    order = np.argsort(-counts)
    codes = tuple(tuple(int(v) for v in uniq[i]) for i in order)
    frac = counts[order] / counts.sum()
    read = np.array([A[np.all(cod == uniq[i], axis=1)].mean(axis=0) for i in order])
    per = np.stack([np.all(cod.reshape(n_sys, -1, pr.K) == uniq[i], axis=-1).mean(axis=1) for i in order])
    frac_se = per.std(axis=1, ddof=1) / np.sqrt(n_sys)              # batch means over the ladders
    U = c * np.eye(pr.m) + A.T @ A / A.shape[0]
    Aper = A.reshape(n_sys, -1, pr.m)
    U_se = np.einsum("snj,snk->sjk", Aper, Aper).std(axis=0, ddof=1) / (Aper.shape[1] * np.sqrt(n_sys))
    sub = Zs[np.linspace(0, Zs.shape[0] - 1, min(max_predict_samples, Zs.shape[0])).astype(int)]
    Fsub = pr.f(sub)
    sub_k = sub[np.linspace(0, sub.shape[0] - 1, min(1000, sub.shape[0])).astype(int)]   # kernels: bounded terms
    fit = task.Y - T * t                                           # the training predictor, exact by (S2)
    X, N0 = task.X, task.N0

    def moments(X_new):
        Bc, var = conditional_map(X, np.asarray(X_new, dtype=np.float64), N0)
        mean = Bc @ sub.T                                          # (P_new, n)
        return gaussian_mean_activation(pr.phi, mean, np.maximum(var, 0.0)[:, None] * np.ones_like(mean))

    def predict(X_new):
        # f(x) = c E[m(x) φᵀ] t with m(x) = E[φ(z(x)) | z]. The plain sample average multiplies the
        # Monte-Carlo error of E[m φᵀ] by |t| = O(1/T) (0.085 on digits at T = 0.01 with 1000 samples).
        # Regressing m(x) on φ over the samples (m ≈ βᵀφ, least squares) gives E[m φᵀ] = βᵀ K1 exactly
        # in the population, and c K1 t = Y − T t by (S2): f(x) = βᵀ (Y − T t), with β's error
        # multiplied by O(1) only. On training inputs m = φ, β = I and f = Y − T t.
        M = moments(X_new)                                         # (P_new, n)
        beta = linalg.lstsq(Fsub, M.T, cond=1e-10, lapack_driver="gelsd")[0]     # (P, P_new)
        return beta.T @ fit

    def kernel(layer, X1, X2):
        X1 = X if X1 is None else X1
        X2 = X1 if X2 is None else X2
        if layer == 0:
            return np.asarray(X1, dtype=np.float64).T @ np.asarray(X2, dtype=np.float64) / N0
        return pair_kernel(pr.phi, X, N0, X1, X2, sub_k, np.full(sub_k.shape[0], 1.0 / sub_k.shape[0]))

    msg = (f"general data, fluctuations kept (replica-exchange ESS, {n_sys} ladders × {n_lev} levels): "
           f"{len(codes)} code(s), residual {r['residual']:.2e}, z-score {r['zscore']:.2f}, "
           f"{r['round_trips']} ladder round trips"
           + ("" if r["converged"] else "; NOT converged (equations not satisfied within Monte-Carlo error)"))
    return Solution(
        nonlinearity=pr.phi.name, depth=1, T=T, sigma_a2=sigma_a2, field=t, kernels=(task.K0, r["K1"]),
        converged=r["converged"], residual=r["residual"], message=msg, nit=len(r["history"]), U=U, codes=codes,
        code_fractions=frac, readouts=read, finite_P=True, task=task,
        info=dict(general=True, mode="fluctuations", code_fraction_se=frac_se, U_se=U_se, zscore=r["zscore"],
                  history=r["history"], S=r["S"],
                  swap_rates=r["swap_rates"], betas=r["betas"], round_trips=r["round_trips"], samples_z=Zs,
                  evals=r["evals"]),
        _predict=predict, _kernel=kernel)
