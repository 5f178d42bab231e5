"""Image-classification tasks: scikit-learn digits, MNIST, CIFAR-10, random projections.

Loaders return a :class:`meanfield.Task`: inputs as columns (``X`` N0 × P), one-hot targets
(``Y`` P × m; ``y_plus`` on the true class, ``y_minus`` elsewhere); ``labels`` are positions
0..m−1 within ``classes`` (original ids in ``task.info["classes"]``).

* Normalization (default): every input is scaled to ``|x|² = N0`` so the input kernel
  ``K0 = XᵀX / N0`` has unit diagonal, as in :func:`meanfield.toy_task`. With ``center=True``
  the mean training image is subtracted first (from training *and* test inputs). With
  ``normalize=False`` pixels are returned scaled to [0, 1].
* Targets: ``y_minus=None`` means ``−y_plus / (m − 1)``, the paper's MNIST choice
  (Fig. 6: classes 0, 1, 2, y₊ = 1, y₋ = −1/2); its CIFAR-10 run (Fig. 7, m = 10) used
  y₋ = −1/10 — pass it explicitly.
* Sampling: class-balanced (counts differ by at most one), without replacement, shuffled;
  :func:`digits` draws disjoint training and test sets from one pool, MNIST and CIFAR-10
  draw test inputs from their test files.
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
import warnings

import numpy as np

from ._validation import as_matrix, check_float, check_int
from .tasks import Task, _class_counts

__all__ = ["digits", "mnist", "cifar10", "normalize", "random_projection", "read_idx"]

IDX_UBYTE_IMAGES, IDX_UBYTE_LABELS = 0x00000803, 0x00000801   # IDX magic numbers


# --- helpers ---
def normalize(X, center=None):
    """Scale every column (input) of ``X`` to squared norm N0, optionally after centering.

    Parameters
    ----------
    X : array_like, shape (N0, P)
        Inputs as columns.
    center : array_like, shape (N0,), optional
        Vector subtracted from every column before scaling (e.g. the mean training input).

    Returns
    -------
    ndarray, shape (N0, P)
        Inputs with ``|x|² = N0`` (``XᵀX / N0`` has unit diagonal). ValueError if an input has
        zero norm after centering.
    """
    X = as_matrix(X, "X")
    if center is not None:
        X = X - as_matrix(center, "center", rows=X.shape[0])
    norms = np.linalg.norm(X, axis=0)
    bad = np.flatnonzero(norms <= 1e-12 * max(1.0, float(norms.max(initial=0.0))))
    if bad.size:
        raise ValueError(f"X: input(s) {bad[:5].tolist()} have zero norm and cannot be normalized")
    return X * (np.sqrt(X.shape[0]) / norms)


_normalize = normalize   # loaders and random_projection have a `normalize` flag


def _targets(lab, m, y_plus, y_minus):
    Y = np.full((lab.size, m), y_minus)
    Y[np.arange(lab.size), lab] = y_plus
    return Y


def _check_common(classes, P, P_test, seed, y_plus, y_minus):
    try:
        classes = tuple(int(c) for c in classes)
    except (TypeError, ValueError):
        raise TypeError(f"classes must be a sequence of integer class ids, got {classes!r}") from None
    if len(classes) < 2:
        raise ValueError(f"classes must name at least two classes, got {classes}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must not repeat, got {classes}")
    P = check_int(P, "P", minimum=1)
    P_test = check_int(P_test, "P_test", minimum=0)
    seed = check_int(seed, "seed", minimum=0)
    y_plus = check_float(y_plus, "y_plus")
    y_minus = -y_plus / (len(classes) - 1) if y_minus is None else check_float(y_minus, "y_minus")
    return classes, P, P_test, seed, y_plus, y_minus


def _balanced_pick(labels, classes, n, rng, what, used=None):
    """Indices of ``n`` samples of ``classes`` (balanced, without replacement, shuffled)."""
    counts = rng.permutation(_class_counts(n, np.full(len(classes), 1.0 / len(classes))))
    picked = []
    for c, k in zip(classes, counts):
        pool = np.flatnonzero(labels == c)
        if used is not None:
            pool = np.setdiff1d(pool, used, assume_unique=True)
        if pool.size < k:
            raise ValueError(f"{what} = {n} needs {k} samples of class {c}, but only {pool.size} "
                             f"are available; lower {what}")
        picked.append(rng.choice(pool, size=k, replace=False))
    return rng.permutation(np.concatenate(picked))


def _build(name, Xtr, ltr, Xte, lte, classes, P, P_test, seed, y_plus, y_minus, scale,
           do_normalize, center, extra=None):
    """Select, normalize and wrap rows-as-samples arrays into a Task."""
    classes, P, P_test, seed, y_plus, y_minus = _check_common(classes, P, P_test, seed, y_plus, y_minus)
    rng = np.random.default_rng(seed)
    same_pool = Xte is None
    avail = int(np.isin(ltr, classes).sum())
    need = P + (P_test if same_pool else 0)
    if need > avail:
        raise ValueError(f"P{' + P_test' if same_pool else ''} = {need} exceeds the {avail} "
                         f"available {name} samples of classes {classes}")
    itr = _balanced_pick(ltr, classes, P, rng, "P")
    if same_pool:
        Xte, lte = Xtr, ltr
        ite = _balanced_pick(ltr, classes, P_test, rng, "P_test", used=np.sort(itr)) if P_test else None
    else:
        ite = _balanced_pick(lte, classes, P_test, rng, "P_test") if P_test else None
    pos = {c: i for i, c in enumerate(classes)}
    X = np.asarray(Xtr[itr], dtype=np.float64).T / scale
    lab = np.array([pos[c] for c in ltr[itr]], dtype=np.int64)
    Xt = None if ite is None else np.asarray(Xte[ite], dtype=np.float64).T / scale
    lt = None if ite is None else np.array([pos[c] for c in lte[ite]], dtype=np.int64)
    mu = X.mean(axis=1, keepdims=True) if center else 0.0
    X, Xt = X - mu, (None if Xt is None else Xt - mu)
    if do_normalize:
        X, Xt = normalize(X), (None if Xt is None else normalize(Xt))
    m = len(classes)
    kw = {} if Xt is None else dict(X_test=Xt, Y_test=_targets(lt, m, y_plus, y_minus), labels_test=lt)
    info = dict(source=name, classes=classes, y_plus=y_plus, y_minus=y_minus, seed=seed,
                normalized=bool(do_normalize), centered=bool(center), train_index=itr,
                test_index=ite, **(extra or {}))
    return Task(X=X, Y=_targets(lab, m, y_plus, y_minus), labels=lab, name=name, info=info, **kw)


# --- scikit-learn digits ---
def digits(classes=(0, 1, 2), P=100, P_test=400, seed=0, y_plus=1.0, y_minus=None,
           normalize=True, center=False):
    """Task from scikit-learn's bundled 8 × 8 digits (1797 images, N0 = 64; works offline).

    Parameters
    ----------
    classes : sequence of int
        Digits to use (m = len(classes) ≥ 2 outputs, in this order).
    P, P_test : int
        Number of training and test inputs, drawn class-balanced and without overlap from the
        same pool; ``P_test = 0`` gives a task without a test set.
    seed : int
        Random seed of the draw.
    y_plus, y_minus : float
        One-hot targets; ``y_minus=None`` means ``−y_plus/(m − 1)`` (module docstring).
    normalize : bool
        Scale every input to ``|x|² = N0`` (else pixels in [0, 1]).
    center : bool
        Subtract the mean training image (from training and test inputs) first.

    Returns
    -------
    Task
        ImportError without scikit-learn; ValueError if ``P + P_test`` exceeds the samples
        available for ``classes``.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError("meanfield.datasets.digits needs scikit-learn "
                          "(pip install scikit-learn)") from exc
    d = load_digits()
    return _build("digits", d.data, np.asarray(d.target), None, None, classes, P, P_test, seed,
                  y_plus, y_minus, 16.0, normalize, center)


