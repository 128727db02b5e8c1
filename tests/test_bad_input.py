"""Bad input stops the run before any requirement runs: exit 4 and one message that names the
file, line, key or value at fault and says what to do, never a traceback. And the inputs that
look odd but are fine (Parquet, JSONL, ImageFolder, NHWC, logits, ZipMap...) give the recall a
hand count gives."""

import json
import textwrap

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from builders import CLASSES, paint
from conftest import BASE_CONFIG, rows_with_misses, usage_error


REQUIRE = """
[buckets.low_light]
where = "lighting == 'low'"
[[require]]
bucket = "scratch"
recall = 0.5
"""

def hand_count(rows, member=lambda r: True, hit=lambda r: r.get("looks_like", r["label"]) == r["label"]):
    positives = [r for r in rows if r["label"] != "ok" and member(r)]
    return len(positives), sum(1 for r in positives if hit(r))


def bucket(report, name):
    entry = next(b for b in report["buckets"] if b["name"] == name)
    return entry["positives"], entry["hits"]


@pytest.fixture
def rows():
    return rows_with_misses(n=12, missed=(1, 5))


@pytest.fixture
def good(project, rows):
    project.model()
    project.data(rows)
    project.config(REQUIRE)
    return project


def test_the_good_project_passes(good, rows):
    result, report = good.report()
    assert result.ret == 0
    result.assert_outcomes(passed=1)
    assert bucket(report, "scratch") == hand_count(rows, lambda r: r["label"] == "scratch")


# --- images -----------------------------------------------------------------------------------

def test_image_with_garbage_bytes(good):
    (good.path / "images" / "0002.png").write_bytes(b"\x00garbage, not a PNG\xff" * 10)
    message = usage_error(good.run(), "dev.csv line 4: cannot read image", "0002.png",
                          "not an image format PIL can read", "fix or replace the file")
    assert message.count("0002.png") == 1, message


def test_truncated_png(good):
    image = good.path / "images" / "0007.png"
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8)  # does not compress
    Image.fromarray(noise).save(image)
    image.write_bytes(image.read_bytes()[:400])  # the header is whole, the pixel data is cut
    usage_error(good.run(), "dev.csv line 9:", "0007.png", "truncated", "fix or replace the file")


def test_missing_image(good):
    (good.path / "images" / "0003.png").unlink()
    usage_error(good.run(), "dev.csv line 5:", "0003.png", "does not exist", "fix the path or remove the row")


def test_corrupt_image_in_a_real_process(good):
    """Subprocess: the real exit code, and nothing of a traceback reaches the terminal."""
    (good.path / "images" / "0002.png").write_bytes(b"garbage")
    result = good.pytester.runpytest_subprocess("-p", "no:randomly")
    usage_error(result, "dev.csv line 4:", "0002.png")


# --- manifests --------------------------------------------------------------------------------

def write_csv(project, text, name="dev.csv"):
    (project.path / name).write_text(textwrap.dedent(text).lstrip())


@pytest.mark.parametrize("column", ["image", "label"])
def test_manifest_without_a_required_column(good, column):
    frame = pd.read_csv(good.path / "dev.csv", dtype=str, keep_default_na=False)
    frame.drop(columns=column).to_csv(good.path / "dev.csv", index=False)
    usage_error(good.run(), "dev.csv", f"no '{column}' column", "columns: ", "every row needs")


def test_empty_label(good):
    write_csv(good, """
        image,label
        images/0000.png,ok
        images/0001.png,
        images/0002.png,dent
    """)
    usage_error(good.run(), "dev.csv line 3:", "empty `label`", "every row needs one")


def test_label_not_a_class(good):
    write_csv(good, """
        image,label
        images/0000.png,ok
        images/0001.png,scratch
        images/0002.png,scrach
    """)
    usage_error(good.run(), "dev.csv line 4:", "label 'scrach'", "not one of the classes",
                "fix the label or add the class")


