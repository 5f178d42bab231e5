"""`sample`: Metropolis-adjusted HMC/MALA sampling of a finite network's posterior.

The target is the paper's posterior (THEORY.md §1)

    p(Θ) ∝ P0(Θ) exp(−(N / 2T) Σ_{μ,r} (y_μr − f_r(x_μ))²),

with standard-normal hidden weights and N(0, σ_a²) readouts. Each transition
is a Hamiltonian trajectory of ``n_leapfrog`` leapfrog steps followed by a
Metropolis accept/reject, so discretization error never biases the samples
(``n_leapfrog = 1`` is exactly MALA). The step size is adapted by dual averaging
during warm-up only and then frozen; the trajectory length (in prior units) is
fixed, so the number of leapfrog steps follows the adapted step.
"""
from __future__ import annotations

import math
import os
import time
from typing import NamedTuple

import numpy as np

from .._kernels import network as _nw
from .._kernels.rng import normal_fill, uniform_draw
from .._validation import as_nonlinearity, check_choice, check_float, check_int, check_output_path
from ..tasks import Task
from .adaptation import DualAveraging, warmup_windows
from .compile import precompiled
from .diagnostics import equilibration_report
from .geometry import first_layer_geometry
from .health import assess, warn
from .memory import hmc_memory_bytes, refuse_if_too_large
from .progress import Progress
from .storage import RunState, Samples
from .threads import kernel_threads

STREAM_INIT = 0
STREAM_JITTER = 3
COLD_COMPILE_SECONDS = 160     # the HMC kernels from an empty numba cache, idle 2-core machine (measured 161 s)


def _task_fingerprint(task):
    return [float(np.sum(task.X)), float(np.sum(task.X ** 2)), float(np.sum(task.Y)),
            float(np.sum(task.Y ** 2)), list(task.X.shape), list(task.Y.shape)]


def _initial_state(init, n_params, seed):
    if init is None:
        q = np.empty(n_params)
        normal_fill(q, seed, STREAM_INIT, 0)
        return q
    if isinstance(init, Samples):
        q = init.final_state
    elif isinstance(init, dict) and "q" in init:
        q = init["q"]
    else:
        q = init
    try:
        q = np.asarray(q, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"init must be Samples, a dict with 'q' or a numeric vector, got {type(init).__name__}") from None
    if q.shape != (n_params,) or not np.all(np.isfinite(q)):
        raise ValueError(f"init must be a finite packed parameter vector of length {n_params}, got shape {q.shape}")
    return q.copy()


