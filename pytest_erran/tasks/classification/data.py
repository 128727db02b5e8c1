"""Classification dev sets: a manifest (CSV / JSONL / Parquet) or an ImageFolder tree."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from ...errors import ErranError
from ...tables import read_table
from ..dataset import (
    Dataset,
    check_images_exist,
    check_unique,
    file_sha256,
    other_splits,
    parse_tags,
    select_split,
)

TEXT_COLUMNS = ("id", "image", "label", "tags", "split")


def load_classification(path: Path, split: str) -> Dataset:
    others = None
    if path.is_dir():
        images, digest = _image_folder(path)
        everything = images
    else:
        images, digest, everything, others = _manifest(path, split)
    check_images_exist(images)
    return Dataset(path=path, images=images, units=_units(images), sha256=digest,
                   all_ids=set(everything["id"]), all_images=set(everything["image"]),
                   other_images=others, other_units=None if others is None else _units(others))


def _units(images: pd.DataFrame) -> pd.DataFrame:
    return images.assign(image_id=images["id"], _display=images["image"], _image_index=range(len(images)))


def _manifest(path: Path, split: str) -> tuple[pd.DataFrame, str, pd.DataFrame, pd.DataFrame | None]:
    """The evaluated rows, the file's digest, all rows (ids and images of every split), and the
    rows of the other splits (None without a split column)."""
    frame, sources = read_table(path, TEXT_COLUMNS)
    missing = [c for c in ("image", "label") if c not in frame.columns]
    if missing:
        raise ErranError(
            f"{path}: the manifest has no {' or '.join(repr(c) for c in missing)} column "
            f"(columns: {', '.join(map(str, frame.columns))}); every row needs `image` and `label`"
        )
    if frame.empty:
        raise ErranError(f"{path}: the manifest has no rows; add one row per dev image")
    reserved = [c for c in frame.columns if str(c).startswith("_") or c == "image_id"]
    if reserved:
        raise ErranError(f"{path}: the column '{reserved[0]}' is a name pytest-erran uses itself "
                         "(image_id, and names starting with _); rename it")
    frame["_source"] = sources
    if "id" in frame.columns:
        frame["id"] = frame["id"].where(frame["id"] != "", frame["image"])
    else:
        frame["id"] = frame["image"]
    everything = frame[["id", "image"]]
    others = other_splits(frame, split)
    frame = select_split(frame, path, split)
    for column in ("image", "label"):
        blank = frame[frame[column] == ""]
        if len(blank):
            raise ErranError(f"{blank['_source'].iloc[0]}: empty `{column}`; every row needs one")
    check_unique(frame["id"], frame["_source"].__getitem__, "the id", "give every row its own id")
    base = str(path.parent.resolve())  # one resolve, not one per row (each is an lstat per component)
    frame = _with_tags_and_paths(frame.reset_index(drop=True), base)
    return frame, file_sha256(path), everything, None if others is None else _with_tags_and_paths(others, base)


def _with_tags_and_paths(frame: pd.DataFrame, base: str) -> pd.DataFrame:
    frame["tags"] = [parse_tags(value) for value in frame["tags"]] if "tags" in frame.columns else [()] * len(frame)
    frame["_path"] = [os.path.normpath(os.path.join(base, image)) for image in frame["image"]]
    return frame


def _image_folder(root: Path) -> tuple[pd.DataFrame, str]:
    """`root/<class>/.../<image>`, the torchvision ImageFolder layout (subfolders of a class
    belong to it, symlinked ones too), sorted for a stable order. Files whose suffix is no
    image format PIL reads are not images; every image is evaluated or refused, never skipped:
    one outside any class folder, a hidden one (or in a hidden folder), a broken symlink and a
    folder reached twice through links are errors."""
    from PIL import Image

    suffixes = set(Image.registered_extensions())  # every format PIL can read
    stray = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                   and not p.name.startswith("."))
    if stray:
        raise ErranError(f"{root / stray[0]}: an image outside any class folder; an ImageFolder dev "
                         f"set is laid out as {root}/<class>/<image>: move it into its class folder")
    rows = []
    digest = hashlib.sha256()
    seen: dict[str, str] = {}  # real folder -> the path it was first reached by
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in _files(class_dir, seen):
            relative = path.relative_to(root).as_posix()
            if path.suffix.lower() not in suffixes:
                continue  # not an image
            if "/." in f"/{relative}":
                raise ErranError(f"{path}: a hidden image (or one in a hidden folder) in the ImageFolder "
                                 f"{root}; it is neither evaluated nor skipped silently: rename it to "
                                 f"evaluate it, or move it out of {root}")
            if not path.is_file():
                raise ErranError(f"{path}: a symlink to nothing; fix the link or remove it")
            digest.update(f"{relative}\0{path.stat().st_size}\0".encode())
            rows.append({"id": relative, "image": relative, "label": class_dir.name, "tags": (),
                         "_path": str(path.resolve()), "_source": str(path)})
    if not rows:
        raise ErranError(
            f"{root}: no images found; an ImageFolder dev set is laid out as {root}/<class>/<image>"
        )
    return pd.DataFrame(rows), digest.hexdigest()


def _files(class_dir: Path, seen: dict[str, str]) -> list[Path]:
    """Every file under `class_dir`, following symlinked folders (os.walk does not by default,
    and a class's images would silently go missing). A folder reached twice, by a link loop or
    by two links to it, is an error: its images would be counted twice."""
    found = []
    for folder, folders, files in os.walk(class_dir, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            raise ErranError(f"{folder}: the same folder as {seen[real]} (a symlink loop, or two "
                             "links to one folder), so its images would count twice; remove one link")
        seen[real] = folder
        folders.sort()
        found.extend(Path(folder) / name for name in files)
    return sorted(found)
