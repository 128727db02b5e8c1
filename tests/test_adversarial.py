"""A broad adversarial suite: images, manifests, configs, models, predictions files, baselines,
caches, file-system conditions and warning filters, each with its exact outcome.

Broken input is a clean stop: exit 4, one line naming the file, row, key or value and what to do,
no traceback, no requirement run (conftest.usage_error), and nothing left stale: the last run's
passing report is replaced by an error report, and the baseline is left as it was, even with
--erran-save-baseline. Odd inputs that are fine give the result an independent count gives."""

import json
import math
from dataclasses import dataclass

import jsonschema
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import hostile_builders as hostile
from builders import channel_mean_model, paint
from conftest import BASE_CONFIG, rows_with_misses, usage_error
from detection_builders import Det, Obj, Scene
from evaluations import classification_evaluation, detection_evaluation
from pytest_erran.analysis.baseline import save_evaluation
from pytest_erran.config import load_schema
from pytest_erran.report.json_report import report_document

GATE = """
[buckets.low_light]
where = "lighting == 'low'"
[[require]]
bucket = "scratch"
recall = 0.5
"""


@dataclass
class Stale:
    report: str
    baseline: str


def _stale(root, evaluation) -> Stale:
    save_evaluation(root / "stale-baseline.json", evaluation)
    return Stale(json.dumps(report_document(evaluation)), (root / "stale-baseline.json").read_text())


@pytest.fixture(scope="session")
def stale_classification(tmp_path_factory):
    """A passing report and a baseline of an earlier run: a broken run must not leave the one
    nor touch the other."""
    root = tmp_path_factory.mktemp("stale-classification")
    evaluation = classification_evaluation(root, rows_with_misses(n=6, missed=()), GATE)
    assert evaluation.passed
    return _stale(root, evaluation)


def leave_stale(project, stale: Stale) -> None:
    """An earlier run's passing report and its baseline, where this run would write them."""
    (project.path / "report.json").write_text(stale.report)
    (project.path / ".erran").mkdir(exist_ok=True)
    (project.path / ".erran" / "baseline.json").write_text(stale.baseline)


def stops(project, stale: Stale, *fragments, args=()):
    """Run with a stale report and baseline in place (the baseline as the case left it); the
    run must stop cleanly (exit 4, one line holding `fragments`), replace the report by an error
    report, and leave the baseline as it was."""
    report, baseline = project.path / "report.json", project.path / ".erran" / "baseline.json"
    report.write_text(stale.report)
    if not baseline.exists():
        leave_stale(project, stale)
    kept = baseline.read_bytes()
    message = usage_error(project.run("--erran-report=report.json", "--erran-save-baseline", *args),
                          *fragments)
    document = json.loads(report.read_text())
    assert document["evaluated"] is False and "requirements" not in document, document
    assert document["error"] in message.replace("ERROR: erran: ", "", 1), (document["error"], message)
    jsonschema.validate(document, load_schema("report.schema.json"))
    assert baseline.read_bytes() == kept
    assert not list(project.path.rglob("*.tmp")), "a temp file was left behind"
    return message


@pytest.fixture
def good(project):
    project.model()
    project.data(rows_with_misses(n=12, missed=(1, 5)))
    project.config(GATE)
    return project


def rewrite_csv(project, change, name="dev.csv"):
    frame = pd.read_csv(project.path / name, dtype=str, keep_default_na=False)
    change(frame)
    frame.to_csv(project.path / name, index=False)


def edit_json(project, name, change):
    path = project.path / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def write(project, relative, data: bytes):
    path = project.path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# Each case: what it does to a good classification project, extra options, and the fragments of
# the one line the run must stop with.
def _dir_instead_of_image(p):
    (p.path / "images" / "0002.png").unlink()
    (p.path / "images" / "0002.png").mkdir()


def _broken_symlink(p):
    (p.path / "images" / "0003.png").unlink()
    (p.path / "images" / "0003.png").symlink_to(p.path / "images" / "gone.png")


def _truncated(p):
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8)
    Image.fromarray(noise).save(p.path / "images" / "0004.png")
    write(p, "images/0004.png", (p.path / "images" / "0004.png").read_bytes()[:300])


