"""The error analysis through real pytest runs, on dev sets with misses planted in one cause each:
dark images, blurred images, edge objects, faint objects, a class absent from train, an image
copied across splits, a confidently wrong label, a class with false alarms. Each must come out
ranked (or flagged) as planted. Then the compare step, the review sheet and Holm in the gate."""

import csv
import json
import shutil

import jsonschema
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from analysis_builders import HEIGHT, WIDTH, Scene, manifest, reference_brightness, textured, write_predictions
from builders import CLASSES, channel_mean_model
from conftest import usage_error
from pytest_erran.config import load_schema

TOP = """
model = "model.onnx"
data = "dev.csv"
classes = ["ok", "scratch", "dent"]
negative = "ok"
"""
REQUIRE = """
[[require]]
bucket = "all"
recall = 0.1
"""
CONFIG = TOP + REQUIRE


def analysed(project, *args):
    result, report = project.report("--erran-analyze", *args)
    jsonschema.validate(report, load_schema("report.schema.json"))
    json.loads((project.path / "report.json").read_text(), parse_constant=pytest.fail)  # no NaN in the file
    return result, report, report["analysis"]


def top_bucket(analysis):
    return next(b for b in analysis["buckets"] if not b["too_small"])


def names_of(entry):
    return {entry["name"], *entry["merged"]}


def reference_blur(path):
    pixels = np.asarray(Image.open(path).convert("RGB"), float)
    gray = pixels @ np.array([0.2125, 0.7154, 0.0721])
    laplacian = ndimage.convolve(gray, np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float))[1:-1, 1:-1]
    return float(laplacian.var())


def image_cause_project(project, cause, misses_elsewhere=(40, 52)):
    """60 train images (normal light, sharp) and 90 dev images of which the first 24 carry the
    cause (dark or blurred); 12 of their 16 defects are painted as "ok" (missed), and two other
    defects are missed too."""
    root, rng, rows = project.path, np.random.default_rng(0), []
    for i in range(60):
        label = CLASSES[i % 3]
        textured(root / f"images/t{i:03d}.png", label, level=int(rng.integers(90, 150)), seed=i)
        rows.append({"id": f"t{i:03d}", "image": f"images/t{i:03d}.png", "label": label, "split": "train"})
    planted = []
    for i in range(90):
        label = CLASSES[i % 3]
        affected = i < 24
        missed = (affected and label != "ok" and len(planted) < 12) or i in misses_elsewhere
        if affected and missed:
            planted.append(f"d{i:03d}")
        level = 8 if affected and cause == "dark" else int(rng.integers(90, 150))
        textured(root / f"images/d{i:03d}.png", "ok" if missed else label, level=level,
                 blur=1.5 if affected and cause == "blurry" else 0.0, seed=100 + i)
        rows.append({"id": f"d{i:03d}", "image": f"images/d{i:03d}.png", "label": label, "split": "dev"})
    manifest(root, rows)
    channel_mean_model(root / "model.onnx", size=(32, 32))
    project.config(CONFIG, base="")
    return rows, planted


@pytest.mark.parametrize("cause, experiment", [("dark", "Add random brightness data augmentation."),
                                               ("blurry", "Add random blur data augmentation.")])
def test_a_planted_image_cause_is_ranked_first_with_its_experiment(project, cause, experiment):
    rows, planted = image_cause_project(project, cause)
    result, report, analysis = analysed(project)
    assert result.ret == 0
    top = top_bucket(analysis)
    assert f"auto:{cause}" in names_of(top)
    assert top["misses"] == 12 and top["q"] < 0.01 and (top["lift"] is None or top["lift"] > 5)
    assert experiment in top["suggestions"]
    assert analysis["summary"]["misses"] == 14
    # the threshold is the train split's 5th percentile of the property, computed here directly
    prop = {"dark": "brightness", "blurry": "blur"}[cause]
    measure = reference_brightness if cause == "dark" else reference_blur
    train = [measure(project.path / r["image"]) for r in rows if r["split"] == "train"]
    threshold = next(t for t in analysis["thresholds"] if t["bucket"] == f"auto:{cause}")
    assert (threshold["source"], threshold["property"], threshold["train_values"]) == ("train", prop, 60)
    assert threshold["value"] == pytest.approx(np.percentile(train, 5), rel=1e-9)
    # the terminal says it, and says what to try first
    result.stdout.fnmatch_lines(["*error analysis: 14 misses among 60 positives*",
                                 f"*auto:{cause}*12*{experiment}*",
                                 f"try next: *auto:{cause}*{experiment}"])