# --- MNIST (IDX files) ---
def read_idx(path, magic=None):
    """Read an unsigned-byte IDX file (raw or gzip-compressed) into an array.

    Parameters
    ----------
    path : str or os.PathLike
        File name; a name ending in ``.gz`` is decompressed.
    magic : int, optional
        Required magic number (``0x00000803`` for images, ``0x00000801`` for labels).

    Returns
    -------
    ndarray of uint8
        Shape given by the big-endian dimensions in the header. FileNotFoundError if the file
        is missing; ValueError for a wrong magic number, a non-ubyte type, truncation or
        trailing bytes.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"IDX file not found: {path}")
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            data = f.read()
    except (EOFError, OSError) as exc:   # truncated or corrupt gzip stream
        raise ValueError(f"{path}: cannot read ({exc}); the file is truncated or corrupt") from None
    if len(data) < 4:
        raise ValueError(f"{path}: truncated IDX file ({len(data)} bytes, no complete header)")
    found = struct.unpack(">I", data[:4])[0]
    if magic is not None and found != magic:
        raise ValueError(f"{path}: wrong magic number 0x{found:08x}, expected 0x{magic:08x}")
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: magic number 0x{found:08x} is not an unsigned-byte IDX header")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes, {ndim} dimensions)")
    dims = struct.unpack(">" + "I" * ndim, data[4:header])
    n = int(np.prod(dims, dtype=np.int64))
    have = len(data) - header
    if have < n:
        raise ValueError(f"{path}: truncated IDX file: header promises dims {dims} = {n} bytes "
                         f"of data, found {have}")
    if have > n:
        raise ValueError(f"{path}: {have - n} trailing bytes after the {n} promised by dims {dims}")
    return np.frombuffer(data, dtype=np.uint8, count=n, offset=header).reshape(dims)


def _find(directory, names):
    for nm in names:
        for cand in (nm, nm + ".gz"):
            p = os.path.join(directory, cand)
            if os.path.isfile(p):
                return p
    raise FileNotFoundError(f"{names[0]} (or {names[0]}.gz) not found in {directory}")


def _mnist_split(directory, prefix):
    img = _find(directory, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"])
    lab = _find(directory, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"])
    X = read_idx(img, IDX_UBYTE_IMAGES)
    y = read_idx(lab, IDX_UBYTE_LABELS)
    # the magic numbers fix the ranks: images (n, rows, cols), labels (n,)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{img} holds {X.shape[0]} images but {lab} holds {y.shape[0]} labels")
    return X.reshape(X.shape[0], -1), y.astype(np.int64)


def mnist(path, classes=(0, 1, 2), P=100, P_test=1000, seed=0, y_plus=1.0, y_minus=None,
          normalize=True, center=False):
    """Task from the MNIST IDX files in a directory (N0 = 784).

    Reads ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
    and ``t10k-labels-idx1-ubyte``, each raw or gzip-compressed (``.gz``); the
    ``train-images.idx3-ubyte`` spelling is accepted too. Training inputs come from the
    training files, test inputs from the t10k files. The defaults reproduce the setting of the
    paper's Fig. 6 (classes 0, 1, 2, P = 100, 1000 test inputs, y₊ = 1, y₋ = −1/2).

    Parameters
    ----------
    path : str or os.PathLike
        Directory holding the four files.
    classes, P, P_test, seed, y_plus, y_minus, normalize, center
        As in :func:`digits` (``P_test`` is drawn from the test files).

    Returns
    -------
    Task
        FileNotFoundError if ``path`` or a file is missing (the message names it); ValueError
        for a truncated file, wrong magic number, image/label count mismatch, too few samples.
    """
    directory = os.fspath(path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"MNIST directory not found: {directory}")
    Xtr, ytr = _mnist_split(directory, "train")
    Xte, yte = _mnist_split(directory, "t10k") if P_test else (Xtr[:0], ytr[:0])
    return _build("mnist", Xtr, ytr, Xte, yte, classes, P, P_test, seed, y_plus, y_minus, 255.0,
                  normalize, center, extra=dict(path=directory))


# --- CIFAR-10 (python pickles) ---
_ALLOWED_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"),
                    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays (CIFAR batches need nothing else)."""

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


