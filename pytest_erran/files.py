"""Write files all or nothing (a reader never sees half a baseline or report); portable paths."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """A temp file beside `path`, then a rename. Errors name `path`, not the temp file. The
    temp file names its writer's pid, so that one left by a killed run is removed by the next."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_temps(path.parent, f".{path.name}.", ".tmp")
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, _mode_for(path))  # mkstemp makes it private (0600)
        os.replace(temp, path)
    except OSError as e:
        os.unlink(temp)
        raise OSError(e.errno, e.strerror, str(path)) from None
    except BaseException:
        os.unlink(temp)
        raise


def remove_dead_temps(folder: Path, prefix: str, suffix: str) -> None:
    """Remove `folder`/<prefix><pid>.<...><suffix> files whose writing process is gone (a run
    killed mid-write); a live writer's temp file is left alone. Never raises."""
    try:
        names = [name for name in os.listdir(folder) if name.startswith(prefix) and name.endswith(suffix)]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                os.unlink(folder / name)
            except OSError:
                pass


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there: keep every temp file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, but is another user's
        return True
    return True


def _mode_for(path: Path) -> int:
    """The mode the file has, or what the umask gives a new file."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def not_a_file(path) -> str:
    """Why `path` cannot be opened as a file, for a message: a folder is not "missing"."""
    return "is a directory, not a file" if os.path.isdir(path) else "does not exist"


def write_json(path: Path, document: dict) -> None:
    """Sorted and indented, so the file diffs well in review."""
    write_atomic(path, json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def portable_path(path: Path, rootdir: Path) -> str:
    """Relative to the rootdir (with /) when inside it: baselines are committed and shared."""
    try:
        return Path(path).resolve().relative_to(rootdir.resolve()).as_posix()
    except ValueError:
        return str(path)
