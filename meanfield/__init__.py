"""meanfield: mean-field theory of wide Bayesian networks in the feature-learning regime.

Public API
----------
toy_task, random_label_task, Task   tasks (:mod:`meanfield.tasks`)
nonlinearity              φ objects (:mod:`meanfield.nonlinearities`)
default_sigma_a2          the paper's readout-prior scaling
solve, Solution           theory solvers (:mod:`meanfield.theory`)
sample, Samples           numba posterior sampler (:mod:`meanfield.sampling`)
sample_collapsed          readout-collapsed Gibbs sampler with mode jumps (one hidden layer)
SamplerHealthWarning      warned by a sampler run that failed its health checks (``Samples.health``)
theory_start              sampler state drawn from a coded theory solution
analysis                  codes, switching, scheme type, collapse, spectra (:mod:`meanfield.analysis`)
gp_baseline               lazy / NNGP baseline (:mod:`meanfield.gp`)
datasets                  digits (offline), MNIST IDX, CIFAR-10 batches, random projection
compare                   theory vs samples (:mod:`meanfield.compare`)
"""
import os as _os

# numba's OpenMP threads and OpenBLAS's threads alternate inside every sampler step
# (elementwise prange kernels between GEMMs). With OpenMP's default active spin-wait
# the two pools fight for the cores: a 200 × 200 gradient took 11 ms instead of
# 0.6 ms on 2 cores (benchmarks/bench_sampler.py). Passive waiting removes that.
# setdefault: a user's explicit choice wins. Must happen before the first parallel
# kernel runs, i.e. at import.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The same fight the other way round: after a GEMM, OpenBLAS's pthreads spin for
# 2^28 cycles by default while numba's threads want the cores; a 2^4-cycle timeout
# made the preactivation-space step 1.7× and the weight-space step 1.2× faster in
# the benchmark. Read by OpenBLAS when it loads, so it only acts if meanfield is
# imported before numpy/scipy (the CLI and the benchmarks do).
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from .tasks import Task, random_label_task, toy_task  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Task", "toy_task", "random_label_task", "nonlinearity", "default_sigma_a2", "solve", "Solution",
           "sample", "Samples", "sample_collapsed", "SamplerHealthWarning", "theory_start", "predict_samples", "compare", "Comparison",
           "analysis", "gp_baseline", "datasets"]


def __getattr__(name):
    # Lazy imports keep `import meanfield` fast (numba kernels load on first use).
    if name in ("nonlinearity", "default_sigma_a2", "Nonlinearity"):
        from . import nonlinearities
        return getattr(nonlinearities, name)
    if name in ("solve", "Solution"):
        from . import theory
        return getattr(theory, name)
    if name in ("sample", "Samples", "sample_collapsed", "SamplerHealthWarning", "theory_start", "predict_samples"):
        from . import sampling
        return getattr(sampling, name)
    if name in ("gp_baseline", "GPBaseline"):
        from . import gp
        return getattr(gp, name)
    if name in ("analysis", "sampling", "theory", "datasets", "gp"):
        import importlib
        return importlib.import_module("." + name, __name__)
    if name in ("compare", "Comparison"):
        import importlib
        mod = importlib.import_module(".compare", __name__)
        globals()["compare"], globals()["Comparison"] = mod.compare, mod.Comparison
        return globals()[name]
    raise AttributeError(f"module 'meanfield' has no attribute {name!r}")
