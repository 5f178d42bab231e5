"""Nonlinearity objects: φ, φ', φ'' kernels, the sympy → stack-program compiler, σ_a² scaling.

References and tolerances:
* built-ins vs their sympy expressions evaluated by mpmath at 60 digits: 1e-13 relative
  (|z| ≤ 10 away from kinks; the largest condition number is that of exp(−κ²z²/2) in the
  sigmoid's φ'', ≈ 80 ulp at z = 10);
* user programs vs the same expression written in numpy: 1e-13 relative;
* central finite differences (step 1e-5) of the compiled φ and φ': 1e-7 relative + 1e-9
  (truncation ≈ 1e-10 |φ'''|, round-off ≈ 1e-11 |φ|);
* random expressions (hypothesis) vs ``sympy.lambdify``: 1e-10 relative + 1e-12 × max|value|.
  Both evaluate the same expression in float64 but may associate sums and products differently;
  a wrong opcode or operand order would give O(1) differences. Where they differ by more, the
  program must match a 50-digit mpmath evaluation instead (its φ', φ'' use stable forms such
  as sech² where sympy's 1 − tanh² cancels).
"""
import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import meanfield as mf
from meanfield._kernels import program as pk
from meanfield.nonlinearities import Nonlinearity, compile_program, default_sigma_a2, nonlinearity, z

BUILTINS = ["linear", "erf", "relu", "softplus", "relu2"]
ZS = np.array([-10.0, -5.0, -2.5, -1.0, -0.5, -0.1, -1e-3, 1e-3, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0])


def _mp_derivatives(expr):
    out = []
    for k in range(3):
        d = sp.diff(expr, z, k).replace(lambda e: e.func == sp.DiracDelta, lambda e: sp.S.Zero)
        out.append(sp.lambdify(z, d, "mpmath"))
    return out


@pytest.mark.parametrize("name", BUILTINS + ["tanh(z)", "1/(1+exp(-z))", "z*erf(z) - Abs(z)**1.5"])
def test_phi_and_derivatives_match_sympy(name):
    nl = nonlinearity(name)
    refs = _mp_derivatives(nl.expr)
    values = [nl.phi(ZS), nl.dphi(ZS), nl.d2phi(ZS)]
    with mp.workdps(60):     # 1 + erf(−8.9) cancels 36 digits
        for k in range(3):
            for x, got in zip(ZS, values[k]):
                ref = float(refs[k](mp.mpf(x)))
                assert abs(got - ref) <= 1e-13 * abs(ref), (name, k, x, got, ref)


@pytest.mark.parametrize("name", BUILTINS + ["tanh(z)", "Max(0.1*z, z)", "sin(z)*exp(-z**2/4)"])
def test_derivatives_match_finite_differences(name):
    nl = nonlinearity(name)
    x = np.linspace(-4, 4, 81) + 0.0137      # off the kinks at 0
    d = 1e-5
    for f, df in [(nl.phi, nl.dphi), (nl.dphi, nl.d2phi)]:
        fd = (f(x + d) - f(x - d)) / (2 * d)
        exact = df(x)
        assert np.all(np.abs(fd - exact) <= 1e-7 * np.abs(exact) + 1e-9), name


def test_user_program_matches_numpy():
    # terms of one sign: the expression is well conditioned, so 1e-13 tests the evaluator alone
    rng = np.random.default_rng(1)
    x = rng.normal(scale=3.0, size=2000)
    nl = nonlinearity("tanh(z)**2 + z**2/10 + exp(-z**2)*erfc(z) + 2/(1 + z**2) + log(1 + exp(z))")
    from scipy.special import erfc
    ref = np.tanh(x) ** 2 + x ** 2 / 10 + np.exp(-x ** 2) * erfc(x) + 2 / (1 + x ** 2) + np.logaddexp(0, x)
    assert np.allclose(nl.phi(x), ref, rtol=1e-13, atol=0)
    # the compiled program is what the kernels run
    from meanfield._kernels.phi import apply_phi
    assert np.array_equal(apply_phi(nl.code, nl.prog, x.reshape(40, 50), 0).ravel(), nl.phi(x))


