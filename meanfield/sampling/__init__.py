"""Posterior sampling of finite networks: HMC/MALA kernels, adaptation, storage, diagnostics."""
from .hmc import sample
from .collapsed import sample_collapsed
from .storage import Samples
from .health import SamplerHealthWarning
from .predict import predict_samples
from .theory_start import theory_start

__all__ = ["sample", "sample_collapsed", "Samples", "SamplerHealthWarning", "theory_start", "predict_samples"]
