"""COCO instances JSON -> images and objects tables, class names and category ids."""

from __future__ import annotations

import itertools
import operator
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import ErranError
from ...tables import read_json
from ..dataset import check_unique, is_metadata, parse_tags
from .boxes import BOX, UNIT_COLUMNS, coco_boxes

COCO_IMAGE_KEYS = {"id", "file_name", "image", "width", "height", "tags", "attributes"}


COCO_OBJECT_KEYS = {"image_id", "category_id", "bbox", "iscrowd", "attributes"} | UNIT_COLUMNS


def map_categories(categories: list, mapping: dict, sources: list[str], problem: str) -> pd.Series:
    """category_id of each record through `mapping`; one not in it is an error naming its record.
    A boolean is refused: JSON `true` would otherwise equal category 1."""
    flag = next((i for i, c in enumerate(categories) if isinstance(c, bool)), None)
    if flag is not None:
        raise ErranError(f"{sources[flag]}: category_id {str(categories[flag]).lower()} is a boolean; "
                         "give the category's integer id")
    mapped = pd.Series(categories, dtype=object).map(mapping)
    unknown = np.flatnonzero(mapped.isna().to_numpy())
    if len(unknown):
        raise ErranError(f"{sources[unknown[0]]}: category_id {categories[unknown[0]]!r} {problem}")
    return mapped


def read_coco(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, tuple[str, ...], dict[str, int]]:
    data = read_json(path, "`data` in the config")
    if not isinstance(data, dict):
        raise ErranError(f"{path}: expected a COCO object with images, annotations and "
                         "categories; for one object per line use a .jsonl table")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ErranError(f"{path}: no '{key}' list; a COCO instances file has 'images', "
                             "'annotations' and 'categories'")
    classes, name_of = _categories(path, data["categories"])
    images = _coco_images(path, data["images"])
    objects = _coco_objects(path, data["annotations"], images, name_of)
    return images, objects, classes, {name: category_id for category_id, name in name_of.items()}


def _categories(path: Path, records: list) -> tuple[tuple[str, ...], dict]:
    """Class names in category id order, and category id -> name."""
    _check_records(path, records, "category", ("id", "name"))
    ids = column(records, "id")
    for i, category_id in enumerate(ids):
        if not isinstance(category_id, int) or isinstance(category_id, bool):
            raise ErranError(f"{path.name} categories[{i}]: id {category_id!r} must be an integer")
    check_unique(pd.Series(ids), lambda i: f"{path.name} categories[{i}]", "category id", "ids must be unique")
    names = pd.Series([str(r["name"]) for r in sorted(records, key=lambda r: r["id"])])
    if names.duplicated().any():
        raise ErranError(f"{path}: two categories are named '{names[names.duplicated()].iloc[0]}'; "
                         "class names must be unique")
    return tuple(names), {r["id"]: str(r["name"]) for r in records}


def _coco_images(path: Path, records: list) -> pd.DataFrame:
    _check_records(path, records, "image", ("id", "file_name"))
    frame = _metadata(records, COCO_IMAGE_KEYS)
    frame.insert(0, "id", list(map(str, column(records, "id"))))
    frame.insert(1, "image", list(map(str, column(records, "file_name"))))
    frame["_source"] = [f"{path.name} image {i}" for i in frame["id"]]
    frame["width"] = [r.get("width") for r in records]
    frame["height"] = [r.get("height") for r in records]
    frame["tags"] = [parse_tags(r.get("tags")) for r in records]
    check_unique(frame["id"], lambda i: f"{path.name} images[{i}]", "image id", "ids must be unique")
    return frame


