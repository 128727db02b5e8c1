"""Classification: model outputs -> predicted class per image -> hit or miss."""

from __future__ import annotations

import numpy as np

from ...errors import ErranError
from ...units import ClassScores


def interpret_output(value, classes: tuple[str, ...], where: str) -> ClassScores:
    """One batch of one model output: [N, C] scores, [N] indices or labels, or ZipMap maps."""
    if isinstance(value, list):  # skl2onnx's ZipMap: a sequence of {class: probability}
        return _from_scores(_zipmap_scores(value, classes, where))
    array = np.asarray(value)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 1:
        if array.dtype.kind in "OUS":  # string labels
            lookup = {c: i for i, c in enumerate(classes)}
            unknown = sorted({str(v) for v in array} - set(lookup))
            if unknown:
                raise ErranError(f"{where}: predicts label '{unknown[0]}', which is not one of the "
                                 f"classes {list(classes)}")
            return ClassScores(np.array([lookup[str(v)] for v in array], np.int64), None)
        if array.dtype.kind not in "iu":
            raise ErranError(f"{where}: a 1-D output must hold class indices, got {array.dtype}")
        if len(array) and (array.min() < 0 or array.max() >= len(classes)):
            raise ErranError(f"{where}: predicts class index {int(array.max())}, but `classes` has "
                             f"{len(classes)} names")
        return ClassScores(array.astype(np.int64), None)
    if array.ndim != 2:
        raise ErranError(f"{where}: expected scores [N, classes] or labels [N], got shape "
                         f"{list(array.shape)}")
    check_output_shape(array.shape, classes, where)
    return _from_scores(array.astype(np.float32, copy=False))


def check_output_shape(shape, classes: tuple[str, ...], where: str) -> None:
    """A scores output [N, C] must have one score per class; checked on the model's declared
    shape before any image is decoded, and on every batch."""
    if len(shape) == 2 and isinstance(shape[1], int) and shape[1] not in (1, len(classes)):
        raise ErranError(f"{where}: gives {shape[1]} scores per image but `classes` has "
                         f"{len(classes)} names {list(classes)}; make them agree")


def _zipmap_scores(maps: list, classes: tuple[str, ...], where: str) -> np.ndarray:
    """ZipMap keys are the classes the model was trained on: read by name ({"1": p} or {1: p}
    for the class "1"), else, integer keys 0..C-1, by index."""
    keys = list(maps[0]) if maps else []
    if {str(k) for k in keys} == set(classes) and len(keys) == len(classes):
        by_name = {str(k): k for k in keys}
        order = [by_name[c] for c in classes]
    elif all(isinstance(k, (int, np.integer)) for k in keys) and set(keys) == set(range(len(classes))):
        order = list(range(len(classes)))
    else:
        raise ErranError(f"{where}: the score maps have keys {sorted(map(str, keys))}, which are neither "
                         f"the classes {list(classes)} nor their indices 0..{len(classes) - 1}; list the "
                         "model's class labels in `classes`")
    try:
        rows = [[m[k] for k in order] for m in maps]
    except KeyError as e:
        raise ErranError(f"{where}: a score map lacks the key {e.args[0]!r}") from None
    return np.array(rows, np.float32).reshape(len(maps), len(classes))