def test_duplicate_ids(good):
    write_csv(good, """
        id,image,label
        a,images/0000.png,ok
        b,images/0001.png,scratch
        a,images/0002.png,dent
    """)
    usage_error(good.run(), "dev.csv line 2 and dev.csv line 4", "id 'a' appears twice",
                "give every row its own id")


def test_manifest_with_a_header_and_no_rows(good):
    write_csv(good, "image,label\n")
    usage_error(good.run(), "dev.csv: the manifest has no rows", "add one row per dev image")


def test_manifest_that_is_not_utf8(good):
    (good.path / "dev.csv").write_bytes(b"image,label\nimages/0000.png,ok\nimages/caf\xe9.png,ok\n")
    usage_error(good.run(), "dev.csv line 3: not UTF-8 text", "save the file as UTF-8")


def test_split_matching_no_rows(good):
    write_csv(good, """
        image,label,split
        images/0000.png,ok,train
        images/0001.png,scratch,test
    """)
    good.config('split = "val"\n' + REQUIRE)
    usage_error(good.run(), "dev.csv", "split 'val'", "splits found: test, train", "set `split`")


# --- config -----------------------------------------------------------------------------------

def test_unknown_config_key_suggests_the_known_one(good):
    # Without `model` the plugin is inactive: the typo must still be an error, not a silent
    # "no tests ran" with the gate switched off.
    good.config(REQUIRE, base=BASE_CONFIG.replace("model =", "modle ="))
    usage_error(good.run(), "erran.toml", "unknown key 'modle'", "did you mean 'model'?")


def test_unknown_config_key_next_to_a_model(good):
    good.config('batchsize = 4\n' + REQUIRE)
    usage_error(good.run(), "erran.toml", "unknown key 'batchsize'", "did you mean 'batch_size'?")


def test_unknown_config_key_in_a_real_process(good):
    good.config(REQUIRE, base=BASE_CONFIG.replace("model =", "modle ="))
    result = good.pytester.runpytest_subprocess("-p", "no:randomly")
    usage_error(result, "erran.toml", "unknown key 'modle'", "did you mean 'model'?")


def test_wrong_type(good):
    good.config(REQUIRE, base=BASE_CONFIG.replace('classes = ["ok", "scratch", "dent"]', 'classes = "ok"'))
    usage_error(good.run(), "erran.toml", "key 'classes' must be an array, got \"ok\"")


def test_recall_outside_zero_one(good):
    good.config(REQUIRE.replace("recall = 0.5", "recall = 1.5"))
    usage_error(good.run(), "erran.toml", "key 'require[0].recall' with bucket = 'scratch' "
                "must be between 0 and 1, got 1.5")


def test_unknown_key_inside_require(good):
    good.config(REQUIRE.replace("recall = 0.5", "recal = 0.5"))
    usage_error(good.run(), "erran.toml", "unknown key 'recal' in require[0] with bucket = 'scratch' "
                "(did you mean 'recall'?)")


def test_require_without_a_metric(good):
    good.config(REQUIRE.replace("recall = 0.5", 'gate = "point"'))
    usage_error(good.run(), "erran.toml", "require[0] with bucket = 'scratch': give one of recall")


def test_toml_syntax_error(good):
    good.config("[[require]]\nbucket = scratch\n")
    usage_error(good.run(), "erran.toml line 7: not valid TOML (Invalid value, column 10)",
                "fix the syntax")


# --- requirements and buckets -----------------------------------------------------------------

def test_requirement_on_an_unknown_bucket(good):
    good.config(REQUIRE.replace('bucket = "scratch"', 'bucket = "scrach"'))
    usage_error(good.run(), "bucket = 'scrach'", "not a bucket", "all, scratch, dent, low_light",
                "did you mean 'scratch'?")


def test_requirement_on_a_bucket_without_positives(good):
    good.config("""
    [buckets.good_parts]
    where = "label == 'ok'"
    [[require]]
    bucket = "good_parts"
    recall = 0.5
    """)
    usage_error(good.run(), "bucket = 'good_parts'", "no positives", "fix the bucket or the data")


