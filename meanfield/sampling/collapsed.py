"""`sample_collapsed`: readout-collapsed Gibbs sampler with mode jumps for one-hidden-layer networks.

The HMC sampler (:func:`meanfield.sample`) moves all weights together by small steps. A sigmoid
neuron's posterior given the rest of the network is multimodal — one mode per code — and on
structured data (digits) the modes are separated by barriers that local moves do not cross at any
useful T: the network freezes with whatever code populations it had when the barriers rose, and
its state depends on the annealing history (docs/figures.md, Fig. 6).

This sampler targets the same posterior (THEORY.md §1) with the Gaussian readout integrated out
exactly (:mod:`meanfield._kernels.collapsed`). Each sweep visits every neuron with

* an elliptical slice step on its preactivations (exact for its conditional, no step size), and
* ``jumps`` independence Metropolis–Hastings proposals from a Gaussian mixture with one component
  per code, fitted to the network's own neurons during the second half of the warm-up and frozen
  afterwards. A neuron can thereby jump between the modes of its conditional; the
  Metropolis–Hastings ratio keeps the posterior invariant whatever the mixture is, so the mixture
  only decides how fast the code populations equilibrate, not where they go.

Readouts are drawn from their exact Gaussian conditional at every stored sample, so the result is a
:class:`Samples` object usable with :func:`predict_samples`, :mod:`meanfield.analysis` and
:func:`meanfield.compare`.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
from scipy import linalg

from .._kernels.collapsed import collapsed_sweep
from .._validation import as_nonlinearity, check_float, check_int, check_output_path, open_npz
from ..tasks import Task
from .geometry import first_layer_geometry
from .compile import precompiled
from .health import assess, warn
from .hmc import _task_fingerprint
from .memory import collapsed_memory_bytes, refuse_if_too_large
from .progress import Progress
from .storage import TRACE_KEYS, Samples, atomic_savez


COLD_COMPILE_SECONDS = 60     # collapsed_sweep from an empty numba cache, 2-core machine


def _compile_sweep(phi, m):
    """One sweep of a 2-neuron, 2-input problem with the run's numba types (compiles outside the timed loop)."""
    C, B = np.zeros((2, 2)), np.eye(2)
    Phi = np.ascontiguousarray(phi.phi(C))
    mix = _empty_mixture(2)
    collapsed_sweep(phi.code, phi.prog, C, C.copy(), Phi, np.eye(2), B, np.zeros((2, m)), 1.0, 1.0, mix["mus"],
                    mix["L"], mix["Linv"], mix["logw"], mix["logdet"], 0, np.uint64(0), 0, 1,
                    np.zeros(3, dtype=np.int64))


def _m_inverse(Phi, T, c):
    """(T I + c ΦᵀΦ)⁻¹ via Cholesky."""
    P = Phi.shape[1]
    M = T * np.eye(P) + c * (Phi.T @ Phi)
    return np.ascontiguousarray(linalg.cho_solve(linalg.cho_factor(M), np.eye(P)))


def _initial_coordinates(init, N, B, seed):
    """Coordinates C (N × r) with preactivations Z = C Bᵀ: a prior draw, or the least-squares fit
    of given preactivations (array (N, P) or the last stored sample of a depth-1 :class:`Samples`)."""
    if init is None:
        return np.random.default_rng(seed).standard_normal((N, B.shape[1]))
    if isinstance(init, Samples):
        if init.depth != 1 or not init.preactivations:
            raise ValueError("init: Samples must be depth 1 with preactivations recorded")
        init = init.preactivations[0][-1]
    try:
        Z0 = np.asarray(init, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"init must be Samples or preactivations (N, P), got {type(init).__name__}") from None
    if Z0.shape != (N, B.shape[0]) or not np.all(np.isfinite(Z0)):
        raise ValueError(f"init must be finite preactivations of shape (N, P) = {(N, B.shape[0])}, got {Z0.shape}")
    return np.linalg.lstsq(B, Z0.T, rcond=None)[0].T.copy()


