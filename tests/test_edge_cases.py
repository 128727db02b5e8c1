"""Inputs at the edges, found in review: each once gave a wrong answer, a traceback or a
silently skipped image."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from builders import CLASSES, channel_mean_model, paint
from conftest import rows_with_misses, usage_error

GATE = """
[[require]]
bucket = "scratch"
recall = 0.5
"""


def test_new_external_weights_are_not_a_cache_hit(project):
    import onnx

    project.data(rows_with_misses(missed=()))
    project.config(GATE)
    for name, bias in (("good", (0.0, 0.01, 0.01)), ("worse", (0.9, 0.0, 0.0))):  # worse: "ok" wins
        model = onnx.load(str(channel_mean_model(project.path / f"{name}.onnx", bias=bias)))
        for tensor in model.graph.initializer:  # the weights as raw bytes: what goes external
            if tensor.name == "bias":
                tensor.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(tensor), "bias"))
        (project.path / name).mkdir()
        onnx.save(model, str(project.path / name / "model.onnx"), save_as_external_data=True,
                  location="weights.bin", size_threshold=0)
    graph = (project.path / "good" / "model.onnx").read_bytes()
    assert graph == (project.path / "worse" / "model.onnx").read_bytes()  # only the weights differ
    (project.path / "model.onnx").write_bytes(graph)
    (project.path / "weights.bin").write_bytes((project.path / "good" / "weights.bin").read_bytes())
    _, good = project.report()
    (project.path / "weights.bin").write_bytes((project.path / "worse" / "weights.bin").read_bytes())
    result, worse = project.report()
    assert good["model"]["sha256"] != worse["model"]["sha256"]
    assert "predictions from cache" not in result.stdout.str()
    assert {b["name"]: b for b in worse["buckets"]}["scratch"]["hits"] == 0


def test_a_damaged_cache_entry_is_recomputed(project):
    project.model()
    project.data(rows_with_misses())
    project.config(GATE)
    project.run()
    entries = list((project.path / ".pytest_cache" / "d" / "erran-predictions").glob("*.npz"))
    assert len(entries) == 1
    entries[0].write_bytes(entries[0].read_bytes()[:100])
    result = project.run()
    assert result.ret == 0 and "INTERNALERROR" not in result.stdout.str()
    assert "predictions from cache" not in result.stdout.str()


def test_a_fixed_batch_of_one_runs_one_image_at_a_time(tmp_path):
    from pytest_erran.inference.onnx_model import OnnxModel
    from pytest_erran.inference.batches import run_batches

    model = OnnxModel(channel_mean_model(tmp_path / "m.onnx", batch=1))
    paths = []
    for i in range(3):
        paint(tmp_path / f"{i}.png", CLASSES[i])
        paths.append(str(tmp_path / f"{i}.png"))
    prep = model.preprocess({})
    batches = list(run_batches(model, paths, paths, prep, batch_size=16, threads=2))
    assert [(b.start, b.stop) for b in batches] == [(0, 1), (1, 2), (2, 3)]
    assert [int(b.outputs[0].argmax()) for b in batches] == [0, 1, 2]


def test_config_classes_must_agree_with_the_model_metadata(project):
    project.model(classes_metadata=["ok", "dent", "scratch"])
    project.data(rows_with_misses())
    project.config(GATE)
    usage_error(project.run(), "classes = ['ok', 'scratch', 'dent'] but the model's metadata says "
                               "['ok', 'dent', 'scratch']")


def test_thresholds_on_a_predictions_file_need_negative(project):
    project.data([{"id": f"u{i}", "label": "scratch"} for i in range(3)])
    (project.path / "preds.csv").write_text("id,label,score\nu0,scratch,0.9\nu1,scratch,0.9\n"
                                            "u2,scratch,0.9\n")
    project.config("""
    [class_thresholds]
    scratch = 0.95
    """ + GATE, base='data = "dev.csv"\nclasses = ["ok", "scratch", "dent"]\n')
    usage_error(project.run("--erran-predictions=preds.csv"), "class_thresholds need `negative`")


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    from pytest_erran.inference.images import open_image

    ramp = (np.arange(64 * 64, dtype=np.uint32) * 16).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "r.png")
    with open_image(str(tmp_path / "r.png"), "r.png") as image:
        gray = np.asarray(image.convert("L"))
    assert np.array_equal(gray, (ramp >> 8).astype(np.uint8))  # clipping would make 94% white


def test_image_folder_takes_subfolders_and_refuses_loose_images(project):
    for path, looks in (("scratch/a.png", "scratch"), ("scratch/night/b.png", "ok"),
                        ("dent/c.png", "dent"), ("ok/d.png", "ok")):
        paint(project.path / "data" / path, looks)
    project.model()
    project.config(GATE, base='model = "model.onnx"\ndata = "data"\nclasses = ["ok", "scratch", "dent"]\n'
                              'negative = "ok"\n')
    result, report = project.report()
    scratch = {b["name"]: b for b in report["buckets"]}["scratch"]
    assert (scratch["positives"], scratch["missed"]) == (2, ["scratch/night/b.png"])
    paint(project.path / "data" / "loose.png", "ok")
    usage_error(project.run(), "loose.png: an image outside any class folder")


def test_jsonl_tags_may_be_a_list(project):
    rows = rows_with_misses(n=6, missed=())
    project.data(rows)  # paints the images; the JSONL below replaces the CSV manifest
    lines = [json.dumps({"id": r["id"], "image": f"images/{i:04d}.png", "label": r["label"],
                         "tags": ["severe", "edge"] if i % 2 else []}) for i, r in enumerate(rows)]
    (project.path / "dev.jsonl").write_text("\n".join(lines) + "\n")
    project.config("""
    [buckets.severe]
    tag = "severe"
    [[require]]
    bucket = "severe"
    recall = 0.5
    """, base='model = "model.onnx"\ndata = "dev.jsonl"\nclasses = ["ok", "scratch", "dent"]\n'
              'negative = "ok"\n')
    project.model()
    _, report = project.report()
    severe = {b["name"]: b for b in report["buckets"]}["severe"]
    assert severe["positives"] == sum(1 for i, r in enumerate(rows) if i % 2 and r["label"] != "ok")


def test_a_reserved_column_name_is_refused(project):
    rows = [dict(r, image_id="x") for r in rows_with_misses(n=6)]
    project.model()
    project.data(rows)
    project.config(GATE)
    usage_error(project.run(), "the column 'image_id' is a name pytest-erran uses itself")


def test_renamed_ids_are_not_compared_and_never_reported_as_passed(project):
    project.model()
    project.data(rows_with_misses(missed=()))
    project.config("""
    [[require]]
    bucket = "dent"
    max_drop = 0.0
    """)
    project.run("--erran-save-baseline")
    project.data([dict(r, id=r["id"].replace("u", "v")) for r in rows_with_misses(missed=(2, 5))])
    result, report = project.report("-rs")
    requirement = report["requirements"][0]
    assert requirement["outcome"] == "skipped" and requirement["passed"] is True
    result.stdout.fnmatch_lines(["dent * not compared", "*the baseline shares none of this bucket*"])
    assert result.parseoutcomes().get("skipped") == 1


def test_interval_header_follows_the_confidence(project):
    project.model()
    project.data(rows_with_misses())
    project.config("confidence = 0.9\n" + GATE)
    project.run().stdout.fnmatch_lines(["bucket*positives*recall*90% interval*"])


def test_reports_are_readable_by_others_and_write_errors_name_the_file(project):
    project.model()
    project.data(rows_with_misses())
    project.config(GATE)
    project.report()
    assert (project.path / "report.json").stat().st_mode & 0o777 == 0o666 & ~_umask()
    (project.path / "taken").mkdir()
    result = project.run("--erran-report=taken")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"erran: cannot write {project.path / 'taken'}: Is a directory"])


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
