"""Argument checks shared by the public API.

Every public function validates its input with these helpers, so that bad
input raises a ``ValueError`` / ``TypeError`` that names the argument and says
what was expected.
"""
from __future__ import annotations

import contextlib
import numbers
import os
import zipfile
import zlib

import numpy as np


def as_matrix(value, name, *, rows=None, cols=None, allow_none=False):
    """Return ``value`` as a finite float64 C-contiguous 2-D array.

    Parameters
    ----------
    value : array_like
        Input to convert.
    name : str
        Argument name used in error messages.
    rows, cols : int, optional
        Required shape along each axis.
    allow_none : bool
        Pass ``None`` through.
    """
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{name} is required, got None")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}") from exc
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if rows is not None and arr.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows, got shape {arr.shape}")
    if cols is not None and arr.shape[1] != cols:
        raise ValueError(f"{name} must have {cols} columns, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (nan or inf)")
    return np.ascontiguousarray(arr)


def check_int(value, name, *, minimum=None, maximum=None):
    """Return ``value`` as an ``int`` after checking its type and range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_float(value, name, *, minimum=None, strict=False, maximum=None):
    """Return ``value`` as a finite ``float`` after checking its range.

    ``strict=True`` makes ``minimum`` exclusive.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None:
        if strict and value <= minimum:
            raise ValueError(f"{name} must be > {minimum}, got {value}")
        if not strict and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_choice(value, name, choices):
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_output_path(path, name):
    """Check, before any work, that a file can be written at ``path``; returns ``os.fspath(path)``.

    The parent directory must exist and be writable, and ``path`` must not be a directory
    (an existing file is fine: it is overwritten, or resumed from for checkpoints).

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    name : str
        Argument name used in error messages.
    """
    if not isinstance(path, (str, os.PathLike)) or isinstance(os.fspath(path), bytes):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if not path:
        raise ValueError(f"{name} must be a file path, got an empty string")
    if os.path.isdir(path):
        raise ValueError(f"{name} {path!r} is a directory; give a file path")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"{name} {path!r}: directory {parent!r} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ValueError(f"{name} {path!r} is not writable (check the permissions of {parent!r})")
    return path


def check_output_dir(path, name, *, create=True):
    """Check, before any work, that files can be written into directory ``path``; returns ``os.fspath(path)``.

    With ``create=True`` a missing directory (and its parents) is created, as documented for
    ``meanfield figure --out-dir``.
    """
    if not isinstance(path, (str, os.PathLike)) or isinstance(os.fspath(path), bytes):
        raise TypeError(f"{name} must be a directory path (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{name} {path!r} exists and is not a directory")
    if not os.path.exists(path):
        if not create:
            raise ValueError(f"{name} {path!r} does not exist; create it first")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"{name} {path!r} cannot be created: {exc.strerror or exc}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {path!r} is not writable")
    return path


_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, IndexError, TypeError, ValueError, OSError)


@contextlib.contextmanager
def open_npz(path, name, required, remedy):
    """``with open_npz(...) as d:`` — ``np.load`` of an ``.npz`` (no pickles) that fails only with a clear message.

    Truncated, corrupt or foreign files (a ``.npy`` array, random bytes, an ``.npz`` without the
    ``required`` keys) and any ``KeyError`` / ``ValueError`` / ``TypeError`` / ``IndexError`` raised
    while the ``with`` block reads the file (e.g. malformed metadata) become one ``ValueError``
    naming the file, the keys expected and ``remedy`` (what to do). A missing file is a
    ``FileNotFoundError``.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    name : str
        What the file is, for messages (e.g. ``"checkpoint"``).
    required : iterable of str
        Keys that must be present.
    remedy : str
        What to do about an unreadable file (e.g. "Delete it to restart the run.").

    Yields
    ------
    numpy.lib.npyio.NpzFile
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name} {path!r} does not exist or is not a file")
    required = list(required)
    reason = None
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
        if magic == b"\x93NUMPY":
            reason = "it is a single .npy array, not an .npz archive"
        elif not zipfile.is_zipfile(path):
            reason = "it is not an .npz archive (truncated, corrupt or another format)"
        else:
            with np.load(path, allow_pickle=False) as d:
                missing = [k for k in required if k not in d.files]
                if len(missing) == len(required):
                    reason = f"it holds other arrays ({', '.join(d.files[:8]) or 'none'})"
                elif missing:
                    reason = f"it lacks the key(s) {', '.join(missing)}"
                else:
                    yield d
    except _UNREADABLE as exc:
        reason = f"its contents are not as expected ({type(exc).__name__}: {exc})"
        if isinstance(exc, (zipfile.BadZipFile, zlib.error, EOFError)):
            reason = "it is truncated or corrupt"
    if reason is not None:
        reason = reason.replace("allow_pickle", "pickle option")   # never advise loading pickles
        raise ValueError(f"{name} {path!r} cannot be read: {reason}; expected an .npz archive (np.savez) with "
                         f"keys {', '.join(required)}. {remedy}")


def available_memory_bytes():
    """Memory available to a new allocation: ``MemAvailable`` of /proc/meminfo, else ``os.sysconf``."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(need, what, advice):
    """Refuse (``ValueError``) a run whose estimated memory ``need`` (bytes) exceeds what is available.

    The message gives the estimate, the memory available and ``advice`` (what to change). Does
    nothing when the available memory cannot be determined.
    """
    avail = available_memory_bytes()
    if avail is not None and need > avail:
        raise ValueError(f"{what} needs about {_gib(need)} of memory but only {_gib(avail)} is available; "
                         f"{advice}")


def _gib(n):
    return f"{n / 2 ** 30:.2f} GiB" if n >= 2 ** 28 else f"{n / 2 ** 20:.1f} MiB"


def as_nonlinearity(value, name="nonlinearity"):
    """:func:`meanfield.nonlinearity` of ``value``, its errors naming the caller's argument ``name``.

    (``nonlinearity()`` names its own parameter ``name``; a function that takes φ as
    ``nonlinearity`` prefixes the message with that name.)
    """
    from .nonlinearities import nonlinearity      # nonlinearities imports this module: no top-level import
    try:
        return nonlinearity(value)
    except (TypeError, ValueError) as exc:
        msg = str(exc)
        raise type(exc)(msg if msg.startswith(name) else f"{name}: {msg}") from None
