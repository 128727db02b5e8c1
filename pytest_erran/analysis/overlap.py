"""Which prediction lies nearest a missed object, and which object nearest a false positive: what
a person looking at a miss wants drawn next to it."""

from __future__ import annotations

import numpy as np


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x1y1x2y2 box with each of `boxes` [K, 4] (continuous coordinates, no +1)."""
    box = np.asarray(box, np.float64)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    iw = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    ih = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / union, 0.0)


def nearest(box: np.ndarray, boxes: np.ndarray, scores: np.ndarray | None = None) -> tuple[int, float]:
    """(index into `boxes`, IoU) of the box overlapping `box` most, the higher score (then the
    first) on a tie; (-1, 0.0) when none overlaps it at all."""
    if len(boxes) == 0:
        return -1, 0.0
    iou = box_iou(box, boxes)
    best = float(iou.max())
    if best <= 0:
        return -1, 0.0
    tied = np.flatnonzero(iou == best)
    if scores is not None and len(tied) > 1:
        tied = tied[np.argsort(-np.asarray(scores, np.float64)[tied], kind="stable")]
    return int(tied[0]), best


class ByImage:
    """Row indices grouped by image, for looking up the boxes of one image quickly."""

    def __init__(self, image: np.ndarray):
        image = np.asarray(image, np.int64)
        self.order = np.argsort(image, kind="stable")
        self.sorted = image[self.order]

    def rows(self, image: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.sorted, [image, image + 1])
        return self.order[lo:hi]