def sample(task, nonlinearity, N, depth=1, T=0.01, steps=1000, warmup=None, seed=0, space="weight",
           thin=1, checkpoint=None, checkpoint_every=100, sigma_a2=None, trajectory_length=1.5,
           n_leapfrog=None, max_leapfrog=512, step_size=None, target_accept=0.75, init=None,
           record_preactivations=True, project=True, progress=None, anneal=None, surrogate_forces=True):
    """Sample the posterior of a finite network with Metropolis-adjusted HMC (MALA for one leapfrog step).

    Parameters
    ----------
    task : Task
        Training data.
    nonlinearity : str or Nonlinearity
        φ ("linear", "erf", "relu", "softplus", "relu2", or a user sympy φ).
    N : int
        Hidden-layer width.
    depth : int
        Number of hidden layers L (≥ 1).
    T : float
        Rescaled temperature (> 0); the likelihood is ``exp(−(N/T) · loss)``.
    steps : int
        Number of HMC transitions (warm-up included).
    warmup : int, optional
        Warm-up transitions with step-size adaptation (default ``steps // 2``);
        only the rest are stored.
    seed : int
        Random seed; the run is a deterministic function of it.
    space : {"weight", "preactivation"}
        ``"weight"``: the network's weights (first layer restricted to the span of
        the training inputs when ``project=True``; the orthogonal part is an
        exactly solvable Ornstein–Uhlenbeck process that never feels the
        likelihood). ``"preactivation"`` (depth 1): z_i = factor(K0)·u_i with
        u_i ~ N(0, I), the same posterior, cheaper when K0 = I.
    thin : int
        Store every ``thin``-th production transition.
    checkpoint : path, optional
        ``.npz`` file; the run resumes from it if it exists (same configuration
        required) and writes it every ``checkpoint_every`` transitions and at the end.
    sigma_a2 : float, optional
        Readout prior variance (default: the paper's scaling for φ and depth).
    trajectory_length : float
        HMC trajectory length in prior units; ``n_leapfrog = ceil(length / ε)``
        (jittered ±20 %) unless ``n_leapfrog`` is given.
    n_leapfrog : int, optional
        Fixed number of leapfrog steps (1 = MALA).
    max_leapfrog : int
        Upper bound on leapfrog steps per transition.
    step_size : float, optional
        Initial step size (default ``0.25 √T / (N P)^{1/4}``).
    target_accept : float
        Target acceptance probability of the adaptation.
    init : Samples, dict with "q", or array, optional
        Starting point (default: a draw from the prior).
    record_preactivations : bool
        Store the preactivations of every layer (float32) at each stored sample.
    project : bool
        In weight space, restrict the first layer to the span of the inputs.
    progress : bool, optional
        Show a progress bar on stderr (default: when stderr is a terminal).
    anneal : float, optional
        Simulated annealing during warm-up: start at temperature ``anneal`` (> T)
        and lower it geometrically to ``T`` over the first half of the warm-up
        (the step size adapts along). Use it where codes freeze (sigmoid, ReLU):
        start above the critical temperature, where neurons still switch codes,
        so that the frozen state is selected by the dynamics, not by the start.
    surrogate_forces : bool
        Sigmoid in preactivation space on the toy geometry (K0 = I): the full kicks inside a
        trajectory use a float32 surrogate of φ (1.6× faster steps); the end points, their
        energies (the Metropolis test) and the stored states are exact float64, so the posterior
        sampled is the same (docs/sampler.md). ``False`` uses the float64 φ̃ throughout.

    Returns
    -------
    Samples
    """
    if not isinstance(task, Task):
        raise TypeError(f"task must be a meanfield.Task, got {type(task).__name__}")
    phi = as_nonlinearity(nonlinearity)
    N = check_int(N, "N", minimum=1)
    depth = check_int(depth, "depth", minimum=1)
    T = check_float(T, "T", minimum=0.0, strict=True)
    steps = check_int(steps, "steps", minimum=1)
    warmup = steps // 2 if warmup is None else check_int(warmup, "warmup", minimum=0, maximum=steps - 1)
    seed = check_int(seed, "seed", minimum=0)
    thin = check_int(thin, "thin", minimum=1)
    checkpoint_every = check_int(checkpoint_every, "checkpoint_every", minimum=1)
    check_choice(space, "space", {"weight", "preactivation"})
    trajectory_length = check_float(trajectory_length, "trajectory_length", minimum=0.0, strict=True)
    max_leapfrog = check_int(max_leapfrog, "max_leapfrog", minimum=1)
    target_accept = check_float(target_accept, "target_accept", minimum=0.0, strict=True, maximum=0.99)
    if n_leapfrog is not None:
        n_leapfrog = check_int(n_leapfrog, "n_leapfrog", minimum=1)
    if anneal is not None:
        anneal = check_float(anneal, "anneal", minimum=T, strict=True)
        if warmup < 2:
            raise ValueError(f"anneal needs a warm-up of at least 2 transitions, got warmup = {warmup}")
    if space == "preactivation" and depth != 1:
        raise ValueError(f"space='preactivation' is exact for depth = 1 only, got depth = {depth}")
    sig2 = phi.sigma_a2(task.P, depth) if sigma_a2 is None \
        else check_float(sigma_a2, "sigma_a2", minimum=0.0, strict=True)
    sig_a = math.sqrt(sig2)
    if checkpoint is not None:
        checkpoint = check_output_path(checkpoint, "checkpoint")

    B, identity, basis = first_layer_geometry(task, space, project)
    Bt = np.ascontiguousarray(B.T)
    r = B.shape[0]
    P, m = task.P, task.m
    n_store = len(range(warmup, steps, thin))
    refuse_if_too_large(hmc_memory_bytes(N, P, m, depth, r, steps, n_store, bool(record_preactivations),
                                         bool(surrogate_forces)), bool(record_preactivations))
    dims = np.array([N, r, depth, m], dtype=np.int64)
    n_params = N * r + (depth - 1) * N * N + N * m
    eps0 = step_size if step_size is not None else 0.25 * math.sqrt(T) / (N * P) ** 0.25
    eps0 = check_float(eps0, "step_size", minimum=0.0, strict=True)
    config = dict(nonlinearity=phi.name, N=N, depth=depth, T=T, steps=steps, warmup=warmup, seed=seed,
                  space=space, thin=thin, sigma_a2=sig2, trajectory_length=trajectory_length,
                  n_leapfrog=n_leapfrog, max_leapfrog=max_leapfrog, step_size=eps0,
                  target_accept=target_accept, project=project, r=r, P=P, m=m,
                  record_preactivations=bool(record_preactivations), task=_task_fingerprint(task),
                  anneal=anneal, surrogate_forces=bool(surrogate_forces))
    code, prog = phi.code, phi.prog
    Y = task.Y

    state = None
    if checkpoint is not None and os.path.exists(checkpoint):
        state = RunState.load(checkpoint)
        if state.config != config:
            diff = sorted(k for k in config if state.config.get(k) != config[k])
            raise ValueError(f"checkpoint {checkpoint} was written by a different run (differs in {diff}); "
                             "remove it or pass another path")
    q = _initial_state(init, n_params, seed) if state is None else None     # validated before compiling
    with precompiled((_nw.energy_grad, _nw.hmc_trajectory, _nw.forward, _nw.alloc_workspace), "sampler kernels",
                     COLD_COMPILE_SECONDS):
        _compile_kernels(code, prog, depth, m, identity, bool(surrogate_forces))
    if state is None:
        g = np.empty(n_params)
        ep, el = _nw.energy_grad(code, prog, q, g, B, Bt, identity, dims, Y, sig_a, temperature(config, 0),
                                 *_nw.alloc_scratch(dims, P))
        state = RunState.new(config, q, g, ep, el, DualAveraging(eps0, target_accept).to_array(),
                             n_store, N, P, m, depth, record_preactivations)

    adapt = DualAveraging.from_array(state.adapt)
    restarts = set(warmup_windows(warmup))
    scratch = _nw.alloc_scratch(dims, P)
    ws = _nw.alloc_workspace(dims, P, n_params, bool(surrogate_forces))
    bar = Progress(steps, enabled=progress, start=state.iteration)
    ctx = _Context(code, prog, B, Bt, identity, dims, Y, sig_a, T, seed, ws, scratch)
    state.t_start = time.perf_counter()
    with kernel_threads(N * P):
        _run(state, ctx, adapt, restarts, bar, checkpoint, checkpoint_every)
    bar.close()
    state.adapt = adapt.to_array()
    state.wall_time += time.perf_counter() - state.t_start
    samples = _finish(state, task, phi)
    warn(samples.health)
    return samples


