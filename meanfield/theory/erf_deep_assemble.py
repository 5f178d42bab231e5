"""The :class:`Solution` of the two-hidden-layer sigmoid theory (docs/theory_erf_deep.md §6).

Layer-resolved outputs: kernels ``K1`` (first layer) and ``K2`` (feature layer) on the training
inputs, first-layer code fractions and preactivation densities (a continuous mixture over the
Hubbard–Stratonovich field u), feature-layer codes, fractions, readouts and per-code densities.
"""
from __future__ import annotations

import numpy as np

from . import erf_deep_layers as lay
from .solution import Solution

__all__ = ["assemble", "mixture_density"]

_ZGRID = np.linspace(-6.0, 6.0, 481)


def mixture_density(weights, centers, density, z=_ZGRID, bins=240):
    """``Σ_k w_k density(center_k, z)`` with the (w, center) pairs first binned on a 1-D grid."""
    lo, hi = centers.min(), centers.max()
    if hi - lo < 1e-12:
        return density(np.array([lo]), z)[0]
    edges = np.linspace(lo, hi, bins + 1)
    idx = np.clip(np.searchsorted(edges, centers) - 1, 0, bins - 1)
    W = np.bincount(idx, weights, minlength=bins)
    M = np.bincount(idx, weights * centers, minlength=bins)
    keep = W > 1e-14 * W.sum()
    c = M[keep] / W[keep]
    return (W[keep] / W.sum()) @ density(c, z)


def _layer1_density(lam_c, c, post, z):
    """p(z¹_μ) on class c: ``E_u[N(z;0,1) exp(½λφ² + u_c φ − ψ_c(u_c))]``."""
    p0 = lay.phi(z)[0]

    def dens(u, zz):
        psi = lay.layer1_moments(lam_c, u)["psi"]
        return np.exp(-0.5 * zz ** 2 - 0.5 * np.log(2 * np.pi) + (0.5 * lam_c * p0 + u[:, None]) * p0
                      - psi[:, None])

    return mixture_density(post["w"], post["U"][:, c], dens, z)


def _feature_density(h, d, c, post, z):
    """p(z²_μ | a_γ) on class c: ``E_{v|a}[N(z; v_c, d_c) exp(h φ(z) − G_c(h, v_c))]``."""
    p0 = lay.phi(z)[0]

    def dens(v, zz):
        G = np.array(lay.feature_tables([h], [d], [v], light=True)["G"][0])
        return np.exp(-0.5 * (zz[None] - v[:, None]) ** 2 / d - 0.5 * np.log(2 * np.pi * d) + h * p0 - G[:, None])

    return mixture_density(post["w"], post["U"][:, c], dens, z)


def assemble(task, st, info, classes, x, residual, converged, message, nfev, sigma_a2, N):
    """Build the Solution from an evaluated saddle point (``info`` of :func:`.erf_deep.evaluate`).

    ``info`` keys of the returned Solution:

    * ``t_class`` (K × m), ``rho``, ``classes``, ``x`` (the unknowns (t, λ, vech C)), ``lam`` (λ_c),
      ``C`` (K × K, the class-block part of Λ divided by … see docs §5), ``Lambda`` (P × P conjugate
      field of K1);
    * ``layer1``: ``code_fractions`` (dict code → fraction, codes by ``1[class mean of φ > ½]``),
      ``modes`` (local maxima of p(u): ``u``, ``codes``, ``m``), ``d`` and ``B``
      (``K1 = diag(d_c) + E B Eᵀ``), ``z`` and ``density`` (K × len(z): the preactivation density
      on an input of each class, a mixture over u), ``phi_mean`` (K,);
    * ``feature``: ``F`` (F2 at the modes), ``logweights`` (Laplace), ``readout_covariances``
      ((−P∇²F2)⁻¹), ``phi_mean`` (n × K, ⟨φ⟩ per code and class), ``v_mean`` (n × K), ``z`` and
      ``density`` (n × K × len(z): p(z²_μ | a_γ) per code and class);
    * ``class_output`` (K × m): Σ_γ P_γ ⟨φ⟩_cγ a_γ.
    """
    rho, P = st.rho, task.P
    l1, fl = info["layer1"], info["feature"]
    d, B = info["d"], info["B"]
    E = np.eye(st.K)[classes]
    K1 = E @ B @ E.T + np.diag(d[classes])
    Pw, A = fl["P"], fl["A"]
    phis = np.array([v["phi"] for v in fl["vp"]])
    cov = np.array([v["cov_phi"] for v in fl["vp"]])
    var = np.array([v["var"] for v in fl["vp"]])
    Bf = np.einsum("g,gcd->cd", Pw, cov + np.einsum("gc,gd->gcd", phis, phis))
    df = Pw @ var
    K2 = E @ Bf @ E.T + np.diag(df[classes])
    H = A @ info["t"].T
    dens2 = np.array([[_feature_density(H[g, c], d[c], c, fl["vp"][g]["post"], _ZGRID) for c in range(st.K)]
                      for g in range(len(Pw))])
    dens1 = np.array([_layer1_density(info["lam"][c], c, l1["post"], _ZGRID) for c in range(st.K)])
    Lam = E @ info["C"] @ E.T + np.diag(info["lam"][classes])
    codes = tuple(tuple(int(b) for b in c) for c in fl["codes"])
    layer1 = dict(code_fractions=l1["code_fractions"], modes=l1["modes"], d=d, B=B, z=_ZGRID, density=dens1,
                  phi_mean=l1["post"]["avg"]("m"))
    feature = dict(F=fl["F"], logweights=fl["logw"], readout_covariances=np.linalg.inv(-P * fl["H"]),
                   phi_mean=phis, v_mean=np.array([v["v_mean"] for v in fl["vp"]]), z=_ZGRID, density=dens2,
                   d=df, B=Bf)
    info_out = dict(t_class=info["t"], rho=rho, classes=classes, x=x, lam=info["lam"], C=info["C"], Lambda=Lam,
                    layer1=layer1, feature=feature, class_output=info["out"], s=st.s)

    def density(gamma, z=None):
        if isinstance(gamma, tuple) and gamma in codes:
            gamma = codes.index(gamma)
        if not isinstance(gamma, (int, np.integer)) or not 0 <= gamma < len(Pw):
            raise ValueError(f"code must be an index in [0, {len(Pw)}) or one of {codes}, got {gamma!r}")
        if z is None:
            return _ZGRID, dens2[gamma]
        z = np.asarray(z, float)
        return z, np.array([_feature_density(H[gamma, c], d[c], c, fl["vp"][gamma]["post"], z) for c in range(st.K)])

    return Solution(nonlinearity="erf", depth=2, T=st.T, sigma_a2=sigma_a2, field=info["t"][classes],
                    kernels=(task.K0, K1, K2), converged=bool(converged), residual=float(residual), message=message,
                    nit=int(nfev), U=np.einsum("g,gi,gj->ij", Pw, A, A), codes=codes,
                    code_fractions=np.array(Pw, float), readouts=np.array(A), N=N, finite_P=True, task=task,
                    info=info_out, _density=density)
