"""User nonlinearity strings: the whitelisted parser (no eval of user text) and the admissibility
check of every user φ (real, finite, no pole, finite Gaussian second moment).

What is asserted:
* injection payloads raise ``ValueError`` naming ``name`` and run nothing: each would create a file
  in ``tmp_path`` (or call ``eval``/``exec``, which the test replaces by a tripwire) and the file
  does not exist afterwards; the CLI prints the error and exits with status 1;
* sqrt(z), 1/z, exp(z**2) (and poles off the grid, log singularities, overflow, 0/0) are refused with
  the reason in the message; admissible φ near the boundary (exp(z²/5): ∫Dz φ² = √5) are accepted;
* the whitelist is exactly what the compiler can evaluate; printed φ parse back to the same φ;
* fuzz: any text gives a Nonlinearity or a ValueError/TypeError naming ``name``, within a deadline.
"""
import builtins
import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meanfield import _sympy_program as spg
from meanfield._expr_parser import _COMPARE, FUNCTIONS, MAX_LENGTH, parse_phi
from meanfield.cli import main
from meanfield.nonlinearities import Nonlinearity, nonlinearity, z


@pytest.fixture(scope="module", autouse=True)
def _warm():
    nonlinearity("tanh(z)")      # numba kernels loaded once, outside the hypothesis deadlines


def _payloads(path):
    p = str(path)
    return [
        f"__import__('os').system('touch {p}') + z",
        f"__import__('pathlib').Path('{p}').touch() or z",
        f"open('{p}', 'w').write('x') + z",
        f"z.__class__.__init__.__globals__['os'].system('touch {p}')",
        f"(lambda: __import__('os').system('touch {p}'))() + z",
        f"[__import__('os').system('touch {p}') for _ in (1,)][0] + z",
        f"exec(\"open('{p}', 'w')\") + z",
        f"eval(\"__import__('os').system('touch {p}')\")",
        f"().__class__.__bases__[0].__subclasses__()[0]('{p}') + z",
        f"Max(z, __import__('os').system('touch {p}'))",
        f"Piecewise((z, __import__('os').system('touch {p}')), (0, True))",
        f"exp(x=__import__('os').system('touch {p}'))",
        f"z.__class__",
        "lambda: z",
        "().__class__.__bases__",
    ]


@pytest.fixture
def tripwire(monkeypatch):
    """eval/exec/sympy's parse_expr raise if anything calls them while a φ is built."""
    calls = []

    def trip(*args, **kwargs):
        calls.append(args)
        raise AssertionError("eval/exec/parse_expr called")

    monkeypatch.setattr(builtins, "eval", trip)
    monkeypatch.setattr(builtins, "exec", trip)
    monkeypatch.setattr(sp, "parse_expr", trip)
    monkeypatch.setattr("sympy.parsing.sympy_parser.parse_expr", trip)
    return calls


def test_injection_raises_and_runs_nothing(tmp_path, tripwire):
    target = tmp_path / "INJECTED"
    for payload in _payloads(target):
        with pytest.raises(ValueError, match="name: .*not allowed"):
            nonlinearity(payload)
        assert not target.exists(), payload
    assert tripwire == []
    # the same path builds legitimate φ without eval/exec at all
    nl = nonlinearity("Piecewise((tanh(z), z > 0), (0.1*z, True)) + Max(0.1*z, z)**2/10")
    assert nl.phi(2.0) == pytest.approx(math.tanh(2.0) + 0.4, rel=1e-14) and tripwire == []


def test_injection_via_cli(tmp_path, capsys):
    target = tmp_path / "INJECTED"
    for payload in _payloads(target)[:3]:
        code = main(["sample", "--nonlinearity", payload, "--P", "6", "--N0", "8", "--N", "4", "--steps", "2", "-q"])
        err = capsys.readouterr().err
        assert code == 1 and "meanfield sample: error: nonlinearity: name:" in err and "not allowed" in err, err
        assert not target.exists()


