"""Input cache: each image's preprocessed uint8 input, kept between runs whatever the model.

In CI the dev set rarely changes while the model does: with its inputs cached, a new model on an
unchanged dev set only runs inference. One entry per dev set and geometry (size, channels,
resize and decode mode; normalisation is cheap and done after): a raw uint8 pixel file of rows
[H, W, C] and an index that records, per row, the image it came from (content digest, and path
and stat for a fast check), the image's own size and the row's CRC-32.

Never a stale input, row by row: a row serves an image only when the image's stat (size, mtime,
ctime, inode) is the one recorded, or else (a fresh checkout in CI) its content has the recorded
digest; a row whose CRC fails is decoded again. Only the images that changed are decoded. New
rows are appended past the last indexed row and the index is then replaced atomically (temp +
rename), so a reader never sees a row that is not whole. Files are read with numpy's
`allow_pickle=False`, and a damaged, truncated or foreign file is a miss. A folder that cannot be
written turns the cache off for the run with one warning. The entries together stay under
`cache_max_mb`: the least recently used are removed first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import warnings
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .images import Preprocess

INPUT_CACHE_VERSION = 1
INDEX = "index.npz"
LOCK = "lock"
DIGEST = 16  # bytes of sha256 kept per image
MB = 1024 * 1024


class ErranCacheWarning(UserWarning):
    """The input cache could not be used (for example a read-only folder); the run goes on
    without it."""


def geometry(prep: Preprocess) -> dict:
    """What decides an image's cached pixels (normalisation and dtype do not)."""
    return {"width": prep.width, "height": prep.height, "channels": prep.channels, "resize": prep.resize,
            "decode": prep.decode}