def test_requirement_on_the_negative_class(good):
    good.config(REQUIRE.replace('bucket = "scratch"', 'bucket = "ok"'))
    usage_error(good.run(), "bucket = 'ok'", "negative class", "require it on a defect class")


def test_where_on_an_unknown_column_lists_the_columns(good):
    good.config(REQUIRE.replace("lighting == 'low'", "lightning == 'low'"))
    usage_error(good.run(), "[buckets.low_light]", "lightning", "Columns you can use:", "lighting",
                "camera")


# --- models -----------------------------------------------------------------------------------

def test_classes_do_not_fit_the_model_outputs(good):
    good.model(extra_classes=1)
    usage_error(good.run(), "model.onnx", "4 scores per image", "3 names", "make them agree")


def test_model_file_missing(good):
    (good.path / "model.onnx").unlink()
    usage_error(good.run(), "model.onnx", "does not exist", "check --erran-model or `model`")


def test_file_that_is_not_onnx(good):
    (good.path / "model.onnx").write_bytes(b"PK\x03\x04 a zip, or a .pt, but not ONNX")
    message = usage_error(good.run(), "model.onnx: not a loadable ONNX model (Protobuf parsing failed.)",
                          "point `model` at an .onnx file")
    assert message.count("model.onnx") == 1, message  # the path once, not again in the reason


# --- predictions files ------------------------------------------------------------------------

def write_predictions(project, rows, skip=(), extra=()):
    lines = ["id,label"] + [f"{r['id']},{r.get('looks_like', r['label'])}"
                            for i, r in enumerate(rows) if i not in skip] + list(extra)
    (project.path / "preds.csv").write_text("\n".join(lines) + "\n")


def test_predictions_file_gives_the_same_recall(good, rows):
    write_predictions(good, rows)
    result, report = good.report("--erran-predictions=preds.csv")
    assert result.ret == 0
    assert bucket(report, "scratch") == hand_count(rows, lambda r: r["label"] == "scratch")


def test_predictions_file_missing_a_row(good, rows):
    write_predictions(good, rows, skip=(3,))
    usage_error(good.run("--erran-predictions=preds.csv"), "preds.csv", "no prediction for 1",
                "'u003'", "every dev image needs one")


def test_duplicate_prediction(good, rows):
    write_predictions(good, rows, extra=["u004,dent"])
    usage_error(good.run("--erran-predictions=preds.csv"), "preds.csv line 14:", "'u004'",
                "first at preds.csv line 6", "give exactly one per image")


def test_prediction_for_an_unknown_image(good, rows):
    write_predictions(good, rows, extra=["u999,dent"])
    usage_error(good.run("--erran-predictions=preds.csv"), "preds.csv line 14:", "'u999'",
                "not in the dev set", "write the ids as the manifest does")


# --- options ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, says", [("0", "must be at least 1, got 0"),
                                         ("abc", "expected a whole number, got 'abc'")])
def test_bad_batch_size(good, value, says):
    usage_error(good.run(f"--erran-batch-size={value}"), "--erran-batch-size", says)


# --- other table formats and layouts that are fine --------------------------------------------

def test_parquet_manifest(good, rows):
    frame = pd.read_csv(good.path / "dev.csv", dtype=str, keep_default_na=False)
    frame["camera"] = frame["camera"].astype(int)
    frame.to_parquet(good.path / "dev.parquet")
    good.config(REQUIRE + '[buckets.cam_two]\nwhere = "camera == 2"\n',
                base=BASE_CONFIG.replace("dev.csv", "dev.parquet"))
    result, report = good.report()
    assert result.ret == 0, result.stdout.str()
    assert bucket(report, "scratch") == hand_count(rows, lambda r: r["label"] == "scratch")
    assert bucket(report, "low_light") == hand_count(rows, lambda r: r["lighting"] == "low")
    assert bucket(report, "cam_two") == hand_count(rows, lambda r: r["camera"] == 2)


