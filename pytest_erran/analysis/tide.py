"""Detection error types, after TIDE (Bolya et al., ECCV 2020), at the gate's own thresholds.

t_f (foreground) = the match IoU, t_b (background) = 0.1. A prediction that matched nothing is
typed by the ground-truth object it overlaps most (any class; on a tie its own class's):
  IoU >= t_f, another class's object          -> classification
  IoU >= t_f, its own class's (already taken) -> duplicate
  t_b <= IoU < t_f, its own class's           -> localisation
  t_b <= IoU < t_f, another class's           -> both
  IoU < t_b with every object                 -> background
A missed object is explained by the unmatched predictions whose most-overlapped object it is:
classification, else localisation, else both; one that none explains is `missed` (not seen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..units import BOX, Detections, Match

BACKGROUND_IOU = 0.1
FALSE_POSITIVE_TYPES = ("classification", "localisation", "both", "duplicate", "background")
MISSED_TYPES = ("missed", "localisation", "classification", "both")
_EXPLAINS = ("classification", "localisation", "both")  # in priority order


@dataclass(frozen=True)
class ErrorTypes:
    predictions: np.ndarray  # [P] object: the type of each unmatched prediction, "" otherwise
    units: np.ndarray  # [U] object: the type of each missed object, "" for a hit

    def counts(self, units_mask: np.ndarray | None = None, predictions_mask: np.ndarray | None = None) -> dict:
        out = {}
        if predictions_mask is not None:
            found = self.predictions[predictions_mask]
            out["false_positives"] = {t: int((found == t).sum()) for t in FALSE_POSITIVE_TYPES}
        if units_mask is not None:
            found = self.units[units_mask]
            out["missed"] = {t: int((found == t).sum()) for t in MISSED_TYPES}
        return out


def pair_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise IoU of x1y1x2y2 boxes (continuous coordinates, no +1), as matching computes it."""
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / union, 0.0)


def same_image_pairs(pred_image: np.ndarray, unit_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (prediction, unit) pair on the same image, as index arrays."""
    order = np.argsort(unit_image, kind="stable")
    first = np.searchsorted(unit_image[order], pred_image, side="left")
    count = np.searchsorted(unit_image[order], pred_image, side="right") - first
    pred = np.repeat(np.arange(len(pred_image)), count)
    offsets = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    return pred, order[np.repeat(first, count) + offsets]


def best_overlaps(pred_image, pred_label, pred_box, unit_image, unit_label, unit_box):
    """Per prediction: the unit it overlaps most (-1: none), that IoU, and whether it is of the
    prediction's class (on equal IoU its own class's unit wins)."""
    best = np.full(len(pred_image), -1, np.int64)
    iou = np.zeros(len(pred_image))
    same = np.zeros(len(pred_image), bool)
    p, u = same_image_pairs(pred_image, unit_image)
    if len(p) == 0:
        return best, iou, same
    overlap = pair_iou(pred_box[p], unit_box[u])
    own = unit_label[u] == pred_label[p]
    order = np.lexsort((own, overlap, p))
    p, u, overlap, own = p[order], u[order], overlap[order], own[order]
    last = np.flatnonzero(np.append(p[1:] != p[:-1], True))
    best[p[last]], iou[p[last]], same[p[last]] = u[last], overlap[last], own[last]
    return best, iou, same


def error_types(predictions: Detections, unit_image: np.ndarray, unit_label: np.ndarray,
                unit_box: np.ndarray, unit_hit: np.ndarray, iou_threshold: float,
                background_iou: float = BACKGROUND_IOU) -> ErrorTypes:
    """The type of every unmatched prediction and every missed object (see the module doc).
    `unit_label` and `predictions.label` are class indices."""
    wrong = np.flatnonzero(predictions.match == Match.FALSE_POSITIVE)
    best, iou, same = best_overlaps(predictions.image[wrong], predictions.label[wrong],
                                    predictions.box[wrong].astype(np.float64), unit_image, unit_label,
                                    unit_box)
    kinds = np.full(len(wrong), "background", dtype=object)
    foreground, touching = iou >= iou_threshold, (iou >= background_iou) & (iou < iou_threshold)
    kinds[foreground & same] = "duplicate"
    kinds[foreground & ~same] = "classification"
    kinds[touching & same] = "localisation"
    kinds[touching & ~same] = "both"
    kinds[best < 0] = "background"
    prediction_types = np.full(len(predictions), "", dtype=object)
    prediction_types[wrong] = kinds

    unit_types = np.where(unit_hit, "", "missed").astype(object)
    for kind in reversed(_EXPLAINS):  # the highest priority is written last
        explained = best[(kinds == kind) & (best >= 0)]
        explained = explained[~unit_hit[explained]]
        unit_types[explained] = kind
    return ErrorTypes(prediction_types, unit_types)


def units_arrays(units, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image row, class index, box) of each unit, as error_types takes them."""
    index = {c: i for i, c in enumerate(classes)}
    return (units["_image_index"].to_numpy(np.int64), units["label"].map(index).to_numpy(np.int64),
            units[BOX].to_numpy(np.float64))