def entry_name(dataset: str, prep: Preprocess) -> str:
    from PIL import __version__ as pillow  # another Pillow may resize differently

    from .. import __version__

    text = json.dumps({"v": INPUT_CACHE_VERSION, "erran": __version__, "pillow": pillow, "dataset": dataset,
                       **geometry(prep)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class InputCache:
    """The input cache folder; None as `directory` means no cache."""

    def __init__(self, directory: Path | None, max_mb: int):
        self.directory = directory
        self.max_mb = max_mb
        self.max_bytes = max_mb * MB
        self.warned = False
        self.hits = self.decoded = 0  # of the last run: rows served from the cache, rows stored

    def warn(self, message: str) -> None:
        if not self.warned:  # one warning per run, however many rows fail
            self.warned = True
            warnings.warn(ErranCacheWarning(f"erran input cache: {message}"), stacklevel=2)

    @contextlib.contextmanager
    def rows(self, dataset: str, prep: Preprocess, paths: Sequence[str]) -> Iterator["InputRows | None"]:
        """The cached rows of `paths` (a dev set `dataset` in one geometry), or None without a
        cache; new rows are indexed when the block ends."""
        if self.directory is None or self.max_bytes <= 0:
            yield None
            return
        folder = self.directory / entry_name(dataset, prep)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            lock = open(folder / LOCK, "a+b")
        except OSError as e:
            self.warn(f"cannot write to {folder.parent} ({e.strerror or e}); running without it")
            yield None
            return
        with lock:
            _lock(lock)
            rows = InputRows(self, folder, prep, paths)
            try:
                yield rows
            finally:
                rows.finish()
                self.hits, self.decoded = rows.hits, rows.decoded
        prune(self.directory, self.max_bytes, keep=folder)


class InputRows:
    """One run's view of an entry: get() a cached row, put() a decoded one (from decode
    threads), finish() to index what was added."""

    def __init__(self, cache: InputCache, folder: Path, prep: Preprocess, paths: Sequence[str]):
        self.cache, self.folder, self.paths = cache, folder, paths
        self.shape = (prep.height, prep.width, prep.channels)
        self.row_bytes = int(np.prod(self.shape))
        self.meta = json.dumps({"v": INPUT_CACHE_VERSION, **geometry(prep)}, sort_keys=True)
        self.lock = threading.Lock()
        self.changed = False
        self.writable = True
        self.fd: int | None = None
        self.new: list[tuple[int, int, int, tuple[int, int]]] = []  # (image, row, crc, size)
        self.hits = self.decoded = 0
        self.pixels: int | None = None  # the pixel file, open for reading rows
        for stale in folder.glob("*.tmp"):  # a writer killed mid-way (we hold the lock)
            with contextlib.suppress(OSError):
                stale.unlink()
        self._load()
        n = len(paths)
        # What this run learns about each of its images (digest, stat) and the row it uses.
        self.digest = np.zeros((n, DIGEST), np.uint8)
        self.stat = np.zeros((n, 4), np.int64)
        self.used = np.full(n, -1, np.int64)

    # ------------------------------------------------------------------ reading

    def _load(self) -> None:
        self.count = 0
        self.pixels_name = f"pixels-{os.urandom(6).hex()}.u8"
        self.index = {"digest": np.zeros((0, DIGEST), np.uint8), "path": np.zeros(0, "U1"),
                      "stat": np.zeros((0, 4), np.int64), "size": np.zeros((0, 2), np.int64),
                      "crc": np.zeros(0, np.uint32)}
        self.by_path: dict[str, int] = {}
        self.by_digest: dict[bytes, int] = {}
        try:
            index, pixels_name = self._read_index()
        except Exception:  # noqa: BLE001 - missing, damaged or foreign: start the entry afresh
            for old in self.folder.glob("pixels-*.u8"):
                with contextlib.suppress(OSError):
                    old.unlink()
            return
        self.index, self.pixels_name, self.count = index, pixels_name, len(index["crc"])
        # A later row supersedes an earlier one of the same image (one that failed its CRC).
        self.by_path = {p: r for r, p in enumerate(index["path"].tolist())}
        self.by_digest = {d.tobytes(): r for r, d in enumerate(index["digest"])}

    def _read_index(self) -> tuple[dict, str]:
        with np.load(self.folder / INDEX, allow_pickle=False) as stored:
            index = {name: stored[name] for name in ("digest", "path", "stat", "size", "crc")}
            meta, pixels_name = str(stored["meta"]), str(stored["pixels"])
        count = len(index["crc"])
        if meta != self.meta or not pixels_name.startswith("pixels-") or "/" in pixels_name:
            raise ValueError("another geometry or version")
        wanted = {"digest": ((count, DIGEST), "u"), "path": ((count,), "U"), "stat": ((count, 4), "i"),
                  "size": ((count, 2), "i"), "crc": ((count,), "u")}
        for name, (shape, kind) in wanted.items():
            if index[name].shape != shape or index[name].dtype.kind != kind:
                raise ValueError(f"{name}: wrong shape or type")
        if (self.folder / pixels_name).stat().st_size < count * self.row_bytes:
            raise ValueError("truncated pixels")
        if count:
            self.pixels = os.open(self.folder / pixels_name, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        return index, pixels_name

    def get(self, i: int, out: np.ndarray) -> tuple[int, int] | None:
        """Copy image i's cached row into `out` and return the image's (width, height); None
        when it has none (or the row is damaged): then decode it and put() it."""
        path = self.paths[i]
        try:
            st = os.stat(path)
        except OSError:
            return None  # decoding it says what is wrong, naming its row
        stat = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        self.stat[i] = stat
        row = self.by_path.get(path)
        if row is not None and tuple(self.index["stat"][row]) == stat:
            self.digest[i] = self.index["digest"][row]
        else:
            try:
                digest = content_digest(path)
            except OSError:
                return None
            self.digest[i] = digest
            row = self.by_digest.get(digest.tobytes())
            if row is None:
                return None
            self.changed = True  # the image moved or was checked out again: record its new stat
        # Read straight into the batch row: no mapping, so the process's memory stays a few
        # batches whatever the dev set's size (a mapped file's pages would count as its own).
        view = memoryview(out).cast("B") if out.flags.c_contiguous else None
        if view is None or self._read(view, row * self.row_bytes) != self.row_bytes \
                or zlib.crc32(view) != int(self.index["crc"][row]):
            return None
        self.used[i] = row
        return tuple(int(v) for v in self.index["size"][row])

    def _read(self, view: memoryview, offset: int) -> int:
        if hasattr(os, "preadv"):  # positioned: threads read at once
            return os.preadv(self.pixels, [view], offset)
        with self.lock:  # Windows: seek and read, one thread at a time
            os.lseek(self.pixels, offset, os.SEEK_SET)
            data = os.read(self.pixels, len(view))
            view[:len(data)] = data
            return len(data)

    # ------------------------------------------------------------------ writing

    def put(self, i: int, out: np.ndarray, size: tuple[int, int]) -> None:
        """Append image i's decoded row (after get() returned None for it)."""
        if not self.writable:
            return
        data = np.ascontiguousarray(out).tobytes()
        with self.lock:
            if (self.count + 1) * self.row_bytes > self.cache.max_bytes:
                self.cache.warn(f"the dev set's inputs need more than cache_max_mb = "
                                f"{self.cache.max_mb}; the rest are not cached (raise "
                                "cache_max_mb to cache them all)")
                self.writable = False
                return
            row = self.count
            self.count += 1
            try:
                if self.fd is None:
                    self.fd = os.open(self.folder / self.pixels_name,
                                      os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
            except OSError as e:
                return self._failed(e)
        try:
            if hasattr(os, "pwrite"):
                os.pwrite(self.fd, data, row * self.row_bytes)
            else:  # Windows
                with self.lock:
                    os.lseek(self.fd, row * self.row_bytes, os.SEEK_SET)
                    os.write(self.fd, data)
        except OSError as e:
            return self._failed(e)
        with self.lock:
            self.new.append((i, row, zlib.crc32(data), size))
            self.used[i] = row

    def _failed(self, error: OSError) -> None:
        self.writable = False
        self.cache.warn(f"cannot write to {self.folder} ({error.strerror or error}); running without it")

    def finish(self) -> None:
        """Index the rows added (in row order: a row not written whole is never indexed)."""
        base = len(self.index["crc"])
        self.hits = int(((self.used >= 0) & (self.used < base)).sum())
        self.decoded = len(self.new)
        try:
            for fd in (self.fd, self.pixels):
                if fd is not None:
                    os.close(fd)
            if not (self.new or self.changed):
                if self.count:
                    os.utime(self.folder / INDEX)  # last use, for pruning
                return
            self._write_index()
        except OSError as e:
            self._failed(e)

    def _write_index(self) -> None:
        base = len(self.index["crc"])
        added = []  # rows in row order, up to the first one missing (its write failed)
        for expected, entry in enumerate(sorted(self.new, key=lambda e: e[1]), start=base):
            if entry[1] != expected:
                break
            added.append(entry)
        images = np.array([e[0] for e in added], np.int64)
        paths = self.index["path"].tolist() + [self.paths[i] for i in images]
        stat = np.concatenate([self.index["stat"], self.stat[images]])
        for i in np.flatnonzero((self.used >= 0) & (self.used < base)):
            row = self.used[i]  # a cached row now also known by this path and stat
            paths[row], stat[row] = self.paths[i], self.stat[i]
        arrays = {
            "digest": np.concatenate([self.index["digest"], self.digest[images]]),
            "path": np.array(paths, str) if paths else np.zeros(0, "U1"), "stat": stat,
            "size": np.concatenate([self.index["size"], np.array([e[3] for e in added], np.int64).reshape(-1, 2)]),
            "crc": np.concatenate([self.index["crc"], np.array([e[2] for e in added], np.uint32)]),
            "meta": np.array(self.meta), "pixels": np.array(self.pixels_name),
        }
        live = np.unique(self.used[self.used >= 0])
        if len(arrays["crc"]) > 2 * max(len(live), 1):  # mostly rows of images gone: compact
            arrays = self._compacted(arrays, live)
        temp = self.folder / (INDEX + ".tmp")
        with temp.open("wb") as f:
            np.savez(f, **arrays)
        os.replace(temp, self.folder / INDEX)
        for old in self.folder.glob("pixels-*.u8"):
            if old.name != str(arrays["pixels"]):
                old.unlink(missing_ok=True)

    def _compacted(self, arrays: dict, live: np.ndarray) -> dict:
        name = f"pixels-{os.urandom(6).hex()}.u8"
        source = np.memmap(self.folder / self.pixels_name, np.uint8, "r", shape=(len(arrays["crc"]), *self.shape))
        with (self.folder / name).open("wb") as f:
            for row in live[live < len(arrays["crc"])]:
                f.write(source[row].tobytes())
        del source
        live = live[live < len(arrays["crc"])]
        return {**{k: arrays[k][live] for k in ("digest", "path", "stat", "size", "crc")},
                "meta": arrays["meta"], "pixels": np.array(name)}


def content_digest(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        return np.frombuffer(hashlib.sha256(f.read()).digest()[:DIGEST], np.uint8)


def _lock(handle) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no lock; concurrent runs may then each append, still correct rows
        return
    fcntl.flock(handle, fcntl.LOCK_EX)


def entry_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def prune(directory: Path, max_bytes: int, keep: Path) -> None:
    """Remove the least recently used entries until all fit in max_bytes (`keep` last of all);
    an entry in use by another run (its lock held) is left alone."""
    try:
        import fcntl
    except ImportError:
        fcntl = None
    try:
        entries = []
        for folder in directory.iterdir():
            if folder.is_dir():
                index = folder / INDEX
                used = index.stat().st_mtime_ns if index.exists() else 0
                entries.append((folder == keep, used, folder, entry_bytes(folder)))
        total = sum(e[3] for e in entries)
        for kept, _, folder, size in sorted(entries, key=lambda e: (e[0], e[1])):
            if total <= max_bytes or kept:
                break
            with open(folder / LOCK, "a+b") as handle:
                if fcntl is not None:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        continue
                shutil.rmtree(folder, ignore_errors=True)
            total -= size
    except OSError:
        pass  # pruning is best effort: a folder we cannot list or remove stays
