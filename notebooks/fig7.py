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
# # Figure 7 — two-hidden-layer sigmoid network on ten classes
#
# The paper trains on all of CIFAR-10 (P = 50 000, N = 1000). Set `CIFAR_PATH` to the directory with
# the CIFAR-10 python batches for a reduced CIFAR run (P = 500); without it the figure uses all ten
# classes of scikit-learn's digits as a substitute (P = 300). Training vs test activations of both
# layers, readouts and the class-0 predictor on test inputs.

# %%
import os
from pathlib import Path

from meanfield.figures import fig7

# MEANFIELD_SMALL=1: the tiny scale the test suite runs; MEANFIELD_FIG_DIR: where the PNG goes
SMALL = os.environ.get("MEANFIELD_SMALL", "0") == "1"
OUT = Path(os.environ.get("MEANFIELD_FIG_DIR", "figures"))
CIFAR_PATH = os.environ.get("CIFAR_PATH")  # directory with data_batch_1 … test_batch, or None
data = fig7.compute(small=SMALL, seed=0, progress=not SMALL, data_path=CIFAR_PATH)

# %%
print(f"source {data['source']}: train accuracy {data['train_accuracy']:.3f}, test accuracy {data['test_accuracy']:.3f}")

# %% [markdown]
# Run health of every sampler run behind a panel (`Samples.health`): a panel whose run failed its
# checks is drawn marked in red, and `meanfield figure` exits with status 3 (docs/figures.md,
# "Runs that did not learn").

# %%
from meanfield.figures.common import run_summary

for rec in data["runs"].values():
    print(run_summary(rec))

# %%
paths = fig7.draw(data, OUT)
try:
    from IPython.display import Image, display
    display(Image(filename=str(paths[0])))
except ImportError:  # plain python
    print(paths[0])
