"""Detection: model outputs -> boxes in image coordinates -> ground-truth objects hit or missed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import detection_outputs
from .errors import ErranError
from .matching import FALSE_POSITIVE, match_detections, per_class_counts
from .results import PrecisionCounts

ADAPTERS = ("boxes_scores_labels", "yolo")
EMPTY = {"image": np.zeros(0, np.int64), "label": np.zeros(0, np.int64),
         "box": np.zeros((0, 4), np.float32), "score": np.zeros(0, np.float32)}


def choose_adapter(configured: str | None, model) -> str:
    """`output` in the config, else the one the model's outputs make unambiguous."""
    if configured is not None:
        if configured not in ADAPTERS:
            raise ErranError(f"output = '{configured}': for detection use one of {', '.join(ADAPTERS)}")
        return configured
    outputs = model.session.get_outputs()
    if len(outputs) == 1 and len(outputs[0].shape) == 3:
        return "yolo"
    if len(outputs) >= 3:
        return "boxes_scores_labels"
    raise ErranError(f"{model.path}: cannot tell how to read outputs "
                     f"{[(o.name, o.shape) for o in outputs]}; set output = 'yolo' or "
                     "'boxes_scores_labels' in the config")


def decode_batch(adapter: str, batch, names: list[str], prep, score_floor: float, nms_iou: float,
                 num_classes: int, where: str) -> dict[str, np.ndarray]:
    """One batch of model outputs -> flat arrays of detections in each image's own pixels."""
    try:
        if adapter == "yolo":
            per_image = detection_outputs.yolo(batch.outputs[0], score_floor, nms_iou)
        else:
            per_image = detection_outputs.boxes_scores_labels(dict(zip(names, batch.outputs)))
    except ValueError as e:
        raise ErranError(f"{where}: the outputs do not fit the '{adapter}' adapter: {e}") from None
    if len(per_image) != batch.stop - batch.start:
        raise ErranError(f"{where}: gave detections for {len(per_image)} images in a batch of "
                         f"{batch.stop - batch.start}")
    parts = {key: [] for key in EMPTY}
    for offset, (boxes, scores, labels) in enumerate(per_image):
        outside = labels[(labels < 0) | (labels >= num_classes)]
        if len(outside):
            raise ErranError(f"{where}: predicts class index {int(outside[0])}, but there are "
                             f"{num_classes} classes; check `classes`")
        size = tuple(int(v) for v in batch.image_sizes[offset])
        parts["box"].append(detection_outputs.to_image_coords(boxes, size, (prep.width, prep.height),
                                                              prep.resize).astype(np.float32))
        parts["score"].append(scores.astype(np.float32))
        parts["label"].append(labels.astype(np.int64))
        parts["image"].append(np.full(len(labels), batch.start + offset, np.int64))
    return {key: np.concatenate(values) if values else EMPTY[key] for key, values in parts.items()}


def concat(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not chunks:
        return dict(EMPTY)
    return {key: np.concatenate([c[key] for c in chunks]) for key in EMPTY}


def match_units(units: pd.DataFrame, crowd: pd.DataFrame, predictions: dict[str, np.ndarray],
                classes: tuple[str, ...], thresholds: np.ndarray, iou_threshold: float,
                image_names: list[str]):
    """`_hit` per ground-truth object, and per class and 'all' the true positives, false
    positives and the image of each false positive (`image_names` by image index)."""
    index = {c: i for i, c in enumerate(classes)}
    gt = pd.concat([units[["_image_index", "label", "x1", "y1", "x2", "y2"]],
                    crowd[["_image_index", "label", "x1", "y1", "x2", "y2"]]], ignore_index=True)
    result = match_detections(
        gt["_image_index"].to_numpy(np.int64), gt["label"].map(index).to_numpy(np.int64),
        gt[["x1", "y1", "x2", "y2"]].to_numpy(np.float64),
        np.arange(len(gt)) >= len(units),
        predictions["image"], predictions["label"], predictions["box"], predictions["score"],
        # in the scores' own precision: a float32 score of 0.7 meets score_threshold = 0.7
        np.asarray(thresholds, predictions["score"].dtype), iou_threshold,
    )
    units = units.assign(_hit=result.gt_hit[: len(units)])
    tp, fp = per_class_counts(predictions["label"], result.pred_outcome, len(classes))
    wrong = result.pred_outcome == FALSE_POSITIVE
    names = np.asarray(image_names, dtype=object)
    counts = {c: PrecisionCounts(int(tp[i]), int(fp[i]),
                                 names[np.sort(predictions["image"][wrong & (predictions["label"] == i)])].tolist())
              for i, c in enumerate(classes)}
    counts["all"] = PrecisionCounts(int(tp.sum()), int(fp.sum()),
                                    names[np.sort(predictions["image"][wrong])].tolist())
    return units, counts
