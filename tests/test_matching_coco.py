"""match_detections against pycocotools' COCOeval, box by box, on many random scenes."""

import numpy as np
import pytest
from pycocotools import mask

from coco_reference import evaluate_at_one_iou, index
from pytest_erran.tasks.detection import matching
from pytest_erran.tasks.detection.matching import (
    BELOW_THRESHOLD,
    FALSE_POSITIVE,
    IGNORED,
    TRUE_POSITIVE,
    crowd_iou,
    iou_matrix,
    match_detections,
    per_class_counts,
)

NUM_SEEDS = 300


def coco_reference(gt, pred, score_thresholds, iou_threshold, matched_gt=None):
    """(gt_hit, pred_outcome) as read from COCOeval's evalImgs; `matched_gt`, when given, is
    filled with the ground truth each true positive matched (dtMatches), -1 elsewhere."""
    num_classes = len(score_thresholds)
    images = sorted({int(i) for i in gt["image"]} | {int(i) for i in pred["image"]})
    annotations = []
    objects = zip(gt["image"], gt["label"], gt["box"], gt["crowd"])
    for j, (image, label, box, crowd) in enumerate(objects):
        w, h = float(box[2] - box[0]), float(box[3] - box[1])
        annotations.append(
            {
                "id": j + 1,  # COCOeval stores matched gt ids in dtMatches, where 0 means "none"
                "image_id": int(image),
                "category_id": int(label) + 1,
                "bbox": [float(box[0]), float(box[1]), w, h],
                "area": w * h,
                "iscrowd": int(crowd),
            }
        )
    dataset = {
        "images": [{"id": i, "width": 1000, "height": 1000} for i in images],
        "categories": [{"id": c + 1, "name": f"c{c}"} for c in range(num_classes)],
        "annotations": annotations,
    }
    gt_hit = np.zeros(len(gt["label"]), bool)
    outcome = np.full(len(pred["label"]), BELOW_THRESHOLD, np.int8)
    kept = np.flatnonzero(pred["score"] >= score_thresholds[pred["label"]])
    if len(kept) == 0:  # loadRes cannot take an empty list; nothing can match anyway
        return gt_hit, outcome
    results = [
        {
            "image_id": int(pred["image"][k]),
            "category_id": int(pred["label"][k]) + 1,
            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
            "score": float(pred["score"][k]),
        }
        for k in kept
        for b in [pred["box"][k]]
    ]
    evaluator = evaluate_at_one_iou(index(dataset), results, iou_threshold)  # detection ids 1..n

    seen = np.zeros(len(kept), bool)
    for entry in evaluator.evalImgs:
        if entry is None:
            continue
        for gt_id, matched in zip(entry["gtIds"], entry["gtMatches"][0]):
            gt_hit[gt_id - 1] = matched > 0 and not gt["crowd"][gt_id - 1]
        detections = zip(entry["dtIds"], entry["dtMatches"][0], entry["dtIgnore"][0])
        for dt_id, matched, ignore in detections:
            seen[dt_id - 1] = True
            if ignore:  # matched a crowd box
                outcome[kept[dt_id - 1]] = IGNORED
            else:
                outcome[kept[dt_id - 1]] = TRUE_POSITIVE if matched > 0 else FALSE_POSITIVE
                if matched > 0 and matched_gt is not None:
                    matched_gt[kept[dt_id - 1]] = int(matched) - 1
    assert seen.all(), "COCOeval skipped some detections; the reference set-up is wrong"
    return gt_hit, outcome