def _repeat_label_column(p):
    text = (p.path / "dev.csv").read_text().splitlines()
    (p.path / "dev.csv").write_text("\n".join([text[0] + ",label"] + [line + ",dent" for line in text[1:]]))


def _jsonl_repeated_key(p):
    lines = [json.dumps({"image": f"images/{i:04d}.png", "label": "ok"}) for i in range(3)]
    lines[1] = '{"image": "images/0001.png", "label": "ok", "label": "scratch"}'
    write(p, "dev.jsonl", ("\n".join(lines) + "\n").encode())
    p.config(GATE.replace("lighting == 'low'", "label == 'ok'"), base=BASE_CONFIG.replace("dev.csv", "dev.jsonl"))


def _nan_model(p):
    channel_mean_model(p.path / "model.onnx", bias=(math.nan, 0.0, 0.0))


def _metadata_not_a_list(p):
    channel_mean_model(p.path / "model.onnx", classes_metadata={"0": "ok"})
    p.config(GATE, base=BASE_CONFIG.replace('classes = ["ok", "scratch", "dent"]\n', ""))


def _predictions(p, text, name="preds.csv"):
    write(p, name, text.encode())


def _ids(p):
    return pd.read_csv(p.path / "dev.csv", dtype=str)["id"].tolist()


