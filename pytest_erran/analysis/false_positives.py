"""False positives per class, and the confidence threshold that would bring the class to a target
precision, with the recall it would cost: a sweep over the scores already predicted.

Raising a class's threshold only drops its lowest-scoring predictions, and COCO's greedy
matching takes predictions best score first, so the matches of the ones kept do not change:
precision and recall at any higher threshold are read off the predictions as matched.
(Classification: a prediction below its class's threshold becomes the negative class.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sweep:
    """One class's predictions: their scores, which were right, and the class's positives."""

    cls: str
    scores: np.ndarray  # [k] float
    correct: np.ndarray  # [k] bool
    positives: int
    threshold: float | None  # the class's threshold now (None: none set)


def lowest_threshold(scores: np.ndarray, correct: np.ndarray, target: float) -> tuple[float, int, int] | None:
    """(threshold, predictions kept, right ones kept) for the lowest score threshold whose kept
    predictions (score >= threshold) reach precision >= target; None when none does."""
    order = np.argsort(-scores, kind="stable")
    s, right = scores[order], correct[order].astype(np.int64)
    kept = np.arange(1, len(s) + 1)
    tp = np.cumsum(right)
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # a threshold keeps whole ties
    meets = ends[tp[ends] >= target * kept[ends] - 1e-12]
    if len(meets) == 0:
        return None
    k = meets[-1]
    return float(s[k]), int(kept[k]), int(tp[k])


def analyse(sweep: Sweep, target: float, target_source: str, threshold_key: str) -> dict:
    """The class's false positives and what raising its threshold to `target` would cost."""
    right = int(sweep.correct.sum())
    wrong = len(sweep.correct) - right
    entry = {"class": sweep.cls, "false_positives": wrong, "true_positives": right,
             "precision": right / len(sweep.correct) if len(sweep.correct) else None,
             "recall": right / sweep.positives if sweep.positives else None,
             "threshold": sweep.threshold, "target_precision": target, "target_source": target_source,
             "suggested_threshold": None, "precision_at": None, "recall_at": None, "hits_lost": None,
             "reachable": False}
    if not np.isfinite(sweep.scores).all():
        entry["note"] = "no scores to sweep (labels only)"
        return entry
    if entry["precision"] is not None and entry["precision"] >= target - 1e-12:
        entry["note"] = f"precision already at or above the target {target:g}"
        return entry
    found = lowest_threshold(sweep.scores, sweep.correct, target)
    if found is None:
        entry["note"] = f"no threshold reaches precision {target:g}"
        return entry
    value, kept, tp = found
    entry.update(suggested_threshold=value, precision_at=tp / kept,
                 recall_at=tp / sweep.positives if sweep.positives else None, hits_lost=right - tp,
                 reachable=True, key=threshold_key)
    return entry


def describe(entry: dict) -> str:
    """'dent: 12 false positives (precision 0.800); class_thresholds.dent = 0.83 reaches precision
    0.909 (target 0.90), recall 0.950 -> 0.917 (2 hits lost)'"""
    count = entry["false_positives"]
    head = (f"{entry['class']}: {count} false positive{'' if count == 1 else 's'} "
            f"(precision {entry['precision']:.3f})")
    if not entry["reachable"]:
        return f"{head}; {entry.get('note', '')}"
    recall = "" if entry["recall"] is None else f", recall {entry['recall']:.3f} -> {entry['recall_at']:.3f}"
    return (f"{head}; {entry['key']} = {entry['suggested_threshold']:.4g} reaches precision "
            f"{entry['precision_at']:.3f} (target {entry['target_precision']:g}){recall} "
            f"({entry['hits_lost']} hits lost)")


def detection_sweeps(classes: tuple[str, ...], label: np.ndarray, score: np.ndarray, match: np.ndarray,
                     counted: np.ndarray, correct: np.ndarray, positives: dict[str, int],
                     thresholds: dict[str, float]) -> list[Sweep]:
    """Per class, the predictions that counted (score at or above the class's threshold, not on
    a crowd box)."""
    return [Sweep(cls, score[counted & (label == i)].astype(np.float64), correct[counted & (label == i)],
                  positives.get(cls, 0), thresholds.get(cls))
            for i, cls in enumerate(classes)]


def classification_sweeps(classes: tuple[str, ...], negative: str | None, predicted: np.ndarray,
                          score: np.ndarray, truth: np.ndarray, thresholds: dict[str, float]) -> list[Sweep]:
    """Per defect class, the images predicted as it (after thresholds) with their top scores."""
    sweeps = []
    for cls in classes:
        if cls == negative:
            continue
        mine = predicted == cls
        sweeps.append(Sweep(cls, score[mine].astype(np.float64), truth[mine] == cls,
                            int((truth == cls).sum()), thresholds.get(cls)))
    return sweeps
