"""Coding-scheme classification, outliers, rasters, neural-collapse metrics, eigenspectra."""
import numpy as np
import pytest

import meanfield as mf
from meanfield.analysis.collapse import collapse_metrics, nc1, nc2
from meanfield.analysis.scheme import activation_raster, outliers, plot_raster, scheme_type
from meanfield.analysis.spectrum import eigenspectrum, powerlaw_exponent


# ----------------------------------------------------------------------------- constructed data
def _labels(P=60, K=3):
    return np.arange(P) % K


def _analog(rng, N=80, P=60, K=3):
    lab = _labels(P, K)
    means = rng.standard_normal((N, K))
    return means[:, lab] + 0.3 * rng.standard_normal((N, P)), lab


def _redundant(rng, N=80, P=60, K=3):
    lab = _labels(P, K)
    codes = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1]])[rng.integers(0, 3, N)]
    H = np.clip(0.97 * codes[:, lab] + 0.015 + 0.01 * rng.standard_normal((N, P)), 0, 1)
    return H, lab


def _sparse(rng, N=80, P=60, K=3):
    lab = _labels(P, K)
    H = np.abs(0.3 + 0.1 * rng.standard_normal((N, P)))            # task-agnostic bulk
    for c in range(K):                                               # one O(√N) neuron per class
        H[c] = np.sqrt(N) * (lab == c)
    return H, lab


def test_outliers_median_reference():
    rng = np.random.default_rng(0)
    A = 1 + 0.1 * rng.standard_normal((5, 100, 3))                  # (S, N, m)
    A[:, [7, 42, 3], :] *= np.array([30.0, 50.0, 15.0])[:, None]
    idx, r = outliers(A)
    assert idx.tolist() == [42, 7, 3]
    assert np.all(np.diff(r) < 0) and r[-1] == pytest.approx(15, rel=0.05)
    assert outliers(A, factor=20)[0].tolist() == [42, 7]
    # with activations the norm is the output contribution |a|·|φ|/√P
    H = np.ones((100, 20))
    H[3] *= 10
    idx, r = outliers(A[0], H)
    assert idx.tolist() == [3, 42, 7] and 100 < r[0] < 200                # ≈ 15 × 10
    assert outliers(None, H)[0].size == 0                           # 10× is not > 10×


def test_outliers_errors():
    with pytest.raises(ValueError, match="factor"):
        outliers(np.ones(10), factor=1.0)
    with pytest.raises(ValueError, match="both be None"):
        outliers(None)
    with pytest.raises(ValueError, match="readouts and activations"):
        outliers(np.ones((10, 2)), np.ones((9, 4)))
    with pytest.raises(TypeError, match="readouts"):
        outliers(["a", "b"])


@pytest.mark.parametrize("make, expected", [(_analog, "analog"), (_redundant, "redundant"),
                                            (_sparse, "sparse")])
def test_scheme_type_constructed(make, expected):
    rng = np.random.default_rng(1)
    H, lab = make(rng)
    res = scheme_type(H, lab)
    assert res.scheme == expected, str(res)
    assert res.scheme in str(res)
    res3 = scheme_type(np.stack([H, H]), lab)                        # a sample axis changes nothing
    assert res3.scheme == expected
    if expected == "sparse":
        assert sorted(res.outliers.tolist()) == [0, 1, 2] and res.n_carry == 3
    if expected == "redundant":
        assert res.saturation > 0.95 and res.n_major_codes == 3
        assert scheme_type(H, lab, value_range=(0, 1)).scheme == "redundant"


def test_scheme_type_errors():
    H, lab = _analog(np.random.default_rng(2))
    with pytest.raises(TypeError, match="labels"):
        scheme_type(H, lab.astype(float))
    with pytest.raises(ValueError, match="labels"):
        scheme_type(H, lab[:-1])
    with pytest.raises(ValueError, match="activations"):
        scheme_type(H[0], lab)
    with pytest.raises(ValueError, match="activations"):
        scheme_type(np.where(H > 0, np.nan, H), lab)
    with pytest.raises(ValueError, match="value_range"):
        scheme_type(H, lab, value_range=(1, 0))
    with pytest.raises(ValueError, match="min_share"):
        scheme_type(H, lab, min_share=1.5)
    with pytest.raises(ValueError, match="readouts"):
        scheme_type(H, lab, readouts=np.ones((H.shape[0] + 1, 3)))