CLASSIFICATION_CASES = {
    # images
    "image-garbage": (lambda p: write(p, "images/0002.png", b"\x89PNG garbage"), (),
                      ["dev.csv line 4: cannot read image", "0002.png", "fix or replace the file"]),
    "image-empty": (lambda p: write(p, "images/0002.png", b""), (), ["dev.csv line 4: cannot read image"]),
    "image-truncated": (_truncated, (), ["dev.csv line 6:", "0004.png", "truncated"]),
    "image-is-a-directory": (_dir_instead_of_image, (),
                             ["dev.csv line 4: image", "0002.png is a directory, not a file"]),
    "image-broken-symlink": (_broken_symlink, (), ["dev.csv line 5: image", "0003.png does not exist"]),
    "image-too-many-pixels": (lambda p: p.config("max_image_pixels = 63\n" + GATE), ("-W", "error"),
                              ["dev.csv line 2: cannot read image", "64 pixels, more than max_image_pixels = 63",
                               "raise max_image_pixels in the config"]),
    # manifests
    "manifest-repeated-column": (_repeat_label_column, (),
                                 ["dev.csv line 1: the column 'label' appears twice", "keep one column"]),
    "jsonl-repeated-key": (_jsonl_repeated_key, (), ["dev.jsonl line 2: the key 'label' appears twice"]),
    "manifest-reserved-column": (lambda p: rewrite_csv(p, lambda f: f.insert(0, "_hit", "1")), (),
                                 ["the column '_hit' is a name pytest-erran uses itself"]),
    "manifest-is-missing": (lambda p: (p.path / "dev.csv").unlink(), (), ["dev.csv does not exist"]),
    "manifest-label-typo": (lambda p: rewrite_csv(p, lambda f: f.loc.__setitem__((3, "label"), "scrach")), (),
                            ["dev.csv line 5: label 'scrach' is not one of the classes"]),
    "manifest-blank-image": (lambda p: rewrite_csv(p, lambda f: f.loc.__setitem__((2, "image"), "")), (),
                             ["dev.csv line 4: empty `image`"]),
    # configs
    "config-unknown-key": (lambda p: p.config("treshold = 1\n" + GATE), (), ["unknown key 'treshold'"]),
    "config-not-utf8": (lambda p: write(p, "erran.toml", b'# caf\xe9\n' + BASE_CONFIG.encode()), (),
                        ["erran.toml line 1: not UTF-8 text"]),
    "config-exif-value": (lambda p: p.config('exif = "rotate"\n' + GATE), (), ["key 'exif'", "'apply', 'ignore'"]),
    "config-negative-pixels": (lambda p: p.config("max_image_pixels = -1\n" + GATE), (),
                               ["key 'max_image_pixels' must be at least 0, got -1"]),
    "config-where-attribute-chain": (
        lambda p: p.config(GATE.replace("lighting == 'low'", "lighting.str.__class__.__init__ == 1")), (),
        ["[buckets.low_light] where = ", "`lighting.str.__class__.__init__` is not allowed"]),
    "config-where-call": (lambda p: p.config(GATE.replace("lighting == 'low'", "lighting.map(open) == 1")), (),
                          ["the call `lighting.map(open)` is not allowed", ".str.startswith()"]),
    "config-where-unknown-column": (lambda p: p.config(GATE.replace("lighting ==", "lightning ==")), (),
                                    ["no column named 'lightning'", "Columns you can use:", "camera"]),
    "config-threshold-unknown-class": (lambda p: p.config("[class_thresholds]\nscrach = 0.5\n" + GATE), (),
                                       ["[class_thresholds] 'scrach' is not one of the classes"]),
    "config-option-is-a-directory": (lambda p: (p.path / "conf").mkdir(), ("--erran-config=conf",),
                                     ["--erran-config:", "conf is a directory, not a file"]),
    # models
    "model-nan": (_nan_model, (), ["model.onnx: output 'scores': scores hold nan for image images/0000.png"]),
    "model-second-input": (lambda p: hostile.two_inputs(p.path / "model.onnx"), (),
                           ["the model takes 2 inputs", "only input"]),
    "model-fails-at-run-time": (lambda p: hostile.lookup_by_brightness(p.path / "model.onnx", rows=150), (),
                                ["onnxruntime failed on image", "images/0000.png (dev.csv line 2)"]),
    "model-is-a-directory": (lambda p: ((p.path / "model.onnx").unlink(), (p.path / "model.onnx").mkdir()), (),
                             ["model.onnx: the model file is a directory, not an .onnx file"]),
    "model-metadata-not-a-list": (_metadata_not_a_list, (), ["metadata `classes` must be a JSON list"]),
    "model-too-many-outputs": (lambda p: p.model(extra_classes=2), (), ["5 scores per image", "3 names"]),
    # predictions files
    "predictions-nan-score": (lambda p: _predictions(p, "id,label,score\n" + "".join(
        f"{i},ok,{'nan' if k == 3 else 0.9}\n" for k, i in enumerate(_ids(p)))), ("--erran-predictions=preds.csv",),
        ["preds.csv line 5: `score` must be a number"]),
    "predictions-boolean-score": (lambda p: _predictions(p, "".join(json.dumps(
        {"id": i, "label": "ok", "score": k == 2 or 0.5}) + "\n" for k, i in enumerate(_ids(p))), "preds.jsonl"),
        ("--erran-predictions=preds.jsonl",), ["preds.jsonl line 3: `score` must be a number"]),
    "predictions-repeated-column": (lambda p: _predictions(p, "id,label,label\n" + "".join(
        f"{i},ok,ok\n" for i in _ids(p))), ("--erran-predictions=preds.csv",),
        ["preds.csv line 1: the column 'label' appears twice"]),
    # baselines
    "baseline-not-json": (lambda p: write(p, ".erran/baseline.json", b"{not json"), (),
                          ["baseline.json: the baseline is not valid JSON"]),
    "baseline-other-version": (lambda p: write(p, ".erran/baseline.json", b'{"erran_baseline": 99}'), (),
                               ["not an erran baseline of schema version 1 (found 99)"]),
    "baseline-units-not-a-table": (lambda p: edit_json(p, ".erran/baseline.json",
                                                       lambda d: d.update(units=["u001"])), (),
                                   ["baseline key 'units'", "save a new one with --erran-save-baseline"]),
}


@pytest.mark.parametrize("case", CLASSIFICATION_CASES)
def test_broken_classification_input_stops_cleanly(good, stale_classification, case):
    mutate, args, fragments = CLASSIFICATION_CASES[case]
    leave_stale(good, stale_classification)
    mutate(good)
    stops(good, stale_classification, *fragments, args=args)


def test_a_where_attribute_chain_never_runs(good, stale_classification):
    """The issue's case: an attribute chain ending in os.system(...) ran a shell command before
    the run stopped."""
    chain = "lighting.__class__.__init__.__globals__['os'].system('touch pwned') == 0"
    good.config(GATE.replace("lighting == 'low'", chain))
    stops(good, stale_classification, "[buckets.low_light] where = ", "is not allowed")
    assert not (good.path / "pwned").exists()