def _cifar_batch(file):
    if not os.path.isfile(file):
        raise FileNotFoundError(f"CIFAR-10 batch file not found: {file}")
    try:
        with open(file, "rb") as f:
            d = _SafeUnpickler(f, encoding="bytes").load()
    except Exception as exc:   # pickle raises many types for truncated/corrupt input
        raise ValueError(f"{file}: not a readable CIFAR-10 batch pickle "
                         f"({type(exc).__name__}: {exc})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{file}: expected a pickled dict, got {type(d).__name__}")
    get = lambda k: d.get(k.encode(), d.get(k))   # noqa: E731  (bytes or str keys)
    data, labels = get("data"), get("labels")
    if data is None or labels is None:
        raise ValueError(f"{file}: batch dict needs keys b'data' and b'labels', has {sorted(map(str, d))}")
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype.kind not in "uif":
        raise ValueError(f"{file}: b'data' must be a numeric (n, 3072) array, got {data.dtype} {data.shape}")
    labels = np.asarray(labels).ravel()
    if labels.shape[0] != data.shape[0]:
        raise ValueError(f"{file}: {data.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{file}: labels must be integers 0..9")
    return data, labels.astype(np.int64)


def cifar10(path, classes=(0, 1, 2), P=100, P_test=1000, seed=0, y_plus=1.0, y_minus=None,
            normalize=True, center=False, grayscale=False):
    """Task from the CIFAR-10 python batches (N0 = 3072, or 1024 with ``grayscale``).

    Reads ``data_batch_1`` … ``data_batch_5`` (training) and ``test_batch`` from ``path`` or
    from its subdirectory ``cifar-10-batches-py``. Each is a pickled dict with ``b"data"``, a
    uint8 array (n, 3072) holding the red, green and blue 32 × 32 planes, and ``b"labels"``.
    Only numpy arrays are unpickled (other objects are refused).

    Parameters
    ----------
    path : str or os.PathLike
        Directory holding the batch files.
    classes, P, P_test, seed, y_plus, y_minus, normalize, center
        As in :func:`digits` (``P_test`` is drawn from ``test_batch``). The paper's full
        CIFAR-10 run used ``y_minus = -0.1``.
    grayscale : bool
        Replace the colour planes by the luminance 0.299 R + 0.587 G + 0.114 B.

    Returns
    -------
    Task
        FileNotFoundError if ``path`` or a batch file is missing (the message names it);
        ValueError for an unreadable pickle, a malformed dict, data/label length mismatch or
        too few samples.
    """
    directory = os.fspath(path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"CIFAR-10 directory not found: {directory}")
    sub = os.path.join(directory, "cifar-10-batches-py")
    if not os.path.isfile(os.path.join(directory, "data_batch_1")) and os.path.isdir(sub):
        directory = sub
    parts = [_cifar_batch(os.path.join(directory, f"data_batch_{i}")) for i in range(1, 6)]
    Xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    Xte, yte = _cifar_batch(os.path.join(directory, "test_batch")) if P_test else (Xtr[:0], ytr[:0])
    if grayscale:
        def gray(A):
            A = A.reshape(A.shape[0], 3, 1024).astype(np.float64)
            return A[:, 0] * 0.299 + A[:, 1] * 0.587 + A[:, 2] * 0.114
        Xtr, Xte = gray(Xtr), gray(Xte)
    return _build("cifar10", Xtr, ytr, Xte, yte, classes, P, P_test, seed, y_plus, y_minus, 255.0,
                  normalize, center, extra=dict(path=directory, grayscale=bool(grayscale)))


