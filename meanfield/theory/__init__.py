"""Mean-field theory solvers (THEORY.md §2–3): :func:`solve` dispatches on the nonlinearity."""
from .api import solve
from .solution import Solution

__all__ = ["solve", "Solution"]