# --- detection ---------------------------------------------------------------------------------

def scene():
    """Two 64 x 32 images, three objects; every object found."""
    objects = [Obj(1, 0, "tube", (4, 4, 20, 20)), Obj(2, 0, "fin", (30, 10, 60, 30)),
               Obj(3, 1, "tube", (10, 2, 40, 12))]
    return Scene(sizes=[(64, 32), (64, 32)], categories={"tube": 1, "fin": 2}, objects=objects,
                 detections=[Det(o.image, o.label, o.box, 0.9) for o in objects])


DETECTION = """
task = "detection"
data = "dev.json"
predictions = "preds.json"
[[require]]
bucket = "tube"
recall = 0.5
"""


@pytest.fixture(scope="session")
def stale_detection(tmp_path_factory):
    root = tmp_path_factory.mktemp("stale-detection")
    evaluation = detection_evaluation(root, scene(), '[[require]]\nbucket = "tube"\nrecall = 0.5\n')
    return _stale(root, evaluation)


@pytest.fixture
def detection(project):
    project.coco(scene())
    project.coco_results(scene())
    project.write_config(DETECTION)
    return project


def _table_through_a_model(p):
    p.objects(scene(), "dev.csv")
    p.detector(scene(), classes=("fin", "tube"))
    p.write_config(DETECTION.replace("dev.json", "dev.csv").replace('predictions = "preds.json"',
                                                                     'model = "model.onnx"'))


def _zero_width_in_a_table(p):
    p.objects(scene(), "dev.csv")
    text = (p.path / "dev.csv").read_text().replace("4,4,20,20", "4,4,4,20")
    (p.path / "dev.csv").write_text(text)
    p.write_config(DETECTION.replace("dev.json", "dev.csv").replace("preds.json", "preds.csv"))
    p.detection_table(scene())


DETECTION_CASES = {
    "category-id-true": (lambda p: edit_json(p, "dev.json", lambda d: d["annotations"][1].update(category_id=True)),
                         ["dev.json annotation 2: category_id true is a boolean", "integer id"]),
    "result-category-id-true": (lambda p: edit_json(p, "preds.json", lambda d: d[0].update(category_id=True)),
                                ["preds.json[0]: category_id true is a boolean"]),
    "bbox-with-a-boolean": (lambda p: edit_json(p, "dev.json", lambda d: d["annotations"][0].update(
        bbox=[True, 4, 16, 16])), ["dev.json annotation 1: bbox [True, 4, 16, 16] holds a boolean"]),
    "result-score-true": (lambda p: edit_json(p, "preds.json", lambda d: d[2].update(score=True)),
                          ["preds.json[2]: score True is not a number"]),
    "result-bbox-nan": (lambda p: (p.path / "preds.json").write_text((p.path / "preds.json").read_text().replace(
        "[4.0, 4.0, 16.0, 16.0]", "[NaN, 4.0, 16.0, 16.0]")), ["preds.json[0]: bbox", "non-finite number"]),
    "zero-width-coco-box": (lambda p: edit_json(p, "dev.json", lambda d: d["annotations"][2].update(
        bbox=[10, 2, 0, 10])), ["dev.json annotation 3: bbox [10, 2, 0, 10] has zero width or height"]),
    "zero-width-table-box": (_zero_width_in_a_table, ["dev.csv line 2: the box has zero width (x1 = x2 = 4)"]),
    "box-wholly-outside": (lambda p: edit_json(p, "dev.json", lambda d: d["annotations"][2].update(
        bbox=[64, 2, 10, 10])), ["dev.json annotation 3: the box x1 64, y1 2, x2 74, y2 12 lies wholly "
                                 "outside its image (64 x 32)"]),
    "declared-width-wrong": (lambda p: edit_json(p, "dev.json", lambda d: d["images"][1].update(width=640)),
                             ["dev.json image 101: width = 640, but images/001.png is 64 x 32 pixels"]),
    "declared-size-turned": (lambda p: edit_json(p, "dev.json", lambda d: d["images"][0].update(width=32, height=64)),
                             ["dev.json image 100: width = 32, but images/000.png is 64 x 32 pixels"]),
    "table-through-a-model-without-classes": (_table_through_a_model, [
        "model.onnx: no `classes` in the config and none in the model's metadata", "in the model's output order"]),
    "data-is-a-directory": (lambda p: p.write_config(DETECTION.replace('"dev.json"', '"images"')),
                            ["images: is a directory; a detection dev set is a COCO JSON"]),
}


