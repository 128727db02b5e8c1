"""Extension points without a fork (conftest.py hooks) and the library API, each checked against
the plugin's own built-in path or a hand count."""

import json
import textwrap

import pytest

import pytest_erran
from conftest import rows_with_misses, usage_error
from detection_builders import random_scene

REQUIRE = """
[buckets.low_light]
where = "lighting == 'low'"
[[require]]
bucket = "dent"
recall = 0.5
"""


def conftest(project, text):
    (project.path / "conftest.py").write_text(textwrap.dedent(text))


def buckets_of(report):
    return {b["name"]: (b["positives"], b["hits"], sorted(b["missed"])) for b in report["buckets"]}


# --- pytest_erran_output_adapters ---------------------------------------------------------------

DETECTION_ADAPTER = """
    import numpy as np

    def pytest_erran_output_adapters(task):
        assert task == "detection"

        def padded_rows(outputs, options):
            # the same outputs the built-in adapter reads, read by hand: one image per row
            boxes, scores, labels = outputs["boxes"], outputs["scores"], outputs["labels"]
            return [(b[:n], s[:n], l[:n]) for b, s, l, n in
                    zip(boxes, scores, labels, outputs["num_detections"])]

        return {"padded_rows": padded_rows}
"""


def detection_project(project, output_line=""):
    scene = random_scene(3)
    project.coco(scene)
    project.detector(scene)
    project.write_config(f"""
        task = "detection"
        model = "model.onnx"
        data = "dev.json"
        {output_line}
        [[require]]
        bucket = "all"
        recall = 0.1
    """)
    return scene


def test_a_project_detection_adapter_gives_the_built_in_adapters_results(project):
    detection_project(project)
    _, built_in = project.report(name="built_in.json")
    detection_project(project, 'output = "padded_rows"')
    conftest(project, DETECTION_ADAPTER)
    result, adapted = project.report("-p", "no:cacheprovider", name="adapted.json")
    assert result.ret in (0, 1), result.outlines
    assert buckets_of(adapted) == buckets_of(built_in)
    assert [b.get("false_positives") for b in adapted["buckets"]] == \
        [b.get("false_positives") for b in built_in["buckets"]]


def test_a_project_adapter_that_returns_nonsense_is_a_usage_error(project):
    detection_project(project, 'output = "broken"')
    conftest(project, """
        def pytest_erran_output_adapters(task):
            return {"broken": lambda outputs, options: [("not", "boxes")] * len(outputs["scores"])}
    """)
    usage_error(project.run(), "output adapter 'broken' must return, per image of the batch",
                "(boxes [k, 4], scores [k], integer labels [k])")


def test_a_project_adapter_that_raises_is_a_usage_error_naming_it(project):
    detection_project(project, 'output = "fragile"')
    conftest(project, """
        def pytest_erran_output_adapters(task):
            def fragile(outputs, options):
                raise KeyError("detections")
            return {"fragile": fragile}
    """)
    usage_error(project.run(), "output adapter 'fragile' failed: KeyError: 'detections'")


def test_an_adapter_may_not_take_a_built_in_name(project):
    detection_project(project)
    conftest(project, """
        def pytest_erran_output_adapters(task):
            return {"yolo": lambda outputs, options: []}
    """)
    usage_error(project.run(), "'yolo' is a built-in adapter's name; register yours under another")


def test_a_classification_adapter_is_read_and_editing_it_is_never_a_stale_cache_hit(project):
    rows = rows_with_misses()
    project.model()
    project.data(rows)
    project.config('output = "swapped"\n' + REQUIRE)
    # scores with scratch and dent swapped: every scratch/dent is then predicted as the other
    conftest(project, """
        def pytest_erran_output_adapters(task):
            return {"swapped": lambda outputs, options: outputs["scores"][:, [0, 2, 1]]}
    """)
    _, swapped = project.report()
    dents = [r for r in rows if r["label"] == "dent"]
    caught_when_swapped = sum(r["looks_like"] == "scratch" for r in dents)
    assert buckets_of(swapped)["dent"][:2] == (len(dents), caught_when_swapped)
    conftest(project, """
        def pytest_erran_output_adapters(task):
            return {"swapped": lambda outputs, options: outputs["scores"]}  # edited: no swap
    """)
    _, plain = project.report()
    assert buckets_of(plain)["dent"][:2] == (len(dents), sum(r["looks_like"] == "dent" for r in dents))