def _coco_objects(path: Path, records: list, images: pd.DataFrame, name_of: dict) -> pd.DataFrame:
    _check_records(path, records, "annotation", ("id", "image_id", "category_id", "bbox"))
    ids = pd.Series(list(map(str, column(records, "id"))), dtype=object)
    check_unique(ids, lambda i: f"{path.name} annotations[{i}]", "annotation id", "ids must be unique")
    sources = (f"{path.name} annotation " + ids).tolist()
    image_ids = pd.Series(list(map(str, column(records, "image_id"))), dtype=object)
    file_of = pd.Series(images["image"].to_numpy(), index=images["id"])
    files = file_of.reindex(image_ids).to_numpy(object)
    unknown = np.flatnonzero(pd.isna(files))
    if len(unknown):
        raise ErranError(f"{sources[unknown[0]]}: image_id {image_ids[unknown[0]]} is not an image "
                         "of the file; fix the annotation or add the image to 'images'")
    labels = map_categories(column(records, "category_id"), name_of, sources,
                            f"is not in 'categories' (ids {sorted(name_of)}); fix it or add the category")
    boxes = coco_boxes(column(records, "bbox"), sources.__getitem__, "COCO")
    flat = np.flatnonzero((boxes[:, 2] == boxes[:, 0]) | (boxes[:, 3] == boxes[:, 1]))
    if len(flat):  # no prediction can reach IoU 0.5 with it: a permanent miss
        row = flat[0]
        raise ErranError(f"{sources[row]}: bbox {records[row]['bbox']!r} has zero width or height; "
                         "give the object's [x, y, width, height]")
    tags = [parse_tags(r.get("tags")) for r in records] if any_has(records, "tags") else [()] * len(records)
    crowd = np.array([r.get("iscrowd", 0) for r in records], dtype=object).astype(bool)
    metadata = _metadata(records, COCO_OBJECT_KEYS)
    records.clear()  # the parsed JSON objects (most of the memory a million annotations take) go now
    core = pd.DataFrame({
        "id": ids, "image_id": image_ids, "label": labels.astype(object),
        **{name: boxes[:, k] for k, name in enumerate(BOX)},
        "tags": tags, "_crowd": crowd, "_source": sources, "_display": files + " #" + ids.to_numpy(),
    })
    return pd.concat([core, metadata], axis=1)


def column(records: list, key: str) -> list:
    """record[key] of every record, in a C loop (the records were checked to hold it)."""
    return list(map(operator.itemgetter(key), records))


def any_has(records: list, key: str) -> bool:
    return any(map(operator.contains, records, itertools.repeat(key)))


def all_have(records: list, keys: tuple[str, ...]) -> bool:
    """Every record is a dict holding every key (map over C functions: 100k records in ms)."""
    return set(map(type, records)) <= {dict} and all(
        all(map(operator.contains, records, itertools.repeat(key))) for key in keys)


def _check_records(path: Path, records: list, what: str, required: tuple[str, ...]) -> None:
    plural = "categories" if what == "category" else what + "s"
    if all_have(records, required):
        return  # the usual case, checked in C loops; else find the first culprit below
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ErranError(f"{path.name} {plural}[{i}]: expected a JSON object, "
                             f"got {type(record).__name__}")
        missing = [key for key in required if key not in record]
        if missing:
            where = f"{path.name} {plural}[{i}]" + (f" (id {record['id']})" if "id" in record else "")
            raise ErranError(f"{where}: no {', '.join(missing)}; every COCO {what} needs "
                             f"{', '.join(required)}")


def _metadata(records: list[dict], reserved: set[str]) -> pd.DataFrame:
    """Extra scalar keys as columns, the keys of an `attributes` dict flattened in beside them
    (a top-level key wins over an attribute of the same name)."""
    keys: dict = dict.fromkeys(records[0]) if records else {}
    if not all(map(keys.keys().__eq__, map(dict.keys, records))):  # not all alike: every key,
        for record in records:  # in order of first appearance (as from_records orders them)
            keys.update(dict.fromkeys(record))
    wanted = [k for k in keys if isinstance(k, str) and k not in reserved and not k.startswith("_")]
    frame = pd.DataFrame({k: [r.get(k, np.nan) for r in records] for k in wanted}, index=range(len(records)))
    if "attributes" not in keys:
        return frame[[c for c in frame.columns if is_metadata(frame[c], reserved)]]
    attributes = [r.get("attributes") for r in records]
    if any(isinstance(a, dict) and a for a in attributes):
        flat = pd.DataFrame.from_records([a if isinstance(a, dict) else {} for a in attributes])
        flat = flat.reindex(range(len(records)))
        frame = pd.concat([frame, flat.drop(columns=[c for c in flat if c in frame])], axis=1)
    return frame[[c for c in frame.columns if is_metadata(frame[c], reserved)]]
