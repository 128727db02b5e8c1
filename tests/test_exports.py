"""Real exports just work: the committed Ultralytics, torchvision, skl2onnx and torch exports in
tests/exports/ (made by tests/exports/make_exports.py), each run through the plugin and compared
unit by unit with the hits its exporter's own predict gave (expected.json). Nothing here needs
torch, ultralytics or scikit-learn: only what the plugin itself runs on.

The settings are the exporters' own: score threshold 0.25 and 0.5, match IoU 0.5, NMS IoU 0.7
(Ultralytics' default, which its predict used). Predictions at 0.5 reuse the 0.25 run's cached
predictions (class_thresholds raise every class to 0.5; the floor, and so the cache key, stay).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import pytest_erran
from conftest import usage_error
from pytest_erran.config import load_schema
from pytest_erran.errors import ErranError

EXPORTS = Path(__file__).parent / "exports"
NAMES = ("circle", "square", "triangle")
TORCH_NORMALISE = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
SKLEARN = {"classes": ["1", "3", "7"], "preprocess": {"size": [16, 16], "flatten": True}}
# torchvision's export fails inside onnxruntime on these (no region proposals): see its README
TORCHVISION_FAILURES = ("images/dev_003.png", "images/dev_blank.png")


def expected(fixture: str) -> dict:
    return json.loads((EXPORTS / fixture / "expected.json").read_text())


def run(tmp_path: Path, fixture: str, model="model.onnx", data=None, cache_dir=None, **config):
    """The plugin's evaluation of a fixture through the library API (the pytest run's pipeline)."""
    folder = EXPORTS / fixture
    data = data or folder / ("dev.json" if (folder / "dev.json").exists() else "dev.csv")
    return pytest_erran.evaluate({"model": str(folder / model), "data": str(data), **config},
                                 rootdir=tmp_path, cache_dir=cache_dir)


def detection_runs(tmp_path: Path, fixture: str, data=None, **config):
    """{"0.25": evaluation, "0.5": evaluation}, the second from the first's cached predictions."""
    cache = tmp_path / "cache"
    low = run(tmp_path, fixture, data=data, task="detection", score_threshold=0.25, cache_dir=cache, **config)
    high = run(tmp_path, fixture, data=data, task="detection", score_threshold=0.25, cache_dir=cache,
               class_thresholds={c: 0.5 for c in low.classes}, **config)
    assert high.timing["predicted"] == 0, "the 0.5 run should reuse the 0.25 run's predictions"
    return {"0.25": low, "0.5": high}


def unit_hits(evaluation) -> dict[str, bool]:
    return dict(zip(evaluation.units["id"], evaluation.units["_hit"].tolist()))


def expected_hits(fixture: str, threshold: str, without=()) -> dict[str, bool]:
    data = json.loads((EXPORTS / fixture / "dev.json").read_text())
    skipped = {i["id"] for i in data["images"] if i["file_name"] in without}
    dropped = {str(a["id"]) for a in data["annotations"] if a["image_id"] in skipped}
    units = expected(fixture)["hits"][threshold]["units"]
    return {unit: found["hit"] for unit, found in units.items() if unit not in dropped}


def image_hits(evaluation) -> dict[str, bool]:
    return dict(zip(evaluation.units["image"], evaluation.units["_hit"].tolist()))


def dev_set_copy(tmp_path: Path, fixture: str, *, without=(), categories=None) -> Path:
    """The fixture's COCO dev set rewritten into tmp_path (its images linked beside it), without
    the images `without`, with category ids renumbered by `categories` (name -> new id)."""
    data = json.loads((EXPORTS / fixture / "dev.json").read_text())
    skipped = {i["id"] for i in data["images"] if i["file_name"] in without}
    data["images"] = [i for i in data["images"] if i["id"] not in skipped]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] not in skipped]
    if categories:
        new_id = {c["id"]: categories[c["name"]] for c in data["categories"]}
        data["categories"] = sorted(({**c, "id": new_id[c["id"]]} for c in data["categories"]),
                                    key=lambda c: c["id"])
        for annotation in data["annotations"]:
            annotation["category_id"] = new_id[annotation["category_id"]]
    (tmp_path / "images").symlink_to(EXPORTS / fixture / "images")
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(data))
    return path


# --- Ultralytics detection -----------------------------------------------------------------------