def random_scene(rng):
    """Small scenes built to hit the awkward cases: ties, duplicates, nesting, crowds, empties."""
    num_classes = int(rng.integers(1, 5))
    num_images = int(rng.integers(1, 6))
    image_ids = rng.choice(np.arange(-3, 60), size=num_images, replace=False)
    # Coordinates on a grid: steps of 1 or 0.5 make equal IoUs (and IoU exactly at the
    # threshold) common; steps of 1/64 look continuous. All are exact in float, so the x + w
    # that pycocotools computes gives back x2 bit for bit.
    step = rng.choice([1.0, 0.5, 1 / 64])
    extent = rng.choice([12, 30])  # a small canvas, so boxes overlap a lot

    def random_boxes(n):
        xy = rng.integers(0, extent / step, (n, 2)) * step
        wh = rng.integers(1 / step, 12 / step, (n, 2)) * step
        return np.concatenate([xy, xy + wh], 1)

    gt_image, gt_label, gt_box, gt_crowd = [], [], [], []
    pred_image, pred_label, pred_box = [], [], []
    for image in image_ids:
        n = int(rng.choice([0, 0, 1, 2, 4, 7]))
        boxes = random_boxes(n)
        labels = rng.integers(0, num_classes, n)
        if n and rng.random() < 0.3:  # duplicate ground truth
            boxes[-1], labels[-1] = boxes[0], labels[0]
        if n and rng.random() < 0.3:  # nested ground truth
            boxes[0] = boxes[-1] + np.array([-1, -1, 2, 2]) * step
        if rng.random() < 0.3:  # a prediction halfway between two ground truths: equal IoUs
            middle = random_boxes(1)
            shift = np.array([[1, 0, 1, 0]]) * step * rng.integers(1, 3)
            boxes = np.concatenate([boxes, middle - shift, middle + shift])
            labels = np.append(labels, [labels[0] if n else 0] * 2)
            pred_image.append(image)
            pred_label.append(labels[-1])
            pred_box.append(middle[0])
        gt_image += [image] * len(boxes)
        gt_label += list(labels)
        gt_box += list(boxes)
        gt_crowd += list(rng.random(len(boxes)) < 0.15)

    gt = {
        "image": np.array(gt_image, np.int64),
        "label": np.array(gt_label, np.int64),
        "box": np.array(gt_box, np.float64).reshape(-1, 4),
        "crowd": np.array(gt_crowd, bool),
    }

    for j in range(len(gt_image)):  # near-copies of ground truth, sometimes of the wrong class
        for _ in range(int(rng.choice([0, 1, 1, 2, 3]))):
            # Up to a pixel off, or (30%) an exact copy.
            jitter = rng.integers(-1 / step, 1 / step + 1, 4) * step * (rng.random() < 0.7)
            box = gt["box"][j] + jitter
            box[2:] = np.maximum(box[2:], box[:2] + step * rng.integers(0, 2))  # allows zero width
            pred_image.append(gt_image[j])
            pred_label.append(gt_label[j] if rng.random() < 0.8 else rng.integers(0, num_classes))
            pred_box.append(box)
    for _ in range(int(rng.integers(0, 6))):  # background boxes, possibly on images without gt
        pred_image.append(rng.choice(image_ids))
        pred_label.append(rng.integers(0, num_classes))
        pred_box.append(random_boxes(1)[0])
    if pred_box and rng.random() < 0.4:  # exact duplicate prediction
        k = int(rng.integers(len(pred_box)))
        pred_image.append(pred_image[k])
        pred_label.append(pred_label[k])
        pred_box.append(pred_box[k].copy())
    n_pred = len(pred_box)
    # Few distinct score levels so that equal scores (and their stable order) matter.
    levels = rng.random() < 0.6
    scores = rng.choice([0.1, 0.3, 0.5, 0.7, 0.9], n_pred) if levels else rng.random(n_pred)
    pred = {
        "image": np.array(pred_image, np.int64),
        "label": np.array(pred_label, np.int64),
        "box": np.array(pred_box, np.float64).reshape(-1, 4),
        "score": np.asarray(scores, np.float64),
    }
    thresholds = rng.choice([0.0, 0.0, 0.2, 0.5], num_classes)
    return gt, pred, thresholds


def run_match(gt, pred, thresholds, iou):
    return match_detections(
        gt["image"], gt["label"], gt["box"], gt["crowd"],
        pred["image"], pred["label"], pred["box"], pred["score"],
        thresholds, iou_threshold=iou,
    )  # fmt: skip


def assert_matches_coco(gt, pred, thresholds, iou, context):
    """Compare with COCOeval; return its outcomes."""
    expected_gt = np.full(len(pred["label"]), -1, np.int64)
    expected_hit, expected_outcome = coco_reference(gt, pred, thresholds, iou, expected_gt)
    got = run_match(gt, pred, thresholds, iou)
    np.testing.assert_array_equal(got.gt_hit, expected_hit, err_msg=context)
    np.testing.assert_array_equal(got.pred_outcome, expected_outcome, err_msg=context)
    # the matched predictions themselves: which object each true positive took, at what IoU
    np.testing.assert_array_equal(got.pred_gt, expected_gt, err_msg=context)
    matched = np.flatnonzero(expected_gt >= 0)
    xywh = lambda boxes: np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])  # noqa: E731
    reference_iou = [mask.iou(xywh(pred["box"][[k]]), xywh(gt["box"][[expected_gt[k]]]), [0])[0, 0]
                     for k in matched]
    np.testing.assert_allclose(got.pred_iou[matched], reference_iou, rtol=1e-12, err_msg=context)
    assert np.isnan(got.pred_iou[expected_gt < 0]).all(), context
    return expected_outcome


