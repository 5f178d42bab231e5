"""meanfield: mean-field theory of wide Bayesian networks in the feature-learning regime.

Public API
----------
toy_task, Task            tasks (:mod:`meanfield.tasks`)
nonlinearity              φ objects (:mod:`meanfield.nonlinearities`)
default_sigma_a2          the paper's readout-prior scaling
solve, Solution           theory solvers (:mod:`meanfield.theory`)
sample, Samples           numba posterior sampler (:mod:`meanfield.sampling`)
compare                   theory vs samples (:mod:`meanfield.compare`)
"""
from .tasks import Task, toy_task

__version__ = "0.1.0"

__all__ = ["Task", "toy_task", "nonlinearity", "default_sigma_a2", "solve", "Solution",
           "sample", "Samples", "compare", "Comparison"]


def __getattr__(name):
    # Lazy imports keep `import meanfield` fast (numba kernels load on first use).
    if name in ("nonlinearity", "default_sigma_a2", "Nonlinearity"):
        from . import nonlinearities
        return getattr(nonlinearities, name)
    if name in ("solve", "Solution"):
        from . import theory
        return getattr(theory, name)
    if name in ("sample", "Samples"):
        from . import sampling
        return getattr(sampling, name)
    if name in ("compare", "Comparison"):
        from . import compare as _compare
        return getattr(_compare, name)
    raise AttributeError(f"module 'meanfield' has no attribute {name!r}")
