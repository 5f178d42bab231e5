"""Fuzz the public constructors with arbitrary argument values and types (hypothesis).

``toy_task``, ``Task``, ``nonlinearity`` (non-string objects and the built-in names only: user φ
strings have their own parser tests), ``solve`` and ``sample`` at tiny sizes (N ≤ 4, P ≤ 6,
steps ≤ 4). Any call either succeeds or raises ``ValueError`` / ``TypeError`` (or
``NotImplementedError`` where the API documents it, e.g. the depth-3 sigmoid theory) whose message
names one of the arguments; any other exception, or a message that names no argument, fails.

The default run is deterministic (60 examples per function, ≈ 20 s); for a deeper random search
set ``MEANFIELD_FUZZ_EXAMPLES`` (e.g. 1000).
"""
import math
import os
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import meanfield as mf
from meanfield.nonlinearities import Nonlinearity

_DEEP = os.environ.get("MEANFIELD_FUZZ_EXAMPLES")
SETTINGS = settings(max_examples=int(_DEEP or 60), deadline=None, suppress_health_check=list(HealthCheck),
                    derandomize=not _DEEP, database=None)
BUILTINS = ["linear", "erf", "relu", "softplus", "relu2", "sigmoid", "identity"]

# values of every kind: small ints, specials, floats (nan/inf), bools, None, strings, containers, arrays
junk = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 8), st.sampled_from([0, -1, 2 ** 70, np.int64(3), np.float32(0.5)]),
    st.floats(allow_nan=True, allow_infinity=True, width=64), st.text(max_size=3),
    st.lists(st.integers(-2, 3), max_size=4), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.sampled_from([np.zeros((2, 3)), np.ones(3), np.array([np.nan]), np.array(["a"]), np.zeros((0, 2)),
                     object(), 1j, b"x", (0.5, 0.5)]),
)


def maybe(valid):
    """Mostly a valid value (so that most calls get past the first checks), sometimes junk."""
    return st.integers(0, 7).flatmap(lambda i: valid if i else junk)      # one_of would flatten junk's branches


