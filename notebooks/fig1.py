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
# # Figure 1 — lazy vs non-lazy networks
#
# One hidden layer, one output, binary toy task (targets ±1). The **non-lazy** posterior is sampled
# (`mf.sample`); the **lazy** posterior is the prior up to 1/N corrections, so its activations are a
# prior draw and its kernel the NNGP kernel. All three non-lazy kernels carry the task, but the
# activations differ: analog (linear), redundant (sigmoid), sparse (ReLU).
#
# Scale: N = P = 150 (paper 500); `MEANFIELD_SMALL=1`: 40.

# %%
import os
from pathlib import Path

from meanfield.figures import fig1

# MEANFIELD_SMALL=1: the tiny scale the test suite runs; MEANFIELD_FIG_DIR: where the PNG goes
SMALL = os.environ.get("MEANFIELD_SMALL", "0") == "1"
OUT = Path(os.environ.get("MEANFIELD_FIG_DIR", "figures"))
data = fig1.compute(small=SMALL, seed=0, progress=not SMALL)

# %%
for nl in ("linear", "erf", "relu"):
    print(f"{nl:6s}", data[nl]["nonlazy"]["scheme"])

# %% [markdown]
# Run health of every sampler run behind a panel (`Samples.health`): a panel whose run failed its
# checks is drawn marked in red, and `meanfield figure` exits with status 3 (docs/figures.md,
# "Runs that did not learn").

# %%
from meanfield.figures.common import run_summary

for rec in data["runs"].values():
    print(run_summary(rec))

# %%
paths = fig1.draw(data, OUT)
try:
    from IPython.display import Image, display
    display(Image(filename=str(paths[0])))
except ImportError:  # plain python
    print(paths[0])
