"""Precision/recall curves and AP at the match IoU against pycocotools' COCOeval, and the
confusion matrix and recall-by-bin strips against hand counts."""

import json

import numpy as np
import pytest

from coco_reference import evaluate_at_one_iou, index
from conftest import rows_with_misses
from detection_builders import random_scene
from evaluations import classification_evaluation, detection_evaluation
from pytest_erran.analysis.bins import recall_by_bins
from pytest_erran.analysis.confusion import confusion_matrix
from pytest_erran.analysis.curves import class_curves, mean_ap
from pytest_erran.report.json_report import report_document
from pytest_erran.units import Match


def coco_ap(root, iou):
    """Per category id (sorted) the AP COCOeval's accumulate() gives at one IoU, -1 when skipped."""
    truth = index(json.loads((root / "dev.json").read_text()))
    evaluator = evaluate_at_one_iou(truth, json.loads((root / "preds.json").read_text()), iou)
    evaluator.accumulate()
    precision = evaluator.eval["precision"][0, :, :, 0, 0]  # [R, K]
    return [float(precision[:, k].mean()) if (precision[:, k] > -1).all() else None
            for k in range(precision.shape[1])]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("iou", [0.5, 0.3])
def test_ap_at_the_match_iou_equals_cocoeval(tmp_path, seed, iou):
    scene = random_scene(seed, num_images=9)
    evaluation = detection_evaluation(tmp_path, scene, f"iou_threshold = {iou}\nscore_threshold = 0.4\n")
    thresholds = {c: 0.4 for c in evaluation.classes}
    curves = class_curves(evaluation.units["label"].to_numpy(), evaluation.classes, evaluation.predictions,
                          thresholds)
    reference = coco_ap(tmp_path, iou)
    assert [curves[c].ap for c in scene.classes] == pytest.approx(reference, abs=1e-12)
    document = report_document(evaluation)
    ap = document["average_precision"]
    assert ap["iou_threshold"] == iou
    assert [ap["classes"][c] for c in scene.classes] == pytest.approx(reference, abs=1e-12)
    expected_mean = np.mean([v for v in reference if v is not None])
    assert ap["mean"] == pytest.approx(expected_mean, abs=1e-12) == mean_ap(curves)


@pytest.mark.parametrize("seed", range(6))
def test_the_operating_point_is_the_buckets_recall_and_precision(tmp_path, seed):
    scene = random_scene(seed, num_images=9)
    evaluation = detection_evaluation(tmp_path, scene, "score_threshold = 0.5\n[class_thresholds]\nfin = 0.7\n")
    thresholds = {c: 0.7 if c == "fin" else 0.5 for c in evaluation.classes}
    curves = class_curves(evaluation.units["label"].to_numpy(), evaluation.classes, evaluation.predictions,
                          thresholds)
    found = evaluation.predictions
    at_threshold = found.match != Match.BELOW_THRESHOLD
    # above its class's threshold a prediction's outcome is the same whether or not lower ones count
    assert (found.match_any_score[at_threshold] == found.match[at_threshold]).all()
    for cls, curve in curves.items():
        bucket = evaluation.bucket(cls)
        assert curve.positives == bucket.positives
        assert curve.operating_recall == pytest.approx(bucket.recall if bucket.positives else None)
        assert curve.operating_precision == pytest.approx(bucket.precision)
        # the curve itself: recall never falls as the threshold is lowered
        assert (np.diff(curve.recall) >= 0).all() and (np.diff(curve.scores) < 0).all()


def test_a_classification_confusion_matrix_counts_label_against_prediction(tmp_path):
    rows = rows_with_misses()
    evaluation = classification_evaluation(tmp_path, rows)
    matrix = confusion_matrix(evaluation.units["label"].to_numpy(), evaluation.units["_pred"].to_numpy(),
                              evaluation.classes)
    expected = np.zeros((3, 3), int)
    classes = list(evaluation.classes)
    for row in rows:
        expected[classes.index(row["label"]), classes.index(row.get("looks_like", row["label"]))] += 1
    assert matrix.tolist() == expected.tolist()
    document = report_document(evaluation)
    assert document["confusion_matrix"] == {"classes": classes, "counts": expected.tolist()}
    assert "average_precision" not in document


def test_recall_by_bins_counts_each_decile():
    values = np.array([5, 1, 2, 2, 3, 9, 7, 8, 4, 6, np.nan, 10], float)
    hit = np.array([1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1], bool)
    bins = recall_by_bins(values, hit, 5)
    # quintile edges of the 11 finite values (sorted 1 2 2 3 4 5 6 7 8 9 10; the values at
    # positions 0, 2, 4, 6, 8, 10): 1, 2, 4, 6, 8, 10
    assert [edge for b in bins for edge in (b.low, b.high)] == pytest.approx([1, 2, 2, 4, 4, 6, 6, 8, 8, 10])
    # [1,2): 1 -> 0 hits; [2,4): 2 2 3 -> 2; [4,6): 4 5 -> 2; [6,8): 6 7 -> 1; [8,10]: 8 9 10 -> 3
    assert [(b.positives, b.hits) for b in bins] == [(1, 0), (3, 2), (2, 2), (2, 1), (3, 3)]
    assert sum(b.positives for b in bins) == 11  # the NaN is in no bin
    flat = recall_by_bins(np.ones(6), np.array([1, 1, 0, 1, 0, 1], bool))
    assert [(b.low, b.high, b.positives, b.hits) for b in flat] == [(1, 1, 6, 4)]
    assert recall_by_bins(np.array([np.nan]), np.array([True])) == []
