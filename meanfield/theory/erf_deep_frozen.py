"""Coded branch of the two-hidden-layer sigmoid theory with a **frozen feature population**
(docs/theory_erf_deep.md §8–9).

:func:`solve_frozen`: the feature code fractions are imposed (a sampled network's feature neurons do
not switch at T = 0.02, and their fractions are not the equilibrium ones: docs §8), every code's
readout at its own maximum of F2 (Laplace in a, exact in v; all modes tracked by Newton,
:class:`Modes`), and t, K1 = (d, B), Λ = (λ, C) solved together by MINPACK ``hybr`` on frozen
quadrature grids, class exchange 1 ↔ 2 imposed; on the 1 ↔ 2-symmetric sub-branch
(:mod:`.erf_deep_merged`) when every imposed code is exchange-invariant.
"""
from __future__ import annotations

import itertools
from contextlib import nullcontext

import numpy as np
from scipy import optimize

from . import erf_deep_layers as lay
from . import erf_deep_merged as merged_branch
from .erf_deep_coded import _sym_basis

__all__ = ["Modes", "find_modes", "frozen_residual", "solve_frozen"]


# ------------------------------------------------------------------- feature layer, Laplace in a
def _codes_starts(t, rho, s, K):
    """Every nonzero code's saturated stationary point ``a = s Σ_{c∈code} ρ_c t_c``."""
    codes = np.array([c for c in itertools.product((0, 1), repeat=K) if any(c)])
    return s * (codes * rho) @ t


class Modes:
    """Feature-layer modes tracked individually: one :class:`Geometry` (frozen v-grid) per mode, so
    the Laplace mixture over *all* of them is a smooth function of (t, d, B) — no mode is dropped."""

    def __init__(self, A, vpost=None):
        self.A = np.array(A, float)
        self.geos = [lay.Geometry() for _ in self.A]
        self.vpost = vpost             # the v-average (default erf_deep_layers.v_posterior)

    def evaluate(self, t, d, B, rho, P, s, frozen=False, weights=None):
        """Newton-tracked modes at (t, d, B); Laplace log-weights (or the fixed ``weights`` of a frozen
        population, one per mode); the (S2) output and the Stein Λ2 (``gvv`` = λ, ``gg`` = C)."""
        rows = []
        for g, a in enumerate(self.A):
            geo = self.geos[g]
            with geo.freeze() if frozen else nullcontext():
                r = lay.feature_modes(t, d, B, rho, P, s, a[None], geometry=geo, vpost=self.vpost)
            if len(r[0]) == 0:
                raise FloatingPointError(f"feature mode {g} lost (not a maximum)")
            rows.append((r[0][0], r[1][0], r[3][0], r[4][0]))
        A = np.array([r[0] for r in rows])
        F = np.array([r[1] for r in rows])
        H = np.array([r[2] for r in rows])
        vps = [r[3] for r in rows]
        logw = P * F - 0.5 * np.linalg.slogdet(-H)[1]
        if weights is None:
            w = np.exp(logw - logw.max())
            w /= w.sum()
        else:
            w = np.asarray(weights, float) / np.sum(weights)
        phis = np.array([v["phi"] for v in vps])
        return dict(A=A, F=F, H=H, vp=vps, logw=logw, P=w, phis=phis,
                    out=np.einsum("g,gc,gj->cj", w, phis, A),
                    gvv=w @ np.array([v["gvv"] for v in vps]),
                    gg=np.einsum("g,gij->ij", w, np.array([v["gv_gv"] for v in vps])),
                    codes=(phis > 0.5).astype(np.int64))


def find_modes(t, d, B, rho, P, s):
    """Distinct feature-layer maxima reached from every code's saturated point (one search)."""
    A, F, _, _, _ = lay.feature_modes(t, d, B, rho, P, s, _codes_starts(t, rho, s, len(rho)))
    return Modes(A)


def _t_sym(y):
    """t (3 × 3) from its 1 ↔ 2 symmetric parameters (t00, t01, t10, t11, t12)."""
    t00, t01, t10, t11, t12 = y
    return np.array([[t00, t01, t01], [t10, t11, t12], [t10, t12, t11]])


def _t_unsym(t):
    return np.array([t[0, 0], t[0, 1], t[1, 0], t[1, 1], t[1, 2]])


# --------------------------------------------------------- frozen feature population: the full saddle
def _lamC(y, V, P):
    """(λ, C) from the symmetric parameters (λ0, λ1, S00, S01, S11, S22), C = V S Vᵀ / P."""
    S = np.zeros((3, 3))
    S[0, 0], S[0, 1], S[1, 1], S[2, 2] = y[2:]
    S[1, 0] = S[0, 1]
    return np.array([y[0], y[1], y[1]]), V @ S @ V.T / P


def _lamC_unsym(lam, C, V, P):
    S = V.T @ C @ V * P
    return np.array([lam[0], lam[1], S[0, 0], S[0, 1], S[1, 1], S[2, 2]])