@pytest.mark.parametrize("text,match", [
    ("sqrt(z)", r"not real for z < 0 \(sqrt\(z\) at z = -1 is 1.0\*I\)"),
    ("1/z", r"pole at z = 0 \(1/z at z = 0 is zoo\)"),
    ("exp(z**2)", r"∫Dz φ\(z\)² diverges: log\|φ\| grows like 1·z²"),
    ("exp(z**2/4)", r"diverges: log\|φ\| grows like 0.25·z² as z → \+∞"),
    ("exp(-z)**2*exp(z**2/4)", r"diverges: .* as z → -∞"),
    ("1/(z - 0.3)", r"pole at z = 0.3"),
    ("1/(z**2 - 2)", r"pole near z = ±?1.41421"),              # root not on any grid
    ("1e-9/(z - 0.3001) + z**3", r"pole at z = 0.3001"),      # a tiny residue under a large smooth part
    ("tan(z)", r"pole near z = 1.5708"),                       # found by the zoom on |φ|
    ("1/(exp(z) - 2)", r"pole near z = 0.693147"),
    ("1e-3*log(Abs(z - 0.305))", r"singularity at z = 0.305"),
    ("log((z - 0.305)**2 - 1e-8)", r"not real for 0.3 < z < 0.31"),   # a gap narrower than the grid
    ("sqrt(1 - z**2)", r"not real for z < -1 and for z > 1"),
    ("sqrt(2000 - z**2)", r"not real at z = -100"),
    ("sin(z)/z", r"undefined \(nan in floating point\) at z = 0 \(1/z at z = 0 is zoo\)"),
    ("Piecewise((z, z > 0))", r"undefined \(nan in floating point\) for z ≤ 0"),
    ("cosh(z)**20", r"overflows float64 at z = 36.19"),      # ∫Dz φ² ≈ e^800: finite, but not in float64
    ("sinh(z)**40*exp(-z**2/4)", r"overflows float64 at z = 18.44"),   # sinh(z)**40 does, in the program
    ("exp(z**2/3)*z**30", r"diverges: log\|φ\| grows like 0.346·z² as z → \+∞"),
    ("Piecewise((z, z > 50), (0, True))", r"φ\(z\) = 0 for every \|z\| ≤ 40"),
])
def test_inadmissible_phi_refused_with_reason(text, match):
    with pytest.raises(ValueError, match="^name: .*" + match):
        nonlinearity(text)


def test_sympy_objects_get_the_same_check():
    for expr, match in [(sp.sqrt(z), "not real for z < 0"), (1 / sp.Symbol("z"), "pole at z = 0"),
                        (sp.exp(z ** 2), "diverges"), (z ** 200, "overflows float64")]:
        with pytest.raises(ValueError, match=match):
            nonlinearity(expr)
    assert isinstance(nonlinearity(sp.tanh(z) ** 200), Nonlinearity)     # beyond the string exponent bound


@pytest.mark.parametrize("text", [
    "exp(z**2/5)",               # ∫Dz φ² = √5: finite, however fast φ grows
    "exp(-1/z**2)",              # -1/0 = -inf, exp(-inf) = 0: finite in float64 and smooth
    "Abs(z)**0.5*sign(z)", "sin(100*z)", "cosh(z)**10", "tanh(z)**100", "1/(1 + z**2)", "z**100",
    "exp(z)*exp(-exp(z))", "Piecewise((z, 0 < z < 1), (1, z >= 1), (0, True))", "Heaviside(z - 0.3, 1)",
    "log1p(z**2) + expm1(z/3) + atan(z) + asinh(z) + cosh(z/4) - sinh(z/5)", "2**z + pi*z - E",
])
def test_admissible_phi_accepted(text):
    nl = nonlinearity(text)
    x = np.linspace(-10, 10, 2001)
    assert np.all(np.isfinite(nl.phi(x)))


def test_grammar():
    assert parse_phi("Piecewise((z, 0 < z < 1), (0, True)) ") == sp.Piecewise((z, sp.And(z > 0, z < 1)), (0, True))
    assert parse_phi("-z**2/2 + 3*pi - E") == -z ** 2 / 2 + 3 * sp.pi - sp.E
    assert parse_phi("z**(1/2)") == sp.sqrt(z)            # 1/2 is exact, compiled as a square root
    assert parse_phi("log(z, 2)") == sp.log(z) / sp.log(2)
    assert parse_phi("Piecewise((z, (z > 0) & ~(z > 1)), (0, True))") == sp.Piecewise(
        (z, (z > 0) & ~(z > 1)), (0, True))
    assert parse_phi("Heaviside(z, 0)") == sp.Heaviside(z, 0)
    assert parse_phi("Max(2**10, 3) * z") == 1024 * z
    for text, match in [
        ("z^2", r"'\^' in 'z\^2' is not allowed: write powers as \*\* \(e.g. z\*\*2\)"),
        ("9**9**9 + z", r"the constant '9\*\*9\*\*9' is not a finite real number"),
        ("z**10**10", r"the exponent in 'z\*\*10\*\*10' is 1e\+10; at most 100"),
        ("(z**50)**3", r"the power z\*\*150 has an exponent beyond ±100"),
        ("exp(exp(1000)) * z", r"the constant 'exp\(1000\)' is not a finite"),
        ("1e7*z", r"number beyond ±1e\+06: '1e7'"),
        ("sqrt(-1)*z", r"constant 'sqrt\(-1\)'"),
        ("x + z", r"the name 'x' is not allowed .*allowed: the symbol z"),
        ("gamma(z)", r"the function 'gamma' is not allowed"),
        ("exp", r"function name without a call"),
        ("exp(z, 2)", r"exp takes 1 argument\(s\), got 2"),
        ("Max()", r"Max takes at least 1 argument"),
        ("exp(x=z)", r"keyword argument 'x=z'"),
        ("z + (z > 0)", r"'z > 0' is a condition \(comparison\) where an expression is expected"),
        ("Piecewise((z, z))", r"'z' is an expression where a condition"),
        ("Piecewise(z)", r"not a \(value, condition\) pair"),
        ("z > 0", r"is a condition, not an expression"),
        ("z // 2", r"operator '//'"), ("z if z > 0 else 0", r"if/else"), ("'z'", r"str literal"),
        ("z[0]", r"subscript"), ("1j*z", r"complex literal"), ("z and 1", r"and/or"),
        ("Heaviside(z, z)", r"Heaviside .* must be a number"), ("z +", r"cannot parse"),
        ("(" * 300 + "z" + ")" * 300, r"cannot parse|syntax nodes"), ("z" + "+z" * 200, r"syntax nodes"),
        ("z" * (MAX_LENGTH + 1), rf"at most {MAX_LENGTH}"), ("\x00", r"cannot parse"),
    ]:
        with pytest.raises(ValueError, match="^name: .*" + match):
            parse_phi(text)
    with pytest.raises(TypeError, match="name"):
        parse_phi(b"z")