def write_jsonl(project, rows, name="dev.jsonl", broken_line=None):
    lines = []
    for i, row in enumerate(rows):
        record = {k: v for k, v in row.items() if k != "looks_like"}
        lines.append(json.dumps({**record, "image": f"images/{i:04d}.png"}))
    if broken_line is not None:
        lines.insert(broken_line - 1, '{"image": "images/0000.png", "label": "ok",}')
    (project.path / name).write_text("\n".join(lines) + "\n")


def test_jsonl_manifest(good, rows):
    write_jsonl(good, rows)
    good.config(REQUIRE + '[buckets.cam_two]\nwhere = "camera == 2"\n',
                base=BASE_CONFIG.replace("dev.csv", "dev.jsonl"))
    result, report = good.report()
    assert result.ret == 0, result.stdout.str()
    assert bucket(report, "scratch") == hand_count(rows, lambda r: r["label"] == "scratch")
    assert bucket(report, "cam_two") == hand_count(rows, lambda r: r["camera"] == 2)


def test_jsonl_line_that_is_not_json(good, rows):
    write_jsonl(good, rows, broken_line=5)
    good.config(REQUIRE, base=BASE_CONFIG.replace("dev.csv", "dev.jsonl"))
    usage_error(good.run(), "dev.jsonl line 5: not valid JSON", "write one JSON object per line")


def test_jsonl_line_that_is_not_utf8(good, rows):
    write_jsonl(good, rows)
    with (good.path / "dev.jsonl").open("ab") as f:
        f.write(b'{"image": "images/0000.png", "label": "caf\xe9"}\n')
    good.config(REQUIRE, base=BASE_CONFIG.replace("dev.csv", "dev.jsonl"))
    usage_error(good.run(), "dev.jsonl line 13: not UTF-8 text", "save the file as UTF-8")


def test_corrupt_image_in_an_image_folder(project):
    paint(project.path / "data" / "ok" / "0.png", "ok")
    (project.path / "data" / "scratch").mkdir()
    (project.path / "data" / "scratch" / "1.png").write_bytes(b"")
    project.model()
    project.config('[[require]]\nbucket = "scratch"\nrecall = 0.5\n',
                   base=BASE_CONFIG.replace('"dev.csv"', '"data"'))
    usage_error(project.run(), "data/scratch/1.png: cannot read the image", "fix, replace or remove the file")


def test_image_folder(project):
    layout = {"ok": ["ok", "ok", "scratch"], "scratch": ["scratch", "ok", "scratch", "scratch"],
              "dent": ["dent", "dent", "scratch"]}
    rows = []
    for label, looks in layout.items():
        for i, looks_like in enumerate(looks):
            paint(project.path / "data" / label / f"{i}.png", looks_like)
            rows.append({"label": label, "looks_like": looks_like})
    project.model()
    project.config('[[require]]\nbucket = "scratch"\nrecall = 0.5\n',
                   base=BASE_CONFIG.replace('"dev.csv"', '"data"'))
    result, report = project.report()
    assert result.ret == 0, result.stdout.str()
    assert report["data"]["units"] == 10
    assert bucket(report, "scratch") == hand_count(rows, lambda r: r["label"] == "scratch") == (4, 3)
    assert bucket(report, "all") == hand_count(rows) == (7, 5)


# --- model outputs and layouts ----------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{"layout": "NHWC"}, {"logits": True}, {"batch": 4}],
                         ids=["nhwc", "logits", "fixed-batch"])
def test_model_variants_give_the_hand_counted_recall(good, rows, kwargs):
    good.model(**kwargs)
    result, report = good.report()
    assert result.ret == 0, result.stdout.str()
    for name in ("scratch", "dent", "all"):
        member = (lambda r: True) if name == "all" else (lambda r, name=name: r["label"] == name)
        assert bucket(report, name) == hand_count(rows, member), name


def test_classes_from_model_metadata(good, rows):
    good.model(classes_metadata=CLASSES)
    good.config(REQUIRE, base=BASE_CONFIG.replace('classes = ["ok", "scratch", "dent"]\n', ""))
    result, report = good.report()
    assert result.ret == 0, result.stdout.str()
    assert bucket(report, "dent") == hand_count(rows, lambda r: r["label"] == "dent")
    assert bucket(report, "scratch") == hand_count(rows, lambda r: r["label"] == "scratch")


