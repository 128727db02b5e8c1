"""Detection dev sets: a COCO instances JSON, or a table with one row per object.

Both become a `Dataset` whose units are the non-crowd ground-truth objects (what recall
counts). Crowd boxes come back apart: matching lets predictions fall on them without counting
a false positive, but no one is expected to find a crowd, so they are not units.

Internal columns start with "_"; metadata keys that do (or that are named like a column erran
computes, e.g. `label`) are dropped so they can never hide erran's own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .dataset import Dataset, _check_images_exist, _select_split, _split_tags, file_sha256
from .errors import ErranError
from .tables import read_table

BOX = ["x1", "y1", "x2", "y2"]
CROWD_COLUMNS = ["_image_index", "label", *BOX]
# Computed for every object: metadata of these names is dropped.
UNIT_COLUMNS = {"id", "image_id", "label", *BOX, "edge_distance", "area_fraction", "tags", "image"}
COCO_IMAGE_KEYS = {"id", "file_name", "image", "width", "height", "tags", "attributes"}
COCO_OBJECT_KEYS = {"image_id", "category_id", "bbox", "iscrowd", "attributes"} | UNIT_COLUMNS
TABLE_TEXT = ("id", "image", "label", "tags", "split")
TABLE_KEYS = {"id", "image", "label", *BOX, "tags", "width", "height", "_source"}


def load_detection(path: Path, split: str) -> tuple[Dataset, tuple[str, ...], pd.DataFrame]:
    """(dataset, class names, crowd boxes) of a COCO JSON (.json) or an object table.

    Classes: COCO category names by category id; for a table, its sorted non-empty labels.
    Crowd: one row per crowd box of an evaluated image, columns _image_index, label, x1..y2.
    """
    if path.suffix.lower() == ".json":
        images, objects, classes, category_ids = _coco(path)
    else:
        images, objects, classes = _table(path)
        category_ids = {name: i + 1 for i, name in enumerate(classes)}  # documented: 1..C
    everything = images[["id", "image"]]
    if images.empty:
        raise ErranError(f"{path}: the dev set has no images; add images (and their objects)")
    images = _select_split(images, path, split).reset_index(drop=True)
    base = path.parent.resolve()
    # normpath rather than Path.resolve: no system call per image (100k images load in seconds).
    images["_path"] = [os.path.normpath(os.path.join(base, image)) for image in images["image"]]
    _check_images_exist(images)
    _fill_sizes(images)
    units, crowd = _units(images, objects)
    dataset = Dataset(path=path, task="detection", images=images, units=units,
                      sha256=file_sha256(path), all_ids=set(everything["id"]),
                      all_images=set(everything["image"]), category_ids=category_ids)
    return dataset, classes, crowd


def map_categories(categories: list, mapping: dict, sources: list[str], problem: str) -> pd.Series:
    """category_id of each record through `mapping`; one not in it is an error naming its record."""
    mapped = pd.Series(categories, dtype=object).map(mapping)
    unknown = np.flatnonzero(mapped.isna().to_numpy())
    if len(unknown):
        raise ErranError(f"{sources[unknown[0]]}: category_id {categories[unknown[0]]!r} {problem}")
    return mapped


def coco_boxes(bboxes: list, sources: Callable[[int], str], what: str) -> np.ndarray:
    """COCO [x, y, width, height] lists -> [N, 4] x1y1x2y2, or an error naming the entry."""
    try:
        xywh = np.array(bboxes, dtype=float) if bboxes else np.zeros((0, 4))
        shaped = xywh.shape == (len(bboxes), 4)
    except (TypeError, ValueError):
        shaped = False
    if not shaped:  # ragged or not numbers: find the culprit, one box at a time
        for i, box in enumerate(bboxes):
            try:
                fine = np.shape(np.array(box, dtype=float)) == (4,)
            except (TypeError, ValueError):
                fine = False
            if not fine:
                raise ErranError(f"{sources(i)}: bbox {box!r} is not 4 numbers; {what} boxes "
                                 "are [x, y, width, height]")
    bad = np.flatnonzero(~np.isfinite(xywh).all(axis=1))
    if len(bad):
        raise ErranError(f"{sources(bad[0])}: bbox {bboxes[bad[0]]!r} holds a missing or "
                         "non-finite number; give 4 numbers [x, y, width, height]")
    negative = np.flatnonzero((xywh[:, 2] < 0) | (xywh[:, 3] < 0))
    if len(negative):
        raise ErranError(f"{sources(negative[0])}: bbox {bboxes[negative[0]]!r} has a negative "
                         "width or height; COCO boxes are [x, y, width, height], not corners")
    return np.column_stack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]])


# --- COCO -------------------------------------------------------------------------------------

def _coco(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, tuple[str, ...], dict[str, int]]:
    data = _read_json(path)
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


def _read_json(path: Path):
    if not path.is_file():
        raise ErranError(f"{path}: no such file; check `data` in the config")
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ErranError(f"{path} line {e.lineno} column {e.colno}: not valid JSON: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise ErranError(f"{path}: not UTF-8 text: {e}") from None


def _categories(path: Path, records: list) -> tuple[tuple[str, ...], dict]:
    """Class names in category id order, and category id -> name."""
    _check_records(path, records, "category", ("id", "name"))
    ids = [r["id"] for r in records]
    for i, category_id in enumerate(ids):
        if not isinstance(category_id, int) or isinstance(category_id, bool):
            raise ErranError(f"{path.name} categories[{i}]: id {category_id!r} must be an integer")
    _check_unique(pd.Series(ids), lambda i: f"{path.name} categories[{i}]", "category")
    names = pd.Series([str(r["name"]) for r in sorted(records, key=lambda r: r["id"])])
    if names.duplicated().any():
        raise ErranError(f"{path}: two categories are named '{names[names.duplicated()].iloc[0]}'; "
                         "class names must be unique")
    return tuple(names), {r["id"]: str(r["name"]) for r in records}


def _coco_images(path: Path, records: list) -> pd.DataFrame:
    _check_records(path, records, "image", ("id", "file_name"))
    frame = _metadata(records, COCO_IMAGE_KEYS)
    frame.insert(0, "id", [str(r["id"]) for r in records])
    frame.insert(1, "image", [str(r["file_name"]) for r in records])
    frame["_source"] = [f"{path.name} image {i}" for i in frame["id"]]
    frame["width"] = [r.get("width") for r in records]
    frame["height"] = [r.get("height") for r in records]
    frame["tags"] = [_tags(r.get("tags")) for r in records]
    _check_unique(frame["id"], lambda i: f"{path.name} images[{i}]", "image")
    return frame


def _coco_objects(path: Path, records: list, images: pd.DataFrame, name_of: dict) -> pd.DataFrame:
    _check_records(path, records, "annotation", ("id", "image_id", "category_id", "bbox"))
    ids = pd.Series([str(r["id"]) for r in records], dtype=object)
    _check_unique(ids, lambda i: f"{path.name} annotations[{i}]", "annotation")
    sources = (f"{path.name} annotation " + ids).tolist()
    image_ids = pd.Series([str(r["image_id"]) for r in records], dtype=object)
    file_of = pd.Series(images["image"].to_numpy(), index=images["id"])
    files = file_of.reindex(image_ids).to_numpy(object)
    unknown = np.flatnonzero(pd.isna(files))
    if len(unknown):
        raise ErranError(f"{sources[unknown[0]]}: image_id {image_ids[unknown[0]]} is not an image "
                         "of the file; fix the annotation or add the image to 'images'")
    labels = map_categories([r["category_id"] for r in records], name_of, sources,
                            f"is not in 'categories' (ids {sorted(name_of)}); fix it or add the category")
    boxes = coco_boxes([r["bbox"] for r in records], sources.__getitem__, "COCO")
    core = pd.DataFrame({
        "id": ids, "image_id": image_ids, "label": labels.astype(object),
        **{name: boxes[:, k] for k, name in enumerate(BOX)},
        "tags": [_tags(r.get("tags")) for r in records],
        "_crowd": np.array([bool(r.get("iscrowd", 0)) for r in records], dtype=bool),
        "_source": sources, "_display": files + " #" + ids.to_numpy(),
    })
    return pd.concat([core, _metadata(records, COCO_OBJECT_KEYS)], axis=1)


def _check_records(path: Path, records: list, what: str, required: tuple[str, ...]) -> None:
    plural = "categories" if what == "category" else what + "s"
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
    frame = pd.DataFrame.from_records(records).reindex(range(len(records)))
    attributes = [r.get("attributes") for r in records]
    if any(isinstance(a, dict) and a for a in attributes):
        flat = pd.DataFrame.from_records([a if isinstance(a, dict) else {} for a in attributes])
        flat = flat.reindex(range(len(records)))
        frame = pd.concat([frame, flat.drop(columns=[c for c in flat if c in frame])], axis=1)
    return frame[[c for c in frame.columns if _is_metadata(frame[c], reserved)]]


def _is_metadata(column: pd.Series, reserved: set[str]) -> bool:
    name = column.name
    if not isinstance(name, str) or name in reserved or name.startswith("_"):
        return False
    # Lists and dicts (segmentation, keypoints) cannot be compared in a `where` expression.
    return column.dtype != object or not column.map(lambda v: isinstance(v, (list, dict))).any()


def _tags(value) -> tuple[str, ...]:
    """COCO tags: a list, or one ";"-separated string as in tables."""
    if value is None or (isinstance(value, float) and value != value):
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(t) for t in value)
    return tuple(t.strip() for t in str(value).split(";") if t.strip())


def _check_unique(ids: pd.Series, where: Callable[[int], str], what: str) -> None:
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        first = duplicated.iloc[0]
        rows = duplicated.index[duplicated == first]
        raise ErranError(f"{where(rows[0])} and {where(rows[1])}: {what} id '{first}' appears "
                         "twice; ids must be unique")


# --- Tables -----------------------------------------------------------------------------------

def _table(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, tuple[str, ...]]:
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
    frame["tags"] = _split_tags(frame["tags"]) if "tags" in frame.columns else [()] * len(frame)
    metadata = [c for c in frame.columns if _is_metadata(frame[c], TABLE_KEYS)]
    images = _table_images(path, frame, metadata)
    objects = _table_objects(frame[is_object].reset_index(drop=True), metadata)
    classes = tuple(sorted(set(objects["label"])))
    return images, objects, classes


def _table_boxes(frame: pd.DataFrame, is_object: np.ndarray) -> None:
    """Coordinates as floats: numbers for objects, empty for an image-without-objects row."""
    for column in BOX:
        raw = frame[column]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(float)
        bad = np.flatnonzero(is_object & ~np.isfinite(values))
        if len(bad):
            raise ErranError(f"{frame['_source'][bad[0]]}: {column} = {raw[bad[0]]!r} is not a "
                             "number; every object needs numeric x1, y1, x2, y2")
        given = ~(raw.isna() | (raw.astype(str).str.strip() == "")).to_numpy()
        stray = np.flatnonzero(~is_object & given)
        if len(stray):
            raise ErranError(f"{frame['_source'][stray[0]]}: a box without a label; give the "
                             "label, or leave x1..y2 empty for an image without objects")
        frame[column] = values
    for low, high in (("x1", "x2"), ("y1", "y2")):
        inverted = np.flatnonzero((frame[high] < frame[low]).to_numpy())
        if len(inverted):
            row = inverted[0]
            raise ErranError(f"{frame['_source'][row]}: {high} ({frame[high][row]}) < {low} "
                             f"({frame[low][row]}); boxes are corners x1, y1, x2, y2, "
                             "not x, y, width, height")


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
    values = pd.to_numeric(frame[column], errors="coerce")
    given = ~(frame[column].isna() | (frame[column].astype(str).str.strip() == ""))
    bad = np.flatnonzero((given & values.isna()).to_numpy())
    if len(bad):
        raise ErranError(f"{frame['_source'][bad[0]]}: {column} = {frame[column][bad[0]]!r} is not "
                         "a number; give the image size in pixels, or leave it empty to read it "
                         "from the image")
    return values


def _table_objects(rows: pd.DataFrame, metadata: list[str]) -> pd.DataFrame:
    number = (rows.groupby("image", sort=False).cumcount() + 1).astype(str)
    given = rows["id"] if "id" in rows.columns else pd.Series("", index=rows.index, dtype=object)
    named = given != ""
    objects = pd.DataFrame({
        "id": given.where(named, rows["image"] + "#" + number).astype(object),
        "image_id": rows["image"], "label": rows["label"],
        **{c: rows[c] for c in BOX},
        "tags": rows["tags"], "_crowd": False, "_source": rows["_source"],
        "_display": rows["image"] + " #" + given.where(named, number),
    })
    _check_unique(objects["id"], rows["_source"].__getitem__, "object")
    return pd.concat([objects, rows[metadata]], axis=1)


# --- Both -------------------------------------------------------------------------------------

def _fill_sizes(images: pd.DataFrame) -> None:
    """width and height as floats; those not given are read from the image's header."""
    for column in ("width", "height"):
        given = images[column] if column in images.columns else pd.Series(np.nan, index=images.index)
        values = pd.to_numeric(given, errors="coerce")
        bad = np.flatnonzero((given.notna() & values.isna()).to_numpy())
        if len(bad):
            raise ErranError(f"{images['_source'][bad[0]]}: {column} {given[bad[0]]!r} is not a "
                             "number; give the image size in pixels")
        images[column] = values.astype(float)
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