# --- random projection ---
def random_projection(task_or_X, N0_new, seed=0, normalize=True):
    """Project inputs with a Gaussian random matrix to dimension ``N0_new`` (paper, supplement E).

    ``x ↦ G x / √N0`` with G ∈ R^{N0_new × N0} i.i.d. N(0, 1), so that ``K0`` is preserved in
    expectation; then (by default) every input is rescaled to ``|x|² = N0_new``. Used to reach
    P > N0 with MNIST. Training and test inputs share the same G.

    Parameters
    ----------
    task_or_X : Task or array_like, shape (N0, P)
        A task (all its inputs are projected) or an input matrix with inputs as columns.
    N0_new, seed : int
        New input dimension; seed of G.
    normalize : bool
        Rescale the projected inputs to ``|x|² = N0_new``.

    Returns
    -------
    Task or ndarray
        A new Task (targets and labels unchanged) when given a Task, else the projected array.
    """
    N0_new = check_int(N0_new, "N0_new", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    is_task = isinstance(task_or_X, Task)
    X = task_or_X.X if is_task else as_matrix(task_or_X, "task_or_X")
    G = np.random.default_rng(seed).standard_normal((N0_new, X.shape[0])) / np.sqrt(X.shape[0])

    def proj(A):
        return _normalize(G @ A) if normalize else G @ A

    if not is_task:
        return proj(X)
    t = task_or_X
    kw = {} if t.X_test is None else dict(X_test=proj(t.X_test), Y_test=t.Y_test, labels_test=t.labels_test)
    info = dict(t.info, projection=dict(N0_from=t.N0, N0_new=N0_new, seed=seed))
    return Task(X=proj(t.X), Y=t.Y, labels=t.labels, name=f"{t.name}-proj{N0_new}", info=info, **kw)

