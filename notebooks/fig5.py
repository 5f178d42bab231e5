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
# # Figure 5 — lower-layer code switching (two-hidden-layer sigmoid network)
#
# First-layer neurons keep changing their code during sampling while the feature layer stays frozen;
# the coding scheme of the first layer is still visible in every sample after reordering.
#
# Scale: N = P = 80 (paper 500); small: 30.

# %%
import os
from pathlib import Path

from meanfield.figures import fig5

# MEANFIELD_SMALL=1: the tiny scale the test suite runs; MEANFIELD_FIG_DIR: where the PNG goes
SMALL = os.environ.get("MEANFIELD_SMALL", "0") == "1"
OUT = Path(os.environ.get("MEANFIELD_FIG_DIR", "figures"))
data = fig5.compute(small=SMALL, seed=0, progress=not SMALL)

# %%
for l, sw in enumerate(data["switching"], 1):
    print(f"layer {l}: {sw['switching_neurons']}/{data['N']} neurons switched, {sw['switches']} switches")

# %% [markdown]
# Run health of every sampler run behind a panel (`Samples.health`): a panel whose run failed its
# checks is drawn marked in red, and `meanfield figure` exits with status 3 (docs/figures.md,
# "Runs that did not learn").

# %%
from meanfield.figures.common import run_summary

for rec in data["runs"].values():
    print(run_summary(rec))

# %%
paths = fig5.draw(data, OUT)
try:
    from IPython.display import Image, display
    display(Image(filename=str(paths[0])))
except ImportError:  # plain python
    print(paths[0])
