"""Possible label errors, after confident learning (Northcutt et al., 2021), simplified.

t_j = the mean score of class j over the units labelled j and predicted j (the model's own
confidence when it is right about j). A unit labelled i whose top score is for another class j,
at or above t_j, is a candidate: the model disagrees with its label as confidently as it is
usually right. Listed for a person to check; never counted as fixed, never excluded.
"""

from __future__ import annotations

import numpy as np

from .tide import pair_iou, same_image_pairs


def class_means(label: np.ndarray, top: np.ndarray, score: np.ndarray, classes: int) -> np.ndarray:
    """t_j per class index (NaN for a class never predicted right)."""
    means = np.full(classes, np.nan)
    right = (label == top) & np.isfinite(score)
    for j in range(classes):
        mine = right & (top == j)
        if mine.any():
            means[j] = float(score[mine].mean())
    return means


def candidates(label: np.ndarray, top: np.ndarray, score: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the candidates, most confident first; t_j per class). `label` and `top` are
    class indices (-1 for a unit no prediction covers), `score` the top class's score."""
    means = class_means(label, top, score, classes)
    threshold = np.where(top >= 0, means[np.clip(top, 0, None)], np.nan)
    with np.errstate(invalid="ignore"):
        flagged = (top >= 0) & (top != label) & (score >= threshold)
    found = np.flatnonzero(flagged)
    margin = score[found] - threshold[found]
    return found[np.argsort(-margin, kind="stable")], means


def detection_top(pred_image: np.ndarray, pred_label: np.ndarray, pred_score: np.ndarray, pred_box: np.ndarray,
                  unit_image: np.ndarray, unit_box: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per object, the class and score of the highest-scoring counted prediction overlapping it
    at IoU >= the match threshold (-1 and NaN when none does)."""
    top = np.full(len(unit_image), -1, np.int64)
    score = np.full(len(unit_image), np.nan)
    p, u = same_image_pairs(pred_image, unit_image)
    if len(p):
        keep = pair_iou(pred_box[p].astype(np.float64), unit_box[u]) >= iou_threshold
        p, u = p[keep], u[keep]
        order = np.lexsort((pred_score[p], u))
        p, u = p[order], u[order]
        last = np.flatnonzero(np.append(u[1:] != u[:-1], True))
        top[u[last]], score[u[last]] = pred_label[p[last]], pred_score[p[last]]
    return top, score