def test_compiler_constructs():
    cases = {
        "Piecewise((z, z > 1), (-z, z < -1), (z**3, True))": lambda x: np.where(x > 1, x, np.where(x < -1, -x, x ** 3)),
        "Heaviside(z)": lambda x: np.heaviside(x, 0.5),
        "Heaviside(z, 0)": lambda x: np.heaviside(x, 0.0),
        "Max(z, 1, -z/2) + Min(z, 0)": lambda x: np.maximum(np.maximum(x, 1), -x / 2) + np.minimum(x, 0),
        "sign(z)*Abs(z)**0.5 + sqrt(1 + z**2) - 1/sqrt(2 + z**2)": lambda x: np.sign(x) * np.abs(x) ** 0.5
        + np.sqrt(1 + x ** 2) - 1 / np.sqrt(2 + x ** 2),
        "2**z + pi*z - E": lambda x: 2.0 ** x + np.pi * x - np.e,
        "log1p(z**2) + expm1(z/3) + atan(z) + asinh(z) + cosh(z/4) - sinh(z/5)": lambda x: np.log1p(x ** 2)
        + np.expm1(x / 3) + np.arctan(x) + np.arcsinh(x) + np.cosh(x / 4) - np.sinh(x / 5),
        "Piecewise((1, (z > 0) & (z < 1)), (2, (z > 2) | (z < -2)), (0, True))": lambda x: np.where(
            (x > 0) & (x < 1), 1.0, np.where((x > 2) | (x < -2), 2.0, 0.0)),
    }
    x = np.array([-3.0, -1.5, -1.0, -0.5, 0.0, 0.25, 1.0, 1.5, 2.5, 3.0])
    for text, f in cases.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            assert np.allclose(nonlinearity(text).phi(x), f(x), rtol=1e-14, atol=0, equal_nan=True), text
    assert nonlinearity("Max(0, z) + Max(z, 1)").kinks == (0.0, 1.0)
    assert nonlinearity("Piecewise((z, z > 2), (0, True))").kinks == (0.0, 2.0)
    # negative powers compile (nonlinearity() itself refuses this φ: a pole at 0, tests/test_expr_parser.py)
    prog = compile_program(z ** -2 + 1 / z)
    for x0 in x[x != 0]:
        assert pk.run_program(prog, 0, x0) == pytest.approx(x0 ** -2.0 + 1 / x0, rel=1e-14, abs=0)
    assert pk.run_program(prog, 0, 0.0) == math.inf


def test_logistic_compositions_do_not_overflow():
    x = np.array([-800.0, -40.0, 0.0, 40.0, 800.0])
    sig = nonlinearity("1/(1 + exp(-z))")
    assert np.allclose(sig.phi(x), [0.0, 4.248354255291589e-18, 0.5, 1.0, 1.0], rtol=1e-14, atol=0)
    assert np.all(np.isfinite(sig.dphi(x))) and np.all(np.isfinite(sig.d2phi(x)))
    assert sig.dphi(40.0) == pytest.approx(4.248354255291589e-18, rel=1e-14)
    sp_ = nonlinearity("log(1 + exp(z))")
    assert np.allclose(sp_.phi(x), nonlinearity("softplus").phi(x), rtol=1e-15, atol=0)
    assert np.allclose(sp_.d2phi(x), nonlinearity("softplus").d2phi(x), rtol=1e-14, atol=0)
    assert nonlinearity("exp(z)/(1 + exp(z))").phi(800.0) == 1.0


def test_program_layout_and_guards():
    prog = compile_program(sp.tanh(z) ** 3, (0.0,))
    assert prog[0] == 3 and prog[7] == pk.VERSION and prog[5] <= pk.STACK_SIZE
    assert pk.run_program(prog, 0, 0.7) == pytest.approx(math.tanh(0.7) ** 3, rel=1e-15)
    assert pk.run_program(prog, 1, 0.7) == pytest.approx(3 * math.tanh(0.7) ** 2 * (1 - math.tanh(0.7) ** 2), rel=1e-14)
    for which in range(3):      # the built-ins' placeholder is a valid program returning nan
        assert math.isnan(pk.run_program(pk.NAN_PROGRAM, which, 0.7))
    assert pk.n_kinks(pk.NAN_PROGRAM) == 0
    assert len(pk.STACK_EFFECT) == pk.N_OPS


@pytest.mark.parametrize("bad,exc,match", [
    ("tanhh", ValueError, "name"), ("x**2 + z", ValueError, "name"), ("z**", ValueError, "name"),
    ("2", ValueError, "name"), ("gamma(z)", ValueError, "name"), ("foo(z)", ValueError, "name"),
    (3, TypeError, "name"), (None, TypeError, "name"), ("I*z", ValueError, "name"),
])
def test_bad_input(bad, exc, match):
    with pytest.raises(exc, match=match):
        nonlinearity(bad)


