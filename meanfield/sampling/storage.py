"""Sample storage, the `Samples` result object, and atomic checkpoints.

A run's complete state — parameters, gradient, adaptation state, iteration
counter (which *is* the RNG state, see :mod:`meanfield._kernels.rng`), traces
and stored samples — lives in one :class:`RunState`. Checkpoints write it to an
``.npz`` file atomically (temporary file + ``os.replace``), so a run killed at
any moment resumes from the last checkpoint and continues exactly as an
uninterrupted run would.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_output_path, open_npz
from .health import Health

TRACE_KEYS = ("energy", "train_error", "accept_prob", "step_size", "n_leapfrog", "divergent", "temperature")
_TRACES = tuple("trace_" + k for k in TRACE_KEYS)


def atomic_savez(path, arrays):
    """``np.savez(path, **arrays)`` atomically: a temporary file, fsync, then rename over ``path``."""
    tmp = os.fspath(path) + ".tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass
class RunState:
    """Mutable state of a sampler run (everything a checkpoint must hold)."""

    config: dict
    q: np.ndarray
    g: np.ndarray
    e_prior: float
    e_lik: float
    iteration: int
    adapt: np.ndarray
    traces: dict
    readouts: np.ndarray                 # (S, N, m)
    preactivations: list                 # per layer (S, N, P) float32, or empty list
    kernel_sums: np.ndarray              # (L, P, P) Σ over stored samples of φ(Z_ℓ)ᵀφ(Z_ℓ)/N
    prediction_sum: np.ndarray           # (P, m)
    stored: int = 0
    wall_time: float = 0.0
    gradient_evals: int = 0
    t_start: float = 0.0                 # wall-clock start of the current segment (not saved)

    @classmethod
    def new(cls, config, q, g, e_prior, e_lik, adapt, n_store, N, P, m, L, record_preactivations):
        steps = config["steps"]
        traces = {k: np.zeros(steps) for k in TRACE_KEYS}
        pre = [np.zeros((n_store, N, P), dtype=np.float32) for _ in range(L)] if record_preactivations else []
        return cls(config=config, q=q, g=g, e_prior=e_prior, e_lik=e_lik, iteration=0, adapt=adapt,
                   traces=traces, readouts=np.zeros((n_store, N, m)), preactivations=pre,
                   kernel_sums=np.zeros((L, P, P)), prediction_sum=np.zeros((P, m)))

    def save(self, path):
        """Write the state to ``path`` atomically."""
        path = os.fspath(path)
        arrays = dict(q=self.q, g=self.g, adapt=self.adapt, readouts=self.readouts,
                      kernel_sums=self.kernel_sums, prediction_sum=self.prediction_sum,
                      scalars=np.array([self.e_prior, self.e_lik, self.iteration, self.stored,
                                        self.wall_time, self.gradient_evals], dtype=np.float64),
                      config=np.array(json.dumps(self.config, sort_keys=True)))
        for k, v in self.traces.items():
            arrays["trace_" + k] = v
        for i, z in enumerate(self.preactivations):
            arrays[f"pre_{i}"] = z
        atomic_savez(path, arrays)

    @classmethod
    def load(cls, path):
        """Read a state written by :meth:`save` (``ValueError`` naming the file if it is not one)."""
        with open_npz(path, "checkpoint", ("config", "scalars", "q", "g", "adapt", "readouts", "kernel_sums",
                                           "prediction_sum") + _TRACES,
                      "Delete it to restart the run from the beginning, or pass another checkpoint path.") as d:
            config = json.loads(str(d["config"]))
            sc = d["scalars"]
            traces = {k: d["trace_" + k].copy() for k in TRACE_KEYS}
            pre = []
            i = 0
            while f"pre_{i}" in d:
                pre.append(d[f"pre_{i}"].copy())
                i += 1
            return cls(config=config, q=d["q"].copy(), g=d["g"].copy(), e_prior=float(sc[0]),
                       e_lik=float(sc[1]), iteration=int(sc[2]), adapt=d["adapt"].copy(), traces=traces,
                       readouts=d["readouts"].copy(), preactivations=pre, kernel_sums=d["kernel_sums"].copy(),
                       prediction_sum=d["prediction_sum"].copy(), stored=int(sc[3]), wall_time=float(sc[4]),
                       gradient_evals=int(sc[5]))


@dataclass(frozen=True, repr=False)
class Samples:
    """Posterior samples of a finite network and the run's diagnostics.

    Attributes
    ----------
    readouts : ndarray, shape (S, N, m)
        Readout weights ``a_i`` of every neuron at each stored sample.
    preactivations : list of ndarray
        Per layer ℓ = 1 … L, the preactivations on the training inputs, (S, N, P), float32.
    kernels : tuple of ndarray
        Posterior-averaged activation kernels on the training inputs,
        ``kernels[0] = K0`` and ``kernels[ℓ] = ⟨φ(Z_ℓ)ᵀφ(Z_ℓ)⟩ / N``.
    mean_prediction : ndarray, shape (P, m)
        Posterior mean of the network output on the training inputs.
    traces : dict of ndarray
        Per-iteration ``energy``, ``train_error`` (|Y − f|² / (P m)),
        ``accept_prob``, ``step_size``, ``n_leapfrog``, ``divergent``.
    iterations : ndarray
        Iteration index of each stored sample.
    config : dict
        Run configuration (N, depth, T, σ_a², space, seed, …).
    wall_time : float
        Seconds spent sampling (summed over resumed pieces).
    gradient_evals : int
        Number of energy-gradient evaluations.
    final_state : ndarray
        Packed parameter vector at the end of the run (for restarts).
    diagnostics : dict
        Equilibration diagnostics (:func:`meanfield.sampling.diagnostics.equilibration_report`).
    health : Health or None
        Whether the run can be trusted (:mod:`meanfield.sampling.health`): ``health.ok`` and
        ``health.problems``. ``None`` only for samples saved before health was recorded.
    """

    readouts: np.ndarray
    preactivations: list
    kernels: tuple
    mean_prediction: np.ndarray
    traces: dict
    iterations: np.ndarray
    config: dict
    wall_time: float
    gradient_evals: int
    final_state: np.ndarray
    diagnostics: dict = field(default_factory=dict)
    health: Health | None = None

    @property
    def N(self):
        return self.config["N"]

    @property
    def depth(self):
        return self.config["depth"]

    @property
    def T(self):
        return self.config["T"]

    def readout_covariance(self):
        """Sampled readout covariance ``⟨AᵀA⟩ / N`` (m × m), averaged over neurons and samples."""
        A = self.readouts
        return np.einsum("sir,sij->rj", A, A) / (A.shape[0] * A.shape[1])

    def kernel(self, layer):
        """Posterior-averaged kernel of ``layer`` (0 = input) on the training inputs."""
        if not isinstance(layer, (int, np.integer)) or not 0 <= layer <= self.depth:
            raise ValueError(f"layer must be an integer in [0, {self.depth}], got {layer!r}")
        return self.kernels[layer]

    @property
    def gradient_evals_per_second(self):
        return self.gradient_evals / self.wall_time if self.wall_time > 0 else float("nan")

    def save(self, path):
        """Save to ``.npz`` (readouts, preactivations, kernels, traces, configuration)."""
        path = check_output_path(path, "path")
        arrays = dict(readouts=self.readouts, kernels=np.stack(self.kernels), mean_prediction=self.mean_prediction,
                      iterations=self.iterations, final_state=self.final_state,
                      meta=np.array(json.dumps(dict(config=self.config, wall_time=self.wall_time,
                                                    gradient_evals=self.gradient_evals,
                                                    diagnostics=self.diagnostics,
                                                    health=None if self.health is None
                                                    else self.health.to_dict()))))
        arrays.update({"trace_" + k: v for k, v in self.traces.items()})
        arrays.update({f"pre_{i}": z for i, z in enumerate(self.preactivations)})
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path):
        """Load samples written by :meth:`save` (``ValueError`` naming the file if it is not one)."""
        with open_npz(path, "samples file", ("meta", "readouts", "kernels", "mean_prediction", "iterations",
                                             "final_state") + _TRACES,
                      "Regenerate it with meanfield.sample(...).save(path).") as d:
            meta = json.loads(str(d["meta"]))
            pre = [d[f"pre_{i}"] for i in range(meta["config"]["depth"]) if f"pre_{i}" in d]
            return cls(readouts=d["readouts"], preactivations=pre, kernels=tuple(d["kernels"]),
                       mean_prediction=d["mean_prediction"],
                       traces={k: d["trace_" + k] for k in TRACE_KEYS}, iterations=d["iterations"],
                       config=meta["config"], wall_time=meta["wall_time"], gradient_evals=meta["gradient_evals"],
                       final_state=d["final_state"], diagnostics=meta["diagnostics"],
                       health=None if meta.get("health") is None else Health.from_dict(meta["health"]))

    def table(self):
        """Readable run summary with the equilibration diagnostics."""
        c = self.config
        d = self.diagnostics
        lines = [f"Samples: {c['nonlinearity']}, N = {c['N']}, depth L = {c['depth']}, T = {c['T']:g}, "
                 f"σ_a² = {c['sigma_a2']:.5g}, space = {c['space']}, seed = {c['seed']}",
                 f"  {c['steps']} iterations ({c['warmup']} warm-up), {self.readouts.shape[0]} stored samples, "
                 f"{self.gradient_evals} gradient evaluations in {self.wall_time:.1f} s "
                 f"({self.gradient_evals_per_second:.0f}/s)"]
        for k, v in d.items():
            lines.append(f"  {k:28s} {v:.4g}" if isinstance(v, (float, int, np.floating)) else f"  {k:28s} {v}")
        lines.append("Run health: not recorded" if self.health is None else self.health.table())
        return "\n".join(lines)

    def __repr__(self):
        return self.table()
