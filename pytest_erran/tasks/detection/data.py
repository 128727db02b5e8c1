"""Detection dev sets: a COCO instances JSON, or a table with one row per object.

Both become a `Dataset` whose units are the non-crowd ground-truth objects (what recall
counts). Crowd boxes come back apart: matching lets predictions fall on them without counting
a false positive, but no one is expected to find a crowd, so they are not units.

Internal columns start with "_"; metadata keys that do (or that are named like a column erran
computes, e.g. `label`) are dropped so they can never hide erran's own.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import ErranError
from ...inference.batches import default_threads
from ...inference.images import image_size, open_image_header, orientation
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


def load_detection(path: Path, split: str, exif: str = "apply", threads: int | None = None) -> DetectionDataset:
    """A COCO JSON (.json) or an object table as a dataset of objects, crowd boxes apart.

    Classes: COCO category names by category id. A table defines no class order (`classes`
    in the config does, or the model's metadata); its category ids, for a COCO results file,
    are 1..C in the sorted order of its labels. Image sizes are read from every image's header
    (`exif` says whether turned upright first): a declared width or height must agree.
    """
    if path.is_dir():
        raise ErranError(f"{path}: is a directory; a detection dev set is a COCO JSON (.json) or an "
                         "object table (.csv, .jsonl, .parquet): point `data` at the file")
    if path.suffix.lower() == ".json":
        images, objects, classes, category_ids = read_coco(path)
    else:
        images, objects = read_object_table(path)
        classes = None  # a model's output order is not the alphabet: the config must say it
        category_ids = {name: i + 1 for i, name in enumerate(sorted(set(objects["label"])))}  # 1..C
    everything = images[["id", "image"]]
    if images.empty:
        raise ErranError(f"{path}: the dev set has no images; add images (and their objects)")
    others = other_splits(images, split)
    images = select_split(images, path, split).reset_index(drop=True)
    base = path.parent.resolve()
    # normpath rather than Path.resolve: no system call per image (100k images load in seconds).
    images["_path"] = [os.path.normpath(os.path.join(base, image)) for image in images["image"]]
    check_images_exist(images)
    _fill_sizes(images, exif, threads or default_threads())
    units, crowd = _units(images, objects)
    other_units = None
    if others is not None:  # labels and geometry only: their pixels are never decoded here
        others["_path"] = [os.path.normpath(os.path.join(base, image)) for image in others["image"]]
        _declared_sizes(others, exif)
        other_units = _units(others, objects)[0]
    return DetectionDataset(path=path, images=images, units=units, sha256=file_sha256(path),
                            all_ids=set(everything["id"]), all_images=set(everything["image"]),
                            classes=classes, crowd=crowd, category_ids=category_ids,
                            other_images=others, other_units=other_units)


def _fill_sizes(images: pd.DataFrame, exif: str, threads: int) -> None:
    """width and height as floats, read from every image's header (in threads): a declared size
    that disagrees with the file would make every edge_distance and area_fraction wrong."""
    sources = images["_source"].tolist()
    declared = {}
    for column in ("width", "height"):
        given = images[column] if column in images.columns else pd.Series(np.nan, index=images.index)
        declared[column] = numbers(given, sources, f"{{source}}: {column} {{value!r}} is not a number; "
                                   "give the image size in pixels", required=False)
    paths = images["_path"].tolist()

    def read(rows) -> list[tuple[int, int]]:
        return [image_size(paths[i], sources[i], exif) for i in rows]

    # One task per thread: a header takes tens of microseconds, about what a task costs the pool.
    chunks = np.array_split(np.arange(len(paths)), max(1, min(threads, len(paths))))
    with ThreadPoolExecutor(max_workers=len(chunks), thread_name_prefix="erran-sizes") as pool:
        actual = np.array([size for part in pool.map(read, chunks) for size in part],
                          dtype=float).reshape(-1, 2)
    for k, column in enumerate(("width", "height")):
        given = declared[column]
        wrong = np.flatnonzero(~np.isnan(given) & (given != actual[:, k]))
        if len(wrong):
            row = wrong[0]
            width, height = actual[row]
            turned = (" (turned upright by its EXIF orientation; exif = \"ignore\" reads the pixels as "
                      "stored)" if exif == "apply" and _quarter_turned(paths[row], sources[row]) else "")
            raise ErranError(f"{sources[row]}: {column} = {given[row]:g}, but {images['image'][row]} is "
                             f"{width:g} x {height:g} pixels{turned}; fix width and height, or leave "
                             "them out to have them read from the image")
        images[column] = actual[:, k]


def _declared_sizes(images: pd.DataFrame, exif: str) -> None:
    """Other splits' sizes as declared, else from the header of an image that is there: their
    images need not exist (only their labels and geometry are counted), and are not checked."""
    sources = images["_source"].tolist()
    for column in ("width", "height"):
        given = images[column] if column in images.columns else pd.Series(np.nan, index=images.index)
        images[column] = numbers(given, sources, f"{{source}}: {column} {{value!r}} is not a number; "
                                 "give the image size in pixels", required=False)
    for row in np.flatnonzero((images["width"].isna() | images["height"].isna()).to_numpy()):
        path = images["_path"].iloc[row]
        if os.path.isfile(path):
            images.loc[images.index[row], ["width", "height"]] = image_size(path, sources[row], exif)


def _quarter_turned(path: str, source: str) -> bool:
    with open_image_header(path, source) as image:
        return orientation(image) in (5, 6, 7, 8)


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
    # A box partly outside its image is kept as written (COCOeval keeps it; its edge_distance is
    # then negative); one wholly outside can never be found, and is an annotation error.
    outside = np.flatnonzero((x2 <= 0) | (y2 <= 0) | (x1 >= w) | (y1 >= h))
    if len(outside):
        row = outside[0]
        raise ErranError(f"{objects['_source'][row]}: the box x1 {x1[row]:g}, y1 {y1[row]:g}, x2 "
                         f"{x2[row]:g}, y2 {y2[row]:g} lies wholly outside its image "
                         f"({w[row]:g} x {h[row]:g}); fix the box, or the image's width and height")
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
