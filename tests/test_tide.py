"""Detection error types (TIDE's taxonomy, DESIGN.md's rules) on hand-built scenes: every box
placed so that its type is known by construction; matching by the gate's own matcher."""

import numpy as np
import pytest

from pytest_erran.analysis.tide import error_types
from pytest_erran.tasks.detection.matching import match_detections
from pytest_erran.units import Detections

PIT, DENT = 0, 1


def typed(objects, predictions, iou_threshold=0.5, score_threshold=0.5):
    """objects: (image, class, box); predictions: (image, class, box, score)."""
    gt_image = np.array([o[0] for o in objects], np.int64)
    gt_label = np.array([o[1] for o in objects], np.int64)
    gt_box = np.array([o[2] for o in objects], float).reshape(-1, 4)
    p_image = np.array([p[0] for p in predictions], np.int64)
    p_label = np.array([p[1] for p in predictions], np.int64)
    p_box = np.array([p[2] for p in predictions], np.float32).reshape(-1, 4)
    p_score = np.array([p[3] for p in predictions], np.float32)
    matched = match_detections(gt_image, gt_label, gt_box, np.zeros(len(objects), bool), p_image, p_label,
                               p_box, p_score, np.full(2, score_threshold), iou_threshold)
    detections = Detections(p_image, p_label, p_score, p_box, matched.pred_outcome, matched.pred_gt,
                            matched.pred_iou)
    return error_types(detections, gt_image, gt_label, gt_box, matched.gt_hit, iou_threshold)


def test_every_type_on_one_hand_built_image():
    objects = [
        (0, PIT, (0, 0, 10, 10)),     # A: found
        (0, DENT, (20, 0, 30, 10)),   # B: found
        (0, PIT, (40, 0, 50, 10)),    # C: missed, a pit box beside it (IoU 6/14)
        (0, DENT, (60, 0, 70, 10)),   # D: missed, seen as a pit
        (0, PIT, (80, 0, 90, 10)),    # E: missed, a dent box beside it (IoU 1/3)
        (0, PIT, (0, 40, 10, 50)),    # F: missed, nothing near it
    ]
    predictions = [
        (0, PIT, (0, 0, 10, 10), 0.9),     # p0 matches A
        (0, PIT, (0, 0, 10, 10), 0.8),     # p1 A again, already taken: duplicate
        (0, DENT, (20, 0, 30, 10), 0.9),   # p2 matches B
        (0, PIT, (44, 0, 54, 10), 0.9),    # p3 localisation (C)
        (0, PIT, (60, 0, 70, 10), 0.9),    # p4 classification (D)
        (0, DENT, (85, 0, 95, 10), 0.7),   # p5 both (E)
        (0, PIT, (100, 40, 110, 50), 0.9),  # p6 background
        (0, DENT, (0, 0, 10, 10), 0.95),   # p7 a dent on pit A (found anyway): classification
        (0, PIT, (0, 40, 10, 50), 0.1),    # p8 below the threshold: not a prediction, explains nothing
    ]
    types = typed(objects, predictions)
    assert types.predictions.tolist() == ["", "duplicate", "", "localisation", "classification", "both",
                                          "background", "classification", ""]
    assert types.units.tolist() == ["", "", "localisation", "classification", "both", "missed"]
    counts = types.counts(units_mask=np.ones(6, bool), predictions_mask=np.ones(9, bool))
    assert counts["false_positives"] == {"classification": 2, "localisation": 1, "both": 1, "duplicate": 1,
                                         "background": 1}
    assert counts["missed"] == {"missed": 1, "localisation": 1, "classification": 1, "both": 1}


def test_the_boundaries_are_t_b_and_t_f():
    # a pit box overlapping a missed pit at exactly IoU 0.1 (t_b: localisation) and one just
    # under it on another image (background, and the object then counts as missed)
    objects = [(0, PIT, (0, 0, 10, 10)), (1, PIT, (0, 0, 10, 10))]
    predictions = [(0, PIT, (0, 0, 10, 1.0), 0.9), (1, PIT, (0, 0, 10, 0.9), 0.9)]
    types = typed(objects, predictions)
    # IoU 10/100 = 0.1 -> localisation; 9/100 -> background
    assert types.predictions.tolist() == ["localisation", "background"]
    assert types.units.tolist() == ["localisation", "missed"]
    # at IoU >= t_f with the right class a prediction matches: it is no error at all
    assert typed([(0, PIT, (0, 0, 10, 10))], [(0, PIT, (0, 0, 10, 5), 0.9)], iou_threshold=0.5).units.tolist() == [""]


def test_the_most_overlapped_object_decides_and_its_own_class_wins_a_tie():
    # a dent box overlapping a dent (missed) and a pit (missed) equally, at IoU 1/3 each
    objects = [(0, DENT, (0, 0, 10, 10)), (0, PIT, (10, 0, 20, 10))]
    types = typed(objects, [(0, DENT, (5, 0, 15, 10), 0.9)])
    assert types.predictions.tolist() == ["localisation"]
    assert types.units.tolist() == ["localisation", "missed"]  # the pit is explained by nothing


def test_a_missed_object_takes_the_strongest_explanation():
    # one missed pit, a pit box off to its side (localisation) and a dent box on it (classification)
    types = typed([(0, PIT, (0, 0, 10, 10))], [(0, PIT, (5, 0, 15, 10), 0.9), (0, DENT, (0, 0, 10, 10), 0.8)])
    assert types.predictions.tolist() == ["localisation", "classification"]
    assert types.units.tolist() == ["classification"]


def test_predictions_on_other_images_never_explain_an_object():
    types = typed([(0, PIT, (0, 0, 10, 10)), (1, DENT, (50, 50, 60, 60))],
                  [(1, PIT, (0, 0, 10, 10), 0.9)])
    assert types.predictions.tolist() == ["background"]
    assert types.units.tolist() == ["missed", "missed"]


@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_t_f_follows_the_match_iou(threshold):
    # IoU 0.5 between a pit and a pit box: a match at t_f 0.3, localisation at t_f 0.7
    types = typed([(0, PIT, (0, 0, 10, 10))], [(0, PIT, (0, 0, 10, 5), 0.9)], iou_threshold=threshold)
    assert types.units.tolist() == ([""] if threshold == 0.3 else ["localisation"])
