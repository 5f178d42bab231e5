"""The paper's figures at CPU scale: ``meanfield figure N`` (N = 1 … 7) and the phase diagram.

Each module (``fig1`` … ``fig7``, ``phase``) exposes ``compute(small, seed, progress)`` (the data
behind the figure), ``draw(data, out_dir)`` and ``make(out_dir, small=False, seed=0, progress=True)
-> list[Path]``. Scales against the paper are in each module's docstring and in docs/figures.md.
"""
from __future__ import annotations

import importlib

from .common import NotLearnedError

FIGURES = ("1", "2", "3", "4", "5", "6", "7", "phase")
DESCRIPTIONS = {
    "1": "lazy vs non-lazy: kernels and activations (linear, sigmoid, ReLU; binary task)",
    "2": "feature-layer coding schemes on the toy task: readouts, activations, output",
    "3": "three hidden layers: activations and kernels per layer",
    "4": "readout / preactivation posteriors (theory dashed) and their dynamics: code freezing",
    "5": "two-hidden-layer sigmoid: first-layer code switching, frozen feature layer",
    "6": "generalization on digits 0/1/2: test activations, test kernel, predictor, error vs GP",
    "7": "two-hidden-layer sigmoid on ten classes (CIFAR-10 with --data-path, else digits)",
    "phase": "sigmoid coding-scheme phase diagram over (y-, T): theory map, sampler points",
}


def module(name):
    """The figure module for ``name`` ("1" … "7" or "phase"; ints accepted)."""
    key = str(name).strip().lower()
    key = key[3:] if key.startswith("fig") else key
    if key not in FIGURES:
        raise ValueError(f"unknown figure {name!r}: expected one of {', '.join(FIGURES)}")
    return importlib.import_module(f".{'phase' if key == 'phase' else 'fig' + key}", __name__)


def make(name, out_dir, small=False, seed=0, progress=True, **options):
    """Compute and draw figure ``name`` into ``out_dir``; returns the written PNG paths.

    ``options``: ``data_path`` for figure 7 (CIFAR-10 python batches); ValueError elsewhere.
    Raises :class:`NotLearnedError` (after writing the PNG, the panel marked in red) when a panel's
    sampler run failed its health checks (``Samples.health``).
    """
    mod = module(name)
    unknown = set(options) - ({"data_path"} if mod.__name__.endswith("fig7") else set())
    if unknown:
        raise ValueError(f"figure {name}: unknown option(s) {sorted(unknown)}")
    return mod.make(out_dir, small=small, seed=seed, progress=progress, **options)