def edge_scene(project):
    """Train objects well inside their images; in dev, 14 objects touch the left edge and 12 of
    them are missed (3 with a box beside them: localisation), plus 2 misses inside."""
    scene, rng = Scene(project.path), np.random.default_rng(1)
    train_edges = []
    for i in range(30):
        image = scene.image("train", i)
        for k in range(2):
            x, y = int(rng.integers(10, 60)), int(rng.integers(8, 40))
            scene.object(image, ("pit", "dent")[k], (x, y, x + 12, y + 10))
            train_edges.append(min(x / WIDTH, y / HEIGHT, (WIDTH - x - 12) / WIDTH, (HEIGHT - y - 10) / HEIGHT))
    predictions, edge = [], []
    for i in range(40):
        image = scene.image("dev", 100 + i)
        inside = scene.object(image, "pit", (40, 25, 52, 35))
        if i not in (20, 21):
            predictions.append(scene.found(inside))
        if i < 14:
            edge.append(scene.object(image, ("pit", "dent")[i % 2], (0, 40, 12, 50)))
    for k, annotation in enumerate(edge):
        if k >= 12:
            predictions.append(scene.found(annotation))
        elif k < 3:
            predictions.append(scene.found(annotation, shift=7))  # IoU 5/19 with it: localisation
    scene.write()
    return scene, predictions, edge, train_edges


DETECTION = """
task = "detection"
data = "dev.json"
predictions = "preds.json"
[[require]]
bucket = "all"
recall = 0.1
"""


def test_planted_edge_objects_are_ranked_first_with_their_error_types(project):
    scene, predictions, edge, train_edges = edge_scene(project)
    write_predictions(project.path, predictions)
    project.write_config(DETECTION)
    result, report, analysis = analysed(project)
    top = top_bucket(analysis)
    assert "auto:edge" in names_of(top) and top["misses"] == 12 and top["positives"] == 14
    assert "Add random crop data augmentation." in top["suggestions"]
    assert top["errors"] == {"missed": 9, "localisation": 3, "classification": 0, "both": 0}
    threshold = next(t for t in analysis["thresholds"] if t["bucket"] == "auto:edge")
    assert threshold["source"] == "train" and threshold["value"] == pytest.approx(np.percentile(train_edges, 5))
    assert analysis["error_types"]["missed"] == {"missed": 11, "localisation": 3, "classification": 0, "both": 0}
    assert analysis["error_types"]["false_positives"]["localisation"] == 3
    result.stdout.fnmatch_lines(["*error types: missed objects 14 (missed 11, localisation 3*"])


def test_planted_faint_objects_are_ranked_first_and_a_faint_one_is_not_a_dark_image(project):
    scene = Scene(project.path)
    for i in range(20):
        scene.object(scene.image("train", i), ("pit", "dent")[i % 2], (30, 20, 44, 32))
    predictions, faint = [], []
    for i in range(30):
        image = scene.image("dev", 50 + i)
        strong = scene.object(image, "pit", (10, 10, 24, 22))
        if i != 29:
            predictions.append(scene.found(strong))
        if i < 12:
            faint.append(scene.object(image, "dent", (50, 30, 64, 42), contrast=4))
            if i >= 10:
                predictions.append(scene.found(faint[-1]))
    scene.write()
    write_predictions(project.path, predictions)
    project.write_config(DETECTION + "[auto]\nfaint = 10\n")
    result, report, analysis = analysed(project, "--erran-misses=sheet.csv")
    top = top_bucket(analysis)
    assert "auto:faint" in names_of(top) and top["misses"] == 10 and top["positives"] == 12
    assert "Add random contrast data augmentation." in top["suggestions"]
    faint_threshold = next(t for t in analysis["thresholds"] if t["bucket"] == "auto:faint")
    assert (faint_threshold["source"], faint_threshold["value"]) == ("config", 10.0)
    # the images are all equally bright: no dark bucket holds the faint misses
    assert not any("auto:dark" in names_of(b) for b in analysis["buckets"] if b["misses"] >= 10)
    with (project.path / "sheet.csv").open() as f:
        sheet = list(csv.DictReader(f))
    assert len(sheet) == 11 and all(row["cause"] == "" for row in sheet)
    faint_rows = [row for row in sheet if row["label"] == "dent"]
    assert len(faint_rows) == 10
    assert all(float(row["object_contrast"]) < 6 and "auto:faint" in row["auto"].split(";") for row in faint_rows)
    strong_row = next(row for row in sheet if row["label"] == "pit")
    assert float(strong_row["object_contrast"]) > 70 and strong_row["error"] == "missed"


