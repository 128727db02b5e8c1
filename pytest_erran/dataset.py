"""Dev sets -> an images table (one row per image) and a units table (one row per unit).

A unit is what recall counts: an image for classification, a ground-truth object for
detection. Internal columns start with "_" so they never collide with a manifest's own.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import ErranError
from .tables import read_table

TEXT_COLUMNS = ("id", "image", "label", "tags", "split")


@dataclass
class Dataset:
    path: Path
    task: str
    images: pd.DataFrame  # id, image, _path, _source, label (classification), tags, metadata
    units: pd.DataFrame  # id, image_id, label, tags, _display, metadata (+ object columns)
    sha256: str
    # Every id and image path of the file, all splits: predictions files may cover them all.
    all_ids: set[str] = field(default_factory=set)
    all_images: set[str] = field(default_factory=set)
    category_ids: dict[str, int] = field(default_factory=dict)  # detection: class -> COCO id

    @property
    def labels(self) -> set[str]:
        return set(self.units["label"])


def load_classification(path: Path, split: str) -> Dataset:
    if path.is_dir():
        images, digest = _image_folder(path)
        everything = images
    else:
        images, digest, everything = _manifest(path, split)
    _check_images_exist(images)
    units = images.assign(image_id=images["id"], _display=images["image"],
                          _image_index=range(len(images)))
    return Dataset(path=path, task="classification", images=images, units=units, sha256=digest,
                   all_ids=set(everything["id"]), all_images=set(everything["image"]))


def check_labels(dataset: Dataset, classes: tuple[str, ...]) -> None:
    """Every true label must be a class: a typo would otherwise count as a miss."""
    known = set(classes)
    for label, source in zip(dataset.units["label"], dataset.units["_source"]):
        if label not in known:
            raise ErranError(
                f"{source}: label '{label}' is not one of the classes {list(classes)}; "
                "fix the label or add the class to `classes`"
            )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest(path: Path, split: str) -> tuple[pd.DataFrame, str, pd.DataFrame]:
    """The evaluated rows, the file's digest, and all rows (ids and images of every split)."""
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
    frame = _select_split(frame, path, split)
    for column in ("image", "label"):
        blank = frame[frame[column] == ""]
        if len(blank):
            raise ErranError(f"{blank['_source'].iloc[0]}: empty `{column}`; every row needs one")
    _check_unique_ids(frame)
    frame["tags"] = _split_tags(frame["tags"]) if "tags" in frame.columns else [()] * len(frame)
    base = str(path.parent.resolve())  # one resolve, not one per row (each is an lstat per component)
    frame["_path"] = [os.path.normpath(os.path.join(base, image)) for image in frame["image"]]
    return frame.reset_index(drop=True), file_sha256(path), everything


def _select_split(frame: pd.DataFrame, path: Path, split: str) -> pd.DataFrame:
    if "split" not in frame.columns:
        return frame
    selected = frame[frame["split"] == split]
    if selected.empty:
        found = sorted(set(frame["split"]))
        raise ErranError(
            f"{path}: no rows with split '{split}' (splits found: {', '.join(found)}); "
            "set `split` in the config to the one to evaluate"
        )
    return selected


def _check_unique_ids(frame: pd.DataFrame) -> None:
    duplicated = frame[frame["id"].duplicated(keep=False)]
    if len(duplicated):
        first = duplicated.iloc[0]["id"]
        places = duplicated[duplicated["id"] == first]["_source"].tolist()
        raise ErranError(f"{' and '.join(places)}: the id '{first}' appears twice; give every row its own id")


def _split_tags(column: pd.Series) -> list[tuple[str, ...]]:
    return [tuple(t.strip() for t in value.split(";") if t.strip()) for value in column]


def _image_folder(root: Path) -> tuple[pd.DataFrame, str]:
    """`root/<class>/.../<image>`, the torchvision ImageFolder layout (subfolders of a class
    belong to it), sorted for a stable order. An image outside any class folder is an error."""
    from PIL import Image

    suffixes = set(Image.registered_extensions())  # every format PIL can read
    stray = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if stray:
        raise ErranError(f"{root / stray[0]}: an image outside any class folder; an ImageFolder dev "
                         f"set is laid out as {root}/<class>/<image>: move it into its class folder")
    rows = []
    digest = hashlib.sha256()
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(class_dir.rglob("*")):
            relative = path.relative_to(root).as_posix()
            if path.suffix.lower() not in suffixes or not path.is_file() or "/." in f"/{relative}":
                continue  # not an image (or hidden)
            digest.update(f"{relative}\0{path.stat().st_size}\0".encode())
            rows.append({"id": relative, "image": relative, "label": class_dir.name, "tags": (),
                         "_path": str(path.resolve()), "_source": str(path)})
    if not rows:
        raise ErranError(
            f"{root}: no images found; an ImageFolder dev set is laid out as {root}/<class>/<image>"
        )
    return pd.DataFrame(rows), digest.hexdigest()


def _check_images_exist(images: pd.DataFrame) -> None:
    for path, source in zip(images["_path"], images["_source"]):
        if not os.path.isfile(path):
            raise ErranError(f"{source}: image {path} does not exist; fix the path or remove the row")