@pytest.fixture(scope="module", params=["ultralytics_detect_raw", "ultralytics_detect_nms"])
def ultralytics_runs(request, tmp_path_factory):
    return request.param, detection_runs(tmp_path_factory.mktemp(request.param), request.param)


def test_ultralytics_detection_hits_match_ultralytics_predict(ultralytics_runs):
    fixture, runs = ultralytics_runs
    for threshold, evaluation in runs.items():
        assert evaluation.classes == NAMES  # from the metadata's `names`: no config needed
        assert unit_hits(evaluation) == expected_hits(fixture, threshold), threshold
        counts, everything = expected(fixture)["hits"][threshold], evaluation.bucket("all")
        assert (everything.hits, everything.positives) == (counts["hits"], counts["positives"])
        assert (everything.true_positives, everything.false_positives) == \
            (counts["true_positives"], counts["false_positives"])
    how = "end-to-end NMS" if fixture.endswith("nms") else "raw output, NMS in erran"
    assert runs["0.25"].model["export"] == (f"Ultralytics YOLOv8 detect export, {how}, letterbox 160, "
                                            "classes from its `names`")


def test_ultralytics_boxes_match_within_the_pillow_resize_difference(ultralytics_runs):
    """The plugin letterboxes with Pillow's bilinear resize (antialiased when shrinking), not
    cv2's INTER_LINEAR as Ultralytics does: images only padded (longer side 160) must come out
    the same; resized ones within the README's measured 1.4 px and 0.028 (hits checked above)."""
    fixture, runs = ultralytics_runs
    evaluation, reference = runs["0.25"], expected(fixture)
    resized = set(reference["resized_images"])
    predictions = evaluation.predictions
    names = evaluation.dataset.images["image"].tolist()
    worst = {True: [0.0, 0.0], False: [0.0, 0.0]}  # resized? -> [box px, score]
    for row, image in enumerate(names):
        theirs = [d for d in reference["predictions"][image] if d["score"] >= 0.25]
        mine = np.flatnonzero((predictions.image == row) & (predictions.score >= 0.25))
        assert len(mine) == len(theirs), image
        free = set(mine.tolist())
        for found in theirs:
            same_class = [i for i in free if NAMES[predictions.label[i]] == found["class"]]
            assert same_class, (image, found)
            best = min(same_class, key=lambda i: np.abs(predictions.box[i] - found["box"]).max())
            free.remove(best)
            cell = worst[image in resized]
            cell[0] = max(cell[0], float(np.abs(predictions.box[best] - found["box"]).max()))
            cell[1] = max(cell[1], abs(float(predictions.score[best]) - found["score"]))
    assert worst[False][0] <= 0.002 and worst[False][1] <= 1e-4, worst  # expected.json rounds
    assert worst[True][0] <= 1.5 and worst[True][1] <= 0.03, worst


def test_coco_categories_in_another_order_map_by_name(tmp_path):
    """A dev set numbering its categories square=1, triangle=2, circle=3 still matches each
    object to the model's class of its name (the metadata `names`), not to its id's position."""
    data = dev_set_copy(tmp_path, "ultralytics_detect_nms", categories={"square": 1, "triangle": 2, "circle": 3})
    evaluation = run(tmp_path, "ultralytics_detect_nms", data=data, task="detection", score_threshold=0.25)
    assert evaluation.dataset.classes == ("square", "triangle", "circle") and evaluation.classes == NAMES
    assert unit_hits(evaluation) == expected_hits("ultralytics_detect_nms", "0.25")
    for name in NAMES:
        counts = expected("ultralytics_detect_nms")["hits"]["0.25"]["units"]
        members = evaluation.units["label"] == name
        hits = sum(counts[u]["hit"] for u in evaluation.units["id"][members])
        assert evaluation.bucket(name).hits == hits and evaluation.bucket(name).positives == members.sum()