def _compile_kernels(code, prog, depth, m, identity, surrogate):
    """Run every kernel of a transition once on a 2-neuron, 2-input problem with the run's numba types
    (so that compilation happens here, outside the timed loop)."""
    dims = np.array([2, 2, depth, m], dtype=np.int64)
    B, Y = np.eye(2), np.zeros((2, m))
    n = 4 + 4 * (depth - 1) + 2 * m
    q, g = np.zeros(n), np.empty(n)
    scratch = _nw.alloc_scratch(dims, 2)
    ep, el = _nw.energy_grad(code, prog, q, g, B, B, identity, dims, Y, 1.0, 1.0, *scratch)
    ws = _nw.alloc_workspace(dims, 2, n, surrogate)
    _nw.hmc_trajectory(code, prog, q, g, ep, el, B, B, identity, dims, Y, 1.0, 1.0, 1e-3, 1, 0, 0, ws)
    _nw.forward(code, prog, q, B, identity, dims, 1.0, *scratch[:4], True)


class _Context(NamedTuple):
    """Everything the transition kernel needs besides the mutable run state."""
    code: int
    prog: np.ndarray
    B: np.ndarray
    Bt: np.ndarray
    identity: bool
    dims: np.ndarray
    Y: np.ndarray
    sig_a: float
    T: float
    seed: int
    ws: tuple
    scratch: tuple


def temperature(config, it):
    """Sampling temperature at transition ``it`` (annealing schedule; ``config["T"]`` after it)."""
    T, T0 = config["T"], config.get("anneal")
    end = config["warmup"] // 2
    if T0 is None or it >= end:
        return T
    return T0 * (T / T0) ** (it / end)


