"""The gate never lies: no false pass, no false regression, no crash on bad input (issue 8).

Each case once gave exit 0 or 1 where the pipeline was broken, or an INTERNALERROR traceback
where one clear line was due. Through real pytest runs, each asserting the exact outcome."""

import json
import math
import shutil

import jsonschema
import numpy as np
import pytest
from PIL import Image

import hostile_builders as hostile
from builders import channel_mean_model, paint
from conftest import BASE_CONFIG, rows_with_misses, usage_error
from detection_builders import Det, Obj, Scene
from pytest_erran.config import load_schema

GATE = """
[[require]]
bucket = "scratch"
recall = 0.5
"""


def report_of(project, name="report.json"):
    return json.loads((project.path / name).read_text())


def buckets(report):
    return {b["name"]: b for b in report["buckets"]}


# --- a false pass: non-finite model outputs are broken input ----------------------------------

def test_a_nan_score_column_is_broken_input_not_a_perfect_recall(project):
    """NaN in the scratch column: argmax picked it for every image, scratch recall became 1.000
    and the gate passed (exit 0)."""
    channel_mean_model(project.path / "model.onnx", bias=(0.0, math.nan, 0.0))
    project.data(rows_with_misses(n=9))
    project.config(GATE)
    message = usage_error(project.run(), "model.onnx: output 'scores': scores hold nan for image "
                          "images/0000.png (dev.csv line 2)", "must be finite numbers")
    assert message.count("\n") == 0


def test_minus_infinity_on_one_image_names_that_image(project):
    hostile.log_of_channel_means(project.path / "model.onnx")
    rows = rows_with_misses(n=9, missed=())
    project.data(rows)
    pixels = np.full((8, 8, 3), 200, np.uint8)
    pixels[..., 0] = 0  # log(0) = -inf in the "ok" column
    Image.fromarray(pixels).save(project.path / "images" / "0005.png")
    project.config(GATE)
    usage_error(project.run(), "scores hold -inf for image images/0005.png (dev.csv line 7)")


def detection_scene(score=0.9, box=(30.0, 4.0, 50.0, 20.0)):
    return Scene(sizes=[(64, 32), (64, 32)], categories={"tube": 1},
                 objects=[Obj(1, 0, "tube", (8, 8, 24, 24)), Obj(2, 1, "tube", (30, 4, 50, 20))],
                 detections=[Det(0, "tube", (8, 8, 24, 24), 0.9), Det(1, "tube", box, score)])


DETECTION = """
task = "detection"
model = "model.onnx"
data = "dev.json"
[[require]]
bucket = "tube"
recall = 0.5
"""


@pytest.mark.parametrize("layout", ["boxes_scores_labels", "yolo"])
def test_a_nan_detection_score_is_broken_input(project, layout):
    scene = detection_scene(score=math.nan)
    project.coco(scene)
    project.detector(scene, layout=layout)
    project.write_config(DETECTION)
    what = "scores hold nan" if layout == "boxes_scores_labels" else "its raw output [1, 5, 7] hold nan"
    usage_error(project.run("--erran-batch-size=1"), f"model.onnx: output adapter '{layout}': {what} "
                "for image images/001.png (dev.json image 101)")


# --- a false regression: object ids that survive edits to other rows --------------------------

def test_deleting_a_row_of_an_object_table_does_not_re_pair_the_others(project):
    """Positional ids (image#row) re-paired every later object of the image against the baseline:
    identical predictions were "regressed ... newly missed, p = 0.031" (exit 1)."""
    objects = [Obj(i + 1, 0, "tube", (4 * i, 0, 4 * i + 3, 3)) for i in range(8)]
    objects += [Obj(9, 1, "tube", (0, 0, 10, 10))]
    hits = [0, 2, 4, 6, 8]  # every other object of image 0 is found, and image 1's
    scene = Scene(sizes=[(64, 32), (64, 32)], categories={"tube": 1}, objects=objects,
                  detections=[Det(o.image, "tube", o.box, 0.9) for o in objects if o.id - 1 in hits])
    project.objects(scene)
    project.detection_table(scene)
    project.write_config("""
        task = "detection"
        data = "dev.csv"
        predictions = "preds.csv"
        [[require]]
        bucket = "all"
        max_drop = 0.0
    """)
    saved = project.run("--erran-save-baseline")
    assert saved.ret == 0
    lines = (project.path / "dev.csv").read_text().splitlines()
    del lines[2]  # the second object of image 0 (a miss): every later object moves up a row
    (project.path / "dev.csv").write_text("\n".join(lines) + "\n")
    result, report = project.report()
    assert result.ret == 0, result.stdout.str()
    everything = buckets(report)["all"]
    assert (everything["newly_missed"], everything["newly_caught"]) == ([], [])
    assert (everything["shared"], everything["added"]) == (8, 0)
    assert report["baseline"]["removed"] == 1
    assert report["requirements"][0]["outcome"] == "passed"


