"""ONNX detection output adapters: hand-computed cases."""

import numpy as np
import pytest

from pytest_erran.tasks.detection.outputs import (
    boxes_scores_labels,
    letterbox_geometry,
    nms,
    to_image_coords,
    yolo,
)

BOXES = np.array(
    [
        [[0, 0, 10, 10], [5, 5, 15, 15], [1, 1, 2, 2]],
        [[20, 20, 30, 30], [0, 0, 1, 1], [2, 2, 3, 3]],
    ],
    np.float32,
)
SCORES = np.array([[0.9, 0.8, 0.1], [0.7, 0.2, 0.3]], np.float32)
LABELS = np.array([[1, 2, 0], [3, 0, 0]], np.int64)
NAMED = {"boxes": BOXES, "scores": SCORES, "labels": LABELS}


def assert_detections(got, expected):
    assert len(got) == len(expected)
    for (boxes, scores, labels), (want_boxes, want_scores, want_labels) in zip(got, expected):
        assert boxes.dtype == np.float32 and boxes.shape == (len(want_boxes), 4)
        assert labels.dtype == np.int64
        np.testing.assert_allclose(boxes, np.reshape(want_boxes, (-1, 4)), atol=1e-5)
        np.testing.assert_allclose(scores, want_scores, atol=1e-6)
        np.testing.assert_array_equal(labels, want_labels)


# --- boxes_scores_labels ------------------------------------------------------------------


def test_named_batched_outputs_truncated_by_num_detections():
    outputs = {
        "num_detections": np.array([2, 0], np.int32),
        "detection_boxes": BOXES,
        "detection_scores": SCORES,
        "detection_classes": LABELS,
    }
    got = boxes_scores_labels(outputs)
    assert_detections(got, [(BOXES[0, :2], [0.9, 0.8], [1, 2]), (np.zeros((0, 4)), [], [])])


def test_names_override_shapes():
    # Both float and whole-numbered: only the names tell scores from labels here.
    labels, scores = np.ones((2, 3), np.float32), np.full((2, 3), 2.0)
    outputs = {"boxes": BOXES, "labels": labels, "scores": scores}
    got = boxes_scores_labels(outputs)
    np.testing.assert_array_equal(got[0][1], [2, 2, 2])
    np.testing.assert_array_equal(got[0][2], [1, 1, 1])


def test_num_detections_as_float_column():
    # TensorFlow-style exports give num_detections as float [B, 1].
    outputs = {
        "boxes": BOXES,
        "scores": SCORES,
        "labels": LABELS,
        "num_dets": np.array([[1.0], [3.0]], np.float32),
    }
    got = boxes_scores_labels(outputs)
    assert [len(scores) for _, scores, _ in got] == [1, 3]


def test_unnamed_outputs_identified_by_shape_in_any_order():
    outputs = [LABELS.astype(np.int32), np.array([3, 1], np.int64), SCORES, BOXES]
    got = boxes_scores_labels(outputs)
    assert_detections(got, [(BOXES[0], SCORES[0], LABELS[0]), (BOXES[1, :1], [0.7], [3])])


def test_unrecognised_names_fall_back_to_shapes():
    outputs = {"output0": SCORES, "output1": BOXES, "output2": LABELS}
    got = boxes_scores_labels(outputs)
    assert_detections(got, [(BOXES[i], SCORES[i], LABELS[i]) for i in range(2)])


def test_float_labels_told_apart_by_whole_numbers():
    got = boxes_scores_labels([BOXES, LABELS.astype(np.float32), SCORES])
    assert_detections(got, [(BOXES[i], SCORES[i], LABELS[i]) for i in range(2)])


def test_unbatched_outputs_and_trailing_unit_axis():
    got = boxes_scores_labels([BOXES[0], SCORES[0][:, None], LABELS[0]])
    assert_detections(got, [(BOXES[0], SCORES[0], LABELS[0])])


