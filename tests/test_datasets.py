"""Dataset loaders: tiny synthetic MNIST IDX files and CIFAR-10 pickles, scikit-learn digits."""
import gzip
import pickle
import struct
import sys
from collections import OrderedDict

import numpy as np
import pytest

from meanfield import Task
from meanfield.datasets import cifar10, digits, mnist, normalize, random_projection, read_idx

IMG, LAB = 0x00000803, 0x00000801


def write_idx(path, arr, magic, gz=False, cut=0):
    arr = np.asarray(arr, dtype=np.uint8)
    raw = struct.pack(">I", magic) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()
    raw = raw[:len(raw) - cut]
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(raw)
    else:
        with open(path, "wb") as f:
            f.write(raw)


def make_mnist(d, gz=False, n_train=40, n_test=24, side=4, seed=0):
    rng = np.random.default_rng(seed)
    parts = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs = rng.integers(1, 256, size=(n, side, side))
        labs = np.arange(n) % 4
        write_idx(d / f"{prefix}-images-idx3-ubyte", imgs, IMG, gz)
        write_idx(d / f"{prefix}-labels-idx1-ubyte", labs, LAB, gz)
        parts[prefix] = (imgs, labs)
    return parts


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_shapes_normalization_classes(tmp_path, gz):
    parts = make_mnist(tmp_path, gz)
    t = mnist(tmp_path, classes=(1, 3), P=10, P_test=6, seed=2)
    assert isinstance(t, Task)
    assert t.X.shape == (16, 10) and t.Y.shape == (10, 2)
    assert t.X_test.shape == (16, 6) and t.Y_test.shape == (6, 2)
    np.testing.assert_allclose(np.sum(t.X ** 2, axis=0), 16.0, rtol=1e-12)
    np.testing.assert_allclose(np.sum(t.X_test ** 2, axis=0), 16.0, rtol=1e-12)
    np.testing.assert_allclose(np.diag(t.K0), 1.0, rtol=1e-12)
    imgs, labs = parts["train"]
    itr = t.info["train_index"]
    assert set(labs[itr]) == {1, 3}
    np.testing.assert_array_equal(t.labels, (labs[itr] == 3).astype(int))   # positions in classes
    assert np.bincount(t.labels).tolist() == [5, 5]                         # balanced
    x = imgs[itr[0]].ravel().astype(float)
    np.testing.assert_allclose(t.X[:, 0], x * 4.0 / np.linalg.norm(x), rtol=1e-12)
    # y_minus default −y_plus/(m−1) = −1 for two classes; one-hot rows
    assert set(np.unique(t.Y)) == {-1.0, 1.0}
    np.testing.assert_array_equal(np.argmax(t.Y_test, axis=1), t.labels_test)
    assert set(parts["t10k"][1][t.info["test_index"]]) <= {1, 3}


def test_mnist_unnormalized_and_idx_reader(tmp_path):
    parts = make_mnist(tmp_path)
    t = mnist(tmp_path, classes=(0, 1, 2), P=6, P_test=0, normalize=False, y_minus=0.0)
    assert t.X_test is None and t.X.max() <= 1.0
    assert set(np.unique(t.Y)) == {0.0, 1.0}
    arr = read_idx(tmp_path / "train-images-idx3-ubyte", IMG)
    np.testing.assert_array_equal(arr, parts["train"][0])