def test_class_threshold_turns_a_weak_hit_into_a_miss(project):
    # scratch scores strength/255: 200 -> 0.78 (a hit), 100 -> 0.39 (below 0.5: "ok", a miss)
    rows = [{"id": f"s{i}", "label": "scratch", "strength": 100 if i in (1, 2) else 200} for i in range(6)]
    rows += [{"id": f"d{i}", "label": "dent", "strength": 100} for i in range(3)]  # no threshold
    rows += [{"id": "o0", "label": "ok"}]
    project.model()
    project.data(rows)
    project.config("""
    [class_thresholds]
    scratch = 0.5
    [[require]]
    bucket = "scratch"
    recall = 0.5
    """)
    result, report = project.report()
    assert result.ret == 0, result.stdout.str()
    assert bucket(report, "scratch") == (6, 4)
    assert bucket(report, "dent") == (3, 3)
    scratch = next(b for b in report["buckets"] if b["name"] == "scratch")
    assert scratch["missed"] == ["s1", "s2"]


def test_class_threshold_applies_to_softmax_of_logits(project):
    # logits = 10 * channel mean - 3; the other channels sit at 20/255 (logit -2.22). Softmax of
    # the winning class: strength 60 -> logit -0.65 -> p 0.71 (a hit above 0.6); strength 40 ->
    # logit -1.43 -> p 0.52 (a miss). Raw logits would miss both, a sigmoid too.
    rows = [{"id": f"s{i}", "label": "scratch", "strength": 40 if i in (0, 3) else 60} for i in range(6)]
    rows += [{"id": "o0", "label": "ok"}]
    project.model(logits=True)
    project.data(rows)
    project.config("""
    [class_thresholds]
    scratch = 0.6
    [[require]]
    bucket = "scratch"
    recall = 0.5
    """)
    result, report = project.report()
    assert result.ret == 0, result.stdout.str()
    assert bucket(report, "scratch") == (6, 4)
    assert next(b for b in report["buckets"] if b["name"] == "scratch")["missed"] == ["s0", "s3"]


def onnx_classifier(path, head):
    """Channel means (scores), then `head`: "argmax" -> [N] int64 labels, "zipmap" -> a sequence
    of {class: score} maps, as skl2onnx writes them."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("ReduceMean", ["image", "axes"], ["scores"], keepdims=0)]
    opsets = [helper.make_opsetid("", 18)]
    if head == "argmax":
        nodes.append(helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0))
        output = helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])
    else:
        nodes.append(helper.make_node("ZipMap", ["scores"], ["probabilities"], domain="ai.onnx.ml",
                                      classlabels_strings=CLASSES))
        opsets.append(helper.make_opsetid("ai.onnx.ml", 1))
        value = helper.make_tensor_type_proto(TensorProto.FLOAT, [])
        output = helper.make_value_info("probabilities", helper.make_sequence_type_proto(
            helper.make_map_type_proto(TensorProto.STRING, value)))
    graph = helper.make_graph(
        nodes, head, [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [output], initializer=[helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.mark.parametrize("head, classes", [
    ("argmax", CLASSES), ("zipmap", CLASSES),
    ("zipmap", ["dent", "ok", "scratch"]),  # the maps are read by class name, not position
], ids=["argmax", "zipmap", "zipmap-other-order"])
def test_label_and_zipmap_outputs(good, rows, head, classes):
    onnx_classifier(good.path / "model.onnx", head)
    good.config(REQUIRE, base=BASE_CONFIG.replace(str(CLASSES).replace("'", '"'), json.dumps(classes)))
    assert f"classes = {json.dumps(classes)}" in (good.path / "erran.toml").read_text()
    result, report = good.report()
    assert result.ret == 0, result.stdout.str()
    for name in ("scratch", "dent", "all"):
        member = (lambda r: True) if name == "all" else (lambda r, name=name: r["label"] == name)
        assert bucket(report, name) == hand_count(rows, member), name
