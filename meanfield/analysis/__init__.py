"""Representation analysis of sampled or theoretical activations (codes, switching, …)."""
from .codes import code_fractions, code_switching, format_code, neuron_codes

__all__ = ["neuron_codes", "code_fractions", "code_switching", "format_code"]