def test_accepted_inputs_and_properties():
    nl = nonlinearity("relu")
    assert nonlinearity(nl) is nl and isinstance(nl, Nonlinearity)
    assert nonlinearity(sp.tanh(sp.Symbol("z"))).name == "tanh(z)"
    assert mf.nonlinearity("erf").code == 1
    expected = {"linear": ((-math.inf, math.inf), 1), "erf": ((0.0, 1.0), None), "relu": ((0.0, math.inf), 1),
                "softplus": ((0.0, math.inf), None), "relu2": ((0.0, math.inf), 2),
                "tanh(z)": ((-1.0, 1.0), None), "Max(0.1*z, z)": ((-math.inf, math.inf), 1),
                "erf(z)": ((-1.0, 1.0), None), "z*tanh(z)": ((0.0, math.inf), None)}
    for name, (rng, deg) in expected.items():
        nl = nonlinearity(name)
        assert nl.range == rng and nl.homogeneous_degree == deg, name
        assert name in repr(nl) or nl.name in repr(nl)
    erf = nonlinearity("erf")
    assert erf.phi(1.0) == pytest.approx(0.5 * (1 + math.erf(math.sqrt(math.pi) / 2)), rel=1e-15)
    assert isinstance(erf.phi(1.0), float) and erf.phi(np.zeros((2, 3))).shape == (2, 3)
    with pytest.raises(TypeError, match="z"):
        erf.phi("a")


def test_default_sigma_a2():
    assert default_sigma_a2("linear", 100, 2) == pytest.approx(0.1, rel=1e-15)
    assert default_sigma_a2("relu", 64, 3) == pytest.approx(0.25, rel=1e-15)
    assert default_sigma_a2("relu", 50, 1) == pytest.approx(0.02, rel=1e-15)
    assert default_sigma_a2("erf", 200, 3) == 1 / 200
    assert default_sigma_a2("softplus", 81, 4) == pytest.approx(1 / 3, rel=1e-15)
    assert default_sigma_a2("relu2", 81, 2) == pytest.approx(1 / 9, rel=1e-15)
    assert default_sigma_a2("tanh(z)", 81, 2) == 1 / 81          # bounded user φ: like the sigmoid
    assert default_sigma_a2("z**3", 81, 2) == pytest.approx(1 / 9, rel=1e-15)
    assert mf.default_sigma_a2("linear", 7) == pytest.approx(1 / 7, rel=1e-15)
    assert nonlinearity("relu").sigma_a2(100, 2) == default_sigma_a2("relu", 100, 2)
    for kwargs, exc, match in [(dict(P=0), ValueError, "P"), (dict(depth=0), ValueError, "depth"),
                               (dict(P=2.5), TypeError, "P"), (dict(depth="1"), TypeError, "depth")]:
        with pytest.raises(exc, match=match):
            default_sigma_a2("relu", **{"P": 10, "depth": 1, **kwargs})
    with pytest.raises(ValueError, match="name"):
        default_sigma_a2("tanhh", 10, 1)


# --- property test: random expressions compile to programs that agree with sympy --------------

_LEAVES = st.sampled_from([z, z, z, sp.Integer(2), sp.Rational(1, 2), sp.Integer(-3), sp.Float(0.7)])


def _grow(children):
    pair = st.tuples(children, children)
    return st.one_of(
        pair.map(lambda t: t[0] + t[1]), pair.map(lambda t: t[0] - t[1]), pair.map(lambda t: t[0] * t[1]),
        pair.map(lambda t: t[0] / (1 + t[1] ** 2)), pair.map(lambda t: sp.Max(t[0], t[1])),
        children.map(sp.tanh), children.map(sp.sin), children.map(sp.erf), children.map(sp.Abs),
        children.map(lambda e: sp.exp(-e ** 2)), children.map(lambda e: sp.sqrt(1 + e ** 2)),
        children.map(lambda e: sp.log(1 + e ** 2)), children.map(lambda e: e ** 3),
        children.map(lambda e: 1 / (1 + sp.exp(-e))),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=st.recursive(_LEAVES, _grow, max_leaves=6),
       xs=st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=5))
def test_random_expressions_agree_with_lambdify(expr, xs):
    assume(z in expr.free_symbols)
    x = np.array(xs)
    nl = nonlinearity(expr)
    for k in range(3):
        d = sp.diff(expr, z, k).replace(lambda e: e.func == sp.DiracDelta, lambda e: sp.S.Zero)
        f = sp.lambdify(z, d, ["numpy", "scipy"])
        with np.errstate(all="ignore"):
            ref = np.broadcast_to(np.asarray(f(x), dtype=float), x.shape)
        assume(np.all(np.isfinite(ref)) and np.max(np.abs(ref)) < 1e8)
        got = nl._apply(x, k)
        tol = 1e-10 * np.abs(ref) + 1e-12 * max(1.0, np.max(np.abs(ref)))
        ok = np.abs(got - ref) <= tol
        if not ok.all():    # the compiled φ', φ'' can be more accurate than sympy's form (1 − tanh²)
            with mp.workdps(50):
                exact = np.array([float(sp.lambdify(z, d, "mpmath")(mp.mpf(float(v)))) for v in x])
            ok |= np.abs(got - exact) <= 1e-10 * np.abs(exact) + 1e-12 * max(1.0, np.max(np.abs(exact)))
        assert ok.all(), (k, expr, d, x, got, ref)
