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
# # Figure 6 — generalization on handwritten digits
#
# scikit-learn's 8 × 8 digits 0, 1, 2 (offline stand-in for MNIST), one hidden layer, N = P = 100,
# 400 test inputs. Test activations and test kernel of the sampled networks, mean predictor from
# sampling (`mf.predict_samples`) and theory (`mf.solve`, where it exists for general data), and the
# class-wise generalization error against the lazy GP baseline (`mf.gp_baseline`).
#
# Small: P = N = 45, 90 test inputs (linear theory only).

# %%
import os
from pathlib import Path

from meanfield.figures import fig6

# MEANFIELD_SMALL=1: the tiny scale the test suite runs; MEANFIELD_FIG_DIR: where the PNG goes
SMALL = os.environ.get("MEANFIELD_SMALL", "0") == "1"
OUT = Path(os.environ.get("MEANFIELD_FIG_DIR", "figures"))
data = fig6.compute(small=SMALL, seed=0, progress=not SMALL)

# %%
for nl in ("linear", "erf", "relu"):
    d = data[nl]
    print(f"{nl:6s} accuracy {d['accuracy']:.3f}  error {d['error'].round(3)}  GP {d['gp_error'].round(3)}  "
          f"theory: {d['theory'] or 'n/a'}")

# %% [markdown]
# Run health of every sampler run behind a panel (`Samples.health`): a panel whose run failed its
# checks is drawn marked in red, and `meanfield figure` exits with status 3 (docs/figures.md,
# "Runs that did not learn").

# %%
from meanfield.figures.common import run_summary

for rec in data["runs"].values():
    print(run_summary(rec))

# %%
paths = fig6.draw(data, OUT)
try:
    from IPython.display import Image, display
    display(Image(filename=str(paths[0])))
except ImportError:  # plain python
    print(paths[0])