def absent_class_project(project, top="", tables=""):
    rows = []
    for i in range(30):
        label = ("ok", "scratch")[i % 2]  # train never saw a dent
        rows.append({"id": f"t{i:02d}", "label": label, "split": "train"})
    for i in range(30):
        label = CLASSES[i % 3]
        rows.append({"id": f"d{i:02d}", "label": label, "split": "dev",
                     "looks_like": "ok" if label == "dent" and i < 24 else label})
    project.model()
    project.data(rows)
    project.config(top + REQUIRE + tables, base=TOP)


def test_a_class_absent_from_train_is_a_warning_on_every_run_and_a_failing_item_when_required(project):
    absent_class_project(project)
    result = project.run()
    assert result.ret == 0
    result.stdout.fnmatch_lines(["coverage: dent has 10 positives in dev but 0 in train (min_train 1): no model "
                                 "learns what it never saw; collect more for train, or move some of its dev images there"])
    absent_class_project(project, "require_coverage = true\n", """
    [[require]]
    bucket = "dent"
    min_train = 1
    [[require]]
    bucket = "scratch"
    recall = 0.5
    min_train = 1
    """)
    result, report, analysis = analysed(project, "-v")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*::coverage(dent)>=1 FAILED*", "*::recall(scratch)>=0.50 PASSED*",
                                 "*::coverage>=1 FAILED*"])
    outcomes = {r["id"]: (r["outcome"], r["value"]) for r in report["requirements"]}
    assert outcomes["coverage(dent)>=1"] == ("failed", 0.0) and outcomes["coverage>=1"] == ("failed", 1.0)
    counts = {e["name"]: e["positives"] for e in analysis["coverage"]["buckets"]}
    assert counts["dent"] == {"dev": 10, "train": 0} and counts["scratch"] == {"dev": 10, "train": 15}
    assert analysis["coverage"]["uncovered"] == ["dent"]
    top = top_bucket(analysis)
    assert top["name"] == "dent" and top["cause"] == "uncovered"
    assert analysis["next"][0].startswith("first fix the split: dent has 10 positives in dev but 0 in train")


def test_coverage_and_leakage_settings_need_a_split_column(project):
    project.model()
    project.data([{"id": f"u{i}", "label": CLASSES[i % 3]} for i in range(6)])
    project.config("require_coverage = true\n")
    usage_error(project.run(), "has no `split` column")


def test_an_image_copied_across_splits_is_leakage(project):
    root = project.path
    rows = []
    for i in range(12):
        textured(root / f"images/{i:02d}.png", CLASSES[i % 3], level=100, seed=i)
        rows.append({"id": f"u{i:02d}", "image": f"images/{i:02d}.png", "label": CLASSES[i % 3],
                     "split": "dev" if i < 6 else "train"})
    shutil.copy(root / "images/01.png", root / "images/07.png")  # the same file under another name
    Image.open(root / "images/02.png").save(root / "images/08.bmp")  # the same pixels, another format
    rows[8]["image"] = "images/08.bmp"
    pixels = np.asarray(Image.open(root / "images/03.png")).copy()
    pixels[0, :4, 0] += 1  # four pixels one level brighter: a near copy
    Image.fromarray(pixels).save(root / "images/09.png")
    manifest(root, rows)
    channel_mean_model(root / "model.onnx", size=(32, 32))
    project.config(TOP + "forbid_leakage = true\n" + REQUIRE, base="")
    result, report = project.report("-v")  # no --erran-analyze: the check runs on its own
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*::leakage<=0 FAILED*", "*leakage: images/01.png is identical to images/07.png*"])
    duplicates = report["analysis"]["duplicates"]
    assert [(d["kind"], d["image"], d["other"], d["other_split"]) for d in duplicates] == [
        ("identical", "images/01.png", "images/07.png", "train"),
        ("identical", "images/02.png", "images/08.bmp", "train"),
        ("near", "images/03.png", "images/09.png", "train")]
    requirement = {r["id"]: r for r in report["requirements"]}["leakage<=0"]
    assert requirement["value"] == 3.0 and "3 image(s) of dev have a copy in another split" in requirement["message"]