# --- crashes that are now clean stops -----------------------------------------------------------

@pytest.fixture
def good(project):
    project.model()
    project.data(rows_with_misses(n=12, missed=(1, 5)))
    project.config(GATE)
    return project


def test_a_model_with_a_second_required_input(good):
    hostile.two_inputs(good.path / "model.onnx")
    usage_error(good.run(), "model.onnx: the model takes 2 inputs ('image' ['N', 3, 8, 8], 'bias' "
                "['N', 3])", "export it with the image as its only input")


def test_onnxruntime_failing_on_one_image_names_it(good):
    hostile.lookup_by_brightness(good.path / "model.onnx", rows=210)
    paint(good.path / "images" / "0006.png", "dent", strength=230)  # level 230: beyond the table
    message = usage_error(good.run(), "model.onnx: onnxruntime failed on image",
                          "images/0006.png (dev.csv line 8)", "Gather", "fix the model, or the image")
    assert "0005.png" not in message


def test_onnxruntime_failing_on_a_batch_says_to_run_one_image_at_a_time(good):
    hostile.batch_of_one_only(good.path / "model.onnx")
    usage_error(good.run("--erran-batch-size=4"), "onnxruntime failed on a batch of 4 images",
                "images/0000.png", "that each run alone", "Reshape",
                "the model does not take batches of 4: set batch_size = 1")
    result = good.run("--erran-batch-size=1")  # and so it runs
    assert result.ret == 0, result.stdout.str()


def test_an_erran_toml_that_is_not_utf8(good):
    (good.path / "erran.toml").write_bytes(BASE_CONFIG.encode() + b'split = "d\xe9v"\n' + GATE.encode())
    usage_error(good.run(), "erran.toml line 6: not UTF-8 text (byte 0xe9)", "save the file as UTF-8")


def test_an_erran_toml_with_a_bom_is_read(good):
    text = (good.path / "erran.toml").read_text()
    (good.path / "erran.toml").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert good.run().ret == 0


# --- caches: read-only, or well-formed but wrong ------------------------------------------------

CACHE = (".pytest_cache", "d", "erran-predictions")


def comparable(report):
    return {"buckets": report["buckets"], "requirements": report["requirements"]}


@pytest.mark.parametrize("entries", [False, True], ids=["empty", "with-entries"])
def test_a_read_only_cache_is_skipped_with_one_warning_line(good, entries):
    reference = good.report(name="reference.json")[1]
    cache = good.path.joinpath(*CACHE)
    if not entries:
        shutil.rmtree(good.path / ".pytest_cache")
    target = cache if entries else good.path / ".pytest_cache"
    with hostile.read_only(target):
        result, report = good.report("-p", "no:randomly")
    out = result.stdout.str()
    assert result.ret == 0 and "INTERNALERROR" not in out and "Traceback" not in out, out
    warning = [line for line in result.outlines if "erran: warning: cannot write the cache" in line]
    assert len(warning) == 1, out
    assert "predictions are not cached this run" in warning[0]
    assert comparable(report) == comparable(reference)


WRONG_ENTRIES = {
    "missing-index": lambda a: {"scores": a["scores"]},
    "too-few-rows": lambda a: {"index": a["index"][:-1], "scores": a["scores"][:-1]},
    "nan-scores": lambda a: {"index": a["index"], "scores": np.full_like(a["scores"], np.nan)},
    "index-out-of-range": lambda a: {"index": a["index"] + 7, "scores": a["scores"]},
    "float64-scores": lambda a: {"index": a["index"], "scores": a["scores"].astype(np.float64)},
    "all-hits": lambda a: {"index": a["index"], "scores": a["scores"], "_key": np.array("another key")},
}


def test_a_well_formed_but_wrong_cache_entry_is_recomputed(good):
    reference = good.report(name="reference.json")[1]
    [entry] = good.path.joinpath(*CACHE).glob("*.npz")
    for wrong, change in WRONG_ENTRIES.items():  # each run recomputes, and stores a good entry again
        with np.load(entry) as stored:
            arrays = {name: stored[name] for name in stored.files}
        np.savez(entry, **{"_key": arrays["_key"], **change(arrays)})
        result, report = good.report()
        assert result.ret == 0, (wrong, result.stdout.str())
        assert "predictions from cache" not in result.stdout.str(), wrong
        assert comparable(report) == comparable(reference), wrong
    assert "predictions from cache" in good.run().stdout.str()


