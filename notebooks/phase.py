# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Phase diagram of the sigmoid coding scheme over (y₋, T)
#
# Theory (`mf.solve(..., "erf", T=T)` on a grid via `meanfield.sweeps.scheme_sweep`) coloured by the
# 1-1-1 fraction and by the scheme class; sampler points (annealed runs) on top in the same colours.
#
# Default P = N = 100 on a 6 × 6 grid; small: P = 40 on 2 × 2.

# %%
import os
from pathlib import Path

from meanfield.figures import phase

# MEANFIELD_SMALL=1: the tiny scale the test suite runs; MEANFIELD_FIG_DIR: where the PNG goes
SMALL = os.environ.get("MEANFIELD_SMALL", "0") == "1"
OUT = Path(os.environ.get("MEANFIELD_FIG_DIR", "figures"))
data = phase.compute(small=SMALL, seed=0, progress=not SMALL)

# %%
for s in data["samples"]:
    print(f"y- = {s['y_minus']:.2f}, T = {s['T']:.3f}: sampler {s['label']:15s} (1-1-1 {s['f111']:.3f}), "
          f"theory {s['theory_label']}")

# %% [markdown]
# Run health of every sampler run behind a panel (`Samples.health`): a panel whose run failed its
# checks is drawn marked in red, and `meanfield figure` exits with status 3 (docs/figures.md,
# "Runs that did not learn").

# %%
from meanfield.figures.common import run_summary

for rec in data["runs"].values():
    print(run_summary(rec))

# %%
paths = phase.draw(data, OUT)
try:
    from IPython.display import Image, display
    display(Image(filename=str(paths[0])))
except ImportError:  # plain python
    print(paths[0])