def check_call(fn, names, *args, **kwargs):
    """Run ``fn``; a raised exception must be ValueError/TypeError/NotImplementedError naming an argument."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    except (ValueError, TypeError, NotImplementedError) as exc:
        msg = str(exc)
        assert any(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", msg) for n in names), \
            f"{type(exc).__name__} names no argument of {sorted(names)}: {msg!r}"
        return None


@SETTINGS
@given(P=maybe(st.integers(1, 6)), N0=maybe(st.integers(1, 8)),
       ratios=maybe(st.lists(st.floats(0.01, 1.0), min_size=1, max_size=4).map(lambda r: [x / sum(r) for x in r])),
       y_plus=maybe(st.floats(-2, 2)), y_minus=maybe(st.floats(-2, 2)), seed=maybe(st.integers(0, 5)),
       P_test=maybe(st.integers(0, 4)))
def test_fuzz_toy_task(P, N0, ratios, y_plus, y_minus, seed, P_test):
    names = {"P", "N0", "ratios", "y_plus", "y_minus", "seed", "P_test"}
    t = check_call(mf.toy_task, names, P, N0, ratios=ratios, y_plus=y_plus, y_minus=y_minus, seed=seed,
                   P_test=P_test)
    if t is not None:
        assert np.all(np.bincount(t.labels, minlength=t.m) > 0)
        assert np.allclose(t.K0, np.eye(t.P))


arrays = st.integers(1, 4).flatmap(lambda n: st.integers(1, 4).flatmap(
    lambda k: st.lists(st.floats(-3, 3), min_size=n * k, max_size=n * k).map(lambda v: np.reshape(v, (n, k)))))


@SETTINGS
@given(X=maybe(arrays), Y=maybe(arrays), X_test=st.one_of(st.none(), maybe(arrays)),
       Y_test=st.one_of(st.none(), maybe(arrays)), labels=st.one_of(st.none(), junk, st.lists(st.integers(-1, 4))),
       labels_test=st.one_of(st.none(), junk), name=st.one_of(st.text(max_size=4), junk))
def test_fuzz_task(X, Y, X_test, Y_test, labels, labels_test, name):
    names = {"X", "Y", "X_test", "Y_test", "labels", "labels_test", "name"}
    t = check_call(mf.Task, names, X, Y, X_test=X_test, Y_test=Y_test, labels=labels, labels_test=labels_test,
                   name=name)
    if t is not None:
        assert t.Y.shape[0] == t.P and t.labels.shape == (t.P,) and t.labels.min() >= 0
        assert t.m == 1 or t.labels.max() < t.m


@SETTINGS
@given(value=st.one_of(st.sampled_from(BUILTINS), junk))
def test_fuzz_nonlinearity(value):
    if isinstance(value, str) and value not in BUILTINS:
        return                                  # user φ strings: not fuzzed here (parser tests)
    phi = check_call(mf.nonlinearity, {"name"}, value)
    if phi is not None:
        assert isinstance(phi, Nonlinearity)
        assert np.all(np.isfinite(phi.phi(np.linspace(-3, 3, 7))))


def _tiny_task():
    return mf.toy_task(5, 6, seed=1)


nonlinearities = maybe(st.sampled_from(BUILTINS))


@pytest.fixture
def fast_deep_sigmoid(monkeypatch):
    """The depth-2 sigmoid solve takes ~100 s even at P = 5: the fuzz checks that ``solve`` hands it
    validated arguments (its own checks are unit-tested in test_erf_deep.py) instead of running it."""
    import meanfield.theory.erf_deep as erf_deep

    def stub(task, T, N=None, *, sigma_a2=None):
        assert isinstance(task, mf.Task) and isinstance(T, float) and T > 0
        assert N is None or (isinstance(N, int) and N >= 1)
        assert isinstance(sigma_a2, float) and sigma_a2 > 0
        return None

    monkeypatch.setattr(erf_deep, "solve_erf_deep", stub)


@SETTINGS
@given(nl=nonlinearities, depth=maybe(st.integers(1, 3)), T=maybe(st.floats(1e-3, 1.0)),
       finite_P=maybe(st.booleans()), N=st.one_of(st.none(), maybe(st.integers(1, 4))),
       sigma_a2=st.one_of(st.none(), maybe(st.floats(0.1, 2.0))), task=maybe(st.just("task")))
def test_fuzz_solve(fast_deep_sigmoid, nl, depth, T, finite_P, N, sigma_a2, task):
    task = _tiny_task() if isinstance(task, str) and task == "task" else task
    names = {"task", "depth", "T", "finite_P", "N", "sigma_a2", "nonlinearity"}
    kw = {} if sigma_a2 is None else {"sigma_a2": sigma_a2}
    check_call(mf.solve, names, task, nl, depth=depth, T=T, finite_P=finite_P, N=N, **kw)


@SETTINGS
@given(nl=nonlinearities, N=maybe(st.integers(1, 4)), depth=maybe(st.integers(1, 3)), T=maybe(st.floats(1e-3, 1.0)),
       steps=maybe(st.integers(1, 4)), warmup=st.one_of(st.none(), maybe(st.integers(0, 3))),
       seed=maybe(st.integers(0, 3)), space=maybe(st.sampled_from(["weight", "preactivation"])),
       thin=maybe(st.integers(1, 3)), n_leapfrog=st.one_of(st.none(), maybe(st.integers(1, 3))),
       step_size=st.one_of(st.none(), maybe(st.floats(1e-3, 0.5))), anneal=st.one_of(st.none(), junk),
       sigma_a2=st.one_of(st.none(), maybe(st.floats(0.1, 2.0))), record=maybe(st.booleans()),
       init=st.one_of(st.none(), junk))
def test_fuzz_sample(nl, N, depth, T, steps, warmup, seed, space, thin, n_leapfrog, step_size, anneal, sigma_a2,
                     record, init):
    names = {"task", "N", "depth", "T", "steps", "warmup", "seed", "space", "thin", "n_leapfrog", "step_size",
             "anneal", "sigma_a2", "record_preactivations", "init", "nonlinearity"}
    s = check_call(mf.sample, names, _tiny_task(), nl, N=N, depth=depth, T=T, steps=steps, warmup=warmup, seed=seed,
                   space=space, thin=thin, n_leapfrog=n_leapfrog, step_size=step_size, anneal=anneal,
                   sigma_a2=sigma_a2, record_preactivations=record, init=init, progress=False)
    if s is not None:
        assert s.readouts.shape[1:] == (s.N, 3) and math.isfinite(s.wall_time)


def test_check_call_rejects_unnamed_messages():
    """The fuzz oracle itself: an error that names no argument fails it."""
    def bad(x):
        raise ValueError("something went wrong")

    with pytest.raises(AssertionError, match="names no argument"):
        check_call(bad, {"x"}, 1)
    with pytest.raises(KeyError):
        check_call(lambda: {}["k"], {"k"})
