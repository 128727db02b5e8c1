"""Detections made elsewhere: a COCO results JSON, or a table with one row per predicted box.

Rows for images of other splits are dropped (one predictions file may cover every split);
images without any prediction are fine: all of their objects are then missed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import ErranError
from ...tables import Unsplittable, is_blank, json_list_chunks, numbers, read_json, read_table
from ..dataset import normalise
from .boxes import BOX, coco_boxes
from .coco import all_have, column, map_categories


def read_detections(path: Path, images: pd.DataFrame, classes: tuple[str, ...],
                    all_ids: set[str], all_images: set[str],
                    category_ids: list[int] | None = None) -> dict[str, np.ndarray]:
    """{"image": row in `images` [P], "label": class index [P], "box": x1y1x2y2 [P, 4],
    "score": [P]} for the predictions of the evaluated images.

    `category_ids` are the COCO category ids in class order (a COCO results file names classes
    by id); by default 1..C, the ids of a table dev set's classes in sorted order.
    """
    if path.suffix.lower() == ".json":
        ids = list(range(1, len(classes) + 1)) if category_ids is None else list(category_ids)
        keys, key, label, box, score, sources = _coco_results(path, ids)
    else:
        keys, key, label, box, score, sources = _table(path, classes)
    image = _image_rows(path, keys, key, images, all_ids, all_images, sources)
    kept = image >= 0
    return {"image": image[kept], "label": label[kept], "box": box[kept], "score": score[kept]}


def _coco_results(path: Path, category_ids: list[int]):
    """A list of {image_id, category_id, bbox [x, y, w, h], score}, as COCO's loadRes takes;
    a large file is turned into columns chunk by chunk (tables.json_list_chunks)."""
    index_of = {category: i for i, category in enumerate(category_ids)}
    chunks = json_list_chunks(path)
    parts = []
    if chunks is not None:
        try:
            offset = 0
            for chunk in chunks:
                parts.append(_result_columns(path, chunk, index_of, category_ids, offset))
                offset += len(chunk)
        except Unsplittable:
            parts = []
            chunks = None
    if chunks is None:
        parts = [_result_columns(path, _read_json(path), index_of, category_ids, 0)]
    keys = pd.Series([k for part in parts for k in part[0]], dtype=object)
    label, box, score = (np.concatenate([part[i] for part in parts]) for i in (1, 2, 3))
    return keys, "image_id", label, box.reshape(-1, 4), score, Locations(path.name, len(keys))


def _result_columns(path: Path, entries: list, index_of: dict, category_ids: list[int], offset: int):
    """(image_id keys, class index, x1y1x2y2 boxes, scores) of entries[offset:] of the file."""
    sources = Locations(path.name, len(entries), offset)
    keys = ("image_id", "category_id", "bbox", "score")
    if not all_have(entries, keys):
        for source, entry in zip(sources, entries):  # the first culprit, found one entry at a time
            if not isinstance(entry, dict):
                raise ErranError(f"{source}: expected a JSON object, got {type(entry).__name__}")
            missing = [k for k in keys if k not in entry]
            if missing:
                raise ErranError(f"{source}: no {', '.join(missing)}; every detection needs "
                                 "image_id, category_id, bbox [x, y, width, height] and score")
    label = map_categories(column(entries, "category_id"), index_of, sources,
                           f"is not a category of the dev set (ids {category_ids})")
    box = coco_boxes(column(entries, "bbox"), sources.__getitem__, "COCO result")
    score = numbers(pd.Series(column(entries, "score"), dtype=object), sources,
                    "{source}: score {value!r} is not a number")
    image_ids = list(map(str, column(entries, "image_id")))
    return image_ids, label.to_numpy(np.int64), box, score


class Locations:
    """"preds.json[7]" for entry 7, made only when an error needs it (150k entries are common)."""

    def __init__(self, name: str, count: int, offset: int = 0):
        self.name, self.count, self.offset = name, count, offset

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> str:
        if not 0 <= i < self.count:
            raise IndexError(i)
        return f"{self.name}[{self.offset + int(i)}]"


def _read_json(path: Path) -> list:
    data = read_json(path, "the predictions path")
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        return data["annotations"]  # some tools wrap the results list in a COCO-like object
    if not isinstance(data, list):
        raise ErranError(f"{path}: expected a COCO results list of {{image_id, category_id, bbox, "
                         "score}} objects")
    return data


def _table(path: Path, classes: tuple[str, ...]):
    """One row per box: image (or image_id), label, score, x1, y1, x2, y2. A row with an empty
    label and no box stands for an image without predictions and is skipped."""
    table, sources = read_table(path, ("image", "image_id", "label"))
    key = "image_id" if "image_id" in table.columns else "image"
    missing = [c for c in (key, "label", "score", *BOX) if c not in table.columns]
    if missing:
        raise ErranError(f"{path}: no {', '.join(missing)} column (columns: "
                         f"{', '.join(map(str, table.columns))}); a detections table has image "
                         "(or image_id), label, score, x1, y1, x2, y2")
    boxed = ~is_blank(table[BOX]).all(axis=1)
    empty = (table["label"] == "").to_numpy()
    if (empty & boxed).any():
        raise ErranError(f"{sources[np.flatnonzero(empty & boxed)[0]]}: a box without a label; "
                         f"every prediction needs one of {list(classes)}")
    table, sources = table[~empty].reset_index(drop=True), [s for s, e in zip(sources, empty) if not e]
    label = pd.Index(classes).get_indexer(table["label"])
    unknown = np.flatnonzero(label < 0)
    if len(unknown):
        raise ErranError(f"{sources[unknown[0]]}: label '{table['label'][unknown[0]]}' is not one of "
                         f"the classes {list(classes)}")
    box = np.column_stack([numbers(table[c], sources, f"{{source}}: {c} {{value!r}} is not a number")
                           for c in BOX]).reshape(-1, 4)
    inverted = np.flatnonzero((box[:, 2] < box[:, 0]) | (box[:, 3] < box[:, 1]))
    if len(inverted):
        raise ErranError(f"{sources[inverted[0]]}: x2 < x1 or y2 < y1; boxes are corners "
                         "x1, y1, x2, y2, not x, y, width, height")
    score = numbers(table["score"], sources, "{source}: score {value!r} is not a number")
    return table[key], key, label.astype(np.int64), box, score, sources


def _image_rows(path: Path, keys: pd.Series, key: str, images: pd.DataFrame, all_ids: set[str],
                all_images: set[str], sources: list[str]) -> np.ndarray:
    """Row in `images` of each prediction; -1 for an image of another split."""
    if key == "image_id":
        evaluated, known = images["id"], all_ids
    else:  # paths as the dev set writes them, up to "./" and backslashes
        evaluated, known = images["image"].map(normalise), {normalise(p) for p in all_images}
        keys = keys.map(normalise)
        if evaluated.duplicated().any():
            raise ErranError(f"{path}: several dev images share the file "
                             f"'{evaluated[evaluated.duplicated()].iloc[0]}', so an `image` column "
                             "cannot tell them apart; name images by `image_id` instead")
    rows = pd.Index(evaluated).get_indexer(keys)
    unknown = np.flatnonzero((rows < 0) & ~keys.isin(known).to_numpy())
    if len(unknown):
        raise ErranError(f"{sources[unknown[0]]}: {key} '{keys.iloc[unknown[0]]}' is not in the dev "
                         "set; write the image as the dev set does")
    return rows.astype(np.int64)