@pytest.mark.parametrize(
    "outputs, message",
    [
        ([BOXES, BOXES, SCORES, LABELS], "which output holds the boxes"),
        ([BOXES, SCORES[:, :2], LABELS], "one score and one label"),
        ([BOXES, SCORES, SCORES.copy()], "cannot tell scores from labels"),
        ([BOXES, SCORES, LABELS, np.array([1, 2, 3])], "num_detections of length 2"),
        ({**NAMED, "num": np.array([4, 1])}, "between 0 and 3"),
        ({**NAMED, "num": np.array([1])}, "batch of 2"),
        ({"boxes": BOXES, "scores": SCORES[:, :2], "labels": LABELS}, r"scores shape \(2, 2\)"),
        ({"boxes": BOXES[..., :3], "scores": SCORES, "labels": LABELS}, r"\[B, K, 4\]"),
    ],
)
def test_shapes_that_do_not_fit_are_reported(outputs, message):
    with pytest.raises(ValueError, match=message):
        boxes_scores_labels(outputs)


# --- nms ----------------------------------------------------------------------------------

NMS_BOXES = np.array(
    [
        [0, 0, 10, 10],  # 0: best
        [1, 0, 11, 10],  # 1: IoU 90/110 with 0, same class -> suppressed
        [1, 0, 11, 10],  # 2: same box as 1 but another class -> kept
        [20, 20, 30, 30],  # 3: far away -> kept
        [0, 0, 10, 5],  # 4: IoU exactly 0.5 with 0: not above the threshold -> kept
    ],
    float,
)
NMS_SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
NMS_LABELS = np.array([0, 0, 1, 0, 0])


def test_nms_is_class_aware_and_greedy():
    np.testing.assert_array_equal(nms(NMS_BOXES, NMS_SCORES, NMS_LABELS, 0.5), [0, 2, 3, 4])
    # Across classes, box 2 falls to box 0 as well.
    np.testing.assert_array_equal(nms(NMS_BOXES, NMS_SCORES, None, 0.5), [0, 3, 4])
    np.testing.assert_array_equal(nms(NMS_BOXES, NMS_SCORES, NMS_LABELS, 0.95), [0, 1, 2, 3, 4])


def test_nms_suppressed_box_suppresses_nothing():
    # b overlaps a (IoU 70/130) and c (IoU 70/130); a and c barely (40/160). b goes, so c stays.
    boxes = np.array([[0, 0, 10, 10], [3, 0, 13, 10], [6, 0, 16, 10]], float)
    np.testing.assert_array_equal(nms(boxes, [0.9, 0.8, 0.7], [0, 0, 0], 0.5), [0, 2])


def test_nms_order_and_max_det():
    order = np.array([4, 3, 2, 1, 0])  # shuffled input: output is still best score first
    kept = nms(NMS_BOXES[order], NMS_SCORES[order], NMS_LABELS[order], 0.5)
    np.testing.assert_array_equal(order[kept], [0, 2, 3, 4])
    np.testing.assert_array_equal(nms(NMS_BOXES, NMS_SCORES, NMS_LABELS, 0.5, max_det=2), [0, 2])
    assert nms(np.zeros((0, 4)), [], [], 0.5).shape == (0,)


# --- yolo ---------------------------------------------------------------------------------


def yolo_raw():
    """[1, 4 + 2, 7]: one column per anchor (cx, cy, w, h, score class 0, score class 1)."""
    anchors = [
        (5, 5, 10, 10, 0.9, 0.1),  # box [0, 0, 10, 10], class 0, 0.9
        (6, 5, 10, 10, 0.8, 0.2),  # [1, 0, 11, 10] class 0: IoU 0.82 with the first -> suppressed
        (6, 5, 10, 10, 0.1, 0.7),  # same box, class 1 -> kept
        (50, 50, 20, 10, 0.3, 0.6),  # [40, 45, 60, 55], class 1, 0.6
        (50, 50, 20, 10, 0.5, 0.1),  # same box, class 0, 0.5 -> kept (other class)
        (80, 80, 4, 4, 0.0005, 0.0002),  # below the 0.001 floor
        (90, 90, 4, 4, 0.0, 0.0),
    ]
    return np.array(anchors, np.float32).T[None]


