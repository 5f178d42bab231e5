"""Training tasks: the paper's orthogonal toy task and a wrapper for arbitrary data.

Shapes follow the paper: inputs are columns (``X`` is N0 × P), targets are rows
per input (``Y`` is P × m).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._validation import as_matrix, check_float, check_int, open_npz


@dataclass(frozen=True)
class Task:
    """A supervised task: training inputs/targets and optional test inputs/targets.

    Parameters
    ----------
    X : ndarray, shape (N0, P)
        Training inputs as columns.
    Y : ndarray, shape (P, m)
        Training targets, one row per input.
    X_test : ndarray, shape (N0, P_test), optional
    Y_test : ndarray, shape (P_test, m), optional
    labels, labels_test : ndarray of int, optional
        Class index of each input, in 0 … m − 1 (defaults to ``argmax`` of the targets); with a
        single output (m = 1) any non-negative class index (several classes sharing one output).
    name : str
        Free-form description.
    """

    X: np.ndarray
    Y: np.ndarray
    X_test: np.ndarray | None = None
    Y_test: np.ndarray | None = None
    labels: np.ndarray | None = None
    labels_test: np.ndarray | None = None
    name: str = "task"
    info: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        X = as_matrix(self.X, "X")
        Y = as_matrix(self.Y, "Y")
        if Y.shape[0] != X.shape[1]:
            raise ValueError(
                f"X and Y disagree on the number of training inputs: X is N0 × P = {X.shape}, "
                f"Y must be P × m, got {Y.shape}")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "Y", Y)
        if (self.X_test is None) != (self.Y_test is None):
            raise ValueError("X_test and Y_test must be given together")
        if self.X_test is not None:
            Xt = as_matrix(self.X_test, "X_test", rows=X.shape[0])
            Yt = as_matrix(self.Y_test, "Y_test", cols=Y.shape[1])
            if Yt.shape[0] != Xt.shape[1]:
                raise ValueError(
                    f"X_test and Y_test disagree on the number of test inputs: {Xt.shape} vs {Yt.shape}")
            object.__setattr__(self, "X_test", Xt)
            object.__setattr__(self, "Y_test", Yt)
        labels = self.labels if self.labels is not None else np.argmax(Y, axis=1)
        object.__setattr__(self, "labels", _class_labels(labels, "labels", X.shape[1], Y.shape[1]))
        if self.X_test is not None:
            lt = self.labels_test if self.labels_test is not None else np.argmax(self.Y_test, axis=1)
            object.__setattr__(self, "labels_test", _class_labels(lt, "labels_test", self.X_test.shape[1], Y.shape[1]))
        elif self.labels_test is not None:
            raise ValueError("labels_test needs X_test and Y_test")

    @property
    def N0(self) -> int:
        """Input dimension."""
        return self.X.shape[0]

    @property
    def P(self) -> int:
        """Number of training inputs."""
        return self.X.shape[1]

    @property
    def m(self) -> int:
        """Number of outputs."""
        return self.Y.shape[1]

    @property
    def K0(self) -> np.ndarray:
        """Input kernel ``XᵀX / N0`` (P × P)."""
        return self.X.T @ self.X / self.N0

    def input_kernel(self, X1, X2=None) -> np.ndarray:
        """Input kernel ``X1ᵀX2 / N0`` between two sets of column inputs."""
        X1 = as_matrix(X1, "X1", rows=self.N0)
        X2 = X1 if X2 is None else as_matrix(X2, "X2", rows=self.N0)
        return X1.T @ X2 / self.N0

    def save(self, path) -> None:
        """Save as ``.npz`` with keys X, Y (and X_test, Y_test, labels)."""
        arrays = {"X": self.X, "Y": self.Y, "labels": self.labels}
        if self.X_test is not None:
            arrays.update(X_test=self.X_test, Y_test=self.Y_test, labels_test=self.labels_test)
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path) -> "Task":
        """Load a task from an ``.npz`` file with keys ``X`` (N0 × P) and ``Y`` (P × m).

        Optional keys: ``X_test``, ``Y_test``, ``labels``, ``labels_test``.
        """
        with open_npz(path, "data file", ("X", "Y"), "Write it with np.savez(path, X=X, Y=Y), X: N0 × P inputs "
                      "as columns, Y: P × m targets (optional X_test, Y_test, labels, labels_test).") as data:
            kw = {k: data[k] for k in ("X", "Y", "X_test", "Y_test", "labels", "labels_test") if k in data}
        return cls(name=str(path), **kw)


def _class_labels(labels, name, n, m):
    """Class indices as an int64 vector of ``n`` entries in 0 … m − 1 (any ≥ 0 when m = 1)."""
    try:
        lab = np.asarray(labels)
        ok = lab.dtype.kind in "biuf" and np.all(np.isfinite(lab)) and np.all(lab == np.round(lab))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise TypeError(f"{name} must be integer class indices, got {labels!r:.80}")
    lab = lab.astype(np.int64).ravel()
    if lab.shape[0] != n:
        raise ValueError(f"{name} must have {n} entries (one per input), got {lab.shape[0]}")
    if lab.size and lab.min() < 0:
        raise ValueError(f"{name} must be non-negative class indices, got minimum {lab.min()}")
    if m > 1 and lab.size and lab.max() >= m:
        raise ValueError(f"{name} must be class indices in 0 … m − 1 = {m - 1} (m = {m} outputs, the columns "
                         f"of Y), got {lab.max()}")
    return lab


def _class_counts(P, ratios):
    counts = np.floor(np.asarray(ratios) * P).astype(int)
    # distribute the remainder to the largest fractional parts (deterministic)
    rem = P - counts.sum()
    order = np.argsort(-(np.asarray(ratios) * P - counts), kind="stable")
    counts[order[:rem]] += 1
    return counts


def toy_task(P, N0, ratios=(0.5, 0.25, 0.25), y_plus=1.0, y_minus=0.0, seed=0, P_test=0):
    """The paper's toy classification task (Figs. 1–5).

    Inputs are mutually orthogonal with ``XᵀX / N0 = I`` (so ``K0 = I``); classes
    are assigned in the fixed ``ratios``; targets are one-hot with ``y_plus`` on
    the true class and ``y_minus`` elsewhere. With ``P_test > 0`` the test
    inputs are fresh orthonormal directions scaled likewise (orthogonal to the
    training inputs when ``N0 ≥ P + P_test``, otherwise random unit-norm
    directions scaled to ``|x|² = N0``).

    Parameters
    ----------
    P : int
        Number of training inputs.
    N0 : int
        Input dimension; must satisfy ``N0 ≥ P``.
    ratios : sequence of float
        Class fractions (positive, summing to one); ``m = len(ratios)`` outputs.
    y_plus, y_minus : float
        Target value on the true class and on the others.
    seed : int
        Random seed for the input directions and the label order.
    P_test : int
        Number of test inputs.

    Returns
    -------
    Task
    """
    P = check_int(P, "P", minimum=1)
    N0 = check_int(N0, "N0", minimum=1)
    P_test = check_int(P_test, "P_test", minimum=0)
    seed = check_int(seed, "seed", minimum=0)
    y_plus = check_float(y_plus, "y_plus")
    y_minus = check_float(y_minus, "y_minus")
    if N0 < P:
        raise ValueError(f"N0 must be >= P for mutually orthogonal toy inputs, got N0 = {N0} < P = {P}")
    try:
        ratios = np.asarray(ratios, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise TypeError(f"ratios must be a sequence of class fractions, got {ratios!r:.80}") from exc
    if ratios.size < 1 or np.any(~np.isfinite(ratios)) or np.any(ratios <= 0):
        raise ValueError(f"ratios must be positive class fractions, got {ratios}")
    if abs(ratios.sum() - 1.0) > 1e-8:
        raise ValueError(f"ratios must sum to 1, got sum {ratios.sum()}")
    m = ratios.size
    empty = np.flatnonzero(_class_counts(P, ratios) == 0)
    if empty.size:
        raise ValueError(f"toy_task with P = {P} and ratios {ratios.tolist()} gives class(es) {empty.tolist()} "
                         f"no training inputs; increase P (at least {m}) or change ratios")
    rng = np.random.default_rng(seed)

    def labels_for(n):
        lab = np.repeat(np.arange(m), _class_counts(n, ratios))
        return rng.permutation(lab)

    def targets(lab):
        Y = np.full((lab.size, m), y_minus)
        Y[np.arange(lab.size), lab] = y_plus
        return Y

    n_dirs = min(N0, P + P_test)
    G = rng.standard_normal((N0, n_dirs))
    Q, _ = np.linalg.qr(G)
    X = np.sqrt(N0) * Q[:, :P]
    labels = labels_for(P)
    kw = {}
    if P_test:
        if N0 >= P + P_test:
            Xt = np.sqrt(N0) * Q[:, P:P + P_test]
        else:
            Xt = rng.standard_normal((N0, P_test))
            Xt *= np.sqrt(N0) / np.linalg.norm(Xt, axis=0)
        lt = labels_for(P_test)
        kw = dict(X_test=Xt, Y_test=targets(lt), labels_test=lt)
    return Task(X=X, Y=targets(labels), labels=labels, name="toy",
                info=dict(ratios=tuple(ratios), y_plus=y_plus, y_minus=y_minus, seed=seed), **kw)


def random_label_task(P, N0, n_classes=3, y_plus=1.0, y_minus=0.0, seed=0, P_test=0):
    """General (non-orthogonal) data: i.i.d. standard Gaussian inputs with random class labels.

    The general-data benchmark of the sigmoid and ReLU theories (e.g. N0 = 50, P = 100, three
    classes): ``K0 = XᵀX / N0`` is not the identity and, for P > N0, not of full rank, and the labels
    carry no structure, so fitting them needs diverse features.

    Parameters
    ----------
    P : int
        Number of training inputs.
    N0 : int
        Input dimension.
    n_classes : int
        Number of classes m (labels uniform in 0 … m − 1).
    y_plus, y_minus : float
        Target value on the true class and on the others.
    seed : int
        Random seed: inputs (N0 × (P + P_test)) are drawn first, then the labels.
    P_test : int
        Number of test inputs (drawn like the training ones).

    Returns
    -------
    Task
    """
    P = check_int(P, "P", minimum=1)
    N0 = check_int(N0, "N0", minimum=1)
    n_classes = check_int(n_classes, "n_classes", minimum=1)
    P_test = check_int(P_test, "P_test", minimum=0)
    seed = check_int(seed, "seed", minimum=0)
    y_plus = check_float(y_plus, "y_plus")
    y_minus = check_float(y_minus, "y_minus")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N0, P + P_test))
    lab = rng.integers(0, n_classes, P + P_test)
    Y = np.full((P + P_test, n_classes), y_minus)
    Y[np.arange(P + P_test), lab] = y_plus
    if P_test == 0:
        return Task(X, Y)
    return Task(X[:, :P], Y[:P], X_test=X[:, P:], Y_test=Y[P:])
