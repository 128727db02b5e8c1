"""Detection dev sets (COCO JSON and object tables) and detection predictions files."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pytest_erran.tasks.detection.data import load_detection
from pytest_erran.tasks.detection.predictions_file import read_detections
from pytest_erran.errors import ErranError


def png(path, size=(100, 50)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def coco(tmp_path, *, images=None, annotations=None, categories=None, name="dev.json"):
    images = images if images is not None else [
        {"id": 1, "file_name": "images/a.png", "width": 100, "height": 50, "lighting": "low"},
        {"id": 2, "file_name": "images/b.png", "width": 100, "height": 50, "lighting": "normal"},
    ]
    annotations = annotations if annotations is not None else [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 10], "area": 200.0,
         "segmentation": [[10, 5, 30, 5, 30, 15]], "attributes": {"severity": "severe"}},
        {"id": 11, "image_id": 1, "category_id": 2, "bbox": [0, 0, 100, 50], "iscrowd": 1},
        {"id": 12, "image_id": 2, "category_id": 2, "bbox": [90, 40, 10, 10], "lighting": "flash",
         "tags": ["edge"]},
    ]
    categories = categories if categories is not None else [
        {"id": 2, "name": "dent"}, {"id": 1, "name": "scratch"},
    ]
    for image in images:
        if "file_name" in image and not (tmp_path / image["file_name"]).exists():
            png(tmp_path / image["file_name"])
    path = tmp_path / name
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))
    return path


# --- COCO -------------------------------------------------------------------------------------

def test_coco_units_images_and_crowd(tmp_path):
    dataset = load_detection(coco(tmp_path), "dev")
    classes = dataset.classes
    crowd = dataset.crowd
    assert classes == ("scratch", "dent")  # by category id, not file order
    images, units = dataset.images, dataset.units
    assert images["id"].tolist() == ["1", "2"]
    assert images["image"].tolist() == ["images/a.png", "images/b.png"]
    assert images["_path"].tolist() == [str((tmp_path / "images" / n).resolve()) for n in ("a.png", "b.png")]
    assert images["_source"].tolist() == ["dev.json image 1", "dev.json image 2"]
    assert images["lighting"].tolist() == ["low", "normal"]
    assert images["tags"].tolist() == [(), ()]

    assert units["id"].tolist() == ["10", "12"]  # the crowd box is not a unit
    assert units["image_id"].tolist() == ["1", "2"]
    assert units["label"].tolist() == ["scratch", "dent"]
    assert units[["x1", "y1", "x2", "y2"]].to_numpy().tolist() == [[10, 5, 30, 15], [90, 40, 100, 50]]
    assert units["_image_index"].tolist() == [0, 1]
    assert units["_source"].tolist() == ["dev.json annotation 10", "dev.json annotation 12"]
    assert units["_display"].tolist() == ["images/a.png #10", "images/b.png #12"]
    assert units["tags"].tolist() == [(), ("edge",)]
    assert units["severity"].tolist()[0] == "severe"  # flattened from `attributes`
    assert pd.isna(units["severity"].tolist()[1])
    assert units["area"].tolist()[0] == 200.0 and pd.isna(units["area"].tolist()[1])
    assert units["lighting"].tolist() == ["low", "flash"]  # image's value, unless the object has one
    assert units["image"].tolist() == ["images/a.png", "images/b.png"]
    assert "segmentation" not in units.columns and "attributes" not in units.columns

    assert crowd.columns.tolist() == ["_image_index", "label", "x1", "y1", "x2", "y2"]
    assert crowd.to_numpy().tolist() == [[0, "dent", 0.0, 0.0, 100.0, 50.0]]
    assert dataset.all_ids == {"1", "2"}
    assert dataset.all_images == {"images/a.png", "images/b.png"}
    assert len(dataset.sha256) == 64


def test_geometry_by_hand(tmp_path):
    dataset = load_detection(coco(tmp_path), "dev")
    units = dataset.units
    # a: box 10..30 x 5..15 in 100 x 50: min(10/100, 5/50, 70/100, 35/50) = 0.1, 200 / 5000
    # b: box 90..100 x 40..50: touches the right and bottom edges
    assert units["edge_distance"].tolist() == pytest.approx([0.1, 0.0])
    assert units["area_fraction"].tolist() == pytest.approx([200 / 5000, 100 / 5000])


def test_coco_split_filtering(tmp_path):
    images = [
        {"id": 1, "file_name": "a.png", "width": 100, "height": 50, "split": "dev"},
        {"id": 2, "file_name": "b.png", "width": 100, "height": 50, "split": "train"},
    ]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 5, 5]},
    ]
    path = coco(tmp_path, images=images, annotations=annotations)
    (tmp_path / "b.png").unlink()  # images of other splits need not exist
    dataset = load_detection(path, "dev")
    assert dataset.images["id"].tolist() == ["1"]
    assert dataset.units["id"].tolist() == ["1"]
    assert dataset.all_ids == {"1", "2"}
    with pytest.raises(ErranError, match="splits found: dev, train"):
        load_detection(path, "test")


def test_coco_size_read_from_image_when_missing(tmp_path):
    images = [{"id": 1, "file_name": "a.png"}]
    png(tmp_path / "a.png", size=(40, 20))
    path = coco(tmp_path, images=images, annotations=[])
    dataset = load_detection(path, "dev")
    assert dataset.images[["width", "height"]].to_numpy().tolist() == [[40, 20]]
    assert dataset.units.empty


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("annotations"), "no 'annotations' list"),
    (lambda d: d["annotations"][0].pop("bbox"), r"annotations\[0\] \(id 10\): no bbox"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4]), "annotation 10: .*negative width"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, "x", 4]), "annotation 10: .*not 4 numbers"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "annotation 10: .*not 4 numbers"),
    (lambda d: d["annotations"][2].update(bbox=[[1, 2], [3, 4]]), "annotation 12: .*not 4 numbers"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, None, 4]), "annotation 10: .*non-finite"),
    (lambda d: d["annotations"][0].update(image_id=99), "annotation 10: image_id 99 is not an image"),
    (lambda d: d["annotations"][0].update(category_id=7), "annotation 10: category_id 7 is not in"),
    (lambda d: d["annotations"][1].update(id=10), r"annotations\[0\] and .*annotations\[1\]: "
                                                  "annotation id '10' appears twice"),
    (lambda d: d["images"][1].update(id=1), "image id '1' appears twice"),
    (lambda d: d["categories"][1].update(id=2), "category id '2' appears twice"),
    (lambda d: d["categories"][1].update(name="dent"), "two categories are named 'dent'"),
    (lambda d: d["images"][0].update(file_name="missing.png"), "dev.json image 1: image .*missing.png does not exist"),
    (lambda d: d["images"][0].update(width=0), "dev.json image 1: width = 0, but images/a.png is 100 x 50 pixels"),
    (lambda d: d["images"][0].update(width="wide"), "dev.json image 1: width 'wide' is not a number"),
    (lambda d: d.update(images=[], annotations=[]), "no images"),
])
def test_coco_errors(tmp_path, change, message):
    path = coco(tmp_path)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ErranError, match=message):
        load_detection(path, "dev")


def test_coco_invalid_json(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text('{"images": [\n  {"id": 1,}\n]}')
    with pytest.raises(ErranError, match=r"dev.json line 2 column 12: not valid JSON"):
        load_detection(path, "dev")


# --- Tables -----------------------------------------------------------------------------------

def table(tmp_path, rows, name="objects.csv"):
    frame = pd.DataFrame(rows)
    for image in frame["image"].unique():
        if not (tmp_path / image).exists():
            png(tmp_path / image, size=(200, 100))
    path = tmp_path / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


OBJECTS = [
    {"image": "a.png", "label": "scratch", "x1": 10, "y1": 10, "x2": 30, "y2": 20,
     "lighting": "low", "severity": "minor", "tags": "night;severe"},
    {"image": "a.png", "label": "dent", "x1": 0, "y1": 50, "x2": 100, "y2": 100,
     "lighting": "low", "severity": "severe", "tags": "night"},
    {"image": "b.png", "label": "", "x1": "", "y1": "", "x2": "", "y2": "",
     "lighting": "normal", "severity": "", "tags": ""},
]


@pytest.mark.parametrize("name", ["objects.csv", "objects.jsonl"])
def test_table_loading(tmp_path, name):
    dataset = load_detection(table(tmp_path, OBJECTS, name), "dev")
    crowd = dataset.crowd
    assert dataset.classes is None  # a table defines no class order: `classes` in the config does
    assert dataset.category_ids == {"dent": 1, "scratch": 2}  # for COCO results: 1..C, sorted
    images, units = dataset.images, dataset.units
    assert images["id"].tolist() == ["a.png", "b.png"]  # b.png has no objects but is evaluated
    assert images[["width", "height"]].to_numpy().tolist() == [[200, 100], [200, 100]]  # from PIL
    assert images["lighting"].tolist() == ["low", "normal"]  # the same on all of an image's rows
    assert "severity" not in images.columns  # differs between a.png's objects: object-level
    assert images["tags"].tolist() == [("night",), ()]
    first_line = 2 if name.endswith(".csv") else 1  # after the CSV header
    assert images["_source"].tolist() == [f"{name} line {first_line}", f"{name} line {first_line + 2}"]

    # no `id` column: image, box and label, so that editing another row never changes an id
    assert units["id"].tolist() == ["a.png#10,10,30,20#scratch", "a.png#0,50,100,100#dent"]
    assert units["_display"].tolist() == ["a.png #1", "a.png #2"]
    assert units["label"].tolist() == ["scratch", "dent"]
    assert units["severity"].tolist() == ["minor", "severe"]
    assert units["tags"].tolist() == [("night", "severe"), ("night",)]
    assert units["_image_index"].tolist() == [0, 0]
    # scratch: min(10/200, 10/100, 170/200, 80/100) = 0.05; 20 * 10 / 20000
    # dent: touches the bottom edge; 100 * 50 / 20000
    assert units["edge_distance"].tolist() == pytest.approx([0.05, 0.0])
    assert units["area_fraction"].tolist() == pytest.approx([0.01, 0.25])
    assert crowd.empty and crowd.columns.tolist() == ["_image_index", "label", "x1", "y1", "x2", "y2"]
    assert dataset.all_images == {"a.png", "b.png"}


def test_table_ids_split_and_sizes(tmp_path):
    rows = [
        {"image": "a.png", "label": "dent", "x1": 0, "y1": 0, "x2": 1, "y2": 1, "id": "d1",
         "split": "dev", "width": 400, "height": 300},
        {"image": "a.png", "label": "dent", "x1": 0, "y1": 0, "x2": 1, "y2": 1, "id": "",
         "split": "dev", "width": 400, "height": 300},
        {"image": "c.png", "label": "dent", "x1": 0, "y1": 0, "x2": 1, "y2": 1, "id": "",
         "split": "train", "width": 400, "height": 300},
    ]
    for image in ("a.png", "c.png"):
        png(tmp_path / image, size=(400, 300))  # the declared size must be the file's
    dataset = load_detection(table(tmp_path, rows), "dev")
    assert dataset.units["id"].tolist() == ["d1", "a.png#0,0,1,1#dent"]
    assert dataset.units["_display"].tolist() == ["a.png #d1", "a.png #2"]
    assert dataset.images[["width", "height"]].to_numpy().tolist() == [[400, 300]]  # as given
    assert dataset.all_ids == {"a.png", "c.png"}
    assert dataset.category_ids == {"dent": 1}


def test_table_parquet(tmp_path):
    rows = [{"image": "a.png", "label": "dent", "x1": 1.5, "y1": 2.0, "x2": 3.0, "y2": 4.0}]
    path = tmp_path / "objects.parquet"
    pd.DataFrame(rows).to_parquet(path)
    png(tmp_path / "a.png")
    dataset = load_detection(path, "dev")
    assert dataset.units[["x1", "y1", "x2", "y2"]].to_numpy().tolist() == [[1.5, 2, 3, 4]]


BASE = {"image": "a.png", "label": "dent", "x1": 0, "y1": 0, "x2": 5, "y2": 5}


@pytest.mark.parametrize("rows, message", [
    ([{**BASE, "x1": "left"}], "line 2: x1 = 'left' is not a number"),
    ([{**BASE, "x2": ""}], "line 2: x2 = .* is not a number"),
    ([{**BASE, "x2": -1}], r"line 2: x2 \(-1.0\) < x1 \(0.0\)"),
    ([BASE, {**BASE, "label": ""}], "line 3: a box without a label"),
    ([{**BASE, "id": "o"}, {**BASE, "id": "o"}], "line 2 and objects.csv line 3: object id 'o' appears twice"),
    ([{**BASE, "image": "nowhere.png"}], "line 2: image .*nowhere.png does not exist"),
    ([{**BASE, "image": ""}], "line 2: empty `image`"),
    ([{**BASE, "width": "big"}], "line 2: width = 'big' is not a number"),
    ([{k: v for k, v in BASE.items() if k != "y2"}], "no y2 column"),
    ([{**BASE, "split": "dev"}, {**BASE, "split": "train"}], "image 'a.png' has rows in more than one split"),
])
def test_table_errors(tmp_path, rows, message):
    png(tmp_path / "a.png")
    frame = pd.DataFrame(rows)
    path = tmp_path / "objects.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ErranError, match=message):
        load_detection(path, "dev")


# --- Predictions ------------------------------------------------------------------------------

def test_predictions_coco_results(tmp_path):
    dataset = load_detection(coco(tmp_path), "dev")
    classes = dataset.classes
    path = tmp_path / "results.json"
    path.write_text(json.dumps([
        {"image_id": 2, "category_id": 2, "bbox": [90, 40, 10, 10], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 10], "score": 0.5},
    ]))
    got = read_detections(path, dataset.images, classes, dataset.all_ids, dataset.all_images,
                          category_ids=[1, 2])
    assert got["image"].tolist() == [1, 0]
    assert got["label"].tolist() == [1, 0]  # category 2 is "dent", class index 1
    assert got["box"].tolist() == [[90, 40, 100, 50], [10, 5, 30, 15]]
    assert got["score"].tolist() == [0.9, 0.5]
    assert got["image"].dtype == np.int64 and got["label"].dtype == np.int64


def test_predictions_coco_errors_and_other_splits(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "width": 100, "height": 50, "split": "dev"},
              {"id": 2, "file_name": "b.png", "width": 100, "height": 50, "split": "train"}]
    dataset = load_detection(coco(tmp_path, images=images, annotations=[]), "dev")
    classes = dataset.classes
    args = (dataset.images, classes, dataset.all_ids, dataset.all_images)
    path = tmp_path / "results.json"
    entry = {"image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.3}
    path.write_text(json.dumps([entry]))
    got = read_detections(path, *args)  # image 2 is in another split: dropped
    assert len(got["image"]) == 0 and got["box"].shape == (0, 4)
    for bad, message in [({"image_id": 3}, r"results.json\[0\]: image_id '3' is not in the dev set"),
                         ({"category_id": 9}, r"results.json\[0\]: category_id 9 is not a category"),
                         ({"score": "high"}, r"results.json\[0\]: score 'high' is not a number")]:
        path.write_text(json.dumps([{**entry, **bad}]))
        with pytest.raises(ErranError, match=message):
            read_detections(path, *args)


def test_predictions_table(tmp_path):
    dataset = load_detection(table(tmp_path, OBJECTS), "dev")
    classes = tuple(sorted(dataset.labels))  # a predictions file names its classes: sorted is fine
    args = (dataset.images, classes, dataset.all_ids, dataset.all_images)
    path = tmp_path / "predictions.csv"
    pd.DataFrame([
        {"image": "./b.png", "label": "scratch", "score": 0.7, "x1": 1, "y1": 2, "x2": 3, "y2": 4},
        {"image": "a.png", "label": "", "score": "", "x1": "", "y1": "", "x2": "", "y2": ""},
    ]).to_csv(path, index=False)
    got = read_detections(path, *args)
    assert got["image"].tolist() == [1]
    assert got["label"].tolist() == [classes.index("scratch")]
    assert got["box"].tolist() == [[1, 2, 3, 4]]
    assert got["score"].tolist() == [0.7]

    pd.DataFrame([{"image_id": "a.png", "label": "dent", "score": 1, "x1": 0, "y1": 0, "x2": 1,
                   "y2": 1}]).to_csv(path, index=False)
    assert read_detections(path, *args)["image"].tolist() == [0]

    for bad, message in [({"label": "crack"}, "line 2: label 'crack' is not one of the classes"),
                         ({"image": "z.png"}, "line 2: image 'z.png' is not in the dev set"),
                         ({"x2": -5}, "line 2: x2 < x1"),
                         ({"score": "n/a"}, "line 2: score 'n/a' is not a number")]:
        row = {"image": "a.png", "label": "dent", "score": 1, "x1": 0, "y1": 0, "x2": 1, "y2": 1}
        pd.DataFrame([{**row, **bad}]).to_csv(path, index=False)
        with pytest.raises(ErranError, match=message):
            read_detections(path, *args)


def test_predictions_by_path_need_distinct_files(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "width": 100, "height": 50},
              {"id": 2, "file_name": "a.png", "width": 100, "height": 50}]
    dataset = load_detection(coco(tmp_path, images=images, annotations=[]), "dev")
    classes = dataset.classes
    path = tmp_path / "predictions.csv"
    pd.DataFrame([{"image": "a.png", "label": "dent", "score": 1, "x1": 0, "y1": 0, "x2": 1,
                   "y2": 1}]).to_csv(path, index=False)
    with pytest.raises(ErranError, match="several dev images share the file 'a.png'"):
        read_detections(path, dataset.images, classes, dataset.all_ids, dataset.all_images)


@pytest.mark.parametrize("twist", ["plain", "a '}, {' inside a string", "nested objects", "a bad entry"])
def test_a_large_results_file_read_in_chunks_reads_as_a_whole(tmp_path, monkeypatch, twist):
    """Chunked parsing (to bound memory) gives exactly the whole file's predictions, falls back
    to a whole read when the text does not cut cleanly, and names a bad entry by its index."""
    pytest.importorskip("orjson", reason="chunked reading needs orjson (pytest-erran[fast])")
    from pytest_erran import tables
    from pytest_erran.tasks.detection.predictions_file import read_detections

    rng = np.random.default_rng(4)
    images = pd.DataFrame({"id": [str(i) for i in range(1, 31)], "image": [f"{i}.png" for i in range(1, 31)]})
    entries = [{"image_id": int(rng.integers(1, 31)), "category_id": int(rng.integers(1, 3)),
                "bbox": [float(v) for v in rng.uniform(0, 50, 4)], "score": float(rng.random())}
               for _ in range(400)]
    if twist == "a '}, {' inside a string":
        entries[150]["note"] = "a}, {b"
    elif twist == "nested objects":
        entries[200]["segmentation"] = [{"size": [4, 4], "counts": "abc"}, {"size": [4, 4], "counts": "d"}]
    elif twist == "a bad entry":
        entries[333]["score"] = "high"
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(entries))
    args = (images, ("tube", "fin"), set(images["id"]), set(images["image"]), [1, 2])
    if twist == "a bad entry":
        monkeypatch.setattr(tables, "JSON_CHUNK_BYTES", 1000)
        with pytest.raises(ErranError, match=r"preds.json\[333\]: score 'high' is not a number"):
            read_detections(path, *args)
        return
    whole = read_detections(path, *args)
    monkeypatch.setattr(tables, "JSON_CHUNK_BYTES", 1000)  # about 10 entries a chunk
    if twist == "plain":
        assert sum(1 for _ in tables.json_list_chunks(path)) > 20
    chunked = read_detections(path, *args)
    for name in ("image", "label", "box", "score"):
        np.testing.assert_array_equal(chunked[name], whole[name])
    assert len(whole["score"]) == 400