@pytest.mark.parametrize("iou", [0.5, 0.75])
def test_agrees_with_pycocotools_on_random_scenes(iou):
    rng = np.random.default_rng(12345 if iou == 0.5 else 54321)
    outcomes = np.zeros(4, int)
    equal_scores = 0
    for seed in range(NUM_SEEDS):
        gt, pred, thresholds = random_scene(rng)
        expected = assert_matches_coco(gt, pred, thresholds, iou, f"scene {seed} at IoU {iou}")
        outcomes += np.bincount(expected, minlength=4)
        equal_scores += len(pred["score"]) - len(np.unique(pred["score"]))
    # The scenes must actually exercise every outcome and equal scores.
    assert outcomes.min() > 20 and equal_scores > 100


@pytest.mark.parametrize("large_group, pair_chunk", [(0, 3), (10**9, 3), (0, 10**9)])
def test_batching_does_not_change_matches(monkeypatch, large_group, pair_chunk):
    # Force groups through the broadcast path and/or tiny chunks, which default sizes rarely hit.
    monkeypatch.setattr(matching, "_LARGE_GROUP", large_group)
    monkeypatch.setattr(matching, "_PAIR_CHUNK", pair_chunk)
    rng = np.random.default_rng(777)
    for seed in range(40):
        gt, pred, thresholds = random_scene(rng)
        assert_matches_coco(gt, pred, thresholds, 0.5, f"scene {seed}")


@pytest.mark.parametrize("iou", [0.5, 0.75])
def test_agrees_with_pycocotools_on_a_crowded_image(iou):
    # Hundreds of overlapping boxes per class in one image: large groups, long greedy chains,
    # continuous (float) coordinates.
    rng = np.random.default_rng(3)
    n = 600
    xy = rng.uniform(0, 400, (n, 2))
    box = np.concatenate([xy, xy + rng.uniform(5, 80, (n, 2))], 1)
    gt = {
        "image": np.zeros(n, int),
        "label": rng.integers(0, 2, n),
        "box": box,
        "crowd": rng.random(n) < 0.05,
    }
    source = rng.integers(0, n, 900)
    noisy = box[source] + rng.normal(0, 4, (900, 4))
    pred = {
        "image": np.zeros(900, int),
        "label": gt["label"][source],
        "box": np.concatenate([noisy[:, :2], np.maximum(noisy[:, 2:], noisy[:, :2])], 1),
        "score": rng.random(900),
    }
    assert_matches_coco(gt, pred, np.array([0.05, 0.1]), iou, "crowded image")


def test_hand_worked_case():
    gt = {
        "image": np.array([0, 0, 0, 1, 1]),
        "label": np.array([0, 0, 0, 0, 0]),
        "box": np.array(
            [
                [0, 0, 10, 10],  # A
                [20, 0, 30, 10],  # B
                [0, 20, 40, 40],  # crowd C
                [0, 0, 10, 10],  # G1, image 1
                [2, 0, 12, 10],  # G2, image 1
            ],
            float,
        ),
        "crowd": np.array([False, False, True, False, False]),
    }
    pred = {
        "image": np.array([0, 0, 0, 0, 0, 1, 1]),
        "label": np.array([0, 0, 0, 0, 1, 0, 0]),
        "box": np.array(
            [
                [0, 0, 10, 10],  # p0: A exactly -> TP
                [1, 0, 11, 10],  # p1: IoU .818 with A, but A is taken; misses B and C -> FP
                [20, 0, 30, 10],  # p2: B exactly, but score .3 < class-0 threshold .5 -> below
                [5, 25, 15, 35],  # p3: inside crowd C -> ignored
                [20, 0, 30, 10],  # p4: class 1 has no ground truth -> FP
                [1, 0, 11, 10],  # p5: IoU 90/110 with both G1 and G2: the later (G2) wins
                [-3, 0, 7, 10],  # p6: IoU 70/130 with G1 (free, since p5 took G2) -> TP
            ],
            float,
        ),
        "score": np.array([0.9, 0.8, 0.3, 0.7, 0.9, 0.9, 0.6]),
    }
    thresholds = np.array([0.5, 0.1])
    got = run_match(gt, pred, thresholds, 0.5)
    np.testing.assert_array_equal(got.gt_hit, [True, False, False, True, True])
    TP, FP = TRUE_POSITIVE, FALSE_POSITIVE
    np.testing.assert_array_equal(got.pred_outcome, [TP, FP, BELOW_THRESHOLD, IGNORED, FP, TP, TP])
    tp, fp = per_class_counts(pred["label"], got.pred_outcome, 2)
    np.testing.assert_array_equal(tp, [3, 0])
    np.testing.assert_array_equal(fp, [1, 1])
    # And pycocotools agrees.
    expected_hit, expected_outcome = coco_reference(gt, pred, thresholds, 0.5)
    np.testing.assert_array_equal(got.gt_hit, expected_hit)
    np.testing.assert_array_equal(got.pred_outcome, expected_outcome)


