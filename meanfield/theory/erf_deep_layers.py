"""Single-neuron problems of the two-hidden-layer sigmoid theory on the toy task (docs/theory_erf_deep.md).

Both layers are class-reduced (K classes, fractions ρ_c, ``n_c = P ρ_c`` inputs per class).

**First layer** (§3 of the docs). Conjugate field ``Λ = diag(λ_c) + E L̂ Eᵀ / P`` (E: P × K class
indicator). After a Hubbard–Stratonovich transform of the class-sum term, a first-layer neuron is a
mixture over ``u ∈ R^K`` with ``p(u) ∝ exp(P F1(u))``,

    F1(u) = −½ uᵀ L̂⁻¹ u + Σ_c ρ_c ψ_c(u_c),   ψ_c(u) = log ∫Dz exp(½ λ_c φ(z)² + u φ(z)),      (L1)

and given u the preactivations are independent, ``p(z_μ | u) ∝ N(z; 0, 1) exp(½ λ_c φ² + u_c φ)``.

**Feature layer** (§4). With ``K1 = diag(d_c) + E B Eᵀ`` a preactivation vector is
``z_μ = v_c + √d_c ε_μ``, ``v ~ N(0, B)``; a neuron is a mixture over readouts a with
``p(a) ∝ exp(P F2(a))``,

    F2(a) = −|a|²/(2s) + (1/P) log E_{v ~ N(0,B)} exp(Σ_c n_c G_c(t_c·a, v_c)),
    G_c(h, v) = log ∫Dε exp(h φ(v + √d_c ε)),                                                (L2)

the v-average done exactly on a 3-D (K-D) grid around its mode.

All one-dimensional integrals are trapezoid sums on fixed grids (spectrally accurate for these
smooth, Gaussian-damped integrands; checked against :func:`meanfield.integrators.tilted_moments`
in the tests).
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy.special import ndtr

from .._kernels.phi import KAPPA
from .erf_deep_grid import Geometry, _dedupe, _lse, _modes, _newton_ascent, grid_posterior  # noqa: F401
# (Geometry and grid_posterior are re-exported: erf_deep and the tests reach them as erf_deep_layers.*)

__all__ = ["phi", "layer1_moments", "Geometry", "grid_posterior", "layer1_posterior", "layer1_code_fractions",
           "feature_tables", "v_posterior", "feature_free_energy", "feature_modes"]

_Z = np.linspace(-10.0, 10.0, 801)
_LOGW_Z = -0.5 * _Z ** 2 + np.log(_Z[1] - _Z[0]) - 0.5 * np.log(2 * np.pi)


def phi(z):
    """φ(z) = Φ(κ z), κ = √(π/2), and its first two derivatives."""
    p = ndtr(KAPPA * z)
    d1 = KAPPA * np.exp(-0.5 * (KAPPA * z) ** 2) / np.sqrt(2 * np.pi)
    return p, d1, -KAPPA ** 2 * z * d1


_PHI_Z = phi(_Z)[0]
_E = np.linspace(-10.0, 10.0, 481)          # ε-grid of the feature-layer integrals (spacing 0.042)
_LOGW_E = -0.5 * _E ** 2 + np.log(_E[1] - _E[0]) - 0.5 * np.log(2 * np.pi)


# ----------------------------------------------------------------------------------------- layer 1
def layer1_moments(lam, U):
    """Moments of φ under ``∝ N(z;0,1) exp(½ λ φ² + u φ)``, elementwise for ``lam``, ``U`` broadcast.

    Returns a dict with ``psi`` (log-partition), ``m`` (mean), ``var``, ``k3``, ``k4`` (cumulants
    of φ, i.e. the u-derivatives of ψ) and ``q`` = ⟨φ²⟩.
    """
    lam, U = np.broadcast_arrays(np.asarray(lam, float), np.asarray(U, float))
    E = _LOGW_Z + (0.5 * lam[..., None] * _PHI_Z + U[..., None]) * _PHI_Z
    psi = _lse(E, axis=-1)
    w = np.exp(E - psi[..., None])
    m = w @ _PHI_Z
    c = _PHI_Z - m[..., None]
    var = np.sum(w * c * c, -1)
    k3 = np.sum(w * c ** 3, -1)
    k4 = np.sum(w * c ** 4, -1) - 3 * var ** 2
    return dict(psi=psi, m=m, var=var, k3=k3, k4=k4, q=var + m * m)


def layer1_posterior(lam, C, rho, P, geometry=None):
    """Exact first-layer single-neuron posterior (L1) for ``u ~ N(0, C)``, ``C = L̂ / P``.

    Returns
    -------
    dict with ``modes`` (local maxima of ``log p(u)``: positions, values, codes ``1[⟨φ⟩_c > ½]``),
    the kernel parts ``d`` (K,) and ``B`` (K × K) of ``K1 = diag(d_c) + E B Eᵀ``
    (``B_cc' = E_u[m_c m_c']``, ``d_c = E_u[Var_c φ]``), the code fractions ``code_fractions``
    (dict; a neuron's code is ``1[class mean of φ > ½]`` with the class mean over its n_c inputs
    Gaussian given u), the grid posterior ``post``. ``geometry``: :class:`Geometry` (quadrature
    settings; while frozen, the stored modes and grid of key ``"layer1"`` are reused).
    """
    K = len(rho)
    n = P * rho
    Q = np.linalg.inv(C)

    def make(c, x):
        mo = layer1_moments(lam[c], x)
        return dict(f=n[c] * mo["psi"], m=mo["m"], var=mo["var"], q=mo["q"])

    def fun(X):
        X = np.atleast_2d(X)
        mo = layer1_moments(lam[None, :], X)
        F = mo["psi"] @ n - 0.5 * np.einsum("ni,ij,nj->n", X, Q, X)
        Gr = n * mo["m"] - X @ Q
        H = np.einsum("nc,cd->ncd", n * mo["var"], np.eye(K)) - Q[None]
        return F, Gr, H

    geometry = Geometry() if geometry is None else geometry
    stored = geometry.get("layer1_modes")
    if stored is not None and geometry.get("layer1") is not None:
        X, F, H = stored
    else:
        bits = np.vstack([np.array(list(itertools.product((0.05, 0.95), repeat=K))), np.full((1, K), 0.5)])
        X, F, H = _modes(fun, (bits * n) @ C, floor=0.5 * np.linalg.eigvalsh(Q)[0])
        geometry.put("layer1_modes", (X, F, H))
    post = grid_posterior(make, Q, np.linalg.slogdet(2 * np.pi * C)[1], X, H, key="layer1", geometry=geometry)
    tab, U, w = post["tables"], post["U"], post["w"]
    M, V = tab("m", U), np.maximum(tab("var", U), 1e-300)
    B = np.einsum("p,pc,pd->cd", w, M, M)
    d = w @ V
    fr = layer1_code_fractions(w, M, V, n)
    mo = layer1_moments(lam[None, :], X)
    return dict(modes=dict(u=X, F=F, H=H, codes=(mo["m"] > 0.5).astype(np.int64), m=mo["m"]),
                d=d, B=0.5 * (B + B.T), code_fractions=fr, post=post, lam=lam, C=C, logZ=post["logZ"])


def layer1_code_fractions(w, M, V, n):
    """Code fractions of a first-layer neuron: ``1[class mean of φ > ½]`` per class, the class mean
    over its ``n_c`` inputs Gaussian given u (mean ``M[:, c]``, variance ``V[:, c] / n_c`` at the grid
    points of weight ``w``)."""
    pon = ndtr((M - 0.5) / np.sqrt(V / n))
    fr = {}
    for code in itertools.product((0, 1), repeat=M.shape[1]):
        c = np.array(code)
        fr[code] = float(w @ np.prod(np.where(c == 1, pon, 1 - pon), axis=1))
    return fr


# ----------------------------------------------------------------------------------- feature layer
def feature_tables(h, d, V, light=False):
    """Per-class tables of the tilted ε-integrals at the class means ``V[c]`` (arrays).

    For ``G_c(h, v) = log ∫Dε exp(h φ(v + √d ε))`` returns dict of lists (one array per class):
    ``G``, ``phi`` = ∂_h G = ⟨φ⟩, ``var`` = ∂²_h G, ``dv`` = ∂_v G = h⟨φ'⟩,
    ``dvv`` = ∂²_v G, ``dd`` = ∂_d G = ½⟨h φ'' + h² φ'²⟩ (heat equation), ``z_mean`` = ⟨z⟩.
    """
    out = {k: [] for k in ("G", "phi", "var", "dv", "dvv", "dd", "z_mean")}
    for c in range(len(h)):
        if light:                       # G, ⟨φ⟩, Var φ, ∂_d G only
            Zc = np.asarray(V[c], float)[:, None] + np.sqrt(d[c]) * _E[None, :]
            p0 = ndtr(KAPPA * Zc)
            p1 = KAPPA * np.exp(-0.5 * (KAPPA * Zc) ** 2) / np.sqrt(2 * np.pi)
            E = _LOGW_E + h[c] * p0
            G = _lse(E, axis=1)
            w = np.exp(E - G[:, None])
            m = np.sum(w * p0, 1)
            out["G"].append(G)
            out["phi"].append(m)
            out["var"].append(np.sum(w * p0 * p0, 1) - m * m)
            s2 = np.sum(w * (h[c] * p1 * (h[c] * p1 - KAPPA ** 2 * Zc)), 1)
            m1 = h[c] * np.sum(w * p1, 1)
            out["dd"].append(0.5 * s2)
            out["dv"].append(m1)
            out["dvv"].append(s2 - m1 * m1)
            continue
        Zc = np.asarray(V[c], float)[:, None] + np.sqrt(d[c]) * _E[None, :]
        p0, p1, p2 = phi(Zc)
        E = _LOGW_E + h[c] * p0
        G = _lse(E, axis=1)
        w = np.exp(E - G[:, None])
        m = np.sum(w * p0, 1)
        m1 = h[c] * np.sum(w * p1, 1)
        s2 = np.sum(w * (h[c] * p2 + (h[c] * p1) ** 2), 1)
        out["G"].append(G)
        out["phi"].append(m)
        out["var"].append(np.sum(w * (p0 - m[:, None]) ** 2, 1))
        out["dv"].append(m1)
        out["dvv"].append(s2 - m1 ** 2)
        out["dd"].append(0.5 * s2)
        out["z_mean"].append(np.sum(w * Zc, 1))
    return out


def _v_mode(h, d, B, n, v0=None):
    """Mode of ``log p(v | a) = Σ_c n_c G_c(h_c, v_c) − ½ vᵀB⁻¹v`` (damped Newton) and its Hessian."""
    Binv = np.linalg.inv(B)
    K = len(h)

    def fun(X):
        X = np.atleast_2d(X)
        tab = feature_tables(h, d, X.T)
        Gs = np.array(tab["G"]).T
        F = Gs @ n - 0.5 * np.einsum("ni,ij,nj->n", X, Binv, X)
        Gr = np.array(tab["dv"]).T * n - X @ Binv
        H = np.einsum("nc,cd->ncd", np.array(tab["dvv"]).T * n, np.eye(K)) - Binv[None]
        return F, Gr, H

    if v0 is None:
        v0 = np.sign(h) * 2.0 * np.sqrt(np.diag(B))
    X, F, G, H = _newton_ascent(fun, np.atleast_2d(v0), floor=0.5 * np.linalg.eigvalsh(Binv)[0])
    return X[0], H[0]


def v_posterior(h, d, B, n, v0=None, key=None, geometry=None):
    """The K-dimensional v-average of (L2) for one field vector ``h`` (exact grid quadrature,
    :func:`grid_posterior` around the mode of ``log p(v | a)``; ``key``, ``geometry``: its grid, see
    :class:`Geometry`).

    Returns
    -------
    dict with ``logZ`` = log E_{v~N(0,B)} exp(Σ n_c G_c), the v-averages ``phi``, ``var``, ``dd``,
    ``gvv`` = ⟨∂²_v G_c⟩ (K,), ``gv_gv`` = ⟨∂_v G_c ∂_v G_c'⟩ and ``cov_phi`` (K × K covariance of
    ⟨φ⟩_c over v), ``vv`` = ⟨v vᵀ⟩, ``v_mean``, ``mode`` and the grid posterior ``post``.
    """
    geometry = Geometry() if geometry is None else geometry
    stored = geometry.get(key)
    if stored is not None:
        mode, H = stored[0], None
    else:
        mode, H = _v_mode(h, d, B, n, v0)

    def make(c, x):
        tab = feature_tables(h[c:c + 1], d[c:c + 1], [x], light=True)
        return {k: (n[c] * v[0] if k == "G" else v[0]) for k, v in tab.items() if v} | \
            dict(f=n[c] * tab["G"][0])

    post = grid_posterior(make, np.linalg.inv(B), np.linalg.slogdet(2 * np.pi * B)[1], mode[None],
                          None if H is None else H[None], key=key, geometry=geometry)
    w, U, tab = post["w"], post["U"], post["tables"]
    ph, gv = tab("phi", U), tab("dv", U)
    mphi = w @ ph
    out = dict(logZ=post["logZ"], phi=mphi, var=post["avg"]("var"), dd=post["avg"]("dd"), mode=mode,
               v_mean=w @ U, vv=np.einsum("p,pc,pd->cd", w, U, U), gvv=post["avg"]("dvv"),
               gv_gv=np.einsum("p,pc,pd->cd", w, gv, gv),
               cov_phi=np.einsum("p,pc,pd->cd", w, ph, ph) - np.outer(mphi, mphi), post=post)
    return out


def feature_free_energy(a, t, d, B, rho, P, s, v0=None, key=None, geometry=None, vpost=None):
    """F2 of (L2) at one readout ``a``, its gradient and Hessian (Laplace in a), and the v-posterior
    (``vpost``: the v-average, default :func:`v_posterior`)."""
    a = np.asarray(a, float)
    n = P * rho
    h = t @ a
    vp = (v_posterior if vpost is None else vpost)(h, d, B, n, v0, key, geometry)
    F = -a @ a / (2 * s) + vp["logZ"] / P
    grad = -a / s + (rho * vp["phi"]) @ t
    M = np.diag(rho * vp["var"]) + P * np.outer(rho, rho) * vp["cov_phi"]
    hess = -np.eye(len(a)) / s + t.T @ M @ t
    return F, grad, hess, vp


def feature_modes(t, d, B, rho, P, s, starts, maxiter=60, gtol=1e-10, geometry=None, vpost=None):
    """Local maxima of F2 reached by damped Newton ascent from each row of ``starts``.

    Newton stops when ``|∇F2| ≤ gtol (1 + |a|) / s`` or when its decrement ``∇F2ᵀ(−∇²F2)⁻¹∇F2``
    falls below ``1e-14 (1 + |F2|)`` (the gradient of the grid quadrature has a ≈ 1e-8 floor; without
    the second test the line search crawled through ≈ 1000 evaluations per maximum at P = 500).

    Returns (A, F, grad norms, Hessians, v-posteriors) of the distinct maxima (F descending).
    The v-grid of start i is stored in ``geometry`` (:class:`Geometry`) under key ``("v", i)``;
    ``vpost`` as in :func:`feature_free_energy`.
    """
    geometry = Geometry() if geometry is None else geometry
    res = []
    for i, a in enumerate(np.atleast_2d(starts)):
        a = np.array(a, float)
        key = ("v", i)
        F, g, H, vp = feature_free_energy(a, t, d, B, rho, P, s, key=key, geometry=geometry, vpost=vpost)
        for _ in range(maxiter):
            if np.linalg.norm(g) <= gtol * (1 + np.linalg.norm(a)) / s:
                break
            lam, V = np.linalg.eigh(-H)
            lam = np.maximum(lam, 0.25 / s)
            D = V @ ((V.T @ g) / lam)
            if g @ D <= 1e-14 * (1.0 + abs(F)):        # predicted gain below rounding: at the maximum
                break                                   # (|g| can sit at the quadrature's 1e-8 floor)
            step, ok = 1.0, False
            for _ in range(30):
                Fn, gn, Hn, vpn = feature_free_energy(a + step * D, t, d, B, rho, P, s, vp["mode"], key, geometry,
                                                      vpost)
                if Fn >= F + 1e-4 * step * (g @ D):
                    ok = True
                    break
                step *= 0.3
            if not ok:
                break
            a, F, g, H, vp = a + step * D, Fn, gn, Hn, vpn
        res.append((a, F, np.linalg.norm(g), H, vp))
    res = [r for r in res if np.linalg.eigvalsh(r[3])[-1] < 0]
    if not res:
        return np.zeros((0, t.shape[1])), np.zeros(0), np.zeros(0), np.zeros((0, t.shape[1], t.shape[1])), []
    A = np.array([r[0] for r in res])
    Fs = np.array([r[1] for r in res])
    k = _dedupe(A, Fs, tol=1e-5)
    return A[k], Fs[k], np.array([res[i][2] for i in k]), np.array([res[i][3] for i in k]), [res[i][4] for i in k]
