"""Sigmoid (erf) networks: theory vs posterior samples on the toy task (issue 3, acceptance 2).

Toy task N = P = 200, N0 = 220, m = 3, ρ = [½, ¼, ¼], y₊ = 1, y₋ = ½, preactivation space.

Two regimes (docs/theory_erf.md §12):
* T = 0.03: neurons still switch codes during the run (mixing), the sampler reaches the
  equilibrium, and the code fractions match the finite-P, finite-T theory. Tolerance 0.03
  (the issue's): the spread over seeds is ≈ 0.01.
* T = 0.01: codes are frozen (broken ergodicity): an annealed run keeps the fractions it had
  when it froze (near T ≈ 0.03), a theory-started run keeps the theory's. In both cases the
  fixed-fraction theory at the *sampled* fractions must give the sampled field t and readouts
  within 2 % (the issue's tolerance; observed 0.2–0.7 %).
"""
import numpy as np
import pytest

import meanfield as mf
from meanfield.analysis import code_fractions, code_switching
from meanfield.code_agreement import sampled_codes

N = P = 200


@pytest.fixture(scope="module")
def task():
    return mf.toy_task(P, P + 20, y_minus=0.5)


def _run(task, T, seed, **kw):
    return mf.sample(task, "erf", N, T=T, steps=2000, warmup=1000, space="preactivation", seed=seed,
                     thin=5, progress=False, **kw)


def _theory_fractions(sol):
    return {tuple(int(b) for b in c): float(p) for c, p in zip(sol.codes, sol.code_fractions)}


def test_mixing_temperature_matches_equilibrium_theory(task):
    T = 0.03
    sol = mf.solve(task, "erf", T=T, finite_P=True)
    s = _run(task, T, seed=3, anneal=0.15)
    cmp = mf.compare(sol, s)
    print(cmp.table())
    assert cmp["code set"] == 0
    assert cmp["code fractions"] < 0.03
    assert cmp["readout a_γ per code"] < 0.05
    assert cmp["p(z | a_γ) per code, class"] < 0.1
    assert cmp["field t = residual/T"] < 0.05
    assert cmp["code switches"] > 0.1 * N          # the regime is mixing: codes do change


def _fixed_fraction_errors(task, s, T):
    C = sampled_codes(s, task)
    fr = code_fractions(C)
    sf = mf.solve(task, "erf", T=T, finite_P=True, code_fractions=fr)
    assert sf.converged, sf.message
    t_s = (task.Y - s.mean_prediction) / T
    t_err = np.linalg.norm(t_s - sf.field) / np.linalg.norm(sf.field)
    a_err = 0.0
    for k, code in enumerate(sf.codes):
        sel = np.all(C == np.array(code, dtype=np.int8), axis=-1)
        if sel.sum() >= 0.01 * sel.size:
            a = s.readouts[sel].mean(axis=0)
            a_err = max(a_err, np.linalg.norm(a - sf.readouts[k]) / np.linalg.norm(sf.readouts[k]))
    return fr, t_err, a_err, code_switching(C)


def test_frozen_annealed_state_is_a_fixed_fraction_solution(task):
    T = 0.01
    sol = mf.solve(task, "erf", T=T, finite_P=True)
    s = _run(task, T, seed=1, anneal=0.15)
    fr, t_err, a_err, sw = _fixed_fraction_errors(task, s, T)
    print(f"sampled fractions {fr}; theory {_theory_fractions(sol)}; t err {t_err:.4f}, a err {a_err:.4f}, "
          f"switching neurons {sw['switching_neurons']}")
    assert {c for c, p in fr.items() if p > 0.01} == {c for c, p in _theory_fractions(sol).items() if p > 0.01}
    assert sw["switching_neurons"] <= 0.05 * N       # frozen
    assert t_err < 0.02 and a_err < 0.02


def test_theory_started_run_stays_in_the_theory_state(task):
    T = 0.01
    sol = mf.solve(task, "erf", T=T, finite_P=True)
    init = mf.theory_start(sol, N, seed=2)
    s = _run(task, T, seed=2, init=init)
    cmp = mf.compare(sol, s)
    print(cmp.table())
    assert cmp["code set"] == 0
    assert cmp["code fractions"] < 0.03
    assert cmp["readout a_γ per code"] < 0.05
    assert cmp["code switches"] <= 0.05 * N
    _, t_err, a_err, _ = _fixed_fraction_errors(task, s, T)
    assert t_err < 0.02 and a_err < 0.02
