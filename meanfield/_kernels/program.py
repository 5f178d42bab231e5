"""Stack-machine evaluation of user nonlinearities compiled from sympy.

PLACEHOLDER: the full compiler (sympy → program) lives in
:mod:`meanfield.nonlinearities`; this module only evaluates programs.
Program layout (float64 array): ``prog[0] = 3`` (number of sub-programs),
``prog[1:4]`` = start offsets of the φ, φ', φ'' sub-programs, then each
sub-program as ``(length, op0, arg0, op1, arg1, ...)``.
"""
import math

import numba as nb
import numpy as np

OP_Z = 0.0      # push z
OP_CONST = 1.0  # push arg


@nb.njit(cache=True)
def run_program(prog, which, z):
    """Evaluate sub-program ``which`` (0: φ, 1: φ', 2: φ'') of ``prog`` at ``z``."""
    if prog.shape[0] < 4:
        return math.nan
    start = int(prog[1 + which])
    n = int(prog[start])
    stack = np.empty(32)
    sp = 0
    for k in range(n):
        op = prog[start + 1 + 2 * k]
        arg = prog[start + 2 + 2 * k]
        if op == OP_Z:
            stack[sp] = z
            sp += 1
        elif op == OP_CONST:
            stack[sp] = arg
            sp += 1
    return stack[sp - 1] if sp > 0 else math.nan