@pytest.mark.parametrize("case", DETECTION_CASES)
def test_broken_detection_input_stops_cleanly(detection, stale_detection, case):
    mutate, fragments = DETECTION_CASES[case]
    mutate(detection)
    stops(detection, stale_detection, *fragments)


# --- file systems and image folders ------------------------------------------------------------

FOLDER = 'model = "model.onnx"\ndata = "data"\nclasses = ["ok", "scratch", "dent"]\nnegative = "ok"\n' + \
    '[[require]]\nbucket = "scratch"\nrecall = 0.5\n'


@pytest.fixture
def folder(project):
    for path, looks in (("ok/a.png", "ok"), ("scratch/b.png", "scratch"), ("scratch/c.png", "ok"),
                        ("dent/d.png", "dent")):
        paint(project.path / "data" / path, looks)
    project.model()
    project.write_config(FOLDER)
    return project


def test_a_symlinked_subfolder_of_a_class_is_evaluated(folder):
    night = folder.path / "night-shots"
    for name, looks in (("e.png", "scratch"), ("f.png", "ok"), ("g.png", "scratch")):
        paint(night / name, looks)
    (folder.path / "data" / "scratch" / "night").symlink_to(night, target_is_directory=True)
    result, report = folder.report()
    scratch = {b["name"]: b for b in report["buckets"]}["scratch"]
    # by hand: b, e, g look like scratches; c and night/f look like "ok"
    assert (scratch["positives"], scratch["hits"]) == (5, 3)
    assert sorted(scratch["missed"]) == ["scratch/c.png", "scratch/night/f.png"]


@pytest.mark.parametrize("arrange, fragments", [
    (lambda root: paint(root / "scratch" / ".e.png", "scratch"),
     ["scratch/.e.png: a hidden image (or one in a hidden folder)", "rename it to evaluate it"]),
    (lambda root: paint(root / "dent" / ".thumbs" / "e.png", "dent"), ["dent/.thumbs/e.png: a hidden image"]),
    (lambda root: paint(root / ".cache" / "e.png", "ok"), [".cache/e.png: a hidden image"]),
    (lambda root: (root / "dent" / "loop").symlink_to(root / "dent", target_is_directory=True),
     ["dent/loop: the same folder as", "a symlink loop, or two links to one folder"]),
    (lambda root: (root / "ok" / "twice").symlink_to(root / "scratch", target_is_directory=True),
     ["the same folder as", "its images would count twice"]),
    (lambda root: (root / "ok" / "gone.png").symlink_to(root / "nowhere.png"), ["ok/gone.png: a symlink to nothing"]),
], ids=["hidden-file", "hidden-folder", "hidden-class-folder", "symlink-loop", "folder-twice", "broken-link"])
def test_image_folder_images_are_never_dropped_silently(folder, stale_classification, arrange, fragments):
    arrange(folder.path / "data")
    stops(folder, stale_classification, *fragments)


