"""Prediction cache: the model runs once per (model, data, preprocessing), whatever the number
of pytest processes. A file lock makes concurrent runs (xdist workers) wait for the first."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..files import remove_dead_temps

CACHE_VERSION = 2  # 2: entries carry their own key
KEY = "_key"  # the array in each entry holding the key it was stored under


def cache_key(**parts) -> str:
    from .. import __version__  # another erran may decode or match differently

    text = json.dumps({"v": CACHE_VERSION, "erran": __version__, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def files_fingerprint(paths) -> str:
    """Size, modification and change time of every image: a changed image must not reuse old
    predictions (the ctime, which no one can set, catches a `cp -p` that keeps size and mtime)."""
    digest = hashlib.sha256()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ctime_ns}\n".encode())
    return digest.hexdigest()


def cache_warning(directory, reason: str) -> str:
    """The one line a run shows when its cache cannot be written (read-only, full, not a folder)."""
    return f"erran: warning: cannot write the cache {directory} ({reason}); predictions are not cached this run"


def _lock(handle) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no lock; concurrent runs then each compute, still correctly
        return
    fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle is closed


def cached_arrays(directory: Path | None, make_key: Callable[[], str],
                  compute: Callable[[], dict[str, np.ndarray]], *,
                  valid: Callable[[dict[str, np.ndarray]], bool] | None = None,
                  notes: list[str] | None = None) -> tuple[dict[str, np.ndarray], bool]:
    """The arrays stored under the key, computing and storing them first if needed; the key
    (a stat of every image) is only made when there is a cache. Returns (arrays, from cache).

    Entries are untrusted: read without pickles, and one that is damaged or that `valid`
    rejects (wrong names, shapes, dtypes or values) is recomputed, never used. A cache that
    cannot be written is skipped, with one line in `notes`; the run goes on without it.
    """
    if directory is None:
        return compute(), False
    key = make_key()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / f"{key}.lock", "w")
    except OSError as e:
        _skipped(notes, directory, e)
        return compute(), False
    with handle:
        _lock(handle)
        target = directory / f"{key}.npz"
        stored = _load(target, key, valid)
        if stored is not None:
            return stored, True
        arrays = compute()
        remove_dead_temps(directory, f".{key}.", ".npz")  # a killed run's half-written entry
        temp = directory / f".{key}.{os.getpid()}.npz"
        try:  # a reader sees the old entry or the whole new one: a rename is atomic
            np.savez(temp, **arrays, **{KEY: np.array(key)})
            os.replace(temp, target)
        except OSError as e:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            _skipped(notes, directory, e)
        return arrays, False


def peek_arrays(directory: Path | None, key: str, valid=None) -> dict[str, np.ndarray] | None:
    """The arrays stored under `key`, or None (no cache, nothing stored, or an entry that fails
    its checks), without computing or removing anything."""
    if directory is None:
        return None
    return _read(directory / f"{key}.npz", key, valid)


def _load(target: Path, key: str, valid) -> dict[str, np.ndarray] | None:
    arrays = _read(target, key, valid)
    if arrays is None and target.exists():
        with contextlib.suppress(OSError):  # recomputed and replaced; one that cannot be removed is overwritten
            target.unlink(missing_ok=True)
    return arrays


def _read(target: Path, key: str, valid) -> dict[str, np.ndarray] | None:
    if not target.exists():
        return None
    try:
        with np.load(target, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        own = arrays.pop(KEY, None)  # an entry copied from another key is not this one
        if own is not None and own.shape == () and str(own) == key and (valid is None or valid(arrays)):
            return arrays
    except Exception:  # noqa: BLE001 - a damaged entry (zip, npy or I/O error) is never trusted
        pass
    return None


def _skipped(notes: list[str] | None, directory: Path, error: OSError) -> None:
    line = cache_warning(directory, error.strerror or type(error).__name__)
    if notes is not None and line not in notes:
        notes.append(line)


def arrays_like(arrays: dict[str, np.ndarray], expected: dict[str, tuple[str, tuple]],
                optional: tuple[str, ...] = ()) -> bool:
    """`arrays` holds exactly the `expected` names (some `optional`), each of its dtype and shape
    (None in a shape: any length), and their floats are finite: what a cache entry must be."""
    if not set(expected) - set(optional) <= set(arrays) <= set(expected):
        return False
    for name, array in arrays.items():
        dtype, shape = expected[name]
        if array.dtype != np.dtype(dtype) or array.ndim != len(shape):
            return False
        if any(want is not None and have != want for have, want in zip(array.shape, shape)):
            return False
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            return False
    return True


class PredictionCache:
    """The predictions of one model on one dev set; a key adds what else decides them
    (preprocessing, output adapter, classes...)."""

    def __init__(self, directory: Path | None, model_sha256: str, data_sha256: str, ids: list[str],
                 paths: list[str], notes: list[str] | None = None):
        self.directory = directory
        self.model_sha256, self.data_sha256 = model_sha256, data_sha256
        self.ids, self.paths = ids, paths
        self.notes = notes

    def arrays(self, compute: Callable[[], dict[str, np.ndarray]], *,
               valid: Callable[[dict[str, np.ndarray]], bool] | None = None,
               **parts) -> tuple[dict[str, np.ndarray], bool]:
        """`valid` checks an entry read back (see cached_arrays); `parts` join the key."""
        def make_key() -> str:
            return cache_key(model=self.model_sha256, data=self.data_sha256, ids=self.ids,
                             files=files_fingerprint(self.paths), **parts)

        return cached_arrays(self.directory, make_key, compute, valid=valid, notes=self.notes)
