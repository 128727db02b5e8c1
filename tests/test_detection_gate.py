"""The detection gate through real pytest runs: per-object hits as pycocotools counts them, the
same report from a predictions file and from ONNX models (boxes_scores_labels and YOLO, stretch
and letterbox), buckets on object geometry and attributes, precision and false positives per
image, object-table dev sets, baselines and bad input."""

import contextlib
import io
import json
from collections import Counter

import pytest
from pycocotools.coco import COCO

from coco_reference import evaluate_at_one_iou
from conftest import usage_error
from detection_builders import (
    Det,
    Obj,
    Scene,
    boxes_scores_labels_model,
    model_detections,
    random_scene,
)

COCO_CONFIG = """
task = "detection"
data = "dev.json"
score_threshold = 0.5
iou_threshold = {iou}
{extra}
[class_thresholds]
crack = 0.625

[buckets.severe]
where = "severity == 'severe'"

[[require]]
bucket = "all"
recall = 0.1
"""

THRESHOLDS = {"tube": 0.5, "fin": 0.5, "crack": 0.625}


def buckets_of(report):
    return {b["name"]: b for b in report["buckets"]}


def run_ok(project, *args, name="report.json"):
    result, report = project.report(*args, name=name)
    out = "\n".join(result.outlines + result.errlines)
    assert result.ret in (0, 1), out
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    return result, report


# --- the reference: pycocotools' own COCOeval ---------------------------------------------------

def coco_reference(dev_json, scene, detections, thresholds, iou):
    """(hit per non-crowd annotation id, true positives and false positives per class, the
    number of predictions ignored for falling on a crowd box) as COCOeval counts them at one
    IoU threshold, every area, no cap on detections, after dropping the predictions below their
    class's score threshold."""
    kept = [d for d in detections if d.score >= thresholds[d.label]]
    results = [{"image_id": scene.image_id(d.image), "category_id": scene.categories[d.label],
                "bbox": [d.box[0], d.box[1], d.box[2] - d.box[0], d.box[3] - d.box[1]],
                "score": d.score} for d in kept]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO(str(dev_json))
    evaluator = evaluate_at_one_iou(gt, results, iou)
    crowd = {o.id for o in scene.objects if o.crowd}
    name_of = {cid: name for name, cid in scene.categories.items()}
    hit, tp, fp, seen, ignored = {}, Counter(), Counter(), 0, 0
    for entry in evaluator.evalImgs:
        if entry is None:
            continue
        for gt_id, matched in zip(entry["gtIds"], entry["gtMatches"][0]):
            if gt_id not in crowd:
                hit[gt_id] = bool(matched > 0)
        cls = name_of[entry["category_id"]]
        for matched, ignored_here in zip(entry["dtMatches"][0], entry["dtIgnore"][0]):
            seen += 1
            if ignored_here:
                ignored += 1
            else:
                (tp if matched > 0 else fp)[cls] += 1
    assert seen == len(results), "COCOeval skipped detections: the reference set-up is wrong"
    assert len(hit) == len(scene.objects) - len(crowd)
    return hit, tp, fp, ignored


def assert_matches_coco(report, scene, hit, tp, fp):
    buckets = buckets_of(report)
    members = {"all": lambda o: True, "severe": lambda o: o.attributes.get("severity") == "severe",
               **{c: (lambda o, c=c: o.label == c) for c in scene.classes}}
    assert set(buckets) == set(members)
    for name, member in members.items():
        objects = [o for o in scene.objects if not o.crowd and member(o)]
        entry = buckets[name]
        assert entry["positives"] == len(objects), name
        assert entry["hits"] == sum(hit[o.id] for o in objects), name
        # missed lists object ids in dataset order
        assert entry["missed"] == [str(o.id) for o in objects if not hit[o.id]], name
    images = len(scene.sizes)
    for cls in scene.classes:
        entry = buckets[cls]
        assert (entry["true_positives"], entry["false_positives"]) == (tp[cls], fp[cls]), cls
        if tp[cls] + fp[cls]:
            assert entry["precision"] == pytest.approx(tp[cls] / (tp[cls] + fp[cls]))
        else:
            assert entry["precision"] is None
        assert entry["fp_per_image"] == pytest.approx(fp[cls] / images)
    total_tp, total_fp = sum(tp.values()), sum(fp.values())
    assert (buckets["all"]["true_positives"], buckets["all"]["false_positives"]) == (total_tp, total_fp)
    assert buckets["all"]["fp_per_image"] == pytest.approx(total_fp / images)
    assert "precision" not in buckets["severe"]  # predictions have a class, not a bucket