def frozen_residual(x, modes, weights, rho, Yc, P, s, T, geo1, frozen=True, merged=False):
    """Residual of the saddle with a frozen feature population (fixed code fractions ``weights``).

    ``x = (t: 5 symmetric parameters, λ0, λ1, S00, S01, S11, S22)``; equations (S2) for t and
    Λ = Λ2 (Stein, averaged over the population) for (λ, C), the C rows multiplied by P.
    ``merged``: on the 1 ↔ 2-symmetric sub-branch (:mod:`.erf_deep_merged`; S22 must be 0 and
    ``modes.vpost`` its v-average).
    """
    V = _sym_basis(3)
    t = _t_sym(x[:5])
    lam, C = _lamC(x[5:], V, P)
    if np.linalg.eigvalsh(C[:2, :2] if merged else C)[0] <= 0:
        raise FloatingPointError("C is not positive definite")
    posterior = merged_branch.layer1_posterior if merged else lay.layer1_posterior
    with geo1.freeze() if frozen else nullcontext():
        l1 = posterior(lam, C, rho, P, geometry=geo1)
    ev = modes.evaluate(t, l1["d"], l1["B"], rho, P, s, frozen=frozen, weights=weights)
    R_t = _t_unsym(Yc - T * t - ev["out"])
    R_l = _lamC_unsym(ev["gvv"], ev["gg"], V, P) - x[5:]
    return np.concatenate([R_t, R_l]), dict(t=t, lam=lam, C=C, layer1=l1, feature=ev)


def _swap12(code):
    return (code[0], code[2], code[1])


