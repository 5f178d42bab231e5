"""Moved to :mod:`meanfield.agreement.codes`; kept as a re-export for existing imports."""
from .agreement.codes import KS_MAX_VALUES, code_rows, sampled_codes

__all__ = ["KS_MAX_VALUES", "code_rows", "sampled_codes"]
