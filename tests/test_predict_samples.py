"""Sampled mean predictor on new inputs (``predict_samples``)."""
import numpy as np
import pytest
from scipy.integrate import quad

import meanfield as mf
from meanfield.nonlinearities import nonlinearity
from meanfield.sampling.predict import gaussian_mean_activation


@pytest.mark.parametrize("name", ["linear", "erf", "relu", "softplus"])
def test_gaussian_mean_activation_vs_quadrature(name):
    phi = nonlinearity(name)
    m, v = np.array([-1.3, 0.0, 0.7, 2.5]), np.array([0.0, 0.4, 1.0, 2.0])
    def ref(mi, vi):
        if vi == 0:
            return float(phi.phi(np.array([mi]))[0])
        f = lambda u: float(phi.phi(np.array([mi + np.sqrt(vi) * u]))[0]) * np.exp(-0.5 * u * u)   # noqa: E731
        return quad(f, -12, -mi / np.sqrt(vi), epsabs=1e-13)[0] / np.sqrt(2 * np.pi) + \
            quad(f, -mi / np.sqrt(vi), 12, epsabs=1e-13)[0] / np.sqrt(2 * np.pi)     # split at relu's kink
    expect = np.array([ref(mi, vi) for mi, vi in zip(m, v)])
    assert np.allclose(gaussian_mean_activation(phi, m, v), expect, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("name", ["erf", "relu"])
def test_on_training_inputs_equals_the_sampled_mean_prediction(name):
    # on a training input the conditional is a point mass at the stored preactivation
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 20))
    Y = np.eye(3)[rng.integers(0, 3, 20)]
    task = mf.Task(X, Y)
    s = mf.sample(task, name, 8, T=0.05, steps=60, space="preactivation", seed=1, progress=False)
    f = mf.predict_samples(s, task, X)
    assert np.allclose(f, s.mean_prediction, atol=1e-5)     # preactivations are stored as float32
    with pytest.raises(ValueError, match="X_new"):
        mf.predict_samples(s, task, X[:5])
