"""Representation analysis of sampled or theoretical activations.

Codes and switching (:mod:`.codes`), scheme type, outliers and rasters (:mod:`.scheme`),
neural-collapse metrics (:mod:`.collapse`), activation-covariance spectra and their power-law
exponent (:mod:`.spectrum`), kernel block structure (:mod:`.alignment`).
"""
from .alignment import kernel_alignment
from .codes import code_fractions, code_switching, format_code, neuron_codes
from .collapse import collapse_metrics, nc1, nc2
from .scheme import Raster, SchemeResult, activation_raster, outliers, plot_raster, scheme_type
from .spectrum import PowerLawFit, eigenspectrum, powerlaw_exponent

__all__ = ["neuron_codes", "code_fractions", "code_switching", "format_code", "outliers", "scheme_type",
           "activation_raster", "plot_raster", "SchemeResult", "Raster", "nc1", "nc2", "collapse_metrics",
           "eigenspectrum", "powerlaw_exponent", "PowerLawFit", "kernel_alignment"]