def test_non_image_files_in_a_class_folder_are_not_images(folder):
    (folder.path / "data" / "scratch" / "notes.txt").write_text("not an image")
    (folder.path / "data" / "scratch" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    _, report = folder.report()
    assert report["data"]["units"] == 4


# --- odd but fine: the result an independent count gives ------------------------------------

def test_a_box_partly_outside_its_image_is_kept_as_written(detection):
    edit_json(detection, "dev.json", lambda d: d["annotations"][2].update(bbox=[50, 2, 20, 10]))  # to x 70
    edit_json(detection, "preds.json", lambda d: d[2].update(bbox=[50, 2, 14, 10]))  # the visible part
    detection.write_config(DETECTION + '[buckets.edge]\nwhere = "edge_distance < 0"\n')
    _, report = detection.report()
    edge = {b["name"]: b for b in report["buckets"]}["edge"]
    # IoU of the visible part with the box as written: 14 x 10 / (20 x 10) = 0.7 >= 0.5: a hit;
    # edge_distance = (64 - 70) / 64 < 0
    assert (edge["positives"], edge["hits"]) == (1, 1)


@pytest.mark.parametrize("exif, hits", [("apply", 4), ("ignore", 2)])
def test_exif_orientation_is_applied_or_ignored_as_configured(project, exif, hits):
    """Stored top half "ok" red, bottom half "scratch" green, tagged as shown turned by 180
    degrees: upright, the top half is green. The model reads the top half only."""
    rows = []
    for i, orientation in enumerate((3, 3, 1, 1)):
        top, bottom = (0, 1) if orientation == 3 else (1, 0)
        hostile.halves(project.path / "images" / f"{i}.png", top, bottom, orientation)
        rows.append({"id": f"s{i}", "image": f"images/{i}.png", "label": "scratch"})
    project.data(rows)
    hostile.top_half_means(project.path / "model.onnx")
    project.config(f'exif = "{exif}"\n[[require]]\nbucket = "scratch"\nrecall = 0.1\n')
    _, report = project.report()
    scratch = {b["name"]: b for b in report["buckets"]}["scratch"]
    # by hand: orientation 1 images have green on top as stored: hits either way; orientation 3
    # images have green on top only when turned upright
    assert (scratch["positives"], scratch["hits"]) == (4, hits)


def test_an_image_too_small_for_blur_is_named_when_a_where_uses_blur(good, stale_classification):
    Image.new("RGB", (2, 2), (20, 200, 20)).save(good.path / "images" / "0004.png")
    good.config(GATE + '[buckets.blurry]\nwhere = "blur < 50"\n')
    stops(good, stale_classification, "dev.csv line 6: image", "0004.png is too small to measure `blur`")
    good.config(GATE + '[buckets.dark]\nwhere = "brightness < 50"\n')  # without blur it is fine
    assert good.run().ret == 0


def test_pillow_decompression_bomb_limit_is_one_rule_whatever_the_filters(tmp_path):
    """A 100-megapixel image: Pillow warns above 89.5 MP, which -W error made a traceback. The
    default limit is Pillow's own hard one (179 MP): it opens under any filter."""
    import warnings

    from pytest_erran.errors import ErranError
    from pytest_erran.inference.images import image_size
    from pytest_erran.inference.pixel_limit import pixel_limit
    from pytest_erran.config import MAX_IMAGE_PIXELS

    big = tmp_path / "big.png"
    Image.new("1", (10_000, 10_000)).save(big)  # 100 MP, 12 kB on disk
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pixel_limit(MAX_IMAGE_PIXELS):
            assert image_size(str(big), "dev.csv line 2") == (10_000, 10_000)
        with pixel_limit(50_000_000), pytest.raises(ErranError) as error:
            image_size(str(big), "dev.csv line 2")
    assert "dev.csv line 2: cannot read the size of" in str(error.value)
    assert "100,000,000 pixels, more than max_image_pixels = 50000000" in str(error.value)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485 or Image.MAX_IMAGE_PIXELS  # restored


def test_odd_but_valid_manifests_give_the_hand_count(project):
    """A BOM, CRLF line ends, a path with spaces and accents, and a column name with a space."""
    rows = rows_with_misses(n=9, missed=(4,))
    project.data(rows)
    (project.path / "images" / "0001.png").rename(project.path / "images" / "prise de vue é.png")
    lines = ["image,id,label,lighting,camera no"]
    for i, r in enumerate(rows):
        image = "images/prise de vue é.png" if i == 1 else f"images/{i:04d}.png"
        lines.append(f'"{image}",{r["id"]},{r["label"]},{r["lighting"]},{r["camera"]}')
    (project.path / "dev.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    project.model()
    project.config('[buckets.cam]\nwhere = "`camera no` == 1"\n' + GATE)
    result, report = project.report()
    cam = {b["name"]: b for b in report["buckets"]}["cam"]
    positives = [r for r in rows if r["camera"] == 1 and r["label"] != "ok"]
    assert (cam["positives"], cam["hits"]) == (len(positives), sum(r["id"] != "u004" for r in positives))

