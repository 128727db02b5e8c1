"""Detection: precision and recall per class over score thresholds, and AP at the match IoU.

AP is COCOeval's at one IoU threshold (area "all", no maxDets cap): per class, predictions in
descending score order (ties by image, then by the order they were given, as COCOeval's merge
of per-image lists leaves them), cumulative true and false positives, precision made monotone
from the right and read at the 101 recall points 0, 0.01, ..., 1. Predictions on crowd boxes
count as neither. The matching is the one made with no score threshold
(`Detections.match_any_score`), so the curve covers every prediction erran has: every row of a
predictions file, or what a model's output adapter kept (at or above the lowest threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..units import Detections, Match

# COCOeval's recThrs, built the same way so that searchsorted sees the same floats
RECALL_POINTS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
PLOTTED_POINTS = 200  # a curve is drawn through at most this many thresholds


@dataclass(frozen=True)
class Curve:
    """One class's precision and recall at every score threshold its predictions offer."""

    cls: str
    positives: int  # its ground-truth objects (crowd boxes are not objects)
    scores: np.ndarray  # the distinct thresholds, descending
    precision: np.ndarray  # at each threshold: predictions with score >= it
    recall: np.ndarray
    ap: float | None  # None without positives (COCOeval leaves the class out)
    threshold: float  # the configured operating point
    operating_precision: float | None  # None when no prediction reaches the threshold
    operating_recall: float | None
    lowest_score: float | None  # the lowest score counted

    def plotted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, recall, precision) thinned to at most PLOTTED_POINTS, ends kept."""
        n = len(self.scores)
        keep = np.unique(np.linspace(0, n - 1, min(n, PLOTTED_POINTS)).round().astype(int)) if n else \
            np.zeros(0, int)
        return self.scores[keep], self.recall[keep], self.precision[keep]


def class_curves(unit_labels: np.ndarray, classes: tuple[str, ...], detections: Detections,
                 thresholds: dict[str, float]) -> dict[str, Curve]:
    """A curve per class; `unit_labels` are the true classes of the ground-truth objects,
    `thresholds` each class's score threshold."""
    match = detections.match_any_score
    if match is None:
        raise ValueError("these detections were matched at their thresholds only; curves need "
                         "match_any_score")
    counted = (match == Match.TRUE_POSITIVE) | (match == Match.FALSE_POSITIVE)
    curves = {}
    for k, cls in enumerate(classes):
        mine = np.flatnonzero(counted & (detections.label == k))
        score = detections.score[mine].astype(np.float64)
        # descending score; ties by image, then by given order (np.lexsort: last key first)
        order = mine[np.lexsort((mine, detections.image[mine], -score))]
        curves[cls] = _curve(cls, int((unit_labels == cls).sum()), detections.score[order].astype(np.float64),
                             match[order] == Match.TRUE_POSITIVE, float(thresholds[cls]))
    return curves


def _curve(cls: str, positives: int, score: np.ndarray, true: np.ndarray, threshold: float) -> Curve:
    tp = np.cumsum(true).astype(np.float64)
    fp = np.cumsum(~true).astype(np.float64)
    recall = tp / positives if positives else np.zeros(len(tp))
    precision = tp / (fp + tp + np.spacing(1))
    ap = _average_precision(recall, precision) if positives else None
    # the curve at each distinct score: the last prediction of each run of equal scores
    last = np.flatnonzero(np.append(score[1:] != score[:-1], True)) if len(score) else np.zeros(0, int)
    at = np.searchsorted(-score, -threshold, side="right")  # predictions with score >= threshold
    if at:
        op_recall = tp[at - 1] / positives if positives else None
        op_precision = tp[at - 1] / (tp[at - 1] + fp[at - 1])
    else:
        op_recall, op_precision = (0.0 if positives else None), None
    return Curve(cls=cls, positives=positives, scores=score[last], precision=tp[last] / (tp[last] + fp[last]),
                 recall=recall[last], ap=ap, threshold=threshold, operating_precision=op_precision,
                 operating_recall=op_recall, lowest_score=float(score[-1]) if len(score) else None)


def _average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """COCOeval's accumulate() for one class: interpolated precision at RECALL_POINTS, averaged."""
    q = np.zeros(len(RECALL_POINTS))
    if len(precision):
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        at = np.searchsorted(recall, RECALL_POINTS, side="left")
        inside = at < len(envelope)
        q[inside] = envelope[at[inside]]
    return float(np.mean(q))


def mean_ap(curves: dict[str, Curve]) -> float | None:
    """The mean over classes that have positives, as COCOeval's summary averages."""
    values = [c.ap for c in curves.values() if c.ap is not None]
    return float(np.mean(values)) if values else None


def operating_thresholds(settings, classes: tuple[str, ...]) -> dict[str, float]:
    """Each class's score threshold: class_thresholds, else score_threshold (detection's rule)."""
    return {c: float(settings.class_thresholds.get(c, settings.score_threshold)) for c in classes}


def evaluation_curves(evaluation) -> dict[str, Curve]:
    """The curves of a detection evaluation, at its configured operating points."""
    return class_curves(evaluation.units["label"].to_numpy(), evaluation.classes, evaluation.predictions,
                        operating_thresholds(evaluation.settings, evaluation.classes))
