"""A dev set: an images table (one row per image) and a units table (one row per unit, the
columns units.py documents); and the helpers every task's loaders share."""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ErranError
from ..files import not_a_file


@dataclass
class Dataset:
    path: Path
    images: pd.DataFrame
    units: pd.DataFrame
    sha256: str
    # Every id and image path of the file, all splits: predictions files may cover them all.
    all_ids: set[str] = field(default_factory=set)
    all_images: set[str] = field(default_factory=set)
    # The classes the file itself defines, in model output order (COCO categories by id).
    classes: tuple[str, ...] | None = None
    # The other splits' rows (`split` != the evaluated one), with the same columns, for split
    # coverage, calibration and leakage: never run through a model. None without a split column.
    other_images: pd.DataFrame | None = None
    other_units: pd.DataFrame | None = None

    @property
    def labels(self) -> set[str]:
        return set(self.units["label"])


def check_labels(dataset: Dataset, classes: tuple[str, ...]) -> None:
    """Every true label must be a class: a typo would otherwise count as a miss."""
    unknown = np.flatnonzero(~dataset.units["label"].isin(list(classes)).to_numpy())
    if len(unknown):
        label, source = dataset.units["label"].iloc[unknown[0]], dataset.units["_source"].iloc[unknown[0]]
        raise ErranError(f"{source}: label '{label}' is not one of the classes {list(classes)}; "
                         "fix the label or add the class to `classes`")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def select_split(frame: pd.DataFrame, path: Path, split: str) -> pd.DataFrame:
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


def other_splits(frame: pd.DataFrame, split: str) -> pd.DataFrame | None:
    """The rows of every split but `split`, or None when the table has no split column."""
    if "split" not in frame.columns:
        return None
    return frame[frame["split"] != split].reset_index(drop=True)


def check_unique(ids: pd.Series, where: Callable[[object], str], what: str, fix: str) -> None:
    """The first id given twice is an error naming both places (`where` of an index label)."""
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        first = duplicated.iloc[0]
        rows = duplicated.index[duplicated == first]
        raise ErranError(f"{where(rows[0])} and {where(rows[1])}: {what} '{first}' appears twice; {fix}")


def parse_tags(value) -> tuple[str, ...]:
    """Tags as a list (JSON), or one ";"-separated string (tables); blank means none."""
    if value is None or (isinstance(value, float) and value != value):
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(t) for t in value)
    return tuple(t.strip() for t in str(value).split(";") if t.strip())


def check_images_exist(images: pd.DataFrame) -> None:
    missing = [path for path in dict.fromkeys(images["_path"]) if not os.path.isfile(path)]  # each file once
    if missing:
        row = int(np.flatnonzero((images["_path"] == missing[0]).to_numpy())[0])
        raise ErranError(f"{images['_source'].iloc[row]}: image {missing[0]} {not_a_file(missing[0])}; fix the path "
                         "or remove the row")


def is_metadata(column: pd.Series, reserved: set[str]) -> bool:
    """A column a `where` can use: not erran's own, and not lists or dicts (segmentation,
    keypoints), which cannot be compared."""
    name = column.name
    if not isinstance(name, str) or name in reserved or name.startswith("_"):
        return False
    return column.dtype != object or not column.map(lambda v: isinstance(v, (list, dict))).any()


def normalise(path: str) -> str:
    """A path as a dev set writes it, compared up to "./" and backslashes."""
    return posixpath.normpath(path.replace("\\", "/"))
