"""Posterior sampling of finite networks: HMC/MALA kernels, adaptation, storage, diagnostics."""
from .hmc import sample
from .storage import Samples

__all__ = ["sample", "Samples"]