def test_equal_scores_keep_input_order():
    box = np.array([[0, 0, 10, 10]], float)
    got = match_detections(
        [7], [0], box, [False], [7, 7], [0, 0], np.repeat(box, 2, 0), [0.5, 0.5], [0.0]
    )
    np.testing.assert_array_equal(got.pred_outcome, [TRUE_POSITIVE, FALSE_POSITIVE])


def test_iou_exactly_at_threshold_matches():
    # IoU = 50 / 100 = 0.5 exactly; pycocotools matches at >=.
    gt_box, pred_box = [[0, 0, 10, 10]], [[0, 0, 10, 5]]
    got = match_detections([0], [0], gt_box, [False], [0], [0], pred_box, [1.0], [0.0])
    assert got.pred_outcome[0] == TRUE_POSITIVE


def test_crowd_absorbs_many_predictions_and_non_crowd_comes_first():
    gt_box = np.array([[0, 0, 100, 100], [0, 0, 10, 10]], float)  # crowd listed first
    pred_box = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], float)
    got = match_detections(
        [0, 0], [0, 0], gt_box, [True, False], [0] * 3, [0] * 3, pred_box, [0.9, 0.8, 0.7], [0.0]
    )
    np.testing.assert_array_equal(got.gt_hit, [False, True])
    np.testing.assert_array_equal(got.pred_outcome, [TRUE_POSITIVE, IGNORED, IGNORED])


def test_empty_inputs():
    empty = np.zeros((0, 4))
    got = match_detections([], [], empty, [], [], [], empty, [], [0.5])
    assert got.gt_hit.shape == (0,) and got.pred_outcome.shape == (0,)
    got = match_detections([0], [0], [[0, 0, 1, 1]], [False], [], [], empty, [], [0.5])
    np.testing.assert_array_equal(got.gt_hit, [False])
    got = match_detections([], [], empty, [], [3], [0], [[0, 0, 1, 1]], [0.9], [0.5])
    np.testing.assert_array_equal(got.pred_outcome, [FALSE_POSITIVE])


def test_iou_matrix_and_crowd_iou():
    a = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]], float)
    b = np.array([[0, 0, 10, 10], [0, 0, 20, 20]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1, 0.25], [50 / 150, 0.25], [0, 0.25]])
    # Crowd: intersection over the prediction's own area.
    np.testing.assert_allclose(crowd_iou(a, b), [[1, 1], [0.5, 1], [0, 1]])
    mixed = iou_matrix(a, b, crowd=[False, True])
    np.testing.assert_allclose(mixed, [[1, 1], [50 / 150, 1], [0, 1]])
    # Touching and degenerate boxes overlap by nothing, without dividing by zero.
    assert iou_matrix([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0, 0] == 0
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 2)


def test_bad_input_is_reported():
    box = [[0, 0, 1, 1]]
    with pytest.raises(ValueError, match="differ in length"):
        match_detections([0, 1], [0], box, [False], [], [], np.zeros((0, 4)), [], [0.5])
    with pytest.raises(ValueError, match="score_thresholds"):
        match_detections([0], [0], box, [False], [0], [2], box, [0.9], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        match_detections([0], [0], [[0, 0, 1]], [False], [], [], np.zeros((0, 4)), [], [0.5])
