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
# # Figure 4 — posteriors and dynamics of the feature layer
#
# Readout posterior on the first class and preactivation posterior on class-0 inputs, sampled
# (histograms) against the theory (dashed), and their evolution over sampling time. Linear networks
# mix; sigmoid readouts split into branches and codes freeze; ReLU outliers are frozen.
#
# Scale: N = P = 100 / 100 / 60 (paper 200 / 500 / 500); small: 40 / 40 / 30.

# %%
import os
from pathlib import Path

from meanfield.figures import fig4

# MEANFIELD_SMALL=1: the tiny scale the test suite runs; MEANFIELD_FIG_DIR: where the PNG goes
SMALL = os.environ.get("MEANFIELD_SMALL", "0") == "1"
OUT = Path(os.environ.get("MEANFIELD_FIG_DIR", "figures"))
data = fig4.compute(small=SMALL, seed=0, progress=not SMALL)

# %%
for nl in ("linear", "erf", "relu"):
    sw = data[nl]["switching"]
    print(f"{nl:6s} neurons that switched code: {sw['switching_neurons']}/{data[nl]['N']}, "
          f"class-0 readout sign flips: {data[nl]['sign_flips']:.2f}")

# %% [markdown]
# Run health of every sampler run behind a panel (`Samples.health`): a panel whose run failed its
# checks is drawn marked in red, and `meanfield figure` exits with status 3 (docs/figures.md,
# "Runs that did not learn").

# %%
from meanfield.figures.common import run_summary

for rec in data["runs"].values():
    print(run_summary(rec))

# %%
paths = fig4.draw(data, OUT)
try:
    from IPython.display import Image, display
    display(Image(filename=str(paths[0])))
except ImportError:  # plain python
    print(paths[0])
