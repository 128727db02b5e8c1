"""Detection: one unit per ground-truth object; a hit is an object matched as COCOeval matches."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...errors import ErranError
from ...inference.exporters import Export
from ...inference.images import NATIVE
from ...inference.cache import arrays_like
from ...units import BOX, Detections, Match, PrecisionCounts, TaskResult
from ...vocabulary import ALL, TaskName
from .. import AdapterOptions, Context, adapter_identity
from ..broken_outputs import NonFinite, broken_model
from . import outputs
from .data import DetectionDataset, load_detection
from .matching import match_detections, per_class_counts
from .predictions_file import read_detections


class DetectionTask:
    name = TaskName.DETECTION

    def load(self, settings) -> DetectionDataset:
        if settings.negative is not None:
            raise ErranError("`negative` is for classification: in detection every ground-truth "
                             "object is a defect; remove it")
        return load_detection(settings.data, settings.split, settings.exif, settings.threads)

    def check(self, settings, dataset: DetectionDataset, classes: tuple[str, ...]) -> None:
        unknown = sorted(set(dataset.crowd["label"]) - set(classes))
        if unknown:
            raise ErranError(f"{dataset.path}: crowd boxes of class '{unknown[0]}', which is not one "
                             f"of the classes {list(classes)}")

    def predict(self, context: Context) -> TaskResult:
        if context.model is None:
            predictions, predicted = _from_file(context), 0
        else:
            predictions, predicted = _with_model(context)
        return _matched(context, predictions, predicted)


def score_thresholds(settings, classes: tuple[str, ...]) -> np.ndarray:
    """Per class, the score a prediction needs to count: class_thresholds, else score_threshold."""
    return np.array([settings.class_thresholds.get(c, settings.score_threshold) for c in classes])


def _with_model(context: Context) -> tuple[dict[str, np.ndarray], int]:
    settings, model, dataset, classes = context.settings, context.model, context.dataset, context.classes
    export = context.export or Export()
    prep = model.preprocess(export.preprocess_config(settings.preprocess), settings.exif)
    name = outputs.choose_adapter(settings.output, model, context.adapters, export, len(classes))
    if name == "torchvision":
        _check_label_order(settings, dataset, classes, export)
    adapter = outputs.ADAPTERS[name] if name in outputs.ADAPTERS else context.adapters[name]
    images = dataset.images
    paths, sources = images["_path"].tolist(), images["_source"].tolist()
    thresholds = score_thresholds(settings, classes)
    floor = float(min(thresholds.min(), settings.score_threshold)) if len(thresholds) else 0.0
    # resize "native": no one input size; boxes come back in each image's own pixels
    input_size = None if prep.resize == NATIVE else (prep.width, prep.height)
    options = AdapterOptions(classes, input_size, floor, settings.nms_iou)

    def compute() -> dict[str, np.ndarray]:
        chunks = []
        for batch in context.batches(model, paths, sources, prep):
            try:
                chunks.append(outputs.decode_batch(name, adapter, batch, model.output_names, prep, options,
                                                   str(settings.model)))
            except NonFinite as e:
                raise broken_model(f"{settings.model}: output adapter '{name}'", e, images,
                                   batch.start) from None
        return outputs.concat(chunks)

    def valid(arrays: dict[str, np.ndarray]) -> bool:
        if not arrays_like(arrays, {"image": ("int64", (None,)), "label": ("int64", (None,)),
                                    "box": ("float32", (None, 4)), "score": ("float32", (None,))}):
            return False
        image, label = arrays["image"], arrays["label"]
        return (len({len(a) for a in arrays.values()}) == 1 and bool(((image >= 0) & (image < len(paths))).all())
                and bool(((label >= 0) & (label < len(classes))).all()))

    identity = name if name in outputs.ADAPTERS else adapter_identity(name, adapter)
    predictions, from_cache = context.cache.arrays(compute, valid=valid, prep=prep.key(), adapter=identity,
                                                   floor=floor, nms_iou=settings.nms_iou, classes=classes)
    return predictions, 0 if from_cache else len(paths)


def _check_label_order(settings, dataset: DetectionDataset, classes: tuple[str, ...], export: Export) -> None:
    """torchvision labels 1..C name the classes in order. Classes taken from a COCO dev set are
    in category-id order; unless the ids are 1..C, a label could as well be a category id."""
    if settings.classes or export.classes or not dataset.category_ids:
        return
    ids = [dataset.category_ids.get(c) for c in classes]
    if ids != list(range(1, len(classes) + 1)):
        raise ErranError(f"{dataset.path}: category ids {ids} for {list(classes)}; the torchvision "
                         f"export's labels 1..{len(classes)} name classes in its own order, which the "
                         "ids do not settle: list the classes in the model's label order in `classes`")


def _from_file(context: Context) -> dict[str, np.ndarray]:
    dataset, classes = context.dataset, context.classes
    ids = dataset.category_ids
    category_ids = None
    if ids:  # a class without a category gets an unused id: it must not take over another's
        spare = iter(range(max(ids.values()) + 1, max(ids.values()) + 1 + len(classes)))
        category_ids = [ids[c] if c in ids else next(spare) for c in classes]
    return read_detections(context.settings.predictions, dataset.images, classes, dataset.all_ids,
                           dataset.all_images, category_ids)


def _matched(context: Context, predictions: dict[str, np.ndarray], predicted: int) -> TaskResult:
    """`_hit` per ground-truth object; per class and 'all' the true and false positives and the
    image of each false positive; every prediction with what it matched."""
    dataset, classes = context.dataset, context.classes
    units, crowd = dataset.units, dataset.crowd
    index = {c: i for i, c in enumerate(classes)}
    columns = ["_image_index", "label", *BOX]
    gt = pd.concat([units[columns], crowd[columns]], ignore_index=True)
    result = match_detections(
        gt["_image_index"].to_numpy(np.int64), gt["label"].map(index).to_numpy(np.int64),
        gt[BOX].to_numpy(np.float64),
        np.arange(len(gt)) >= len(units),
        predictions["image"], predictions["label"], predictions["box"], predictions["score"],
        # in the scores' own precision: a float32 score of 0.7 meets score_threshold = 0.7
        np.asarray(score_thresholds(context.settings, classes), predictions["score"].dtype),
        context.settings.iou_threshold,
    )
    units = units.assign(_hit=result.gt_hit[: len(units)])
    tp, fp = per_class_counts(predictions["label"], result.pred_outcome, len(classes))
    wrong = result.pred_outcome == Match.FALSE_POSITIVE
    names = dataset.images["image"].to_numpy(object)
    counts = {c: PrecisionCounts(int(tp[i]), int(fp[i]),
                                 names[np.sort(predictions["image"][wrong & (predictions["label"] == i)])].tolist())
              for i, c in enumerate(classes)}
    counts[ALL] = PrecisionCounts(int(tp.sum()), int(fp.sum()), names[np.sort(predictions["image"][wrong])].tolist())
    any_score = match_detections(  # for precision/recall curves and AP: no score threshold
        gt["_image_index"].to_numpy(np.int64), gt["label"].map(index).to_numpy(np.int64),
        gt[BOX].to_numpy(np.float64), np.arange(len(gt)) >= len(units),
        predictions["image"], predictions["label"], predictions["box"], predictions["score"],
        np.full(len(classes), -np.inf), context.settings.iou_threshold)
    matched = Detections(image=predictions["image"], label=predictions["label"], score=predictions["score"],
                         box=predictions["box"], match=result.pred_outcome, unit=result.pred_gt,
                         iou=result.pred_iou, match_any_score=any_score.pred_outcome)
    return TaskResult(units, counts, predicted, matched)