def test_whitelist_is_what_the_compiler_evaluates():
    compiled = set(spg._UNARY) | set(spg._NARY) | set(spg._RELATIONAL) | {sp.Heaviside, sp.Piecewise}
    internal = {spg._Sigmoid, spg._Softplus, spg._Tanh, spg._Sech2}
    listed = {entry[0] for name, entry in FUNCTIONS.items() if name != "sqrt"} | set(_COMPARE.values())
    assert listed <= compiled and compiled - internal - listed == set()
    for name, (_, lo, hi, _, _) in FUNCTIONS.items():     # every function compiles at its arities
        if FUNCTIONS[name][3] != "expression" or name in ("Eq", "Ne"):     # conditions: test_grammar
            continue
        for n in {lo, hi or lo + 1}:       # arguments in (0.5, 1.5): every φ is admissible
            rest = ["0.5" if name in ("Heaviside", "log") else f"tanh(z/{k + 2}) + {k + 2}" for k in range(n - 1)]
            nl = nonlinearity(f"{name}({', '.join(['tanh(z)/2 + 1'] + rest)})")
            assert np.isfinite(nl.phi(0.7)), name


def test_printed_phi_parses_back():
    for text in ["Max(0.1*z, z)", "Piecewise((z, z > 1), (-z, z < -1), (z**3, True))", "log(1 + exp(z))",
                 "Piecewise((1, Eq(z, 1)), (z, Ne(z, 2)), (0, True))", "Heaviside(z, 0) + erfc(z)*exp(-z**2/4)",
                 "Piecewise((1, (z > 0) & (z < 1)), (2, (z > 2) | (z < -2)), (0, True))", "sign(z)*Abs(z)**(3/2)"]:
        nl = nonlinearity(text)
        assert nonlinearity(nl.name).expr == nl.expr, text


# --- fuzz: any text gives a Nonlinearity or a ValueError/TypeError naming the argument -----------

_TOKENS = ["z", "z", "z", "1", "2", "0.5", "-3", "1e6", "0", "pi", "E", "+", "-", "*", "/", "**", "^", "(", ")",
           "(", ")", ",", " ", "<", ">", "&", "|", "~", "True", "x", ".", "[", "]", "'", "__import__", "lambda",
           *(f"{f}(" for f in FUNCTIONS)]
_LEAF = st.sampled_from(["z", "z", "1", "2", "0.5", "3", "pi", "E", "0", "1e-3"])


def _combine(children):
    pair = st.tuples(children, children)
    unary = st.sampled_from(["exp", "log", "sqrt", "tanh", "sin", "erf", "Abs", "atan", "expm1", "-"])
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**"]), children).map(
            lambda t: f"({t[0]}){t[1]}({t[2]})"),
        st.tuples(unary, children).map(lambda t: f"{t[0]}({t[1]})"),
        pair.map(lambda t: f"Max({t[0]}, {t[1]})"),
        pair.map(lambda t: f"Piecewise(({t[0]}, z > {t[1]}), (0, True))"),
    )


def _fuzz(text):
    try:
        nl = nonlinearity(text)
    except (ValueError, TypeError) as exc:
        assert "name" in str(exc), (text, exc)
        return
    assert isinstance(nl, Nonlinearity)


@settings(max_examples=150, deadline=20000, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(_TOKENS), max_size=25).map("".join)))
def test_fuzz_arbitrary_text(text):
    _fuzz(text)


@settings(max_examples=150, deadline=20000, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(_LEAF, _combine, max_leaves=8))
def test_fuzz_grammatical_expressions(text):
    _fuzz(text)