# --- pytest_erran_unit_columns ------------------------------------------------------------------

def test_unit_columns_from_conftest_make_buckets(project):
    rows = rows_with_misses()
    project.model()
    project.data(rows)
    project.config("""
        [buckets.wide]
        where = "area_mm2 >= 20"
        [[require]]
        bucket = "wide"
        recall = 0.1
    """)
    conftest(project, """
        def pytest_erran_unit_columns(units, settings):
            assert settings.task == "classification"
            return {"area_mm2": units["camera"].to_numpy() * 10.0}
    """)
    result, report = project.report()
    assert result.ret == 0, result.outlines
    wide = [r for r in rows if r["camera"] * 10.0 >= 20 and r["label"] != "ok"]
    hits = sum(r["looks_like"] == r["label"] for r in wide)
    assert buckets_of(report)["wide"][:2] == (len(wide), hits)


@pytest.mark.parametrize("body, message", [
    ('return {"_mine": units["camera"]}', "column '_mine' is reserved or already a column"),
    ('return {"camera": units["camera"]}', "column 'camera' is reserved or already a column"),
    ('return {"short": [1, 2]}', "column 'short' has shape [2]; give one value per unit (30)"),
    ('return [1, 2]', "returned list; return a dict of column name -> one value per unit"),
])
def test_bad_unit_columns_are_usage_errors_naming_the_conftest(project, body, message):
    project.model()
    project.data(rows_with_misses())
    project.config(REQUIRE)
    conftest(project, f"""
        def pytest_erran_unit_columns(units):
            {body}
    """)
    text = usage_error(project.run(), message)
    assert "conftest.py" in text


# --- the library API ----------------------------------------------------------------------------

def test_evaluate_gives_the_plugins_numbers(project, monkeypatch):
    rows = rows_with_misses()
    project.model()
    project.data(rows)
    project.config(REQUIRE)
    result, report = project.report()
    monkeypatch.chdir(project.path)
    evaluation = pytest_erran.evaluate("erran.toml")
    assert evaluation.passed is (result.ret == 0)
    assert {name: (b.positives, b.hits, sorted(b.missed)) for name, b in evaluation.buckets.items()} == \
        buckets_of(report)
    assert [(v.id, v.outcome, v.passed) for v in evaluation.verdicts] == \
        [(r["id"], r["outcome"], r["passed"]) for r in report["requirements"]]
    # the full score vector per image, as the model gave it (softmax-free: the scores are in [0, 1])
    assert evaluation.predictions.scores.shape == (len(rows), 3)
    assert evaluation.units["_hit"].sum() == sum(r["looks_like"] == r["label"] for r in rows)


def test_evaluate_takes_a_dict_options_and_extensions(project, monkeypatch):
    rows = rows_with_misses()
    project.model("other.onnx")
    project.data(rows)
    monkeypatch.chdir(project.path)
    config = {"data": "dev.csv", "classes": ["ok", "scratch", "dent"], "negative": "ok",
              "buckets": {"cam": {"where": "cam_x >= 10"}},
              "require": [{"bucket": "cam", "recall": 0.5}]}
    evaluation = pytest_erran.evaluate(
        config, model="other.onnx", split="dev",
        unit_columns=[lambda units, images, settings: {"cam_x": units["camera"] * 10}],
        adapters={"first_two": lambda outputs, options: outputs["scores"]}, output="first_two")
    cam = [r for r in rows if r["camera"] >= 1 and r["label"] != "ok"]
    assert (evaluation.bucket("cam").positives, evaluation.bucket("cam").hits) == \
        (len(cam), sum(r["looks_like"] == r["label"] for r in cam))


def test_evaluate_refuses_bad_input_with_the_plugins_message(project, monkeypatch):
    monkeypatch.chdir(project.path)
    with pytest.raises(pytest_erran.ErranError, match="nothing to evaluate; give model="):
        pytest_erran.evaluate({"data": "dev.csv"})
    with pytest.raises(pytest_erran.ErranError, match="no such config file"):
        pytest_erran.evaluate("missing.toml")
    with pytest.raises(pytest_erran.ErranError, match="unknown key 'modle'"):
        pytest_erran.evaluate({"modle": "m.onnx"})


def test_importing_the_package_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, pytest_erran; heavy = [m for m in ('pandas', 'numpy', 'onnxruntime') "
            "if m in sys.modules]; print(json.dumps(heavy))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == []
