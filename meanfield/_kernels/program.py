"""Stack-machine evaluation of user nonlinearities compiled from sympy.

The compiler (sympy → program) lives in :mod:`meanfield._sympy_program`; this
module only defines the instruction set and evaluates programs.

Caching caveat: numba's on-disk cache of a kernel that calls :func:`run_program`
(phi, gauss, network, leapfrog_identity) embeds the interpreter but is keyed only on
the caller's own source file. After editing this module, delete the ``*.nbi``/``*.nbc``
files in ``meanfield/_kernels/__pycache__`` or those kernels keep the old interpreter.

Program layout
--------------
A program is a 1-D float64 array::

    prog[0]          3 (number of sub-programs: φ, φ', φ'')
    prog[1:4]        start offsets of the φ, φ', φ'' sub-programs
    prog[4]          start offset of the kink block
    prog[5]          stack depth the sub-programs need (≤ STACK_SIZE)
    prog[6]          registers the sub-programs need (≤ N_REGISTERS)
    prog[7]          layout version (1)
    sub-program      n, op_1, arg_1, ..., op_n, arg_n     (postfix; ``arg`` unused by most ops)
    kink block       k, z_1, ..., z_k                      (points where φ, φ' or φ'' jump)

Operands live on a stack; ``LOAD``/``STORE`` move values between the stack
and registers (common subexpressions, computed once). Comparisons push 1.0 or
0.0; ``SELECT`` pops ``(cond, a, b)`` and pushes ``a if cond != 0 else b``
(used for ``Piecewise``). Invalid operations give ``nan`` as in numpy
(log of a negative number, non-integer power of a negative base); division
by zero gives ±inf (numba's ``error_model="numpy"``).

Performance: the stack and registers are a fixed-size buffer on the machine
stack (``alloca``), so an evaluation allocates nothing. Measured (10⁶ points,
best of 7, ``benchmarks``-style in one run): ``tanh(z) + 0.1 z²`` (6 instructions)
35 ns per point through ``apply_phi_1d`` against 15 ns for the same expression
hand-written in numba; ``z + 1`` 15 ns. A heap-allocated ``np.empty`` stack
added 18 ns per call; any check on ``prog`` or a loop inside an op (integer
powers by repeated squaring) added 10 ns, because LLVM then stops inlining the
interpreter into the caller's loop — hence no validation here: programs come
from the compiler, and built-ins carry :data:`NAN_PROGRAM`.
"""
import math

import numba as nb
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

HEADER = 8
VERSION = 1.0
STACK_SIZE = 64
N_REGISTERS = 64

# stack, registers, constants
OP_Z, OP_CONST, OP_LOAD, OP_STORE = 0, 1, 2, 3
# binary
OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_MAX, OP_MIN = 4, 5, 6, 7, 8, 9, 10
# unary with immediate argument
OP_ADDC, OP_MULC, OP_POWI, OP_HEAVISIDE = 11, 12, 13, 14
# unary
(OP_NEG, OP_EXP, OP_LOG, OP_LOG1P, OP_EXPM1, OP_SQRT, OP_ABS, OP_SIGN, OP_TANH, OP_SIN, OP_COS,
 OP_TAN, OP_SINH, OP_COSH, OP_ATAN, OP_ASINH, OP_ERF, OP_ERFC, OP_SIGMOID, OP_SOFTPLUS, OP_SECH2) = range(15, 36)
# logic
OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE, OP_AND, OP_OR, OP_NOT, OP_SELECT = range(36, 46)
N_OPS = 46

# net stack effect of each op (pushes − pops), used by the compiler to size the stack
STACK_EFFECT = ([1, 1, 1, -1] + [-1] * 7 + [0] * 4 + [0] * 21 + [-1] * 6 + [-1, -1, 0, -2])

# A valid program whose φ, φ', φ'' are nan and which has no kinks: the placeholder that
# built-in nonlinearities carry (their kernels never run it).
NAN_PROGRAM = np.array([3.0, 8.0, 11.0, 14.0, 17.0, 1.0, 0.0, VERSION]
                       + [1.0, OP_CONST, math.nan] * 3 + [0.0])


@intrinsic
def _stack_buffer(typingctx, n):
    """Pointer to ``n`` float64 on the machine stack (``n`` a compile-time constant)."""
    if not isinstance(n, types.IntegerLiteral):
        return None
    size = n.literal_value

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(types.float64), size=size)

    return types.CPointer(types.float64)(n), codegen


@nb.njit(cache=True, inline="always", error_model="numpy")
def _sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _softplus(x):
    if x > 0.0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@nb.njit(cache=True, inline="always", error_model="numpy")
