"""Step-size adaptation for the HMC/MALA kernel (warm-up only).

Nesterov dual averaging of log ε towards a target acceptance probability
(Hoffman & Gelman 2014, Alg. 5), restarted at the end of each warm-up window
so that the transient approach to the solution space does not pin the step.
After warm-up the step is frozen at the averaged value, so the production
chain is an exact Metropolis-adjusted kernel.
"""
from __future__ import annotations

import math

import numpy as np


class DualAveraging:
    """Dual-averaging state for ``log ε``.

    Parameters
    ----------
    step_size : float
        Initial step ε₀.
    target : float
        Target mean acceptance probability.
    gamma, t0, kappa : float
        Standard dual-averaging constants.
    """

    def __init__(self, step_size, target=0.75, gamma=0.05, t0=10.0, kappa=0.75):
        self.target = float(target)
        self.gamma, self.t0, self.kappa = gamma, t0, kappa
        self.restart(step_size)

    def restart(self, step_size):
        """Restart averaging around ``step_size`` (keeps the target)."""
        self.mu = math.log(10.0 * step_size)
        self.log_eps = math.log(step_size)
        self.log_eps_bar = math.log(step_size)
        self.h_bar = 0.0
        self.count = 0

    def update(self, accept_prob):
        """Feed one transition's acceptance probability; returns the next step size."""
        self.count += 1
        c = self.count
        w = 1.0 / (c + self.t0)
        a = accept_prob if np.isfinite(accept_prob) else 0.0
        self.h_bar = (1.0 - w) * self.h_bar + w * (self.target - a)
        self.log_eps = self.mu - math.sqrt(c) / self.gamma * self.h_bar
        eta = c ** (-self.kappa)
        self.log_eps_bar = eta * self.log_eps + (1.0 - eta) * self.log_eps_bar
        return math.exp(self.log_eps)

    @property
    def step_size(self):
        """Current (non-averaged) step size."""
        return math.exp(self.log_eps)

    @property
    def final_step_size(self):
        """Averaged step size, used after warm-up."""
        return math.exp(self.log_eps_bar)

    def to_array(self):
        """State as a float array (for checkpoints)."""
        return np.array([self.target, self.gamma, self.t0, self.kappa, self.mu, self.log_eps,
                         self.log_eps_bar, self.h_bar, self.count], dtype=np.float64)

    @classmethod
    def from_array(cls, arr):
        """Inverse of :meth:`to_array`."""
        obj = cls.__new__(cls)
        (obj.target, obj.gamma, obj.t0, obj.kappa, obj.mu, obj.log_eps,
         obj.log_eps_bar, obj.h_bar, count) = [float(v) for v in arr]
        obj.count = int(count)
        return obj


def warmup_windows(warmup):
    """Iterations at which dual averaging restarts: after 15 %, 40 % and 70 % of the warm-up."""
    return sorted({int(warmup * f) for f in (0.15, 0.4, 0.7) if int(warmup * f) > 0})
