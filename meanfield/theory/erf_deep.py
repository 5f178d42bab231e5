"""Sigmoid (erf) networks with two hidden layers on the toy task (docs/theory_erf_deep.md).

``solve_erf_deep`` solves the N → ∞ saddle at finite P: the first-layer kernel K1 is an order
parameter with conjugate field Λ (tilting the first-layer neurons, :func:`.erf_deep_layers.layer1_modes`),
the feature layer sees K1 as its input kernel (:func:`.erf_deep_layers.feature_modes`), and the
readout field t closes the likelihood (S2). Unknowns (class-reduced): t (K × m), λ (K), L̂ (K × K);
both single-neuron posteriors are Laplace mixtures over their modes (codes) at the task's P.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy import optimize

from .._validation import check_float, check_int
from . import erf_deep_layers as lay

__all__ = ["solve_erf_deep", "DeepState", "evaluate"]

MAX_CLASSES = 4          # the feature layer integrates v over a K-dimensional grid


class DeepState:
    """Problem data and warm starts (mode positions) carried between residual evaluations."""

    def __init__(self, rho, Yc, s, P, T, geometry=None):
        self.rho, self.Yc, self.s, self.P, self.T = rho, Yc, float(s), float(P), float(T)
        self.K, self.m = Yc.shape
        self.geometry = lay.Geometry() if geometry is None else geometry   # quadrature grids of this solve
        self.A = None            # feature-layer modes (readouts) to warm-start from
        self.U = None            # first-layer modes

    def pack(self, t, lam, C):
        iu = np.triu_indices(self.K)
        return np.concatenate([t.ravel(), lam, C[iu]])

    def unpack(self, x):
        K, m = self.K, self.m
        t = x[:K * m].reshape(K, m)
        lam = x[K * m:K * m + K]
        L = np.zeros((K, K))
        L[np.triu_indices(K)] = x[K * m + K:]
        return t, lam, L + np.triu(L, 1).T


def _feature_mixture(st, t, d, B, search=False, n_random=0, seed=0):
    """Feature-layer modes from the warm starts (and, with ``search``, from every code's saturated
    stationary point and ``n_random`` random starts), with Laplace weights > 1e-10."""
    K, m = st.K, st.m
    starts = [] if st.A is None else list(st.A)
    if search or not starts:
        codes = np.array([c for c in itertools.product((0, 1), repeat=K) if any(c)])
        starts += list(st.s * (codes * st.rho) @ t)
        if n_random:
            rng = np.random.default_rng(seed)
            R = st.s * float(st.rho @ np.linalg.norm(t, axis=1))
            U = rng.standard_normal((n_random, m))
            starts += list(U * (R * rng.uniform(0, 1, n_random) ** (1 / m) / np.linalg.norm(U, axis=1))[:, None])
    A, F, gn, H, vps = lay.feature_modes(t, d, B, st.rho, st.P, st.s, np.array(starts), geometry=st.geometry)
    logw = st.P * F - 0.5 * np.linalg.slogdet(-H)[1]
    w = np.exp(logw - logw.max())
    keep = w / w.sum() > 1e-10
    A, F, gn, H, logw = A[keep], F[keep], gn[keep], H[keep], logw[keep]
    vps = [v for v, k in zip(vps, keep) if k]
    return dict(A=A, F=F, gnorm=gn, H=H, logw=logw, P=np.exp(logw - np.logaddexp.reduce(logw)), vp=vps,
                codes=np.array([(v["phi"] > 0.5).astype(np.int64) for v in vps]).reshape(-1, K))


def evaluate(x, st, search=False, n_random=0, seed=0):
    """Residuals of the saddle equations at ``x = (t, λ, vech C)`` and everything computed on the way.

    Equations (docs/theory_erf_deep.md §5; averages over the feature-layer posterior, i.e. the
    Laplace mixture over readouts a_γ and the exact v-posterior given a):

        Y_c − T t_c = Σ_γ P_γ ⟨φ⟩_cγ a_γ                   (S2)
        λ_c = ⟨∂²_v G_c⟩                                     (diagonal of Λ)
        C_cc' = ⟨∂_v G_c ∂_v G_c'⟩                           (class blocks of Λ, C = L̂/P)

    The C-residual is multiplied by P (C is O(1/P)).
    """
    t, lam, C = st.unpack(x)
    if np.linalg.eigvalsh(C)[0] <= 0:
        raise FloatingPointError("C is not positive definite")
    l1 = lay.layer1_posterior(lam, C, st.rho, st.P, geometry=st.geometry)
    d, B = l1["d"], l1["B"]
    fl = _feature_mixture(st, t, d, B, search, n_random, seed)
    Pw = fl["P"]
    phis = np.array([v["phi"] for v in fl["vp"]])
    out = np.einsum("g,gc,gj->cj", Pw, phis, fl["A"])
    gvv = Pw @ np.array([v["gvv"] for v in fl["vp"]])
    gg = np.einsum("g,gij->ij", Pw, np.array([v["gv_gv"] for v in fl["vp"]]))
    R_t = st.Yc - st.T * t - out
    R_l = lam - gvv
    R_C = (C - gg) * st.P
    R = np.concatenate([R_t.ravel(), R_l, R_C[np.triu_indices(st.K)]])
    return R, dict(t=t, lam=lam, C=C, layer1=l1, d=d, B=B, feature=fl, gvv=gvv, gg=gg, out=out)


def _root(st, x0, tol, max_nfev, progress=False):
    """Full saddle by MINPACK ``hybr`` (finite-difference Jacobian), warm-starting the modes."""
    scale = np.maximum(np.abs(x0), 1.0)
    nfev = [0]

    def fun(y):
        nfev[0] += 1
        try:
            R, info = evaluate(y * scale, st)
        except (FloatingPointError, np.linalg.LinAlgError):
            return np.full(y.size, 1e3)
        st.A = info["feature"]["A"]
        if progress:
            print(f"  [erf depth 2] evaluation {nfev[0]}: max |residual| {np.max(np.abs(R)):.3e}, "
                  f"feature codes {info['feature']['codes'].tolist()}", flush=True)
        return R

    fun(x0 / scale)                                    # set the grid geometries at x0, then freeze them
    with st.geometry.freeze():
        sol = optimize.root(fun, x0 / scale, method="hybr", options=dict(xtol=1e-12, maxfev=max_nfev, eps=1e-6))
    return sol.x * scale, nfev[0]


def _start(task, T, st, opts):
    """Initial (t, λ, C), then damped fixed-point sweeps of (λ, C) at that t.

    ``start="saturated"`` (default): every feature neuron in the saturated all-ones code, one readout
    ``a0 = s Σ_c ρ_c Y_c / (T + s)`` and ``t_c = (Y_c − a0)/T`` (the exact solution of (S2) and
    stationarity with ⟨φ⟩ = 1); ``start="one_layer"``: t and readouts of the L = 1 solution at T.
    """
    if opts["start"] == "one_layer":
        from .erf import solve_erf
        one = solve_erf(task, 1, T, True, None, sigma_a2=st.s / st.P)
        t, st.A = one.info["t_class"], np.array(one.readouts)
    else:
        a0 = st.s * (st.rho @ st.Yc) / (T + st.s)
        t, st.A = (st.Yc - a0[None, :]) / T, a0[None, :]
    lam, C = np.full(st.K, -0.1), np.eye(st.K) / st.P
    R, info = evaluate(st.pack(t, lam, C), st, search=opts["start"] == "one_layer")
    for _ in range(opts["sweeps"]):
        st.A = info["feature"]["A"]
        lam, C = info["gvv"], 0.5 * (C + info["gg"])
        R, info = evaluate(st.pack(t, lam, C), st)
    st.A = info["feature"]["A"]
    return st.pack(t, lam, C)


def solve_erf_deep(task, T, N=None, *, sigma_a2=None, tol=1e-5, max_outer=30, mix=0.6, sweeps=0, n_random=16,
                   seed=0, x0=None, progress=False, start="saturated", callback=None, global_search=True, frozen=None):
    """Two-hidden-layer sigmoid theory on the toy task (docs/theory_erf_deep.md).

    Parameters
    ----------
    task : Task
        Toy task (``K0 = I``, targets constant per class), K ≤ 4 classes.
    T : float
        Rescaled temperature > 0.
    N : int, optional
        Stored only (N → ∞ theory at the task's P).
    sigma_a2 : float, optional
        Readout prior variance (default 1/P); enters through ``s = P σ_a²``.
    tol : float
        Max-norm tolerance on the (scaled) equations for ``converged`` (the grid quadratures are
        accurate to ≈ 1e-6 relative, docs §3).
    max_outer : int
        Fixed-point sweeps in (λ, C) (t is solved exactly at each).
    mix : float
        Mixing of the fixed-point update (with ``start="coded"``: the largest geometric step).
    sweeps : int
        Damped fixed-point sweeps of (λ, C) before the root finder.
    n_random : int
        Random starts of the final global search for feature-layer maxima.
    seed : int
        Seed of that search.
    x0 : ndarray, optional
        Start ``(t, λ, vech C)`` (e.g. ``info["x"]`` of a previous solve).
    progress : bool
        Print the residual at every evaluation of the root finder.
    global_search : bool
        Search every code's saturated stationary point (and ``n_random`` random starts) for further
        feature-layer maxima at the end and continue with them. ``False`` keeps the modes reached from
        the start (the branch a finite-N run with frozen feature codes can host; docs §7); the message
        says so.
    callback : callable, optional
        ``callback(x, info, residual)`` after every fixed-point sweep.
    frozen : dict, optional
        With ``start="frozen"``: keyword arguments of :func:`.erf_deep_frozen.solve_frozen` — ``fractions``
        (feature code → fraction of a frozen feature population), start ``d0``, ``B0``, ``t0`` (e.g. a
        sampled network's first-layer kernel blocks and class field), optionally ``tol``, ``rounds``,
        ``symmetric`` (the 1 ↔ 2-symmetric sub-branch, default when every imposed code is invariant:
        docs §9). The coded branch that matches the sampler (docs §8, §9).
    start : {"saturated", "one_layer", "coded", "frozen"}
        Initial field: the saturated all-ones feature code (default) or the L = 1 solution (see
        :func:`_start`). ``"coded"``: saturated start, then the feature modes are searched globally at
        every sweep and C moves along the matrix geometric path (step ≤ ``mix``, adaptive; see
        :func:`_nested`) — the attempt at the coded branch of docs §8, which does not converge yet
        (``converged=False`` with its residual).

    Returns
    -------
    Solution
        Feature layer: ``codes``, ``code_fractions``, ``readouts``, ``field``, ``kernels[2]``;
        first layer: ``kernels[1]`` and ``info["layer1"]`` (see :func:`.erf_deep_assemble.assemble`
        for the keys).
    """
    from .relu_toy import class_reduction
    from .erf_deep_assemble import assemble
    T = check_float(T, "T", minimum=0.0, strict=True)
    tol = check_float(tol, "tol", minimum=0.0, strict=True)
    max_outer = check_int(max_outer, "max_outer", minimum=1)
    mix = check_float(mix, "mix", minimum=0.0, strict=True)
    try:
        rho, Yc, classes = class_reduction(task, tol=1e-10)
    except NotImplementedError as exc:
        raise NotImplementedError(f"general data: not yet — the depth-2 sigmoid theory needs the toy task "
                                  f"(K0 = I, targets constant per class). Details: {exc}") from None
    if rho.size > MAX_CLASSES:
        raise NotImplementedError(f"depth-2 sigmoid theory: K ≤ {MAX_CLASSES} classes (K-dimensional grids), "
                                  f"got K = {rho.size}")
    sigma_a2 = 1.0 / task.P if sigma_a2 is None else check_float(sigma_a2, "sigma_a2", minimum=0.0, strict=True)
    st = DeepState(rho, Yc, task.P * sigma_a2, task.P, T)
    if start == "frozen":
        from .erf_deep_frozen import solve_frozen
        if not frozen:
            raise ValueError("start='frozen' needs frozen=dict(fractions=..., d0=..., B0=..., t0=...)")
        return solve_frozen(task, T, sigma_a2=sigma_a2, N=N, progress=progress, **frozen)
    if start not in ("saturated", "one_layer", "coded"):
        raise ValueError(f"start must be 'saturated', 'one_layer', 'coded' or 'frozen', got {start!r}")
    opts = dict(sweeps=check_int(sweeps, "sweeps", minimum=0), start="one_layer" if start == "one_layer" else "saturated")
    if x0 is None:
        x = _start(task, T, st, opts)
    else:                                   # warm start of the feature modes: the branch of ``start``
        x = np.asarray(x0, float)
        st.A = (st.s * (st.rho @ st.Yc) / (T + st.s))[None, :] if start == "saturated" else None
    coded = start == "coded"
    x, nfev = _nested(st, x, tol, max_outer, mix, progress, callback, search=coded, n_random=n_random if coded else 0,
                      seed=seed)
    R, info = evaluate(x, st, search=global_search, n_random=n_random if global_search else 0, seed=seed)
    if global_search and len(info["feature"]["A"]) != len(st.A):   # a new feature mode: continue from there
        st.A = info["feature"]["A"]
        x, k = _nested(st, x, tol, max_outer, mix, progress)
        nfev += k
        R, info = evaluate(x, st, search=True, n_random=n_random, seed=seed)
    res = float(np.max(np.abs(R)))
    ok = res <= tol
    msg = (f"converged: residual {res:.1e}" if ok else f"NOT converged: residual {res:.2e} > tol {tol:.1e}")
    if not global_search:
        msg += "; global search of feature modes skipped (branch of the start)"
    msg += (f"; feature layer {len(info['feature']['A'])} code(s), first layer "
            f"{len(info['layer1']['modes']['u'])} mode(s) of p(u)")
    return assemble(task, st, info, classes, x, res, ok, msg, nfev, sigma_a2, N)


def _solve_t(st, t, lam, C):
    """(S2) for t at fixed (λ, C): MINPACK hybr on K·m unknowns with frozen quadrature grids."""
    def fun(y):
        R, info = evaluate(st.pack(y.reshape(st.K, st.m), lam, C), st)
        st.A = info["feature"]["A"]
        return R[:st.K * st.m]

    fun(t.ravel())
    with st.geometry.freeze():
        sol = optimize.root(fun, t.ravel(), method="hybr", options=dict(eps=1e-6, xtol=1e-9))
    return sol.x.reshape(st.K, st.m), sol.nfev + 1


def _psd(C, floor=1e-9):
    """Symmetrize and floor the eigenvalues of C at ``floor`` × its largest (C = ⟨∂G ∂Gᵀ⟩ is PSD;
    its common-mode eigenvalue is O(1/P²) and can round below zero)."""
    w, V = np.linalg.eigh(0.5 * (C + C.T))
    return (V * np.maximum(w, floor * w.max())) @ V.T


def _geometric_step(C, G, w):
    """Matrix geometric interpolation ``C^½ (C^-½ G C^-½)^w C^½`` (stays PSD; w = 1 gives G) and the
    log-distance ``max |log eig(C^-½ G C^-½)|`` between C and G."""
    lc, V = np.linalg.eigh(C)
    R = (V * np.sqrt(lc)) @ V.T
    Ri = (V / np.sqrt(lc)) @ V.T
    lm, W = np.linalg.eigh(Ri @ _psd(G) @ Ri)
    lm = np.maximum(lm, 1e-300)
    return _psd(R @ ((W * lm ** w) @ W.T) @ R), float(np.max(np.abs(np.log(lm))))


def _nested(st, x, tol, max_outer, mix, progress=False, callback=None, search=False, n_random=0, seed=0):
    """Fixed point in (λ, C) ← (⟨∂²_v G⟩, ⟨∂_v G ∂_v Gᵀ⟩), t solved exactly at each step.

    ``search=False``: linear mixing ``mix`` with the feature modes of the warm start (the branch of the
    start). ``search=True`` (the coded branch, docs §8): the feature modes are searched globally at every
    sweep (coded modes enter and leave), and C moves along the matrix geometric path towards
    ⟨∂_v G ∂_v Gᵀ⟩ by a step w ≤ ``mix`` that halves whenever the log-distance between the two grows
    (the map C → ⟨∂_v G ∂_v Gᵀ⟩ is steep and decreasing, ∝ B_con⁻², so linear mixing overshoots).
    """
    t, lam, C = st.unpack(x)
    nfev, w, dist_old = 0, mix, np.inf
    for it in range(max_outer):
        t, k = _solve_t(st, t, lam, C)
        R, info = evaluate(st.pack(t, lam, C), st, search=search, n_random=n_random, seed=seed + it)
        st.A = info["feature"]["A"]
        nfev += k + 1
        res = float(np.max(np.abs(R)))
        if progress:
            print(f"  [erf depth 2] sweep {it}: max |residual| {res:.3e} (t {np.max(np.abs(R[:st.K * st.m])):.1e}), "
                  f"feature codes {info['feature']['codes'].tolist()}", flush=True)
        if callback is not None:
            callback(st.pack(t, lam, C), info, res)
        if res <= tol:
            break
        if search:
            C_new, dist = _geometric_step(C, info["gg"], w)
            if dist > dist_old:
                w *= 0.5
                C_new = _geometric_step(C, info["gg"], w)[0]
            dist_old = dist
            lam, C = (1 - w) * lam + w * info["gvv"], C_new
        else:
            lam = (1 - mix) * lam + mix * info["gvv"]
            C = _psd((1 - mix) * C + mix * info["gg"])
    return st.pack(t, lam, C), nfev