def fit_mixture(C_hist, codes_hist, inflate=1.1):
    """Gaussian mixture over the neurons' coordinates, one component per code (proposal for mode jumps).

    Parameters
    ----------
    C_hist : ndarray (n, r)
        Neuron coordinates collected during warm-up.
    codes_hist : ndarray (n, m) of bool
        Their codes.
    inflate : float
        Standard deviations are scaled by this factor (heavier proposal tails).

    Returns
    -------
    dict
        ``mus`` (K, r), ``L`` and ``Linv`` (K, r, r) Cholesky factors of the covariances and their
        inverses, ``logdet`` (K,) log-determinants of ``L``, ``logw`` (K,) log weights (uniform),
        ``codes`` (K, m). Each covariance is shrunk towards the pooled within-code covariance
        (weight r samples), so codes seen in few neurons still get a full-rank component.
    """
    C_hist = np.asarray(C_hist, dtype=np.float64)
    r = C_hist.shape[1]
    keys, inv = np.unique(np.asarray(codes_hist, dtype=np.int8), axis=0, return_inverse=True)
    inv = inv.ravel()
    groups = [C_hist[inv == k] for k in range(len(keys))]
    within = sum((len(g) - 1) * np.cov(g.T).reshape(r, r) for g in groups if len(g) > 1)
    dof = sum(len(g) - 1 for g in groups if len(g) > 1)
    pooled = within / dof if dof > 0 else np.eye(r)
    mus, Ls, Linvs, logdet, codes = [], [], [], [], []
    for key, g in zip(keys, groups):
        if len(g) < 2:
            continue
        S = np.cov(g.T).reshape(r, r)
        Sig = (len(g) * S + r * pooled) / (len(g) + r) * inflate ** 2 + 1e-8 * np.eye(r)
        L = np.linalg.cholesky(Sig)
        mus.append(g.mean(axis=0))
        Ls.append(L)
        Linvs.append(linalg.solve_triangular(L, np.eye(r), lower=True))
        logdet.append(np.sum(np.log(np.diag(L))))
        codes.append(key.astype(bool))
    K = len(mus)
    return dict(mus=np.array(mus).reshape(K, r), L=np.array(Ls).reshape(K, r, r),
                Linv=np.array(Linvs).reshape(K, r, r), logdet=np.array(logdet),
                logw=np.full(K, -np.log(max(K, 1))), codes=np.array(codes).reshape(K, keys.shape[1]))


def _empty_mixture(r):
    return dict(mus=np.zeros((0, r)), L=np.zeros((0, r, r)), Linv=np.zeros((0, r, r)), logdet=np.zeros(0),
                logw=np.zeros(0))


def _draw_readouts(Phi, Y, T, sig2, rng):
    """A (N × m) from its Gaussian conditional: precision I/σ_a² + ΦΦᵀ/(NT), mean Λ⁻¹ΦY/T."""
    N = Phi.shape[0]
    Lam = np.eye(N) / sig2 + (Phi @ Phi.T) / (N * T)
    cf = linalg.cho_factor(Lam, lower=True)
    mean = linalg.cho_solve(cf, Phi @ Y / T)
    return mean + linalg.solve_triangular(cf[0], rng.standard_normal(mean.shape), lower=True, trans="T")