def test_an_entry_copied_from_another_model_is_not_used(good):
    """Same shapes, plausible values: only the key stored inside tells it is another's."""
    worse = good.model("worse.onnx", bias=(0.9, 0.0, 0.0))  # "ok" wins: every defect missed
    _, own = good.report("--erran-model=worse.onnx", name="worse.json")
    before = set(good.path.joinpath(*CACHE).glob("*.npz"))
    _, reference = good.report(name="reference.json")
    [good_entry] = set(good.path.joinpath(*CACHE).glob("*.npz")) - before
    [worse_entry] = before
    shutil.copyfile(worse_entry, good_entry)
    result, report = good.report()
    assert "predictions from cache" not in result.stdout.str()
    assert comparable(report) == comparable(reference) != comparable(own)
    assert worse.exists()


# --- warning filters ------------------------------------------------------------------------------

TOO_SMALL = """
[buckets.tiny]
where = "lighting == 'low' and label == 'scratch'"
[[require]]
bucket = "tiny"
recall = 0.7
"""


@pytest.fixture
def warned(project):
    project.model()
    project.data(rows_with_misses(n=30, missed=()))  # 5 scratches in low light: too small to tell
    project.config(TOO_SMALL)
    return project


def test_a_warning_is_one_line_under_default_filters(warned):
    result = warned.run()
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*erran.toml:*: ErranWarning: recall(tiny)>=0.70 too_small: recall 1.000 (5/5)*"])


@pytest.mark.parametrize("how", [("-W", "error"), ("-W", "error::pytest_erran.ErranWarning")])
def test_under_w_error_a_warning_fails_its_requirement_in_one_line(warned, how):
    result, report = warned.report(*how)
    out = result.stdout.str()
    assert result.ret == 1 and "Traceback" not in out and "INTERNALERROR" not in out, out
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "= FAILURES =" in line)
    end = next(i for i, line in enumerate(lines) if "= erran =" in line)
    failure = [line for line in lines[start + 1:end] if line.strip()]
    assert len(failure) == 2, failure  # the item's title and its one line
    assert failure[1].startswith("too_small, an ErranWarning that this run's warning filters make an "
                                 "error ('ignore::pytest_erran.ErranWarning' in filterwarnings")
    [requirement] = report["requirements"]
    assert (requirement["outcome"], requirement["passed"]) == ("too_small", False)
    result.stdout.fnmatch_lines(["tiny * TOO SMALL"])


def test_filterwarnings_error_with_erran_warnings_ignored_passes_quietly(warned):
    warned.pytester.makeini("""
        [pytest]
        filterwarnings =
            error
            ignore::pytest_erran.ErranWarning
    """)
    result = warned.run()
    assert result.ret == 0 and "ErranWarning" not in result.stdout.str()


# --- the summary and report show what ran ---------------------------------------------------------

TWO = """
[[require]]
bucket = "scratch"
recall = 0.5
[[require]]
bucket = "dent"
recall = 0.99
"""


@pytest.fixture
def two(project):
    project.model()
    project.data(rows_with_misses())  # dent misses two: recall(dent)>=0.99 fails
    project.config(TWO)
    return project


def not_run(report):
    return sorted(r["id"] for r in report["requirements"] if r["outcome"] == "not_run")


def test_deselected_requirements_are_not_run_not_failed(two):
    result, report = two.report("-k", "scratch")
    out = result.stdout.str()
    assert result.ret == 0
    assert "FAILED" not in out and "missed in dent" not in out, out
    result.stdout.fnmatch_lines(["scratch * passed", "dent * not run"])
    assert not_run(report) == ["recall(dent)>=0.99"]
    dent = next(r for r in report["requirements"] if r["id"] == "recall(dent)>=0.99")
    assert dent["passed"] is None and dent["value"] is None
    jsonschema.validate(report, load_schema("report.schema.json"))


def test_last_failed_and_exitfirst_show_only_what_ran(two):
    two.run()
    result, report = two.report("--lf")
    assert result.ret == 1 and not_run(report) == ["recall(scratch)>=0.50"]
    result.stdout.fnmatch_lines(["dent * FAILED", "scratch * not run"])
    result, report = two.report("-x", "-p", "no:cacheprovider")
    assert result.ret == 1 and not_run(report) == ["recall(scratch)>=0.50"]  # dent runs first


# --- stale reports ----------------------------------------------------------------------------------