def _unary(op, x):
    if op == OP_NEG:
        return -x
    elif op == OP_EXP:
        return math.exp(x)
    elif op == OP_LOG:
        return math.log(x) if x >= 0.0 else math.nan
    elif op == OP_LOG1P:
        return math.log1p(x) if x >= -1.0 else math.nan
    elif op == OP_EXPM1:
        return math.expm1(x)
    elif op == OP_SQRT:
        return math.sqrt(x) if x >= 0.0 else math.nan
    elif op == OP_ABS:
        return abs(x)
    elif op == OP_SIGN:
        return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else x)
    elif op == OP_TANH:
        return math.tanh(x)
    elif op == OP_SIN:
        return math.sin(x)
    elif op == OP_COS:
        return math.cos(x)
    elif op == OP_TAN:
        return math.tan(x)
    elif op == OP_SINH:
        return math.sinh(x)
    elif op == OP_COSH:
        return math.cosh(x)
    elif op == OP_ATAN:
        return math.atan(x)
    elif op == OP_ASINH:
        return math.asinh(x)
    elif op == OP_ERF:
        return math.erf(x)
    elif op == OP_ERFC:
        return math.erfc(x)
    elif op == OP_SIGMOID:
        return _sigmoid(x)
    elif op == OP_SOFTPLUS:
        return _softplus(x)
    elif op == OP_SECH2:            # 1 − tanh² without cancellation
        c = math.cosh(x)
        return 1.0 / (c * c)
    return math.nan


@nb.njit(cache=True, inline="always", error_model="numpy")
def _binary(op, a, b):
    if op == OP_ADD:
        return a + b
    elif op == OP_SUB:
        return a - b
    elif op == OP_MUL:
        return a * b
    elif op == OP_DIV:
        return a / b
    elif op == OP_POW:
        if a < 0.0 and b != math.floor(b):
            return math.nan
        return a ** b
    elif op == OP_MAX:
        return a if a >= b or b != b else b
    elif op == OP_MIN:
        return a if a <= b or b != b else b
    elif op == OP_LT:
        return 1.0 if a < b else 0.0
    elif op == OP_LE:
        return 1.0 if a <= b else 0.0
    elif op == OP_GT:
        return 1.0 if a > b else 0.0
    elif op == OP_GE:
        return 1.0 if a >= b else 0.0
    elif op == OP_EQ:
        return 1.0 if a == b else 0.0
    elif op == OP_NE:
        return 1.0 if a != b else 0.0
    elif op == OP_AND:
        return 1.0 if (a != 0.0 and b != 0.0) else 0.0
    elif op == OP_OR:
        return 1.0 if (a != 0.0 or b != 0.0) else 0.0
    return math.nan


@nb.njit(cache=True, error_model="numpy")
def run_program(prog, which, z):
    """Evaluate sub-program ``which`` (0: φ, 1: φ', 2: φ'') of ``prog`` at ``z``.

    ``prog`` must come from the compiler (or be :data:`NAN_PROGRAM`): there is no validation
    here — any test on ``prog`` costs ≈ 10 ns per call, because it keeps LLVM from inlining
    the interpreter into the caller's loop and hoisting the decoding of the header.
    """
    buf = nb.carray(_stack_buffer(128), 128)     # STACK_SIZE + N_REGISTERS
    start = int(prog[1 + which])
    n = int(prog[start])
    sp = 0
    pc = start + 1
    for _ in range(n):
        op = int(prog[pc])
        arg = prog[pc + 1]
        pc += 2
        if op < OP_ADD:                         # push z / constant / register; store
            if op == OP_Z:
                buf[sp] = z
            elif op == OP_CONST:
                buf[sp] = arg
            elif op == OP_LOAD:
                buf[sp] = buf[STACK_SIZE + int(arg)]
            else:
                sp -= 2
                buf[STACK_SIZE + int(arg)] = buf[sp + 1]
            sp += 1
        elif op == OP_ADD:
            sp -= 1
            buf[sp - 1] += buf[sp]
        elif op == OP_MUL:
            sp -= 1
            buf[sp - 1] *= buf[sp]
        elif op < OP_ADDC or (OP_LT <= op < OP_NOT):     # other binary ops
            sp -= 1
            buf[sp - 1] = _binary(op, buf[sp - 1], buf[sp])
        elif OP_NEG <= op < OP_LT:              # unary functions
            buf[sp - 1] = _unary(op, buf[sp - 1])
        elif op == OP_ADDC:
            buf[sp - 1] += arg
        elif op == OP_MULC:
            buf[sp - 1] *= arg
        elif op == OP_POWI:
            x = buf[sp - 1]
            buf[sp - 1] = x * x if arg == 2.0 else x ** arg     # libm pow: exact for integers
        elif op == OP_HEAVISIDE:
            x = buf[sp - 1]
            buf[sp - 1] = 1.0 if x > 0.0 else (0.0 if x < 0.0 else (arg if x == 0.0 else x))
        elif op == OP_NOT:
            buf[sp - 1] = 1.0 if buf[sp - 1] == 0.0 else 0.0
        else:                                   # OP_SELECT
            sp -= 2
            buf[sp - 1] = buf[sp] if buf[sp - 1] != 0.0 else buf[sp + 1]
    return buf[sp - 1] if sp > 0 else math.nan


@nb.njit(cache=True, inline="always", error_model="numpy")
def n_kinks(prog):
    """Number of kinks recorded in ``prog`` (0 for the empty program of built-ins)."""
    if prog.shape[0] < HEADER:
        return 0
    return int(prog[int(prog[4])])


@nb.njit(cache=True, inline="always", error_model="numpy")
def kink(prog, i):
    """The ``i``-th kink of ``prog``."""
    return prog[int(prog[4]) + 1 + i]