def test_a_confidently_wrong_label_is_listed_apart_and_still_counted(project):
    rows = []
    for i in range(30):
        label = CLASSES[i % 3]
        rows.append({"id": f"u{i:02d}", "label": label, "strength": 200})
    rows[5].update(looks_like="scratch", strength=250)  # labelled dent, looks like a very clear scratch
    rows[8].update(looks_like="ok", strength=100)  # an ordinary miss: seen as "ok", but unsure
    project.model()
    project.data(rows)
    project.config(CONFIG, base="")
    result, report, analysis = analysed(project)
    assert [(e["id"], e["label"], e["predicted"]) for e in analysis["label_errors"]] == [("u05", "dent", "scratch")]
    error = analysis["label_errors"][0]
    assert error["score"] == pytest.approx(250 / 255, rel=1e-6)
    assert error["class_mean"] == pytest.approx(200 / 255, rel=1e-6)  # scratch's own mean when right
    dent = {b["name"]: b for b in report["buckets"]}["dent"]
    assert sorted(dent["missed"]) == ["u05", "u08"]  # never excluded, never counted as fixed
    result.stdout.fnmatch_lines(["*possible label errors*images/0005.png labelled dent, the model says scratch*"])


def test_a_class_with_false_alarms_gets_the_threshold_that_reaches_its_precision(project):
    rows = []
    for i in range(36):
        label = CLASSES[i % 3]
        rows.append({"id": f"u{i:02d}", "label": label, "strength": 200})
    ok_rows = [r for r in rows if r["label"] == "ok"][:5]
    for row in ok_rows:  # false alarms, at a lower score than the real scratches
        row.update(looks_like="scratch", strength=120)
    for row in [r for r in rows if r["label"] == "scratch"][:2]:  # two faint scratches score as low
        row["strength"] = 120
    project.model()
    project.data(rows)
    gate = CONFIG + """
    [[require]]
    bucket = "scratch"
    precision = 0.9
    """
    project.config(gate, base="")
    result, report, analysis = analysed(project)
    assert result.ret == 1  # precision 12 / 17
    entry = next(e for e in analysis["false_positives"] if e["class"] == "scratch")
    assert (entry["false_positives"], entry["true_positives"]) == (5, 12)
    assert entry["target_precision"] == 0.9 and entry["target_source"] == "requirement precision(scratch)>=0.90"
    assert entry["suggested_threshold"] == pytest.approx(200 / 255, rel=1e-6)
    assert (entry["precision_at"], entry["recall"], entry["recall_at"], entry["hits_lost"]) == \
        pytest.approx((1.0, 1.0, 10 / 12, 2))
    assert "Increase the confidence threshold for scratch." in entry["suggestions"]
    result.stdout.fnmatch_lines(["false positives: scratch: 5 false positives (precision 0.706); "
                                 "class_thresholds.scratch = 0.7843 reaches precision 1.000*(2 hits lost)"])
    # the suggested threshold, set, does what the analysis said
    project.config(gate + f"\n[class_thresholds]\nscratch = {entry['suggested_threshold']!r}\n", base="")
    result, report = project.report()
    scratch = {b["name"]: b for b in report["buckets"]}["scratch"]
    assert (scratch["precision"], scratch["hits"], scratch["positives"]) == (1.0, 10, 12)
    assert result.ret == 0


def test_the_compare_step_says_where_the_change_worked(project):
    scene, before, edge, _ = edge_scene(project)
    # the new model: 9 of the 12 edge objects missed before are found, one found before is missed
    after = [p for p in before if p["bbox"][0] != 7]  # drop the off boxes
    after = [p for p in after if not (p["bbox"][0] == 0 and p["image_id"] == scene.annotations[edge[12] - 1]["image_id"])]
    after += [scene.found(annotation) for annotation in edge[:9]]
    write_predictions(project.path, before, "before.json")
    write_predictions(project.path, after, "after.json")
    project.write_config(DETECTION.replace("preds.json", "before.json"))
    assert project.run("--erran-save-baseline").ret == 0
    project.write_config(DETECTION.replace("preds.json", "after.json"))
    result, report, analysis = analysed(project)
    assert analysis["compare"][0] == ("auto:edge: 9 newly caught, 1 newly missed (p = 0.011): the change worked "
                                      "there; no other bucket got significantly worse (Holm)")
    edge_entry = next(b for b in analysis["buckets"] if "auto:edge" in names_of(b))
    assert (edge_entry["newly_caught"], edge_entry["newly_missed"]) == (9, 1)
    assert edge_entry["improved_p"] == pytest.approx(11 / 1024)
    result.stdout.fnmatch_lines(["compare: auto:edge: 9 newly caught, 1 newly missed (p = 0.011)*"])


