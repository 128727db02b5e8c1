"""The classification wing stage by stage, without a pytest run: its loaders (manifests,
ImageFolder), the interpretation of model outputs, and its predictions-file reader."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from builders import paint, write_manifest
from pytest_erran.errors import ErranError
from pytest_erran.tasks.classification.data import load_classification
from pytest_erran.tasks.classification.outputs import (apply_thresholds, as_probabilities, check_output_shape,
                                                       concat, interpret_output, predicted_labels)
from pytest_erran.tasks.classification.predictions_file import read_classification
from pytest_erran.units import ClassScores

CLASSES = ("ok", "scratch", "dent")

ROWS = [
    {"id": "a", "label": "scratch", "split": "dev", "tags": "severe;edge", "camera": "2", "lighting": "low"},
    {"id": "b", "label": "ok", "split": "dev", "tags": "", "camera": "10", "lighting": "normal"},
    {"id": "c", "label": "dent", "split": "train", "tags": "severe", "camera": "3", "lighting": "low"},
    {"id": "", "label": "01", "looks_like": "ok", "split": "dev", "tags": " edge ; ", "camera": "4",
     "lighting": "normal"},
]


# --- loaders ------------------------------------------------------------------------------------

def test_a_manifest_selects_its_split_and_types_its_columns(tmp_path):
    path = write_manifest(tmp_path, ROWS)
    dataset = load_classification(path, "dev")
    images, units = dataset.images, dataset.units
    assert images["id"].tolist() == ["a", "b", "images/0003.png"]  # a blank id is the image path
    assert images["label"].tolist() == ["scratch", "ok", "01"]  # labels stay text: "01" is not 1
    assert images["camera"].tolist() == [2, 10, 4] and images["camera"].dtype.kind == "i"
    assert images["tags"].tolist() == [("severe", "edge"), (), ("edge",)]
    assert images["_source"].tolist() == ["dev.csv line 2", "dev.csv line 3", "dev.csv line 5"]
    assert images["_path"].tolist() == [str((tmp_path / f"images/{i:04d}.png").resolve()) for i in (0, 1, 3)]
    assert units["_image_index"].tolist() == [0, 1, 2]
    assert units["_display"].tolist() == images["image"].tolist()
    assert dataset.all_ids == {"a", "b", "c", "images/0003.png"}  # every split, for predictions files
    assert dataset.classes is None  # a manifest defines no class order


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_jsonl_and_parquet_manifests_load_as_the_csv_does(tmp_path, suffix):
    csv_dataset = load_classification(write_manifest(tmp_path, ROWS), "dev")
    frame = pd.read_csv(tmp_path / "dev.csv", dtype=str, keep_default_na=False)
    other = tmp_path / f"dev{suffix}"
    if suffix == ".jsonl":
        other.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    else:
        frame.to_parquet(other)
    dataset = load_classification(other, "dev")
    columns = ["id", "image", "label", "tags", "camera", "_path"]
    pd.testing.assert_frame_equal(dataset.images[columns], csv_dataset.images[columns])


def test_an_image_folder_is_one_class_per_folder_in_sorted_order(tmp_path):
    for name, label in [("b.png", "dent"), ("a.png", "dent"), ("deep/c.png", "scratch"), ("d.png", "ok")]:
        paint(tmp_path / "set" / label / name, label)
    dataset = load_classification(tmp_path / "set", "dev")
    assert dataset.images["image"].tolist() == ["dent/a.png", "dent/b.png", "ok/d.png", "scratch/deep/c.png"]
    assert dataset.images["label"].tolist() == ["dent", "dent", "ok", "scratch"]
    assert dataset.units["id"].tolist() == dataset.images["image"].tolist()


@pytest.mark.parametrize("rows, message", [
    ([{"id": "x", "label": "ok"}, {"id": "x", "label": "dent"}],
     "dev.csv line 2 and dev.csv line 3: the id 'x' appears twice; give every row its own id"),
    ([{"id": "x", "label": "", "looks_like": "ok", "split": "dev"}], "dev.csv line 2: empty `label`; every row needs one"),
    ([{"id": "x", "label": "ok", "split": "train"}], "no rows with split 'dev' (splits found: train)"),
    ([{"id": "x", "label": "ok", "_weight": "1"}], "the column '_weight' is a name pytest-erran uses itself"),
])
def test_manifest_errors_name_the_row_and_the_fix(tmp_path, rows, message):
    with pytest.raises(ErranError) as error:
        load_classification(write_manifest(tmp_path, rows), "dev")
    assert message in str(error.value)


# --- model outputs ------------------------------------------------------------------------------

def test_scores_are_read_and_argmax_gives_the_class():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], np.float32)
    got = interpret_output(scores, CLASSES, "m")
    assert got.index.tolist() == [1, 0]
    np.testing.assert_array_equal(got.scores, scores)
    # [N, 1] is a column of class indices (as skl2onnx's label output), not one score
    assert interpret_output(np.array([[2], [0]], np.int64), CLASSES, "m").index.tolist() == [2, 0]


def test_indices_labels_and_zipmaps_are_read():
    assert interpret_output(np.array([2, 0], np.int64), CLASSES, "m").index.tolist() == [2, 0]
    assert interpret_output(np.array(["dent", "ok"]), CLASSES, "m").index.tolist() == [2, 0]
    by_index = interpret_output([{0: 0.2, 1: 0.5, 2: 0.3}], CLASSES, "m")
    by_name = interpret_output([{"dent": 0.6, "ok": 0.1, "scratch": 0.3}], CLASSES, "m")
    assert by_index.index.tolist() == [1] and by_name.index.tolist() == [2]
    np.testing.assert_allclose(by_name.scores, [[0.1, 0.3, 0.6]])


@pytest.mark.parametrize("value, message", [
    (np.array([3]), "predicts class index 3, but `classes` has 3 names"),
    (np.array(["rust"]), "predicts label 'rust', which is not one of the classes"),
    (np.array([0.5]), "a 1-D output must hold class indices, got float"),
    (np.zeros((2, 4), np.float32), "gives 4 scores per image but `classes` has 3 names"),
    (np.zeros((2, 3, 1), np.float32), "expected scores [N, classes] or labels [N], got shape [2, 3, 1]"),
    ([{"a": 1.0, "b": 0.0, "c": 0.0}], "the score maps have keys ['a', 'b', 'c']"),
])
def test_outputs_that_do_not_fit_the_classes_are_errors(value, message):
    with pytest.raises(ErranError) as error:
        interpret_output(value, CLASSES, "model.onnx: output 'y'")
    assert str(error.value).startswith("model.onnx: output 'y': ") and message in str(error.value)


def test_a_declared_output_shape_is_checked_before_any_image():
    check_output_shape(["N", 3], CLASSES, "m")  # fits
    check_output_shape(["N", "C"], CLASSES, "m")  # dynamic: checked per batch instead
    with pytest.raises(ErranError, match="gives 5 scores per image"):
        check_output_shape(["N", 5], CLASSES, "m")


def test_logits_get_a_softmax_and_probabilities_are_kept():
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]], np.float32)
    np.testing.assert_allclose(as_probabilities(logits), softmax(logits, axis=1), rtol=1e-6)
    probabilities = softmax(logits, axis=1).astype(np.float32)
    assert as_probabilities(probabilities) is probabilities


def test_class_thresholds_demote_a_low_score_to_the_negative_class():
    scores = np.array([[0.1, 0.6, 0.3], [0.2, 0.35, 0.45], [0.1, 0.2, 0.7]], np.float32)
    prediction = concat([interpret_output(scores[:2], CLASSES, "m"), interpret_output(scores[2:], CLASSES, "m")])
    names, top = predicted_labels(prediction, CLASSES, {"scratch": 0.6, "dent": 0.5}, "ok")
    # 0.6 meets scratch's 0.6 (score >= threshold keeps it); 0.45 misses dent's 0.5
    assert names.tolist() == ["scratch", "ok", "dent"]
    np.testing.assert_allclose(top, [0.6, 0.45, 0.7])
    with pytest.raises(ErranError, match="class_thresholds need a score per prediction"):
        predicted_labels(ClassScores(np.array([1]), None), CLASSES, {"scratch": 0.5}, "ok")
    with pytest.raises(ErranError, match="class_thresholds need `negative`"):
        apply_thresholds(names, top, {"dent": 0.5}, None, "m")


# --- predictions files --------------------------------------------------------------------------

def test_a_predictions_file_is_matched_on_ids_in_dataset_order(tmp_path):
    dataset = load_classification(write_manifest(tmp_path, ROWS), "dev")
    (tmp_path / "p.csv").write_text("id,label,score\nc,dent,0.2\nimages/0003.png,ok,0.5\nb,ok,0.4\na,dent,0.9\n")
    labels, scores = read_classification(tmp_path / "p.csv", dataset.images, dataset.all_ids,
                                         dataset.all_images, ("ok", "scratch", "dent", "01"))
    assert labels.tolist() == ["dent", "ok", "ok"] and scores.tolist() == [0.9, 0.4, 0.5]


@pytest.mark.parametrize("text, message", [
    ("id,label\na,ok\nb,ok\n", "no prediction for 1 evaluated image(s), e.g. 'images/0003.png'"),
    ("id,label\na,ok\na,dent\nb,ok\nimages/0003.png,ok\n", "p.csv line 3: a second prediction for id 'a'"),
    ("id,label\nzz,ok\n", "p.csv line 2: id 'zz' is not in the dev set"),
    ("id,label,score\na,ok,x\nb,ok,1\nimages/0003.png,ok,1\n", "p.csv line 2: `score` must be a number"),
    ("id,label\na,rust\nb,ok\nimages/0003.png,ok\n", "p.csv line 2: predicted label 'rust' is not one of"),
])
def test_predictions_file_errors_name_the_row(tmp_path, text, message):
    dataset = load_classification(write_manifest(tmp_path, ROWS), "dev")
    (tmp_path / "p.csv").write_text(text)
    with pytest.raises(ErranError) as error:
        read_classification(tmp_path / "p.csv", dataset.images, dataset.all_ids, dataset.all_images,
                            ("ok", "scratch", "dent", "01"))
    assert message in str(error.value)
