"""``meanfield.solve``: validate the arguments and dispatch on the nonlinearity (THEORY.md §2)."""
from __future__ import annotations

import importlib
import importlib.util
import numbers

from .._validation import check_choice, check_float, check_int
from ..tasks import Task

__all__ = ["solve", "default_readout_variance"]

# name → (module, function); "linear" is solved here, the others are imported lazily.
_SOLVERS = {"erf": ("meanfield.theory.erf", "solve_erf"), "relu": ("meanfield.theory.relu", "solve_relu"),
            "softplus": ("meanfield.theory.sparse_toy", "solve_softplus"),
            "relu2": ("meanfield.theory.sparse_toy", "solve_relu2")}
_ALIASES = {"identity": "linear", "sigmoid": "erf"}
_LINEAR_OPTIONS = {"sigma_a2", "method", "tol", "maxiter"}


def _name(nonlinearity):
    name = getattr(nonlinearity, "name", nonlinearity)
    if not isinstance(name, str):
        raise TypeError(f"nonlinearity must be a name or an object with .name, got {type(nonlinearity).__name__}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key != "linear" and key not in _SOLVERS:
        raise ValueError(f"nonlinearity must be one of {sorted(['linear', *_SOLVERS])} for the theory, got {name!r}")
    return key


def default_readout_variance(name, P, depth):
    """The paper's readout prior variance: ``P^(−1/L)`` for linear and ReLU, ``1/P`` for the sigmoid (THEORY.md §1).

    Uses :func:`meanfield.nonlinearities.default_sigma_a2` when that module provides it.
    """
    if importlib.util.find_spec("meanfield.nonlinearities") is not None:
        mod = importlib.import_module("meanfield.nonlinearities")
        if hasattr(mod, "default_sigma_a2"):
            return float(mod.default_sigma_a2(name, P, depth))
    return 1.0 / P if name == "erf" else float(P) ** (-1.0 / depth)


def solve(task, nonlinearity, depth=1, T=0.0, finite_P=True, N=None, **options):
    """Solve the mean-field equations of a wide Bayesian network (THEORY.md §2).

    Parameters
    ----------
    task : Task
        Training data (``X``: N0 × P, ``Y``: P × m).
    nonlinearity : str or object with ``.name``
        ``"linear"`` (solved by :mod:`meanfield.theory.linear`), ``"erf"`` / ``"sigmoid"``
        (:func:`meanfield.theory.erf.solve_erf`; depth 2: :func:`meanfield.theory.erf_deep.solve_erf_deep`,
        toy task, T > 0, ``finite_P`` ignored: always the task's P), ``"relu"`` (:func:`meanfield.theory.relu.solve_relu`),
        ``"softplus"`` / ``"relu2"`` (toy task, :mod:`meanfield.theory.sparse_toy`; relu2 needs ``N``).
    depth : int
        Number of hidden layers L ≥ 1.
    T : float
        Rescaled temperature ≥ 0.
    finite_P : bool
        Keep the finite-P terms (``True``: N → ∞ at fixed P, or width N if given);
        ``False``: leading order in P (the paper's closed forms).
    N : int, optional
        Hidden width for the finite-width (Wishart) corrections; ``None`` for N → ∞.
    **options
        ``sigma_a2`` (readout prior variance, default the paper's scaling), and
        solver options (linear: ``method`` ∈ {"auto", "scalar", "general"}, ``tol``, ``maxiter``).

    Returns
    -------
    Solution
    """
    if not isinstance(task, Task):
        raise TypeError(f"task must be a meanfield.Task, got {type(task).__name__}")
    name = _name(nonlinearity)
    depth = check_int(depth, "depth", minimum=1)
    T = check_float(T, "T", minimum=0.0)
    if not isinstance(finite_P, (bool, numbers.Integral)) or finite_P not in (0, 1):
        raise TypeError(f"finite_P must be a bool, got {finite_P!r}")
    finite_P = bool(finite_P)
    if N is not None:
        N = check_int(N, "N", minimum=1)
    if options.get("sigma_a2") is None:
        options["sigma_a2"] = default_readout_variance(name, task.P, depth)
    options["sigma_a2"] = check_float(options["sigma_a2"], "sigma_a2", minimum=0.0, strict=True)
    if name == "erf" and depth >= 2:
        if depth > 2:
            raise NotImplementedError(f"the sigmoid theory is implemented for depth 1 and 2, got depth = {depth}")
        from .erf_deep import solve_erf_deep       # two hidden layers (docs/theory_erf_deep.md)
        if T <= 0:
            raise ValueError("the depth-2 sigmoid theory needs T > 0")
        return solve_erf_deep(task, T, N, **options)
    if name != "linear":
        modname, fname = _SOLVERS[name]
        if importlib.util.find_spec(modname) is None:
            raise NotImplementedError(f"the {name} theory ({modname}.{fname}) is not available yet")
        return getattr(importlib.import_module(modname), fname)(task, depth, T, finite_P, N, **options)
    unknown = set(options) - _LINEAR_OPTIONS
    if unknown:
        raise TypeError(f"unknown option(s) for the linear theory: {sorted(unknown)}; "
                        f"expected some of {sorted(_LINEAR_OPTIONS)}")
    from .linear import solve_linear
    if "method" in options:
        check_choice(options["method"], "method", {"auto", "scalar", "general"})
    if "tol" in options:
        options["tol"] = check_float(options["tol"], "tol", minimum=0.0, strict=True)
    if "maxiter" in options:
        options["maxiter"] = check_int(options["maxiter"], "maxiter", minimum=1)
    return solve_linear(task, depth=depth, T=T, finite_P=finite_P, N=N, **options)