@pytest.mark.parametrize("config, message", [
    ({"preprocess": {"resize": "stretch"}},
     '[preprocess] resize = "stretch": model.onnx is an Ultralytics YOLOv8 detect export, trained and '
     'predicted on letterboxed inputs (gray 114 padding): resize = "letterbox", the default for it; '
     "remove `resize` from the config"),
    ({"preprocess": {"mean": [0.5, 0.5, 0.5]}}, "[preprocess] mean = [0.5, 0.5, 0.5]: model.onnx is an "
                                                "Ultralytics YOLOv8 detect export, which takes RGB / 255"),
    ({"preprocess": {"size": [320, 320]}}, "input 'images' [1, 3, 160, 160]: [preprocess] size = [320, 320], "
                                           "but the model's input is fixed at 160 x 160; remove `size`"),
    ({"classes": ["square", "circle", "triangle"]},
     "classes = ['square', 'circle', 'triangle'] but the model's metadata says ['circle', 'square', "
     "'triangle'] (its `names`, in output order)"),
    ({"output": "yolo"}, "output = 'yolo': model.onnx is an Ultralytics YOLOv8 detect export, end-to-end "
                         "NMS, letterbox 160, classes from its `names` (its output is already after NMS); "
                         "remove `output`, or set output = 'yolo_end2end'"),
    ({"task": "classification"}, "recognised as Ultralytics YOLOv8 detect export, end-to-end NMS, letterbox "
                                 "160, classes from its `names` (a detection model), but the run's task is "
                                 "'classification'; set task = \"detection\""),
], ids=["stretch", "mean", "size", "classes", "output", "task"])
def test_config_values_that_contradict_an_ultralytics_export_are_errors(tmp_path, config, message):
    settings = {"task": "detection", **config}
    with pytest.raises(ErranError) as error:
        run(tmp_path, "ultralytics_detect_nms", **settings)
    assert message in str(error.value)


def without_metadata(tmp_path: Path, fixture: str) -> Path:
    """The export with its metadata_props removed: only its shapes are left to read it by."""
    import onnx

    model = onnx.load(str(EXPORTS / fixture / "model.onnx"))
    del model.metadata_props[:]
    path = tmp_path / "bare.onnx"
    onnx.save(model, str(path))
    return path


def test_without_metadata_the_shapes_decide_and_the_channel_check_catches_a_misread(tmp_path):
    """The nms=True export without metadata: [1, 300, 6] cannot be the raw layout of 3 classes
    (4 + 3 = 7 channels), so it is read as end-to-end rows; forcing `yolo` is refused, where it
    used to decode the rows as cx, cy, w, h and two class scores (recall 0)."""
    bare = without_metadata(tmp_path, "ultralytics_detect_nms")
    data = EXPORTS / "ultralytics_detect_nms" / "dev.json"
    settings = {"task": "detection", "model": str(bare), "data": str(data), "score_threshold": 0.25,
                "preprocess": {"resize": "letterbox"}}
    evaluation = pytest_erran.evaluate(settings, rootdir=tmp_path)
    assert evaluation.classes == NAMES  # now from the COCO categories, in id order
    assert unit_hits(evaluation) == expected_hits("ultralytics_detect_nms", "0.25")
    assert evaluation.model["export"] == "torch export, input [1, 3, 160, 160]"  # only its producer
    with pytest.raises(ErranError) as error:
        pytest_erran.evaluate({**settings, "output": "yolo"}, rootdir=tmp_path)
    assert ("output 'output0' [1, 300, 6] does not fit the 'yolo' adapter, which reads [B, 4 + 3 classes "
            "= 7, anchors]; check `classes` (3), or set output = 'yolo_end2end'") in str(error.value)


def test_a_dynamic_ultralytics_export_runs_at_its_imgsz(tmp_path):
    """Exported with dynamic=True (height and width symbolic; the batch stays 1, as this graph
    was traced): the size comes from the metadata's imgsz; another size must fit its stride."""
    import onnx

    model = onnx.load(str(EXPORTS / "ultralytics_detect_raw" / "model.onnx"))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    onnx.save(model, str(tmp_path / "dynamic.onnx"))
    settings = {"task": "detection", "model": str(tmp_path / "dynamic.onnx"), "score_threshold": 0.25,
                "data": str(EXPORTS / "ultralytics_detect_raw" / "dev.json")}
    evaluation = pytest_erran.evaluate(settings, rootdir=tmp_path)
    assert unit_hits(evaluation) == expected_hits("ultralytics_detect_raw", "0.25")
    with pytest.raises(ErranError, match=r"size = \[100, 100\]: the model's stride is 32"):
        pytest_erran.evaluate({**settings, "preprocess": {"size": [100, 100]}}, rootdir=tmp_path)


# --- Ultralytics classification ------------------------------------------------------------------

