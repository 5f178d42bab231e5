"""Posterior sampling of finite networks: HMC/MALA kernels, adaptation, storage, diagnostics."""
from .hmc import sample
from .storage import Samples
from .predict import predict_samples
from .theory_start import theory_start

__all__ = ["sample", "Samples", "theory_start", "predict_samples"]
