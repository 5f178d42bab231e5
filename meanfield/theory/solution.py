"""The result object every theory solver returns (scipy's ``OptimizeResult`` in spirit)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


def _fmt_matrix(M, indent="    "):
    M = np.atleast_2d(np.asarray(M))
    return "\n".join(indent + " ".join(f"{v: .5f}" for v in row) for row in M)


@dataclass(frozen=True, repr=False)
class Solution:
    """Solution of the mean-field self-consistency equations (THEORY.md §2).

    Attributes
    ----------
    nonlinearity : str
        Name of φ.
    depth : int
        Number of hidden layers L.
    T : float
        Rescaled temperature.
    sigma_a2 : float
        Readout prior variance σ_a².
    field : ndarray, shape (P, m)
        Conjugate field ``t`` of (S1)–(S2); the training residual is ``T t``.
    kernels : tuple of ndarray
        Layer kernels on the training inputs, ``kernels[0] = K0`` (input
        kernel) up to ``kernels[L]`` (feature layer), each P × P.
    converged : bool
        Whether the equations were solved to tolerance.
    residual : float
        Max-norm residual of the self-consistency equations at the returned point.
    message : str
        Human-readable status.
    nit : int
        Iterations / function evaluations used.
    U : ndarray, shape (m, m), optional
        Readout covariance ⟨a aᵀ⟩ of a single neuron (linear: the Gaussian's covariance).
    codes, code_fractions, readouts : optional
        Discrete coding scheme (sigmoid): code tuples, their fractions P_γ and
        readout vectors a_γ (n × m).
    outliers : dict, optional
        Outlier neurons (ReLU): readouts ``a_bar`` (n × m) and activations ``z_bar`` (n × P), √N-scaled.
    N : int, optional
        Width used for finite-width corrections (``None``: N → ∞).
    finite_P : bool
        Whether finite-P terms are kept.
    task : Task
        The task solved.
    info : dict
        Solver-specific extras.
    """

    nonlinearity: str
    depth: int
    T: float
    sigma_a2: float
    field: np.ndarray
    kernels: tuple
    converged: bool
    residual: float
    message: str
    nit: int = 0
    U: np.ndarray | None = None
    codes: tuple | None = None
    code_fractions: np.ndarray | None = None
    readouts: np.ndarray | None = None
    outliers: dict | None = None
    N: int | None = None
    finite_P: bool = True
    task: Any = None
    info: dict = field(default_factory=dict)
    _predict: Callable | None = None
    _kernel: Callable | None = None
    _conditional: Callable | None = None
    _density: Callable | None = None

    @property
    def t(self) -> np.ndarray:
        """Alias of :attr:`field`."""
        return self.field

    @property
    def success(self) -> bool:
        """Alias of :attr:`converged` (scipy convention)."""
        return self.converged

    @property
    def train_prediction(self) -> np.ndarray:
        """Mean predictor on the training inputs, ``Y − T t`` by (S2).

        ``info["fitted"]`` overrides it where ``T t`` is not finite (T = 0 on a rank-deficient
        K0: the unfittable part of Y is all residual, :mod:`meanfield.theory.linear_range`).
        """
        if "fitted" in self.info:
            return self.info["fitted"]
        return self.task.Y - self.T * self.field

    def predict(self, X_new) -> np.ndarray:
        """Mean predictor ``f(x)`` on new inputs (columns of ``X_new``), shape (P_new, m)."""
        if self._predict is None:
            raise NotImplementedError(f"predict is not available for {self.nonlinearity} (depth {self.depth})")
        return self._predict(X_new)

    def kernel(self, layer, X1=None, X2=None) -> np.ndarray:
        """Kernel of ``layer`` (0 = input … L = feature layer) between input sets.

        With ``X1 = X2 = None`` returns the training kernel ``kernels[layer]``.
        """
        if not isinstance(layer, (int, np.integer)) or not 0 <= layer <= self.depth:
            raise ValueError(f"layer must be an integer in [0, {self.depth}], got {layer!r}")
        if X1 is None and X2 is None:
            return self.kernels[layer]
        if self._kernel is None:
            raise NotImplementedError(f"kernel on new inputs is not available for {self.nonlinearity}")
        return self._kernel(layer, X1, X2)

    def conditional(self, a):
        """Conditional distribution of the feature-layer preactivations given a readout vector.

        Returns ``(mean, cov)`` of z (P-vector, P × P) given ``a`` (m-vector).
        """
        if self._conditional is None:
            raise NotImplementedError(f"conditional is not available for {self.nonlinearity}")
        return self._conditional(np.asarray(a, dtype=np.float64))

    def conditional_density(self, code, z=None):
        """Density of a feature-layer preactivation given the readout of one code (sigmoid schemes).

        Parameters
        ----------
        code : int or tuple
            Index into :attr:`codes`, or the code tuple itself.
        z : array_like, optional
            Evaluation points (default: the solver's grid).

        Returns
        -------
        z : ndarray (k,)
        density : ndarray (K, k)
            ``p(z_μ | a_γ)`` for an input μ of each class (THEORY.md §2.2).
        """
        if self._density is None:
            raise NotImplementedError(f"conditional_density is not available for {self.nonlinearity}")
        return self._density(code, z)

    def table(self) -> str:
        """Readable summary of the solution."""
        lines = [f"Solution: {self.nonlinearity}, depth L = {self.depth}, T = {self.T:g}, "
                 f"σ_a² = {self.sigma_a2:.5g}, N = {self.N if self.N else '∞'}, finite_P = {self.finite_P}",
                 f"  converged = {self.converged}, residual = {self.residual:.3e}, nit = {self.nit}: {self.message}"]
        if self.U is not None:
            lines += ["  readout covariance U:", _fmt_matrix(self.U)]
        if self.codes is not None:
            lines.append("  code        P_γ       readout a_γ")
            for c, p, a in zip(self.codes, self.code_fractions, self.readouts):
                lines.append(f"  {'-'.join(str(int(x)) for x in c):10s} {p:8.4f}   " + " ".join(f"{v: .4f}" for v in a))
        if self.outliers is not None:
            ab = np.atleast_2d(self.outliers.get("a_bar", np.zeros((0, 0))))
            lines.append(f"  outliers: n = {ab.shape[0]}")
            for i, a in enumerate(ab):
                lines.append(f"    ā_{i} = " + " ".join(f"{v: .4f}" for v in a))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.table()