# --- 1. per-object hits equal pycocotools' ------------------------------------------------------

# Seeds 0, 2, 5, 7 and 9 put predictions on crowd boxes (ignored, neither right nor wrong).
@pytest.mark.parametrize("seed, iou", [(0, 0.5), (1, 0.5), (2, 0.5), (5, 0.5), (7, 0.5), (9, 0.5),
                                       (2, 0.75), (7, 0.75)])
def test_hits_and_precision_equal_pycocotools(project, seed, iou):
    scene = random_scene(seed)
    dev = project.coco(scene)
    project.coco_results(scene)
    project.write_config(COCO_CONFIG.format(iou=iou, extra=""))
    result, report = run_ok(project, "--erran-predictions=preds.json")
    assert report["task"] == "detection"
    assert report["data"]["units"] == sum(not o.crowd for o in scene.objects)
    hit, tp, fp, ignored = coco_reference(dev, scene, scene.detections, THRESHOLDS, iou)
    assert_matches_coco(report, scene, hit, tp, fp)
    # the scenes are meant to be awkward: some hits, some misses, some false positives
    assert 0 < sum(hit.values()) < len(hit) and sum(fp.values()) > 0
    assert (ignored > 0) == (seed in (0, 2, 5, 7, 9))


# --- 2. ONNX models give the predictions file's report ------------------------------------------

DUPLICATE_IMAGE = (128, 64)


def scene_with_duplicate(seed):
    """A random scene whose predictions an NMS at 0.7 leaves alone, plus one image holding a
    tube found exactly; `duplicate` is a near-copy (IoU 0.95) of that find with a lower score."""
    scene = random_scene(seed, nms_iou=0.7)
    image = len(scene.sizes)
    scene.sizes.append(DUPLICATE_IMAGE)
    scene.objects.append(Obj(9999, image, "tube", (20.0, 20.0, 60.0, 60.0), False,
                             {"severity": "severe"}))
    scene.detections.append(Det(image, "tube", (20.0, 20.0, 60.0, 60.0), 0.875))
    duplicate = Det(image, "tube", (21.0, 20.0, 61.0, 60.0), 0.8125)
    return scene, duplicate


def comparable(report):
    return {"buckets": report["buckets"], "requirements": report["requirements"],
            "units": report["data"]["units"]}


