"""Theory-vs-sampler agreement: see :mod:`meanfield.agreement` (rows, Monte-Carlo floors, verdict).

The implementation lives in the package :mod:`meanfield.agreement` (a subpackage named
``compare`` would shadow the function ``meanfield.compare`` as soon as one of its submodules is
imported); this module keeps ``from meanfield.compare import compare`` working.
"""
from .agreement import Comparison, compare, rel_frobenius

__all__ = ["compare", "Comparison", "rel_frobenius"]