def sample_collapsed(task, nonlinearity, N, T=0.01, sweeps=2000, warmup=None, seed=0, thin=1, init=None,
                     sigma_a2=None, jumps=1, max_shrink=60, checkpoint=None, checkpoint_every=100, progress=None):
    """Sample a one-hidden-layer network's posterior with the readout integrated out (mode-jumping Gibbs).

    Parameters
    ----------
    task : Task
        Training data.
    nonlinearity : str or Nonlinearity
        φ of the hidden layer.
    N : int
        Hidden width (≥ 2).
    T : float
        Rescaled temperature (> 0); likelihood ``exp(−(N/2T) |Y − f|²)``.
    sweeps : int
        Gibbs sweeps in total (each visits every neuron once).
    warmup : int, optional
        Sweeps discarded (default ``sweeps // 2``). The jump proposal is fitted on the second half
        of the warm-up and used from then on.
    seed : int
        Random seed (counter-based: results depend on it only).
    thin : int
        Store every ``thin``-th sweep after warm-up.
    init : None, array (N, P) or Samples
        Start: a prior draw, given preactivations, or the last sample of a depth-1 run.
    sigma_a2 : float, optional
        Readout prior variance (default: the nonlinearity's scaling, as in :func:`meanfield.sample`).
    jumps : int
        Mode-jump proposals per neuron per sweep after warm-up (0: slice steps only).
    max_shrink : int
        Cap on the elliptical-slice bracket shrinkages per step.
    checkpoint : str or path, optional
        File for the run's state, written atomically every ``checkpoint_every`` sweeps and at the end.
        If it exists, the run resumes from it (a killed run continues exactly as if uninterrupted);
        a checkpoint of a different run (task, configuration or seed) is refused.
    checkpoint_every : int
        Sweeps between checkpoints.
    progress : bool, optional
        Progress bar on stderr (default: when stderr is a terminal).

    Returns
    -------
    Samples
        ``config["space"] == "collapsed"``; ``traces["accept_prob"]`` is the per-sweep jump
        acceptance, ``traces["train_error"]`` the error of the conditional mean output
        ``Y − T M⁻¹Y``; ``diagnostics`` hold the code fractions of the first and second half of the
        stored samples (stationarity) and the jump acceptance. ``final_state`` is the flattened
        coordinate matrix C (N × r, ``Z = C Bᵀ``); ``gradient_evals`` counts conditional
        log-likelihood evaluations (the sampler uses no gradients).
    """
    if not isinstance(task, Task):
        raise TypeError(f"task must be a meanfield Task, got {type(task).__name__}")
    phi = as_nonlinearity(nonlinearity)
    N = check_int(N, "N", minimum=2)
    T = check_float(T, "T", minimum=0.0, strict=True)
    sweeps = check_int(sweeps, "sweeps", minimum=2)
    warmup = sweeps // 2 if warmup is None else check_int(warmup, "warmup", minimum=0)
    if warmup >= sweeps:
        raise ValueError(f"warmup must be < sweeps = {sweeps}, got {warmup}")
    thin = check_int(thin, "thin", minimum=1)
    jumps = check_int(jumps, "jumps", minimum=0)
    max_shrink = check_int(max_shrink, "max_shrink", minimum=1)
    checkpoint_every = check_int(checkpoint_every, "checkpoint_every", minimum=1)
    checkpoint = None if checkpoint is None else check_output_path(checkpoint, "checkpoint")
    seed = check_int(seed, "seed", minimum=0)
    sig2 = phi.sigma_a2(task.P, 1) if sigma_a2 is None else check_float(sigma_a2, "sigma_a2", minimum=0.0, strict=True)
    P, m = task.P, task.m
    c = sig2 / N
    B = np.ascontiguousarray(first_layer_geometry(task, "preactivation")[0].T)        # P × r, B Bᵀ = K0
    r = B.shape[1]
    code_bits = m + (int(task.labels.max()) + 1 if phi.name == "erf" else 0)
    refuse_if_too_large(collapsed_memory_bytes(N, P, m, r, sweeps, warmup, len(range(warmup, sweeps, thin)),
                                               code_bits))
    C = np.ascontiguousarray(_initial_coordinates(init, N, B, seed))
    Z = np.ascontiguousarray(C @ B.T)
    Phi = np.ascontiguousarray(phi.phi(Z))
    Y = np.ascontiguousarray(task.Y, dtype=np.float64)
    mix = _empty_mixture(r)
    labels = task.labels
    collect_from = warmup // 2
    C_hist, code_hist = [], []
    stored = list(range(warmup, sweeps, thin))
    S = len(stored)
    readouts = np.zeros((S, N, m))
    pre = np.zeros((S, N, P), dtype=np.float32)
    K1 = np.zeros((P, P))
    fbar = np.zeros((P, m))
    traces = {k: np.zeros(sweeps) for k in TRACE_KEYS}
    traces["temperature"][:] = T
    traces["energy"][:] = np.nan
    traces["step_size"][:] = np.nan
    rng = np.random.default_rng([seed, 7])
    stats = np.zeros(3, dtype=np.int64)
    config = dict(N=N, depth=1, T=T, P=P, m=m, N0=task.N0, nonlinearity=phi.name, sigma_a2=sig2, space="collapsed",
                  seed=seed, steps=sweeps, warmup=warmup, thin=thin, jumps=jumps)
    st = dict(C=C, Z=Z, Phi=Phi, stats=stats, mix=mix, C_hist=C_hist, code_hist=code_hist, readouts=readouts,
              pre=pre, K1=K1, fbar=fbar, traces=traces, k_store=0, s=0, wall=0.0)
    ident = dict(config, max_shrink=max_shrink, init=None if init is None else "given",
                 task=_task_fingerprint(task))
    if checkpoint is not None and os.path.exists(checkpoint):
        _load_state(checkpoint, ident, st, rng)
    C, Z, Phi, stats, mix = st["C"], st["Z"], st["Phi"], st["stats"], st["mix"]
    with precompiled((collapsed_sweep,), "collapsed-sampler kernels", COLD_COMPILE_SECONDS):
        _compile_sweep(phi, m)
    Minv = _m_inverse(Phi, T, c)
    bar = Progress(sweeps, enabled=progress, start=st["s"])
    tic = time.perf_counter() - st["wall"]
    prog = phi.prog
    for s in range(st["s"], sweeps):
        if s == warmup and jumps and st["C_hist"]:
            mix = st["mix"] = fit_mixture(np.concatenate(st["C_hist"]), np.concatenate(st["code_hist"]))
        n_jump = jumps if (s >= warmup and len(mix["mus"])) else 0
        before = stats.copy()
        collapsed_sweep(phi.code, prog, C, Z, Phi, Minv, B, Y, c, sig2, mix["mus"], mix["L"], mix["Linv"],
                        mix["logw"], mix["logdet"], n_jump, np.uint64(seed), s, max_shrink, stats)
        Minv = _m_inverse(Phi, T, c)                  # from scratch: no drift of the rank-one updates
        t = Minv @ Y
        traces["train_error"][s] = T * T * np.sum(t * t) / (P * m)
        traces["accept_prob"][s] = (stats[2] - before[2]) / max(stats[1] - before[1], 1)
        if collect_from <= s < warmup and jumps:
            st["C_hist"].append(C.copy())
            st["code_hist"].append(_cluster_codes(Phi, t, labels, phi.name))
        if s >= warmup and (s - warmup) % thin == 0:
            k = st["k_store"]
            readouts[k] = _draw_readouts(Phi, Y, T, sig2, rng)
            pre[k] = Z
            K1 += Phi.T @ Phi / N
            fbar += Y - T * t
            st["k_store"] = k + 1
        st["s"] = s + 1
        if checkpoint is not None and (st["s"] % checkpoint_every == 0 or st["s"] == sweeps):
            st["wall"] = time.perf_counter() - tic
            _save_state(checkpoint, ident, st, rng)
        bar.update(s + 1, err=float(traces["train_error"][s]), jump=float(traces["accept_prob"][s]))
    bar.close()
    wall = time.perf_counter() - tic
    codes = np.array([_cluster_codes(phi.phi(np.asarray(z, dtype=np.float64)), None, labels, phi.name, a)
                      for z, a in zip(pre, readouts)]) if S else np.zeros((0, N, 1), dtype=bool)
    half = S // 2
    split = codes.shape[-1] - m or None
    diag = dict(jump_acceptance=float(stats[2] / max(stats[1], 1)), jump_proposals=int(stats[1]),
                mixture_components=int(len(mix["mus"])),
                code_fractions_first_half=_fractions(codes[:max(half, 1)], split),
                code_fractions_second_half=_fractions(codes[half:], split))
    health = assess(traces, config, readouts, fbar / S, task.Y, labels, [pre], phi)
    warn(health)
    return Samples(readouts=readouts, preactivations=[pre], kernels=(task.K0, K1 / S), mean_prediction=fbar / S,
                   traces=traces, iterations=np.array(stored), config=config, wall_time=wall,
                   gradient_evals=int(stats[0]), final_state=C.ravel().copy(), diagnostics=diag, health=health)