def test_models_give_the_report_of_the_predictions_file(project):
    scene, duplicate = scene_with_duplicate(4)
    dev = project.coco(scene)
    project.coco_results(scene)
    project.write_config(COCO_CONFIG.format(iou=0.5, extra=""))
    _, from_file = run_ok(project, "--erran-predictions=preds.json", name="file.json")
    hit, tp, fp, _ = coco_reference(dev, scene, scene.detections, THRESHOLDS, 0.5)
    assert_matches_coco(from_file, scene, hit, tp, fp)
    assert hit[9999]

    # boxes_scores_labels, stretch into 64 x 32: every image's ratios are powers of two
    table = model_detections(scene, (64, 32), "stretch")
    rows = max(len(v) for v in table.values()) + 2  # padding rows past num_detections
    boxes_scores_labels_model(project.path / "bsl.onnx", (64, 32), table, rows=rows)
    project.write_config(COCO_CONFIG.format(iou=0.5, extra='model = "bsl.onnx"'))
    result, from_bsl = run_ok(project, name="bsl.json")
    assert "predicted in" in result.stdout.str()
    assert comparable(from_bsl) == comparable(from_file)

    # yolo, letterbox into 64 x 64 (portrait images padded left and right, landscape above and
    # below), with a duplicate that NMS must remove; the model's metadata orders the classes
    # its own way, unlike the dev set's category ids
    own_order = ("crack", "tube", "fin")
    assert own_order != scene.classes
    project.detector(scene, "yolo.onnx", "yolo", (64, 64), "letterbox", scene.detections + [duplicate],
                     own_order, classes_metadata=own_order)
    extra = 'model = "yolo.onnx"\noutput = "yolo"\nnms_iou = {nms}\n[preprocess]\nresize = "letterbox"'
    project.write_config(COCO_CONFIG.format(iou=0.5, extra=extra.format(nms=0.7)))
    _, from_yolo = run_ok(project, name="yolo.json")
    assert [b["name"] for b in from_yolo["buckets"]][:4] == ["all", *own_order]
    assert buckets_of(from_yolo) == buckets_of(from_file)
    assert from_yolo["requirements"] == from_file["requirements"]

    # without the NMS removing it, the duplicate is one more false positive: it mattered
    project.write_config(COCO_CONFIG.format(iou=0.5, extra=extra.format(nms=0.99)))
    _, loose = run_ok(project, name="loose.json")
    tube, loose_tube = buckets_of(from_file)["tube"], buckets_of(loose)["tube"]
    assert loose_tube["false_positives"] == tube["false_positives"] + 1
    assert loose_tube["missed"] == tube["missed"]


# --- 3. buckets, precision and false positives per image, by hand -------------------------------

def hand_scene():
    """Four 128 x 96 images; image 2 has no objects. Hits: 1, 3, 5, 6, 8.

    id image label box                 severity edge (< 0.05)  small (< 2%)  found
    1  0     tube  (2, 10, 22, 30)     severe   yes (x1 2/128) no (400 px)   yes
    2  0     tube  (50, 40, 58, 48)    minor    no             yes (64 px)   no (score 0.25)
    3  0     fin   (60, 10, 100, 50)   severe   no             no            yes (+ a duplicate: FP)
    4  1     tube  (120, 80, 128, 96)  severe   yes            yes (128 px)  no (called fin: FP)
    5  1     fin   (30, 30, 70, 70)    minor    no             no            yes
    6  1     tube  (10, 20, 40, 50)    moderate no             no            yes
    7  3     fin   (0, 0, 10, 10)      severe   yes            yes (100 px)  no
    8  3     tube  (64, 48, 96, 80)    severe   no             no            yes
    and a fin FP on image 2, a tube FP on image 3.
    """
    objects = [
        Obj(1, 0, "tube", (2, 10, 22, 30), attributes={"severity": "severe"}),
        Obj(2, 0, "tube", (50, 40, 58, 48), attributes={"severity": "minor"}),
        Obj(3, 0, "fin", (60, 10, 100, 50), attributes={"severity": "severe"}),
        Obj(4, 1, "tube", (120, 80, 128, 96), attributes={"severity": "severe"}),
        Obj(5, 1, "fin", (30, 30, 70, 70), attributes={"severity": "minor"}),
        Obj(6, 1, "tube", (10, 20, 40, 50), attributes={"severity": "moderate"}),
        Obj(7, 3, "fin", (0, 0, 10, 10), attributes={"severity": "severe"}),
        Obj(8, 3, "tube", (64, 48, 96, 80), attributes={"severity": "severe"}),
    ]
    detections = [
        Det(0, "tube", (2, 10, 22, 30), 0.9),
        Det(0, "tube", (50, 40, 58, 48), 0.25),
        Det(0, "fin", (60, 10, 100, 50), 0.8),
        Det(0, "fin", (62, 12, 102, 52), 0.7),
        Det(1, "fin", (120, 80, 128, 96), 0.875),
        Det(1, "fin", (30, 30, 70, 70), 0.9375),
        Det(1, "tube", (10, 20, 40, 50), 0.625),
        Det(2, "fin", (40, 40, 60, 60), 0.75),
        Det(3, "tube", (64, 48, 96, 80), 0.984375),
        Det(3, "tube", (100, 10, 120, 30), 0.5625),
    ]
    return Scene(sizes=[(128, 96)] * 4, categories={"fin": 1, "tube": 2}, objects=objects,
                 detections=detections)


