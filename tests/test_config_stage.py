"""Config building on its own: where a config is found, how paths resolve, what the command line
overrides, and the requirements it turns into (ids, metrics, order)."""

import textwrap
from pathlib import Path

import pytest

from pytest_erran.config import Requirement, build_settings, find_config
from pytest_erran.errors import ErranError
from pytest_erran.vocabulary import METRICS, GateMode, Metric, TaskName


def settings_of(tmp_path, text, overrides=None, name="erran.toml"):
    path = tmp_path / "conf" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(text))
    config_path, table = find_config(tmp_path, path)
    return build_settings(tmp_path, config_path, table, overrides or {})


def test_paths_in_the_file_are_relative_to_it_and_options_win(tmp_path):
    settings = settings_of(tmp_path, """
        model = "models/m.onnx"
        data = "../data/dev.csv"
        baseline = "b.json"
        task = "detection"
    """, {"model": tmp_path / "other.onnx", "batch_size": 4, "threads": None})
    assert settings.model == tmp_path / "other.onnx"
    assert settings.data == (tmp_path / "data" / "dev.csv").resolve()
    assert settings.baseline_path == (tmp_path / "conf" / "b.json").resolve()
    assert settings.batch_size == 4 and settings.threads is None
    assert settings.task is TaskName.DETECTION and settings.active


def test_defaults(tmp_path):
    settings = settings_of(tmp_path, 'data = "dev.csv"\n')
    assert settings.task is TaskName.CLASSIFICATION and not settings.active
    assert settings.baseline_path == tmp_path / ".erran" / "baseline.json"  # in the rootdir
    assert (settings.split, settings.batch_size, settings.alpha, settings.confidence) == ("dev", 16, 0.05, 0.95)
    assert (settings.score_threshold, settings.iou_threshold, settings.nms_iou) == (0.5, 0.5, 0.7)


def test_requirements_get_their_metric_ids_and_a_sorted_order(tmp_path):
    settings = settings_of(tmp_path, """
        [[require]]
        bucket = "tube"
        recall = 0.9
        max_drop = 0.02
        [[require]]
        bucket = "fin"
        max_fp_per_image = 0.1
        [[require]]
        bucket = "all"
        precision = 0.955
        gate = "lower_bound"
        [[require]]
        bucket = "edge"
        max_drop = 0.05
    """)
    assert [r.id for r in settings.requirements] == [
        "drop(edge)<=0.05", "fp_per_image(fin)<=0.10", "precision(all)>=0.955", "recall(tube)>=0.90"]
    by_id = {r.id: r for r in settings.requirements}
    assert by_id["recall(tube)>=0.90"] == Requirement("tube", Metric.RECALL, 0.9, max_drop=0.02)
    assert by_id["precision(all)>=0.955"].gate is GateMode.LOWER_BOUND
    assert by_id["drop(edge)<=0.05"].threshold is None and by_id["drop(edge)<=0.05"].metric is Metric.DROP


def test_the_metric_table_holds_each_metrics_meaning():
    assert {m: (s.key, s.sign) for m, s in METRICS.items()} == {
        Metric.RECALL: ("recall", ">="), Metric.PRECISION: ("precision", ">="),
        Metric.FP_PER_IMAGE: ("max_fp_per_image", "<="), Metric.DROP: ("max_drop", "<="),
        Metric.COVERAGE: ("min_train", ">="), Metric.LEAKAGE: ("forbid_leakage", "<=")}
    assert METRICS[Metric.FP_PER_IMAGE].holds(0.1, 0.1) and not METRICS[Metric.FP_PER_IMAGE].holds(0.11, 0.1)
    assert METRICS[Metric.RECALL].applies_to_custom_buckets
    assert not METRICS[Metric.PRECISION].applies_to_custom_buckets


@pytest.mark.parametrize("text, message", [
    ('modle = "m.onnx"\n', "unknown key 'modle' (did you mean 'model'?)"),
    ('[[require]]\nbucket = "a"\nrecall = 0.9\nprecision = 0.8\n', "require[0] sets recall and precision"),
    ('[[require]]\nbucket = "a"\nrecall = 0.9\n[[require]]\nbucket = "a"\nrecall = 0.9\n',
     "require[1] repeats recall(a)>=0.90; remove one"),
    ('[[require]]\nbucket = "a"\nrecall = 1.5\n', "key 'require[0].recall' with bucket = 'a' must be between 0 and 1"),
    ('task = "segmentation"\n', "key 'task'"),
])
def test_config_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(ErranError) as error:
        settings_of(tmp_path, text)
    assert message in str(error.value)


def test_pyproject_is_read_only_with_a_tool_erran_table(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"  # not tool.erran\n')
    assert find_config(tmp_path, None) == (None, {})
    (tmp_path / "pyproject.toml").write_text('[tool.erran]\nmodel = "m.onnx"\n')
    assert find_config(tmp_path, None) == (tmp_path / "pyproject.toml", {"model": "m.onnx"})
    (tmp_path / "erran.toml").write_text('model = "e.onnx"\n')  # erran.toml comes first
    assert find_config(tmp_path, None)[1] == {"model": "e.onnx"}
    with pytest.raises(ErranError, match="does not exist"):
        find_config(tmp_path, Path(tmp_path / "nope.toml"))
