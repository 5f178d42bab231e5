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
# # Figure 2 — coding schemes in the feature layer (toy task)
#
# One hidden layer, three classes in ratios ½ : ¼ : ¼. Rows: linear (y₋ = 0), sigmoid (y₋ = ½,
# annealed sampler), ReLU (y₋ = −½, started in the theory's outlier state). Columns: readouts of one
# sample (theory dashed), activations (neurons sorted by code), the sample's output (theory mean
# predictor dashed).
#
# Scale: N = P = 200 / 200 / 100 (paper 200 / 500 / 500); small: 40.

# %%
import os
from pathlib import Path

from meanfield.figures import fig2

# MEANFIELD_SMALL=1: the tiny scale the test suite runs; MEANFIELD_FIG_DIR: where the PNG goes
SMALL = os.environ.get("MEANFIELD_SMALL", "0") == "1"
OUT = Path(os.environ.get("MEANFIELD_FIG_DIR", "figures"))
data = fig2.compute(small=SMALL, seed=0, progress=not SMALL)

# %%
for nl in ("linear", "erf", "relu"):
    fr = {"-".join(map(str, c)): round(float(p), 3) for c, p in data[nl]["code_fractions"].items() if p > 0.01}
    print(f"{nl:6s} {data[nl]['scheme'].scheme:9s} codes {fr}")

# %% [markdown]
# Run health of every sampler run behind a panel (`Samples.health`): a panel whose run failed its
# checks is drawn marked in red, and `meanfield figure` exits with status 3 (docs/figures.md,
# "Runs that did not learn").

# %%
from meanfield.figures.common import run_summary

for rec in data["runs"].values():
    print(run_summary(rec))

# %%
paths = fig2.draw(data, OUT)
try:
    from IPython.display import Image, display
    display(Image(filename=str(paths[0])))
except ImportError:  # plain python
    print(paths[0])