GATED = """
task = "detection"
data = "{data}"
{extra}

[buckets.edge]
where = "edge_distance < 0.05"
[buckets.small]
where = "area_fraction < 0.02"
[buckets.severe]
where = "severity == 'severe'"

[[require]]
bucket = "severe"
recall = 0.9
[[require]]
bucket = "tube"
recall = 0.5
[[require]]
bucket = "fin"
precision = 0.8
[[require]]
bucket = "tube"
precision = 0.5
[[require]]
bucket = "fin"
max_fp_per_image = 0.5
[[require]]
bucket = "all"
max_fp_per_image = 1.5
"""

HAND_BUCKETS = {  # name: (positives, missed ids, (tp, fp) or None)
    "all": (8, [2, 4, 7], (5, 4)),
    "fin": (3, [7], (2, 3)),
    "tube": (5, [2, 4], (3, 1)),
    "edge": (3, [4, 7], None),
    "small": (3, [2, 4, 7], None),
    "severe": (5, [4, 7], None),
}
HAND_OUTCOMES = {
    "recall(severe)>=0.90": "failed",
    "recall(tube)>=0.50": "passed",
    "precision(fin)>=0.80": "failed",
    "precision(tube)>=0.50": "passed",
    "fp_per_image(fin)<=0.50": "failed",
    "fp_per_image(all)<=1.50": "passed",
}


def check_hand_report(result, report, object_id):
    assert result.ret == 1
    result.assert_outcomes(passed=3, failed=3)
    buckets = buckets_of(report)
    assert set(buckets) == set(HAND_BUCKETS)
    for name, (positives, missed, counts) in HAND_BUCKETS.items():
        entry = buckets[name]
        assert entry["positives"] == positives, name
        assert entry["hits"] == positives - len(missed), name
        assert entry["missed"] == [object_id(i) for i in missed], name
        if counts is None:
            assert "precision" not in entry and "fp_per_image" not in entry, name
        else:
            tp, fp = counts
            assert (entry["true_positives"], entry["false_positives"]) == (tp, fp), name
            assert entry["precision"] == pytest.approx(tp / (tp + fp)), name
            assert entry["fp_per_image"] == pytest.approx(fp / 4), name
    outcomes = {r["id"]: r["outcome"] for r in report["requirements"]}
    assert outcomes == HAND_OUTCOMES
    values = {r["id"]: r["value"] for r in report["requirements"]}
    assert values["precision(fin)>=0.80"] == pytest.approx(0.4)
    assert values["fp_per_image(fin)<=0.50"] == pytest.approx(0.75)
    assert values["recall(severe)>=0.90"] == pytest.approx(0.6)


def test_buckets_precision_and_fp_per_image_by_hand(project):
    scene = hand_scene()
    project.coco(scene)
    project.coco_results(scene)
    project.write_config(GATED.format(data="dev.json", extra=""))
    result, report = project.report("--erran-predictions=preds.json", "-v")
    check_hand_report(result, report, str)
    result.stdout.fnmatch_lines([
        "*erran.toml::fp_per_image?all?<=1.50 PASSED*",
        "*erran.toml::fp_per_image?fin?<=0.50 FAILED*",
        "*erran.toml::precision?fin?>=0.80 FAILED*",
        "*erran.toml::precision?tube?>=0.50 PASSED*",
        "*erran.toml::recall?severe?>=0.90 FAILED*",
        "*erran.toml::recall?tube?>=0.50 PASSED*",
    ])
    result.stdout.fnmatch_lines([
        "*= erran =*",
        "bucket*positives*recall*95% interval*precision*fp/image*required*status*",
    ])
    table = {line.split()[0]: line for line in result.stdout.lines
             if line.split()[:1] and line.split()[0] in HAND_BUCKETS and "  " in line}
    assert table["fin"].split()[1:3] == ["3", "0.667"]
    assert "0.400" in table["fin"] and "0.750" in table["fin"] and "FAILED" in table["fin"]
    assert "0.750" in table["tube"] and "0.250" in table["tube"] and "passed" in table["tube"]
    assert "1.000" in table["all"] and "0.556" in table["all"]
    edge = table["edge"].split()
    assert edge[1:3] == ["3", "0.333"] and "-" in edge  # no precision for a where-bucket
    result.stdout.fnmatch_lines(["*missed in severe: images/001.png #4, images/003.png #7*"])
    # the fin false positives by hand: the duplicate on image 0, tube 4 called fin, image 2's
    false_positives = {b["name"]: b.get("false_positive_images") for b in report["buckets"]}
    assert false_positives["fin"] == ["images/000.png", "images/001.png", "images/002.png"]
    assert false_positives["tube"] == ["images/003.png"]
    assert false_positives["all"] == ["images/000.png", "images/001.png", "images/002.png",
                                      "images/003.png"]
    result.stdout.fnmatch_lines(["*false positives of fin: images/000.png, images/001.png, "
                                 "images/002.png"])