def test_ultralytics_classify_export_needs_no_config(tmp_path):
    """Classes from `names`, shorter side resized and centre-cropped (the 96x96 images too)."""
    evaluation = run(tmp_path, "ultralytics_classify")
    reference = expected("ultralytics_classify")
    assert evaluation.classes == NAMES
    assert image_hits(evaluation) == reference["hits"]["units_hit"]
    scores = np.array([reference["predictions"][image]["scores"] for image in evaluation.units["image"]])
    np.testing.assert_allclose(evaluation.predictions.scores, scores, atol=2e-6)
    assert evaluation.model["export"] == ("Ultralytics YOLOv8 classify export, shorter side resized and "
                                          "centre crop 64, classes from its `names`")
    with pytest.raises(ErranError, match='resize = "stretch": model.onnx is an Ultralytics YOLOv8 classify'):
        run(tmp_path, "ultralytics_classify", preprocess={"resize": "stretch"})


# --- torchvision ---------------------------------------------------------------------------------

def test_torchvision_detection_export_each_image_at_its_own_size(tmp_path):
    """Unbatched [3, H, W] input fed each image at its own size, labels 1..3 read as the classes
    (0 = background); hits as torch's own predictions on every unit of the images onnxruntime can
    run (onnxruntime only approximates torch here, but no unit's hit differs at 0.25 or 0.5)."""
    data = dev_set_copy(tmp_path, "torchvision_detect", without=TORCHVISION_FAILURES)
    runs = detection_runs(tmp_path, "torchvision_detect", data=data)
    for threshold, evaluation in runs.items():
        assert evaluation.classes == NAMES
        assert unit_hits(evaluation) == expected_hits("torchvision_detect", threshold, TORCHVISION_FAILURES)
    assert runs["0.25"].model["export"].startswith("torchvision detection export, unbatched input")
    # torchvision's own class list starts with the background: the same mapping, no empty bucket
    listed = run(tmp_path, "torchvision_detect", data=data, task="detection", score_threshold=0.25,
                 classes=["__background__", *NAMES], cache_dir=tmp_path / "cache")
    assert listed.timing["predicted"] == 0 and listed.classes == NAMES
    assert unit_hits(listed) == unit_hits(runs["0.25"]) and "__background__" not in listed.buckets


def test_torchvision_labels_need_classes_when_category_ids_are_not_1_to_c(tmp_path):
    data = dev_set_copy(tmp_path, "torchvision_detect", categories={"circle": 1, "square": 2, "triangle": 5})
    with pytest.raises(ErranError) as error:
        run(tmp_path, "torchvision_detect", data=data, task="detection")
    assert ("category ids [1, 2, 5] for ['circle', 'square', 'triangle']; the torchvision export's labels "
            "1..3 name classes in its own order") in str(error.value)
    with pytest.raises(ErranError, match=r'\[preprocess\] size = \[128, 128\]: model.onnx is a torchvision'):
        run(tmp_path, "torchvision_detect", data=data, task="detection", classes=list(NAMES),
            preprocess={"size": [128, 128]})


def test_an_image_onnxruntime_fails_on_is_named(project):
    for name in ("model.onnx", "dev.json"):
        shutil.copy(EXPORTS / "torchvision_detect" / name, project.path / name)
    shutil.copytree(EXPORTS / "torchvision_detect" / "images", project.path / "images")
    project.write_config('''
        task = "detection"
        model = "model.onnx"
        data = "dev.json"
        [[require]]
        bucket = "all"
        recall = 0.1
    ''')
    usage_error(project.run(), "images/dev_003.png", "[ONNXRuntimeError]", "/roi_heads/Reshape")


# --- skl2onnx ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", ["sklearn_zipmap", "sklearn_nozipmap"])
def test_sklearn_labels_are_class_values(tmp_path, fixture):
    """Flattened 16x16 grayscale / 255; the labels 1, 3, 7 (and ZipMap keys) are class values,
    mapped to the classes by name, in whatever order `classes` lists them."""
    reference = expected(fixture)
    scores = {image: p["scores"] for image, p in reference["predictions"].items()}  # classes_ order 1, 3, 7
    for classes in (["1", "3", "7"], ["7", "1", "3"]):
        evaluation = run(tmp_path, fixture, **{**SKLEARN, "classes": classes})
        assert image_hits(evaluation) == reference["hits"]["units_hit"], classes
        column = [["1", "3", "7"].index(c) for c in classes]
        want = np.array([scores[image] for image in evaluation.units["image"]])[:, column]
        np.testing.assert_allclose(evaluation.predictions.scores, want, atol=1e-6)
        assert evaluation.bucket("3").hits == reference["hits"]["per_class"]["3"]["hits"]
    assert evaluation.model["export"].startswith("skl2onnx classifier, input [?, 256], labels are class values")