def test_activation_raster_and_plot():
    rng = np.random.default_rng(3)
    H, lab = _redundant(rng, N=30)
    r = activation_raster(H, lab)
    assert sorted(r.neuron_order.tolist()) == list(range(30))
    assert np.all(np.diff(r.labels) >= 0) and r.class_boundaries.tolist() == [20, 40]
    np.testing.assert_array_equal(r.matrix, H[r.neuron_order][:, r.input_order])
    sizes = np.diff(np.r_[0, r.code_boundaries, 30])                 # code groups, largest first
    assert np.all(np.diff(sizes) <= 0)
    for a, b in zip(np.r_[0, r.code_boundaries], np.r_[r.code_boundaries, 30]):
        assert (r.codes[a:b] == r.codes[a]).all()
    assert activation_raster(np.stack([H, H]), lab, sample=None).matrix.shape == (30, 60)
    with pytest.raises(ValueError, match="sample"):
        activation_raster(np.stack([H, H]), lab, sample=5)
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    out = plot_raster(ax, r, colorbar=True)
    assert out.image.get_array().shape == (30, 60)
    plt.close(fig)
    with pytest.raises(TypeError, match="ax"):
        plot_raster(None, H, lab)


# ----------------------------------------------------------------------------- neural collapse
def _etf(K, N, rng, scale=3.0):
    E = np.eye(K) - 1.0 / K
    Q, _ = np.linalg.qr(rng.standard_normal((N, K)))
    return scale * Q @ E                                              # N × K, an exact simplex ETF


def test_nc2_exact_etf_and_nc1_collapsed():
    rng = np.random.default_rng(4)
    for K in (2, 3, 5):
        lab = np.repeat(np.arange(K), [3 + k for k in range(K)])     # unbalanced classes
        M = _etf(K, 20, rng) + rng.standard_normal((20, 1))           # plus a common offset
        H = M[:, lab]
        assert nc2(H, lab) == pytest.approx(0.0, abs=1e-12)
        assert nc1(H, lab) == pytest.approx(0.0, abs=1e-12)
        m = collapse_metrics(H, lab)
        assert m["equinorm"] < 1e-12 and m["max_angle"] < 1e-12
    # random features are not collapsed
    lab = _labels(60, 3)
    H = rng.standard_normal((40, 60))
    assert nc1(H, lab) > 0.1 and nc2(H, lab) > 0.05
    # NC1 grows with the within-class noise; per-sample values with a sample axis
    base = _etf(3, 40, rng)[:, lab]
    vals = [nc1(base + s * rng.standard_normal(base.shape), lab) for s in (0.01, 0.1, 1.0)]
    assert vals[0] < vals[1] < vals[2]
    assert nc1(np.stack([base, base]), lab).shape == (2,)


def test_nc1_matches_pinv_definition():
    rng = np.random.default_rng(5)
    lab = _labels(30, 3)
    H = rng.standard_normal((8, 30)) + 2 * rng.standard_normal((8, 3))[:, lab]
    M = np.stack([H[:, lab == c].mean(1) for c in range(3)], 1)
    W = H - M[:, lab]
    Mc = M - M.mean(1, keepdims=True)
    ref = np.trace((W @ W.T / 30) @ np.linalg.pinv(Mc @ Mc.T / 3)) / 3
    assert nc1(H, lab) == pytest.approx(ref, rel=1e-10)


def test_collapse_errors():
    with pytest.raises(ValueError, match="2 classes"):
        nc1(np.ones((3, 4)), np.zeros(4, dtype=int))
    with pytest.raises(TypeError, match="labels"):
        nc2(np.ones((3, 4)), [0.0, 1.0, 0.0, 1.0])
    assert np.isinf(nc1(np.r_[[[0.0, 1.0, 1.0, 0.0]]], np.array([0, 0, 1, 1])))


# ----------------------------------------------------------------------------- spectra
def test_powerlaw_exact_and_rotated_spectrum():
    rng = np.random.default_rng(6)
    for alpha in (0.5, 1.0, 2.0):
        lam = np.arange(1, 101) ** -alpha
        fit = powerlaw_exponent(lam)
        assert fit.alpha == pytest.approx(alpha, abs=1e-6) and fit.r2 == pytest.approx(1.0)
        assert fit.fit_range == (1, 50) and float(fit) == fit.alpha
        assert powerlaw_exponent(lam[::-1], fit_range=(5, 90)).alpha == pytest.approx(alpha, abs=1e-6)
        # a random matrix built to have exactly this covariance spectrum
        N, P = 100, 300
        U, _ = np.linalg.qr(rng.standard_normal((N, N)))
        V, _ = np.linalg.qr(rng.standard_normal((P, N)))
        V -= V.mean(0)                                                # centred columns …
        V, _ = np.linalg.qr(V)                                        # … stay orthonormal and centred
        H = U @ np.diag(np.sqrt(lam * (P - 1))) @ V.T + rng.standard_normal((N, 1))
        e = eigenspectrum(H)
        np.testing.assert_allclose(e[:N], lam, rtol=1e-8)
        assert powerlaw_exponent(e).alpha == pytest.approx(alpha, abs=1e-6)