# --- 4. an object-table dev set, through a model ------------------------------------------------

def test_object_table_dev_set_through_a_model(project):
    scene = hand_scene()
    dev = project.objects(scene)
    text = dev.read_text()
    assert "images/002.png,,,,,," in text  # the image without objects
    # a table defines no class order: the config gives the model's (index 0 is fin, 1 is tube)
    assert scene.classes == ("fin", "tube")
    project.detector(scene, "det.onnx", input_size=(64, 48))
    project.write_config(GATED.format(data="dev.csv", extra='model = "det.onnx"\nclasses = ["fin", "tube"]'))
    result, report = project.report("-v")
    number = {}
    for o in scene.objects:  # a table's object ids: image#x1,y1,x2,y2#label, stable under edits
        number[o.id] = f"{scene.file_name(o.image)}#{','.join(f'{v:g}' for v in o.box)}#{o.label}"
    check_hand_report(result, report, number.__getitem__)
    assert report["data"]["units"] == 8

    # the same detections as a predictions table give the same report
    project.detection_table(scene)
    result, from_table = project.report("--erran-predictions=preds.csv", name="table.json")
    check_hand_report(result, from_table, number.__getitem__)
    assert comparable(from_table) == comparable(report)


# --- 5. baselines -------------------------------------------------------------------------------

