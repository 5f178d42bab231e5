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
# # Figure 3 — three hidden layers
#
# Weight-space sampler, L = 3, toy task (y₋ = −½). Activations of every layer for one sample and the
# posterior-averaged kernels; for linear networks the deep theory's kernels
# (`mf.solve(task, "linear", depth=3)`) are drawn below the diagonal. The learned block structure
# strengthens towards the feature layer.
#
# Scale: N = P = 80 / 80 / 60 (paper 200 / 200 / 100); small: 30 / 40 / 30. The sigmoid network is
# annealed from T = 0.03: from 0.15 it froze with classes 1 and 2 merged and did not learn the task
# (training error 19 T, two codes in the deeper layers); now every layer carries the six one- and
# two-class codes.

# %%
import os
from pathlib import Path

from meanfield.figures import fig3

# MEANFIELD_SMALL=1: the tiny scale the test suite runs; MEANFIELD_FIG_DIR: where the PNG goes
SMALL = os.environ.get("MEANFIELD_SMALL", "0") == "1"
OUT = Path(os.environ.get("MEANFIELD_FIG_DIR", "figures"))
data = fig3.compute(small=SMALL, seed=0, progress=not SMALL)

# %%
for nl in ("linear", "erf", "relu"):
    print(f"{nl:6s} kernel-task alignment per layer", [round(a, 3) for a in data[nl]["kernel_task_alignment"]])
print("sigmoid codes per layer (≥ 1 % of the neurons):", data["erf"]["n_codes"])

# %% [markdown]
# Run health of every sampler run behind a panel (`Samples.health`): a panel whose run failed its
# checks is drawn marked in red, and `meanfield figure` exits with status 3 (docs/figures.md,
# "Runs that did not learn").

# %%
from meanfield.figures.common import run_summary

for rec in data["runs"].values():
    print(run_summary(rec))

# %%
paths = fig3.draw(data, OUT)
try:
    from IPython.display import Image, display
    display(Image(filename=str(paths[0])))
except ImportError:  # plain python
    print(paths[0])