def test_a_run_that_stops_replaces_the_last_report_with_an_error_report(good):
    good.config('report = "report.json"\n' + GATE)
    assert good.run().ret == 0
    assert report_of(good)["evaluated"] is True
    (good.path / "images" / "0003.png").write_bytes(b"not a png")
    usage_error(good.run(), "dev.csv line 5: cannot read image")
    report = report_of(good)
    assert report["evaluated"] is False and "dev.csv line 5: cannot read image" in report["error"]
    assert "requirements" not in report and "buckets" not in report
    jsonschema.validate(report, load_schema("report.schema.json"))

    # a baseline that cannot be written fails the run, and the report says so
    (good.path / "images" / "0003.png").unlink()
    paint(good.path / "images" / "0003.png", "ok")
    result = good.run("--erran-save-baseline", "--erran-baseline=dev.csv/baseline.json")  # under a file
    assert result.ret == 4
    result.stdout.fnmatch_lines([f"erran: cannot write {good.path / 'dev.csv' / 'baseline.json'}: *"])
    assert report_of(good)["error"].startswith(f"cannot write {good.path / 'dev.csv' / 'baseline.json'}: ")

    # a config that does not validate still names its report
    good.config('report = "report.json"\nbatch_size = 0\n' + GATE)
    (good.path / "report.json").write_text('{"stale": true}')
    usage_error(good.run(), "key 'batch_size' must be between 1 and 4096, got 0")
    assert report_of(good)["evaluated"] is False


# --- classes are never guessed for a model --------------------------------------------------------

def test_an_object_table_through_a_model_needs_classes(project):
    scene = detection_scene()
    project.objects(scene)
    project.detector(scene)
    project.write_config(DETECTION.replace("dev.json", "dev.csv"))
    usage_error(project.run(), "model.onnx: no `classes` in the config and none in the model's "
                "metadata", 'classes = ["tube", ...]')
    project.write_config('classes = ["tube"]\n' + DETECTION.replace("dev.json", "dev.csv"))
    assert project.run().ret == 0


# --- one threshold rule: score >= threshold keeps the prediction, on both paths ------------------

def test_a_float32_score_exactly_at_a_class_threshold_is_kept_by_model_and_file(project):
    hostile.constant_scores(project.path / "model.onnx", [0.1, 0.7, 0.2])  # float32(0.7) < 0.7
    rows = [{"id": f"s{i}", "label": "scratch"} for i in range(3)] + [{"id": "o0", "label": "ok"}]
    project.data(rows)
    (project.path / "preds.csv").write_text("id,label,score\n" + "".join(
        f"{r['id']},scratch,0.7\n" for r in rows))
    project.config("[class_thresholds]\nscratch = 0.7\n" + GATE)
    _, from_model = project.report(name="model.json")
    _, from_file = project.report("--erran-predictions=preds.csv", name="file.json")
    for report in (from_model, from_file):
        assert (buckets(report)["scratch"]["hits"], buckets(report)["scratch"]["positives"]) == (3, 3)
    project.config("[class_thresholds]\nscratch = 0.7000001\n" + GATE)  # just above: demoted on both
    _, from_model = project.report(name="model.json")
    _, from_file = project.report("--erran-predictions=preds.csv", name="file.json")
    assert buckets(from_model)["scratch"]["hits"] == buckets(from_file)["scratch"]["hits"] == 0


def test_a_detection_score_exactly_at_its_class_threshold_is_kept_by_model_and_file(project):
    scene = detection_scene(score=0.7)
    project.coco(scene)
    project.coco_results(scene)
    project.detector(scene)
    config = DETECTION.replace('model = "model.onnx"\n', "") + "[class_thresholds]\ntube = 0.7\n"
    project.write_config(config)
    _, from_file = project.report("--erran-predictions=preds.json", name="file.json")
    project.write_config('model = "model.onnx"\n' + config)
    _, from_model = project.report(name="model.json")
    for report in (from_file, from_model):
        assert buckets(report)["tube"]["missed"] == []
    project.write_config(config.replace("tube = 0.7", "tube = 0.7000001"))  # just above: on both
    _, from_file = project.report("--erran-predictions=preds.json", name="file.json")
    project.write_config('model = "model.onnx"\n' + config.replace("tube = 0.7", "tube = 0.7000001"))
    _, from_model = project.report(name="model.json")
    assert buckets(from_file)["tube"]["missed"] == buckets(from_model)["tube"]["missed"] == ["2"]


# --- the model runs once under xdist, even without the cache provider -----------------------------

COUNTING_CONFTEST = """
import os

def pytest_erran_output_adapters(task):
    def counted(outputs, options):
        with open("runs.txt", "a") as f:
            f.write(f"{os.getpid()}\\n")
        return outputs["scores"]
    return {"counted": counted}
"""


def test_xdist_without_the_cache_provider_runs_the_model_once(good):
    good.pytester.makeconftest(COUNTING_CONFTEST)
    good.config('output = "counted"\nbatch_size = 4\n' + GATE)
    good.pytester.makepyfile(test_user="""
        def test_a(erran_results): assert erran_results.bucket("scratch").positives == 4
        def test_b(erran_results): assert erran_results.bucket("all").positives == 8
    """)
    result = good.run("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["scratch * passed"])  # the workers' outcome reached the controller
    runs = (good.path / "runs.txt").read_text().split()
    assert len(runs) == 3 and len(set(runs)) == 1  # 12 images in batches of 4, by one process
    assert not (good.path / ".pytest_cache").exists()