@pytest.mark.parametrize("fixture, output", [
    ("sklearn_zipmap", "output_label"), ("sklearn_zipmap", "output_probability"),
    ("sklearn_nozipmap", "label"), ("sklearn_nozipmap", "probabilities"),
])
def test_sklearn_outputs_read_alone(tmp_path, fixture, output):
    """Either output alone gives the same hits (the probabilities' argmax is the label here)."""
    evaluation = run(tmp_path, fixture, output=output, **SKLEARN)
    assert image_hits(evaluation) == expected(fixture)["hits"]["units_hit"]
    assert (evaluation.predictions.scores is None) == ("label" in output)


@pytest.mark.parametrize("preprocess, message", [
    ({"size": [16, 16]}, "input 'input' [None, 256]: a flat input, one row of features per image; if they "
                         "are an image's pixels, set [preprocess] size = [H, W] and flatten = true (H x W = "
                         "256 for grayscale, 3 x H x W for RGB)"),
    ({"size": [16, 8], "flatten": True}, "[preprocess] size = [16, 8] gives 128 grayscale or 384 RGB values "
                                         "per image, but the model takes 256"),
])
def test_flat_inputs_need_their_size(tmp_path, preprocess, message):
    with pytest.raises(ErranError) as error:
        run(tmp_path, "sklearn_zipmap", classes=["1", "3", "7"], preprocess=preprocess)
    assert message in str(error.value)


def test_sklearn_classes_are_its_values_and_must_be_listed(tmp_path):
    with pytest.raises(ErranError, match=r"but no `classes` in the config; list the values it was trained "
                                         r"on \(its labels, as strings\)"):
        run(tmp_path, "sklearn_zipmap", preprocess=SKLEARN["preprocess"])


# --- torch ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["model.onnx", "model_probs.onnx"])
def test_torch_classifier_logits_or_probabilities(tmp_path, model):
    """Dynamic batch: 45 images in batches of 16 (and of 45); logits get a softmax."""
    reference = expected("torch_classify")
    want = np.array([reference["predictions"][image]["scores"]
                     for image in sorted(reference["predictions"])])
    for batch_size in (16, 45):
        evaluation = run(tmp_path, "torch_classify", model, classes=["ok", "scratch", "stain"],
                         preprocess=TORCH_NORMALISE, batch_size=batch_size)
        assert image_hits(evaluation) == reference["hits"]["units_hit"]
        np.testing.assert_allclose(evaluation.predictions.scores, want, atol=1e-5)
    assert evaluation.model["export"] == "torch export, input [batch, 3, 48, 48]"


# --- the plugin itself ---------------------------------------------------------------------------

def test_the_summary_and_the_json_report_say_what_was_recognised(project):
    """A real pytest run on the nms=True export with no preprocessing config at all: the summary
    names the export, and the JSON report misses exactly the objects Ultralytics' predict missed."""
    folder = EXPORTS / "ultralytics_detect_nms"
    for name in ("model.onnx", "dev.json"):
        shutil.copy(folder / name, project.path / name)
    (project.path / "images").symlink_to(folder / "images")
    project.write_config('''
        task = "detection"
        model = "model.onnx"
        data = "dev.json"
        score_threshold = 0.25
        [[require]]
        bucket = "square"
        recall = 0.5
    ''')
    result, report = project.report()
    counts = expected("ultralytics_detect_nms")["hits"]["0.25"]
    missed = sorted((u for u, found in counts["units"].items() if not found["hit"]), key=int)
    everything = next(b for b in report["buckets"] if b["name"] == "all")
    assert everything["missed"] == missed and everything["hits"] == counts["hits"] == 49
    assert report["model"]["export"].startswith("Ultralytics YOLOv8 detect export, end-to-end NMS")
    jsonschema.validate(report, load_schema("report.schema.json"))
    result.stdout.fnmatch_lines(["recognised Ultralytics YOLOv8 detect export, end-to-end NMS, "
                                 "letterbox 160, classes from its `names`"])
    square = next(b for b in report["buckets"] if b["name"] == "square")
    assert result.ret == (0 if square["recall"] >= 0.5 else 1)