def test_powerlaw_sampled_gaussian():
    rng = np.random.default_rng(7)
    N, P, alpha = 100, 5000, 1.0
    lam = np.arange(1, N + 1) ** -alpha
    H = np.sqrt(lam)[:, None] * rng.standard_normal((N, P))
    fit = powerlaw_exponent(eigenspectrum(H))
    assert abs(fit.alpha - alpha) < 0.05 and fit.r2 > 0.99
    # a sample axis averages the covariance
    e2 = eigenspectrum(H.reshape(N, 4, P // 4).transpose(1, 0, 2))
    assert abs(powerlaw_exponent(e2).alpha - alpha) < 0.05


def test_spectrum_errors():
    with pytest.raises(ValueError, match="fit_range"):
        powerlaw_exponent(np.ones(10), fit_range=(3, 3))
    with pytest.raises(TypeError, match="fit_range"):
        powerlaw_exponent(np.ones(10), fit_range=(1.0, 5))
    with pytest.raises(ValueError, match="positive over fit_range"):
        powerlaw_exponent(np.r_[1.0, 0.5, 0.0, 0.0], fit_range=(1, 4))
    with pytest.raises(ValueError, match="eigs"):
        powerlaw_exponent(np.ones((3, 3)))
    with pytest.raises(ValueError, match="P"):
        eigenspectrum(np.ones((5, 1)))
    with pytest.raises(TypeError, match="center"):
        eigenspectrum(np.ones((5, 3)), center="yes")


# ----------------------------------------------------------------------------- sampled networks
@pytest.mark.parametrize("seed", [0, 1])
def test_scheme_type_on_sampled_toy_task(seed):
    """Linear → analog, erf → redundant, ReLU → sparse on posterior samples (N = P = 60)."""
    for nl, y_minus, expected in (("linear", 0.0, "analog"), ("erf", 0.5, "redundant"),
                                  ("relu", -0.5, "sparse")):
        task = mf.toy_task(60, 120, y_minus=y_minus)
        s = mf.sample(task, nl, 60, T=0.01, steps=600, space="preactivation", seed=seed, thin=5,
                      progress=False)
        H = mf.nonlinearity(nl).phi(np.asarray(s.preactivations[0], float))
        res = scheme_type(H, task.labels)
        assert res.scheme == expected, f"{nl}, seed {seed}: {res}"
        assert scheme_type(H, task.labels, s.readouts).scheme == expected
        if nl == "relu":
            assert 1 <= outliers(s.readouts)[0].size <= 6
        else:
            assert outliers(s.readouts)[0].size == 0
        assert 0 <= collapse_metrics(H, task.labels)["nc2"] < 2


def test_kernel_alignment_known_cases():
    from meanfield.analysis import kernel_alignment
    lab = np.repeat([0, 1, 2], [5, 3, 4])
    Y = np.eye(3)[lab]
    assert kernel_alignment(Y @ Y.T, lab) == pytest.approx(1.0, abs=1e-12)
    assert kernel_alignment(3.0 * Y @ Y.T + 7.0, lab) == pytest.approx(1.0, abs=1e-12)   # scale and offset
    # identity: alignment = tr(H T H)/(‖H‖‖T_c‖) with T_c the centred label kernel (closed form below)
    Yc = Y - Y.mean(axis=0)
    T = Yc @ Yc.T
    H = np.eye(12) - 1.0 / 12
    assert kernel_alignment(np.eye(12), lab) == pytest.approx(np.trace(T) / (np.linalg.norm(H) * np.linalg.norm(T)))
    # a kernel of the wrong blocks is anti-aligned or weakly aligned
    wrong = np.eye(3)[np.roll(lab, 1)]
    assert kernel_alignment(wrong @ wrong.T, lab) < 0.5
    with pytest.raises(ValueError, match="square"):
        kernel_alignment(np.ones((3, 4)), lab[:3])
    with pytest.raises(ValueError, match="labels"):
        kernel_alignment(np.eye(3), lab)