def test_the_review_sheet_comes_back_as_tags_and_buckets(project):
    rows, planted = image_cause_project(project, "dark")
    result, report, analysis = analysed(project, "--erran-misses=review/sheet.csv")
    result.stdout.fnmatch_lines(["review sheet: 14 misses written to review/sheet.csv*"])
    path = project.path / "review" / "sheet.csv"
    with path.open() as f:
        sheet = list(csv.DictReader(f))
    assert {row["id"] for row in sheet} == set(planted) | {"d040", "d052"}
    assert set(sheet[0]) >= {"id", "image", "label", "prediction", "score", "auto", "brightness", "cause"}
    assert sheet[0]["bucket"] == top_bucket(analysis)["name"]  # the ranked buckets take turns
    for row in sheet:
        row["cause"] = "glare" if row["id"] in planted[:6] else ""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(sheet[0]))
        writer.writeheader()
        writer.writerows(sheet)
    project.config(TOP + 'causes = "review/sheet.csv"\n' + REQUIRE + """
    [buckets.glare]
    tag = "glare"
    [[require]]
    bucket = "glare"
    recall = 0.0
    """, base="")
    result, report, analysis = analysed(project)
    glare = {b["name"]: b for b in report["buckets"]}["glare"]
    assert (glare["positives"], glare["hits"], sorted(glare["missed"])) == (6, 0, sorted(planted[:6]))
    assert any("tag:glare" in names_of(b) for b in analysis["buckets"])
    # a sheet row for a unit the dev set does not have is an error naming the row
    with path.open("a") as f:
        f.write("nobody,x.png,dent,ok,0.1,,,1,1,1,glare\n")
    usage_error(project.run(), "sheet.csv line 16: id 'nobody' is not a unit of the dev set")


GATE = """
[buckets.left]
where = "side == 'left'"
[buckets.right]
where = "side == 'right'"
[[require]]
bucket = "left"
max_drop = 0.02
[[require]]
bucket = "right"
max_drop = 0.02
"""


@pytest.mark.parametrize("correction, outcome", [("holm", "inconclusive"), ("none", "regressed")])
def test_holm_adjusts_the_max_drop_family(project, correction, outcome):
    # each side: 5 newly missed, 0 caught -> p = 1/32 < 0.05; Holm over 2: 1/16 >= 0.05
    rows = [{"id": f"u{i:02d}", "label": "scratch", "side": "left" if i < 10 else "right",
             "strength": 60 if i % 10 < 5 else 200} for i in range(20)]
    project.model()
    project.data(rows)
    project.config(f'correction = "{correction}"\n' + GATE)
    assert project.run("--erran-save-baseline").ret == 0
    project.model(bias=(0.3, 0.0, 0.0))  # the faint ones now look like "ok"
    result, report = project.report()
    assert result.ret == (1 if outcome == "regressed" else 0)
    for requirement in report["requirements"]:
        assert requirement["outcome"] == outcome
        assert requirement["regression_p"] == pytest.approx(1 / 32)
        if correction == "holm":
            assert requirement["adjusted_p"] == pytest.approx(1 / 16)
            assert "p = 0.0312, 0.0625 after Holm over 2 buckets" in requirement["message"]
        else:
            assert "adjusted_p" not in requirement


def test_automatic_buckets_are_buckets_a_requirement_can_name(project):
    rows, planted = image_cause_project(project, "dark")
    project.config(TOP + """
    [auto]
    dark = 80
    [[require]]
    bucket = "auto:dark"
    recall = 0.9
    """, base="")
    result, report = project.report("-v")  # no --erran-analyze: the bucket exists for its requirement
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*::recall(auto:dark)>=0.90 FAILED*"])
    dark = {b["name"]: b for b in report["buckets"]}["auto:dark"]
    dark_rows = [r for r in rows if r["split"] == "dev" and r["label"] != "ok"
                 and reference_brightness(project.path / r["image"]) <= 80]
    assert dark["positives"] == len(dark_rows) == 16 and sorted(dark["missed"]) == sorted(planted)
    dark_threshold = next(t for t in report["analysis"]["thresholds"] if t["bucket"] == "auto:dark")
    assert dark_threshold == {"bucket": "auto:dark", "property": "brightness", "operator": "<=", "value": 80.0,
                              "source": "config"}


def test_an_automatic_bucket_of_the_other_task_or_a_reserved_name_is_a_usage_error(project):
    project.model()
    project.data([{"id": f"u{i}", "label": CLASSES[i % 3]} for i in range(6)])
    project.config("""
    [[require]]
    bucket = "auto:edge"
    recall = 0.5
    """)
    usage_error(project.run(), "[[require]] bucket = 'auto:edge' is not a bucket", "auto:dark")
    project.config("""
    [buckets."auto:mine"]
    tag = "x"
    """)
    usage_error(project.run(), "names starting with 'auto:' are the automatic buckets'")
