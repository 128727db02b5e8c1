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

CACHE_VERSION = 1


def cache_key(**parts) -> str:
    from .. import __version__  # another erran may decode or match differently

    text = json.dumps({"v": CACHE_VERSION, "erran": __version__, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def files_fingerprint(paths) -> str:
    """Size and modification time of every image: a changed image must not reuse old predictions."""
    digest = hashlib.sha256()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(lock_path: Path):
    try:
        import fcntl
    except ImportError:  # Windows: no lock; concurrent runs then each compute, still correctly
        yield
        return
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_arrays(directory: Path | None, make_key: Callable[[], str],
                  compute: Callable[[], dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], bool]:
    """The arrays stored under the key, computing and storing them first if needed; the key
    (a stat of every image) is only made when there is a cache. Returns (arrays, from cache)."""
    if directory is None:
        return compute(), False
    key = make_key()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{key}.npz"
    with _locked(directory / f"{key}.lock"):
        if target.exists():
            try:
                with np.load(target, allow_pickle=False) as stored:
                    return {name: stored[name] for name in stored.files}, True
            except Exception:  # noqa: BLE001 - a damaged entry (zip, npy or I/O error) is
                target.unlink(missing_ok=True)  # recomputed, never trusted
        arrays = compute()
        temp = directory / f".{key}.{os.getpid()}.npz"
        np.savez(temp, **arrays)
        os.replace(temp, target)
        return arrays, False


def peek_arrays(directory: Path | None, key: str) -> dict[str, np.ndarray] | None:
    """The arrays stored under `key`, or None (no cache, nothing stored, or a damaged entry)."""
    if directory is None:
        return None
    target = directory / f"{key}.npz"
    if not target.exists():
        return None
    try:
        with np.load(target, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except Exception:  # noqa: BLE001 - damaged: recomputed, never trusted
        return None


class PredictionCache:
    """The predictions of one model on one dev set; a key adds what else decides them
    (preprocessing, output adapter, classes...)."""

    def __init__(self, directory: Path | None, model_sha256: str, data_sha256: str, ids: list[str],
                 paths: list[str]):
        self.directory = directory
        self.model_sha256, self.data_sha256 = model_sha256, data_sha256
        self.ids, self.paths = ids, paths

    def arrays(self, compute: Callable[[], dict[str, np.ndarray]], **parts) -> tuple[dict[str, np.ndarray], bool]:
        def make_key() -> str:
            return cache_key(model=self.model_sha256, data=self.data_sha256, ids=self.ids,
                             files=files_fingerprint(self.paths), **parts)

        return cached_arrays(self.directory, make_key, compute)
