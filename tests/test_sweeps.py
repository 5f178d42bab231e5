"""Coding-scheme sweep: table, plot and CLI on a small toy task."""
import os

import pytest

from meanfield.cli import main
from meanfield.sweeps import plot_scheme_sweep, scheme_sweep, sweep_table

PAIRS = {(0, 1, 1), (1, 0, 1), (1, 1, 0)}


def test_sweep_theory_and_sampler_pair_codes(tmp_path):
    rows = scheme_sweep("y_minus", [0.3], T=0.01, P=60, N=60, steps=300, seed=1)
    r = rows[0]
    assert r["converged"]
    assert {c for c, p in r["theory"].items() if p > 0.01} == PAIRS
    # the sampler lands in the pair code (the three pair codes hold ≥ 90 % of the neurons)
    assert sum(r["sampler"].get(c, 0.0) for c in PAIRS) > 0.9
    assert all(abs(r["sampler"].get(c, 0.0) - r["theory"][c]) < 0.1 for c in PAIRS)
    txt = sweep_table(rows)
    assert "1-1-0" in txt and "sampler" in txt
    png = plot_scheme_sweep(rows, str(tmp_path / "s.png"))
    assert os.path.getsize(png) > 1000


def test_sweep_cli_theory_only(tmp_path, capsys):
    out = tmp_path / "t.png"
    assert main(["sweep", "--parameter", "T", "--values", "0.02", "0.1", "--P", "60", "--png", str(out), "-q"]) == 0
    txt = capsys.readouterr().out
    assert "0.100  theory   1-1-1:1.000" in txt
    assert out.exists()


def test_sweep_bad_parameter():
    with pytest.raises(ValueError, match="parameter"):
        scheme_sweep("N", [1.0])