def _cluster_codes(Phi, t, labels, name, readouts=None):
    """Per-neuron code used to group neurons: the class code (class-mean activation above ½, sigmoid
    only, :func:`meanfield.analysis.neuron_codes`) joined with the readout sign pattern (the sign of
    the conditional mean readout ``Yᵀ M⁻¹ φᵢ`` when ``t = M⁻¹Y`` is given, else of ``readouts``)."""
    from ..analysis.codes import neuron_codes
    signs = (Phi @ t > 0.0) if readouts is None else (readouts > 0.0)
    if labels is None or name != "erf":
        return signs
    return np.concatenate([neuron_codes(Phi, labels).astype(bool), signs], axis=1)


def _fractions(codes, split=None):
    """Code fractions over samples and neurons as a readable string (``"100|011:0.31 …"``: class code |
    readout signs for the sigmoid, readout signs otherwise)."""
    flat = codes.reshape(-1, codes.shape[-1]).astype(np.int8)
    keys, counts = np.unique(flat, axis=0, return_counts=True)
    order = np.argsort(-counts)
    fmt = lambda k: "".join(map(str, k[:split])) + ("|" + "".join(map(str, k[split:])) if split else "")  # noqa: E731
    return " ".join(fmt(keys[k]) + f":{counts[k] / len(flat):.3f}" for k in order)