def test_baseline_save_then_a_worse_predictions_file_regresses(project):
    scene = random_scene(5)
    project.coco(scene)
    project.coco_results(scene)
    project.write_config(COCO_CONFIG.format(iou=0.5, extra="").replace('recall = 0.1', 'max_drop = 0.02'))
    result, before = run_ok(project, "--erran-predictions=preds.json", "--erran-save-baseline")
    assert result.ret == 0
    saved = json.loads((project.path / ".erran" / "baseline.json").read_text())
    assert saved["task"] == "detection"
    assert set(saved["units"]) == {str(o.id) for o in scene.objects if not o.crowd}
    assert saved["buckets"]["all"]["missed"] == buckets_of(before)["all"]["missed"]

    # a worse model finds nothing on the images holding the most hits
    missed = set(buckets_of(before)["all"]["missed"])
    hits_on = Counter(o.image for o in scene.objects if not o.crowd and str(o.id) not in missed)
    dropped, lost = set(), []
    for image, _ in hits_on.most_common():
        dropped.add(image)
        lost = [str(o.id) for o in scene.objects
                if o.image in dropped and not o.crowd and str(o.id) not in missed]
        if len(lost) >= 6:
            break
    assert len(lost) >= 6
    worse = [d for d in scene.detections if d.image not in dropped]
    project.coco_results(scene, worse, name="worse.json")
    result, after = run_ok(project, "--erran-predictions=worse.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["regressed: recall * on * shared units *: drop * > 0.02 and p < alpha*"])
    outcome = {r["id"]: r["outcome"] for r in after["requirements"]}
    assert outcome == {"drop(all)<=0.02": "regressed"}
    everything = buckets_of(after)["all"]
    assert everything["newly_missed"] == lost  # object ids, in dataset order
    assert everything["newly_caught"] == []
    assert everything["regression_p"] == pytest.approx(0.5 ** len(lost))
    for cls in scene.classes:
        labels = {str(o.id): o.label for o in scene.objects}
        assert buckets_of(after)[cls]["newly_missed"] == [i for i in lost if labels[i] == cls]
    assert after["baseline"]["shared"] == len(saved["units"])
    result.stdout.fnmatch_lines(["*newly missed in all: images/*.png #*"])


# --- 6. bad input ---------------------------------------------------------------------------------

def test_precision_on_a_where_bucket_is_a_usage_error(project):
    scene = hand_scene()
    project.coco(scene)
    project.coco_results(scene)
    project.write_config("""
        task = "detection"
        data = "dev.json"
        [buckets.edge]
        where = "edge_distance < 0.05"
        [[require]]
        bucket = "edge"
        precision = 0.8
    """)
    usage_error(project.run("--erran-predictions=preds.json"), "[[require]] precision(edge)>=0.80",
                "precision is defined for a class's own bucket or 'all'")


@pytest.mark.parametrize("label", [2, -1])
def test_a_model_label_beyond_the_classes_is_a_usage_error(project, label):
    scene = hand_scene()
    project.coco(scene)
    table = model_detections(scene, (64, 48), "stretch")
    box, score, _ = table[scene.level(1)][0]
    table[scene.level(1)][0] = (box, score, label)  # two classes: 0 fin, 1 tube
    boxes_scores_labels_model(project.path / "det.onnx", (64, 48), table)
    project.write_config("""
        task = "detection"
        model = "det.onnx"
        data = "dev.json"
        [[require]]
        bucket = "tube"
        recall = 0.5
    """)
    usage_error(project.run(), "det.onnx", f"predicts class index {label}", "2 classes",
                "check `classes`")


def test_negative_with_detection_is_a_usage_error(project):
    scene = hand_scene()
    project.coco(scene)
    project.coco_results(scene)
    project.write_config("""
        task = "detection"
        data = "dev.json"
        negative = "fin"
        [[require]]
        bucket = "tube"
        recall = 0.5
    """)
    usage_error(project.run("--erran-predictions=preds.json"), "`negative` is for classification",
                "remove it")


def test_config_classes_beyond_the_categories_keep_the_category_ids(project):
    """A class of `classes` the dev set has no category for must not take over another class's
    COCO category id: here fin is category 3, and crack the third class."""
    scene = hand_scene()
    scene.categories = {"tube": 1, "fin": 3}
    project.coco(scene)
    project.coco_results(scene)
    project.write_config(GATED.format(data="dev.json", extra='classes = ["tube", "fin", "crack"]'))
    result, report = project.report("--erran-predictions=preds.json")
    check_hand_report(result, {**report, "buckets": [b for b in report["buckets"]
                                                     if b["name"] != "crack"]}, str)
    crack = buckets_of(report)["crack"]
    assert (crack["positives"], crack["true_positives"], crack["false_positives"]) == (0, 0, 0)


def test_a_float32_score_at_the_threshold_counts_as_in_a_predictions_file(project):
    """float32(0.9) < 0.9: a model's 0.9 must still meet score_threshold 0.9, as the same
    score read from a predictions file does (tube 1 is found with 0.9 exactly)."""
    scene = hand_scene()
    project.coco(scene)
    project.coco_results(scene)
    project.detector(scene, "det.onnx", input_size=(64, 48))
    config = GATED.format(data="dev.json", extra="score_threshold = 0.9\n")
    project.write_config(config)
    _, from_file = run_ok(project, "--erran-predictions=preds.json", name="file.json")
    assert "1" not in buckets_of(from_file)["tube"]["missed"]
    project.write_config(config.replace("score_threshold", 'model = "det.onnx"\nscore_threshold'))
    _, from_model = run_ok(project, name="model.json")
    assert comparable(from_model) == comparable(from_file)
