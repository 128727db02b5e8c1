"""A table with one row per object (CSV / JSONL / Parquet) -> images and objects tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import ErranError
from ...tables import is_blank, numbers, read_table
from ..dataset import check_unique, is_metadata, parse_tags
from .boxes import BOX

TABLE_TEXT = ("id", "image", "label", "tags", "split")


TABLE_KEYS = {"id", "image", "label", *BOX, "tags", "width", "height", "_source"}


def read_object_table(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame, sources = read_table(path, TABLE_TEXT)
    missing = [c for c in ("image", "label", *BOX) if c not in frame.columns]
    if missing:
        raise ErranError(
            f"{path}: no {', '.join(missing)} column (columns: {', '.join(map(str, frame.columns))}); "
            "a detection table has one row per object with image, label, x1, y1, x2, y2, and a row "
            "with an empty label for an image without objects"
        )
    frame["_source"] = sources
    blank = np.flatnonzero((frame["image"] == "").to_numpy())
    if len(blank):
        raise ErranError(f"{sources[blank[0]]}: empty `image`; every row needs one")
    is_object = (frame["label"] != "").to_numpy()
    _table_boxes(frame, is_object)
    frame["tags"] = [parse_tags(value) for value in frame["tags"]] if "tags" in frame.columns else [()] * len(frame)
    metadata = [c for c in frame.columns if is_metadata(frame[c], TABLE_KEYS)]
    images = _table_images(path, frame, metadata)
    objects = _table_objects(frame[is_object].reset_index(drop=True), metadata)
    return images, objects


def _table_boxes(frame: pd.DataFrame, is_object: np.ndarray) -> None:
    """Coordinates as floats: numbers for objects, empty for an image-without-objects row."""
    for column in BOX:
        raw = frame[column]
        values = numbers(raw.where(is_object, ""), frame["_source"].tolist(),
                         f"{{source}}: {column} = {{value!r}} is not a number; every object needs "
                         "numeric x1, y1, x2, y2", required=is_object)
        stray = np.flatnonzero(~is_object & ~is_blank(raw))
        if len(stray):
            raise ErranError(f"{frame['_source'][stray[0]]}: a box without a label; give the "
                             "label, or leave x1..y2 empty for an image without objects")
        frame[column] = values
    for low, high, side in (("x1", "x2", "width"), ("y1", "y2", "height")):
        inverted = np.flatnonzero((frame[high] < frame[low]).to_numpy())
        if len(inverted):
            row = inverted[0]
            raise ErranError(f"{frame['_source'][row]}: {high} ({frame[high][row]}) < {low} "
                             f"({frame[low][row]}); boxes are corners x1, y1, x2, y2, "
                             "not x, y, width, height")
        flat = np.flatnonzero((frame[high] == frame[low]).to_numpy())
        if len(flat):  # no prediction can reach IoU 0.5 with it: a permanent miss
            row = flat[0]
            raise ErranError(f"{frame['_source'][row]}: the box has zero {side} ({low} = {high} = "
                             f"{frame[low][row]:g}); give the object's corners x1, y1, x2, y2")


def _table_images(path: Path, frame: pd.DataFrame, metadata: list[str]) -> pd.DataFrame:
    """One row per distinct image, in order of first appearance, with the columns that are the
    same on all of the image's rows (image-level metadata) and the tags they all carry."""
    first = frame.drop_duplicates("image").reset_index(drop=True)
    images = pd.DataFrame({"id": first["image"], "image": first["image"], "_source": first["_source"]})
    groups = frame.groupby("image", sort=False)
    if "split" in frame.columns:
        splits = groups["split"].nunique()
        if (splits > 1).any():
            image = splits.index[splits > 1][0]
            raise ErranError(f"{path}: image '{image}' has rows in more than one split; "
                             "an image belongs to one split")
    for column in ("width", "height"):
        if column in frame.columns:
            images[column] = _table_size(frame, column).groupby(frame["image"], sort=False).first() \
                .reindex(images["image"]).to_numpy()
    if metadata:
        constant = groups[metadata].nunique(dropna=False).le(1).all()
        for column in constant.index[constant]:
            images[column] = first[column]
    common: dict[str, set[str]] = {}
    for image, tags in zip(frame["image"], frame["tags"]):
        common[image] = common[image] & set(tags) if image in common else set(tags)
    images["tags"] = [tuple(t for t in tags if t in common[image])
                      for image, tags in zip(first["image"], first["tags"])]
    return images


def _table_size(frame: pd.DataFrame, column: str) -> pd.Series:
    values = numbers(frame[column], frame["_source"].tolist(),
                     f"{{source}}: {column} = {{value!r}} is not a number; give the image size in "
                     "pixels, or leave it empty to read it from the image", required=False)
    return pd.Series(values, index=frame.index)


def derived_ids(rows: pd.DataFrame) -> pd.Series:
    """An object's id when the table gives none: its image, box and label
    ("images/a.png#10,20,30.5,40#dent"), so that editing other rows never changes it (a baseline
    pairs units by id); exact duplicates are told apart by their order ("...#dent#2")."""
    corners = [rows[c].map(_number) for c in BOX]
    ids = rows["image"] + "#" + corners[0] + "," + corners[1] + "," + corners[2] + "," + corners[3] \
        + "#" + rows["label"]
    repeat = ids.groupby(ids, sort=False).cumcount()
    return ids.where(repeat == 0, ids + "#" + (repeat + 1).astype(str)).astype(object)


def _number(value: float) -> str:
    """The shortest text that reads back as the same float: 10.0 -> "10", 0.1 -> "0.1"."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _table_objects(rows: pd.DataFrame, metadata: list[str]) -> pd.DataFrame:
    number = (rows.groupby("image", sort=False).cumcount() + 1).astype(str)
    given = rows["id"] if "id" in rows.columns else pd.Series("", index=rows.index, dtype=object)
    named = given != ""
    objects = pd.DataFrame({
        "id": given.where(named, derived_ids(rows[~named]).reindex(rows.index)).astype(object),
        "image_id": rows["image"], "label": rows["label"],
        **{c: rows[c] for c in BOX},
        "tags": rows["tags"], "_crowd": False, "_source": rows["_source"],
        "_display": rows["image"] + " #" + given.where(named, number),
    })
    check_unique(objects["id"], rows["_source"].__getitem__, "object id", "ids must be unique")
    return pd.concat([objects, rows[metadata]], axis=1)