_MIX_KEYS = ("mus", "L", "Linv", "logdet", "logw")
_STATE_ARRAYS = ("C", "Z", "Phi", "stats", "readouts", "pre", "K1", "fbar")


def _save_state(path, ident, st, rng):
    """Write the run state atomically (:func:`atomic_savez`)."""
    arrays = dict(C=st["C"], Z=st["Z"], Phi=st["Phi"], stats=st["stats"], readouts=st["readouts"], pre=st["pre"],
                  K1=st["K1"], fbar=st["fbar"], scalars=np.array([st["k_store"], st["s"], st["wall"]]),
                  meta=np.array(json.dumps(dict(ident=ident, rng=rng.bit_generator.state), sort_keys=True)))
    arrays.update({"mix_" + k: st["mix"][k] for k in _MIX_KEYS})
    arrays.update({"trace_" + k: v for k, v in st["traces"].items()})
    if st["C_hist"]:
        arrays["C_hist"], arrays["code_hist"] = np.array(st["C_hist"]), np.array(st["code_hist"])
    atomic_savez(path, arrays)


def _load_state(path, ident, st, rng):
    """Restore ``st`` and ``rng`` from a checkpoint of the same run (else ValueError)."""
    keys = ("meta", "scalars") + _STATE_ARRAYS + tuple("mix_" + k for k in _MIX_KEYS) \
        + tuple("trace_" + k for k in st["traces"])
    with open_npz(path, "checkpoint", keys, "Delete it to restart the run, or pass another checkpoint path.") as d:
        meta = json.loads(str(d["meta"]))
        same = meta["ident"] == json.loads(json.dumps(ident, sort_keys=True))
        if same:
            for k in _STATE_ARRAYS:
                st[k][...] = d[k]
            st["mix"] = {k: d["mix_" + k].copy() for k in _MIX_KEYS}
            for k in st["traces"]:
                st["traces"][k][...] = d["trace_" + k]
            st["C_hist"] = list(d["C_hist"]) if "C_hist" in d else []
            st["code_hist"] = list(d["code_hist"]) if "code_hist" in d else []
            k_store, s, wall = d["scalars"]
            st["k_store"], st["s"], st["wall"] = int(k_store), int(s), float(wall)
            rng.bit_generator.state = meta["rng"]
    if not same:
        raise ValueError(f"checkpoint {path!r} belongs to another run (task, configuration or seed differ)")