def class_values(values, classes: tuple[str, ...], where: str) -> np.ndarray:
    """Class indices of labels that are class *values* (skl2onnx: the labels it was trained
    on, 1 / 3 / 7 or "ok"): a value names the class of that name; integer values 0..C-1 that
    name none are indices, when the classes are names rather than numbers."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ErranError(f"{where}: expected labels [N], got shape {list(array.shape)}")
    lookup = {c: i for i, c in enumerate(classes)}
    names = [str(v) for v in array.tolist()]
    if all(name in lookup for name in names):
        return np.array([lookup[name] for name in names], np.int64)
    numbers = array.dtype.kind in "iu" and not any(_is_integer(c) for c in classes)
    if numbers and (not len(array) or (array.min() >= 0 and array.max() < len(classes))):
        return array.astype(np.int64)
    unknown = next(name for name in names if name not in lookup)
    raise ErranError(f"{where}: predicts class value {unknown!r}, which is not one of the classes "
                     f"{list(classes)}; list the model's class values (the labels it was trained on) "
                     "in `classes`")


def value_columns(classes: tuple[str, ...], numeric_labels: bool) -> np.ndarray:
    """For skl2onnx probabilities [N, C], the class index of each column. Columns follow the
    estimator's `classes_`, its class values sorted (numerically for integer labels); when the
    classes are names and the values 0..C-1, column j is class j."""
    if numeric_labels and all(_is_integer(c) for c in classes):
        return np.array(sorted(range(len(classes)), key=lambda i: int(classes[i])), np.int64)
    if numeric_labels:
        return np.arange(len(classes), dtype=np.int64)
    return np.array(sorted(range(len(classes)), key=lambda i: classes[i]), np.int64)


def from_class_values(labels, probabilities, classes: tuple[str, ...], numeric_labels: bool,
                      where: str) -> ClassScores:
    """A skl2onnx classifier's batch: the label output (the estimator's predict) decides the
    class; the probabilities (ZipMap maps or an [N, C] array) are its scores."""
    scores = None
    if isinstance(probabilities, list):
        scores = _zipmap_scores(probabilities, classes, where)
    elif probabilities is not None:
        array = np.asarray(probabilities, np.float32)
        if array.ndim != 2 or array.shape[1] != len(classes):
            raise ErranError(f"{where}: expected probabilities [N, {len(classes)}] (one per class of "
                             f"{list(classes)}), got shape {list(array.shape)}")
        scores = np.empty_like(array)
        scores[:, value_columns(classes, numeric_labels)] = array
    if labels is None:
        return _from_scores(scores)
    index = class_values(labels, classes, where)
    if scores is not None and len(scores) != len(index):
        raise ErranError(f"{where}: {len(index)} labels but {len(scores)} rows of probabilities")
    return ClassScores(index, scores)


def _is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _from_scores(scores: np.ndarray) -> ClassScores:
    index = scores.argmax(axis=1) if len(scores) else np.zeros(0, np.int64)
    return ClassScores(index.astype(np.int64), scores)


def concat(parts: list[ClassScores]) -> ClassScores:
    index = np.concatenate([p.index for p in parts]) if parts else np.zeros(0, np.int64)
    has_scores = parts and all(p.scores is not None for p in parts)
    return ClassScores(index, np.concatenate([p.scores for p in parts]) if has_scores else None)


def as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Scores already in [0, 1] are kept (softmax or sigmoid outputs); anything else is taken
    for logits, and softmax makes class thresholds mean probabilities."""
    if scores.size == 0 or (scores.min() >= 0 and scores.max() <= 1):
        return scores
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def predicted_labels(pred: ClassScores, classes: tuple[str, ...], thresholds: dict[str, float],
                     negative: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Predicted class name per image, and the score of that class (None without scores).
    `pred.scores` are probabilities (see as_probabilities).

    argmax; when that class has a threshold and its score is below it, the prediction
    becomes the negative class.
    """
    names = np.asarray(classes, dtype=object)[pred.index]
    if pred.scores is None:
        return apply_thresholds(names, None, thresholds, negative, "the model (labels only)"), None
    top = pred.scores[np.arange(len(pred.scores)), pred.index]
    return apply_thresholds(names, top, thresholds, negative, "the model"), top


def apply_thresholds(names: np.ndarray, scores: np.ndarray | None, thresholds: dict[str, float],
                     negative: str | None, source: str) -> np.ndarray:
    """A prediction whose class has a threshold its score falls below becomes `negative`:
    `score >= threshold` keeps it. The threshold is taken in the scores' own precision, so a
    model's float32 score of exactly 0.7 meets 0.7, as the same score in a predictions file does
    (float32(0.7) is a hair below the float64 0.7)."""
    if not thresholds:
        return names
    if scores is None:
        raise ErranError(f"class_thresholds need a score per prediction, and {source} gives none; "
                         "remove class_thresholds or give scores")
    if negative is None:
        raise ErranError("class_thresholds need `negative`: the class a prediction below its "
                         "threshold becomes")
    scores = np.asarray(scores)
    limits = np.array([thresholds.get(str(name), -np.inf) for name in names]).astype(scores.dtype)
    return np.where(scores >= limits, names, negative)
