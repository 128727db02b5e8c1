"""Detection dev sets: a COCO instances JSON, or a table with one row per object.

Both become a `Dataset` whose units are the non-crowd ground-truth objects (what recall
counts). Crowd boxes come back apart: matching lets predictions fall on them without counting
a false positive, but no one is expected to find a crowd, so they are not units.

Internal columns start with "_"; metadata keys that do (or that are named like a column erran
computes, e.g. `label`) are dropped so they can never hide erran's own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ...errors import ErranError
from ...tables import numbers
from ..dataset import Dataset, check_images_exist, file_sha256, other_splits, select_split
from .boxes import BOX, CROWD_COLUMNS
from .coco import read_coco
from .object_table import read_object_table


@dataclass
class DetectionDataset(Dataset):
    # One row per crowd box of an evaluated image: _image_index, label, x1..y2. Not units:
    # predictions may fall on them without counting as false positives (COCO iscrowd).
    crowd: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CROWD_COLUMNS))
    category_ids: dict[str, int] = field(default_factory=dict)  # class -> COCO category id


def load_detection(path: Path, split: str) -> DetectionDataset:
    """A COCO JSON (.json) or an object table as a dataset of objects, crowd boxes apart.

    Classes: COCO category names by category id; for a table, its sorted non-empty labels.
    """
    if path.suffix.lower() == ".json":
        images, objects, classes, category_ids = read_coco(path)
    else:
        images, objects, classes = read_object_table(path)
        category_ids = {name: i + 1 for i, name in enumerate(classes)}  # documented: 1..C
    everything = images[["id", "image"]]
    if images.empty:
        raise ErranError(f"{path}: the dev set has no images; add images (and their objects)")
    others = other_splits(images, split)
    images = select_split(images, path, split).reset_index(drop=True)
    base = path.parent.resolve()
    # normpath rather than Path.resolve: no system call per image (100k images load in seconds).
    images["_path"] = [os.path.normpath(os.path.join(base, image)) for image in images["image"]]
    check_images_exist(images)
    _fill_sizes(images)
    units, crowd = _units(images, objects)
    other_units = None
    if others is not None:  # labels and geometry only: their pixels are never decoded here
        others["_path"] = [os.path.normpath(os.path.join(base, image)) for image in others["image"]]
        _fill_sizes(others)
        other_units = _units(others, objects)[0]
    return DetectionDataset(path=path, images=images, units=units, sha256=file_sha256(path),
                            all_ids=set(everything["id"]), all_images=set(everything["image"]),
                            classes=classes, crowd=crowd, category_ids=category_ids,
                            other_images=others, other_units=other_units)


def _fill_sizes(images: pd.DataFrame) -> None:
    """width and height as floats; those not given are read from the image's header."""
    for column in ("width", "height"):
        given = images[column] if column in images.columns else pd.Series(np.nan, index=images.index)
        images[column] = numbers(given, images["_source"].tolist(),
                                 f"{{source}}: {column} {{value!r}} is not a number; give the "
                                 "image size in pixels", required=False)
    unknown = np.flatnonzero((images["width"].isna() | images["height"].isna()).to_numpy())
    if len(unknown):
        sizes = np.array([_image_size(images["_path"][row], images["_source"][row])
                          for row in unknown], dtype=float)
        images.loc[unknown, "width"], images.loc[unknown, "height"] = sizes[:, 0], sizes[:, 1]
    bad = np.flatnonzero(~((images["width"] > 0) & (images["height"] > 0)).to_numpy())
    if len(bad):
        row = bad[0]
        raise ErranError(f"{images['_source'][row]}: image size {images['width'][row]:g} x "
                         f"{images['height'][row]:g} must be positive")


def _image_size(path: str, source: str) -> tuple[int, int]:
    try:
        with Image.open(path) as image:  # opening reads the header only, not the pixels
            return image.size
    except OSError as e:
        raise ErranError(f"{source}: cannot read the size of {path}: {e}; give width and "
                         "height") from None


def _units(images: pd.DataFrame, objects: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Objects of the evaluated images with their geometry and image metadata; crowd apart."""
    index = pd.Index(images["id"]).get_indexer(objects["image_id"])
    kept = index >= 0  # the others belong to images of other splits
    objects = objects[kept].assign(_image_index=index[kept]).reset_index(drop=True)
    crowd = objects.loc[objects["_crowd"], CROWD_COLUMNS].reset_index(drop=True)
    objects = objects[~objects["_crowd"]].drop(columns="_crowd").reset_index(drop=True)
    image = images.iloc[objects["_image_index"].to_numpy()].reset_index(drop=True)
    w, h = image["width"].to_numpy(float), image["height"].to_numpy(float)
    x1, y1, x2, y2 = (objects[c].to_numpy(float) for c in BOX)
    objects["edge_distance"] = np.minimum.reduce([x1 / w, y1 / h, (w - x2) / w, (h - y2) / h])
    objects["area_fraction"] = (x2 - x1) * (y2 - y1) / (w * h)
    # An image's tags hold for each of its objects.
    objects["tags"] = [own + tuple(t for t in shared if t not in own) if shared else own
                       for own, shared in zip(objects["tags"], image["tags"])]
    inherited = image.drop(columns=["id", "_path", "_source", "tags"])
    shared = [c for c in inherited.columns if c in objects.columns]
    for column in shared:  # the object's own value wins; the image's fills in where it has none
        objects[column] = objects[column].where(objects[column].notna(), inherited[column])
    return pd.concat([objects, inherited.drop(columns=shared)], axis=1), crowd
