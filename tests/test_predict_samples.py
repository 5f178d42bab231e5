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


@pytest.mark.parametrize("name", ["erf", "relu", "softplus"])
def test_gaussian_pair_activation_vs_two_dimensional_quadrature(name):
    """E[φ(u₁)φ(u₂)] for correlated Gaussians against scipy's dblquad (erf also against the bivariate
    normal CDF, its closed form), including a degenerate u₁ and perfectly correlated u₁ = u₂."""
    from scipy.integrate import dblquad
    from scipy.stats import multivariate_normal

    from meanfield.sampling.predict import gaussian_pair_activation

    phi = nonlinearity(name)
    for m1, m2, v1, v2, c in ((0.3, -0.4, 0.8, 1.3, 0.5), (1.1, 0.2, 0.0, 0.7, 0.0), (-0.2, -0.2, 0.6, 0.6, 0.6)):
        got = float(gaussian_pair_activation(phi, m1, m2, v1, v2, c))
        if v1 == 0.0:
            ref = float(phi.phi(np.array(m1))) * float(gaussian_mean_activation(phi, m2, v2))
        elif c * c >= v1 * v2 - 1e-15:
            ref = quad(lambda x: phi.phi(np.array(m1 + np.sqrt(v1) * x)) ** 2 * np.exp(-x * x / 2) / np.sqrt(2 * np.pi),
                       -12, 12)[0]
        else:
            cov = np.array([[v1, c], [c, v2]])
            L = np.linalg.cholesky(cov)
            def dens(y, x):
                return (phi.phi(np.array(m1 + L[0, 0] * x)) * phi.phi(np.array(m2 + L[1, 0] * x + L[1, 1] * y))
                        * np.exp(-(x * x + y * y) / 2) / (2 * np.pi))
            ref = dblquad(dens, -10, 10, -10, 10, epsabs=1e-11)[0]
            if name == "erf":
                k = np.sqrt(np.pi / 2)
                s = np.sqrt(1 + k * k * np.array([v1, v2]))
                cdf = multivariate_normal([0, 0], [[1, k * k * c / (s[0] * s[1])], [k * k * c / (s[0] * s[1]), 1]]).cdf(
                    [k * m1 / s[0], k * m2 / s[1]])
                assert abs(cdf - ref) < 1e-6
        assert abs(got - ref) < 1e-6 * max(1.0, abs(ref)), (name, got, ref)