def _run(state, ctx, adapt, restarts, bar, checkpoint, checkpoint_every):
    """The transition loop: adaptation during warm-up, recording, checkpoints."""
    cfg = state.config
    steps, warmup, thin, seed = cfg["steps"], cfg["warmup"], cfg["thin"], cfg["seed"]
    n_leapfrog, trajectory_length, max_leapfrog = cfg["n_leapfrog"], cfg["trajectory_length"], cfg["max_leapfrog"]
    N = cfg["N"]
    P, m = ctx.Y.shape
    tr = state.traces
    annealing = cfg.get("anneal") is not None
    while state.iteration < steps:
        it = state.iteration
        T = temperature(cfg, it)
        if annealing and it <= warmup // 2:      # energy and gradient at this transition's T
            state.e_prior, state.e_lik = _nw.energy_grad(ctx.code, ctx.prog, state.q, state.g, ctx.B, ctx.Bt,
                                                         ctx.identity, ctx.dims, ctx.Y, ctx.sig_a, T, *ctx.scratch)
        in_warmup = it < warmup
        if in_warmup and it in restarts:
            adapt.restart(adapt.step_size)
        eps = adapt.step_size if in_warmup else adapt.final_step_size
        if n_leapfrog is not None:
            n_leap = n_leapfrog
        else:
            jitter = 0.8 + 0.4 * uniform_draw(seed, STREAM_JITTER, it, 0)
            n_leap = int(min(max_leapfrog, max(1, math.ceil(jitter * trajectory_length / eps))))
        acc, prob, ep, el, dh = _nw.hmc_trajectory(ctx.code, ctx.prog, state.q, state.g, state.e_prior,
                                                   state.e_lik, ctx.B, ctx.Bt, ctx.identity, ctx.dims, ctx.Y,
                                                   ctx.sig_a, T, eps, n_leap, seed, it, ctx.ws)
        state.e_prior, state.e_lik = ep, el
        state.gradient_evals += n_leap
        if in_warmup:
            adapt.update(prob)
        tr["energy"][it] = ep + el
        tr["train_error"][it] = 2.0 * T * el / N / (P * m)
        tr["accept_prob"][it] = prob
        tr["step_size"][it] = eps
        tr["temperature"][it] = T
        tr["n_leapfrog"][it] = n_leap
        tr["divergent"][it] = 0.0 if math.isfinite(dh) else 1.0
        if it >= warmup and (it - warmup) % thin == 0:
            _record(state, ctx)
        state.iteration = it + 1
        bar.update(state.iteration, accept=prob, eps=eps, n_leap=n_leap, err=tr["train_error"][it])
        if checkpoint is not None and (state.iteration % checkpoint_every == 0 or state.iteration == steps):
            state.adapt = adapt.to_array()
            state.wall_time += time.perf_counter() - state.t_start
            state.t_start = time.perf_counter()
            state.save(checkpoint)


def _record(state, ctx):
    """Store the current sample (readouts, preactivations) and accumulate kernels and predictions."""
    N, r, L, m = (int(v) for v in ctx.dims)
    sig_a = ctx.sig_a
    Z, H, D, F = ctx.scratch[0], ctx.scratch[1], ctx.scratch[2], ctx.scratch[3]
    _nw.forward(ctx.code, ctx.prog, state.q, ctx.B, ctx.identity, ctx.dims, sig_a, Z, H, D, F, True)
    s = state.stored
    _, _, At = _nw.unpack(state.q, N, r, L, m)
    state.readouts[s] = sig_a * At
    for ell in range(L):
        if state.preactivations:
            state.preactivations[ell][s] = Z[ell]
        state.kernel_sums[ell] += H[ell].T @ H[ell] / N
    state.prediction_sum += F
    state.stored = s + 1


def _finish(state, task, phi):
    N, T, P, m = state.config["N"], state.config["T"], task.P, task.m
    S = state.stored
    L = state.config["depth"]
    kernels = (task.K0,) + tuple(state.kernel_sums[ell] / max(S, 1) for ell in range(L))
    readouts = state.readouts[:S]
    mean_f = state.prediction_sum / max(S, 1)
    mres = float(np.sum((task.Y - mean_f) ** 2) / (P * m)) if S else 0.0
    diag = equilibration_report(state.traces, state.config["warmup"], N, T, P, m, readouts, mres)
    warm, thin = state.config["warmup"], state.config["thin"]
    pre = [z[:S] for z in state.preactivations]
    health = assess(state.traces, state.config, readouts, mean_f, task.Y, task.labels, pre, phi)
    return Samples(readouts=readouts, preactivations=pre, kernels=kernels,
                   mean_prediction=mean_f, traces=state.traces,
                   iterations=np.arange(warm, warm + S * thin, thin), config=state.config,
                   wall_time=state.wall_time, gradient_evals=state.gradient_evals, final_state=state.q.copy(),
                   diagnostics=diag, health=health)