YOLO_EXPECTED = (
    [[0, 0, 10, 10], [1, 0, 11, 10], [40, 45, 60, 55], [40, 45, 60, 55]],
    [0.9, 0.7, 0.6, 0.5],
    [0, 1, 1, 0],
)


def test_yolo_decodes_thresholds_and_suppresses():
    assert_detections(yolo(yolo_raw(), 0.001, 0.7), [YOLO_EXPECTED])


def test_yolo_accepts_transposed_layout_and_batches():
    raw = np.concatenate([yolo_raw(), np.zeros_like(yolo_raw())])  # second image: nothing
    transposed = raw.transpose(0, 2, 1)  # [2, 7 anchors, 6 channels]
    assert_detections(yolo(transposed, 0.001, 0.7), [YOLO_EXPECTED, (np.zeros((0, 4)), [], [])])


def test_yolo_max_det_and_threshold():
    boxes, scores, labels = yolo(yolo_raw(), 0.001, 0.7, max_det=2)[0]
    np.testing.assert_allclose(scores, [0.9, 0.7])
    _, scores, _ = yolo(yolo_raw(), 0.6, 0.7)[0]  # score >= threshold is kept
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.6])


def test_yolo_rejects_outputs_without_class_rows():
    with pytest.raises(ValueError, match="at least one class"):
        yolo(np.zeros((1, 4, 100)), 0.001, 0.7)
    with pytest.raises(ValueError, match=r"\[B, 4 \+ classes, anchors\]"):
        yolo(np.zeros((1, 1, 6, 100)), 0.001, 0.7)


# --- coordinates --------------------------------------------------------------------------


def test_letterbox_geometry():
    # 1280x720 into 640x640: scale 0.5 -> 640x360, pad (640 - 360) / 2 = 140 above.
    assert letterbox_geometry((1280, 720), (640, 640)) == (0.5, 640, 360, 0, 140)
    # Portrait: pad left and right.
    assert letterbox_geometry((720, 1280), (640, 640)) == (0.5, 360, 640, 140, 0)
    # 500x332 -> scale 1.28 -> 640x424.96 -> 425 rows; 215 rows of pad: 107 above, 108 below.
    assert letterbox_geometry((500, 332), (640, 640)) == (1.28, 640, 425, 0, 107)


def test_letterbox_round_trip_on_non_square_image():
    image, model_input = (500, 332), (640, 480)
    scale, new_w, new_h, left, top = letterbox_geometry(image, model_input)
    # scale min(640 / 500, 480 / 332) = 1.28 -> 640x425; (480 - 425) / 2 = 27.5 -> 27 rows above.
    assert (scale, new_w, new_h, left, top) == (1.28, 640, 425, 0, 27)
    boxes = np.array([[10, 20, 110, 220], [0, 0, 500, 332], [123.5, 7.25, 400, 331]])
    in_input = boxes * scale + [left, top, left, top]
    back = to_image_coords(in_input, image, model_input, "letterbox")
    np.testing.assert_allclose(back, boxes, atol=1e-9)


def test_letterbox_inverse_by_hand_and_clipping():
    # 1280x720 into 640x640: scale 0.5, top pad 140.
    boxes = np.array([[100, 150, 200, 250], [-5, 100, 700, 600]], float)
    got = to_image_coords(boxes, (1280, 720), (640, 640), "letterbox")
    np.testing.assert_allclose(got, [[200, 20, 400, 220], [0, 0, 1280, 720]])


def test_stretch_inverse():
    got = to_image_coords([[64, 64, 320, 320]], (1280, 720), (640, 640), "stretch")
    np.testing.assert_allclose(got, [[128, 72, 640, 360]])


def test_bad_coordinate_arguments():
    with pytest.raises(ValueError, match="resize mode"):
        to_image_coords([[0, 0, 1, 1]], (10, 10), (10, 10), "crop")
    with pytest.raises(ValueError, match="width, height"):
        letterbox_geometry((0, 10), (10, 10))