def test_mnist_missing_path_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        mnist(tmp_path / "nowhere")
    make_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        mnist(tmp_path, P=4, P_test=4)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_truncated(tmp_path, gz):
    make_mnist(tmp_path, gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    if gz:   # cut the compressed stream
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[:len(data) // 2])
    else:
        write_idx(tmp_path / name, np.ones((40, 4, 4)), IMG, cut=5)
    with pytest.raises(ValueError, match="truncated"):
        mnist(tmp_path, P=4, P_test=4)


def test_mnist_wrong_magic(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(40) % 4, 0x00000804)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.*0x00000804"):
        mnist(tmp_path, P=4, P_test=4)


def test_mnist_count_mismatch(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(39) % 4, LAB)
    with pytest.raises(ValueError, match="40 images.*39 labels"):
        mnist(tmp_path, P=4, P_test=4)


def test_mnist_too_many(tmp_path):
    make_mnist(tmp_path)
    with pytest.raises(ValueError, match="P = 25 exceeds"):
        mnist(tmp_path, classes=(0, 1), P=25, P_test=2)


def make_cifar(d, n=8, seed=0, labels_fn=lambda n: list(np.arange(n) % 10)):
    rng = np.random.default_rng(seed)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(1, 256, size=(n, 3072), dtype=np.uint8)
        labels = labels_fn(n)
        with open(d / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, f)
        out[name] = (data, labels)
    return out


@pytest.mark.parametrize("grayscale", [False, True])
def test_cifar_shapes(tmp_path, grayscale):
    sub = tmp_path / "cifar-10-batches-py"
    sub.mkdir()
    parts = make_cifar(sub, labels_fn=lambda n: list(np.arange(n) % 3))
    t = cifar10(tmp_path, classes=(0, 2), P=12, P_test=4, seed=1, grayscale=grayscale, y_minus=-0.1)
    N0 = 1024 if grayscale else 3072
    assert t.X.shape == (N0, 12) and t.Y.shape == (12, 2) and t.X_test.shape == (N0, 4)
    np.testing.assert_allclose(np.sum(t.X ** 2, axis=0), N0, rtol=1e-12)
    assert set(np.unique(t.Y)) == {-0.1, 1.0}
    train = np.concatenate([parts[f"data_batch_{i}"][0] for i in range(1, 6)])
    labs = np.concatenate([parts[f"data_batch_{i}"][1] for i in range(1, 6)])
    assert set(labs[t.info["train_index"]]) == {0, 2}
    if not grayscale:
        x = train[t.info["train_index"][0]].astype(float)
        np.testing.assert_allclose(t.X[:, 0], x * np.sqrt(N0) / np.linalg.norm(x), rtol=1e-12)


def test_cifar_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        cifar10(tmp_path / "nowhere")
    make_cifar(tmp_path)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_4"):
        cifar10(tmp_path)
    make_cifar(tmp_path)
    with open(tmp_path / "data_batch_2", "wb") as f:          # malformed dict
        pickle.dump({b"data": np.zeros((8, 3072), np.uint8)}, f)
    with pytest.raises(ValueError, match=r"data_batch_2.*labels"):
        cifar10(tmp_path)
    with open(tmp_path / "data_batch_2", "wb") as f:          # length mismatch
        pickle.dump({b"data": np.zeros((8, 3072), np.uint8), b"labels": [0] * 7}, f)
    with pytest.raises(ValueError, match="8 images but 7 labels"):
        cifar10(tmp_path)
    with open(tmp_path / "data_batch_2", "wb") as f:          # wrong row length
        pickle.dump({b"data": np.zeros((8, 100), np.uint8), b"labels": [0] * 8}, f)
    with pytest.raises(ValueError, match="3072"):
        cifar10(tmp_path)
    with open(tmp_path / "data_batch_2", "wb") as f:          # non-numpy global is refused
        pickle.dump(OrderedDict(a=1), f)
    with pytest.raises(ValueError, match="data_batch_2"):
        cifar10(tmp_path)
    (tmp_path / "data_batch_2").write_bytes(b"\x80\x04garbage")  # truncated pickle
    with pytest.raises(ValueError, match="data_batch_2"):
        cifar10(tmp_path)


def test_digits_split():
    t = digits(classes=(0, 1, 2), P=60, P_test=90, seed=3)
    assert t.X.shape == (64, 60) and t.Y.shape == (60, 3) and t.X_test.shape == (64, 90)
    assert np.bincount(t.labels).tolist() == [20, 20, 20]
    assert np.bincount(t.labels_test).tolist() == [30, 30, 30]
    assert not set(t.info["train_index"]) & set(t.info["test_index"])
    np.testing.assert_allclose(np.sum(t.X ** 2, axis=0), 64.0, rtol=1e-12)
    assert set(np.unique(t.Y)) == {-0.5, 1.0}                 # paper's MNIST targets
    t2 = digits(classes=(0, 1, 2), P=60, P_test=90, seed=3)
    np.testing.assert_array_equal(t.X, t2.X)
    tc = digits(classes=(3, 5), P=10, P_test=0, center=True)
    np.testing.assert_allclose(np.sum(tc.X ** 2, axis=0), 64.0, rtol=1e-12)
    assert tc.X_test is None and tc.m == 2


def test_digits_errors(monkeypatch):
    with pytest.raises(ValueError, match="P \\+ P_test = 600 exceeds"):
        digits(P=100, P_test=500)
    with pytest.raises(ValueError, match="classes"):
        digits(classes=(1,))
    with pytest.raises(ValueError, match="P_test"):
        digits(P_test=-1)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="scikit-learn"):
        digits()


def test_normalize_and_random_projection():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 7))
    Xn = normalize(X)
    np.testing.assert_allclose(np.sum(Xn ** 2, axis=0), 20.0, rtol=1e-12)
    with pytest.raises(ValueError, match="zero norm"):
        normalize(np.c_[X, np.zeros(20)])
    t = digits(P=30, P_test=12)
    r = random_projection(t, 200, seed=1)
    assert r.X.shape == (200, 30) and r.X_test.shape == (200, 12)
    np.testing.assert_allclose(np.sum(r.X ** 2, axis=0), 200.0, rtol=1e-12)
    np.testing.assert_array_equal(r.labels, t.labels)
    np.testing.assert_array_equal(r.Y_test, t.Y_test)
    # K0 is roughly preserved (N0_new = 4000: relative fluctuation ≈ √(2/4000))
    big = random_projection(t.X, 4000, seed=2, normalize=False)
    assert np.max(np.abs(big.T @ big / 4000 - t.K0)) < 0.15
    np.testing.assert_array_equal(random_projection(t.X, 50, seed=3), random_projection(t.X, 50, seed=3))
    with pytest.raises(ValueError, match="N0_new"):
        random_projection(t, 0)