def solve_frozen(task, T, fractions, d0, B0, t0, *, lam0=None, C0=None, sigma_a2=None, tol=1e-4, rounds=8, N=None,
                 symmetric=None, progress=False):
    """Saddle of the depth-2 theory with a *frozen* feature-layer population (docs §8).

    The feature-layer code fractions are given (``fractions``: dict code → fraction, e.g. from a sampled
    network whose feature neurons never switch); every code's readout sits at its own maximum of F2
    (Laplace in a, exact in v), and t, the first-layer kernel K1 = (d, B) and its conjugate Λ = (λ, C)
    are solved self-consistently: (S2) with the fixed fractions and Λ = Σ_γ P_γ Λ2_γ (Stein), with the
    first layer exact (continuous u-mixture). Class exchange 1 ↔ 2 imposed (K = 3, ρ1 = ρ2).

    Parameters
    ----------
    task : Task
        Toy task with three classes, classes 1 and 2 exchangeable.
    T : float
    fractions : dict
        Feature code → fraction (codes related by 1 ↔ 2 are averaged).
    d0, B0, t0 : ndarray
        Start: first-layer kernel blocks (K,), (K, K) and class field (K × m).
    lam0, C0 : ndarray, optional
        Start of Λ; default the feature layer's Stein Λ2 at the start.
    tol : float
        ``converged`` when the max-norm residual, re-evaluated on freshly placed quadrature grids, is
        ≤ tol: (S2) in units of the targets, the Λ equations relative to max(1, |λ|) and max(1, |P C|)
        entrywise. The grids are accurate to ≈ 1e-5 relative (docs §3): the default is 10× that.
    symmetric : bool, optional
        Solve on the 1 ↔ 2-symmetric sub-branch (:mod:`.erf_deep_merged`: no antisymmetric part in C
        and K1, classes 1 and 2 merged in the quadratures). Default: when every imposed feature
        code is invariant under the exchange (then the sub-branch is exactly invariant).
    rounds : int
        At most this many MINPACK ``hybr`` solves on frozen grids, the grids re-placed between rounds
        (a grid placed at the start can be far off at the round's solution when the first layer's
        class contrast changes by orders of magnitude, as at P = 500, so a round may end worse than
        it started; the rounds stop after two without a 10 % fall of the fresh-grid residual, and
        the best point is returned).

    Returns
    -------
    Solution
        As :func:`.erf_deep.solve_erf_deep` (``info["layer1"]``, ``info["feature"]``, …);
        ``info["frozen_fractions"]`` holds the imposed fractions.
    """
    from .relu_toy import class_reduction
    from .erf_deep import DeepState
    from .erf_deep_assemble import assemble
    rho, Yc, classes = class_reduction(task, tol=1e-10)
    P = task.P
    if len(rho) != 3 or abs(rho[1] - rho[2]) > 1e-12 or np.max(np.abs(Yc[[0, 2, 1]][:, [0, 2, 1]] - Yc)) > 1e-12:
        raise NotImplementedError("frozen-population solve: three classes with classes 1 and 2 exchangeable")
    sigma_a2 = 1.0 / P if sigma_a2 is None else float(sigma_a2)
    s = P * sigma_a2
    sw = [0, 2, 1]
    d0 = 0.5 * (d0 + d0[sw])
    B0 = 0.5 * (B0 + B0[sw][:, sw])
    t0 = _t_sym(_t_unsym(0.5 * (t0 + t0[sw][:, sw])))
    fr = {tuple(c): 0.5 * (p + fractions.get(_swap12(tuple(c)), 0.0)) for c, p in fractions.items()}
    fr.update({_swap12(c): p for c, p in fr.items()})
    fr = {c: p for c, p in fr.items() if p > 0 and any(c)}
    found = find_modes(t0, d0, B0, rho, P, s)
    ev = found.evaluate(t0, d0, B0, rho, P, s)
    mcodes = [tuple(int(b) for b in c) for c in ev["codes"]]
    missing = [c for c in fr if c not in mcodes]
    if missing:
        raise ValueError(f"no feature-layer maximum with code(s) {missing} at the start (found {mcodes})")
    keep = [mcodes.index(c) for c in fr]
    merged = all(c[1] == c[2] for c in fr) if symmetric is None else bool(symmetric)
    if merged and not all(c[1] == c[2] for c in fr):
        raise ValueError(f"symmetric=True needs feature codes invariant under 1 <-> 2, got {sorted(fr)}")
    A0 = ev["A"][keep]
    if merged:
        A0[:, 1:] = A0[:, 1:].mean(axis=1, keepdims=True)
    modes = Modes(A0, vpost=merged_branch.v_posterior if merged else None)
    w = np.array([fr[mcodes[i]] for i in keep])
    V = _sym_basis(3)
    if lam0 is None or C0 is None:
        e0 = modes.evaluate(t0, d0, B0, rho, P, s, weights=w)
        lam0, C0 = e0["gvv"], e0["gg"]
    x = np.concatenate([_t_unsym(t0), _lamC_unsym(0.5 * (lam0 + lam0[sw]), 0.5 * (C0 + C0[sw][:, sw]), V, P)])
    if merged:
        x[10] = 0.0                    # no antisymmetric part of P·C on the sub-branch
    nx = 10 if merged else 11          # unknowns (S22 is not one on the sub-branch)
    geo1 = lay.Geometry()
    nfev, history = 0, []

    def fun(y):
        try:
            return frozen_residual(np.concatenate([y, [0.0]]) if merged else y, modes, w, rho, Yc, P, s, T, geo1,
                                   merged=merged)[0][:nx]
        except (FloatingPointError, np.linalg.LinAlgError):
            return np.full(nx, 1e3)

    def fresh(x):                      # residual on freshly placed grids, relative to max(1, |value|)
        R, info = frozen_residual(x, modes, w, rho, Yc, P, s, T, geo1, frozen=False, merged=merged)
        scale = np.concatenate([np.ones(5), np.maximum(1.0, np.abs(x[5:]))])
        return float(np.max(np.abs(R) / scale)), info

    res, info = fresh(x)
    best, stalled = (res, x, info), 0
    for rnd in range(rounds):
        if res <= tol:
            break
        modes.A = info["feature"]["A"]
        # unknowns shifted and scaled to y = 1 + (x − x_r) / max(|x_r|, 0.1), so that MINPACK's relative
        # forward-difference step √eps |y| = 1e-5 is ≥ 1e-6 in x: relative to |x| it was 1e-8 for the
        # small P·C entries at T = 0.2 (Jacobian lost in the quadrature's noise; stall at 1.9e-4), and
        # at √eps = 1e-3 (eps = 1e-6) hybr stalled at 1.6e-4 at P = 500, T = 0.02
        xr, sc = x[:nx].copy(), np.maximum(np.abs(x[:nx]), 0.1)
        sol = optimize.root(lambda y: fun(xr + (y - 1.0) * sc), np.ones(nx), method="hybr",
                            options=dict(eps=1e-10, xtol=1e-10))
        nfev += sol.nfev
        if np.max(np.abs(sol.fun)) < 1e2:
            x = np.concatenate([xr + (sol.x - 1.0) * sc, x[nx:]])
            res, info = fresh(x)
        history.append(dict(round=rnd, frozen_residual=float(np.max(np.abs(sol.fun))), residual=res, nfev=sol.nfev))
        if progress:
            print(f"  [erf depth 2, frozen feature population] round {rnd}: residual {res:.2e} "
                  f"(frozen grids {history[-1]['frozen_residual']:.1e}, {sol.nfev} evaluations)", flush=True)
        progress_made = res < 0.9 * best[0]
        if res < best[0]:          # a round can end worse (its grids were placed far from its solution)
            best = (res, x, info)
        stalled = 0 if progress_made else stalled + 1
        if stalled == 2:           # two rounds without a 10 % fall: the quadrature floor
            break
    res, x, info = best
    ok = res <= tol
    st = DeepState(rho, Yc, s, P, T)
    fl = info["feature"]
    info.update(d=info["layer1"]["d"], B=info["layer1"]["B"], out=fl["out"])
    msg = (f"{'converged' if ok else 'NOT converged'}: residual {res:.1e} (tol {tol:.0e}, fresh quadrature grids); "
           f"frozen feature population {len(w)} code(s)")
    sol = assemble(task, st, info, classes, x, res, ok, msg, nfev, sigma_a2, N)
    sol.info["frozen_fractions"] = dict(zip([mcodes[i] for i in keep], w / w.sum()))
    sol.info["symmetric_subbranch"] = merged
    sol.info["history"] = history
    return sol
