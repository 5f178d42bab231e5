"""The 1 ↔ 2-symmetric sub-branch of the depth-2 sigmoid theory (docs/theory_erf_deep.md §9).

On the toy task with classes 1 and 2 exchangeable, a feature population whose codes are all
invariant under the exchange (``c₁ = c₂``, e.g. only the saturated 1-1-1) has an exactly invariant
sub-branch: C has no antisymmetric part (``C (e₁ − e₂) = 0``), so the class field u has
``u₁ = u₂``, the first-layer class means coincide, K1's B has no antisymmetric part, the feature
layer's ``v₁ = v₂``, ``∂_v G₁ = ∂_v G₂`` and Λ2's antisymmetric part vanishes again. On it B and C
are singular; the quadratures are done for the merged classes ``{0}, {1 ∪ 2}`` (``n' = (n₀, n₁ + n₂)``,
two-dimensional grids, exact), and the per-class results expanded back (classes 1 and 2 equal;
the first-layer code bits of classes 1 and 2 stay independent given u, each from its own n_c inputs).

The unconstrained solve flows onto this sub-branch (the antisymmetric P·C fell 2.8e-4 → 1.4e-5 in
successive rounds at P = 500, T = 0.02) but cannot sit on it: the quadrature grids must resolve a
v-posterior whose antisymmetric width → 0, and C must stay positive definite. Imposing it removes
both problems.
"""
from __future__ import annotations

import numpy as np

from . import erf_deep_layers as lay

__all__ = ["EXPAND", "layer1_posterior", "v_posterior"]

EXPAND = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])     # merged (0, 1∪2) → classes (0, 1, 2)
_IDX = [0, 1, 1]


def _expand_post(post):
    """A 2-D grid posterior seen as a 3-class one (columns of classes 1 and 2 equal)."""
    tab = post["tables"]
    out = dict(post, U=post["U"][:, _IDX], avg=lambda key: post["avg"](key)[_IDX])
    out["tables"] = lambda key, U: tab(key, U[:, :2])[:, _IDX]
    return out


def _sym(X):
    return EXPAND @ X @ EXPAND.T


def layer1_posterior(lam, C, rho, P, geometry=None):
    """:func:`.erf_deep_layers.layer1_posterior` on the sub-branch (``C`` with ``C (e₁ − e₂) = 0``)."""
    rho2 = np.array([rho[0], rho[1] + rho[2]])
    l1 = lay.layer1_posterior(np.asarray(lam, float)[:2], np.asarray(C, float)[:2, :2], rho2, P, geometry)
    post = _expand_post(l1["post"])
    M, V = post["tables"]("m", post["U"]), np.maximum(post["tables"]("var", post["U"]), 1e-300)
    modes = dict(l1["modes"], u=l1["modes"]["u"][:, _IDX], codes=l1["modes"]["codes"][:, _IDX],
                 m=l1["modes"]["m"][:, _IDX])
    return dict(l1, modes=modes, d=l1["d"][_IDX], B=_sym(l1["B"]), post=post, lam=np.asarray(lam, float),
                C=np.asarray(C, float), code_fractions=lay.layer1_code_fractions(post["w"], M, V, P * rho))


def v_posterior(h, d, B, n, v0=None, key=None, geometry=None):
    """:func:`.erf_deep_layers.v_posterior` on the sub-branch (``h₁ = h₂``, ``d₁ = d₂``, ``B (e₁ − e₂) = 0``)."""
    if abs(h[1] - h[2]) > 1e-9 * (1 + abs(h[1])) or abs(d[1] - d[2]) > 1e-12:
        raise ValueError("the 1 <-> 2 symmetric sub-branch needs h_1 = h_2 and d_1 = d_2 "
                         f"(got h = {h}, d = {d}): a feature code distinguishes classes 1 and 2")
    vp = lay.v_posterior(np.asarray(h, float)[:2], np.asarray(d, float)[:2], np.asarray(B, float)[:2, :2],
                         np.array([n[0], n[1] + n[2]]), None if v0 is None else np.asarray(v0)[:2], key, geometry)
    out = {k: vp[k][_IDX] for k in ("phi", "var", "dd", "gvv", "mode", "v_mean")}
    out.update({k: _sym(vp[k]) for k in ("vv", "gv_gv", "cov_phi")})
    return dict(out, logZ=vp["logZ"], post=_expand_post(vp["post"]))
